//! The `green` demo: many green threads on ONE OS thread doing real work.
//!
//! 1. 10 000 green threads each sleep 100 ms: the sleeps overlap.
//! 2. A TCP echo server and 100 clients on loopback, all green threads on
//!    one OS thread, each client checking every byte it gets back.
//! 3. A pipeline: a `GreenPool` of 50 green threads runs 400 jobs, each a
//!    blocking call (`std::thread::sleep(20 ms)`, standing in for a
//!    database driver or a file read) sent to `tpool`'s OS threads; the
//!    results come back through a `Queue` and are summed in input order
//!    with `imap`.
//! 4. 20 child processes, each `sleep 0.2; echo`, run by green threads
//!    through `green::process`: waits park on a pidfd, pipes are green.
//! 5. An existing blocking program written against std alone (module
//!    `legacy`: an HTTP/1.0 server whose workers `std::thread::sleep` and
//!    count hits in a `std::sync::Mutex`, and its `std::net::TcpStream`
//!    clients, which resolve `localhost`), its threads run as green
//!    threads: first as it is, where every blocking call blocks the OS
//!    thread and the requests go one at a time, then after one
//!    `green::patch()`, where they overlap.
//!
//! Run it with `cargo run --release --example demo`.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use green::net::{TcpListener, TcpStream};

const SLEEPERS: u64 = 10_000;
const CLIENTS: usize = 100;
const ROUND_TRIPS: usize = 1_000;
const MSG: usize = 64;

fn sleepers() {
    let start = Instant::now();
    let handles: Vec<_> = (0..SLEEPERS)
        .map(|i| {
            green::spawn(move || {
                green::sleep(Duration::from_millis(100));
                i
            })
        })
        .collect();
    let sum: u64 = handles.into_iter().map(|h| h.wait()).sum();
    assert_eq!(sum, SLEEPERS * (SLEEPERS - 1) / 2);
    let wall = start.elapsed();
    println!(
        "sleep:  {SLEEPERS} green threads x 100 ms sleep finished in {:.1} ms on one OS thread \
         (back to back: {} s)",
        wall.as_secs_f64() * 1e3,
        SLEEPERS / 10
    );
}

fn handle(mut s: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; MSG];
    loop {
        match s.read_exact(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            r => r?,
        }
        s.write_all(&buf)?;
    }
}

fn echo() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = green::spawn(move || -> io::Result<()> {
        let handlers: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (s, _) = listener.accept()?;
                Ok(green::spawn(move || handle(s)))
            })
            .collect::<io::Result<_>>()?;
        // Each handler finishes when its client closes.
        handlers.into_iter().try_for_each(|h| h.wait())
    });
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            green::spawn(move || -> io::Result<u64> {
                let mut s = TcpStream::connect(addr)?;
                let mut msg = [0u8; MSG];
                let mut back = [0u8; MSG];
                let mut checksum = 0u64;
                for r in 0..ROUND_TRIPS {
                    for (i, b) in msg.iter_mut().enumerate() {
                        *b = (c * 31 + r * 7 + i) as u8;
                    }
                    s.write_all(&msg)?;
                    s.read_exact(&mut back)?;
                    assert_eq!(msg, back, "echo changed the bytes");
                    checksum += back.iter().map(|&b| b as u64).sum::<u64>();
                }
                Ok(checksum)
            })
        })
        .collect();
    let mut total = 0;
    for c in clients {
        total += c.wait()?;
    }
    let wall = start.elapsed();
    server.wait()?;
    let trips = (CLIENTS * ROUND_TRIPS) as f64;
    println!(
        "echo:   {CLIENTS} clients x {ROUND_TRIPS} round trips of {MSG} bytes in {:.1} ms: \
         {:.0} round trips/s, {:.1} us each (checksum {total})",
        wall.as_secs_f64() * 1e3,
        trips / wall.as_secs_f64(),
        wall.as_secs_f64() * 1e6 / trips,
    );
    Ok(())
}

const JOBS: u64 = 400;
const POOL: usize = 50;
const BLOCK_MS: u64 = 20;

fn pipeline() {
    let start = Instant::now();
    let pool = green::GreenPool::new(POOL);
    let done = green::queue::Queue::unbounded();
    let results: Vec<u64> = pool
        .imap(
            {
                let done = done.clone();
                move |job: u64| {
                    // A call that blocks its OS thread runs on tpool; this
                    // green thread parks meanwhile.
                    let v = green::tpool::execute(|| {
                        std::thread::sleep(Duration::from_millis(BLOCK_MS));
                        job * job
                    });
                    done.put(job);
                    v
                }
            },
            0..JOBS,
        )
        .collect();
    assert!(results
        .iter()
        .enumerate()
        .all(|(i, v)| *v == (i * i) as u64));
    let mut finished = 0;
    while done.get_nowait().is_ok() {
        finished += 1;
    }
    assert_eq!(finished, JOBS);
    let wall = start.elapsed();
    println!(
        "tpool:  {JOBS} blocking {BLOCK_MS} ms calls via GreenPool({POOL}) + tpool ({} OS threads) \
         in {:.1} ms (back to back: {} ms)",
        green::tpool::num_threads(),
        wall.as_secs_f64() * 1e3,
        JOBS * BLOCK_MS
    );
}

const CHILDREN: usize = 20;

/// 20 child processes that each sleep 200 ms and print a line, waited for
/// and read by green threads: the children overlap.
fn children() -> io::Result<()> {
    let start = Instant::now();
    let runs: Vec<_> = (0..CHILDREN)
        .map(|n| {
            green::spawn(move || {
                green::process::Command::new("sh")
                    .arg("-c")
                    .arg(format!("sleep 0.2; echo child {n}"))
                    .output()
            })
        })
        .collect();
    for (n, run) in runs.into_iter().enumerate() {
        let out = run.wait()?;
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("child {n}\n"));
    }
    println!(
        "process: {CHILDREN} children x `sleep 0.2; echo` waited (pidfd) and read in {:.1} ms \
         (back to back: {} ms)",
        start.elapsed().as_secs_f64() * 1e3,
        CHILDREN * 200
    );
    Ok(())
}

/// An existing blocking program, written against std alone: nothing in
/// this module names `green`. A small HTTP/1.0 server in the worker-pool
/// style (each worker accepts a connection from the shared listener and
/// answers it) and the client that fetches a page from it. A program would
/// run each in a `std::thread`; the demo runs them as green threads.
mod legacy {
    use std::io::{self, BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Mutex;
    use std::thread;
    use std::time::Duration;

    /// A worker: accepts one connection, reads the request, spends `work`
    /// on it (a slow backend), counts the hit and answers.
    pub fn worker(listener: &TcpListener, hits: &Mutex<u64>, work: Duration) -> io::Result<()> {
        let (stream, _) = listener.accept()?;
        let mut request = BufReader::new(&stream);
        let mut line = String::new();
        request.read_line(&mut line)?;
        let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
        // The headers, up to the empty line.
        while line != "\r\n" && !line.is_empty() {
            line.clear();
            request.read_line(&mut line)?;
        }
        thread::sleep(work);
        let hit = {
            let mut hits = hits.lock().unwrap();
            *hits += 1;
            *hits
        };
        let body = format!("{path}: hit {hit}\n");
        write!(
            &stream,
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    thread_local! {
        /// Jobs done by the calling thread.
        static DONE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// A job-queue worker: takes jobs from its own channel until it is
    /// closed, spends `work` on each, counts them in a thread-local and
    /// reports each result on the shared channel. Returns its thread's id
    /// and its own count.
    pub fn job_worker(
        jobs: std::sync::mpsc::Receiver<u64>,
        results: std::sync::mpsc::Sender<u64>,
        work: Duration,
    ) -> (thread::ThreadId, u64) {
        for job in jobs {
            thread::sleep(work);
            DONE.with(|d| d.set(d.get() + 1));
            results.send(job * 2).expect("the collector is listening");
        }
        (thread::current().id(), DONE.with(|d| d.get()))
    }

    /// Fetches `path` from `host:port`; returns the whole response.
    pub fn get(host: &str, port: u16, path: &str) -> io::Result<String> {
        let mut stream = TcpStream::connect((host, port))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    }
}

const REQUESTS: usize = 20;
const WORK: Duration = Duration::from_millis(50);

/// Runs `legacy` once: `REQUESTS` workers as green threads on this OS
/// thread, `REQUESTS` clients as green threads on another one. Returns the
/// wall time.
///
/// Unpatched, a blocking call holds its whole OS thread: a client waiting
/// for its response on the workers' OS thread would keep the worker that
/// answers it from ever running. On two OS threads the unpatched run
/// completes, one request at a time.
fn legacy_run() -> io::Result<Duration> {
    let listener = Arc::new(std::net::TcpListener::bind("127.0.0.1:0")?);
    let port = listener.local_addr()?.port();
    let hits = Arc::new(Mutex::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let (listener, hits) = (listener.clone(), hits.clone());
            green::spawn(move || legacy::worker(&listener, &hits, WORK))
        })
        .collect();
    let clients = std::thread::spawn(move || {
        let gets: Vec<_> = (0..REQUESTS)
            .map(|i| green::spawn(move || legacy::get("localhost", port, &format!("/page/{i}"))))
            .collect();
        gets.into_iter()
            .map(|g| g.wait())
            .collect::<io::Result<Vec<_>>>()
    });
    for w in workers {
        w.wait()?;
    }
    let responses = clients.join().expect("a client panicked")?;
    let wall = start.elapsed();
    for (i, r) in responses.iter().enumerate() {
        assert!(r.starts_with("HTTP/1.0 200 OK\r\n"), "bad response: {r:?}");
        assert!(r.contains(&format!("/page/{i}: hit ")), "wrong page: {r:?}");
    }
    assert_eq!(*hits.lock().unwrap(), REQUESTS as u64);
    Ok(wall)
}

/// The same std-only program before and after `green::patch()`.
fn patched() -> io::Result<()> {
    // patch() is process-wide: the run without it comes first.
    let before = legacy_run()?;
    green::patch();
    let after = legacy_run()?;
    let seen = green::patch::hooks_seen();
    println!(
        "patch:  std-only HTTP server and clients, {REQUESTS} requests (DNS, {} ms thread::sleep, \
         Mutex), green threads on 2 OS threads:\n        \
         {:.1} ms as it is (one at a time), {:.1} ms after green::patch() (back to back: {} ms)",
        WORK.as_millis(),
        before.as_secs_f64() * 1e3,
        after.as_secs_f64() * 1e3,
        REQUESTS as u128 * WORK.as_millis(),
    );
    println!(
        "        hooked calls that took their green path: {}",
        seen.join(", ")
    );
    Ok(())
}

const WORKERS: usize = 100;
const QUEUED_JOBS: u64 = 1000;
const JOB_WORK: Duration = Duration::from_millis(20);

/// std-only code that tells threads apart, under `patch()`: `WORKERS`
/// green threads each block in `recv` on a std `mpsc` channel of its own,
/// kept open while a dispatcher (also green) feeds them; each counts its
/// jobs in a `thread_local!`. All on this one OS thread: every green
/// thread is a thread of its own to std.
fn identity() {
    let (results_tx, results) = std::sync::mpsc::channel::<u64>();
    let start = Instant::now();
    let mut queues = Vec::with_capacity(WORKERS);
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (tx, rx) = std::sync::mpsc::channel::<u64>();
            queues.push(tx);
            let results_tx = results_tx.clone();
            green::spawn(move || legacy::job_worker(rx, results_tx, JOB_WORK))
        })
        .collect();
    drop(results_tx);
    let collector = green::spawn(move || results.iter().sum::<u64>());
    for job in 0..QUEUED_JOBS {
        queues[job as usize % WORKERS]
            .send(job)
            .expect("a worker is listening");
    }
    drop(queues);
    let mut ids = std::collections::HashSet::new();
    let mut counted = 0;
    for w in workers {
        let (id, done) = w.wait();
        ids.insert(id);
        counted += done;
    }
    let sum = collector.wait();
    let wall = start.elapsed();
    assert_eq!(sum, QUEUED_JOBS * (QUEUED_JOBS - 1));
    assert_eq!(counted, QUEUED_JOBS, "per-thread counts add up");
    assert_eq!(ids.len(), WORKERS, "each worker a thread of its own");
    println!(
        "identity: {WORKERS} green threads on one OS thread, each a std thread ({:?}): std mpsc \
         queues kept open, thread_local counters, {QUEUED_JOBS} jobs of {} ms thread::sleep in \
         {:.1} ms (back to back: {} ms); {} distinct thread ids, counts add up to {counted}",
        green::patch::thread_identity(),
        JOB_WORK.as_millis(),
        wall.as_secs_f64() * 1e3,
        QUEUED_JOBS as u128 * JOB_WORK.as_millis(),
        ids.len(),
    );
}

fn main() -> io::Result<()> {
    sleepers();
    echo()?;
    pipeline();
    children()?;
    patched()?;
    identity();
    println!("hub:    {:?}", green::hub::stats());
    Ok(())
}

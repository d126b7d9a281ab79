//! An ordinary program written against std only, built with `green-std`
//! renamed to `std` (see this crate's `Cargo.toml`): its threads, sockets,
//! sleeps, locks and child processes are green, with no change to the
//! source.
//!
//! [`run`] starts a line server with a thread per connection, and clients,
//! each a thread, that send lines and wait for the answers; the server
//! sleeps before each answer and counts lines under a mutex, and a few
//! threads run a child process meanwhile. Every thread records the OS thread
//! it ran on.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Lines each client sends.
pub const LINES: usize = 3;
/// How long the server sleeps before each answer.
pub const SERVER_DELAY: Duration = Duration::from_millis(50);

/// What a [`run`] did.
#[derive(Debug)]
pub struct Report {
    /// Lines the server answered, counted under a `Mutex`.
    pub answered: usize,
    /// Answers the clients got back and checked.
    pub checked: usize,
    /// The standard output of each child process.
    pub child_outputs: Vec<String>,
    /// Every OS thread (`/proc/thread-self`) a thread of the program ran on.
    pub os_threads: HashSet<PathBuf>,
    /// Wall-clock time of the whole run.
    pub elapsed: Duration,
}

fn os_thread() -> PathBuf {
    std::fs::read_link("/proc/thread-self").expect("/proc/thread-self")
}

fn serve_one(stream: TcpStream, answered: &Mutex<usize>) -> io::Result<()> {
    let mut out = stream.try_clone()?;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        thread::sleep(SERVER_DELAY);
        *answered.lock().unwrap() += 1;
        writeln!(out, "{}", line.to_uppercase())?;
    }
    Ok(())
}

fn client(addr: SocketAddr, id: usize) -> io::Result<usize> {
    // A host name, as real programs use: resolved like std's, never
    // blocking the other threads.
    let stream = TcpStream::connect(("localhost", addr.port()))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = stream.try_clone()?;
    let mut answers = BufReader::new(stream).lines();
    let mut checked = 0;
    for n in 0..LINES {
        writeln!(out, "client {id} line {n}")?;
        let answer = answers.next().expect("an answer")?;
        assert_eq!(answer, format!("CLIENT {id} LINE {n}"));
        checked += 1;
    }
    Ok(checked)
}

/// Runs the program with `clients` client threads and `children` child
/// processes (`sh -c 'sleep 0.2; echo child N'`).
///
/// # Errors
/// Any I/O error of the server, a client or a child.
pub fn run(clients: usize, children: usize) -> io::Result<Report> {
    let start = Instant::now();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let answered = Arc::new(Mutex::new(0));
    let (seen_tx, seen_rx) = mpsc::channel();

    let server = {
        let (answered, seen) = (answered.clone(), seen_tx.clone());
        thread::spawn(move || -> io::Result<()> {
            seen.send(os_thread()).unwrap();
            let mut handlers = Vec::new();
            for _ in 0..clients {
                let (stream, _) = listener.accept()?;
                let (answered, seen) = (answered.clone(), seen.clone());
                handlers.push(thread::spawn(move || {
                    seen.send(os_thread()).unwrap();
                    serve_one(stream, &answered)
                }));
            }
            for h in handlers {
                h.join().unwrap()?;
            }
            Ok(())
        })
    };

    let client_threads: Vec<_> = (0..clients)
        .map(|id| {
            let seen = seen_tx.clone();
            thread::spawn(move || {
                seen.send(os_thread()).unwrap();
                client(addr, id)
            })
        })
        .collect();

    let child_threads: Vec<_> = (0..children)
        .map(|n| {
            let seen = seen_tx.clone();
            thread::spawn(move || -> io::Result<String> {
                seen.send(os_thread()).unwrap();
                let out = Command::new("sh")
                    .arg("-c")
                    .arg(format!("sleep 0.2; echo child {n}"))
                    .output()?;
                assert!(out.status.success());
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            })
        })
        .collect();
    drop(seen_tx);

    let mut checked = 0;
    for c in client_threads {
        checked += c.join().unwrap()?;
    }
    let mut child_outputs = Vec::new();
    for c in child_threads {
        child_outputs.push(c.join().unwrap()?);
    }
    server.join().unwrap()?;
    let os_threads = seen_rx.iter().collect();
    let answered = *answered.lock().unwrap();
    Ok(Report {
        answered,
        checked,
        child_outputs,
        os_threads,
        elapsed: start.elapsed(),
    })
}

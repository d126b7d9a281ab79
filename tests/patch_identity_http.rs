//! Blocking HTTP clients that wait on threads of their own, unmodified, on
//! green threads under `green::patch()`: minreq with a timeout connects on
//! an OS thread it spawns and waits for it with `mpsc::recv_timeout`;
//! reqwest's blocking client runs tokio on an OS thread of its own and
//! parks the caller (`thread::park`) until that thread answers. Both need
//! each green thread to be a thread of its own to std, so that a wakeup
//! reaches the green thread that waits.
//!
//! The server is plain OS threads, one per connection, each answering after
//! a 300 ms sleep; every client is a green thread on the test's OS thread.

#[path = "common/identity.rs"]
mod identity;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use identity::{assert_all_on_os_thread, os_tid, Watchdog};

/// How long any one test here may run before the watchdog ends the process.
const LIMIT: Duration = Duration::from_secs(120);
/// How long the server takes to answer each request.
const DELAY: Duration = Duration::from_millis(300);

#[test]
fn identity_is_per_green_thread() {
    identity::patch_with_identity();
}

/// An HTTP/1.1 server on 127.0.0.1 of plain OS threads: one accepting, one
/// per connection. Each connection gets one answer, `hello PATH` after
/// `DELAY`, and is closed. Dropping the server stops it and joins every
/// thread.
struct SlowServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<thread::JoinHandle<Vec<thread::JoinHandle<()>>>>,
}

impl SlowServer {
    fn start() -> SlowServer {
        let stop = Arc::new(AtomicBool::new(false));
        let (addr_tx, addr_rx) = mpsc::channel();
        let acceptor = {
            let stop = stop.clone();
            // The listener is made on the plain thread that uses it.
            thread::spawn(move || {
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
                addr_tx
                    .send(listener.local_addr().expect("a bound address"))
                    .expect("the test listens");
                let mut connections = Vec::new();
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match conn {
                        Ok(stream) => connections.push(thread::spawn(move || {
                            // A client that fails is reported by its own test.
                            let _ = answer(stream);
                        })),
                        Err(e) => panic!("accept: {e}"),
                    }
                }
                connections
            })
        };
        let addr = addr_rx.recv().expect("the server reports its address");
        SlowServer {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }
}

impl Drop for SlowServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the acceptor, which then sees the stop.
        let _ = TcpStream::connect(self.addr);
        // A failure here has been reported already (by the acceptor's panic
        // or the client's); a second panic during an unwind would abort.
        if let Some(Ok(connections)) = self.acceptor.take().map(thread::JoinHandle::join) {
            for c in connections {
                let _ = c.join();
            }
        }
    }
}

/// Reads one request's head, sleeps `DELAY` and answers `hello PATH`.
fn answer(mut stream: TcpStream) -> io::Result<()> {
    // Every connection thread ends by itself, even if its client never
    // sends a request.
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = Vec::new();
    let mut buf = [0; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_owned();
    thread::sleep(DELAY);
    let body = format!("hello {path}");
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

#[test]
fn minreq_with_timeout_100_concurrent_requests_overlap_on_one_os_thread() {
    green::patch();
    let _w = Watchdog::new("minreq", LIMIT);
    const REQUESTS: usize = 100;
    let me = os_tid();
    let server = SlowServer::start();
    let start = Instant::now();
    let clients: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let url = server.url(&i.to_string());
            green::spawn(move || {
                let reply = minreq::get(url)
                    .with_timeout(10)
                    .send()
                    .map(|r| (r.status_code, r.as_str().map(str::to_owned)));
                (reply, os_tid())
            })
        })
        .collect();
    let mut tids = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let (reply, tid) = c.wait();
        let (status, body) = reply.unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(status, 200, "request {i}");
        assert_eq!(
            body.expect("a text body"),
            format!("hello {i}"),
            "request {i}"
        );
        tids.push(tid);
    }
    let elapsed = start.elapsed();
    println!("{REQUESTS} requests in {elapsed:?}");
    assert_all_on_os_thread(&tids, me);
    // Overlapped: about one DELAY, 300 ms. One at a time: 100 x 300 ms = 30
    // s; a request whose connect thread's answer did not wake it fails with
    // its 10 s timeout. 5 s is a margin of over 15x for a loaded machine.
    assert!(
        elapsed < Duration::from_secs(5),
        "{REQUESTS} requests took {elapsed:?}"
    );
    drop(server);
}

#[test]
fn reqwest_blocking_50_concurrent_requests_overlap_on_one_os_thread() {
    green::patch();
    let _w = Watchdog::new("reqwest", LIMIT);
    const REQUESTS: usize = 50;
    let me = os_tid();
    let server = SlowServer::start();
    // The default client, but never through a proxy from the environment:
    // the requests must stay on loopback.
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    let start = Instant::now();
    let clients: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let (client, url) = (client.clone(), server.url(&i.to_string()));
            green::spawn(move || {
                let reply = client
                    .get(url)
                    .send()
                    .and_then(|r| Ok((r.status().as_u16(), r.text()?)));
                (reply, os_tid())
            })
        })
        .collect();
    let mut tids = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let (reply, tid) = c.wait();
        let (status, body) = reply.unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(status, 200, "request {i}");
        assert_eq!(body, format!("hello {i}"), "request {i}");
        tids.push(tid);
    }
    let elapsed = start.elapsed();
    println!("{REQUESTS} requests in {elapsed:?}");
    assert_all_on_os_thread(&tids, me);
    // Overlapped: about one DELAY, 300 ms. One at a time: 50 x 300 ms = 15
    // s. 5 s is a margin of over 15x for a loaded machine.
    assert!(
        elapsed < Duration::from_secs(5),
        "{REQUESTS} requests took {elapsed:?}"
    );
    drop(client);
    drop(server);
}

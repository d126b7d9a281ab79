//! Unmodified third-party blocking crates under `green::patch()`: the `ureq`
//! HTTP client against a `tiny_http` server in the same process, every
//! client and every handler a green thread on the test's OS thread.
//!
//! tiny_http's own accept and connection threads are plain OS threads; its
//! handlers (`Server::recv`, `Request::respond`) and every ureq call run on
//! green threads, with no change to either crate.

use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

/// The OS thread running the caller: under `patch()` every green thread is
/// a thread of its own to std (`thread::current()` differs), so the OS
/// thread is told by its kernel id.
fn os_thread() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Concurrent requests, each with its own handler.
const REQUESTS: usize = 200;
/// How long each handler sleeps with `std::thread::sleep`.
const HANDLER_SLEEP: Duration = Duration::from_millis(200);

#[test]
fn ureq_requests_to_sleeping_tiny_http_handlers_overlap_on_one_os_thread() {
    green::patch();
    let me = os_thread();
    let server = Rc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
    let port = server.server_addr().to_ip().expect("an IP listener").port();

    // Each handler takes one request from tiny_http's queue (a std Mutex
    // and Condvar filled by tiny_http's connection threads), sleeps, and
    // answers with the path it was asked for.
    let handlers: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let server = server.clone();
            green::spawn(move || {
                let request = server.recv().expect("a request");
                thread::sleep(HANDLER_SLEEP);
                let body = format!("hello {}", request.url().trim_start_matches('/'));
                request
                    .respond(tiny_http::Response::from_string(body))
                    .expect("respond");
                os_thread()
            })
        })
        .collect();

    let start = Instant::now();
    let clients: Vec<_> = (0..REQUESTS)
        .map(|i| {
            green::spawn(move || {
                let body = ureq::get(&format!("http://127.0.0.1:{port}/{i}"))
                    .call()
                    .expect("the request succeeds")
                    .into_string()
                    .expect("a text body");
                (body, os_thread())
            })
        })
        .collect();
    for (i, client) in clients.into_iter().enumerate() {
        let (body, id) = client.wait();
        assert_eq!(body, format!("hello {i}"), "response body of request {i}");
        assert_eq!(id, me, "client {i} ran on another OS thread");
    }
    let elapsed = start.elapsed();
    for (i, handler) in handlers.into_iter().enumerate() {
        assert_eq!(handler.wait(), me, "handler {i} ran on another OS thread");
    }

    // One at a time, the handlers would take REQUESTS x 200 ms = 40 s.
    // Overlapped they take about 200 ms; 10 s leaves a margin of 50x for a
    // loaded machine and still proves they overlapped (serial: 4x more).
    assert!(elapsed >= HANDLER_SLEEP, "handlers slept: {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(10),
        "{REQUESTS} requests took {elapsed:?}: the handlers' sleeps did not overlap"
    );
}

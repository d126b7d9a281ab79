//! `green::patch::Builder` patches only the categories it is given. Every
//! test here applies the same builder (sleeps only), so they may run in
//! parallel; what `hooks_seen()` reports covers the whole binary.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[path = "common/patched.rs"]
mod patched;
use patched::kernel_nonblocking;

/// The interposers of the sleep category.
const SLEEP_HOOKS: &[&str] = &[
    "nanosleep",
    "clock_nanosleep",
    "usleep",
    "sleep",
    "sched_yield",
];

fn sleeps_only() {
    // Thread identity is not a category of calls; its own interposers
    // (pthread_create, ...) would take their path whenever a green thread
    // with an identity starts an OS thread.
    green::patch::Builder::none()
        .sleep(true)
        .thread_identity(false)
        .apply()
        .expect("patching is supported here");
}

/// Asserts that no interposer outside the sleep category has taken its
/// green path in this process.
fn assert_only_sleep_hooks_seen() {
    let others: Vec<_> = green::patch::hooks_seen()
        .into_iter()
        .filter(|h| !SLEEP_HOOKS.contains(h))
        .collect();
    assert!(
        others.is_empty(),
        "hooks outside the sleep category took their green path: {others:?}"
    );
}

#[test]
fn sleeps_only_makes_std_sleeps_on_green_threads_overlap() {
    sleeps_only();
    assert!(green::is_patched());
    let nap = Duration::from_millis(250);
    let start = Instant::now();
    let sleepers: Vec<_> = (0..4)
        .map(|_| green::spawn(move || thread::sleep(nap)))
        .collect();
    for s in sleepers {
        s.wait();
    }
    let elapsed = start.elapsed();
    // Serial: 4 x 250 ms = 1 s. Overlapped: about 250 ms; under 1 s leaves
    // a margin of 750 ms for a loaded machine.
    assert!(elapsed >= nap, "{elapsed:?}");
    assert!(elapsed < nap * 4, "the sleeps did not overlap: {elapsed:?}");
    assert!(green::patch::hooks_seen()
        .iter()
        .any(|h| *h == "nanosleep" || *h == "clock_nanosleep"));
    assert_only_sleep_hooks_seen();
}

#[test]
fn sleeps_only_leaves_sockets_blocking() -> io::Result<()> {
    sleeps_only();
    let (client, server) = green::spawn(|| -> io::Result<_> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let mut client = TcpStream::connect(listener.local_addr()?)?;
        let (mut server, _) = listener.accept()?;
        client.write_all(b"x")?;
        server.read_exact(&mut [0])?;
        Ok((client, server))
    })
    .wait()?;
    assert!(!kernel_nonblocking(client.as_raw_fd())?);
    assert!(!kernel_nonblocking(server.as_raw_fd())?);
    assert_only_sleep_hooks_seen();
    Ok(())
}

#[test]
fn sleeps_only_leaves_dns_locks_and_children_alone() {
    sleeps_only();
    green::spawn(|| {
        let addrs: Vec<_> = ("localhost", 80)
            .to_socket_addrs()
            .expect("localhost resolves")
            .collect();
        assert!(!addrs.is_empty());

        // A std Mutex held by a plain thread: the green thread's lock waits
        // in the kernel (futex is not patched), which is harmless here.
        let m = Arc::new(Mutex::new(0));
        let (locked_tx, locked_rx) = mpsc::channel();
        let holder = {
            let m = m.clone();
            thread::spawn(move || {
                let mut g = m.lock().expect("not poisoned");
                locked_tx.send(()).expect("the green thread listens");
                thread::sleep(Duration::from_millis(50));
                *g = 1;
            })
        };
        locked_rx.recv().expect("the holder locked");
        assert_eq!(*m.lock().expect("not poisoned"), 1);
        holder.join().expect("holder thread");

        let status = Command::new("true").status().expect("run true");
        assert!(status.success());
    })
    .wait();
    assert_only_sleep_hooks_seen();
}

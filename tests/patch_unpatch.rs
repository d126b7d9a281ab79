//! Nothing changes before `green::patch()` or after `green::unpatch()`: the
//! interposers pass straight through to libc.
//!
//! The states follow one another in one process (never patched, patched,
//! unpatched), so this binary holds a single test that walks through them
//! in order; tests running in parallel would see each other's switches.

use std::io::{self, Read};
use std::net::ToSocketAddrs;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

#[path = "common/patched.rs"]
mod patched;
use patched::{green_used_pair, kernel_nonblocking};

/// The OS thread running the caller: under `patch()` every green thread is
/// a thread of its own to std (`thread::current()` differs), so the OS
/// thread is told by its kernel id.
fn os_thread() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Green threads that each make one std sleep of [`NAP`].
const SLEEPERS: u32 = 4;
const NAP: Duration = Duration::from_millis(250);

/// How long `SLEEPERS` green threads on this OS thread take to each make a
/// std sleep of `NAP`.
fn std_sleeps_on_green_threads() -> Duration {
    let me = os_thread();
    let start = Instant::now();
    let sleepers: Vec<_> = (0..SLEEPERS)
        .map(|_| {
            green::spawn(|| {
                thread::sleep(NAP);
                os_thread()
            })
        })
        .collect();
    for s in sleepers {
        assert_eq!(s.wait(), me, "a sleeper ran on another OS thread");
    }
    start.elapsed()
}

/// One after another the sleeps take at least `SLEEPERS x NAP` (1 s): a
/// hard lower bound.
fn assert_serial(elapsed: Duration, when: &str) {
    assert!(
        elapsed >= NAP * SLEEPERS,
        "{when}: std sleeps on green threads overlapped ({elapsed:?}): the hook did not pass through"
    );
}

/// Overlapped they take about `NAP` (250 ms); anything under the serial
/// 1 s shows overlap, a margin of 750 ms for a loaded machine.
fn assert_overlapped(elapsed: Duration) {
    assert!(elapsed >= NAP, "slept {elapsed:?}");
    assert!(
        elapsed < NAP * SLEEPERS,
        "patched: std sleeps on green threads took {elapsed:?}: they did not overlap"
    );
}

#[test]
fn hooks_pass_through_before_patch_and_after_unpatch() -> io::Result<()> {
    // Never patched: std sleeps block the OS thread, and green threads'
    // sockets stay blocking.
    assert!(!green::is_patched());
    assert_serial(std_sleeps_on_green_threads(), "before patch()");
    let (before, _peer) = green_used_pair()?;
    assert!(!kernel_nonblocking(before.as_raw_fd())?);
    drop(before);
    assert_eq!(
        green::patch::hooks_seen(),
        Vec::<&str>::new(),
        "no interposer took its green path before patch()"
    );

    green::patch();
    assert!(green::is_patched());
    assert_overlapped(std_sleeps_on_green_threads());
    let (client, _server) = green_used_pair()?;
    assert!(kernel_nonblocking(client.as_raw_fd())?);

    green::unpatch();
    assert!(!green::is_patched());
    let seen = green::patch::hooks_seen();
    assert_serial(std_sleeps_on_green_threads(), "after unpatch()");
    // The socket green made non-blocking is blocking again, in the kernel
    // and as its owner sees it...
    assert!(!kernel_nonblocking(client.as_raw_fd())?);
    // SAFETY: F_GETFL on an open fd.
    let fl = unsafe { libc::fcntl(client.as_raw_fd(), libc::F_GETFL) };
    assert!(fl >= 0 && fl & libc::O_NONBLOCK == 0);
    // ...so a read with a timeout waits in the kernel for the timeout.
    let timeout = Duration::from_millis(100);
    client.set_read_timeout(Some(timeout))?;
    let t = Instant::now();
    let r = (&client).read(&mut [0; 8]).map_err(|e| e.kind());
    let elapsed = t.elapsed();
    assert_eq!(r.map(drop), Err(io::ErrorKind::WouldBlock));
    assert!(elapsed >= timeout, "the read gave up after {elapsed:?}");
    drop(client);
    drop(green_used_pair()?);
    // Calls whose interposers the patched phase did not reach either.
    green::spawn(|| {
        thread::yield_now();
        assert!(("localhost", 80).to_socket_addrs().is_ok());
        // SAFETY: no pointers.
        assert_eq!(unsafe { libc::usleep(1000) }, 0);
        assert!(Command::new("true").status().is_ok_and(|s| s.success()));
    })
    .wait();
    for h in ["sched_yield", "getaddrinfo", "usleep", "waitpid"] {
        assert!(!seen.contains(&h), "{h} was not called while patched");
    }
    assert_eq!(
        green::patch::hooks_seen(),
        seen,
        "no interposer took a green path it had not taken before, after unpatch()"
    );

    // Patching again works, and a Builder with nothing on patches nothing.
    green::patch();
    assert!(green::is_patched());
    assert_overlapped(std_sleeps_on_green_threads());
    green::patch::Builder::none().apply()?;
    assert!(!green::is_patched());
    assert_serial(std_sleeps_on_green_threads(), "with Builder::none()");
    Ok(())
}

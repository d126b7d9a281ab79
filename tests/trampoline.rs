//! `green::hub::trampoline` and `wait_io`: parking on fd readiness, timeouts,
//! `notify_close`, FIFO waiters, and the errors for fds that cannot be waited
//! on.

mod common;

use std::cell::RefCell;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use green::hub::{self, notify_close, trampoline, wait_io, Interest};

/// Writes into `s` (non-blocking) until its buffer is full.
fn fill(s: &mut UnixStream) -> io::Result<usize> {
    s.set_nonblocking(true)?;
    let chunk = [0u8; 4096];
    let mut total = 0;
    loop {
        match s.write(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(total),
            Err(e) => return Err(e),
        }
    }
}

/// Reads from non-blocking `s` until it would block; returns the byte count.
fn drain(s: &mut UnixStream) -> io::Result<usize> {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(total),
            Err(e) => return Err(e),
        }
    }
}

#[test]
fn readable_wakes_reader() -> io::Result<()> {
    let (mut r, mut w) = UnixStream::pair()?;
    let writer = green::spawn(move || w.write_all(b"hi"));
    trampoline(r.as_raw_fd(), Interest::Read, None)?; // the writer runs meanwhile
    let mut buf = [0; 2];
    r.read_exact(&mut buf)?;
    assert_eq!(&buf, b"hi");
    writer.wait()?;
    notify_close(r.as_raw_fd());
    Ok(())
}

#[test]
fn readable_wakes_green_reader() -> io::Result<()> {
    let (r, mut w) = UnixStream::pair()?;
    let fd = r.as_raw_fd();
    let reader = green::spawn(move || trampoline(fd, Interest::Read, None));
    green::yield_now(); // it parks: nothing to read yet
    assert!(!reader.is_finished());
    w.write_all(b"x")?;
    reader.wait()?;
    notify_close(fd);
    Ok(())
}

#[test]
fn write_from_other_os_thread_wakes_sleeping_hub() -> io::Result<()> {
    let (mut r, mut w) = UnixStream::pair()?;
    let tid = common::tid();
    let writer = std::thread::spawn(move || {
        common::wait_until_asleep_in_poller(tid);
        w.write_all(b"ping")
    });
    trampoline(r.as_raw_fd(), Interest::Read, None)?;
    let mut buf = [0; 4];
    r.read_exact(&mut buf)?;
    assert_eq!(&buf, b"ping");
    writer.join().expect("writer thread")?;
    notify_close(r.as_raw_fd());
    Ok(())
}

#[test]
fn timeout_gives_timed_out() -> io::Result<()> {
    let (a, _b) = UnixStream::pair()?;
    let timeout = Duration::from_millis(20);
    let start = Instant::now();
    let err = trampoline(a.as_raw_fd(), Interest::Read, Some(timeout)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(start.elapsed() >= timeout, "{:?}", start.elapsed());
    assert_eq!(hub::stats().fd_waiters, 0);
    assert_eq!(hub::stats().timers, 0);
    notify_close(a.as_raw_fd());
    Ok(())
}

#[test]
fn trampoline_after_data_consumed_waits_for_new_data() -> io::Result<()> {
    let (mut a, mut b) = UnixStream::pair()?;
    b.write_all(b"1")?;
    trampoline(a.as_raw_fd(), Interest::Read, Some(Duration::from_secs(10)))?;
    let mut buf = [0; 1];
    a.read_exact(&mut buf)?;
    // The cached readiness is stale now: the wait must not return at once.
    let err = trampoline(
        a.as_raw_fd(),
        Interest::Read,
        Some(Duration::from_millis(20)),
    );
    assert_eq!(err.unwrap_err().kind(), ErrorKind::TimedOut);
    b.write_all(b"2")?;
    trampoline(a.as_raw_fd(), Interest::Read, Some(Duration::from_secs(10)))?;
    notify_close(a.as_raw_fd());
    Ok(())
}

#[test]
fn notify_close_wakes_green_waiter_with_connection_aborted() -> io::Result<()> {
    let (a, _b) = UnixStream::pair()?;
    let fd = a.as_raw_fd();
    let waiter = green::spawn(move || trampoline(fd, Interest::Read, None));
    green::yield_now(); // the waiter parks on fd
    notify_close(fd);
    drop(a);
    let err = waiter.wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted);
    Ok(())
}

#[test]
fn notify_close_wakes_root_waiter() -> io::Result<()> {
    let (a, _b) = UnixStream::pair()?;
    let fd = a.as_raw_fd();
    // The root parks first; this green thread then closes the fd under it.
    let closer = green::spawn(move || {
        notify_close(fd);
        drop(a);
    });
    let err = trampoline(fd, Interest::Read, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted);
    closer.wait();
    Ok(())
}

#[test]
fn notify_close_wakes_every_waiter_and_unregisters() -> io::Result<()> {
    let before = hub::stats();
    let (mut a, _b) = UnixStream::pair()?;
    let fd = a.as_raw_fd();
    let readers: Vec<_> = (0..3)
        .map(|_| green::spawn(move || trampoline(fd, Interest::Read, None)))
        .collect();
    fill(&mut a)?;
    let writer = green::spawn(move || trampoline(fd, Interest::Write, None));
    green::yield_now();
    assert_eq!(hub::stats().fd_waiters, before.fd_waiters + 4);
    assert_eq!(hub::stats().registered_fds, before.registered_fds + 1);
    notify_close(fd);
    drop(a);
    for gt in readers.into_iter().chain([writer]) {
        assert_eq!(gt.wait().unwrap_err().kind(), ErrorKind::ConnectionAborted);
    }
    let after = hub::stats();
    assert_eq!(after.fd_waiters, before.fd_waiters);
    assert_eq!(after.registered_fds, before.registered_fds);
    Ok(())
}

#[test]
fn notify_close_lets_fd_number_be_reused() -> io::Result<()> {
    let (old, _old_peer) = UnixStream::pair()?;
    let fd = old.as_raw_fd();
    let err = trampoline(fd, Interest::Read, Some(Duration::from_millis(1))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut); // fd is now registered
    notify_close(fd);
    // Put a new socket under the same fd number (dup2 closes the old one
    // atomically, so no other test can take the number in between).
    let (new, mut new_peer) = UnixStream::pair()?;
    // SAFETY: both fds are open; `old` owns `fd` and closes it once.
    assert_eq!(unsafe { libc::dup2(new.as_raw_fd(), fd) }, fd);
    drop(new);
    let writer = green::spawn(move || new_peer.write_all(b"x"));
    trampoline(fd, Interest::Read, Some(Duration::from_secs(10)))?;
    writer.wait()?;
    notify_close(fd);
    drop(old);
    Ok(())
}

#[test]
fn waiters_wake_in_fifo_order() -> io::Result<()> {
    let (a, mut b) = UnixStream::pair()?;
    let fd = a.as_raw_fd();
    let order = Rc::new(RefCell::new(Vec::new()));
    // Spawned in a scrambled order, so FIFO is not mistaken for id order.
    let waiters: Vec<_> = [3, 0, 4, 1, 2]
        .into_iter()
        .map(|i| {
            let o = order.clone();
            green::spawn(move || {
                trampoline(fd, Interest::Read, None)?;
                o.borrow_mut().push(i);
                io::Result::Ok(())
            })
        })
        .collect();
    green::yield_now(); // all park, in spawn order
    assert_eq!(hub::stats().fd_waiters, 5);
    b.write_all(b"x")?;
    for w in waiters {
        w.wait()?;
    }
    assert_eq!(*order.borrow(), [3, 0, 4, 1, 2]);
    notify_close(fd);
    Ok(())
}

#[test]
fn writable_socket_wakes_writer_at_once() -> io::Result<()> {
    let (a, _b) = UnixStream::pair()?;
    // An empty socket is writable: the wait ends long before the timeout.
    trampoline(
        a.as_raw_fd(),
        Interest::Write,
        Some(Duration::from_secs(10)),
    )?;
    notify_close(a.as_raw_fd());
    Ok(())
}

#[test]
fn full_socket_wakes_writer_when_peer_drains() -> io::Result<()> {
    let (mut a, mut b) = UnixStream::pair()?;
    let fd = a.as_raw_fd();
    let sent = fill(&mut a)?;
    assert!(sent > 0);
    let err = trampoline(fd, Interest::Write, Some(Duration::from_millis(20))).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::TimedOut,
        "a full socket is not writable"
    );
    b.set_nonblocking(true)?;
    let drainer = green::spawn(move || drain(&mut b));
    trampoline(fd, Interest::Write, Some(Duration::from_secs(10)))?;
    assert_eq!(drainer.wait()?, sent);
    notify_close(fd);
    Ok(())
}

#[test]
fn wait_io_reads_data_written_by_another_green_thread() -> io::Result<()> {
    let (mut r, mut w) = UnixStream::pair()?;
    r.set_nonblocking(true)?;
    let writer = green::spawn(move || {
        for chunk in [&b"one"[..], b"two", b"three"] {
            w.write_all(chunk)?;
            // Park between chunks, so the reader waits more than once.
            green::sleep(Duration::from_millis(5));
        }
        io::Result::Ok(())
    });
    let fd = r.as_raw_fd();
    let mut got = Vec::new();
    let mut buf = [0; 64];
    loop {
        let n = wait_io(fd, Interest::Read, Some(Duration::from_secs(10)), || {
            r.read(&mut buf)
        })?;
        if n == 0 {
            break; // the writer finished and dropped its end
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"onetwothree");
    writer.wait()?;
    notify_close(fd);
    Ok(())
}

#[test]
fn wait_io_times_out() -> io::Result<()> {
    let (mut r, _w) = UnixStream::pair()?;
    r.set_nonblocking(true)?;
    let fd = r.as_raw_fd();
    let mut buf = [0; 8];
    let err = wait_io(fd, Interest::Read, Some(Duration::from_millis(20)), || {
        r.read(&mut buf)
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    notify_close(fd);
    Ok(())
}

#[test]
fn wait_io_returns_other_errors_unchanged() {
    let mut calls = 0;
    let err = wait_io(0, Interest::Read, None, || -> io::Result<()> {
        calls += 1;
        Err(io::Error::new(ErrorKind::InvalidData, "not would-block"))
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    assert_eq!(calls, 1);
}

#[test]
fn regular_file_gives_invalid_input() -> io::Result<()> {
    let before = hub::stats();
    let file = tempfile::tempfile()?;
    let err = trampoline(file.as_raw_fd(), Interest::Read, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(hub::stats().registered_fds, before.registered_fds);
    assert_eq!(hub::stats().fd_waiters, before.fd_waiters);
    Ok(())
}

#[test]
fn negative_fd_gives_invalid_input() {
    let err = trampoline(-1, Interest::Read, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = trampoline(RawFd::MIN, Interest::Write, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn fd_not_open_gives_ebadf() {
    // Far above any file-descriptor limit: certainly not open.
    let err = trampoline(1 << 30, Interest::Read, None).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
}

#[test]
fn fd_waiters_return_to_zero() -> io::Result<()> {
    let (a, mut b) = UnixStream::pair()?;
    let fd = a.as_raw_fd();
    // Ended by data, by timeout, and by a kill.
    let by_data = green::spawn(move || trampoline(fd, Interest::Read, None));
    let by_timeout = green::spawn(move || {
        trampoline(fd, Interest::Read, Some(Duration::from_millis(10))).unwrap_err()
    });
    let by_kill = green::spawn(move || trampoline(fd, Interest::Read, None));
    green::yield_now();
    assert_eq!(hub::stats().fd_waiters, 3);
    assert_eq!(by_timeout.wait().kind(), ErrorKind::TimedOut);
    by_kill.kill();
    b.write_all(b"x")?;
    by_data.wait()?;
    assert_eq!(hub::stats().fd_waiters, 0);
    notify_close(fd);
    Ok(())
}

#[test]
fn root_yield_loop_lets_fd_waiter_wake() -> io::Result<()> {
    let (a, mut b) = UnixStream::pair()?;
    let fd = a.as_raw_fd();
    let waiter = green::spawn(move || trampoline(fd, Interest::Read, None));
    green::yield_now(); // the waiter parks
    b.write_all(b"x")?;
    // eventlet's `while not done: sleep(0)`: each sleep(0) passes through the
    // hub, which polls. Bounded so that the bug fails instead of hanging.
    let start = Instant::now();
    while !waiter.is_finished() && start.elapsed() < Duration::from_secs(2) {
        green::yield_now();
    }
    assert!(waiter.is_finished(), "the readable fd was never polled");
    waiter.wait()?;
    notify_close(fd);
    Ok(())
}

/// Regression: an fd number registered by one hub, then closed and reused
/// on another OS thread (which told its own hub), must be watched again by
/// the first hub instead of being taken for the old, forgotten file.
#[test]
fn fd_number_reused_on_another_thread_is_registered_again() -> io::Result<()> {
    let (a, _a_peer) = UnixStream::pair()?;
    let num = a.as_raw_fd();
    // This hub registers `num` (the socket is writable at once).
    trampoline(num, Interest::Write, Some(Duration::from_secs(5)))?;
    let (fresh, mut fresh_peer) = UnixStream::pair()?;
    // Another thread closes `num` and puts another socket under the same
    // number, atomically (dup2), so no other test can take the number.
    std::thread::spawn(move || -> io::Result<()> {
        notify_close(num);
        // SAFETY: dup2 onto the number `a` owns; `a` is forgotten below, so
        // the number is closed only once, by `reused`.
        let rc = unsafe { libc::dup2(fresh.as_raw_fd(), num) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        std::mem::forget(a);
        Ok(())
    })
    .join()
    .unwrap()?;
    // SAFETY: `num` now names a dup of `fresh`, owned by nobody else.
    let reused = unsafe { <UnixStream as std::os::fd::FromRawFd>::from_raw_fd(num) };
    fresh_peer.write_all(b"x")?;
    trampoline(
        reused.as_raw_fd(),
        Interest::Read,
        Some(Duration::from_secs(10)),
    )?;
    let mut buf = [0u8; 1];
    (&reused).read_exact(&mut buf)?;
    assert_eq!(&buf, b"x");
    notify_close(num);
    Ok(())
}

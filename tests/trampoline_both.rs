//! `hub::trampoline_both`: one wait for either direction of an fd, saying
//! which is ready (eventlet's `trampoline(fd, read=True, write=True)`).

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use green::hub::{self, trampoline_both};

/// A pair whose first end has nothing to read and no room to write: its
/// writes filled the peer's queue.
fn stuck_pair() -> io::Result<(UnixStream, UnixStream)> {
    let (a, b) = UnixStream::pair()?;
    a.set_nonblocking(true)?;
    let chunk = [0u8; 4096];
    loop {
        match (&a).write(&chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok((a, b))
}

/// Reads everything the peer has queued, on a plain thread.
fn drain(mut b: UnixStream) -> io::Result<UnixStream> {
    b.set_nonblocking(true)?;
    let mut buf = [0u8; 65536];
    loop {
        match b.read(&mut buf) {
            Ok(0) => return Ok(b),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(b),
            Err(e) => return Err(e),
        }
    }
}

#[test]
fn a_fresh_socket_is_writable_at_once() -> io::Result<()> {
    let (a, _b) = UnixStream::pair()?;
    let r = trampoline_both(a.as_raw_fd(), Some(Duration::from_secs(5)))?;
    assert!(r.writable);
    assert!(!r.readable);
    Ok(())
}

/// Stuck both ways, the wait ends when the peer writes (readable), and
/// later when a plain thread drains the peer's queue (writable).
#[test]
fn it_says_which_direction_woke_it() -> io::Result<()> {
    let (a, b) = stuck_pair()?;
    let fd = a.as_raw_fd();
    let mut b2 = b.try_clone()?;
    let writer = green::spawn(move || b2.write_all(b"x"));
    let r = trampoline_both(fd, Some(Duration::from_secs(5)))?;
    writer.wait()?;
    assert!(r.readable, "{r:?}");
    assert!(!r.writable, "{r:?}");
    let mut one = [0u8; 1];
    (&a).read_exact(&mut one)?;
    // Nothing to read now, no room to write: a plain thread drains the
    // peer, which makes room.
    let t = std::thread::spawn(move || drain(b));
    let r = trampoline_both(fd, Some(Duration::from_secs(5)))?;
    assert!(r.writable, "{r:?}");
    assert!(!r.readable, "{r:?}");
    t.join().unwrap()?;
    Ok(())
}

#[test]
fn a_silent_stuck_socket_times_out() -> io::Result<()> {
    let before = hub::stats();
    let (a, _b) = stuck_pair()?;
    let err = trampoline_both(a.as_raw_fd(), Some(Duration::from_millis(20))).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert_eq!(hub::stats().fd_waiters, before.fd_waiters);
    Ok(())
}

#[test]
fn a_hang_up_counts_as_both() -> io::Result<()> {
    let (a, b) = stuck_pair()?;
    let t = std::thread::spawn(move || drop(b));
    let r = trampoline_both(a.as_raw_fd(), Some(Duration::from_secs(5)))?;
    t.join().unwrap();
    assert!(r.readable && r.writable, "{r:?}");
    Ok(())
}

#[test]
fn notify_close_from_another_thread_ends_the_wait() -> io::Result<()> {
    let (a, _b) = stuck_pair()?;
    let fd = a.as_raw_fd();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        rx.recv().unwrap();
        hub::notify_close(fd);
    });
    let waiter = green::spawn(move || trampoline_both(fd, Some(Duration::from_secs(5))));
    green::yield_now(); // it waits
    tx.send(()).unwrap();
    let err = waiter.wait().unwrap_err();
    t.join().unwrap();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    drop(a);
    Ok(())
}

/// Several green threads wait on one fd at once; one byte wakes them all,
/// and each sees it readable.
#[test]
fn several_waiters_on_one_fd_all_wake() -> io::Result<()> {
    let (a, b) = stuck_pair()?;
    let fd = a.as_raw_fd();
    let waiters: Vec<_> = (0..5)
        .map(|_| green::spawn(move || trampoline_both(fd, Some(Duration::from_secs(5)))))
        .collect();
    green::yield_now(); // they all wait
    let t = std::thread::spawn(move || (&b).write_all(b"y").map(|()| b));
    for w in waiters {
        assert!(w.wait()?.readable);
    }
    t.join().unwrap()?;
    Ok(())
}

/// On a plain OS thread the call makes the thread's hub and waits in it.
#[test]
fn from_a_plain_thread() -> io::Result<()> {
    std::thread::spawn(|| -> io::Result<()> {
        let (a, b) = stuck_pair()?;
        let t = std::thread::spawn(move || (&b).write_all(b"z").map(|()| b));
        let r = trampoline_both(a.as_raw_fd(), Some(Duration::from_secs(5)))?;
        t.join().unwrap()?;
        assert!(r.readable);
        Ok(())
    })
    .join()
    .unwrap()
}

#[test]
fn bad_fds_are_refused() {
    assert_eq!(
        trampoline_both(-1, None).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    let f = tempfile::tempfile().unwrap();
    assert_eq!(
        trampoline_both(f.as_raw_fd(), None).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
}

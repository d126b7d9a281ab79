//! Issue 13: an fd closed on another OS thread — a plain one, or one with a
//! hub of its own — wakes the green threads of every hub that wait on it,
//! with the error a close on their own hub gives, and no hub keeps a
//! registration of the closed file. The peer of each socket stays open, so
//! only the close can end the wait.

mod common;

use std::io::{self, ErrorKind, Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::Duration;

use green::hub::{self, notify_close, trampoline, Interest};

/// Bounds every wait, so that a close that never arrives fails the test
/// (with `TimedOut`) instead of hanging it; a close that works ends the
/// wait in microseconds.
const HANG_GUARD: Option<Duration> = Some(Duration::from_secs(60));

/// What the current hub holds that a close must give back.
fn held() -> (usize, usize) {
    let s = hub::stats();
    (s.registered_fds, s.fd_waiters)
}

/// Runs `close` on a new plain OS thread once this thread's hub sleeps in
/// its poller (so the close must wake it), then waits for `waiter`.
fn close_elsewhere_and_wait<T: 'static>(
    waiter: green::GreenThread<T>,
    close: impl FnOnce() + Send + 'static,
) -> T {
    let tid = common::tid();
    let closer = std::thread::spawn(move || {
        common::wait_until_asleep_in_poller(tid);
        close();
    });
    let r = waiter.wait();
    closer.join().expect("closer thread");
    r
}

/// The snippet of the issue: the close on a plain OS thread comes before
/// the waiter's hub runs its loop again.
#[test]
fn close_on_plain_thread_wakes_waiter() -> io::Result<()> {
    let before = held();
    let (a, _b) = UnixStream::pair()?;
    let fd = a.as_raw_fd();
    let w = green::spawn(move || trampoline(fd, Interest::Read, HANG_GUARD));
    green::yield_now(); // it parks on fd
    std::thread::spawn(move || {
        notify_close(fd);
        drop(a);
    })
    .join()
    .unwrap();
    let err = w.wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted);
    assert_eq!(held(), before, "the closed fd's registration is gone");
    Ok(())
}

/// The hub sleeps in its poller when the plain thread closes the fd: the
/// close must wake the poller.
#[test]
fn close_on_plain_thread_wakes_sleeping_hub() -> io::Result<()> {
    let before = held();
    let (a, _b) = UnixStream::pair()?;
    let fd = a.as_raw_fd();
    let w = green::spawn(move || trampoline(fd, Interest::Read, HANG_GUARD));
    green::yield_now();
    let r = close_elsewhere_and_wait(w, move || {
        notify_close(fd);
        drop(a);
    });
    assert_eq!(r.unwrap_err().kind(), ErrorKind::ConnectionAborted);
    assert_eq!(held(), before);
    Ok(())
}

/// A root parked in `trampoline` is woken too.
#[test]
fn close_on_plain_thread_wakes_root_waiter() -> io::Result<()> {
    let before = held();
    let (a, _b) = UnixStream::pair()?;
    let fd = a.as_raw_fd();
    let tid = common::tid();
    let closer = std::thread::spawn(move || {
        common::wait_until_asleep_in_poller(tid);
        notify_close(fd);
        drop(a);
    });
    let err = trampoline(fd, Interest::Read, HANG_GUARD).unwrap_err();
    closer.join().unwrap();
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted);
    assert_eq!(held(), before);
    Ok(())
}

/// Every waiter of the fd, both directions, wakes.
#[test]
fn close_on_plain_thread_wakes_every_waiter() -> io::Result<()> {
    let before = held();
    let (a, _b) = UnixStream::pair()?;
    let fd = a.as_raw_fd();
    // Fill the socket so that writers wait too.
    let mut w = a.try_clone()?;
    w.set_nonblocking(true)?;
    while w.write(&[0; 4096]).is_ok() {}
    drop(w);
    let waiters: Vec<_> = [Interest::Read, Interest::Read, Interest::Write]
        .into_iter()
        .map(|i| green::spawn(move || trampoline(fd, i, HANG_GUARD)))
        .collect();
    green::yield_now();
    assert_eq!(hub::stats().fd_waiters, before.1 + 3);
    std::thread::spawn(move || {
        notify_close(fd);
        drop(a);
    })
    .join()
    .unwrap();
    for w in waiters {
        assert_eq!(w.wait().unwrap_err().kind(), ErrorKind::ConnectionAborted);
    }
    assert_eq!(held(), before);
    Ok(())
}

/// The close comes from a green thread of another hub, which had the fd
/// registered too: both hubs forget it, and this one's waiter wakes.
#[test]
fn close_on_another_hub_wakes_waiter() -> io::Result<()> {
    let before = held();
    let (a, _b) = UnixStream::pair()?;
    let fd = a.as_raw_fd();
    let w = green::spawn(move || trampoline(fd, Interest::Read, HANG_GUARD));
    green::yield_now();
    let tid = common::tid();
    let other = std::thread::spawn(move || -> io::Result<()> {
        let before = held();
        green::spawn(move || -> io::Result<()> {
            // This hub registers the fd as well (writable at once).
            trampoline(fd, Interest::Write, HANG_GUARD)?;
            assert_eq!(hub::stats().registered_fds, before.0 + 1);
            common::wait_until_asleep_in_poller(tid);
            notify_close(fd);
            drop(a);
            Ok(())
        })
        .wait()?;
        assert_eq!(held(), before, "the closing hub forgot the fd");
        Ok(())
    });
    let err = w.wait().unwrap_err();
    other.join().expect("other hub's thread")?;
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted);
    assert_eq!(held(), before);
    Ok(())
}

/// Two hubs other than the closing thread's wait on one fd: both wake.
#[test]
fn close_on_plain_thread_wakes_waiters_of_two_hubs() -> io::Result<()> {
    let (a, _b) = UnixStream::pair()?;
    let fd = a.as_raw_fd();
    let (parked_tx, parked_rx) = mpsc::channel();
    let hubs: Vec<_> = (0..2)
        .map(|_| {
            let parked = parked_tx.clone();
            std::thread::spawn(
                move || -> (io::Result<()>, (usize, usize), (usize, usize)) {
                    let before = held();
                    let w = green::spawn(move || trampoline(fd, Interest::Read, HANG_GUARD));
                    green::yield_now();
                    parked.send(common::tid()).unwrap();
                    let r = w.wait();
                    (r, before, held())
                },
            )
        })
        .collect();
    for _ in 0..2 {
        common::wait_until_asleep_in_poller(parked_rx.recv().unwrap());
    }
    notify_close(fd);
    drop(a);
    for h in hubs {
        let (r, before, after) = h.join().unwrap();
        assert_eq!(r.unwrap_err().kind(), ErrorKind::ConnectionAborted);
        assert_eq!(after, before);
    }
    Ok(())
}

/// A close sent from another thread names the file it closed: a hub that
/// has registered the number again, for the file that reuses it, keeps
/// that registration and its waiter.
#[test]
fn remote_close_spares_reused_fd_number() -> io::Result<()> {
    let before = held();
    let (a, _a_peer) = UnixStream::pair()?;
    let num = a.as_raw_fd();
    // This hub registers `num` (writable at once).
    trampoline(num, Interest::Write, Some(Duration::from_secs(10)))?;
    let (fresh, mut fresh_peer) = UnixStream::pair()?;
    // Another thread closes `num` and puts another socket under the same
    // number at once (dup2), so that no other test takes the number. The
    // close reaches this hub's queue; its loop has not run since.
    std::thread::spawn(move || -> io::Result<()> {
        notify_close(num);
        // SAFETY: dup2 onto the number `a` owns; `a` is forgotten below,
        // so the number is closed only once, by `reused`.
        if unsafe { libc::dup2(fresh.as_raw_fd(), num) } < 0 {
            return Err(io::Error::last_os_error());
        }
        std::mem::forget(a);
        Ok(())
    })
    .join()
    .unwrap()?;
    // SAFETY: `num` now names a dup of `fresh`, owned by nobody else.
    let reused = unsafe { UnixStream::from_raw_fd(num) };
    // Runs after the loop has taken the close, which must leave the new
    // registration made by the trampoline below.
    let writer = green::spawn(move || fresh_peer.write_all(b"x"));
    trampoline(num, Interest::Read, Some(Duration::from_secs(60)))?;
    writer.wait()?;
    let mut buf = [0u8; 1];
    (&reused).read_exact(&mut buf)?;
    assert_eq!(&buf, b"x");
    notify_close(num);
    drop(reused);
    assert_eq!(held(), before);
    Ok(())
}

/// A read on `fd` through a `green::net::TcpStream` that does not own it
/// (the owner is dropped on another thread).
fn borrowed_tcp_read(fd: RawFd) -> io::Result<usize> {
    // SAFETY: `fd` is open and owned by a stream that outlives the read's
    // start; ManuallyDrop never closes it.
    let s = ManuallyDrop::new(unsafe { green::net::TcpStream::from_raw_fd(fd) });
    s.set_read_timeout(HANG_GUARD)?;
    (&*s).read(&mut [0; 16])
}

/// A connected green TCP pair: (client, server side).
fn tcp_pair() -> io::Result<(green::net::TcpStream, green::net::TcpStream)> {
    let listener = green::net::TcpListener::bind("127.0.0.1:0")?;
    let client = green::net::TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    Ok((client, server))
}

/// A green socket dropped on a plain OS thread (its `Drop` tells the hubs)
/// wakes a green thread reading it on this hub.
#[test]
fn green_socket_dropped_on_plain_thread_wakes_reader() -> io::Result<()> {
    let before = held();
    let (client, _server) = tcp_pair()?;
    let fd = client.as_raw_fd();
    let reader = green::spawn(move || borrowed_tcp_read(fd));
    green::yield_now(); // it parks in read
    let r = close_elsewhere_and_wait(reader, move || drop(client));
    assert_eq!(r.unwrap_err().kind(), ErrorKind::ConnectionAborted);
    assert_eq!(held(), before);
    Ok(())
}

/// The same, dropped by a green thread of another hub.
#[test]
fn green_socket_dropped_on_another_hub_wakes_reader() -> io::Result<()> {
    let before = held();
    let (client, _server) = tcp_pair()?;
    let fd = client.as_raw_fd();
    let reader = green::spawn(move || borrowed_tcp_read(fd));
    green::yield_now();
    let r = close_elsewhere_and_wait(reader, move || {
        green::spawn(move || {
            // Its hub registers the socket before dropping it.
            trampoline(client.as_raw_fd(), Interest::Write, HANG_GUARD).unwrap();
            drop(client);
        })
        .wait();
    });
    assert_eq!(r.unwrap_err().kind(), ErrorKind::ConnectionAborted);
    assert_eq!(held(), before);
    Ok(())
}

/// A green pipe's read end dropped on a plain OS thread wakes its reader.
#[test]
fn green_pipe_dropped_on_plain_thread_wakes_reader() -> io::Result<()> {
    let before = held();
    let (r, _w) = green::io::pipe()?;
    let fd = r.as_raw_fd();
    let reader = green::spawn(move || {
        // SAFETY: as in `borrowed_tcp_read`.
        let r = ManuallyDrop::new(unsafe { green::io::PipeReader::from_raw_fd(fd) });
        green::with_timeout(HANG_GUARD.unwrap(), || (&*r).read(&mut [0; 16]))
            .unwrap_or_else(|e| Err(io::Error::new(ErrorKind::TimedOut, e)))
    });
    green::yield_now();
    let res = close_elsewhere_and_wait(reader, move || drop(r));
    assert_eq!(res.unwrap_err().kind(), ErrorKind::ConnectionAborted);
    assert_eq!(held(), before);
    Ok(())
}

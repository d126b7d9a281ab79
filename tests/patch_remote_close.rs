//! Issue 13 under `green::patch()`: a std socket read on a green thread
//! parks that green thread; when another OS thread closes the fd with a
//! plain `close` (the interposer tells every hub), the read fails with
//! `EBADF` instead of hanging. The peer stays open, so only the close can
//! end the read.

mod common;

use std::io::{self, Read};
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A read on `fd` through a std `UnixStream` that never closes it.
fn borrowed_read(fd: RawFd) -> io::Result<usize> {
    // SAFETY: `fd` is open when the read starts; ManuallyDrop never closes
    // it (the closing thread does).
    let s = ManuallyDrop::new(unsafe { UnixStream::from_raw_fd(fd) });
    // A close that never arrives fails the test (EAGAIN) instead of
    // hanging it; one that works ends the read in microseconds.
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    (&*s).read(&mut [0; 16])
}

/// Parks a green thread in a std read of `fd`, lets `close` run on another
/// OS thread once this hub sleeps in its poller, and returns the read's
/// result, checking that this hub holds no more than before.
fn read_closed_elsewhere(fd: RawFd, close: impl FnOnce() + Send + 'static) -> io::Result<usize> {
    let before = green::hub::stats();
    let reader = green::spawn(move || borrowed_read(fd));
    // Until it parks in the read. It may park on the way there too (a lock
    // that another test's thread holds), so one yield is not enough.
    let deadline = Instant::now() + Duration::from_secs(10);
    while green::hub::stats().fd_waiters == before.fd_waiters {
        assert!(
            Instant::now() < deadline,
            "the std read never parked its green thread"
        );
        green::yield_now();
    }
    let tid = common::tid();
    let closer = std::thread::spawn(move || {
        common::wait_until_asleep_in_poller(tid);
        close();
    });
    let r = reader.wait();
    closer.join().expect("closer thread");
    let after = green::hub::stats();
    assert_eq!(after.fd_waiters, before.fd_waiters);
    assert_eq!(after.registered_fds, before.registered_fds);
    r
}

fn close(fd: RawFd) {
    // SAFETY: closes the fd the test gave away with `into_raw_fd`.
    assert_eq!(unsafe { libc::close(fd) }, 0);
}

#[test]
fn close_on_plain_thread_wakes_patched_std_reader() -> io::Result<()> {
    green::patch();
    let (a, _b) = UnixStream::pair()?;
    let fd = a.into_raw_fd();
    let err = read_closed_elsewhere(fd, move || close(fd)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
    Ok(())
}

#[test]
fn close_on_another_hub_wakes_patched_std_reader() -> io::Result<()> {
    green::patch();
    let (a, _b) = UnixStream::pair()?;
    let fd = a.into_raw_fd();
    let err = read_closed_elsewhere(fd, move || {
        // A green thread of the closing OS thread's hub, which has the fd
        // registered too, closes it.
        green::spawn(move || {
            green::hub::trampoline(
                fd,
                green::hub::Interest::Write,
                Some(Duration::from_secs(60)),
            )
            .unwrap();
            close(fd);
            assert_eq!(green::hub::stats().registered_fds, 0);
        })
        .wait();
    })
    .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
    Ok(())
}

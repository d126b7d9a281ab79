//! The shared core of every green fd type: an fd kept in non-blocking mode,
//! the user's view of blocking mode and timeouts, and the two I/O paths.
//!
//! Each green socket or pipe wraps its std counterpart in a [`GreenFd`].
//! The fd underneath is always `O_NONBLOCK`; what the user sees is kept
//! here:
//!
//! - in blocking mode (the default), an operation that would block parks the
//!   calling green thread through [`crate::hub::io_loop`], the one I/O
//!   chokepoint, until the fd is ready or the read/write timeout passes;
//! - after `set_nonblocking(true)`, an operation runs once and returns
//!   `WouldBlock`, as std's does.
//!
//! Dropping a `GreenFd` tells the hub first ([`crate::hub::notify_close`]),
//! so a green thread still waiting on the fd wakes with an error and a reused
//! fd number is never confused with the old one.

use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::hub::{self, Interest};

/// A timeout kept in an atomic: whole nanoseconds, 0 for none.
#[derive(Debug, Default)]
pub(crate) struct AtomicTimeout(AtomicU64);

impl AtomicTimeout {
    pub(crate) fn new(t: Option<Duration>) -> AtomicTimeout {
        let a = AtomicTimeout::default();
        a.store(t);
        a
    }

    pub(crate) fn load(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    /// Stores `t`; a duration past `u64::MAX` nanoseconds (584 years) is
    /// kept as that.
    pub(crate) fn store(&self, t: Option<Duration>) {
        let n = t.map_or(0, |t| {
            u64::try_from(t.as_nanos()).unwrap_or(u64::MAX).max(1)
        });
        self.0.store(n, Ordering::Relaxed);
    }
}

/// Checks a timeout given to `set_read_timeout` and the like, as std does.
pub(crate) fn check_timeout(t: Option<Duration>) -> io::Result<()> {
    if t == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    Ok(())
}

/// Sets or clears `O_NONBLOCK` on `fd` (one `ioctl(FIONBIO)`).
pub(crate) fn set_nonblocking_fd(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    Ok(crate::sys::io::ioctl_fionbio(fd, on)?)
}

/// Gives an operation whose read or write timeout passed `EAGAIN`
/// (`WouldBlock`), as std's timeouts give on Unix.
fn timeout_as_eagain<T>(r: io::Result<T>, timeout: Option<Duration>) -> io::Result<T> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::TimedOut && timeout.is_some() => {
            Err(io::Error::from_raw_os_error(libc::EAGAIN))
        }
        r => r,
    }
}

/// An fd of type `S`, non-blocking underneath, blocking (green) on top.
///
/// # Invariant
/// `inner`'s fd is in `O_NONBLOCK` mode for as long as it is in here.
pub(crate) struct GreenFd<S: AsFd> {
    inner: S,
    nonblocking: AtomicBool,
    read_timeout: AtomicTimeout,
    write_timeout: AtomicTimeout,
}

impl<S: AsFd> GreenFd<S> {
    /// Wraps `inner`, switching its fd to non-blocking mode.
    pub(crate) fn new(inner: S) -> io::Result<GreenFd<S>> {
        set_nonblocking_fd(inner.as_fd(), true)?;
        Ok(GreenFd::from_nonblocking(inner))
    }

    /// Wraps `inner`, whose fd is already non-blocking.
    pub(crate) fn from_nonblocking(inner: S) -> GreenFd<S> {
        GreenFd {
            inner,
            nonblocking: AtomicBool::new(false),
            read_timeout: AtomicTimeout::default(),
            write_timeout: AtomicTimeout::default(),
        }
    }

    /// Wraps `inner`, which may be in either mode, for `FromRawFd` and
    /// `From<OwnedFd>`, which cannot fail. If the fd cannot be switched to
    /// non-blocking mode (it is not open, say), every operation on it fails
    /// with that fd's own error instead.
    pub(crate) fn new_infallible(inner: S) -> GreenFd<S> {
        let _ = set_nonblocking_fd(inner.as_fd(), true);
        GreenFd::from_nonblocking(inner)
    }

    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.inner.as_fd().as_raw_fd()
    }

    /// Runs a read-side operation: once in non-blocking mode, else parking
    /// on `EAGAIN` until the read timeout. `drained` tells, from a success,
    /// whether the fd has nothing more to read right now (see
    /// [`crate::hub::io_loop`]).
    #[inline(always)]
    pub(crate) fn read_with<T>(
        &self,
        op: impl FnMut(&S) -> io::Result<T>,
        drained: impl Fn(&T) -> bool,
    ) -> io::Result<T> {
        self.io(Interest::Read, self.read_timeout.load(), op, drained)
    }

    /// Runs a write-side operation, as [`GreenFd::read_with`] does.
    #[inline(always)]
    pub(crate) fn write_with<T>(&self, op: impl FnMut(&S) -> io::Result<T>) -> io::Result<T> {
        self.io(Interest::Write, self.write_timeout.load(), op, |_| false)
    }

    /// Runs a write-side operation whose `EAGAIN` no edge on this fd will
    /// end (it waits on another socket's queue): as
    /// [`GreenFd::write_with`], but waiting through
    /// [`crate::hub::io_loop_unsignalled`].
    pub(crate) fn write_unsignalled<T>(
        &self,
        mut op: impl FnMut(&S) -> io::Result<T>,
    ) -> io::Result<T> {
        if self.nonblocking.load(Ordering::Relaxed) {
            return op(&self.inner);
        }
        let timeout = self.write_timeout.load();
        let r = hub::io_loop_unsignalled(self.fd(), Interest::Write, timeout, || op(&self.inner));
        timeout_as_eagain(r, timeout)
    }

    #[inline(always)]
    fn io<T>(
        &self,
        interest: Interest,
        timeout: Option<Duration>,
        mut op: impl FnMut(&S) -> io::Result<T>,
        drained: impl Fn(&T) -> bool,
    ) -> io::Result<T> {
        if self.nonblocking.load(Ordering::Relaxed) {
            return op(&self.inner);
        }
        let r = hub::io_loop(self.fd(), interest, timeout, || op(&self.inner), drained);
        timeout_as_eagain(r, timeout)
    }

    /// The user's blocking mode: `true` after `set_nonblocking(true)`.
    pub(crate) fn is_nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }

    pub(crate) fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
    }

    pub(crate) fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout.load()
    }

    pub(crate) fn write_timeout(&self) -> Option<Duration> {
        self.write_timeout.load()
    }

    pub(crate) fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        check_timeout(t)?;
        self.read_timeout.store(t);
        Ok(())
    }

    pub(crate) fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        check_timeout(t)?;
        self.write_timeout.store(t);
        Ok(())
    }

    /// A second `GreenFd` for `clone` (a `dup` of this fd), with this one's
    /// mode and timeouts.
    pub(crate) fn with_settings_of<T: AsFd>(&self, clone: T) -> GreenFd<T> {
        GreenFd {
            inner: clone,
            nonblocking: AtomicBool::new(self.is_nonblocking()),
            read_timeout: AtomicTimeout::new(self.read_timeout()),
            write_timeout: AtomicTimeout::new(self.write_timeout()),
        }
    }

    /// Gives back the std object: the hub forgets the fd, and the fd is put
    /// in the mode the user asked for (blocking unless `set_nonblocking`).
    pub(crate) fn into_inner(self) -> io::Result<S> {
        let fd = self.fd();
        let nonblocking = self.is_nonblocking();
        hub::notify_close(fd);
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; each field is read
        // once: `inner` is moved out, the atomics need no drop.
        let inner = unsafe { std::ptr::read(&this.inner) };
        set_nonblocking_fd(inner.as_fd(), nonblocking)?;
        Ok(inner)
    }

    /// Gives back the std object as it is (non-blocking), for conversions
    /// that cannot fail, after the hub forgets the fd.
    pub(crate) fn into_inner_raw(self) -> S {
        hub::notify_close(self.fd());
        let this = ManuallyDrop::new(self);
        // SAFETY: as in `into_inner`.
        unsafe { std::ptr::read(&this.inner) }
    }
}

impl<S: AsFd> Drop for GreenFd<S> {
    fn drop(&mut self) {
        // Before `inner` closes the fd: waiters wake, the number is forgotten.
        hub::notify_close(self.fd());
    }
}

impl<S: AsFd + fmt::Debug> fmt::Debug for GreenFd<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

/// The room `readv` gets from `bufs`: std passes it at most `UIO_MAXIOV`
/// slices, so a read that fills those is not short.
pub(crate) fn iov_len(bufs: &[std::io::IoSliceMut<'_>]) -> usize {
    let max = usize::try_from(libc::UIO_MAXIOV).unwrap_or(usize::MAX);
    bufs.iter().take(max).map(|b| b.len()).sum()
}

/// Whether a read of `n` bytes into a buffer of `len` bytes emptied the fd:
/// a short read, but not end of file (0), which no later edge would repeat.
pub(crate) fn short_read(n: usize, len: usize) -> bool {
    n > 0 && n < len
}

/// `Write` for `&$t` and `$t`, for a type whose `fd` field is a
/// [`GreenFd`]: every write goes through [`GreenFd::write_with`]; flushing
/// has nothing to do (writes are not buffered).
macro_rules! green_write {
    ($t:ty) => {
        impl ::std::io::Write for &$t {
            #[inline]
            fn write(&mut self, buf: &[u8]) -> ::std::io::Result<usize> {
                self.fd
                    .write_with(|mut w| ::std::io::Write::write(&mut w, buf))
            }

            fn write_vectored(
                &mut self,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::io::Result<usize> {
                self.fd
                    .write_with(|mut w| ::std::io::Write::write_vectored(&mut w, bufs))
            }

            fn flush(&mut self) -> ::std::io::Result<()> {
                Ok(())
            }
        }

        impl ::std::io::Write for $t {
            #[inline]
            fn write(&mut self, buf: &[u8]) -> ::std::io::Result<usize> {
                ::std::io::Write::write(&mut &*self, buf)
            }

            fn write_vectored(
                &mut self,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::io::Result<usize> {
                ::std::io::Write::write_vectored(&mut &*self, bufs)
            }

            fn flush(&mut self) -> ::std::io::Result<()> {
                Ok(())
            }
        }
    };
}

/// `Read` for `$t` by way of `Read for &$t`.
macro_rules! read_by_ref {
    ($t:ty) => {
        impl ::std::io::Read for $t {
            #[inline]
            fn read(&mut self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                ::std::io::Read::read(&mut &*self, buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::io::Result<usize> {
                ::std::io::Read::read_vectored(&mut &*self, bufs)
            }
        }
    };
}

pub(crate) use {green_write, read_by_ref};

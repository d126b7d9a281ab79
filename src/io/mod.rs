//! Traits, helpers, and type definitions for core I/O functionality: std's
//! [`std::io`], with green pipes.
//!
//! Everything here is std's own except [`pipe`], [`PipeReader`] and
//! [`PipeWriter`] (eventlet's `GreenPipe`): a read from an empty pipe or a
//! write to a full one parks only the calling green thread.
//!
//! # Examples
//! ```
//! use green::io::{Read, Write};
//!
//! let (mut r, mut w) = green::io::pipe()?;
//! let writer = green::spawn(move || -> std::io::Result<()> {
//!     // 1 MiB: far more than the pipe holds, so the writer parks in between.
//!     w.write_all(&vec![7u8; 1 << 20])
//! });
//! let mut got = Vec::new();
//! r.read_to_end(&mut got)?; // end of file once the writer is dropped
//! writer.wait()?;
//! assert_eq!(got.len(), 1 << 20);
//! # Ok::<(), std::io::Error>(())
//! ```

pub use std::io::*;

pub(crate) mod fdio;

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::process::Stdio;

use crate::io::fdio::{set_nonblocking_fd, GreenFd};
use crate::net::fd_traits;
use crate::sys;
use crate::sys::fs::{FileType, Mode, OFlags};
use crate::sys::pipe::PipeFlags;

/// Creates an anonymous pipe.
///
/// Both ends are close-on-exec and, underneath, non-blocking: a read from
/// the empty pipe or a write to the full pipe parks only the calling green
/// thread. Hand an end to a child process with [`Stdio::from`], which gives
/// the child a blocking end.
///
/// # Errors
/// The OS error from `pipe2` (`EMFILE` when out of fds).
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use std::process::Command;
///
/// let (ping_reader, mut ping_writer) = green::io::pipe()?;
/// let (mut pong_reader, pong_writer) = green::io::pipe()?;
/// let mut echo = Command::new("cat")
///     .stdin(ping_reader)
///     .stdout(pong_writer)
///     .spawn()?;
/// ping_writer.write_all(b"hello")?;
/// drop(ping_writer);
/// let mut buf = String::new();
/// pong_reader.read_to_string(&mut buf)?; // parks until `cat` writes and exits
/// assert_eq!(buf, "hello");
/// echo.wait()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn pipe() -> Result<(PipeReader, PipeWriter)> {
    let (r, w) = sys::pipe::pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
    Ok((
        PipeReader {
            fd: GreenFd::from_nonblocking(std::io::PipeReader::from(r)),
        },
        PipeWriter {
            fd: GreenFd::from_nonblocking(std::io::PipeWriter::from(w)),
        },
    ))
}

/// Read end of an anonymous pipe.
///
/// This is std's [`std::io::PipeReader`] with the same methods and trait
/// impls; a read from an empty pipe parks only the calling green thread.
///
/// # Notes
/// - The fd is non-blocking underneath. `O_NONBLOCK` belongs to the open
///   file description, which [`try_clone`](PipeReader::try_clone) shares:
///   so the ends that leave green — [`into_std`](PipeReader::into_std) and
///   [`Stdio::from`] — are opened again as a description of their own (via
///   `/proc/self/fd`), made blocking, while the clones stay non-blocking.
///   Where that is not possible (no `/proc`, or the fd is not a pipe), the
///   shared description itself is switched to blocking mode.
/// - [`into_raw_fd`](IntoRawFd::into_raw_fd) and `Into<OwnedFd>` give the
///   fd up as it is, non-blocking.
/// - Several green threads may read at once; they wait in turn.
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
///
/// let (mut r, mut w) = green::io::pipe()?;
/// green::spawn_n(move || w.write_all(b"hi").unwrap());
/// let mut buf = [0; 2];
/// r.read_exact(&mut buf)?; // parks until the writer runs
/// assert_eq!(&buf, b"hi");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct PipeReader {
    fd: GreenFd<std::io::PipeReader>,
}

/// Write end of an anonymous pipe.
///
/// This is std's [`std::io::PipeWriter`] with the same methods and trait
/// impls; a write to a full pipe parks only the calling green thread.
///
/// # Notes
/// As for [`PipeReader`]. A write after every reader is gone fails with
/// `BrokenPipe` (Rust programs ignore `SIGPIPE`).
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
///
/// let (mut r, mut w) = green::io::pipe()?;
/// let reader = green::spawn(move || {
///     let mut s = String::new();
///     r.read_to_string(&mut s).map(|_| s)
/// });
/// w.write_all(b"to the reader")?;
/// drop(w); // end of file
/// assert_eq!(reader.wait()?, "to the reader");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct PipeWriter {
    fd: GreenFd<std::io::PipeWriter>,
}

impl PipeReader {
    /// Creates a new `PipeReader` instance that shares the same underlying
    /// file description.
    ///
    /// # Errors
    /// The OS error from `dup` (`EMFILE` when out of fds).
    pub fn try_clone(&self) -> Result<PipeReader> {
        let clone = self.fd.get_ref().try_clone()?;
        Ok(PipeReader {
            fd: self.fd.with_settings_of(clone),
        })
    }

    /// Wraps a std pipe end; its fd is switched to non-blocking mode.
    ///
    /// # Errors
    /// The OS error from switching the mode.
    ///
    /// # Notes
    /// Other handles of the same description (std clones made before) see
    /// the fd non-blocking too.
    ///
    /// # Examples
    /// ```
    /// use std::io::{Read, Write};
    ///
    /// let (r, mut w) = std::io::pipe()?;
    /// let mut r = green::io::PipeReader::from_std(r)?;
    /// w.write_all(b"x")?;
    /// let mut buf = [0; 1];
    /// r.read_exact(&mut buf)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(reader: std::io::PipeReader) -> Result<PipeReader> {
        Ok(PipeReader {
            fd: GreenFd::new(reader)?,
        })
    }

    /// Unwraps a std pipe end in blocking mode (see `# Notes` on
    /// [`PipeReader`]: its clones stay non-blocking).
    ///
    /// # Errors
    /// The OS error from switching the mode.
    pub fn into_std(self) -> Result<std::io::PipeReader> {
        into_blocking(self.fd.into_inner_raw().into()).map(std::io::PipeReader::from)
    }
}

impl PipeWriter {
    /// Creates a new `PipeWriter` instance that shares the same underlying
    /// file description.
    ///
    /// # Errors
    /// The OS error from `dup` (`EMFILE` when out of fds).
    pub fn try_clone(&self) -> Result<PipeWriter> {
        let clone = self.fd.get_ref().try_clone()?;
        Ok(PipeWriter {
            fd: self.fd.with_settings_of(clone),
        })
    }

    /// Wraps a std pipe end; its fd is switched to non-blocking mode.
    ///
    /// # Errors
    /// The OS error from switching the mode.
    ///
    /// # Notes
    /// Other handles of the same description (std clones made before) see
    /// the fd non-blocking too.
    pub fn from_std(writer: std::io::PipeWriter) -> Result<PipeWriter> {
        Ok(PipeWriter {
            fd: GreenFd::new(writer)?,
        })
    }

    /// Unwraps a std pipe end in blocking mode (see `# Notes` on
    /// [`PipeReader`]: its clones stay non-blocking).
    ///
    /// # Errors
    /// The OS error from switching the mode.
    pub fn into_std(self) -> Result<std::io::PipeWriter> {
        into_blocking(self.fd.into_inner_raw().into()).map(std::io::PipeWriter::from)
    }
}

/// The pipe end `fd` in blocking mode, for std or a child process, leaving
/// the clones that green threads may still use non-blocking.
///
/// `O_NONBLOCK` lives on the open file description, which `dup`ed fds
/// share; a pipe opened again through `/proc/self/fd` is a new description
/// of the same pipe. That one is made blocking and `fd` is closed. Where
/// this cannot be done, `fd`'s own description is switched.
fn into_blocking(fd: OwnedFd) -> Result<OwnedFd> {
    if let Some(fresh) = reopen_fifo(&fd) {
        return Ok(fresh);
    }
    set_nonblocking_fd(fd.as_fd(), false)?;
    Ok(fd)
}

/// A new, blocking open file description of the pipe `fd`, if `fd` is a
/// pipe and `/proc` can open it.
fn reopen_fifo(fd: &OwnedFd) -> Option<OwnedFd> {
    let st = sys::fs::fstat(fd).ok()?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Fifo {
        return None;
    }
    let flags = sys::fs::fcntl_getfl(fd).ok()?;
    // A pipe in packet mode (O_DIRECT) keeps its fd: open cannot ask for it.
    if flags.contains(OFlags::DIRECT) {
        return None;
    }
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    // O_NONBLOCK for the open itself: opening a read end whose writers are
    // all gone would otherwise wait for a writer forever.
    let access = flags & OFlags::RWMODE;
    let fresh = sys::fs::open(
        path,
        access | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    set_nonblocking_fd(fresh.as_fd(), false).ok()?;
    Some(fresh)
}

impl Read for &PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        // No short-read hint: an end made from a foreign fd may be a
        // packet-mode pipe or a terminal, where a short read leaves more.
        self.fd.read_with(|mut r| r.read(buf), |_| false)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> Result<usize> {
        self.fd.read_with(|mut r| r.read_vectored(bufs), |_| false)
    }
}

crate::io::fdio::read_by_ref!(PipeReader);

crate::io::fdio::green_write!(PipeWriter);

impl fmt::Debug for PipeReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fd.fmt(f)
    }
}

impl fmt::Debug for PipeWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fd.fmt(f)
    }
}

impl From<PipeReader> for Stdio {
    /// Gives the read end to a child process, in blocking mode (see `#
    /// Notes` on [`PipeReader`]).
    fn from(pipe: PipeReader) -> Stdio {
        Stdio::from(child_end(pipe.fd.into_inner_raw().into()))
    }
}

impl From<PipeWriter> for Stdio {
    /// Gives the write end to a child process, in blocking mode (see `#
    /// Notes` on [`PipeReader`]).
    fn from(pipe: PipeWriter) -> Stdio {
        Stdio::from(child_end(pipe.fd.into_inner_raw().into()))
    }
}

/// [`into_blocking`] for a conversion that cannot fail: if even the shared
/// description cannot be switched (which takes a closed fd), the child gets
/// the fd as it is.
fn child_end(fd: OwnedFd) -> OwnedFd {
    match reopen_fifo(&fd) {
        Some(fresh) => fresh,
        None => {
            let _ = set_nonblocking_fd(fd.as_fd(), false);
            fd
        }
    }
}

fd_traits!(PipeReader, std::io::PipeReader);
fd_traits!(PipeWriter, std::io::PipeWriter);

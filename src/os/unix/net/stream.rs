//! `UnixStream`.

use std::fmt;
use std::io::{self, IoSliceMut, Read};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use super::{sockaddr_un, socket, SocketAddr};
use crate::hub::{self, Interest};
use crate::io::fdio::GreenFd;
use crate::net::fd_traits;
use crate::sys::{self, io::Errno, socket::RawAddr};

/// A Unix stream socket.
///
/// This is std's [`std::os::unix::net::UnixStream`] with the same stable
/// methods and trait impls; an operation that would block parks only the
/// calling green thread (or, called from a thread's root, runs its hub until
/// the socket is ready).
///
/// # Notes
/// - Read and write timeouts are deadlines of the green wait; one that
///   passes gives `WouldBlock` (`EAGAIN`), as std's do on Unix.
/// - Timeouts and the non-blocking mode belong to this handle: a
///   [`try_clone`](UnixStream::try_clone) starts with a copy of them, but
///   setting them later on one handle leaves the other as it is (std sets
///   them on the shared socket).
/// - The socket itself is always non-blocking;
///   [`into_std`](UnixStream::into_std) hands it back in the mode the user
///   asked for, [`into_raw_fd`](IntoRawFd::into_raw_fd) and `Into<OwnedFd>`
///   as it is.
/// - One green thread may read while another writes (full duplex); several
///   readers wait in turn.
/// - std's unstable methods (`peek`, `peer_cred`, `set_mark`, ancillary
///   data) are not mirrored.
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use green::os::unix::net::UnixStream;
///
/// let (mut a, mut b) = UnixStream::pair()?;
/// let echo = green::spawn(move || -> std::io::Result<()> {
///     let mut buf = [0; 4];
///     b.read_exact(&mut buf)?;
///     b.write_all(&buf)
/// });
/// a.write_all(b"ping")?;
/// let mut buf = [0; 4];
/// a.read_exact(&mut buf)?; // parks until the echo runs
/// assert_eq!(&buf, b"ping");
/// echo.wait()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixStream {
    fd: GreenFd<std::os::unix::net::UnixStream>,
}

impl UnixStream {
    /// Wraps a std stream, switching its fd to non-blocking mode.
    pub(super) fn wrap(s: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            fd: GreenFd::new(s)?,
        })
    }

    /// Connects to the socket named by `path`.
    ///
    /// # Errors
    /// `NotFound` if nothing is at `path`; `ConnectionRefused` if nothing
    /// listens there; `PermissionDenied`; `InvalidInput` if `path` is too
    /// long or holds a NUL byte.
    ///
    /// # Notes
    /// When the listener's backlog is full, the kernel gives a non-blocking
    /// connect `EAGAIN` and announces no event when room appears, so this
    /// retries after a sleep of 1 ms doubling to 64 ms, parking only the
    /// calling green thread, where std's blocking connect would wait in the
    /// kernel. Bound the wait with [`Timeout`](crate::Timeout).
    ///
    /// # Examples
    /// ```
    /// use green::os::unix::net::{UnixListener, UnixStream};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("sock");
    /// let _listener = UnixListener::bind(&path)?;
    /// let s = UnixStream::connect(&path)?;
    /// assert_eq!(s.peer_addr()?.as_pathname(), Some(path.as_path()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        UnixStream::connect_addr(&SocketAddr::from_pathname(path)?)
    }

    /// Connects to the socket specified by `address`.
    ///
    /// # Errors
    /// As [`connect`](UnixStream::connect); `InvalidInput` for an unnamed
    /// address.
    ///
    /// # Examples
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use green::os::unix::net::{SocketAddr, UnixListener, UnixStream};
    ///
    /// let name = format!("green-doc-{}", std::process::id());
    /// let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
    /// let listener = UnixListener::bind_addr(&addr)?;
    /// let _s = UnixStream::connect_addr(&listener.local_addr()?)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect_addr(socket_addr: &SocketAddr) -> io::Result<UnixStream> {
        let (raw, len) = sockaddr_un(socket_addr)?;
        let addr = RawAddr::new(raw, len);
        let fd = socket(libc::SOCK_STREAM)?;
        let connect = || loop {
            match sys::net::connect(&fd, &addr) {
                Ok(()) => return Ok(()),
                // An AF_UNIX connect completes or fails at once; an
                // interrupted one is simply made again. `EAGAIN` means the
                // backlog is full, and no event on this socket says when it
                // has room.
                Err(Errno::INTR) => {}
                Err(e) => return Err(io::Error::from(e)),
            }
        };
        hub::io_loop_unsignalled(fd.as_raw_fd(), Interest::Write, None, connect)?;
        let s = std::os::unix::net::UnixStream::from(fd);
        Ok(UnixStream {
            fd: GreenFd::from_nonblocking(s),
        })
    }

    /// Creates an unnamed pair of connected sockets.
    ///
    /// # Errors
    /// The OS error from `socketpair` (`EMFILE` when out of fds).
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::wrap(a)?, UnixStream::wrap(b)?))
    }

    /// Creates a new independently owned handle to the underlying socket.
    ///
    /// # Errors
    /// The OS error from `dup` (`EMFILE` when out of fds).
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        let clone = self.fd.get_ref().try_clone()?;
        Ok(UnixStream {
            fd: self.fd.with_settings_of(clone),
        })
    }

    /// Returns the socket address of the local half of this connection.
    ///
    /// # Errors
    /// The OS error from `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get_ref().local_addr()
    }

    /// Returns the socket address of the remote half of this connection.
    ///
    /// # Errors
    /// `NotConnected` if the socket is not connected.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get_ref().peer_addr()
    }

    /// Sets the read timeout for the socket.
    ///
    /// `None` means reads wait forever.
    ///
    /// # Errors
    /// `InvalidInput` for `Some(Duration::ZERO)`.
    ///
    /// # Examples
    /// ```
    /// use std::io::Read;
    /// use std::time::Duration;
    /// let (mut a, _b) = green::os::unix::net::UnixStream::pair()?;
    /// a.set_read_timeout(Some(Duration::from_millis(20)))?;
    /// let err = a.read(&mut [0; 8]).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.fd.set_read_timeout(timeout)
    }

    /// Sets the write timeout for the socket.
    ///
    /// # Errors
    /// `InvalidInput` for `Some(Duration::ZERO)`.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.fd.set_write_timeout(timeout)
    }

    /// Returns the read timeout of this socket.
    ///
    /// # Errors
    /// Never fails; the `Result` mirrors std.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.fd.read_timeout())
    }

    /// Returns the write timeout of this socket.
    ///
    /// # Errors
    /// Never fails; the `Result` mirrors std.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.fd.write_timeout())
    }

    /// Moves the socket into or out of nonblocking mode.
    ///
    /// In non-blocking mode an operation that cannot complete at once
    /// returns `WouldBlock` instead of parking, as with std.
    ///
    /// # Errors
    /// Never fails; the `Result` mirrors std.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.fd.set_nonblocking(nonblocking);
        Ok(())
    }

    /// Returns the value of the `SO_ERROR` option.
    ///
    /// # Errors
    /// The OS error from `getsockopt`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.fd.get_ref().take_error()
    }

    /// Shuts down the read, write, or both halves of this connection.
    ///
    /// A green thread waiting to read wakes and reads end of file after
    /// `Shutdown::Read`.
    ///
    /// # Errors
    /// `NotConnected` if the socket is not connected.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.fd.get_ref().shutdown(how)
    }

    /// Wraps a std stream; its fd is switched to non-blocking mode, and its
    /// read and write timeouts carry over.
    ///
    /// # Errors
    /// The OS error from switching the mode or reading the timeouts.
    ///
    /// # Examples
    /// ```
    /// use green::os::unix::net::UnixStream;
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let a = UnixStream::from_std(a)?;
    /// assert_eq!(a.read_timeout()?, None);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        let (r, w) = (stream.read_timeout()?, stream.write_timeout()?);
        let s = UnixStream::wrap(stream)?;
        s.fd.set_read_timeout(r)?;
        s.fd.set_write_timeout(w)?;
        Ok(s)
    }

    /// Unwraps the std stream, in blocking mode unless
    /// [`set_nonblocking(true)`](UnixStream::set_nonblocking) was called,
    /// with this stream's timeouts set on it.
    ///
    /// # Errors
    /// The OS error from switching the mode or setting the timeouts.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        let (r, w) = (self.fd.read_timeout(), self.fd.write_timeout());
        let s = self.fd.into_inner()?;
        s.set_read_timeout(r)?;
        s.set_write_timeout(w)?;
        Ok(s)
    }
}

// No short-read hint: a Unix stream read stops after a message that carried
// fds (or, with `SO_PASSCRED`, at another writer's message) while more is
// queued, and no new edge follows.
impl Read for &UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.read_with(|mut s| s.read(buf), |_| false)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.fd.read_with(|mut s| s.read_vectored(bufs), |_| false)
    }
}

crate::io::fdio::green_write!(UnixStream);
crate::io::fdio::read_by_ref!(UnixStream);

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fd.fmt(f)
    }
}

fd_traits!(UnixStream, std::os::unix::net::UnixStream);

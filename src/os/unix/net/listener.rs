//! `UnixListener` and `Incoming`.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::{SocketAddr, UnixStream};
use crate::io::fdio::GreenFd;
use crate::net::fd_traits;

/// A structure representing a Unix domain socket server.
///
/// This is std's [`std::os::unix::net::UnixListener`];
/// [`accept`](UnixListener::accept) parks only the calling green thread, and
/// several green threads may accept on one listener (they are served in
/// turn).
///
/// # Notes
/// The non-blocking mode belongs to this handle, as on
/// [`UnixStream`]. The socket itself is always non-blocking.
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use green::os::unix::net::{UnixListener, UnixStream};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("sock");
/// let listener = UnixListener::bind(&path)?;
/// let client = green::spawn(move || -> std::io::Result<String> {
///     let mut s = UnixStream::connect(path)?;
///     let mut out = String::new();
///     s.read_to_string(&mut out)?;
///     Ok(out)
/// });
/// let (mut conn, _) = listener.accept()?;
/// conn.write_all(b"hello")?;
/// drop(conn);
/// assert_eq!(client.wait()?, "hello");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixListener {
    fd: GreenFd<std::os::unix::net::UnixListener>,
}

impl UnixListener {
    /// Creates a new `UnixListener` bound to the specified socket.
    ///
    /// The backlog is std's: the kernel's maximum (`net.core.somaxconn`).
    ///
    /// # Errors
    /// `AddrInUse` if something is at `path` already; `NotFound` if its
    /// directory does not exist; `PermissionDenied`; `InvalidInput` if
    /// `path` is too long or holds a NUL byte.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::from_std(std::os::unix::net::UnixListener::bind(path)?)
    }

    /// Creates a new `UnixListener` bound to the specified socket address.
    ///
    /// # Errors
    /// As [`bind`](UnixListener::bind).
    ///
    /// # Examples
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use green::os::unix::net::{SocketAddr, UnixListener};
    ///
    /// let name = format!("green-doc-listener-{}", std::process::id());
    /// let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
    /// let listener = UnixListener::bind_addr(&addr)?;
    /// assert_eq!(listener.local_addr()?.as_abstract_name(), Some(name.as_bytes()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind_addr(socket_addr: &SocketAddr) -> io::Result<UnixListener> {
        UnixListener::from_std(std::os::unix::net::UnixListener::bind_addr(socket_addr)?)
    }

    /// Accepts a new incoming connection to this listener.
    ///
    /// Parks the calling green thread until a connection arrives. The new
    /// stream is in blocking (green) mode.
    ///
    /// # Errors
    /// `WouldBlock` in non-blocking mode when no connection is waiting;
    /// `EMFILE`/`ENFILE` when out of fds; other OS errors from `accept4`.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, addr) = self.fd.read_with(|l| l.accept(), |_| false)?;
        // An accepted socket does not inherit O_NONBLOCK.
        Ok((UnixStream::wrap(s)?, addr))
    }

    /// Creates a new independently owned handle to the underlying socket.
    ///
    /// # Errors
    /// The OS error from `dup`.
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        let clone = self.fd.get_ref().try_clone()?;
        Ok(UnixListener {
            fd: self.fd.with_settings_of(clone),
        })
    }

    /// Returns the local socket address of this listener.
    ///
    /// # Errors
    /// The OS error from `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get_ref().local_addr()
    }

    /// Moves the socket into or out of nonblocking mode.
    ///
    /// In non-blocking mode [`accept`](UnixListener::accept) returns
    /// `WouldBlock` when no connection is waiting, as with std.
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

    /// Returns an iterator over incoming connections.
    ///
    /// The iterator never returns `None`; each item is
    /// [`accept`](UnixListener::accept)'s result without the address.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// Wraps a std listener; its fd is switched to non-blocking mode.
    ///
    /// # Errors
    /// The OS error from switching the mode.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener {
            fd: GreenFd::new(listener)?,
        })
    }

    /// Unwraps the std listener, in blocking mode unless
    /// [`set_nonblocking(true)`](UnixListener::set_nonblocking) was called.
    ///
    /// # Errors
    /// The OS error from switching the mode.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        self.fd.into_inner()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fd.fmt(f)
    }
}

impl<'a> IntoIterator for &'a UnixListener {
    type Item = io::Result<UnixStream>;
    type IntoIter = Incoming<'a>;

    fn into_iter(self) -> Incoming<'a> {
        self.incoming()
    }
}

/// An iterator over incoming connections to a [`UnixListener`].
///
/// It never returns `None`. Created by [`UnixListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<UnixStream>;

    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}

fd_traits!(UnixListener, std::os::unix::net::UnixListener);

//! `UnixDatagram`.

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use super::SocketAddr;
use crate::hub;
use crate::io::fdio::GreenFd;
use crate::net::fd_traits;

type StdDatagram = std::os::unix::net::UnixDatagram;

/// A Unix datagram socket.
///
/// This is std's [`std::os::unix::net::UnixDatagram`] with the same stable
/// methods and trait impls; a receive or send that would block parks only
/// the calling green thread.
///
/// # Notes
/// - Read and write timeouts are deadlines of the green wait; one that
///   passes gives `WouldBlock` (`EAGAIN`), as std's do on Unix.
/// - Timeouts and the non-blocking mode belong to this handle, as on
///   [`UnixStream`](super::UnixStream).
/// - [`send_to`](UnixDatagram::send_to) to a socket whose receive queue is
///   full tries again after a short, growing sleep (1 ms doubling to
///   64 ms): the kernel wakes only a *connected* sender when that queue
///   drains, so there is no event to park on.
/// - std's unstable methods (`peek`, `peek_from`, `set_mark`, ancillary
///   data) are not mirrored.
///
/// # Examples
/// ```
/// use green::os::unix::net::UnixDatagram;
///
/// let (a, b) = UnixDatagram::pair()?;
/// let receiver = green::spawn(move || -> std::io::Result<Vec<u8>> {
///     let mut buf = [0; 16];
///     let n = b.recv(&mut buf)?; // parks until the datagram arrives
///     Ok(buf[..n].to_vec())
/// });
/// green::yield_now(); // the receiver parks
/// a.send(b"hello")?;
/// assert_eq!(receiver.wait()?, b"hello");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixDatagram {
    fd: GreenFd<StdDatagram>,
}

impl UnixDatagram {
    fn wrap(s: StdDatagram) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            fd: GreenFd::new(s)?,
        })
    }

    /// Creates a Unix datagram socket bound to the given path.
    ///
    /// # Errors
    /// `AddrInUse` if something is at `path` already; `NotFound` if its
    /// directory does not exist; `PermissionDenied`; `InvalidInput` if
    /// `path` is too long or holds a NUL byte.
    ///
    /// # Examples
    /// ```
    /// use green::os::unix::net::UnixDatagram;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let server = UnixDatagram::bind(dir.path().join("server"))?;
    /// let client = UnixDatagram::bind(dir.path().join("client"))?;
    /// client.send_to(b"ping", dir.path().join("server"))?;
    /// let mut buf = [0; 8];
    /// let (n, from) = server.recv_from(&mut buf)?;
    /// assert_eq!(&buf[..n], b"ping");
    /// assert_eq!(from.as_pathname(), Some(dir.path().join("client").as_path()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::wrap(StdDatagram::bind(path)?)
    }

    /// Creates a Unix datagram socket bound to an address.
    ///
    /// # Errors
    /// As [`bind`](UnixDatagram::bind).
    pub fn bind_addr(socket_addr: &SocketAddr) -> io::Result<UnixDatagram> {
        UnixDatagram::wrap(StdDatagram::bind_addr(socket_addr)?)
    }

    /// Creates a Unix Datagram socket which is not bound to any address.
    ///
    /// # Errors
    /// The OS error from `socket` (`EMFILE` when out of fds).
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::wrap(StdDatagram::unbound()?)
    }

    /// Creates an unnamed pair of connected sockets.
    ///
    /// # Errors
    /// The OS error from `socketpair` (`EMFILE` when out of fds).
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = StdDatagram::pair()?;
        Ok((UnixDatagram::wrap(a)?, UnixDatagram::wrap(b)?))
    }

    /// Connects the socket to the specified path address.
    ///
    /// [`send`](UnixDatagram::send) then sends there, and only datagrams
    /// from there are received. This never waits.
    ///
    /// # Errors
    /// `NotFound` if nothing is at `path`; `ConnectionRefused` if it is not
    /// a datagram socket; `InvalidInput` if `path` is too long or holds a
    /// NUL byte.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.fd.get_ref().connect(path)
    }

    /// Connects the socket to an address.
    ///
    /// # Errors
    /// As [`connect`](UnixDatagram::connect).
    pub fn connect_addr(&self, socket_addr: &SocketAddr) -> io::Result<()> {
        self.fd.get_ref().connect_addr(socket_addr)
    }

    /// Creates a new independently owned handle to the underlying socket.
    ///
    /// # Errors
    /// The OS error from `dup` (`EMFILE` when out of fds).
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        let clone = self.fd.get_ref().try_clone()?;
        Ok(UnixDatagram {
            fd: self.fd.with_settings_of(clone),
        })
    }

    /// Returns the address of this socket.
    ///
    /// # Errors
    /// The OS error from `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get_ref().local_addr()
    }

    /// Returns the address of this socket's peer.
    ///
    /// # Errors
    /// `NotConnected` if the socket is not connected.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get_ref().peer_addr()
    }

    /// Receives data from the socket.
    ///
    /// On success, returns the number of bytes read and the address the
    /// datagram came from. A datagram longer than `buf` is cut to fit.
    ///
    /// # Errors
    /// `WouldBlock` when the read timeout passes, or at once in
    /// non-blocking mode when nothing is queued.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let green = !self.fd.is_nonblocking();
        self.fd.read_with(
            |s| match s.recv_from(buf) {
                // What a blocking receive gives: 0 bytes, no sender.
                Err(e) if green && read_shut_down(s, &e) => {
                    SocketAddr::from_pathname("").map(|unnamed| (0, unnamed))
                }
                r => r,
            },
            |_| false,
        )
    }

    /// Receives data from the socket.
    ///
    /// On success, returns the number of bytes read.
    ///
    /// # Errors
    /// As [`recv_from`](UnixDatagram::recv_from).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let green = !self.fd.is_nonblocking();
        self.fd.read_with(
            |s| match s.recv(buf) {
                Err(e) if green && read_shut_down(s, &e) => Ok(0),
                r => r,
            },
            |_| false,
        )
    }

    /// Sends data on the socket to the specified address.
    ///
    /// On success, returns the number of bytes written.
    ///
    /// # Errors
    /// `NotFound` if nothing is at `path`; `ConnectionRefused` if the
    /// socket there is gone; `WouldBlock` when the write timeout passes, or
    /// at once in non-blocking mode while the receiver's queue is full.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let addr = SocketAddr::from_pathname(path)?;
        self.send_to_addr(buf, &addr)
    }

    /// Sends data on the socket to the specified [`SocketAddr`].
    ///
    /// # Errors
    /// As [`send_to`](UnixDatagram::send_to).
    pub fn send_to_addr(&self, buf: &[u8], socket_addr: &SocketAddr) -> io::Result<usize> {
        self.send_unconnected(|s| s.send_to_addr(buf, socket_addr))
    }

    /// Sends data on the socket to the socket's peer.
    ///
    /// The peer address may be set by the `connect` method, and this method
    /// will return an error if the socket has not already been connected.
    ///
    /// # Errors
    /// `NotConnected` if the socket is not connected; `ConnectionRefused`
    /// if the peer is gone; `WouldBlock` when the write timeout passes, or at
    /// once in non-blocking mode.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        // A connected sender is woken by the kernel when its peer's queue
        // drains: the plain green path applies.
        self.fd.write_with(|s| s.send(buf))
    }

    /// Runs a send to an address that may not be this socket's peer.
    ///
    /// When the receiver's queue is full the send fails with `EAGAIN`, and
    /// the kernel wakes only senders *connected* to the receiver when it
    /// drains. Worse, each failed send frees its buffer and so raises a
    /// write edge on this socket, which stays writable: waiting for an edge
    /// would spin. So while this socket is writable the wait between tries
    /// is a growing sleep; while it is not (its own buffer is full), it is
    /// the next write edge, bounded by the same sleep.
    fn send_unconnected(
        &self,
        op: impl FnMut(&StdDatagram) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.fd.write_unsignalled(op)
    }

    /// Sets the read timeout for the socket.
    ///
    /// `None` means receives wait forever.
    ///
    /// # Errors
    /// `InvalidInput` for `Some(Duration::ZERO)`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let sock = green::os::unix::net::UnixDatagram::unbound()?;
    /// sock.set_read_timeout(Some(Duration::from_millis(20)))?;
    /// let err = sock.recv(&mut [0; 8]).unwrap_err();
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

    /// Shut down the read, write, or both halves of this connection.
    ///
    /// After `Shutdown::Read`, a receive in blocking mode gives 0 bytes once
    /// the queue is empty (a green thread waiting to receive wakes), as
    /// std's blocking receive does; in non-blocking mode it gives
    /// `WouldBlock`.
    ///
    /// # Errors
    /// The OS error from `shutdown`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.fd.get_ref().shutdown(how)
    }

    /// Wraps a std socket; its fd is switched to non-blocking mode, and its
    /// read and write timeouts carry over.
    ///
    /// # Errors
    /// The OS error from switching the mode or reading the timeouts.
    pub fn from_std(socket: StdDatagram) -> io::Result<UnixDatagram> {
        let (r, w) = (socket.read_timeout()?, socket.write_timeout()?);
        let s = UnixDatagram::wrap(socket)?;
        s.fd.set_read_timeout(r)?;
        s.fd.set_write_timeout(w)?;
        Ok(s)
    }

    /// Unwraps the std socket, in blocking mode unless
    /// [`set_nonblocking(true)`](UnixDatagram::set_nonblocking) was called,
    /// with this socket's timeouts set on it.
    ///
    /// # Errors
    /// The OS error from switching the mode or setting the timeouts.
    pub fn into_std(self) -> io::Result<StdDatagram> {
        let (r, w) = (self.fd.read_timeout(), self.fd.write_timeout());
        let s = self.fd.into_inner()?;
        s.set_read_timeout(r)?;
        s.set_write_timeout(w)?;
        Ok(s)
    }
}

/// Whether a receive that failed with `e` did so because reads on `s` are
/// shut down.
///
/// After `shutdown(Read)` an empty datagram socket gives `EAGAIN` to a
/// non-blocking receive but end of file (0) to a blocking one, which is what
/// a green receive in blocking mode must give too. Asked only on `EAGAIN`,
/// with one `poll(2)`.
fn read_shut_down(s: &StdDatagram, e: &io::Error) -> bool {
    if e.kind() != io::ErrorKind::WouldBlock {
        return false;
    }
    hub::poll_now(s.as_raw_fd(), libc::POLLRDHUP)
        .is_ok_and(|revents| revents & libc::POLLRDHUP != 0)
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fd.fmt(f)
    }
}

fd_traits!(UnixDatagram, StdDatagram);

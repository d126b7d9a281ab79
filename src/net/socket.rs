//! `TcpSocket`: a TCP socket configured before it listens or connects.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::sys;
use super::tcp::{TcpListener, TcpStream};
use crate::io::fdio::set_nonblocking_fd;
use crate::sys::net::{self as rnet, sockopt};

/// A TCP socket that has not yet been turned into a [`TcpStream`] or a
/// [`TcpListener`]: set options on it first, then
/// [`listen`](TcpSocket::listen) or [`connect`](TcpSocket::connect).
///
/// Its main use is `SO_REUSEPORT`: several listeners, one per OS thread
/// (each with its own hub), bind the same port and the kernel spreads
/// incoming connections over them. [`green::listen`](crate::listen) does
/// that in one call.
///
/// The name and methods follow tokio's `TcpSocket`; `listen` and `connect`
/// park the calling green thread instead of returning futures.
///
/// # Examples
/// Two listeners on one port; each could be moved to its own OS thread
/// and accept there:
/// ```
/// use green::net::{SocketAddr, TcpListener, TcpSocket};
///
/// fn reuseport_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
///     let socket = TcpSocket::new_v4()?;
///     socket.set_reuseport(true)?;
///     socket.bind(addr)?;
///     socket.listen(1024)
/// }
///
/// let first = reuseport_listener("127.0.0.1:0".parse().unwrap())?;
/// let addr = first.local_addr()?;
/// let second = reuseport_listener(addr)?;
/// assert_eq!(second.local_addr()?, addr);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpSocket {
    fd: OwnedFd,
}

impl TcpSocket {
    fn new(family: libc::c_int) -> io::Result<TcpSocket> {
        Ok(TcpSocket {
            fd: sys::socket_in(family, libc::SOCK_STREAM)?,
        })
    }

    /// Creates a new IPv4 TCP socket.
    ///
    /// # Errors
    /// The OS error from `socket` (`EMFILE` when out of fds, ...).
    pub fn new_v4() -> io::Result<TcpSocket> {
        TcpSocket::new(libc::AF_INET)
    }

    /// Creates a new IPv6 TCP socket.
    ///
    /// # Errors
    /// The OS error from `socket` (`EAFNOSUPPORT` without IPv6, ...).
    pub fn new_v6() -> io::Result<TcpSocket> {
        TcpSocket::new(libc::AF_INET6)
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Allows the socket to bind to an address in use by a socket in
    /// `TIME_WAIT` (`SO_REUSEADDR`).
    ///
    /// # Errors
    /// The OS error from `setsockopt`.
    pub fn set_reuseaddr(&self, reuseaddr: bool) -> io::Result<()> {
        Ok(sockopt::set_socket_reuseaddr(&self.fd, reuseaddr)?)
    }

    /// Gets the value of `SO_REUSEADDR`.
    ///
    /// # Errors
    /// The OS error from `getsockopt`.
    pub fn reuseaddr(&self) -> io::Result<bool> {
        Ok(sockopt::socket_reuseaddr(&self.fd)?)
    }

    /// Allows several sockets of the same user to bind the same address
    /// (`SO_REUSEPORT`); the kernel spreads incoming connections over the
    /// listeners among them.
    ///
    /// Every socket that shares the port must set it before
    /// [`bind`](TcpSocket::bind).
    ///
    /// # Errors
    /// The OS error from `setsockopt`.
    pub fn set_reuseport(&self, reuseport: bool) -> io::Result<()> {
        Ok(sockopt::set_socket_reuseport(&self.fd, reuseport)?)
    }

    /// Gets the value of `SO_REUSEPORT`.
    ///
    /// # Errors
    /// The OS error from `getsockopt`.
    pub fn reuseport(&self) -> io::Result<bool> {
        Ok(sockopt::socket_reuseport(&self.fd)?)
    }

    /// Sets the size of the send buffer (`SO_SNDBUF`); the kernel doubles it
    /// for its own bookkeeping and caps it at `net.core.wmem_max`.
    ///
    /// # Errors
    /// The OS error from `setsockopt`.
    pub fn set_send_buffer_size(&self, size: u32) -> io::Result<()> {
        let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
        Ok(sockopt::set_socket_send_buffer_size(
            &self.fd,
            size as usize,
        )?)
    }

    /// Gets the size of the send buffer (`SO_SNDBUF`).
    ///
    /// # Errors
    /// The OS error from `getsockopt`.
    pub fn send_buffer_size(&self) -> io::Result<u32> {
        let n = sockopt::socket_send_buffer_size(&self.fd)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Sets the size of the receive buffer (`SO_RCVBUF`); the kernel doubles
    /// it for its own bookkeeping and caps it at `net.core.rmem_max`.
    ///
    /// # Errors
    /// The OS error from `setsockopt`.
    pub fn set_recv_buffer_size(&self, size: u32) -> io::Result<()> {
        let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
        Ok(sockopt::set_socket_recv_buffer_size(
            &self.fd,
            size as usize,
        )?)
    }

    /// Gets the size of the receive buffer (`SO_RCVBUF`).
    ///
    /// # Errors
    /// The OS error from `getsockopt`.
    pub fn recv_buffer_size(&self) -> io::Result<u32> {
        let n = sockopt::socket_recv_buffer_size(&self.fd)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Sets `SO_KEEPALIVE`.
    ///
    /// # Errors
    /// The OS error from `setsockopt`.
    pub fn set_keepalive(&self, keepalive: bool) -> io::Result<()> {
        Ok(sockopt::set_socket_keepalive(&self.fd, keepalive)?)
    }

    /// Gets the value of `SO_KEEPALIVE`.
    ///
    /// # Errors
    /// The OS error from `getsockopt`.
    pub fn keepalive(&self) -> io::Result<bool> {
        Ok(sockopt::socket_keepalive(&self.fd)?)
    }

    /// Sets `TCP_NODELAY`: small writes go out at once instead of waiting to
    /// be coalesced (Nagle's algorithm off).
    ///
    /// # Errors
    /// The OS error from `setsockopt`.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        Ok(sockopt::set_tcp_nodelay(&self.fd, nodelay)?)
    }

    /// Gets the value of `TCP_NODELAY`.
    ///
    /// # Errors
    /// The OS error from `getsockopt`.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(sockopt::tcp_nodelay(&self.fd)?)
    }

    /// Sets `SO_LINGER`: `Some(d)` makes closing wait up to `d` (whole
    /// seconds) for unsent data; `Some(Duration::ZERO)` makes closing reset
    /// the connection (an RST instead of a FIN); `None` is the default.
    ///
    /// The option stays on the stream or listener this socket becomes.
    ///
    /// # Errors
    /// The OS error from `setsockopt`.
    pub fn set_linger(&self, dur: Option<Duration>) -> io::Result<()> {
        // Whole seconds, at most `c_int::MAX`: rustix would round a
        // fraction up and refuse a larger value.
        let secs = |d: Duration| d.as_secs().min(libc::c_int::MAX as u64);
        let dur = dur.map(|d| Duration::from_secs(secs(d)));
        Ok(sockopt::set_socket_linger(&self.fd, dur)?)
    }

    /// Gets the value of `SO_LINGER`.
    ///
    /// # Errors
    /// The OS error from `getsockopt`.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        Ok(sockopt::socket_linger(&self.fd)?)
    }

    /// Binds the socket to `addr`.
    ///
    /// # Errors
    /// `AddrInUse` (another socket has the port, and not both set
    /// `SO_REUSEPORT`), `AddrNotAvailable`, `PermissionDenied`, or
    /// `InvalidInput` for an address of the other family.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        sys::bind(&self.fd, &addr)
    }

    /// Returns the local address the socket is bound to.
    ///
    /// # Errors
    /// The OS error from `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sys::from_any(Some(&rnet::getsockname(&self.fd)?))
    }

    /// Gets the value of the `SO_ERROR` option on this socket, clearing it.
    ///
    /// # Errors
    /// The OS error from `getsockopt`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(sockopt::socket_error(&self.fd)?.err().map(io::Error::from))
    }

    /// Starts listening with a queue of `backlog` pending connections (the
    /// kernel caps it at `net.core.somaxconn`) and returns the listener.
    ///
    /// An unbound socket gets a free port, as `listen(2)` gives it.
    ///
    /// # Errors
    /// The OS error from `listen` (`AddrInUse` if another socket listens on
    /// the port without `SO_REUSEPORT` on both).
    pub fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        let backlog = libc::c_int::try_from(backlog).unwrap_or(libc::c_int::MAX);
        sys::listen(&self.fd, backlog)?;
        Ok(TcpListener::from_listening(self.fd))
    }

    /// Connects to `addr`, parking the calling green thread until the
    /// connection is made or fails, and returns the stream.
    ///
    /// To bound the wait, use [`TcpStream::connect_timeout`] or wrap the
    /// call in [`green::with_timeout`](crate::with_timeout).
    ///
    /// # Errors
    /// `ConnectionRefused`, `TimedOut` (by the kernel's own retries),
    /// `NetworkUnreachable`, ...: the connection's error.
    ///
    /// # Examples
    /// ```
    /// use green::net::{TcpListener, TcpSocket};
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let socket = TcpSocket::new_v4()?;
    /// socket.set_nodelay(true)?;
    /// let stream = socket.connect(listener.local_addr()?)?;
    /// assert!(stream.nodelay()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        sys::connect(&self.fd, &addr, None)?;
        Ok(TcpStream::from(self.fd))
    }
}

impl fmt::Debug for TcpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpSocket")
            .field("fd", &self.raw())
            .finish()
    }
}

impl AsFd for TcpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for TcpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl FromRawFd for TcpSocket {
    /// Takes ownership of `fd` and switches it to non-blocking mode.
    ///
    /// # Safety
    /// `fd` must be an open TCP socket, not yet listening or connected,
    /// that nothing else owns.
    unsafe fn from_raw_fd(fd: RawFd) -> TcpSocket {
        // SAFETY: the caller passes ownership of an open socket.
        TcpSocket::from(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

impl IntoRawFd for TcpSocket {
    fn into_raw_fd(self) -> RawFd {
        self.fd.into_raw_fd()
    }
}

impl From<OwnedFd> for TcpSocket {
    /// Takes ownership of `fd` and switches it to non-blocking mode.
    fn from(fd: OwnedFd) -> TcpSocket {
        // If the mode cannot be set (the fd is not open, say), `listen` and
        // `connect` fail with that fd's own error.
        let _ = set_nonblocking_fd(fd.as_fd(), true);
        TcpSocket { fd }
    }
}

impl From<TcpSocket> for OwnedFd {
    /// Gives up the fd, in non-blocking mode.
    fn from(s: TcpSocket) -> OwnedFd {
        s.fd
    }
}

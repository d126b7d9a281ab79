//! `TcpStream`, `TcpListener` and `Incoming`.

use std::fmt;
use std::io::{self, IoSliceMut, Read};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::addr::{each_addr, ToSocketAddrs};
use super::sys;
use crate::io::fdio::{iov_len, short_read, GreenFd};
use crate::sys::net::sockopt;

/// The listen backlog of [`TcpListener::bind`]; the kernel caps it at
/// `net.core.somaxconn`.
pub(crate) const BACKLOG: libc::c_int = 4096;

/// A TCP stream between a local and a remote socket.
///
/// This is std's [`std::net::TcpStream`] with the same methods and trait
/// impls; an operation that would block parks only the calling green thread
/// (or, called from a thread's root, runs its hub until the socket is ready).
///
/// # Notes
/// - Read and write timeouts are deadlines of the green wait; one that
///   passes gives `WouldBlock` (`EAGAIN`), as std's do on Unix.
/// - Timeouts and the non-blocking mode belong to this handle: a
///   [`try_clone`](TcpStream::try_clone) starts with a copy of them, but
///   setting them later on one handle leaves the other as it is (std sets
///   them on the shared socket).
/// - The socket itself is always non-blocking; [`into_std`](TcpStream::into_std)
///   and [`into_raw_fd`](IntoRawFd::into_raw_fd) hand it back in the mode the
///   user asked for (and as it is, for `into_raw_fd` and `Into<OwnedFd>`).
/// - One green thread may read while another writes (full duplex); several
///   readers wait in turn.
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use green::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let server = green::spawn(move || -> std::io::Result<()> {
///     let (mut s, _) = listener.accept()?;
///     let mut buf = [0; 4];
///     s.read_exact(&mut buf)?;
///     s.write_all(&buf)
/// });
/// let mut c = TcpStream::connect(addr)?;
/// c.write_all(b"ping")?;
/// let mut buf = [0; 4];
/// c.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"ping");
/// server.wait()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpStream {
    fd: GreenFd<std::net::TcpStream>,
}

impl TcpStream {
    fn from_fd(fd: OwnedFd) -> TcpStream {
        TcpStream {
            fd: GreenFd::from_nonblocking(std::net::TcpStream::from(fd)),
        }
    }

    fn connect_addr(addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
        let fd = sys::socket(addr, libc::SOCK_STREAM)?;
        sys::connect(&fd, addr, timeout)?;
        Ok(TcpStream::from_fd(fd))
    }

    /// Opens a TCP connection to a remote host.
    ///
    /// Each address `addr` resolves to is tried in turn until one connects.
    ///
    /// # Errors
    /// The last address's error (`ConnectionRefused`, ...); `InvalidInput` if
    /// `addr` resolves to no address; the resolver's error.
    ///
    /// # Examples
    /// ```no_run
    /// let _stream = green::net::TcpStream::connect("127.0.0.1:8080")?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(addr, |a| TcpStream::connect_addr(a, None))
    }

    /// Opens a TCP connection to a remote host with a timeout.
    ///
    /// # Errors
    /// `InvalidInput` for a zero timeout; `TimedOut` when it passes; the
    /// connection's error otherwise.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let listener = green::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// let s = green::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    /// assert_eq!(s.peer_addr()?, addr);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        TcpStream::connect_addr(addr, Some(timeout))
    }

    /// Returns the socket address of the remote peer of this TCP connection.
    ///
    /// # Errors
    /// `NotConnected` if the socket is not connected.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get_ref().peer_addr()
    }

    /// Returns the socket address of the local half of this TCP connection.
    ///
    /// # Errors
    /// The OS error from `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get_ref().local_addr()
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

    /// Creates a new independently owned handle to the underlying socket.
    ///
    /// # Errors
    /// The OS error from `dup` (`EMFILE` when out of fds).
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        let clone = self.fd.get_ref().try_clone()?;
        Ok(TcpStream {
            fd: self.fd.with_settings_of(clone),
        })
    }

    /// Sets the read timeout to the timeout specified.
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
    /// let listener = green::net::TcpListener::bind("127.0.0.1:0")?;
    /// let mut s = green::net::TcpStream::connect(listener.local_addr()?)?;
    /// s.set_read_timeout(Some(Duration::from_millis(20)))?;
    /// let err = s.read(&mut [0; 8]).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.fd.set_read_timeout(dur)
    }

    /// Sets the write timeout to the timeout specified.
    ///
    /// # Errors
    /// `InvalidInput` for `Some(Duration::ZERO)`.
    pub fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.fd.set_write_timeout(dur)
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

    /// Receives data on the socket from the remote address to which it is
    /// connected, without removing that data from the queue.
    ///
    /// # Errors
    /// As [`Read::read`].
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.read_with(|s| s.peek(buf), |_| false)
    }

    /// Sets the value of the `TCP_NODELAY` option on this socket.
    ///
    /// # Errors
    /// The OS error from `setsockopt`.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.fd.get_ref().set_nodelay(nodelay)
    }

    /// Gets the value of the `TCP_NODELAY` option on this socket.
    ///
    /// # Errors
    /// The OS error from `getsockopt`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.fd.get_ref().nodelay()
    }

    /// Sets the value for the `IP_TTL` option on this socket.
    ///
    /// # Errors
    /// The OS error from `setsockopt`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.fd.get_ref().set_ttl(ttl)
    }

    /// Gets the value of the `IP_TTL` option for this socket.
    ///
    /// # Errors
    /// The OS error from `getsockopt`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.fd.get_ref().ttl()
    }

    /// Gets the value of the `SO_ERROR` option on this socket, clearing it.
    ///
    /// # Errors
    /// The OS error from `getsockopt`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.fd.get_ref().take_error()
    }

    /// Moves this TCP stream into or out of non-blocking mode.
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

    /// Wraps a std stream; its fd is switched to non-blocking mode, and its
    /// read and write timeouts carry over.
    ///
    /// # Errors
    /// The OS error from switching the mode or reading the timeouts.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        let (r, w) = (stream.read_timeout()?, stream.write_timeout()?);
        let s = TcpStream {
            fd: GreenFd::new(stream)?,
        };
        s.fd.set_read_timeout(r)?;
        s.fd.set_write_timeout(w)?;
        Ok(s)
    }

    /// Unwraps the std stream, in blocking mode unless
    /// [`set_nonblocking(true)`](TcpStream::set_nonblocking) was called, with
    /// this stream's timeouts set on it.
    ///
    /// # Errors
    /// The OS error from switching the mode or setting the timeouts.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        let (r, w) = (self.fd.read_timeout(), self.fd.write_timeout());
        let s = self.fd.into_inner()?;
        s.set_read_timeout(r)?;
        s.set_write_timeout(w)?;
        Ok(s)
    }
}

impl Read for &TcpStream {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        self.fd
            .read_with(|mut s| s.read(buf), |&n| short_read(n, len))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let len = iov_len(bufs);
        self.fd
            .read_with(|mut s| s.read_vectored(bufs), |&n| short_read(n, len))
    }
}

crate::io::fdio::green_write!(TcpStream);
crate::io::fdio::read_by_ref!(TcpStream);

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fd.fmt(f)
    }
}

/// A TCP socket server, listening for connections.
///
/// This is std's [`std::net::TcpListener`]; [`accept`](TcpListener::accept)
/// parks only the calling green thread, and several green threads may
/// accept on one listener (they are served in turn).
///
/// # Notes
/// The backlog is the kernel's maximum (`net.core.somaxconn`), not std's 128,
/// since a green server accepts in bursts. `SO_REUSEADDR` is set, as std does.
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use green::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let client = green::spawn(move || -> std::io::Result<String> {
///     let mut s = TcpStream::connect(addr)?;
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
pub struct TcpListener {
    fd: GreenFd<std::net::TcpListener>,
}

impl TcpListener {
    /// Creates a new `TcpListener` bound to the specified address.
    ///
    /// Port 0 asks the OS for a free port; see
    /// [`local_addr`](TcpListener::local_addr).
    ///
    /// # Errors
    /// `AddrInUse`, `AddrNotAvailable`, `PermissionDenied`, ... from the last
    /// address tried; `InvalidInput` if `addr` resolves to no address.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(addr, |a| TcpListener::bind_addr(a, false))
    }

    /// Binds and listens on `addr`, with `SO_REUSEPORT` when asked.
    pub(crate) fn bind_addr(addr: &SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
        let fd = sys::socket(addr, libc::SOCK_STREAM)?;
        sockopt::set_socket_reuseaddr(&fd, true)?;
        if reuse_port {
            sockopt::set_socket_reuseport(&fd, true)?;
        }
        sys::bind(&fd, addr)?;
        sys::listen(&fd, BACKLOG)?;
        Ok(TcpListener::from_listening(fd))
    }

    /// Wraps a bound, listening, non-blocking socket.
    pub(crate) fn from_listening(fd: OwnedFd) -> TcpListener {
        TcpListener {
            fd: GreenFd::from_nonblocking(std::net::TcpListener::from(fd)),
        }
    }

    /// Returns the local socket address of this listener.
    ///
    /// # Errors
    /// The OS error from `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get_ref().local_addr()
    }

    /// Creates a new independently owned handle to the underlying socket.
    ///
    /// # Errors
    /// The OS error from `dup`.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        let clone = self.fd.get_ref().try_clone()?;
        Ok(TcpListener {
            fd: self.fd.with_settings_of(clone),
        })
    }

    /// Accept a new incoming connection from this listener.
    ///
    /// Parks the calling green thread until a connection arrives. The new
    /// stream is in blocking (green) mode.
    ///
    /// # Errors
    /// `WouldBlock` in non-blocking mode when no connection is waiting;
    /// `EMFILE`/`ENFILE` when out of fds; other OS errors from `accept4`.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, addr) = self.fd.read_with(|l| sys::accept(l.as_fd()), |_| false)?;
        Ok((TcpStream::from_fd(fd), addr))
    }

    /// Returns an iterator over the connections being received on this
    /// listener.
    ///
    /// The iterator never returns `None`; each item is
    /// [`accept`](TcpListener::accept)'s result without the address.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// Sets the value for the `IP_TTL` option on this socket.
    ///
    /// # Errors
    /// The OS error from `setsockopt`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.fd.get_ref().set_ttl(ttl)
    }

    /// Gets the value of the `IP_TTL` option for this socket.
    ///
    /// # Errors
    /// The OS error from `getsockopt`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.fd.get_ref().ttl()
    }

    /// Sets the value of the `IPV6_V6ONLY` option on this socket.
    ///
    /// Deprecated as in std: the option only takes effect before the
    /// socket is bound, and a listener is always bound.
    ///
    /// # Errors
    /// The OS error from `setsockopt`, as std's: on Linux, `InvalidInput`
    /// (`EINVAL`) on a bound IPv6 socket, and `ENOPROTOOPT` on an IPv4 one.
    #[deprecated(
        since = "1.16.0",
        note = "this option can only be set before the socket is bound"
    )]
    pub fn set_only_v6(&self, only_v6: bool) -> io::Result<()> {
        #[allow(deprecated)]
        self.fd.get_ref().set_only_v6(only_v6)
    }

    /// Gets the value of the `IPV6_V6ONLY` option on this socket.
    ///
    /// Deprecated as in std, along with
    /// [`set_only_v6`](TcpListener::set_only_v6).
    ///
    /// # Errors
    /// The OS error from `getsockopt`, as std's: on Linux, `Unsupported`
    /// (`EOPNOTSUPP`) on an IPv4 socket.
    #[deprecated(
        since = "1.16.0",
        note = "this option can only be set before the socket is bound"
    )]
    pub fn only_v6(&self) -> io::Result<bool> {
        #[allow(deprecated)]
        self.fd.get_ref().only_v6()
    }

    /// Gets the value of the `SO_ERROR` option on this socket, clearing it.
    ///
    /// # Errors
    /// The OS error from `getsockopt`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.fd.get_ref().take_error()
    }

    /// Moves this TCP listener into or out of non-blocking mode.
    ///
    /// # Errors
    /// Never fails; the `Result` mirrors std.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.fd.set_nonblocking(nonblocking);
        Ok(())
    }

    /// Wraps a std listener; its fd is switched to non-blocking mode.
    ///
    /// # Errors
    /// The OS error from switching the mode.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            fd: GreenFd::new(listener)?,
        })
    }

    /// Unwraps the std listener, in blocking mode unless
    /// [`set_nonblocking(true)`](TcpListener::set_nonblocking) was called.
    ///
    /// # Errors
    /// The OS error from switching the mode.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        self.fd.into_inner()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fd.fmt(f)
    }
}

/// An iterator that infinitely [`accept`](TcpListener::accept)s connections
/// on a [`TcpListener`].
///
/// Created by [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl std::iter::FusedIterator for Incoming<'_> {}

macro_rules! fd_traits {
    ($t:ident, $std:ty) => {
        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.fd.get_ref().as_fd()
            }
        }

        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.fd.fd()
            }
        }

        impl FromRawFd for $t {
            /// Takes ownership of `fd` and switches it to non-blocking mode.
            ///
            /// # Safety
            /// `fd` must be an open fd of the kind this type wraps, which
            /// nothing else owns.
            unsafe fn from_raw_fd(fd: RawFd) -> $t {
                // SAFETY: the caller passes ownership of an open fd.
                $t::from(unsafe { OwnedFd::from_raw_fd(fd) })
            }
        }

        impl IntoRawFd for $t {
            fn into_raw_fd(self) -> RawFd {
                self.fd.into_inner_raw().into_raw_fd()
            }
        }

        impl From<OwnedFd> for $t {
            /// Takes ownership of `fd` and switches it to non-blocking mode.
            fn from(fd: OwnedFd) -> $t {
                $t {
                    fd: GreenFd::new_infallible(<$std>::from(fd)),
                }
            }
        }

        impl From<$t> for OwnedFd {
            /// Gives up the fd, still in non-blocking mode.
            fn from(s: $t) -> OwnedFd {
                s.fd.into_inner_raw().into()
            }
        }
    };
}

pub(crate) use fd_traits;

fd_traits!(TcpStream, std::net::TcpStream);
fd_traits!(TcpListener, std::net::TcpListener);

//! `UdpSocket`.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::addr::{each_addr, ToSocketAddrs};
use super::sys;
use super::tcp::fd_traits;
use crate::io::fdio::GreenFd;

/// A UDP socket.
///
/// This is std's [`std::net::UdpSocket`] with the same methods and trait
/// impls; an operation that would block parks only the calling green thread
/// (or, called from a thread's root, runs its hub until the socket is ready).
///
/// # Notes
/// - Read and write timeouts are deadlines of the green wait; one that
///   passes gives `WouldBlock` (`EAGAIN`), as std's do on Unix.
/// - Timeouts and the non-blocking mode belong to this handle: a
///   [`try_clone`](UdpSocket::try_clone) starts with a copy of them, but
///   setting them later on one handle leaves the other as it is (std sets
///   them on the shared socket).
/// - The socket itself is always non-blocking; [`into_std`](UdpSocket::into_std)
///   and [`into_raw_fd`](IntoRawFd::into_raw_fd) hand it back in the mode the
///   user asked for (and as it is, for `into_raw_fd` and `Into<OwnedFd>`).
/// - Several green threads may receive on one socket: each datagram goes to
///   one of them, in the order they started waiting.
///
/// # Examples
/// ```
/// use green::net::UdpSocket;
///
/// let a = UdpSocket::bind("127.0.0.1:0")?;
/// let b = UdpSocket::bind("127.0.0.1:0")?;
/// let b_addr = b.local_addr()?;
/// let echo = green::spawn(move || -> std::io::Result<()> {
///     let mut buf = [0; 16];
///     let (n, from) = b.recv_from(&mut buf)?;
///     b.send_to(&buf[..n], from)?;
///     Ok(())
/// });
/// a.send_to(b"ping", b_addr)?;
/// let mut buf = [0; 16];
/// let (n, from) = a.recv_from(&mut buf)?;
/// assert_eq!((&buf[..n], from), (&b"ping"[..], b_addr));
/// echo.wait()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UdpSocket {
    fd: GreenFd<std::net::UdpSocket>,
}

impl UdpSocket {
    fn bind_addr(addr: &SocketAddr) -> io::Result<UdpSocket> {
        let fd = sys::socket(addr, libc::SOCK_DGRAM)?;
        sys::bind(&fd, addr)?;
        Ok(UdpSocket {
            fd: GreenFd::from_nonblocking(std::net::UdpSocket::from(fd)),
        })
    }

    /// Creates a UDP socket from the given address.
    ///
    /// Each address `addr` resolves to is tried in turn until one binds.
    /// Port 0 asks the OS for a free port; see
    /// [`local_addr`](UdpSocket::local_addr).
    ///
    /// # Errors
    /// `AddrInUse`, `AddrNotAvailable`, `PermissionDenied`, ... from the last
    /// address tried; `InvalidInput` if `addr` resolves to no address; the
    /// resolver's error.
    ///
    /// # Examples
    /// ```
    /// let socket = green::net::UdpSocket::bind("127.0.0.1:0")?;
    /// assert!(socket.local_addr()?.ip().is_loopback());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(addr, UdpSocket::bind_addr)
    }

    /// Receives a single datagram message on the socket. On success, returns
    /// the number of bytes read and the origin.
    ///
    /// A datagram longer than `buf` is truncated: the rest is lost.
    ///
    /// # Errors
    /// `WouldBlock` when the read timeout passes, or at once in non-blocking
    /// mode; an error queued by the kernel (`ConnectionRefused` after an
    /// ICMP port unreachable, ...).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        // One datagram per call: a short read says nothing about what else
        // is queued, so it is never taken as "drained".
        self.fd.read_with(|s| s.recv_from(buf), |_| false)
    }

    /// Receives a single datagram message on the socket, without removing it
    /// from the queue. On success, returns the number of bytes read and the
    /// origin.
    ///
    /// # Errors
    /// As [`recv_from`](UdpSocket::recv_from).
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.fd.read_with(|s| s.peek_from(buf), |_| false)
    }

    /// Sends data on the socket to the given address. On success, returns the
    /// number of bytes written.
    ///
    /// `addr` is resolved and the datagram goes to the first address, as
    /// with std. The operating system may refuse buffers larger than 65507
    /// bytes.
    ///
    /// # Errors
    /// `InvalidInput` if `addr` resolves to no address; the resolver's
    /// error; `WouldBlock` when the write timeout passes; the OS error of
    /// `sendto`.
    ///
    /// # Examples
    /// ```
    /// let socket = green::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let n = socket.send_to(b"hello", socket.local_addr()?)?;
    /// assert_eq!(n, 5);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        match addr.to_socket_addrs()?.next() {
            Some(addr) => self.fd.write_with(|s| s.send_to(buf, addr)),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no addresses to send data to",
            )),
        }
    }

    /// Returns the socket address of the remote peer this socket was
    /// connected to.
    ///
    /// # Errors
    /// `NotConnected` if the socket is not connected.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get_ref().peer_addr()
    }

    /// Returns the socket address that this socket was created from.
    ///
    /// # Errors
    /// The OS error from `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get_ref().local_addr()
    }

    /// Creates a new independently owned handle to the underlying socket.
    ///
    /// # Errors
    /// The OS error from `dup` (`EMFILE` when out of fds).
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        let clone = self.fd.get_ref().try_clone()?;
        Ok(UdpSocket {
            fd: self.fd.with_settings_of(clone),
        })
    }

    /// Sets the read timeout to the timeout specified.
    ///
    /// `None` means receives wait forever.
    ///
    /// # Errors
    /// `InvalidInput` for `Some(Duration::ZERO)`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let socket = green::net::UdpSocket::bind("127.0.0.1:0")?;
    /// socket.set_read_timeout(Some(Duration::from_millis(20)))?;
    /// let err = socket.recv_from(&mut [0; 8]).unwrap_err();
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

    /// Sets the value of the `SO_BROADCAST` option for this socket.
    ///
    /// # Errors
    /// The OS error from `setsockopt`.
    pub fn set_broadcast(&self, broadcast: bool) -> io::Result<()> {
        self.fd.get_ref().set_broadcast(broadcast)
    }

    /// Gets the value of the `SO_BROADCAST` option for this socket.
    ///
    /// # Errors
    /// The OS error from `getsockopt`.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.fd.get_ref().broadcast()
    }

    /// Sets the value of the `IP_MULTICAST_LOOP` option for this socket.
    ///
    /// # Errors
    /// The OS error from `setsockopt`.
    pub fn set_multicast_loop_v4(&self, multicast_loop_v4: bool) -> io::Result<()> {
        self.fd.get_ref().set_multicast_loop_v4(multicast_loop_v4)
    }

    /// Gets the value of the `IP_MULTICAST_LOOP` option for this socket.
    ///
    /// # Errors
    /// The OS error from `getsockopt`.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.fd.get_ref().multicast_loop_v4()
    }

    /// Sets the value of the `IP_MULTICAST_TTL` option for this socket.
    ///
    /// # Errors
    /// The OS error from `setsockopt`.
    pub fn set_multicast_ttl_v4(&self, multicast_ttl_v4: u32) -> io::Result<()> {
        self.fd.get_ref().set_multicast_ttl_v4(multicast_ttl_v4)
    }

    /// Gets the value of the `IP_MULTICAST_TTL` option for this socket.
    ///
    /// # Errors
    /// The OS error from `getsockopt`.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.fd.get_ref().multicast_ttl_v4()
    }

    /// Sets the value of the `IPV6_MULTICAST_LOOP` option for this socket.
    ///
    /// # Errors
    /// The OS error from `setsockopt` (an IPv4 socket refuses it).
    pub fn set_multicast_loop_v6(&self, multicast_loop_v6: bool) -> io::Result<()> {
        self.fd.get_ref().set_multicast_loop_v6(multicast_loop_v6)
    }

    /// Gets the value of the `IPV6_MULTICAST_LOOP` option for this socket.
    ///
    /// # Errors
    /// The OS error from `getsockopt`.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.fd.get_ref().multicast_loop_v6()
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

    /// Executes an operation of the `IP_ADD_MEMBERSHIP` type.
    ///
    /// Joins the multicast group `multiaddr` on the interface whose address
    /// is `interface` (`0.0.0.0` lets the OS choose).
    ///
    /// # Errors
    /// The OS error from `setsockopt` (`ENODEV` if no interface fits, ...).
    pub fn join_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.fd.get_ref().join_multicast_v4(multiaddr, interface)
    }

    /// Executes an operation of the `IPV6_ADD_MEMBERSHIP` type.
    ///
    /// Joins the multicast group `multiaddr` on the interface of index
    /// `interface` (0 lets the OS choose).
    ///
    /// # Errors
    /// The OS error from `setsockopt`.
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.fd.get_ref().join_multicast_v6(multiaddr, interface)
    }

    /// Executes an operation of the `IP_DROP_MEMBERSHIP` type.
    ///
    /// # Errors
    /// The OS error from `setsockopt` (`EADDRNOTAVAIL` for a group not
    /// joined).
    pub fn leave_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.fd.get_ref().leave_multicast_v4(multiaddr, interface)
    }

    /// Executes an operation of the `IPV6_DROP_MEMBERSHIP` type.
    ///
    /// # Errors
    /// The OS error from `setsockopt`.
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.fd.get_ref().leave_multicast_v6(multiaddr, interface)
    }

    /// Gets the value of the `SO_ERROR` option on this socket, clearing it.
    ///
    /// # Errors
    /// The OS error from `getsockopt`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.fd.get_ref().take_error()
    }

    /// Connects this UDP socket to a remote address, allowing the `send` and
    /// `recv` syscalls to be used to send data and also applies filters to
    /// only receive data from the specified address.
    ///
    /// Each address `addr` resolves to is tried in turn until one succeeds,
    /// as with std. Connecting a UDP socket sends nothing and never waits.
    ///
    /// # Errors
    /// The last address's error; `InvalidInput` if `addr` resolves to no
    /// address; the resolver's error.
    ///
    /// # Examples
    /// ```
    /// use green::net::UdpSocket;
    /// let a = UdpSocket::bind("127.0.0.1:0")?;
    /// let b = UdpSocket::bind("127.0.0.1:0")?;
    /// a.connect(b.local_addr()?)?;
    /// b.connect(a.local_addr()?)?;
    /// a.send(b"hi")?;
    /// let mut buf = [0; 2];
    /// assert_eq!(b.recv(&mut buf)?, 2);
    /// assert_eq!(&buf, b"hi");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |a| self.fd.get_ref().connect(a))
    }

    /// Sends data on the socket to the remote address to which it is
    /// connected. On success, returns the number of bytes written.
    ///
    /// # Errors
    /// `WouldBlock` when the write timeout passes; `ConnectionRefused` when
    /// an earlier datagram was refused by the peer's host; the OS error of
    /// `send` (the socket is not connected, ...).
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.fd.write_with(|s| s.send(buf))
    }

    /// Receives a single datagram message on the socket from the remote
    /// address to which it is connected. On success, returns the number of
    /// bytes read.
    ///
    /// # Errors
    /// As [`recv_from`](UdpSocket::recv_from).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.read_with(|s| s.recv(buf), |_| false)
    }

    /// Receives single datagram on the socket from the remote address to
    /// which it is connected, without removing the message from input queue.
    /// On success, returns the number of bytes peeked.
    ///
    /// # Errors
    /// As [`recv_from`](UdpSocket::recv_from).
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd.read_with(|s| s.peek(buf), |_| false)
    }

    /// Moves this UDP socket into or out of nonblocking mode.
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

    /// Wraps a std socket; its fd is switched to non-blocking mode, and its
    /// read and write timeouts carry over.
    ///
    /// # Errors
    /// The OS error from switching the mode or reading the timeouts.
    ///
    /// # Examples
    /// ```
    /// let std_socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let addr = std_socket.local_addr()?;
    /// let socket = green::net::UdpSocket::from_std(std_socket)?;
    /// assert_eq!(socket.local_addr()?, addr);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        let (r, w) = (socket.read_timeout()?, socket.write_timeout()?);
        let s = UdpSocket {
            fd: GreenFd::new(socket)?,
        };
        s.fd.set_read_timeout(r)?;
        s.fd.set_write_timeout(w)?;
        Ok(s)
    }

    /// Unwraps the std socket, in blocking mode unless
    /// [`set_nonblocking(true)`](UdpSocket::set_nonblocking) was called, with
    /// this socket's timeouts set on it.
    ///
    /// # Errors
    /// The OS error from switching the mode or setting the timeouts.
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        let (r, w) = (self.fd.read_timeout(), self.fd.write_timeout());
        let s = self.fd.into_inner()?;
        s.set_read_timeout(r)?;
        s.set_write_timeout(w)?;
        Ok(s)
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fd.fmt(f)
    }
}

fd_traits!(UdpSocket, std::net::UdpSocket);

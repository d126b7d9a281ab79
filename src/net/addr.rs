//! `ToSocketAddrs`, with name resolution that never blocks the hub.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::{iter, option, slice, vec};

use crate::tpool;

/// A trait for objects which can be converted or resolved to one or more
/// [`SocketAddr`] values.
///
/// This is std's [`std::net::ToSocketAddrs`], implemented for the same types,
/// and every green constructor that takes an address (`TcpStream::connect`,
/// `TcpListener::bind`, `UdpSocket::send_to`, ...) takes this trait.
///
/// # Notes
/// A host name is resolved by the system resolver (`getaddrinfo`, so
/// `/etc/hosts`, nsswitch and the rest behave as with std) on a
/// [`tpool`](crate::tpool) thread: the calling green thread parks, the hub
/// runs the others. Literal addresses (`"127.0.0.1:80"`, `("::1", 80)`)
/// are parsed in place, without a pool round trip.
///
/// # Examples
/// ```
/// use green::net::{SocketAddr, ToSocketAddrs};
///
/// let addrs: Vec<SocketAddr> = ("localhost", 8080).to_socket_addrs()?.collect();
/// assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 8080));
///
/// let mut literal = "127.0.0.1:80".to_socket_addrs()?;
/// assert_eq!(literal.next(), Some(SocketAddr::from(([127, 0, 0, 1], 80))));
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait ToSocketAddrs {
    /// Returned iterator over socket addresses which this type may correspond to.
    type Iter: Iterator<Item = SocketAddr>;

    /// Converts this object to an iterator of resolved [`SocketAddr`]s.
    ///
    /// # Errors
    /// `InvalidInput` for a string that is not `host:port`; the resolver's
    /// error for a name that does not resolve.
    fn to_socket_addrs(&self) -> io::Result<Self::Iter>;
}

/// Resolves through std on a pool thread: `getaddrinfo` may block for as
/// long as DNS takes.
fn resolve<A>(a: &A) -> io::Result<vec::IntoIter<SocketAddr>>
where
    A: std::net::ToSocketAddrs + Sync + ?Sized,
{
    let v: Vec<SocketAddr> = tpool::execute(|| a.to_socket_addrs().map(Iterator::collect))?;
    Ok(v.into_iter())
}

impl ToSocketAddrs for SocketAddr {
    type Iter = option::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        Ok(Some(*self).into_iter())
    }
}

impl ToSocketAddrs for SocketAddrV4 {
    type Iter = option::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        SocketAddr::V4(*self).to_socket_addrs()
    }
}

impl ToSocketAddrs for SocketAddrV6 {
    type Iter = option::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        SocketAddr::V6(*self).to_socket_addrs()
    }
}

impl ToSocketAddrs for (IpAddr, u16) {
    type Iter = option::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        SocketAddr::new(self.0, self.1).to_socket_addrs()
    }
}

impl ToSocketAddrs for (Ipv4Addr, u16) {
    type Iter = option::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        SocketAddrV4::new(self.0, self.1).to_socket_addrs()
    }
}

impl ToSocketAddrs for (Ipv6Addr, u16) {
    type Iter = option::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        SocketAddrV6::new(self.0, self.1, 0, 0).to_socket_addrs()
    }
}

impl ToSocketAddrs for (&str, u16) {
    type Iter = vec::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        let (host, port) = *self;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)].into_iter());
        }
        resolve(self)
    }
}

impl ToSocketAddrs for (String, u16) {
    type Iter = vec::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        (&*self.0, self.1).to_socket_addrs()
    }
}

impl ToSocketAddrs for str {
    type Iter = vec::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        if let Ok(addr) = self.parse::<SocketAddr>() {
            return Ok(vec![addr].into_iter());
        }
        resolve(self)
    }
}

impl ToSocketAddrs for String {
    type Iter = vec::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        (**self).to_socket_addrs()
    }
}

impl<'a> ToSocketAddrs for &'a [SocketAddr] {
    type Iter = iter::Cloned<slice::Iter<'a, SocketAddr>>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        Ok(self.iter().cloned())
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    type Iter = T::Iter;
    fn to_socket_addrs(&self) -> io::Result<T::Iter> {
        (**self).to_socket_addrs()
    }
}

/// Runs `f` on each address `addr` resolves to until one succeeds, as std
/// does: the last error otherwise, or `InvalidInput` if there was no address.
pub(crate) fn each_addr<A, F, T>(addr: A, mut f: F) -> io::Result<T>
where
    A: ToSocketAddrs,
    F: FnMut(&SocketAddr) -> io::Result<T>,
{
    let mut last_err = None;
    for a in addr.to_socket_addrs()? {
        match f(&a) {
            Ok(v) => return Ok(v),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

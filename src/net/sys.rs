//! Socket calls std does not expose: creating sockets non-blocking,
//! connecting without blocking, `accept4`, and socket-address conversion.
//!
//! The calls are rustix's ([`crate::sys::net`]); the addresses are encoded
//! here, as std encodes them, and passed through
//! [`RawAddr`](crate::sys::socket::RawAddr).

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::hub::{self, Interest};
use crate::sys::io::Errno;
use crate::sys::net::{
    self as rnet, sockopt, AddressFamily, SocketAddrAny, SocketFlags, SocketType,
};
use crate::sys::socket::{self as sockaddr, RawAddr};

/// `addr` as a `sockaddr_storage` and the length that is in use.
pub(crate) fn to_raw(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in.
            unsafe {
                (&mut storage as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in>()
                    .write(sin)
            };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in6.
            unsafe {
                (&mut storage as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in6>()
                    .write(sin6)
            };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// The address in `storage`, filled in by the kernel.
pub(crate) fn from_raw(
    storage: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> io::Result<SocketAddr> {
    let len = len as usize;
    match storage.ss_family as libc::c_int {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Ok(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the kernel returned an address that is neither IPv4 nor IPv6",
        )),
    }
}

/// A new non-blocking, close-on-exec socket for `addr`'s family.
pub(crate) fn socket(addr: &SocketAddr, ty: libc::c_int) -> io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    socket_in(family, ty)
}

/// A new non-blocking, close-on-exec socket of `family` (`AF_INET`,
/// `AF_INET6` or `AF_UNIX`) and type `ty`.
pub(crate) fn socket_in(family: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
    let family = AddressFamily::from_raw(family as rnet::RawAddressFamily);
    let ty = SocketType::from_raw(ty as u32);
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    Ok(rnet::socket_with(family, ty, flags, None)?)
}

/// The IP socket address the kernel returned, or `InvalidInput` if it
/// returned another kind (or none).
pub(crate) fn from_any(addr: Option<&SocketAddrAny>) -> io::Result<SocketAddr> {
    let (storage, len) = sockaddr::to_storage(addr);
    from_raw(&storage, len)
}

pub(crate) fn bind(fd: &OwnedFd, addr: &SocketAddr) -> io::Result<()> {
    let (storage, len) = to_raw(addr);
    Ok(rnet::bind(fd, &RawAddr::new(storage, len))?)
}

pub(crate) fn listen(fd: &OwnedFd, backlog: libc::c_int) -> io::Result<()> {
    Ok(rnet::listen(fd, backlog)?)
}

/// Connects the non-blocking socket `fd` to `addr`, parking the caller
/// until the connection is made, refused, or `timeout` passes.
///
/// If the connection fails, or the wait is cancelled (kill, `Timeout`), the
/// hub forgets the fd before this returns or unwinds, so the caller may
/// close it: the hub registered it while waiting, and a later socket that
/// reuses the number must not be taken for it.
pub(crate) fn connect(
    fd: &OwnedFd,
    addr: &SocketAddr,
    timeout: Option<Duration>,
) -> io::Result<()> {
    let (storage, len) = to_raw(addr);
    match rnet::connect(fd, &RawAddr::new(storage, len)) {
        Ok(()) => return Ok(()),
        Err(Errno::INPROGRESS) => {}
        // An interrupted connect goes on in the background.
        Err(Errno::INTR) => {}
        Err(e) => return Err(e.into()),
    }
    let forget = ForgetUnlessConnected(fd.as_raw_fd());
    let r = wait_connected(fd.as_fd(), timeout);
    if r.is_ok() {
        mem::forget(forget);
    }
    r
}

/// Calls [`hub::notify_close`] for a socket whose connect did not succeed,
/// on the error path and on unwinding alike.
struct ForgetUnlessConnected(RawFd);

impl Drop for ForgetUnlessConnected {
    fn drop(&mut self) {
        hub::notify_close(self.0);
    }
}

/// Waits for the pending connect of `fd` to finish; its outcome.
fn wait_connected(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<()> {
    match hub::trampoline(fd.as_raw_fd(), Interest::Write, timeout) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection timed out",
            ))
        }
        Err(e) => return Err(e),
    }
    Ok(sockopt::socket_error(fd)??)
}

/// One non-blocking `accept4`: the new socket is non-blocking and
/// close-on-exec.
pub(crate) fn accept(listener: BorrowedFd<'_>) -> io::Result<(OwnedFd, SocketAddr)> {
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let (fd, addr) = rnet::acceptfrom_with(listener, flags)?;
    Ok((fd, from_any(addr.as_ref())?))
}

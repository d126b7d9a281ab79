//! What green's sockets need beside rustix's calls: socket addresses in
//! green's own encoding, and integer socket options by number.
//!
//! # Addresses
//!
//! rustix's `bind`, `connect` and `accept` take and give addresses through
//! its own types, and it encodes an IPv6 address's flow info in network
//! byte order, where std (and green) write `sin6_flowinfo` as given. So
//! green encodes its addresses itself (a `sockaddr_storage`, a
//! `sockaddr_un`), passes the bytes to rustix as a [`RawAddr`], and copies
//! an address the kernel returned back into a `sockaddr_storage` with
//! [`to_storage`]: the bytes on the wire stay exactly the ones std's calls
//! would use.
//!
//! # Options by number
//!
//! rustix reads each socket option through a function of its own;
//! [`getsockopt_int`] reads any integer option by level and name, for
//! callers that hold an option's number (the interposers' bookkeeping).

use std::io;
use std::mem;
use std::os::fd::RawFd;
use std::ptr;
use std::time::Duration;

use rustix::net::addr::{SocketAddrArg, SocketAddrLen, SocketAddrOpaque, SocketAddrStorage};
use rustix::net::SocketAddrAny;

/// A socket address already encoded as the kernel reads it: the first
/// `len` bytes of `addr`.
///
/// # Invariant
/// `len` is at most `size_of::<T>()`.
pub(crate) struct RawAddr<T> {
    addr: T,
    len: SocketAddrLen,
}

impl<T> RawAddr<T> {
    /// The first `len` bytes of `addr`.
    ///
    /// # Panics
    /// Panics if `len` is larger than `T`.
    pub(crate) fn new(addr: T, len: libc::socklen_t) -> RawAddr<T> {
        assert!(
            len as usize <= mem::size_of::<T>(),
            "a socket address longer than its storage"
        );
        RawAddr { addr, len }
    }
}

// SAFETY: `f` gets a pointer to `addr`, which lives for the whole call and
// is readable for `len` bytes (the invariant). What the bytes say is a
// socket address the caller encoded; the kernel checks it as it checks any
// address passed to it.
unsafe impl<T> SocketAddrArg for RawAddr<T> {
    unsafe fn with_sockaddr<R>(
        &self,
        f: impl FnOnce(*const SocketAddrOpaque, SocketAddrLen) -> R,
    ) -> R {
        f(ptr::from_ref(&self.addr).cast(), self.len)
    }
}

/// An address the kernel returned (`None`: it returned none, length 0),
/// copied into a `sockaddr_storage`, and the length in use.
pub(crate) fn to_storage(
    addr: Option<&SocketAddrAny>,
) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let Some(addr) = addr else {
        return (storage, 0);
    };
    let len = (addr.addr_len() as usize)
        .min(mem::size_of::<SocketAddrStorage>())
        .min(mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: the first `addr_len()` bytes of `addr`'s storage were written
    // by the kernel, and `len` is no more than that nor than either
    // storage's size; the two do not overlap.
    unsafe {
        ptr::copy_nonoverlapping(
            addr.as_ptr().cast::<u8>(),
            ptr::from_mut(&mut storage).cast::<u8>(),
            len,
        )
    };
    (storage, len as libc::socklen_t)
}

/// Reads the `int` socket option `name` at `level` of socket `fd`.
///
/// # Errors
/// The OS error from `getsockopt` (`EBADF`, `ENOTSOCK`, `ENOPROTOOPT`).
pub(crate) fn getsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: passes a pointer to a valid c_int and its size. libc's
    // `getsockopt` has no interposer in green.
    let rc =
        unsafe { libc::getsockopt(fd, level, name, ptr::from_mut(&mut value).cast(), &mut len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// Reads the timeout option `name` (`SO_RCVTIMEO` or `SO_SNDTIMEO`) of
/// socket `fd`: `None` when there is none.
///
/// libc's call with a `timeval`, not rustix's `socket_timeout`: that one
/// asks for the 64-bit option and panics on an answer of another size
/// (qemu-user gives one), and the interposers that classify a socket
/// must not unwind.
///
/// # Errors
/// The OS error from `getsockopt` (`EBADF`, `ENOTSOCK`).
pub(crate) fn getsockopt_timeout(fd: RawFd, name: libc::c_int) -> io::Result<Option<Duration>> {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut len = mem::size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: a timeval-sized option into a timeval and its size. libc's
    // `getsockopt` has no interposer in green.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            ptr::from_mut(&mut tv).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let d = Duration::new(tv.tv_sec.max(0) as u64, 0)
        .saturating_add(Duration::from_micros(tv.tv_usec.max(0) as u64));
    Ok((!d.is_zero()).then_some(d))
}

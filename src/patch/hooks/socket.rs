//! Sockets made and connected: `socket`, `accept`, `accept4`, `connect`.
//!
//! A socket made or accepted by a green context is made non-blocking
//! underneath and remembered in the mode its owner asked for ([`fds`]);
//! an accept or connect parks on the hub until the kernel has an answer.

use std::io;
use std::os::fd::RawFd;

use libc::{c_int, sockaddr, socklen_t};

use super::emulate::{emulate, os_wait};
use super::{
    cancel_errno, cvt, errno, errno_of, fds, finish, green_hub, mark, set_errno, shielded, state, H,
};
use crate::hub::{self, io_loop, trampoline, Hub, Interest};
use crate::patch::{EMULATE, NET};
use crate::sys::original;

/// `accept` and `accept4`: a green caller on a socket green manages parks
/// until a connection arrives; the new socket is made non-blocking
/// underneath and remembered in the mode the caller asked for.
fn accept_call(h: H, fd: RawFd, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int {
    // SAFETY: the caller's arguments; only the flags may gain SOCK_NONBLOCK.
    let real4 = |f: c_int| unsafe { original::accept4(fd, addr, len, f) };
    let st = state();
    if let Some(hub) = green_hub(st, NET) {
        let b = fds::classify(fd);
        if b & fds::OURS != 0 {
            mark(h);
            let timeout = fds::timeout(fd, Interest::Read);
            let op = || cvt(real4(flags | libc::SOCK_NONBLOCK) as isize);
            let n = finish(shielded(hub, || {
                io_loop(fd, Interest::Read, timeout, op, |_| false)
            })) as c_int;
            if n >= 0 {
                let mode = if flags & libc::SOCK_NONBLOCK != 0 {
                    fds::USER_NB
                } else {
                    fds::OURS
                };
                fds::set(n, fds::KNOWN | mode | (b & fds::KIND), fds::timeouts(fd));
            }
            return n;
        }
    } else if st & EMULATE != 0 && fds::bits(fd) & fds::OURS != 0 {
        let mut op = || real4(flags) as isize;
        let n = emulate(fd, Interest::Read, false, &mut op) as c_int;
        if n >= 0 {
            fds::forget(n);
        }
        return n;
    }
    let n = if matches!(h, H::accept) {
        // SAFETY: the caller's arguments.
        unsafe { original::accept(fd, addr, len) }
    } else {
        real4(flags)
    };
    if n >= 0 && st != 0 {
        fds::forget(n);
    }
    n
}

/// # Safety
/// libc's `accept`.
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    accept_call(H::accept, fd, addr, len, 0)
}

/// # Safety
/// libc's `accept4`.
#[no_mangle]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    accept_call(H::accept4, fd, addr, len, flags)
}

/// Returns 0, or -1 with errno set to the socket's pending error.
fn connect_result(fd: RawFd) -> c_int {
    let err = crate::sys::socket::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR)
        .unwrap_or_else(|e| e.raw_os_error().unwrap_or(libc::EIO));
    match err {
        0 => 0,
        e => {
            set_errno(e);
            -1
        }
    }
}

/// Whether `addr` is an `AF_UNIX` address.
///
/// # Safety
/// `addr` is null or points to `len` readable bytes.
unsafe fn is_unix(addr: *const sockaddr, len: socklen_t) -> bool {
    !addr.is_null()
        && len as usize >= std::mem::size_of::<libc::sa_family_t>()
        // SAFETY: the caller's contract; the family comes first.
        && unsafe { std::ptr::read_unaligned(addr.cast::<libc::sa_family_t>()) }
            == libc::AF_UNIX as libc::sa_family_t
}

/// A Unix stream `connect` that found the listener's backlog full: the
/// kernel gives a non-blocking socket `EAGAIN` and announces no room, so
/// the call is made again after a growing delay
/// ([`hub::io_loop_unsignalled`]) until it connects, fails otherwise, or
/// `SO_SNDTIMEO` passes (`EAGAIN`, as the kernel's blocking connect
/// reports it).
fn connect_unix_green(hub: &Hub, fd: RawFd, op: &dyn Fn() -> c_int) -> c_int {
    let timeout = fds::timeout(fd, Interest::Write);
    let retry = || loop {
        if op() == 0 {
            return Ok(0);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    };
    finish(shielded(hub, || {
        hub::io_loop_unsignalled(fd, Interest::Write, timeout, retry)
    })) as c_int
}

/// # Safety
/// libc's `connect`.
#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: the caller's arguments, unchanged.
    let op = || unsafe { original::connect(fd, addr, len) };
    let st = state();
    if st == 0 {
        return op();
    }
    if let Some(hub) = green_hub(st, NET) {
        if fds::classify(fd) & fds::OURS != 0 {
            mark(H::connect);
            if op() == 0 {
                return 0;
            }
            match errno() {
                libc::EINPROGRESS => {}
                // SAFETY: the caller's address.
                libc::EAGAIN if unsafe { is_unix(addr, len) } => {
                    return connect_unix_green(hub, fd, &op);
                }
                _ => return -1,
            }
            let timeout = fds::timeout(fd, Interest::Write);
            return match shielded(hub, || trampoline(fd, Interest::Write, timeout)) {
                Ok(Ok(())) => connect_result(fd),
                Ok(Err(e)) => {
                    // A passed SO_SNDTIMEO leaves the connect in progress,
                    // as the kernel's blocking connect reports it.
                    let e = if e.raw_os_error().is_none() && e.kind() == io::ErrorKind::TimedOut {
                        libc::EINPROGRESS
                    } else {
                        errno_of(&e)
                    };
                    set_errno(e);
                    -1
                }
                Err(c) => {
                    set_errno(cancel_errno(c));
                    -1
                }
            };
        }
    } else if st & EMULATE != 0 && fds::bits(fd) & fds::OURS != 0 {
        if op() == 0 {
            return 0;
        }
        match errno() {
            libc::EINPROGRESS => {}
            // SAFETY: the caller's address.
            libc::EAGAIN if unsafe { is_unix(addr, len) } => {
                // As the green path's, with the OS thread asleep between.
                return emulate(fd, Interest::Write, true, &mut || op() as isize) as c_int;
            }
            _ => return -1,
        }
        let deadline = fds::deadline(fd, Interest::Write);
        if !os_wait(fd, libc::POLLOUT, deadline) {
            set_errno(libc::EINPROGRESS);
            return -1;
        }
        return connect_result(fd);
    }
    op()
}

/// # Safety
/// libc's `socket`.
#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    let st = state();
    if st == 0 {
        // SAFETY: the caller's arguments.
        return unsafe { original::socket(domain, ty, protocol) };
    }
    if green_hub(st, NET).is_some() && ty & libc::SOCK_NONBLOCK == 0 {
        mark(H::socket);
        // SAFETY: the caller's arguments plus SOCK_NONBLOCK.
        let fd = unsafe { original::socket(domain, ty | libc::SOCK_NONBLOCK, protocol) };
        if fd >= 0 {
            fds::set(
                fd,
                fds::KNOWN | fds::OURS | fds::kind_of(domain, ty),
                (0, 0),
            );
        }
        return fd;
    }
    // SAFETY: the caller's arguments.
    let fd = unsafe { original::socket(domain, ty, protocol) };
    if fd >= 0 {
        fds::forget(fd);
    }
    fd
}

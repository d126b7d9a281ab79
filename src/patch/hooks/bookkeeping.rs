//! Fd bookkeeping: `fcntl`, `ioctl`, `setsockopt`, `close`, `dup`,
//! `dup2`, `dup3`.
//!
//! These never park. They keep [`fds`] true to what the owner of each fd
//! asked for: `fcntl(F_SETFL)`/`ioctl(FIONBIO)` record the non-blocking
//! mode wanted (green keeps a socket it manages non-blocking underneath,
//! and `F_GETFL` reports the owner's view), `SO_RCVTIMEO`/`SO_SNDTIMEO`
//! become deadlines of green waits, and a close or a dup onto a number
//! forgets it and wakes its waiters (`hub::notify_close`).

use libc::{c_int, c_long, c_ulong, c_void, socklen_t, timeval};

use super::{fds, green_hub, mark, state, H};
use crate::hub::{self, Interest};
use crate::patch::{EMULATE, NET};
use crate::sys::original;

/// Whether fd bookkeeping is on.
#[inline(always)]
fn keeping(st: u32) -> bool {
    st & (NET | EMULATE) != 0
}

/// Notes bookkeeping hook `h` as seen when a green context called it.
fn mark_if_green(st: u32, h: H) {
    if green_hub(st, NET).is_some() {
        mark(h);
    }
}

/// `fcntl`, declared with one fixed argument after the command (see
/// [`syscall`](super::syscall::syscall) for why that receives a variadic call correctly).
///
/// # Safety
/// libc's `fcntl`.
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    let st = state();
    let tracked = keeping(st)
        && match cmd {
            libc::F_GETFL => fds::bits(fd) & fds::OURS != 0,
            libc::F_SETFL | libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => true,
            _ => false,
        };
    if !tracked {
        // SAFETY: the caller's arguments, unchanged.
        return unsafe { original::fcntl(fd, cmd, arg) };
    }
    // SAFETY: the caller's arguments, of a command that takes an integer.
    unsafe { fcntl_patched(fd, cmd, arg) }
}

/// The `fcntl` commands fd bookkeeping follows.
///
/// # Safety
/// `cmd` is `F_GETFL`, `F_SETFL`, `F_DUPFD` or `F_DUPFD_CLOEXEC` (which
/// take an integer argument, or none).
#[inline(never)]
unsafe extern "C" fn fcntl_patched(fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    let st = state();
    // SAFETY: the caller's arguments, with O_NONBLOCK kept on a socket
    // green manages.
    let real = |arg: c_long| unsafe { original::fcntl(fd, cmd, arg) };
    match cmd {
        libc::F_GETFL => {
            let r = real(arg);
            if r >= 0 && fds::bits(fd) & fds::OURS != 0 {
                mark_if_green(st, H::fcntl);
                r & !libc::O_NONBLOCK
            } else {
                r
            }
        }
        libc::F_SETFL => {
            let on = arg & libc::O_NONBLOCK as c_long != 0;
            if fds::set_user_nonblocking(fd, on) {
                mark_if_green(st, H::fcntl);
                real(arg | libc::O_NONBLOCK as c_long)
            } else {
                real(arg)
            }
        }
        _ => {
            // F_DUPFD, F_DUPFD_CLOEXEC
            let r = real(arg);
            if r >= 0 {
                fds::copy(fd, r);
            }
            r
        }
    }
}

/// `ioctl`, declared with one fixed argument after the request.
///
/// # Safety
/// libc's `ioctl`.
#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    let st = state();
    let fionbio_on = || {
        // SAFETY: FIONBIO takes a pointer to an int, checked non-null.
        unsafe { *(arg as *const c_int) != 0 }
    };
    if keeping(st)
        && request == libc::FIONBIO as c_ulong
        && !arg.is_null()
        && fionbio_kept(st, fd, fionbio_on())
    {
        // The owner asked for blocking mode: green keeps the socket
        // non-blocking underneath and blocks for it.
        return 0;
    }
    // SAFETY: the caller's arguments, unchanged.
    unsafe { original::ioctl(fd, request, arg) }
}

/// Records a `FIONBIO`; true if the call must not reach the kernel.
#[inline(never)]
fn fionbio_kept(st: u32, fd: c_int, on: bool) -> bool {
    let kept = fds::set_user_nonblocking(fd, on);
    if kept {
        mark_if_green(st, H::ioctl);
    }
    kept
}

/// # Safety
/// libc's `setsockopt`.
#[no_mangle]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    let st = state();
    let timeout =
        level == libc::SOL_SOCKET && matches!(name, libc::SO_RCVTIMEO | libc::SO_SNDTIMEO);
    if !(timeout && keeping(st)) {
        // SAFETY: the caller's arguments, unchanged.
        return unsafe { original::setsockopt(fd, level, name, value, len) };
    }
    // SAFETY: the caller's arguments.
    unsafe { set_timeout_option(st, fd, name, value, len) }
}

/// `SO_RCVTIMEO`/`SO_SNDTIMEO`, which green also keeps as a deadline.
///
/// # Safety
/// The arguments of a `setsockopt(fd, SOL_SOCKET, name, ...)` call.
#[inline(never)]
unsafe fn set_timeout_option(
    st: u32,
    fd: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    // SAFETY: the caller's arguments.
    let r = unsafe { original::setsockopt(fd, libc::SOL_SOCKET, name, value, len) };
    if r == 0 && len as usize >= std::mem::size_of::<timeval>() {
        mark_if_green(st, H::setsockopt);
        // SAFETY: the kernel accepted it as a timeval.
        let ns = fds::tv_nanos(unsafe { &*(value as *const timeval) });
        let interest = if name == libc::SO_RCVTIMEO {
            Interest::Read
        } else {
            Interest::Write
        };
        fds::set_timeout(fd, interest, ns);
    }
    r
}

/// # Safety
/// libc's `close`.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    let st = state();
    if keeping(st) {
        forget_closing(st, fd);
    }
    // SAFETY: the caller's fd.
    unsafe { original::close(fd) }
}

/// Drops what green knows of `fd`, about to be closed, and wakes its
/// waiters.
#[inline(never)]
fn forget_closing(st: u32, fd: c_int) {
    mark_if_green(st, H::close);
    fds::forget(fd);
    hub::notify_close(fd);
}

/// # Safety
/// libc's `dup`.
#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    // SAFETY: the caller's fd.
    let r = unsafe { original::dup(fd) };
    let st = state();
    if r >= 0 && keeping(st) {
        mark_if_green(st, H::dup);
        fds::copy(fd, r);
    }
    r
}

/// After a `dup2`/`dup3` onto `new`: the file `new` named was closed, and
/// `new` now shares `old`'s.
fn after_dup_onto(old: c_int, new: c_int) {
    let st = state();
    if old != new && keeping(st) {
        hub::notify_close(new);
        fds::copy(old, new);
    }
}

/// # Safety
/// libc's `dup2`.
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    // SAFETY: the caller's fds.
    let r = unsafe { original::dup2(old, new) };
    if r >= 0 {
        mark_if_green(state(), H::dup2);
        after_dup_onto(old, new);
    }
    r
}

/// # Safety
/// libc's `dup3`.
#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    // SAFETY: the caller's fds.
    let r = unsafe { original::dup3(old, new, flags) };
    if r >= 0 {
        mark_if_green(state(), H::dup3);
        after_dup_onto(old, new);
    }
    r
}

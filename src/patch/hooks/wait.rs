//! Child waits: `waitpid`, `wait4`, `waitid`.
//!
//! A green context waiting for one child that has not been reaped parks
//! on a pidfd, which becomes readable when the child exits, and then makes
//! the real wait (which returns at once). Any other wait (any child, a
//! process group, stops) runs on the tpool.

use std::os::fd::{AsRawFd, RawFd};

use libc::{c_int, id_t, idtype_t, pid_t, rusage, siginfo_t};

use super::{cancel_errno, green_hub, mark, set_errno, shielded, state, tpool_call, SendPtr, H};
use crate::hub::{self, trampoline, Cancel, Hub, Interest};
use crate::patch::{fds, PROCESS};
use crate::sys::original;
use crate::sys::process::{pidfd_open, Pid, PidfdFlags};

/// Whether `pid` is a child of this process that has not been reaped.
fn is_child(pid: pid_t) -> bool {
    // SAFETY: siginfo_t is plain data; all-zero is valid.
    let mut info: siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: a valid siginfo_t; WNOHANG and WNOWAIT: neither blocks nor reaps.
    (unsafe { original::waitid(libc::P_PID, pid as id_t, &mut info, flags) }) == 0
}

/// Waits green for child `pid` to exit: parks on a pidfd, which becomes
/// readable when the child exits. Returns `Err` if no pidfd can be had.
fn park_on_pidfd(hub: &Hub, pid: pid_t) -> Result<Result<(), Cancel>, ()> {
    let pid = Pid::from_raw(pid).ok_or(())?;
    let pidfd = pidfd_open(pid, PidfdFlags::empty()).map_err(drop)?;
    let fd = pidfd.as_raw_fd();
    let on = hub::Blocker::arg(hub::Kind::Child, pid.as_raw_nonzero().get() as u64);
    let r = shielded(hub, || {
        hub::trampoline_as(fd, Interest::Read, None, Some(on))
    })
    .map(drop);
    hub::notify_close(fd);
    fds::forget(fd);
    drop(pidfd);
    Ok(r)
}

fn green_wait4(
    hub: &Hub,
    pid: pid_t,
    status: *mut c_int,
    options: c_int,
    rusage: *mut rusage,
) -> pid_t {
    if pid > 0 && options & (libc::WUNTRACED | libc::WCONTINUED) == 0 {
        if !is_child(pid) {
            // Not a child (or reaped already): the real call says so.
            // SAFETY: the caller's arguments; it returns at once.
            return unsafe { original::wait4(pid, status, options | libc::WNOHANG, rusage) };
        }
        match park_on_pidfd(hub, pid) {
            // The child has exited: the real wait returns at once.
            // SAFETY: the caller's arguments.
            Ok(Ok(())) => return unsafe { original::wait4(pid, status, options, rusage) },
            Ok(Err(c)) => {
                set_errno(cancel_errno(c));
                return -1;
            }
            Err(()) => {}
        }
    }
    // Heap copies for the pool thread; copied back after (the caller's
    // frames may sit on a shared stack).
    let mut out: Box<(c_int, rusage)> = Box::new((0, unsafe_zeroed_rusage()));
    let p = SendPtr(&mut *out);
    let n = tpool_call(hub, move || {
        let p = p;
        // SAFETY: the heap copy, alive until tpool_call returns.
        let (st, ru) = unsafe { (&mut (*p.0).0 as *mut c_int, &mut (*p.0).1 as *mut rusage) };
        // SAFETY: valid out pointers.
        (unsafe { original::wait4(pid, st, options, ru) }) as isize
    }) as pid_t;
    if n > 0 {
        // SAFETY: the caller's out pointers, each null or valid.
        unsafe {
            if !status.is_null() {
                *status = out.0;
            }
            if !rusage.is_null() {
                *rusage = out.1;
            }
        }
    }
    n
}

fn unsafe_zeroed_rusage() -> rusage {
    // SAFETY: rusage is plain integers; all-zero is valid.
    unsafe { std::mem::zeroed() }
}

/// # Safety
/// libc's `waitpid`.
#[no_mangle]
pub unsafe extern "C" fn waitpid(pid: pid_t, status: *mut c_int, options: c_int) -> pid_t {
    match green_hub(state(), PROCESS) {
        Some(hub) if options & libc::WNOHANG == 0 => {
            mark(H::waitpid);
            green_wait4(hub, pid, status, options, std::ptr::null_mut())
        }
        // SAFETY: the caller's arguments.
        _ => unsafe { original::waitpid(pid, status, options) },
    }
}

/// # Safety
/// libc's `wait4`.
#[no_mangle]
pub unsafe extern "C" fn wait4(
    pid: pid_t,
    status: *mut c_int,
    options: c_int,
    rusage: *mut rusage,
) -> pid_t {
    match green_hub(state(), PROCESS) {
        Some(hub) if options & libc::WNOHANG == 0 => {
            mark(H::wait4);
            green_wait4(hub, pid, status, options, rusage)
        }
        // SAFETY: the caller's arguments.
        _ => unsafe { original::wait4(pid, status, options, rusage) },
    }
}

/// # Safety
/// libc's `waitid`.
#[no_mangle]
pub unsafe extern "C" fn waitid(
    idtype: idtype_t,
    id: id_t,
    infop: *mut siginfo_t,
    options: c_int,
) -> c_int {
    const P_PIDFD: idtype_t = 3;
    let Some(hub) = green_hub(state(), PROCESS).filter(|_| options & libc::WNOHANG == 0) else {
        // SAFETY: the caller's arguments.
        return unsafe { original::waitid(idtype, id, infop, options) };
    };
    mark(H::waitid);
    let exits_only = options & (libc::WSTOPPED | libc::WCONTINUED) == 0;
    let parked = match idtype {
        libc::P_PID if exits_only && id > 0 && is_child(id as pid_t) => {
            park_on_pidfd(hub, id as pid_t).ok()
        }
        P_PIDFD if exits_only => {
            Some(shielded(hub, || trampoline(id as RawFd, Interest::Read, None)).map(drop))
        }
        _ => None,
    };
    match parked {
        // SAFETY: the caller's arguments.
        Some(Ok(())) => unsafe { original::waitid(idtype, id, infop, options) },
        Some(Err(c)) => {
            set_errno(cancel_errno(c));
            -1
        }
        None => {
            // SAFETY: siginfo_t is plain data; all-zero is valid.
            let mut out: Box<siginfo_t> = Box::new(unsafe { std::mem::zeroed() });
            let p = SendPtr(&mut *out);
            let n = tpool_call(hub, move || {
                let p = p;
                // SAFETY: the heap copy, alive until tpool_call returns.
                (unsafe { original::waitid(idtype, id, p.0, options) }) as isize
            }) as c_int;
            if n == 0 && !infop.is_null() {
                // SAFETY: the caller's out pointer.
                unsafe { *infop = *out };
            }
            n
        }
    }
}

//! Forks and `set*id` made from a green thread's own block.
//!
//! glibc's `fork` (reached also from `forkpty`, `daemon` and others that
//! skip green's interposer) must run under the OS thread's thread pointer:
//! a child made from a green block would adopt it as its only thread's.
//! `pthread_atfork` handlers switch to the OS thread's pointer around
//! every fork and, in the child, give every live block the child's tid.
//! glibc's `SIGSETXID` handler, which reports a `set*id` through the TCB
//! the thread pointer reaches, is wrapped to run as the OS thread too.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::switch::{IN_OS_REGION, OS_TP};
use super::{current_tp, layout_found, live, on_own_block, rd, set_tp, under_os_tp};
use crate::sys::signal::{kernel_sigaction, KernelSigaction};

thread_local! {
    /// In an OS thread's block: the block a fork's preparation switched
    /// away from, to switch back to after the fork (0: none).
    static FORK_SAVED: Cell<usize> = const { Cell::new(0) };
}

/// Makes every way into glibc's `fork` run as the OS thread: `forkpty`,
/// `daemon` and others call glibc's own fork, not the interposed one. The
/// preparation step (which glibc runs after the handlers registered later)
/// switches to the OS thread's pointer and holds the live-block list; the
/// parent and child steps (run before the handlers registered later)
/// switch back, and in the child give every block the child's tid.
pub(super) fn install_fork_handlers() {
    extern "C" fn prepare() {
        if let Some(l) = layout_found().filter(|_| on_own_block()) {
            let own = current_tp();
            let os = OS_TP.get();
            // SAFETY: as in `under_os_tp`; the thread-locals below are set
            // by a call made under the OS thread's pointer.
            unsafe { set_tp(l.fsgsbase, os) };
            note_fork(own);
        }
        // Held across the fork: a child never finds it held by a thread it
        // does not have.
        live::lock_for_fork();
    }
    extern "C" fn parent() {
        live::unlock_after_fork();
        back_from_fork(false);
    }
    extern "C" fn child() {
        live::unlock_after_fork();
        back_from_fork(true);
    }
    // SAFETY: registers three handlers that only switch the thread pointer
    // and take or release a lock.
    unsafe { crate::sys::tls::pthread_atfork(prepare, parent, child) };
}

#[inline(never)]
fn note_fork(own: usize) {
    FORK_SAVED.set(own);
    IN_OS_REGION.set(true);
}

/// After a fork: back to the block the preparation switched away from.
#[inline(never)]
fn back_from_fork(child: bool) {
    let own = FORK_SAVED.replace(0);
    let Some(l) = layout_found() else { return };
    if child {
        // SAFETY: `tid` lies in every TCB; glibc set the child's in this,
        // the OS thread's.
        live::set_tids(l, unsafe { rd::<i32>(l.pd(current_tp()), l.tid as isize) });
    }
    if own != 0 {
        IN_OS_REGION.set(false);
        // SAFETY: the live block the preparation switched away from.
        unsafe { set_tp(l.fsgsbase, own) };
    }
}

/// glibc's internal signal for `set*id` (`__SIGRTMIN + 1`).
const SIGSETXID: c_int = 33;

/// glibc's own `SIGSETXID` handler, which [`setxid_handler`] calls.
static GLIBC_SETXID: AtomicUsize = AtomicUsize::new(0);

/// Puts [`setxid_handler`] in front of glibc's `SIGSETXID` handler.
///
/// When one OS thread calls `setuid` (or another `set*id`), glibc signals
/// every other thread and waits for each to change its credentials and
/// report on a word in its TCB. The handler reports through the current
/// thread pointer's TCB: run on a green thread's block it would report
/// where nobody waits, and the caller would wait for ever. The wrapper
/// runs it as the OS thread. glibc refuses `sigaction` for its internal
/// signals, so this uses the system call.
pub(super) fn wrap_setxid_handler() {
    let mut old = KernelSigaction::default();
    // SAFETY: reads the current action into `old`.
    let rc = unsafe { kernel_sigaction(SIGSETXID, None, Some(&mut old)) };
    // No handler of glibc's (or ours already): nothing to wrap.
    if rc.is_err() || old.handler <= 1 || old.handler == setxid_handler as *const () as usize {
        return;
    }
    GLIBC_SETXID.store(old.handler, Ordering::SeqCst);
    let new = KernelSigaction {
        handler: setxid_handler as *const () as usize,
        ..old
    };
    // SAFETY: the same action with our handler, which calls glibc's (and
    // returns through glibc's restorer, kept from `old`).
    let _ = unsafe { kernel_sigaction(SIGSETXID, Some(&new), None) };
}

/// Runs glibc's `SIGSETXID` handler as the OS thread (see
/// [`wrap_setxid_handler`]).
extern "C" fn setxid_handler(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let h = GLIBC_SETXID.load(Ordering::Relaxed);
    // SAFETY: glibc's SA_SIGINFO handler, stored before ours was installed.
    let glibc: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
        unsafe { std::mem::transmute(h) };
    // Async-signal-safe: a const thread-local read, a thread-pointer
    // switch around the call, and glibc's handler.
    under_os_tp(false, || {
        glibc(sig, info, ctx);
        0
    });
}

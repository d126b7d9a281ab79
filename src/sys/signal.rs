//! Signal dispositions and alternate signal stacks.
//!
//! Two ways to set a disposition, for two needs:
//! - [`sigaction`] is libc's: it gives the kernel libc's signal-return
//!   trampoline (`sa_restorer`), so a handler installed with it returns
//!   as any other. Used for the stack-overflow handler.
//! - [`kernel_sigaction`] is the system call itself: glibc refuses
//!   `sigaction` on its own internal signals (`SIGSETXID`), and wrapping
//!   glibc's handler there means reading and writing the kernel's record
//!   as it is (glibc's restorer included).
//!
//! [`sigaltstack`] is the system call too (libc's is a bare wrapper). All
//! three are async-signal-safe.
//!
//! And `green::signal`'s two calls: [`signalfd`] and [`sigmask`]
//! (`rt_sigprocmask` on the kernel's one-word signal set).

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use libc::c_int;
use rustix::io::Errno;

/// libc's `sigaction(sig, act, old)`.
///
/// # Safety
/// As libc's: `act` and `old` null or valid; a handler installed must be
/// sound to run on any thread at any point.
pub(crate) unsafe fn sigaction(
    sig: libc::c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> libc::c_int {
    // SAFETY: the caller's.
    unsafe { libc::sigaction(sig, act, old) }
}

/// libc's `sigemptyset(set)`: empties a signal set.
pub(crate) fn sigemptyset(set: &mut libc::sigset_t) {
    // SAFETY: `set` is a valid, writable sigset_t.
    unsafe { libc::sigemptyset(set) };
}

/// `sigaltstack(new, old)`: sets and/or reads this thread's alternate
/// signal stack.
///
/// # Safety
/// A `new` stack must be writable memory of `ss_size` bytes that stays
/// mapped while it is installed, and must not be in use when replaced.
pub(crate) unsafe fn sigaltstack(
    new: Option<&libc::stack_t>,
    old: Option<&mut libc::stack_t>,
) -> Result<(), Errno> {
    let new = new.map_or(0, |n| n as *const libc::stack_t as usize);
    let old = old.map_or(0, |o| o as *mut libc::stack_t as usize);
    // SAFETY: glibc's `stack_t` is the kernel's; the caller vouches for
    // `new`, and `old` is writable.
    unsafe { super::raw::syscall(libc::SYS_sigaltstack, new, old, 0, 0, 0, 0) }.map(drop)
}

/// The kernel's `struct sigaction` on x86-64 and AArch64 (`rt_sigaction`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KernelSigaction {
    /// The handler (`SIG_DFL` 0, `SIG_IGN` 1, or a function).
    pub(crate) handler: usize,
    /// `SA_*` flags.
    pub(crate) flags: u64,
    /// The signal-return trampoline (`SA_RESTORER`).
    pub(crate) restorer: usize,
    /// Signals blocked while the handler runs.
    pub(crate) mask: u64,
}

/// `rt_sigaction(sig, new, old)`, the system call: sets and/or reads the
/// kernel's disposition of `sig`, past libc's checks.
///
/// # Safety
/// A `new` handler must be sound to run on any thread at any point, and
/// its `restorer` must return from a signal (the one the kernel reported
/// for a libc-installed handler does).
pub(crate) unsafe fn kernel_sigaction(
    sig: libc::c_int,
    new: Option<&KernelSigaction>,
    old: Option<&mut KernelSigaction>,
) -> Result<(), Errno> {
    let new = new.map_or(0, |n| n as *const KernelSigaction as usize);
    let old = old.map_or(0, |o| o as *mut KernelSigaction as usize);
    // SAFETY: the caller vouches for `new`; `old` is writable; the mask
    // is one word, the size the kernel expects.
    unsafe {
        super::raw::syscall(
            libc::SYS_rt_sigaction,
            sig as usize,
            new,
            old,
            std::mem::size_of::<u64>(),
            0,
            0,
        )
    }
    .map(drop)
}

// `green::signal`'s two system calls. rustix has no signalfd, and its
// `rt_sigprocmask` takes its own typed signals; both are made here on the
// kernel's one-word signal set, through `raw`.

/// The kernel's `sigset_t`: one bit per signal, 64 signals (x86-64,
/// AArch64).
const KERNEL_SIGSET_SIZE: usize = std::mem::size_of::<u64>();

/// `signalfd4(-1, set, SFD_NONBLOCK | SFD_CLOEXEC)`: a new signalfd for
/// `set`.
pub(crate) fn signalfd(set: u64) -> std::io::Result<OwnedFd> {
    let flags = (libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) as usize;
    // SAFETY: `set` is a kernel signal set of the size passed, read during
    // the call only; fd -1 asks for a new fd; the flags are valid.
    let fd = unsafe {
        super::raw::syscall(
            libc::SYS_signalfd4,
            -1isize as usize,
            &set as *const u64 as usize,
            KERNEL_SIGSET_SIZE,
            flags,
            0,
            0,
        )
    }?;
    // SAFETY: the call made this fd just now; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `rt_sigprocmask(how, set)` on the calling OS thread; returns the mask
/// from before. `set` must hold none of the signals the C library keeps
/// for itself (`green::signal` refuses them before it calls this).
pub(crate) fn sigmask(how: c_int, set: u64) -> std::io::Result<u64> {
    let mut old = 0u64;
    // SAFETY: `set` and `old` are kernel signal sets of the size passed,
    // read and written during the call only. `set` holds none of the
    // signals the C library keeps for its threads (the caller's duty), so
    // its own machinery (thread cancellation, `setxid`) is untouched.
    unsafe {
        super::raw::syscall(
            libc::SYS_rt_sigprocmask,
            how as usize,
            &set as *const u64 as usize,
            &mut old as *mut u64 as usize,
            KERNEL_SIGSET_SIZE,
            0,
            0,
        )
    }?;
    Ok(old)
}

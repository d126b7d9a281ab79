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

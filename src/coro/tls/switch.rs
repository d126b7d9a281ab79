//! Switching the thread pointer, and running code as the OS thread.
//!
//! [`set_tp`] is the switch itself (x86-64: `wrfsbase` where the kernel
//! allows it, else `arch_prctl`; AArch64: `msr tpidr_el0`). The hub calls
//! it on every resume and suspend of a green thread with a block of its
//! own. The thread-locals here tell, under any thread pointer, what the
//! running code is: a green thread on its own block ([`on_own_block`]),
//! and which pointer is the OS thread's ([`os_tp`]). [`under_os_tp`] runs
//! a libc call as the OS thread on a green thread's behalf.

use std::cell::Cell;
use std::sync::OnceLock;

use super::{layout, live, rd};

thread_local! {
    /// In a green thread's own block: the OS thread's thread pointer. In an
    /// OS thread's block: its own, once asked (0 before).
    pub(super) static OS_TP: Cell<usize> = const { Cell::new(0) };
    /// Whether the running code is on a green thread's own block.
    pub(super) static OWN: Cell<bool> = const { Cell::new(false) };
    /// In an OS thread's block: the code running is inside
    /// [`under_os_tp`] (or a fork under the OS thread's pointer) on behalf
    /// of a green thread, and must not park.
    pub(super) static IN_OS_REGION: Cell<bool> = const { Cell::new(false) };
}

/// Whether the running code makes a call as the OS thread on behalf of a
/// green thread ([`under_os_tp`]): it must not park there, since the hub
/// would resume it under the green thread's pointer.
#[inline]
pub(crate) fn in_os_region() -> bool {
    IN_OS_REGION.get()
}

/// Enters or leaves an OS-thread region ([`in_os_region`]). Not inlined:
/// its thread-local access must be made under the thread pointer current
/// at the call, not one a caller computed before switching it.
#[inline(never)]
pub(super) fn set_os_region(on: bool) {
    IN_OS_REGION.set(on);
}

/// Whether the kernel lets user code set the FS base (`wrfsbase`).
pub(crate) fn fsgsbase() -> bool {
    static FSGSBASE: OnceLock<bool> = OnceLock::new();
    *FSGSBASE.get_or_init(|| cfg!(target_arch = "x86_64") && crate::sys::tls::hwcap2() & 2 != 0)
}

/// The thread pointer of the running code.
#[inline(always)]
pub(crate) fn current_tp() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let tp: usize;
        // SAFETY: `fs:0` is `tcbhead_t::tcb`, the thread pointer itself, in
        // every thread glibc or this module set up.
        unsafe {
            std::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp,
                options(nostack, readonly, preserves_flags));
        }
        tp
    }
    #[cfg(target_arch = "aarch64")]
    {
        let tp: usize;
        // SAFETY: reads TPIDR_EL0, the thread pointer; not `pure`, so that
        // it is never merged with a read from before a `set_tp`.
        unsafe {
            std::arch::asm!("mrs {}, tpidr_el0", out(reg) tp,
                options(nomem, nostack, preserves_flags));
        }
        tp
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        0
    }
}

/// The OS thread's own thread pointer, from any context on it.
pub(crate) fn os_tp() -> usize {
    let tp = OS_TP.get();
    if tp != 0 {
        return tp;
    }
    // Not on a green block (those are seeded): the current one is the OS's.
    let tp = current_tp();
    OS_TP.set(tp);
    tp
}

/// Whether the running code is a green thread with a block of its own.
#[inline]
pub(crate) fn on_own_block() -> bool {
    OWN.get()
}

/// Runs `f` under the OS thread's own thread pointer when the caller is a
/// green thread with a block of its own (else just runs it): for the libc
/// calls that must see the OS thread as themselves (`pthread_create`,
/// `set*id`, `fork`). `f` must touch no thread-local (see [`set_tp`]) or
/// unwind; it cannot park (the hooks pass through inside it, see
/// [`in_os_region`]). The errno `f` leaves is the caller's.
///
/// In a child made by `fork` under it (`f` returns 0 where `forked`), every
/// live block takes the child's tid, so that the child carries on as the
/// same green thread with its own thread-locals.
pub(crate) fn under_os_tp<T: PartialEq + Default>(forked: bool, f: impl FnOnce() -> T) -> T {
    if !on_own_block() {
        return f();
    }
    let Ok(l) = layout() else { return f() };
    let own = current_tp();
    let os = OS_TP.get();
    // SAFETY: `os` is this OS thread's own thread pointer (seeded into the
    // block) and `own` the live block the caller runs on; `f` holds no
    // thread-local reference (the caller's contract), and every
    // thread-local access below is made by a call, under the pointer
    // current then.
    unsafe {
        set_tp(l.fsgsbase, os);
        set_os_region(true);
        let r = f();
        let errno = crate::sys::tls::errno();
        set_os_region(false);
        if forked && r == T::default() {
            // glibc set the child's tid in the OS thread's TCB.
            live::set_tids(l, rd::<i32>(l.pd(os), l.tid as isize));
        }
        set_tp(l.fsgsbase, own);
        crate::sys::tls::set_errno(errno);
        r
    }
}

/// Sets the thread pointer.
///
/// The compiler takes the thread pointer for a constant within a function:
/// it may keep a thread-local's address, computed before this call, and
/// use it after (on AArch64 it reads `TPIDR_EL0` once and keeps it; x86-64
/// reaches thread-locals through `fs`, whose accesses follow the switch).
/// Code that runs between a `set_tp` and the one that sets it back, in the
/// same function after inlining, must therefore touch no thread-local;
/// whatever must see the new thread pointer's thread-locals runs in a
/// function that is not inlined.
///
/// # Safety
/// `tp` must be the thread pointer of this OS thread or of a live
/// [`Block`](super::Block) made on it, and the code that runs until it is
/// set back must not depend on the previous one (no reference to a
/// thread-local of it may be live).
#[inline(always)]
pub(crate) unsafe fn set_tp(fsgsbase: bool, tp: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if fsgsbase {
            // SAFETY: the kernel enabled FSGSBASE (HWCAP2); the caller
            // vouches for `tp`.
            unsafe {
                std::arch::asm!("wrfsbase {}", in(reg) tp, options(nostack, preserves_flags));
            }
        } else {
            const ARCH_SET_FS: usize = 0x1002;
            // SAFETY: arch_prctl(ARCH_SET_FS) as a raw system call (no
            // libc, no errno: neither may run mid-switch); the caller
            // vouches for `tp`.
            let _ = unsafe {
                crate::sys::raw::syscall(libc::SYS_arch_prctl, ARCH_SET_FS, tp, 0, 0, 0, 0)
            };
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        let _ = fsgsbase;
        // SAFETY: TPIDR_EL0 is writable at EL0; the caller vouches for
        // `tp`. Not `nomem`: no memory access moves across it.
        unsafe {
            std::arch::asm!("msr tpidr_el0, {}", in(reg) tp, options(nostack, preserves_flags));
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (fsgsbase, tp);
        unreachable!("thread identity is supported on x86-64 and AArch64 only");
    }
}

//! Raw system calls, made with the machine's system-call instruction.
//!
//! For the few calls rustix does not give (`get_robust_list`,
//! `process_vm_readv`, `sigaltstack`, `rt_sigaction` on glibc's internal
//! signal, `madvise` advice newer than rustix knows, `arch_prctl`). Not
//! libc's `syscall`: green interposes that name itself, and these calls
//! are made where no interposer may run (a signal handler, a fork handler,
//! a thread-pointer switch). Nor the dlsym'd original: its first call
//! looks the symbol up (not async-signal-safe), and it reports through
//! errno, which lives behind the very thread pointer some callers switch.
//! An instruction touches neither libc nor errno: the kernel's answer comes
//! back as a value, a failure as rustix's [`Errno`].
//!
//! ```text
//!   x86-64:  rax = nr; rdi rsi rdx r10 r8 r9 = args; `syscall`; rax = result
//!            (the kernel clobbers rcx and r11)
//!   AArch64: x8 = nr;  x0 .. x5 = args;             `svc #0`;   x0 = result
//!   result in [-4095, -1]: -errno
//! ```

use rustix::io::Errno;

/// Makes system call `nr` with six arguments (unused ones are ignored by
/// the kernel) and returns its result, or the error it reported.
///
/// Async-signal-safe, and touches no thread-local: callable in a signal
/// handler and under any thread pointer.
///
/// # Safety
/// The arguments must be valid for the call `nr`, as the kernel reads and
/// writes through them; the call's own effects (on memory, signals, the
/// thread) are the caller's to justify.
#[inline(always)]
pub(crate) unsafe fn syscall(
    nr: libc::c_long,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
    a6: usize,
) -> Result<usize, Errno> {
    let ret: isize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller vouches for the call and its arguments; the
    // kernel clobbers rcx and r11 and preserves every other register. Not
    // `nomem`: the kernel may read and write memory the arguments name.
    unsafe {
        std::arch::asm!("syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a1, in("rsi") a2, in("rdx") a3,
            in("r10") a4, in("r8") a5, in("r9") a6,
            lateout("rcx") _, lateout("r11") _,
            options(nostack));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above; `svc #0` preserves every register but x0.
    unsafe {
        std::arch::asm!("svc #0",
            in("x8") nr,
            inlateout("x0") a1 as isize => ret,
            in("x1") a2, in("x2") a3, in("x3") a4, in("x4") a5, in("x5") a6,
            options(nostack));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        // Elsewhere, libc's `syscall` past green's interposer, with its
        // errno turned back into a value.
        // SAFETY: the caller's, as above.
        let r = unsafe {
            super::original::syscall(
                nr,
                a1 as libc::c_long,
                a2 as libc::c_long,
                a3 as libc::c_long,
                a4 as libc::c_long,
                a5 as libc::c_long,
                a6 as libc::c_long,
            )
        };
        ret = if r == -1 {
            -(std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as isize)
        } else {
            r as isize
        };
    }
    if (-4095..0).contains(&ret) {
        Err(Errno::from_raw_os_error(-ret as i32))
    } else {
        Ok(ret as usize)
    }
}

//! The stack-overflow report.
//!
//! A fault in a guard page is caught by a `SIGSEGV`/`SIGBUS` handler running
//! on the thread's alternate signal stack (the overflowing stack has no
//! room left to run it): if the faulting address lies in the guard page of
//! the green thread that is running, it prints which green thread
//! overflowed and aborts, like std's "has overflowed its stack". Any other
//! fault is handed to the handler that was installed before ours.
//!
//! The hub tells the handler which green thread runs ([`set_running`]), in
//! a `const` thread-local with no destructor, which a handler may read.
//! Everything the handler does is async-signal-safe: that read, raw
//! `write(2)`s (rustix's, which never reach green's own `write`
//! interposer), `sigaction`, and `abort`.

use std::cell::Cell;
use std::os::fd::BorrowedFd;
use std::ptr;
use std::sync::Once;

use crate::sys::mm::{self, MapFlags, ProtFlags};
use crate::sys::signal;

/// What the overflow handler needs to know about the running green thread.
#[derive(Clone, Copy)]
pub(crate) struct RunningInfo {
    pub(crate) guard_lo: usize,
    pub(crate) guard_hi: usize,
    pub(crate) id: u64,
}

thread_local! {
    /// The guard page of the green thread running on this OS thread, if any.
    /// Read from the signal handler: a `const` thread-local with no destructor
    /// is safe to read there.
    static RUNNING: Cell<RunningInfo> = const {
        Cell::new(RunningInfo { guard_lo: 0, guard_hi: 0, id: 0 })
    };
}

/// Records which green thread runs now (`None`: the root or the hub).
#[inline]
pub(crate) fn set_running(info: Option<RunningInfo>) {
    let info = info.unwrap_or(RunningInfo {
        guard_lo: 0,
        guard_hi: 0,
        id: 0,
    });
    RUNNING.with(|r| r.set(info));
}

static INSTALL: Once = Once::new();
static mut PREV_SEGV: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();
static mut PREV_BUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();

/// Installs the overflow handler once per process, and makes sure this OS
/// thread has an alternate signal stack to run it on.
///
/// Returns the alternate stack this call allocated, if it had to (the caller
/// frees it with [`free_altstack`] when the thread's hub goes away).
pub(crate) fn install_overflow_handler() -> Option<(usize, usize)> {
    INSTALL.call_once(|| {
        // SAFETY: `sigaction` with a zeroed struct and our handler is the
        // documented way to install a handler; the previous actions are saved
        // once, before any fault can consult them.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = overflow_handler as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            signal::sigemptyset(&mut act.sa_mask);
            signal::sigaction(
                libc::SIGSEGV,
                &act,
                (*ptr::addr_of_mut!(PREV_SEGV)).as_mut_ptr(),
            );
            signal::sigaction(
                libc::SIGBUS,
                &act,
                (*ptr::addr_of_mut!(PREV_BUS)).as_mut_ptr(),
            );
        }
    });
    // SAFETY: querying the current alternate stack writes only `old`.
    let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; no new stack.
    let _ = unsafe { signal::sigaltstack(None, Some(&mut old)) };
    if old.ss_flags & libc::SS_DISABLE == 0 {
        return None;
    }
    let size = libc::SIGSTKSZ.max(64 * 1024);
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choosing touches no existing memory.
    let mem = unsafe {
        mm::mmap_anonymous(
            ptr::null_mut(),
            size,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    }
    .ok()?;
    let st = libc::stack_t {
        ss_sp: mem,
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: `st` is the writable mapping just made, kept mapped until
    // `free_altstack` disables it; this thread had none.
    let _ = unsafe { signal::sigaltstack(Some(&st), None) };
    Some((mem as usize, size))
}

/// Disables and unmaps an alternate signal stack made by
/// [`install_overflow_handler`].
pub(crate) fn free_altstack(stack: (usize, usize)) {
    let st = libc::stack_t {
        ss_sp: ptr::null_mut(),
        ss_flags: libc::SS_DISABLE,
        ss_size: 0,
    };
    // SAFETY: the stack was mapped by `install_overflow_handler` on this
    // thread; it is disabled before it is unmapped.
    unsafe {
        let _ = signal::sigaltstack(Some(&st), None);
        let _ = mm::munmap(stack.0 as *mut libc::c_void, stack.1);
    }
}

/// Writes to stderr with a raw system call: async-signal-safe, and never
/// green's `write` interposer.
fn write_stderr(bytes: &[u8]) {
    // SAFETY: fd 2 is only borrowed for the call; a closed fd 2 makes the
    // write fail, which is ignored.
    let fd = unsafe { BorrowedFd::borrow_raw(2) };
    let _ = crate::sys::io::write(fd, bytes);
}

fn write_decimal(mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    write_stderr(&buf[i..]);
}

extern "C" fn overflow_handler(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let running = RUNNING.with(|r| r.get());
    if running.guard_hi != 0 && addr >= running.guard_lo && addr < running.guard_hi {
        write_stderr(b"\ngreen thread ");
        write_decimal(running.id);
        write_stderr(b" has overflowed its stack\nfatal runtime error: stack overflow, aborting\n");
        // abort is async-signal-safe.
        std::process::abort();
    }
    // Not ours: hand over to whoever handled this signal before.
    // SAFETY: PREV_* were written once by `sigaction` before the handler was
    // installed, and are only read here.
    unsafe {
        let prev = if sig == libc::SIGBUS {
            (*ptr::addr_of!(PREV_BUS)).assume_init_ref()
        } else {
            (*ptr::addr_of!(PREV_SEGV)).assume_init_ref()
        };
        if prev.sa_sigaction == libc::SIG_DFL || prev.sa_sigaction == libc::SIG_IGN {
            // Restore the default action and return: the faulting instruction
            // runs again and the default action (a core dump) happens.
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = libc::SIG_DFL;
            signal::sigemptyset(&mut act.sa_mask);
            signal::sigaction(sig, &act, ptr::null_mut());
        } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(prev.sa_sigaction);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev.sa_sigaction);
            f(sig);
        }
    }
}

//! The coroutine a green thread runs as: the only user of corosensei.
//!
//! [`Coro`] wraps corosensei's `Coroutine` on a [`GreenStack`]; a green
//! thread suspends through one function, [`suspend`], which records its
//! stack pointer so that a shared-stack [`Arena`](super::Arena) knows how
//! much of the stack to save. [`suspend_margin`] measures, once, how far
//! below that pointer the switch itself writes.

use std::cell::Cell;
use std::ptr;

use super::stack::{page_size, GreenStack, GuardedStack};

/// The yielder a green thread suspends through.
pub(crate) type Yielder = corosensei::Yielder<(), ()>;

/// A green thread's coroutine.
pub(crate) struct Coro {
    inner: corosensei::Coroutine<(), (), (), GreenStack>,
}

impl Coro {
    /// Makes a coroutine that will run `f` on `stack` when first resumed.
    ///
    /// For a shared stack this writes the initial frame at the arena's top:
    /// the arena must be free (its occupant saved) when this is called.
    pub(crate) fn new<F>(stack: GreenStack, f: F) -> Coro
    where
        F: FnOnce(&Yielder) + 'static,
    {
        Coro {
            inner: corosensei::Coroutine::with_stack(stack, move |y: &Yielder, ()| f(y)),
        }
    }

    /// Runs the coroutine until it suspends (`false`) or returns (`true`).
    #[inline]
    pub(crate) fn resume(&mut self) -> bool {
        match self.inner.resume(()) {
            corosensei::CoroutineResult::Yield(()) => false,
            corosensei::CoroutineResult::Return(()) => true,
        }
    }

    /// Takes the stack back from a finished coroutine.
    pub(crate) fn into_stack(self) -> GreenStack {
        self.inner.into_stack()
    }

    /// Whether the coroutine has finished.
    pub(crate) fn done(&self) -> bool {
        self.inner.done()
    }
}

impl std::fmt::Debug for Coro {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coro")
            .field("started", &self.inner.started())
            .field("done", &self.inner.done())
            .finish()
    }
}

/// Suspends the running coroutine back to the hub that resumed it, and
/// records in `sp` the stack pointer at the moment of suspending: for a
/// green thread on a shared stack, whose frames are saved from there.
///
/// Every such green thread suspends through this one function (never
/// inlined), so the bytes that corosensei's switch (and `Yielder::suspend`,
/// where it is not inlined) leaves below the recorded stack pointer are the
/// same for all of them; [`suspend_margin`] measures them once.
///
/// # Safety
/// `y` must be the yielder of the coroutine that is running on this OS thread.
#[inline(never)]
pub(crate) unsafe fn suspend_recording(y: *const Yielder, sp: &Cell<usize>) {
    sp.set(stack_pointer());
    // SAFETY: the caller guarantees `y` belongs to the running coroutine, so
    // it lives on that coroutine's stack for as long as it runs.
    unsafe { (*y).suspend(()) }
}

/// Suspends the running coroutine back to the hub that resumed it: for a
/// green thread on a stack of its own.
///
/// Inlined into the park or yield that calls it, so that the switch happens
/// in as few frames as possible: after a switch the CPU's prediction of
/// each return is wrong until it reaches a frame both sides share, and
/// every frame costs a misprediction on the way out and one on the way back.
///
/// # Safety
/// `y` must be the yielder of the coroutine that is running on this OS thread.
#[inline(always)]
pub(crate) unsafe fn suspend(y: *const Yielder) {
    // SAFETY: as in `suspend_recording`.
    unsafe { (*y).suspend(()) }
}

/// How many bytes below the stack pointer recorded by [`suspend_recording`] a
/// suspended coroutine may still use, measured once per process.
///
/// A probe coroutine runs on a stack filled with a canary byte and suspends
/// through [`suspend_recording`]; the lowest byte it changed, below the recorded stack
/// pointer, bounds what the switch keeps there. A safety allowance of 64
/// bytes is added.
pub(crate) fn suspend_margin() -> usize {
    static MARGIN: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MARGIN.get_or_init(|| {
        const CANARY: u8 = 0xA5;
        let stack = GuardedStack::new(64 * 1024).expect("cannot map a probe stack");
        let (lo, hi) = (stack.limit + page_size(), stack.limit + stack.len);
        // SAFETY: `[lo, hi)` is the probe stack's writable part, not in use.
        unsafe { ptr::write_bytes(lo as *mut u8, CANARY, hi - lo) };
        let sp = std::rc::Rc::new(Cell::new(0usize));
        let sp2 = sp.clone();
        let mut probe =
            corosensei::Coroutine::with_stack(GreenStack::Own(stack), move |y: &Yielder, ()| {
                // SAFETY: `y` is this coroutine's own yielder.
                unsafe { suspend_recording(y, &sp2) };
            });
        assert!(matches!(
            probe.resume(()),
            corosensei::CoroutineResult::Yield(())
        ));
        // SAFETY: the probe is suspended; its stack is only read.
        let lowest = (lo..hi)
            .find(|&a| unsafe { *(a as *const u8) } != CANARY)
            .unwrap_or(hi);
        probe.resume(());
        sp.get().saturating_sub(lowest) + 64
    })
}

/// The current stack pointer.
#[inline(always)]
pub(crate) fn stack_pointer() -> usize {
    let sp: usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads a register; no memory access, no stack use.
    unsafe {
        std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: reads a register; no memory access, no stack use.
    unsafe {
        std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        // The address of a local is above the stack pointer by at most this
        // frame's size; the page below it covers that on these targets.
        let marker = 0u8;
        sp = (std::hint::black_box(&marker) as *const u8 as usize).saturating_sub(4096);
    }
    sp
}

/// How many cache lines [`prefetch_stack`] asks for, from one below the
/// hint: a parked green thread's switch frame lies just below the stack
/// pointer it parked at, and the frames it returns through next just above.
const PREFETCH_LINES: usize = 8;

/// Asks the CPU to bring in the stack lines around `sp`, a stack pointer a
/// context parked at (or the top of a new stack): a hint with no effect on
/// what the program computes, and no fault whatever the address.
#[inline(always)]
pub(crate) fn prefetch_stack(sp: usize) {
    let mut line = sp.wrapping_sub(64) & !63;
    for _ in 0..PREFETCH_LINES {
        prefetch_line(line);
        line = line.wrapping_add(64);
    }
}

#[inline(always)]
fn prefetch_line(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program sees and never faults,
    // whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8);
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above; `prfm` is a hint that never faults.
    unsafe {
        std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) addr, options(nostack, preserves_flags, readonly));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = addr;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspend_margin_covers_the_switch() {
        // The switch pushes at least three words below the recorded stack
        // pointer; 64 bytes of allowance come on top.
        let m = suspend_margin();
        assert!((64 + 24..4096).contains(&m), "margin {m}");
    }
}

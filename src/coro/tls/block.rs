//! A green thread's own TLS block and TCB: made, filled in, freed.
//!
//! [`Block::new`] allocates a block as `pthread_create` does
//! (`_dl_allocate_tls`), then fills in the parts of `struct pthread` glibc
//! sets at a thread's start: from the OS thread's (guards, tid, vDSO entry,
//! CET state, malloc's slots) or as a new thread's are (self pointers,
//! empty robust and key lists, the rseq area marked unregistered, the
//! stack fields, the resolver-state pointer). Then, under the new block's
//! thread pointer, it runs libc's ctype set-up and seeds the runtime's own
//! thread-locals.

use std::ffi::c_void;

use super::layout::{head, DeallocTls};
use super::switch::{OS_TP, OWN};
use super::{current_tp, live, rd, set_tp, wr, Layout};

/// A green thread's own static TLS block and TCB.
///
/// # Invariant
/// `tcb` came from `_dl_allocate_tls` and is freed only by `drop`, which
/// must not run while the thread pointer is `tcb`.
#[derive(Debug)]
pub(crate) struct Block {
    tcb: usize,
    dealloc: DeallocTls,
    /// Where its list node lies from its thread pointer (see `live`).
    list: isize,
}

impl Block {
    /// Allocates and fills in a block for a green thread of the OS thread
    /// whose thread pointer is `os`, running on the stack `(lowest address,
    /// length, guard length)`. `seed` runs once under the new block's
    /// thread pointer, to give the runtime's own thread-locals their values
    /// there.
    pub(crate) fn new(
        layout: &Layout,
        os: usize,
        stack: (usize, usize, usize),
        seed: &dyn Fn(),
    ) -> std::io::Result<Block> {
        let l = layout;
        // Allocated and put on the live list under the list's lock, so
        // that a `dlopen` between the two cannot miss it.
        let live = live::lock();
        // SAFETY: `_dl_allocate_tls(NULL)` allocates a block as
        // pthread_create does, with a zeroed TCB.
        let tcb = unsafe { (l.alloc)(std::ptr::null_mut()) } as usize;
        if tcb == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::OutOfMemory,
                "cannot allocate a green thread's TLS block",
            ));
        }
        let block = Block {
            tcb,
            dealloc: l.dealloc,
            list: l.list_node(),
        };
        let (pd, os_pd) = (l.pd(tcb), l.pd(os));
        // SAFETY: every offset lies inside `struct pthread` or the static
        // TLS next to it (Layout::discover found each on a live thread), in
        // the new block and in the OS thread's.
        unsafe {
            fill_header(tcb, os, pd, os_pd);
            wr(pd, l.tid as isize, rd::<i32>(os_pd, l.tid as isize));
            // The list node links the block into the list of live blocks.
            live.link(l, tcb);
            drop(live);
            let robust = pd + l.robust;
            wr(pd, l.robust as isize, robust);
            wr(
                pd,
                l.robust as isize + 8,
                rd::<isize>(os_pd, l.robust as isize + 8),
            );
            wr(pd, l.specific as isize, pd + l.specific_1st);
            wr(pd, l.user_stack as isize, 1u8);
            if stack.1 != 0 {
                wr(pd, l.stack as isize, stack.0);
                wr(pd, l.stack as isize + 8, stack.1);
                wr(pd, l.stack as isize + 16, stack.2);
                wr(pd, l.stack as isize + 24, stack.2);
            }
            if let Some((res, resp)) = l.res {
                wr(tcb, resp, pd + res);
            }
            if let Some(rseq) = l.rseq {
                // cpu_id: RSEQ_CPU_ID_REGISTRATION_FAILED, so that
                // sched_getcpu asks the kernel.
                wr::<i32>(tcb, rseq + 4, -2);
            }
            for &slot in &l.malloc_slots {
                wr(tcb, slot, rd::<usize>(os, slot));
            }
            let prev = current_tp();
            set_tp(l.fsgsbase, tcb);
            seed_block(l, os, seed);
            set_tp(l.fsgsbase, prev);
        }
        Ok(block)
    }

    /// The block's thread pointer.
    #[inline]
    pub(crate) fn tp(&self) -> usize {
        self.tcb
    }
}

/// What a new block needs under its own thread pointer: libc's ctype
/// tables, and the runtime's thread-locals. Not inlined: its thread-local
/// accesses must be made under the new pointer, not one its caller
/// computed before switching.
#[inline(never)]
fn seed_block(l: &Layout, os: usize, seed: &dyn Fn()) {
    // SAFETY: glibc's per-thread ctype set-up, as at a thread's start.
    unsafe { (l.ctype_init)() };
    OS_TP.set(os);
    OWN.set(true);
    seed();
}

/// Fills in the fixed header of a new block's TCB, x86-64's `tcbhead_t`:
/// its self pointers, and the OS thread's guards, vDSO entry and CET
/// state.
///
/// # Safety
/// `tcb` is a new block's thread pointer, `os` this OS thread's, and
/// `pd`, `os_pd` their `struct pthread`s.
#[cfg(target_arch = "x86_64")]
unsafe fn fill_header(tcb: usize, os: usize, _pd: usize, _os_pd: usize) {
    // SAFETY: the header lies at the thread pointer in every TCB.
    unsafe {
        wr(tcb, head::TCB as isize, tcb);
        wr(tcb, head::SELF as isize, tcb);
        wr::<i32>(tcb, head::MULTIPLE_THREADS as isize, 1);
        // Without this on the OS thread too, glibc's atomics in malloc
        // drop their lock prefix while it believes itself alone.
        wr::<i32>(os, head::MULTIPLE_THREADS as isize, 1);
        for off in [head::SYSINFO, head::STACK_GUARD, head::POINTER_GUARD] {
            wr(tcb, off as isize, rd::<usize>(os, off as isize));
        }
        wr(
            tcb,
            head::FEATURE_1 as isize,
            rd::<u32>(os, head::FEATURE_1 as isize),
        );
    }
}

/// Fills in the fixed header of a new block's `struct pthread` on AArch64:
/// `multiple_threads`, as `pthread_create` sets it in the new thread and
/// its creator (glibc's libc tests a global; the dynamic linker tests
/// this). The `tcbhead_t` needs nothing: `_dl_allocate_tls` installed the
/// DTV, and the guards are globals.
///
/// # Safety
/// As for x86-64's.
#[cfg(target_arch = "aarch64")]
unsafe fn fill_header(_tcb: usize, _os: usize, pd: usize, os_pd: usize) {
    // SAFETY: the header begins every struct pthread.
    unsafe {
        wr::<i32>(pd, head::MULTIPLE_THREADS as isize, 1);
        wr::<i32>(os_pd, head::MULTIPLE_THREADS as isize, 1);
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        debug_assert_ne!(current_tp(), self.tcb, "a TLS block freed while in use");
        // SAFETY: allocated by `_dl_allocate_tls` (Invariant) and linked
        // by `new`, not in use; `true` frees the TCB with it.
        unsafe {
            live::unlink(self.list, self.tcb);
            (self.dealloc)(self.tcb as *mut c_void, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::super::{layout, on_own_block, os_tp, run_exit};
    use super::*;

    fn gettid() -> i32 {
        crate::sys::thread::gettid().as_raw_nonzero().get()
    }

    #[test]
    fn a_block_has_its_own_thread_locals() {
        let Ok(l) = layout() else { return };
        thread_local!(static X: Cell<u32> = const { Cell::new(1) });
        /// What the thread sees under the block (not inlined: see
        /// `set_tp`), and its exit.
        #[inline(never)]
        fn inside() -> (u32, i32, usize, bool) {
            let seen = (
                X.get(),
                gettid(),
                crate::sys::tls::errno_location() as usize,
                on_own_block(),
            );
            run_exit();
            seen
        }
        X.set(5);
        let os = os_tp();
        let block = Block::new(l, os, (0, 0, 0), &|| X.set(9)).unwrap();
        assert_eq!(X.get(), 5);
        // SAFETY: the block is live and made on this thread; no reference
        // to a thread-local is held across the switch.
        unsafe { set_tp(l.fsgsbase, block.tp()) };
        let (x, tid, errno_addr, own) = inside();
        // SAFETY: back to the OS thread's own.
        unsafe { set_tp(l.fsgsbase, os) };
        assert_eq!(x, 9);
        assert!(own && !on_own_block());
        assert_eq!(tid, gettid());
        assert_ne!(errno_addr, crate::sys::tls::errno_location() as usize);
        assert_eq!(X.get(), 5);
    }

    #[test]
    fn a_block_has_an_unregistered_rseq_area() {
        let Ok(l) = layout() else { return };
        let Some(rseq) = l.rseq else { return };
        let block = Block::new(l, os_tp(), (0, 0, 0), &|| {}).unwrap();
        // SAFETY: the rseq area lies in the block's struct pthread.
        let cpu_id = unsafe { rd::<i32>(block.tp(), rseq + 4) };
        assert_eq!(cpu_id, -2, "RSEQ_CPU_ID_REGISTRATION_FAILED");
    }
}

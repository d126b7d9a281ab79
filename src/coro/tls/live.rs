//! Every live [`Block`](super::Block) of the process, and what `dlopen`
//! needs of them.
//!
//! glibc initialises a library's *initial-exec* TLS (static TLS, taken from
//! the surplus it keeps for `dlopen`) in every thread it knows when the
//! library is loaded. It does not know green threads' blocks, so the
//! `dlopen` interposer calls [`init_new_static_tls`], which copies each
//! newly loaded module's init image into every live block. The blocks are
//! kept in a list threaded through their TCB's own `list` node (which glibc
//! uses the same way for the threads it knows), under one lock.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{current_tp, wr, Layout};

/// The list head: `[next, prev]` node addresses; zero until first used.
/// With it, the modules whose TLS every live block has.
struct Live {
    head: UnsafeCell<[usize; 2]>,
    modules: UnsafeCell<Vec<TlsModule>>,
}

// SAFETY: only touched with `LOCK` held.
unsafe impl Sync for Live {}

static LIVE: Live = Live {
    head: UnsafeCell::new([0, 0]),
    modules: UnsafeCell::new(Vec::new()),
};

/// A spin lock, not a mutex: the fork handlers take it in one handler and
/// release it in another, and no holder ever parks or blocks.
static LOCK: AtomicBool = AtomicBool::new(false);

/// The live list, locked.
pub(super) struct Guard(());

/// Takes the lock.
pub(super) fn lock() -> Guard {
    let mut spins = 0u32;
    while LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        spins += 1;
        if spins < 64 {
            std::hint::spin_loop();
        } else {
            // The holder is another OS thread, in a short critical section.
            // rustix's sched_yield: the system call, never a green yield.
            crate::sys::thread::sched_yield();
        }
    }
    Guard(())
}

impl Drop for Guard {
    fn drop(&mut self) {
        LOCK.store(false, Ordering::Release);
    }
}

/// Takes the lock in a fork's preparation.
pub(super) fn lock_for_fork() {
    std::mem::forget(lock());
}

/// Releases it in the fork's parent and child.
pub(super) fn unlock_after_fork() {
    LOCK.store(false, Ordering::Release);
}

/// The list node of block `tcb`, `list` bytes from its thread pointer.
fn node(list: isize, tcb: usize) -> *mut [usize; 2] {
    tcb.wrapping_add_signed(list) as *mut [usize; 2]
}

/// The head, self-linked on first use.
fn head(_: &Guard) -> *mut [usize; 2] {
    let h = LIVE.head.get();
    // SAFETY: the lock is held (the guard).
    unsafe {
        if (*h)[0] == 0 {
            *h = [h as usize, h as usize];
        }
    }
    h
}

impl Guard {
    /// Adds a new block to the list.
    ///
    /// # Safety
    /// `tcb` is a block made with layout `l`, not yet on the list.
    pub(super) unsafe fn link(&self, l: &Layout, tcb: usize) {
        let h = head(self);
        let n = node(l.list_node(), tcb);
        // SAFETY: `n` is the block's list node; `h` and its neighbours are
        // live nodes (the head or blocks on the list), under the lock.
        unsafe {
            let next = (*h)[0] as *mut [usize; 2];
            *n = [next as usize, h as usize];
            (*next)[1] = n as usize;
            (*h)[0] = n as usize;
        }
    }

    /// Calls `f` with each live block (its thread pointer), whose list
    /// nodes lie `list` bytes from their thread pointers.
    fn each(&self, list: isize, mut f: impl FnMut(usize)) {
        let h = head(self);
        // SAFETY: every node on the list is a live block's, under the lock.
        unsafe {
            let mut n = (*h)[0];
            while n != h as usize {
                let next = (*(n as *const [usize; 2]))[0];
                f(n.wrapping_add_signed(-list));
                n = next;
            }
        }
    }
}

/// Takes a block off the list.
///
/// # Safety
/// `tcb` is on the list (linked by [`Guard::link`] with a layout whose
/// list node lies `list` bytes from the thread pointer).
pub(super) unsafe fn unlink(list: isize, tcb: usize) {
    let _g = lock();
    let n = node(list, tcb);
    // SAFETY: `n` is on the list, so its neighbours are live nodes.
    unsafe {
        let [next, prev] = *n;
        (*(prev as *mut [usize; 2]))[0] = next;
        (*(next as *mut [usize; 2]))[1] = prev;
        *n = [n as usize, n as usize];
    }
}

/// Gives every live block the tid `tid` (in a fork's child, whose only
/// thread has a new one).
pub(super) fn set_tids(l: &Layout, tid: i32) {
    let g = lock();
    g.each(l.list_node(), |tcb| {
        // SAFETY: `tid` lies in every block's struct pthread.
        unsafe { wr(l.pd(tcb), l.tid as isize, tid) }
    });
}

/// Records the modules loaded now: every block made from here on has
/// their TLS from glibc.
pub(super) fn note_loaded_modules() {
    let now = tls_modules();
    let _g = lock();
    // SAFETY: under the lock.
    unsafe { *LIVE.modules.get() = now };
}

/// A loaded module with TLS, and its init image.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct TlsModule {
    modid: usize,
    base: usize,
    image: usize,
    filesz: usize,
    memsz: usize,
}

/// The loaded modules that have TLS.
pub(crate) fn tls_modules() -> Vec<TlsModule> {
    let mut out: Vec<TlsModule> = Vec::new();
    crate::sys::tls::each_module(|info| {
        if info.dlpi_tls_modid == 0 {
            return false;
        }
        let phdrs = crate::sys::tls::phdrs(info);
        if let Some(h) = phdrs.iter().find(|h| h.p_type == libc::PT_TLS) {
            out.push(TlsModule {
                modid: info.dlpi_tls_modid,
                base: info.dlpi_addr as usize,
                image: info.dlpi_addr as usize + h.p_vaddr as usize,
                filesz: h.p_filesz as usize,
                memsz: h.p_memsz as usize,
            });
        }
        false
    });
    out
}

/// Copies the init image of every module loaded between `before` and
/// `now` whose TLS is static into every live block: what glibc does for
/// the threads it knows. A module is copied once (a `dlopen` from a
/// library's constructor, or on another thread, may have done it), and
/// only one loaded by a `dlopen` (in `now` but not in `before`).
pub(crate) fn init_new_static_tls(l: &Layout, before: &[TlsModule], now: &[TlsModule]) {
    let tp = current_tp();
    let (size, _align) = crate::sys::tls::tls_static_info();
    // Static TLS lies below the thread pointer on x86-64 (variant II),
    // above it on AArch64 (variant I); dynamic TLS is allocated elsewhere.
    let (lo, hi) = if cfg!(target_arch = "x86_64") {
        (tp.saturating_sub(size), tp)
    } else {
        (tp, tp.saturating_add(size))
    };
    let loaded: Vec<&TlsModule> = now.iter().filter(|m| !before.contains(m)).collect();
    if loaded.is_empty() {
        return;
    }
    // Where each new module's TLS lies in the calling thread's block:
    // `__tls_get_addr` brings this thread's DTV up to date and answers with
    // the module's static area (below the thread pointer) if it has one.
    // Asked before taking the lock: it may take glibc's.
    let placed: Vec<(isize, &TlsModule)> = loaded
        .iter()
        .map(|m| {
            // SAFETY: the TLS module id of a loaded module.
            let at = unsafe { crate::sys::tls::tls_get_addr(m.modid) };
            (at as isize - tp as isize, *m)
        })
        .collect();
    let g = lock();
    // SAFETY: under the lock.
    let done = unsafe { &mut *LIVE.modules.get() };
    let fresh: Vec<(isize, &TlsModule)> = placed
        .into_iter()
        .filter(|(_, m)| !done.contains(m))
        .collect();
    done.extend(fresh.iter().map(|(_, m)| **m));
    let fresh: Vec<(isize, &TlsModule)> = fresh
        .into_iter()
        .filter(|(off, _)| {
            let at = (tp as isize + off) as usize;
            at >= lo && at < hi
        })
        .collect();
    if fresh.is_empty() {
        return;
    }
    g.each(l.list_node(), |tcb| {
        for (offset, m) in &fresh {
            // SAFETY: each module's area lies in the static TLS of every
            // block, as in the calling thread's; its image is `filesz`
            // bytes of the loaded module.
            unsafe {
                let dst = (tcb as isize + offset) as *mut u8;
                std::ptr::copy_nonoverlapping(m.image as *const u8, dst, m.filesz);
                std::ptr::write_bytes(dst.add(m.filesz), 0, m.memsz - m.filesz);
            }
        }
    });
}

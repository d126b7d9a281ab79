//! Futex waits of green contexts, parked on a wait table keyed by address.
//!
//! std's `Mutex`, `Condvar`, `RwLock`, `Once` and `thread::park` block with
//! `syscall(SYS_futex, FUTEX_WAIT…)` on Linux. A green context that would
//! block there instead records itself here under the futex address and
//! parks; a `FUTEX_WAKE` from any thread wakes the green waiters of that
//! address as well as making the real call.
//!
//! The check of the futex word and the insertion happen under the bucket's
//! lock, and a waker changes the word *before* taking that lock, so a wake
//! can never fall between the check and the park (the kernel's own
//! argument). The lock is a spin lock: a `std` lock would block through the
//! very futex being hooked.

use std::cell::UnsafeCell;
use std::hint;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::hub::{Hub, Unparker, Wake};

const BUCKETS: usize = 64;

/// On the heap, not the waiter's stack: a green thread on a shared stack
/// has its frames moved while it is parked.
struct Waiter {
    addr: usize,
    bitset: u32,
    unparker: Unparker,
    /// Set by the waker that took it off the table (under the bucket lock).
    woken: AtomicBool,
}

struct Bucket {
    locked: AtomicBool,
    waiters: UnsafeCell<Vec<Arc<Waiter>>>,
}

// SAFETY: `waiters` is only touched with `locked` held.
unsafe impl Sync for Bucket {}

static TABLE: [Bucket; BUCKETS] = [const {
    Bucket {
        locked: AtomicBool::new(false),
        waiters: UnsafeCell::new(Vec::new()),
    }
}; BUCKETS];

/// Green waiters on the table, all buckets: a wake with none skips it.
pub(super) static WAITING: AtomicUsize = AtomicUsize::new(0);

struct Held(&'static Bucket);

impl Held {
    fn lock(addr: usize) -> Held {
        Held::lock_bucket(&TABLE[(addr >> 2).wrapping_mul(0x9E37_79B9) % BUCKETS])
    }

    fn lock_bucket(b: &'static Bucket) -> Held {
        while b
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            hint::spin_loop();
        }
        Held(b)
    }

    fn waiters(&mut self) -> &mut Vec<Arc<Waiter>> {
        // SAFETY: the lock is held.
        unsafe { &mut *self.0.waiters.get() }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.locked.store(false, Ordering::Release);
    }
}

/// Waits on `word` while it holds `val`, parked green, until a matching
/// wake, `deadline`, or a spurious wake. Returns 0, or an errno value
/// (`EAGAIN` if the word differed, `ETIMEDOUT`).
///
/// A kill or timeout of the waiter stays pending (to be delivered at its
/// next green park point) and does not end the wait: std's lock loops
/// would otherwise spin on a wait that returns at once.
pub(super) fn wait(
    hub: &Hub,
    word: *const AtomicU32,
    val: u32,
    bitset: u32,
    deadline: Option<Instant>,
) -> i32 {
    let addr = word as usize;
    let w = Arc::new(Waiter {
        addr,
        bitset,
        unparker: hub.unparker(),
        woken: AtomicBool::new(false),
    });
    {
        let mut held = Held::lock(addr);
        // Counted before the word is read: a waker that changes the word
        // and then finds no waiter counted would skip the table.
        WAITING.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller passed the address of a futex word it waits on.
        if unsafe { (*word).load(Ordering::SeqCst) } != val {
            WAITING.fetch_sub(1, Ordering::SeqCst);
            return libc::EAGAIN;
        }
        held.waiters().push(w.clone());
    }
    let wake = hub.in_foreign(|| hub.park_keep_cancel(deadline));
    let mut held = Held::lock(addr);
    if w.woken.load(Ordering::Relaxed) {
        return 0;
    }
    let list = held.waiters();
    if let Some(i) = list.iter().position(|p| Arc::ptr_eq(p, &w)) {
        list.swap_remove(i);
        WAITING.fetch_sub(1, Ordering::SeqCst);
    }
    match wake {
        Wake::TimedOut => libc::ETIMEDOUT,
        _ => 0,
    }
}

/// Wakes up to `n` green waiters on `addr` whose bitset meets `bitset`.
/// Returns how many it woke.
pub(super) fn wake(addr: usize, n: i32, bitset: u32) -> i32 {
    if !waiting_after_store() || n <= 0 {
        return 0;
    }
    let mut woken = Vec::new();
    // Dropped after the lock is released, as the unparks are made.
    let mut dead = Vec::new();
    {
        let mut held = Held::lock(addr);
        let list = held.waiters();
        let mut i = 0;
        while i < list.len() && (woken.len() as i32) < n {
            let w = &list[i];
            if w.unparker.hub_closed() {
                // Leaked at its thread's exit: it would take the wakeup.
                dead.push(list.remove(i));
                WAITING.fetch_sub(1, Ordering::SeqCst);
            } else if w.addr == addr && w.bitset & bitset != 0 {
                w.woken.store(true, Ordering::Relaxed);
                woken.push(w.unparker.clone());
                list.remove(i);
                WAITING.fetch_sub(1, Ordering::SeqCst);
            } else {
                i += 1;
            }
        }
    }
    // Unparked after the lock is released: an unpark may take other locks.
    let count = woken.len() as i32;
    for u in woken {
        u.unpark();
    }
    count
}

/// Whether any green context waits on the table, read after the caller's
/// change of a futex word (ordered as in [`wake`]).
#[inline(always)]
pub(super) fn waiting_after_store() -> bool {
    full_barrier();
    WAITING.load(Ordering::SeqCst) != 0
}

/// A full memory barrier: the caller's earlier store to the futex word is
/// visible before the count of waiters is read. A waiter counts itself
/// with a locked read-modify-write before reading the word, so one of the
/// two always sees the other.
#[inline(always)]
fn full_barrier() {
    #[cfg(all(target_arch = "x86_64", target_pointer_width = "64"))]
    // SAFETY: a locked no-op `or` on the top of the stack, which is the
    // caller's own memory. On x86-64 a locked instruction orders all
    // earlier loads and stores before all later ones, as `mfence` does
    // for ordinary memory, at a fraction of its cost (Linux's `smp_mb` is
    // a locked no-op add to a stack slot). The asm reads and writes memory, so the
    // compiler moves no memory access across it.
    unsafe {
        std::arch::asm!("lock or dword ptr [rsp], 0", options(nostack))
    };
    #[cfg(not(all(target_arch = "x86_64", target_pointer_width = "64")))]
    std::sync::atomic::fence(Ordering::SeqCst);
}

/// Takes the waiters whose hub was torn down off the table.
pub(super) fn forget_closed() {
    for b in &TABLE {
        let dead: Vec<Arc<Waiter>> = {
            let mut held = Held::lock_bucket(b);
            let list = held.waiters();
            let (dead, live) = std::mem::take(list)
                .into_iter()
                .partition(|w| w.unparker.hub_closed());
            *list = live;
            WAITING.fetch_sub(dead.len(), Ordering::SeqCst);
            dead
        };
        // Dropped with the lock released.
        drop(dead);
    }
}

/// In a child made by `fork`: the parent's green waiters are not the
/// child's, and a bucket lock held at the fork belongs to a thread that is
/// not there.
pub(super) fn forget_all() {
    WAITING.store(0, Ordering::SeqCst);
    for b in &TABLE {
        // Left allocated, as it was: the child frees nothing of the
        // parent's threads.
        // SAFETY: the child has one thread, in this handler.
        std::mem::forget(std::mem::take(unsafe { &mut *b.waiters.get() }));
        b.locked.store(false, Ordering::Release);
    }
}

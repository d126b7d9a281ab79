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
//! very futex being hooked (see [`Held::lock_bucket`]).
//!
//! ```text
//!  waiter                              waker
//!  ------                              -----
//!  lock bucket                         store to the word
//!  WAITING += 1                        full barrier
//!  word == val ?  -- no --> EAGAIN     WAITING == 0 ? -- yes --> done
//!  push itself                         lock bucket
//!  unlock                              take matching waiters, mark woken
//!  park                                unlock, unpark them
//!  lock, woken ? else remove itself
//! ```
//!
//! Under `cfg(loom)` the atomics, the cell and the park come from the
//! `shim` below, so that `loom` explores every interleaving of this very
//! code (`loom_tests`); the entry points the hooks call are then stand-ins.

use std::sync::Arc;
use std::time::Instant;

use crate::hub::Wake;
use shim::{AtomicBool, AtomicU32, AtomicUsize, Hub, Ordering, UnsafeCell};

/// log2 of the number of buckets (under `cfg(loom)`, fewer buckets for
/// the same code: `forget_closed` visits each, and every step is one more
/// point where loom switches threads).
#[cfg(not(loom))]
const BUCKET_BITS: u32 = 6;
#[cfg(loom)]
const BUCKET_BITS: u32 = 2;
const BUCKETS: usize = 1 << BUCKET_BITS;

/// Failed attempts at a bucket lock that spin before the spinner yields
/// its CPU; the spins double each time (1, 2, 4, ... `spin_loop` hints).
const SPIN_ROUNDS: u32 = 6;

/// The bucket of `addr`: the top bits of a multiply by 2⁶⁴/φ (Fibonacci
/// hashing), which every bit of the address feeds, so locks that share
/// their low bits (64-byte or page aligned ones) still spread.
#[inline]
fn bucket_of(addr: usize) -> usize {
    ((addr as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BUCKET_BITS)) as usize
}

/// On the heap, not the waiter's stack: a green thread on a shared stack
/// has its frames moved while it is parked.
struct Waiter {
    addr: usize,
    bitset: u32,
    unparker: shim::Unparker,
    /// Set by the waker that took it off the table (under the bucket lock).
    woken: AtomicBool,
}

struct Bucket {
    locked: AtomicBool,
    /// # Invariant
    /// Only touched with `locked` held.
    waiters: UnsafeCell<Vec<Arc<Waiter>>>,
}

// SAFETY: `waiters` is only touched with `locked` held (its invariant).
unsafe impl Sync for Bucket {}

impl Bucket {
    #[cfg(not(loom))]
    const fn new() -> Bucket {
        Bucket {
            locked: AtomicBool::new(false),
            waiters: UnsafeCell::new(Vec::new()),
        }
    }

    #[cfg(loom)]
    fn new() -> Bucket {
        Bucket {
            locked: AtomicBool::new(false),
            waiters: UnsafeCell::new(Vec::new()),
        }
    }
}

/// The wait table: its buckets and the count of green waiters in them.
#[derive(Clone, Copy)]
struct Table<'t> {
    buckets: &'t [Bucket; BUCKETS],
    /// Green waiters on the table, all buckets: a wake with none skips it.
    waiting: &'t AtomicUsize,
}

/// A bucket, locked.
struct Held<'t>(&'t Bucket);

impl<'t> Held<'t> {
    /// Takes the bucket's lock.
    ///
    /// A spin lock, because the lock is taken inside the `syscall`
    /// interposer: a `std` lock would futex-wait through that same hook
    /// (and a blocking lock of rustix's futex would add an atomic
    /// read-modify-write to every unlock). Its holders never park or block
    /// while holding it (they look at one list, and unpark only after
    /// unlocking), so a wait is a few instructions long unless the holder
    /// lost its CPU. The spin is therefore bounded: a waiter reads the lock
    /// (no read-modify-write, so the holder's cache line stays put) for a
    /// few doubling rounds of `spin_loop` hints, then calls `sched_yield`
    /// on each further look, made through rustix (no libc symbol: green's
    /// own `sched_yield` interposer would run the hub from inside this one).
    fn lock_bucket(b: &'t Bucket) -> Held<'t> {
        let mut round = 0;
        while b
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while b.locked.load(Ordering::Relaxed) {
                if round < SPIN_ROUNDS {
                    for _ in 0..1 << round {
                        shim::spin_loop();
                    }
                    round += 1;
                } else {
                    shim::yield_now();
                }
            }
        }
        Held(b)
    }

    /// Runs `f` on the bucket's list of waiters.
    fn waiters<R>(&mut self, f: impl FnOnce(&mut Vec<Arc<Waiter>>) -> R) -> R {
        self.0.waiters.with_mut(|list| {
            // SAFETY: the lock is held (the invariant of `waiters`), and
            // `&mut self` makes this the only reference made under it.
            f(unsafe { &mut *list })
        })
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.locked.store(false, Ordering::Release);
    }
}

impl<'t> Table<'t> {
    fn lock(self, addr: usize) -> Held<'t> {
        Held::lock_bucket(&self.buckets[bucket_of(addr)])
    }

    /// See [`wait`].
    fn wait(
        self,
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
        if let Err(e) = self.enqueue(word, val, &w) {
            return e;
        }
        let on = crate::hub::Blocker::arg(crate::hub::Kind::Futex, addr as u64);
        let wake = hub.in_foreign(|| hub.park_keep_cancel(deadline, on));
        self.dequeue(&w, wake)
    }

    /// Puts `w` on the table if `word` still holds `val`; else `EAGAIN`.
    fn enqueue(self, word: *const AtomicU32, val: u32, w: &Arc<Waiter>) -> Result<(), i32> {
        let mut held = self.lock(w.addr);
        // Counted before the word is read: a waker that changes the word
        // and then finds no waiter counted would skip the table.
        self.waiting.fetch_add(1, Ordering::SeqCst);
        shim::seq_cst_order();
        // SAFETY: the caller passed the address of a futex word it waits on.
        if unsafe { (*word).load(Ordering::SeqCst) } != val {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(libc::EAGAIN);
        }
        held.waiters(|list| list.push(w.clone()));
        Ok(())
    }

    /// After the park of `w`, which ended with `wake`: takes `w` off the
    /// table unless a waker did.
    fn dequeue(self, w: &Arc<Waiter>, wake: Wake) -> i32 {
        let mut held = self.lock(w.addr);
        if w.woken.load(Ordering::Relaxed) {
            return 0;
        }
        held.waiters(|list| {
            if let Some(i) = list.iter().position(|p| Arc::ptr_eq(p, w)) {
                list.swap_remove(i);
                self.waiting.fetch_sub(1, Ordering::SeqCst);
            }
        });
        match wake {
            Wake::TimedOut => libc::ETIMEDOUT,
            _ => 0,
        }
    }

    /// See [`wake`].
    fn wake(self, addr: usize, n: i32, bitset: u32) -> i32 {
        if !self.waiting_after_store() || n <= 0 {
            return 0;
        }
        let mut woken = Vec::new();
        // Dropped after the lock is released, as the unparks are made.
        let mut dead = Vec::new();
        self.lock(addr).waiters(|list| {
            let mut i = 0;
            while i < list.len() && (woken.len() as i32) < n {
                let w = &list[i];
                if w.unparker.hub_closed() {
                    // Leaked at its thread's exit: it would take the wakeup.
                    dead.push(list.remove(i));
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                } else if w.addr == addr && w.bitset & bitset != 0 {
                    w.woken.store(true, Ordering::Relaxed);
                    woken.push(w.unparker.clone());
                    list.remove(i);
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                } else {
                    i += 1;
                }
            }
        });
        // Unparked after the lock is released: an unpark may take other locks.
        let count = woken.len() as i32;
        for u in woken {
            u.unpark();
        }
        count
    }

    /// See [`waiting_after_store`].
    #[inline(always)]
    fn waiting_after_store(self) -> bool {
        shim::full_barrier();
        self.waiting.load(Ordering::SeqCst) != 0
    }

    /// See [`forget_closed`].
    fn forget_closed(self) {
        for b in self.buckets {
            let dead: Vec<Arc<Waiter>> = Held::lock_bucket(b).waiters(|list| {
                let (dead, live) = std::mem::take(list)
                    .into_iter()
                    .partition(|w: &Arc<Waiter>| w.unparker.hub_closed());
                *list = live;
                self.waiting.fetch_sub(dead.len(), Ordering::SeqCst);
                dead
            });
            // Dropped with the lock released.
            drop(dead);
        }
    }

    /// See [`forget_all`].
    fn forget_all(self) {
        self.waiting.store(0, Ordering::SeqCst);
        for b in self.buckets {
            // Left allocated, as it was: the child frees nothing of the
            // parent's threads.
            b.waiters.with_mut(|list| {
                // SAFETY: the child has one thread, in this handler.
                std::mem::forget(std::mem::take(unsafe { &mut *list }))
            });
            b.locked.store(false, Ordering::Release);
        }
    }
}

/// The process's table.
#[cfg(not(loom))]
static BUCKET_LIST: [Bucket; BUCKETS] = [const { Bucket::new() }; BUCKETS];

/// Green waiters on the table, all buckets: a wake with none skips it
/// (read by the `syscall` interposer's first instructions).
pub(super) static WAITING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// OS threads with a hub that are blocked in a real futex wait made through
/// the interposer (a wait the context could not park: the hub itself, a
/// context holding a green primitive's internal lock, an unwinding one).
///
/// Such a thread may wait on a word that a green context of its own hub
/// waits on in the table. A wake that the table's waiters take in full
/// would then leave the thread blocked, and the green waiters it took
/// cannot run until the thread is free: the hub would hang. While this is
/// not zero, a wake that woke green waiters also makes the real call
/// ([`hub_thread_blocked`]); the thread then sees a spurious wakeup at
/// worst, which every futex user takes.
static HUB_THREADS_BLOCKED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Makes `wait`, a real futex wait of an OS thread that has a hub, counted
/// in [`HUB_THREADS_BLOCKED`] while it blocks.
///
/// The count is raised before the wait reads the futex word (the kernel
/// makes a full barrier before it does), and a waker reads it after
/// changing the word and a full barrier: either the waker sees the count,
/// or the kernel's read sees the new word and the wait returns at once.
pub(super) fn wait_for_real<R>(wait: impl FnOnce() -> R) -> R {
    use std::sync::atomic::Ordering::SeqCst;
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            HUB_THREADS_BLOCKED.fetch_sub(1, SeqCst);
        }
    }
    HUB_THREADS_BLOCKED.fetch_add(1, SeqCst);
    let _done = Done;
    wait()
}

/// Whether an OS thread with a hub is blocked in a real futex wait made
/// through the interposer; read by a wake after it took green waiters
/// (ordered after the caller's change of the word by the full barrier of
/// [`wake`]).
pub(super) fn hub_thread_blocked() -> bool {
    HUB_THREADS_BLOCKED.load(std::sync::atomic::Ordering::SeqCst) != 0
}

#[cfg(not(loom))]
#[inline(always)]
fn table() -> Table<'static> {
    Table {
        buckets: &BUCKET_LIST,
        waiting: &WAITING,
    }
}

/// Waits on `word` while it holds `val`, parked green, until a matching
/// wake, `deadline`, or a spurious wake. Returns 0, or an errno value
/// (`EAGAIN` if the word differed, `ETIMEDOUT`).
///
/// A kill or timeout of the waiter stays pending (to be delivered at its
/// next green park point) and does not end the wait: std's lock loops
/// would otherwise spin on a wait that returns at once.
#[cfg(not(loom))]
pub(super) fn wait(
    hub: &Hub,
    word: *const AtomicU32,
    val: u32,
    bitset: u32,
    deadline: Option<Instant>,
) -> i32 {
    table().wait(hub, word, val, bitset, deadline)
}

/// Wakes up to `n` green waiters on `addr` whose bitset meets `bitset`.
/// Returns how many it woke.
#[cfg(not(loom))]
pub(super) fn wake(addr: usize, n: i32, bitset: u32) -> i32 {
    table().wake(addr, n, bitset)
}

/// Whether any green context waits on the table, read after the caller's
/// change of a futex word (ordered as in [`wake`]).
#[cfg(not(loom))]
#[inline(always)]
pub(super) fn waiting_after_store() -> bool {
    table().waiting_after_store()
}

/// Takes the waiters whose hub was torn down off the table.
#[cfg(not(loom))]
pub(super) fn forget_closed() {
    table().forget_closed()
}

/// In a child made by `fork`: the parent's green waiters are not the
/// child's, and a bucket lock held at the fork belongs to a thread that is
/// not there.
#[cfg(not(loom))]
pub(super) fn forget_all() {
    HUB_THREADS_BLOCKED.store(0, std::sync::atomic::Ordering::SeqCst);
    table().forget_all()
}

/// Under `cfg(loom)` the table's atomics exist only inside a model, so
/// there is no process table: these stand in for the entry points the
/// hooks call (the build is for the model checks, which never patch).
#[cfg(loom)]
mod unmodelled {
    use std::sync::atomic::AtomicU32;
    use std::time::Instant;

    const WHY: &str = "green: the futex table is model-checked under cfg(loom), not run";

    pub(in crate::patch) fn wait(
        _: &crate::hub::Hub,
        _: *const AtomicU32,
        _: u32,
        _: u32,
        _: Option<Instant>,
    ) -> i32 {
        unreachable!("{WHY}")
    }
    pub(in crate::patch) fn wake(_: usize, _: i32, _: u32) -> i32 {
        unreachable!("{WHY}")
    }
    pub(in crate::patch) fn waiting_after_store() -> bool {
        unreachable!("{WHY}")
    }
    pub(in crate::patch) fn forget_closed() {}
    pub(in crate::patch) fn forget_all() {}
}
#[cfg(loom)]
pub(super) use unmodelled::{forget_all, forget_closed, wait, waiting_after_store, wake};

/// What the table synchronises with: std's atomics and the hub, or under
/// `cfg(loom)` loom's atomics and a model of the hub's park.
#[cfg(not(loom))]
mod shim {
    pub(super) use crate::hub::{Hub, Unparker};
    pub(super) use std::hint::spin_loop;
    pub(super) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

    /// Gives up the CPU without entering green's `sched_yield` interposer.
    #[inline]
    pub(super) fn yield_now() {
        crate::sys::thread::sched_yield();
    }

    /// `std::cell::UnsafeCell` with loom's access API.
    pub(super) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(super) const fn new(v: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(v))
        }

        #[inline(always)]
        pub(super) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    /// A full memory barrier: the caller's earlier store to the futex word
    /// is visible before the count of waiters is read. A waiter counts
    /// itself with a locked read-modify-write before reading the word, so
    /// one of the two always sees the other.
    #[inline(always)]
    pub(super) fn full_barrier() {
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

    /// Nothing: a `SeqCst` read-modify-write and a later `SeqCst` load are
    /// already in the single total order that the waker's fence joins
    /// (C++20 [atomics.order]), which is what makes one of the two sides see
    /// the other.
    #[inline(always)]
    pub(super) fn seq_cst_order() {}
}

#[cfg(loom)]
mod shim {
    pub(super) use loom::cell::UnsafeCell;
    pub(super) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
    pub(super) use loom::thread::yield_now;
    pub(super) use std::hint::spin_loop;

    use crate::hub::Wake;
    use std::sync::Arc;
    use std::time::Instant;

    /// The barrier, as the fence it stands for.
    pub(super) fn full_barrier() {
        loom::sync::atomic::fence(Ordering::SeqCst);
    }

    /// loom treats `SeqCst` accesses as `AcqRel` (its README, "Unsupported
    /// features") and so cannot see the total order between the waiter's
    /// count and its read of the word; a `SeqCst` fence, which loom does
    /// model, stands for it.
    pub(super) fn seq_cst_order() {
        loom::sync::atomic::fence(Ordering::SeqCst);
    }

    /// A model hub: one loom thread is one green context, its park is
    /// loom's, and its teardown is a flag.
    pub(crate) struct Hub {
        closed: Arc<AtomicBool>,
    }

    impl Hub {
        pub(crate) fn new() -> Hub {
            Hub {
                closed: Arc::new(AtomicBool::new(false)),
            }
        }

        /// The hub's thread tears it down: its contexts never run again.
        pub(crate) fn close(&self) {
            self.closed.store(true, Ordering::Release);
        }

        pub(super) fn unparker(&self) -> Unparker {
            Unparker {
                thread: loom::thread::current(),
                closed: self.closed.clone(),
            }
        }

        pub(super) fn in_foreign<T>(&self, f: impl FnOnce() -> T) -> T {
            f()
        }

        /// A deadline is taken as already past: the park times out at once,
        /// the earliest a timer can race a wake.
        pub(super) fn park_keep_cancel(
            &self,
            deadline: Option<Instant>,
            _on: crate::hub::Blocker,
        ) -> Wake {
            if deadline.is_some() {
                return Wake::TimedOut;
            }
            loom::thread::park();
            Wake::Woken
        }
    }

    #[derive(Clone)]
    pub(crate) struct Unparker {
        thread: loom::thread::Thread,
        closed: Arc<AtomicBool>,
    }

    impl Unparker {
        pub(super) fn unpark(&self) {
            self.thread.unpark();
        }

        pub(super) fn hub_closed(&self) -> bool {
            self.closed.load(Ordering::Acquire)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many buckets 64 locks `stride` bytes apart from `base` use.
    fn buckets_used(base: usize, stride: usize) -> usize {
        let mut used = [false; BUCKETS];
        for i in 0..64 {
            used[bucket_of(base + i * stride)] = true;
        }
        used.iter().filter(|&&u| u).count()
    }

    #[test]
    fn aligned_locks_spread_over_buckets() {
        // 64 locks, each on a cache line of its own (as `#[repr(align(64))]`
        // or an allocator's size classes place them).
        let n = buckets_used(0x7f3a_5c40_1000, 64);
        assert!(n >= BUCKETS / 2, "64 aligned locks in {n} buckets");
    }

    #[test]
    fn page_aligned_locks_spread_over_buckets() {
        let n = buckets_used(0x5600_0000_0000, 4096);
        assert!(n >= BUCKETS / 2, "64 page-aligned locks in {n} buckets");
    }
}

#[cfg(all(test, loom))]
mod loom_tests;

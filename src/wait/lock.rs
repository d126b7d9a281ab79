//! The lock of a primitive's state, biased towards one hub.
//!
//! Every primitive keeps its state behind one short internal lock. Most of
//! the time all of a primitive's users are green threads of one hub — one
//! OS thread — and a mutex there costs two atomic read-modify-writes per
//! operation for nothing: nobody else can be inside. So a [`Lock`] starts
//! as an ordinary mutex and, once one hub has taken it
//! [`BIAS_AFTER`] times in a row, is *biased* to that hub: its thread takes
//! the lock with a plain store and a load, and leaves it with a store.
//!
//! ```text
//!   owner hub's thread                     any other thread
//!   ------------------                     ----------------
//!   busy := true                           mutex.lock()
//!   (compiler fence)                       owner := SHARED
//!   owner == me ? -> inside                membarrier()      (a full fence
//!       ...                                                    on every CPU
//!   busy := false                          wait until !busy   running us)
//!                                          -> inside, under the mutex
//! ```
//!
//! Another thread that wants the lock takes the mutex and *revokes* the
//! bias: it marks the lock shared, then makes every thread of the process
//! pass a full memory barrier (`membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`,
//! about 10 µs when another CPU runs one of our threads), which stands in
//! for the fence the owner's fast path leaves out: after it, either the
//! revoker sees the owner's `busy`, and waits for it to clear, or the
//! owner sees `SHARED` and takes the mutex like everyone else. The owner's
//! critical sections are short and never park, so the wait is short.
//!
//! A revoked lock stays a mutex until one hub again has it
//! to itself for twice as many operations in a row as the last time, so a
//! lock that two threads share pays for a revocation rarely, and a
//! primitive made on one hub and used once from another (a reply channel)
//! is never biased at all. Where `membarrier` is not available (old
//! kernels, some sandboxes), locks are never biased.
//!
//! Two rules keep the owner's thread from letting two of its own green
//! threads in at once. The bias is given as a guard taken through the
//! mutex drops, never while its critical section runs. And no context
//! parks while its thread holds a lock (`Hub::enter_lock`): a park there
//! panics (user code run under a lock — a priority queue's `Ord`, an
//! `Event` value's `Clone` — must not block), and a hooked libc call made
//! there (a contended internal mutex, under `patch()`) blocks the OS
//! thread for its short while instead of parking.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::hub;

/// `owner` of a lock no hub has been given.
const NOBODY: usize = 0;
/// `owner` of a lock whose bias was revoked: everyone takes the mutex.
const SHARED: usize = 1;

/// How many times in a row one hub takes a lock through its mutex before
/// the lock is biased to it; doubled by each revocation.
pub(crate) const BIAS_AFTER: u32 = 4;
/// The most operations in a row a lock asks for before it is biased again.
const BIAS_AFTER_MAX: u32 = 1 << 16;

/// A primitive's state behind a lock biased towards one hub (see the
/// module docs).
pub(crate) struct Lock<S> {
    /// `NOBODY`, `SHARED`, or the bias id of the hub whose thread may take
    /// the lock without the mutex ([`hub::Hub::bias_id`]).
    owner: AtomicUsize,
    /// The owner's thread is inside, without the mutex.
    ///
    /// # Invariant
    /// Set and cleared only by the owner's thread, around a critical
    /// section it entered without the mutex.
    busy: AtomicBool,
    /// Taken by every thread but the owner's, and by the owner's once the
    /// bias is revoked; keeps the count that decides the next bias.
    mutex: Mutex<Streak>,
    /// # Invariant
    /// Reached only by a holder of a [`Guard`]: the owner's thread with
    /// `busy` set and `owner` naming it (seen after setting `busy`), or a
    /// holder of `mutex` after any bias was revoked.
    data: UnsafeCell<S>,
}

// SAFETY: the data is reached by one thread at a time (its invariant).
unsafe impl<S: Send> Send for Lock<S> {}
// SAFETY: as above.
unsafe impl<S: Send> Sync for Lock<S> {}

// As a std `Mutex` whose poison is ignored: the only user code run under
// a lock is a priority queue's `Ord` and an `Event` value's `Clone`, and a
// panic out of them leaves the state as whole as std's collections leave
// theirs (a waiter whose value failed to clone stays queued).
impl<S> std::panic::UnwindSafe for Lock<S> {}
impl<S> std::panic::RefUnwindSafe for Lock<S> {}

/// Who took the lock through its mutex lately (protected by the mutex).
#[derive(Debug)]
struct Streak {
    hub: usize,
    count: u32,
    /// How long a streak must be for the lock to be biased.
    need: u32,
}

impl<S> Lock<S> {
    /// A lock around `data`, not biased; `const`, for primitives with
    /// `const` constructors.
    pub(crate) const fn new(data: S) -> Self {
        Lock {
            owner: AtomicUsize::new(NOBODY),
            busy: AtomicBool::new(false),
            mutex: Mutex::new(Streak {
                hub: NOBODY,
                count: 0,
                need: BIAS_AFTER,
            }),
            data: UnsafeCell::new(data),
        }
    }

    /// Takes the lock: with a store and a load on the hub it is biased to,
    /// through its mutex everywhere else.
    ///
    /// # Panics
    /// If the owner's thread takes it again while it holds it (a
    /// primitive's state is never locked twice by one thread; a mutex would
    /// deadlock there).
    #[inline]
    pub(crate) fn lock(&self) -> Guard<'_, S> {
        if let Some(h) = hub::try_hub() {
            let me = h.bias_id();
            if self.owner.load(Ordering::Relaxed) == me {
                if self.busy.load(Ordering::Relaxed) {
                    reentered();
                }
                self.busy.store(true, Ordering::Relaxed);
                // The revoker's `membarrier` is the other half of this
                // fence (module docs): only the compiler must keep the
                // store before the load.
                compiler_fence(Ordering::SeqCst);
                if self.owner.load(Ordering::Relaxed) == me {
                    h.enter_lock();
                    return Guard {
                        lock: self,
                        held: Held::Biased(h),
                    };
                }
                self.busy.store(false, Ordering::Release);
            }
        }
        self.lock_slow()
    }

    #[cold]
    #[inline(never)]
    fn lock_slow(&self) -> Guard<'_, S> {
        let h = hub::try_hub();
        let me = h.map(|h| h.bias_id());
        let mut m = self.mutex.lock().unwrap_or_else(|e| e.into_inner());
        let owner = self.owner.load(Ordering::Acquire);
        if let (Some(h), true) = (h, Some(owner) == me) {
            // Biased to this hub since the fast path looked (a guard of
            // this thread granted it as it dropped): enter as the owner
            // does; a revoker, which needs the mutex, waits for `busy`.
            if self.busy.load(Ordering::Relaxed) {
                drop(m);
                reentered();
            }
            self.busy.store(true, Ordering::Relaxed);
            drop(m);
            h.enter_lock();
            return Guard {
                lock: self,
                held: Held::Biased(h),
            };
        }
        if owner != NOBODY && owner != SHARED {
            self.revoke();
            m.need = m.need.saturating_mul(2).min(BIAS_AFTER_MAX);
            m.count = 0;
        }
        let mut grant = false;
        if let Some(me) = me {
            if m.hub == me {
                m.count = m.count.saturating_add(1);
            } else {
                m.hub = me;
                m.count = 1;
            }
            // The bias is given as the guard drops, with the mutex still
            // held: never while this critical section runs.
            grant = m.count >= m.need && can_bias();
        }
        if let Some(h) = h {
            h.enter_lock();
        }
        Guard {
            lock: self,
            held: Held::Mutex { m, hub: h, grant },
        }
    }

    /// Takes the bias away from its owner (the mutex is held): see the
    /// module docs.
    #[cold]
    fn revoke(&self) {
        self.owner.store(SHARED, Ordering::SeqCst);
        if let Err(e) = membarrier() {
            // Biasing registered the process for it (`can_bias`), and the
            // registration survives `fork`: only a filter installed since
            // (seccomp) can refuse it. Without the barrier the owner may
            // be inside while this thread goes in too: stop here rather
            // than let both in.
            eprintln!(
                "green: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed after it \
                 worked ({e}); a primitive's lock cannot be taken safely: aborting"
            );
            std::process::abort();
        }
        let mut spins = 0u32;
        while self.busy.load(Ordering::Acquire) {
            // The owner is inside a short critical section, or was
            // preempted there.
            if spins < 100 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

impl<S: Default> Default for Lock<S> {
    fn default() -> Self {
        Lock::new(S::default())
    }
}

impl<S> fmt::Debug for Lock<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let owner = match self.owner.load(Ordering::Relaxed) {
            NOBODY => "none".to_string(),
            SHARED => "shared".to_string(),
            h => format!("hub {h}"),
        };
        f.debug_struct("Lock").field("bias", &owner).finish()
    }
}

/// Holds a [`Lock`]; dereferences to its data.
pub(crate) struct Guard<'a, S> {
    lock: &'a Lock<S>,
    held: Held<'a>,
}

/// How a [`Guard`] holds its lock.
enum Held<'a> {
    /// Taken by the thread of the hub it is biased to, without the mutex.
    Biased(&'static hub::Hub),
    /// Through the mutex, on the thread of `hub` if it has one; `grant`:
    /// the lock is biased to that hub as the guard drops.
    Mutex {
        #[allow(dead_code)]
        m: MutexGuard<'a, Streak>,
        hub: Option<&'static hub::Hub>,
        grant: bool,
    },
}

impl<S> Deref for Guard<'_, S> {
    type Target = S;

    #[inline]
    fn deref(&self) -> &S {
        // SAFETY: this guard holds the lock (the data's invariant).
        unsafe { &*self.lock.data.get() }
    }
}

impl<S> DerefMut for Guard<'_, S> {
    #[inline]
    fn deref_mut(&mut self) -> &mut S {
        // SAFETY: as above, and `&mut self` is the only way in.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<S> Drop for Guard<'_, S> {
    #[inline]
    fn drop(&mut self) {
        match self.held {
            Held::Biased(h) => {
                self.lock.busy.store(false, Ordering::Release);
                h.leave_lock();
            }
            Held::Mutex { hub, grant, .. } => {
                if let Some(h) = hub {
                    if grant {
                        // From its next `lock` on, this hub's thread goes
                        // without the mutex (still held here: whoever
                        // takes it next sees the bias, and revokes it).
                        self.lock.owner.store(h.bias_id(), Ordering::Release);
                    }
                    h.leave_lock();
                }
            }
        }
    }
}

impl<S> fmt::Debug for Guard<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("biased", &matches!(self.held, Held::Biased(_)))
            .finish()
    }
}

#[cold]
#[inline(never)]
fn reentered() -> ! {
    panic!("green: a primitive's internal lock was taken twice by one thread")
}

/// Whether locks may be biased: the process registered for expedited
/// private memory barriers (once; `false` where the kernel refuses).
fn can_bias() -> bool {
    const UNKNOWN: u8 = 0;
    const YES: u8 = 1;
    const NO: u8 = 2;
    static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
    match STATE.load(Ordering::Acquire) {
        YES => true,
        NO => false,
        _ => {
            use crate::sys::thread::{membarrier, MembarrierCommand};
            let ok = membarrier(MembarrierCommand::RegisterPrivateExpedited).is_ok()
                && membarrier(MembarrierCommand::PrivateExpedited).is_ok();
            STATE.store(if ok { YES } else { NO }, Ordering::Release);
            ok
        }
    }
}

/// A full memory barrier on every CPU that runs a thread of this process.
fn membarrier() -> std::io::Result<()> {
    use crate::sys::thread::{membarrier, MembarrierCommand};
    membarrier(MembarrierCommand::PrivateExpedited).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn me() -> usize {
        hub::hub().bias_id()
    }

    /// Takes the lock `n` times on this thread, adding 1 each time.
    fn bump(l: &Lock<u64>, n: u64) {
        for _ in 0..n {
            *l.lock() += 1;
        }
    }

    #[test]
    fn a_thread_without_a_hub_is_never_biased() {
        let l = Arc::new(Lock::new(0u64));
        let l2 = l.clone();
        std::thread::spawn(move || bump(&l2, 100)).join().unwrap();
        assert_eq!(l.owner.load(Ordering::Relaxed), NOBODY);
    }

    #[test]
    fn one_hub_in_a_row_gets_the_bias() {
        let _ = hub::hub();
        let l = Lock::new(0u64);
        bump(&l, u64::from(BIAS_AFTER) - 1);
        assert_eq!(l.owner.load(Ordering::Relaxed), NOBODY);
        bump(&l, 1);
        if !can_bias() {
            eprintln!("membarrier is not available here: locks are never biased");
            return;
        }
        assert_eq!(l.owner.load(Ordering::Relaxed), me());
        let g = l.lock();
        assert!(
            matches!(g.held, Held::Biased(_)),
            "the owner takes the lock without the mutex"
        );
        assert!(l.busy.load(Ordering::Relaxed));
        // While it is held, no libc call parks this context.
        assert!(!hub::hub().can_park_foreign());
        drop(g);
        // Taken through the mutex, the same.
        let l2 = Lock::new(0u64);
        let g2 = l2.lock();
        assert!(matches!(g2.held, Held::Mutex { .. }));
        assert!(!hub::hub().can_park_foreign());
        drop(g2);
        let g = l.lock();
        drop(g);
        assert!(!l.busy.load(Ordering::Relaxed));
        assert!(hub::hub().can_park_foreign());
        assert_eq!(*l.lock(), u64::from(BIAS_AFTER));
    }

    #[test]
    fn a_plain_thread_revokes_the_bias() {
        let _ = hub::hub();
        let l = Arc::new(Lock::new(0u64));
        bump(&l, u64::from(BIAS_AFTER) + 10);
        let l2 = l.clone();
        std::thread::spawn(move || bump(&l2, 5)).join().unwrap();
        if can_bias() {
            assert_eq!(l.owner.load(Ordering::Relaxed), SHARED);
        }
        // The former owner now goes through the mutex, and needs a longer
        // streak to get the bias back.
        assert!(matches!(l.lock().held, Held::Mutex { .. }));
        assert_eq!(*l.lock(), u64::from(BIAS_AFTER) + 15);
        bump(&l, u64::from(BIAS_AFTER));
        assert_ne!(l.owner.load(Ordering::Relaxed), me());
        bump(&l, u64::from(BIAS_AFTER));
        if can_bias() {
            assert_eq!(l.owner.load(Ordering::Relaxed), me());
        }
    }

    /// Hub threads and plain threads take one lock at once, again and
    /// again: the bias moves and is revoked under load, and no increment
    /// is lost.
    #[test]
    fn mixed_threads_lose_no_update() {
        const N: u64 = 20_000;
        let l = Arc::new(Lock::new(0u64));
        let mut threads = Vec::new();
        for i in 0..4 {
            let l = l.clone();
            threads.push(std::thread::spawn(move || {
                if i % 2 == 0 {
                    // A hub thread: it may get the bias.
                    let _ = hub::hub();
                }
                for k in 0..N {
                    bump(&l, 1);
                    if k % 1000 == 0 {
                        std::thread::yield_now();
                    }
                }
            }));
        }
        let _ = hub::hub();
        bump(&l, N);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*l.lock(), 5 * N);
    }

    #[test]
    #[should_panic(expected = "internal lock was taken twice by one thread")]
    fn the_owner_taking_it_twice_panics() {
        let _ = hub::hub();
        let l = Lock::new(0u64);
        bump(&l, u64::from(BIAS_AFTER));
        if !can_bias() {
            panic!("internal lock was taken twice by one thread (not biased here)");
        }
        let _a = l.lock();
        let _b = l.lock();
    }
}

//! A model copy, checked with `loom`, of the biased lock of a primitive's
//! state (`src/wait/lock.rs`).
//!
//! This is not the lock's code: it is a standalone copy of its steps, with
//! the same atomics and orderings, each function naming the function it
//! mirrors (`Lock::lock`, `Lock::lock_slow`, `Lock::revoke`, the guard's
//! `Drop`, which grants the bias). A change to the protocol there must be
//! made here too.
//!
//! The protocol: the thread of the hub a lock is biased to enters with
//! `busy := true`, a compiler fence, and a look at `owner`; every other
//! thread takes the mutex, and one that finds the lock biased to another
//! hub marks it `SHARED`, makes every thread pass a full barrier
//! (`membarrier`), and waits for `busy` to clear. The `membarrier` is what
//! turns the owner's compiler fence into a full fence for the interleavings
//! that matter; loom does not model it, so the owner's fence is a `SeqCst`
//! fence here (and the revoker's `membarrier` one as well). Checked: the
//! data is never reached by two threads at once (loom's `UnsafeCell`
//! reports any access that is not ordered), no increment is lost, and no
//! thread waits forever, for an owner that takes the lock twice (biased,
//! or through the mutex after a revocation) against another thread that
//! takes it once; and for a lock that gets its bias in the middle of it.
//!
//! Run with `cargo rustc --profile test --test loom_lock_bias -- --cfg loom`
//! and then the test binary.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

const NOBODY: usize = 0;
const SHARED: usize = 1;
/// The bias id of the owner hub's thread in the model.
const HUB: usize = 2;

struct Lock {
    owner: AtomicUsize,
    busy: AtomicBool,
    /// The streak count of `Lock`'s mutex (how many of the owner's takes
    /// in a row, through the mutex, before it is biased).
    mutex: Mutex<u32>,
    data: UnsafeCell<u64>,
}

/// How many takes through the mutex bias the lock (`BIAS_AFTER`, smaller
/// here to keep the model small).
const BIAS_AFTER: u32 = 1;

impl Lock {
    fn new(owner: usize) -> Lock {
        Lock {
            owner: AtomicUsize::new(owner),
            busy: AtomicBool::new(false),
            mutex: Mutex::new(0),
            data: UnsafeCell::new(0),
        }
    }

    /// `Lock::lock` and the critical section (an increment) and the
    /// guard's `Drop`, for a thread whose bias id is `me` (`None`: no hub).
    fn add_one(&self, me: Option<usize>) {
        if let Some(me) = me {
            if self.owner.load(Ordering::Relaxed) == me {
                self.busy.store(true, Ordering::Relaxed);
                // `compiler_fence(SeqCst)`, made a full fence by the
                // revoker's `membarrier`.
                fence(Ordering::SeqCst);
                if self.owner.load(Ordering::Relaxed) == me {
                    self.data.with_mut(|d| unsafe { *d += 1 });
                    self.busy.store(false, Ordering::Release);
                    return;
                }
                self.busy.store(false, Ordering::Release);
            }
        }
        self.add_one_slow(me);
    }

    /// `Lock::lock_slow`, the critical section and the guard's drop (which
    /// grants the bias, the mutex still held).
    fn add_one_slow(&self, me: Option<usize>) {
        let mut streak = self.mutex.lock().unwrap();
        let owner = self.owner.load(Ordering::Acquire);
        if me.is_some() && Some(owner) == me {
            // Biased to this hub since the fast path looked: enter as the
            // owner does, and leave the mutex.
            self.busy.store(true, Ordering::Relaxed);
            drop(streak);
            self.data.with_mut(|d| unsafe { *d += 1 });
            self.busy.store(false, Ordering::Release);
            return;
        }
        if owner != NOBODY && owner != SHARED {
            self.revoke();
            *streak = 0;
        }
        let mut grant = false;
        if me.is_some() {
            *streak += 1;
            grant = *streak >= BIAS_AFTER;
        }
        self.data.with_mut(|d| unsafe { *d += 1 });
        if grant {
            self.owner.store(HUB, Ordering::Release);
        }
        drop(streak);
    }

    /// `Lock::revoke`, with the mutex held.
    fn revoke(&self) {
        self.owner.store(SHARED, Ordering::SeqCst);
        // `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`.
        fence(Ordering::SeqCst);
        while self.busy.load(Ordering::Acquire) {
            thread::yield_now();
        }
    }

    fn value(&self) -> u64 {
        let _g = self.mutex.lock().unwrap();
        self.data.with(|d| unsafe { *d })
    }
}

/// The hub's thread takes a lock that starts with `owner` twice, while a
/// thread without a hub takes it once.
fn two_takes_against_one(owner: usize) {
    loom::model(move || {
        let l = Arc::new(Lock::new(owner));
        let l2 = l.clone();
        let other = thread::spawn(move || l2.add_one(None));
        l.add_one(Some(HUB));
        l.add_one(Some(HUB));
        other.join().unwrap();
        assert_eq!(l.value(), 3);
    });
}

/// The lock is biased to the hub; the other thread revokes the bias at
/// any point of the hub's two takes.
#[test]
fn a_revocation_excludes_the_owner() {
    two_takes_against_one(HUB);
}

/// The lock starts unbiased: the hub's thread gets the bias through the
/// mutex, then takes it biased, while the other thread comes in at any
/// point.
#[test]
fn a_bias_granted_mid_way_excludes_the_other_thread() {
    two_takes_against_one(NOBODY);
}

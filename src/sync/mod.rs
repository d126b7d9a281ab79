//! Cooperative mirrors of [`std::sync`]: locks, condition variables,
//! barriers, one-time initialization and [`mpsc`] channels that park the
//! current green thread instead of blocking its OS thread.
//!
//! A user swaps `use std::sync::...` for `use green::sync::...` and the
//! program behaves the same, only cooperatively: while one green thread
//! waits for a [`Mutex`], the other green threads of its hub run — among
//! them, perhaps, the one that holds it. With the std types, a green thread
//! that waits blocks its whole OS thread, and if the holder is a green
//! thread of that same OS thread it can never run to release the lock.
//!
//! Every type here works between green threads of one hub, between green
//! threads of different hubs (OS threads), and with plain OS threads, which
//! simply block. Waiters are served in arrival order. The types have std's
//! names, signatures, `Send`/`Sync` bounds and poisoning, with one
//! difference: a green thread unwound by
//! [`GreenThread::kill`](crate::GreenThread::kill), by an expiring
//! [`Timeout`](crate::Timeout) or because its OS thread exits does not
//! poison what it held (see each type's docs). A green thread parked in any
//! of their waits can be killed or timed out; it leaves the wait without
//! losing a hand-off or a notification meant for others.
//!
//! What does not block — [`Arc`], [`Weak`], [`atomic`] and the poisoning
//! types — is std's own, re-exported.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use green::sync::{Condvar, Mutex};
//!
//! let pair = Arc::new((Mutex::new(false), Condvar::new()));
//! let pair2 = Arc::clone(&pair);
//! green::spawn(move || {
//!     green::sleep(Duration::from_millis(1));
//!     let (lock, cvar) = &*pair2;
//!     *lock.lock().unwrap() = true;
//!     cvar.notify_one();
//! });
//! // The root parks here, so the spawned green thread runs.
//! let (lock, cvar) = &*pair;
//! let started = cvar.wait_while(lock.lock().unwrap(), |started| !*started).unwrap();
//! assert!(*started);
//! ```

mod barrier;
mod condvar;
mod lazy_lock;
pub mod mpsc;
mod mutex;
mod once;
mod once_lock;
mod poison;
mod reentrant_lock;
mod rwlock;

pub use std::sync::{atomic, Arc, LockResult, PoisonError, TryLockError, TryLockResult, Weak};

pub use barrier::{Barrier, BarrierWaitResult};
pub use condvar::{Condvar, WaitTimeoutResult};
#[allow(deprecated)]
pub use lazy_lock::LazyLock;
pub use mutex::{Mutex, MutexGuard};
#[allow(deprecated)]
pub use once::{Once, OnceState, ONCE_INIT};
pub use once_lock::OnceLock;
pub use reentrant_lock::{ReentrantLock, ReentrantLockGuard};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A wait without a deadline ended without being served, which the wait
/// core rules out (at thread exit it blocks the OS thread instead).
#[cold]
fn cannot_wait(what: &str) -> ! {
    unreachable!("{what}: a wait without a deadline returned unserved")
}

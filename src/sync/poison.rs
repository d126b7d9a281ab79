//! Poisoning, as std does it, minus cancellations.
//!
//! A lock is poisoned when a guard is dropped by a panic that began while
//! the guard was held. An unwind caused by
//! [`GreenThread::kill`](crate::GreenThread::kill), an expiring
//! [`Timeout`](crate::Timeout) or the exit of the OS thread (which unwinds
//! its parked green threads) is not a failure of the code that held the
//! lock, so it does not poison.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LockResult, PoisonError};
use std::thread;

/// Whether a lock is poisoned.
pub(crate) struct Flag {
    failed: AtomicBool,
}

impl Flag {
    pub(crate) const fn new() -> Flag {
        Flag {
            failed: AtomicBool::new(false),
        }
    }

    /// `Ok(guard)` or, if poisoned, the same guard as the error.
    pub(crate) fn guard(&self) -> LockResult<Guard> {
        crate::hub::note_not_unwinding();
        let g = Guard {
            panicking: thread::panicking(),
        };
        if self.get() {
            Err(PoisonError::new(g))
        } else {
            Ok(g)
        }
    }

    /// `Ok(())`, or an error if poisoned.
    pub(crate) fn borrow(&self) -> LockResult<()> {
        if self.get() {
            Err(PoisonError::new(()))
        } else {
            Ok(())
        }
    }

    /// Poisons the lock if the current context started panicking while
    /// `guard` was held, unless the unwind is a kill or a timeout.
    pub(crate) fn done(&self, guard: &Guard) {
        if !guard.panicking && thread::panicking() && !crate::hub::unwinding_from_cancel() {
            self.failed.store(true, Ordering::Relaxed);
        }
    }

    pub(crate) fn get(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    pub(crate) fn clear(&self) {
        self.failed.store(false, Ordering::Relaxed);
    }
}

/// Remembers whether the context was already panicking when it took a lock.
#[derive(Clone, Copy)]
pub(crate) struct Guard {
    panicking: bool,
}

/// Maps the value of a [`LockResult`], keeping it an error if it was one.
pub(crate) fn map_result<T, U>(r: LockResult<T>, f: impl FnOnce(T) -> U) -> LockResult<U> {
    match r {
        Ok(t) => Ok(f(t)),
        Err(e) => Err(PoisonError::new(f(e.into_inner()))),
    }
}

//! One-time initialization: [`Once`], on which [`OnceLock`](super::OnceLock)
//! and [`LazyLock`](super::LazyLock) are built.
//!
//! A [`Once`] is an atomic state word — incomplete, running, poisoned,
//! complete — plus a wait list. The first caller marks it running and runs
//! its initializer with no lock held; later callers park in the list until
//! the runner finishes. Completion is one atomic load on the fast path.
//!
//! ```text
//!   INCOMPLETE --call--> RUNNING --returns--> COMPLETE
//!       ^                   |
//!       '--kill / Timeout --+--panics--> POISONED --call_once_force--> RUNNING
//! ```
//!
//! Because waiters park, an initializer may itself park (sleep, do I/O,
//! wait for another green thread) while other green threads of its hub run
//! — even those waiting for the same initialization. With std's types, a
//! second green thread of the same OS thread that waited for it would block
//! that OS thread and deadlock.

use crate::hub::{Blocker, Kind};
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU8, Ordering};

use super::cannot_wait;
use crate::wait::{self, WaitList, Waited};

const INCOMPLETE: u8 = 0;
const RUNNING: u8 = 1;
const POISONED: u8 = 2;
const COMPLETE: u8 = 3;

const POISONED_MSG: &str = "Once instance has previously been poisoned";

/// A synchronization primitive which can run a one-time global
/// initialization; callers that arrive while it runs park.
///
/// The mirror of [`std::sync::Once`]. Useful for one-time initialization
/// for FFI or related functionality; [`OnceLock`](super::OnceLock) and
/// [`LazyLock`](super::LazyLock) are the usual way to initialize a value.
///
/// # Poisoning
/// If the initializer panics, the `Once` is poisoned, as with std: later
/// [`call_once`](Once::call_once) calls panic, and
/// [`call_once_force`](Once::call_once_force) runs its initializer with
/// [`OnceState::is_poisoned`] returning `true`. An initializer unwound by
/// [`GreenThread::kill`](crate::GreenThread::kill), by an expiring
/// [`Timeout`](crate::Timeout) or because its OS thread exits does **not**
/// poison it: the `Once` returns
/// to its incomplete state and the next caller (perhaps one already
/// waiting) runs its own initializer.
///
/// # Examples
/// ```
/// use green::sync::Once;
///
/// static INIT: Once = Once::new();
/// INIT.call_once(|| {
///     // run initialization here
/// });
/// assert!(INIT.is_completed());
/// ```
pub struct Once {
    /// `INCOMPLETE`, `RUNNING`, `POISONED` or `COMPLETE`.
    ///
    /// # Invariant
    /// Written only under the `waiters` lock; `COMPLETE` is stored with
    /// Release after the initializer's effects, and is final.
    state: AtomicU8,
    waiters: wait::Lock<WaitList>,
}

fn waiters(w: &mut WaitList) -> &mut WaitList {
    w
}

/// State yielded to [`Once::call_once_force`]'s closure: whether an earlier
/// initializer panicked.
///
/// The mirror of [`std::sync::OnceState`]. As std's, it is `Send` but not
/// `Sync`:
///
/// ```compile_fail,E0277
/// fn assert_sync<T: Sync>() {}
/// assert_sync::<green::sync::OnceState>();
/// ```
pub struct OnceState {
    poisoned: bool,
    /// std's auto traits: `Send`, not `Sync`, not `RefUnwindSafe`.
    _not_sync: PhantomData<Cell<()>>,
}

impl fmt::Debug for OnceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnceState")
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl OnceState {
    /// Returns `true` if the associated [`Once`] was poisoned prior to the
    /// invocation of the closure passed to [`Once::call_once_force`].
    ///
    /// # Examples
    /// ```
    /// use green::sync::Once;
    ///
    /// let once = Once::new();
    /// let _ = std::panic::catch_unwind(|| once.call_once(|| panic!()));
    /// once.call_once_force(|state| assert!(state.is_poisoned()));
    /// assert!(once.is_completed());
    /// ```
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }
}

/// Ends a run: on an unwind, poisons (a panic) or resets (a cancellation)
/// the `Once`; either way wakes the waiters to look again.
struct Running<'a> {
    once: &'a Once,
}

impl Running<'_> {
    /// The initializer returned: the `Once` is complete.
    fn complete(self) {
        let mut w = self.once.waiters.lock();
        self.once.state.store(COMPLETE, Ordering::Release);
        w.notify_all(|_| {});
        drop(w);
        std::mem::forget(self);
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let to = if crate::hub::unwinding_from_cancel() {
            INCOMPLETE
        } else {
            POISONED
        };
        let mut w = self.once.waiters.lock();
        self.once.state.store(to, Ordering::Release);
        w.notify_all(|_| {});
    }
}

/// Initialization value for static [`Once`] values.
///
/// Deprecated as in std, in favour of [`Once::new`].
///
/// # Examples
/// ```
/// # #![allow(deprecated)]
/// use green::sync::{Once, ONCE_INIT};
///
/// static START: Once = ONCE_INIT;
/// START.call_once(|| {});
/// assert!(START.is_completed());
/// ```
#[deprecated(since = "1.38.0", note = "the `Once::new()` function is now preferred")]
// std's constant, which initializes statics: each use is a fresh `Once`.
#[allow(clippy::declare_interior_mutable_const)]
pub const ONCE_INIT: Once = Once::new();

impl Once {
    /// Creates a new `Once` value.
    ///
    /// # Examples
    /// ```
    /// static START: green::sync::Once = green::sync::Once::new();
    /// assert!(!START.is_completed());
    /// ```
    #[must_use]
    #[allow(clippy::new_without_default)] // as std's `Once`, which has no `Default`
    pub const fn new() -> Once {
        Once {
            state: AtomicU8::new(INCOMPLETE),
            waiters: wait::Lock::new(WaitList::new()),
        }
    }

    /// Performs an initialization routine once and only once. The given
    /// closure will be executed if this is the first time `call_once` has
    /// been called, and otherwise the routine will *not* be invoked.
    ///
    /// If another context is running an initializer, this parks until it
    /// completes. When this returns, some initializer has run and completed
    /// (it may not be the closure given here), and its effects are visible.
    /// Calling it again from inside `f` waits forever.
    ///
    /// # Panics
    /// Panics with "Once instance has previously been poisoned" if an
    /// earlier initializer panicked, and propagates a panic of `f` (which
    /// poisons the `Once`). Panics when it must wait and is called from the
    /// hub itself (a timer callback).
    ///
    /// # Examples
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::time::Duration;
    /// use green::sync::Once;
    ///
    /// static INIT: Once = Once::new();
    /// static VALUE: AtomicUsize = AtomicUsize::new(0);
    ///
    /// fn value() -> usize {
    ///     INIT.call_once(|| {
    ///         green::sleep(Duration::from_millis(1)); // may park
    ///         VALUE.store(42, Ordering::Relaxed);
    ///     });
    ///     // `call_once` returned: the initializer's store is visible.
    ///     VALUE.load(Ordering::Relaxed)
    /// }
    ///
    /// let a = green::spawn(value);
    /// let b = green::spawn(value); // parks until `a`'s initializer is done
    /// assert_eq!(a.wait() + b.wait(), 84);
    /// ```
    pub fn call_once<F>(&self, f: F)
    where
        F: FnOnce(),
    {
        if self.is_completed() {
            return;
        }
        let mut f = Some(f);
        self.call_inner(false, &mut |_| {
            if let Some(f) = f.take() {
                f();
            }
        });
    }

    /// Performs the same function as [`call_once`](Once::call_once) except
    /// it ignores poisoning.
    ///
    /// If the `Once` was poisoned, the closure runs with a [`OnceState`]
    /// whose [`is_poisoned`](OnceState::is_poisoned) is `true`; if it
    /// returns, the `Once` is complete.
    ///
    /// # Panics
    /// Propagates a panic of `f` (which poisons the `Once`). Panics when it
    /// must wait and is called from the hub itself (a timer callback).
    ///
    /// # Examples
    /// ```
    /// use green::sync::Once;
    ///
    /// static INIT: Once = Once::new();
    /// let _ = std::panic::catch_unwind(|| INIT.call_once(|| panic!()));
    /// INIT.call_once_force(|state| assert!(state.is_poisoned()));
    /// INIT.call_once_force(|_| unreachable!("already complete"));
    /// ```
    pub fn call_once_force<F>(&self, f: F)
    where
        F: FnOnce(&OnceState),
    {
        if self.is_completed() {
            return;
        }
        let mut f = Some(f);
        self.call_inner(true, &mut |state| {
            if let Some(f) = f.take() {
                f(state);
            }
        });
    }

    /// Returns `true` if some initializer has completed successfully.
    ///
    /// # Examples
    /// ```
    /// let once = green::sync::Once::new();
    /// assert!(!once.is_completed());
    /// once.call_once(|| {});
    /// assert!(once.is_completed());
    /// ```
    #[inline]
    pub fn is_completed(&self) -> bool {
        self.state.load(Ordering::Acquire) == COMPLETE
    }

    /// Parks the current green thread until initialization has completed.
    ///
    /// # Panics
    /// Panics with "Once instance has previously been poisoned" if the
    /// `Once` is or becomes poisoned (use [`wait_force`](Once::wait_force)
    /// to wait through it). Panics when it must wait and is called from the
    /// hub itself (a timer callback).
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use green::sync::Once;
    ///
    /// let once = Arc::new(Once::new());
    /// let o = Arc::clone(&once);
    /// let waiter = green::spawn(move || o.wait());
    /// green::yield_now(); // the waiter parks
    /// once.call_once(|| {});
    /// waiter.wait();
    /// ```
    pub fn wait(&self) {
        if !self.is_completed() {
            self.wait_inner(false);
        }
    }

    /// Parks the current green thread until initialization has completed,
    /// ignoring poisoning: a poisoned `Once` is waited on until a
    /// [`call_once_force`](Once::call_once_force) completes it.
    ///
    /// # Panics
    /// Panics when it must wait and is called from the hub itself (a timer
    /// callback).
    ///
    /// # Examples
    /// ```
    /// let once = green::sync::Once::new();
    /// once.call_once(|| {});
    /// once.wait_force(); // complete: returns at once
    /// ```
    pub fn wait_force(&self) {
        if !self.is_completed() {
            self.wait_inner(true);
        }
    }

    #[cold]
    fn call_inner(&self, ignore_poison: bool, f: &mut dyn FnMut(&OnceState)) {
        let mut w = self.waiters.lock();
        loop {
            match self.state.load(Ordering::Acquire) {
                COMPLETE => return,
                POISONED if !ignore_poison => {
                    drop(w);
                    panic!("{POISONED_MSG}");
                }
                RUNNING => w = self.park(w, "green::sync::Once::call_once"),
                state => {
                    self.state.store(RUNNING, Ordering::Relaxed);
                    drop(w);
                    crate::hub::note_not_unwinding();
                    let running = Running { once: self };
                    f(&OnceState {
                        poisoned: state == POISONED,
                        _not_sync: PhantomData,
                    });
                    running.complete();
                    return;
                }
            }
        }
    }

    #[cold]
    fn wait_inner(&self, ignore_poison: bool) {
        let mut w = self.waiters.lock();
        loop {
            match self.state.load(Ordering::Acquire) {
                COMPLETE => return,
                POISONED if !ignore_poison => {
                    drop(w);
                    panic!("{POISONED_MSG}");
                }
                _ => w = self.park(w, "green::sync::Once::wait"),
            }
        }
    }

    /// Parks until the state changes; returns the lock re-taken.
    fn park<'a>(&'a self, w: wait::Guard<'a, WaitList>, what: &str) -> wait::Guard<'a, WaitList> {
        // Every waiter is woken on every change: one that is woken and
        // then unwound has nothing to pass on.
        let on = Blocker::at(Kind::Once, &self.waiters);
        match wait::wait(&self.waiters, w, waiters, None, None, |_, _| {}, on) {
            Waited::Notified(_) => self.waiters.lock(),
            Waited::TimedOut(_) => cannot_wait(what),
        }
    }
}

impl fmt::Debug for Once {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Once").finish_non_exhaustive()
    }
}

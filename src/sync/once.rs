//! One-time initialization: [`Once`], and the cells built on it,
//! [`OnceLock`] and [`LazyLock`].
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

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::panic::{RefUnwindSafe, UnwindSafe};
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
/// for FFI or related functionality; [`OnceLock`] and [`LazyLock`] are the
/// usual way to initialize a value.
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
    waiters: std::sync::Mutex<WaitList>,
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
        let mut w = wait::lock(&self.once.waiters);
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
        let mut w = wait::lock(&self.once.waiters);
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
            waiters: std::sync::Mutex::new(WaitList::new()),
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
        let mut w = wait::lock(&self.waiters);
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
        let mut w = wait::lock(&self.waiters);
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
    fn park<'a>(
        &'a self,
        w: std::sync::MutexGuard<'a, WaitList>,
        what: &str,
    ) -> std::sync::MutexGuard<'a, WaitList> {
        // Every waiter is woken on every change: one that is woken and
        // then unwound has nothing to pass on.
        match wait::wait(&self.waiters, w, waiters, None, None, |_, _| {}) {
            Waited::Notified(_) => wait::lock(&self.waiters),
            Waited::TimedOut(_) => cannot_wait(what),
        }
    }
}

impl fmt::Debug for Once {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Once").finish_non_exhaustive()
    }
}

/// A synchronization primitive which can be written to only once; callers
/// that arrive while it is being initialized park.
///
/// The mirror of [`std::sync::OnceLock`]. Many contexts may call
/// [`get_or_init`](OnceLock::get_or_init) at once: one initializer runs, the
/// others park until it is done. The initializer may park too.
///
/// If the initializer panics, the panic propagates and the cell stays
/// empty; the next caller runs its own initializer (as with std). The same
/// holds when the initializing green thread is killed or timed out.
///
/// Like std's, it is `Sync` only when `T` is both `Send` and `Sync`:
///
/// ```compile_fail,E0277
/// fn assert_sync<T: Sync>() {}
/// assert_sync::<green::sync::OnceLock<std::cell::Cell<u32>>>();
/// ```
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use green::sync::OnceLock;
///
/// static CELL: OnceLock<usize> = OnceLock::new();
///
/// let a = green::spawn(|| {
///     *CELL.get_or_init(|| {
///         green::sleep(Duration::from_millis(1)); // parks; `b` runs
///         92
///     })
/// });
/// let b = green::spawn(|| *CELL.get_or_init(|| unreachable!("`a` initializes")));
/// assert_eq!(a.wait(), 92);
/// assert_eq!(b.wait(), 92);
/// ```
pub struct OnceLock<T> {
    once: Once,
    /// # Invariant
    /// Written only by the initializer `once` runs, before `once`
    /// completes; after that only through `&mut self`.
    value: UnsafeCell<Option<T>>,
}

// SAFETY: the value is written once and then shared: `&OnceLock` moves a
// `T` in from the initializing thread (`T: Send`) and shares `&T` between
// threads (`T: Sync`). Same bounds as std.
unsafe impl<T: Sync + Send> Sync for OnceLock<T> {}
// SAFETY: owning the cell means owning the `T`.
unsafe impl<T: Send> Send for OnceLock<T> {}

impl<T: RefUnwindSafe + UnwindSafe> RefUnwindSafe for OnceLock<T> {}
impl<T: UnwindSafe> UnwindSafe for OnceLock<T> {}

impl<T> OnceLock<T> {
    /// Creates a new uninitialized cell.
    ///
    /// # Examples
    /// ```
    /// static CELL: green::sync::OnceLock<u32> = green::sync::OnceLock::new();
    /// assert!(CELL.get().is_none());
    /// ```
    #[inline]
    #[must_use]
    pub const fn new() -> OnceLock<T> {
        OnceLock {
            once: Once::new(),
            value: UnsafeCell::new(None),
        }
    }

    /// Gets the reference to the underlying value, or `None` if the cell
    /// is uninitialized or being initialized. Never waits.
    ///
    /// # Examples
    /// ```
    /// let cell = green::sync::OnceLock::new();
    /// assert!(cell.get().is_none());
    /// let _ = cell.set(1);
    /// assert_eq!(cell.get(), Some(&1));
    /// ```
    #[inline]
    pub fn get(&self) -> Option<&T> {
        if self.once.is_completed() {
            // SAFETY: complete: the value was written before (Acquire) and
            // is only changed through `&mut self` from now on.
            unsafe { (*self.value.get()).as_ref() }
        } else {
            None
        }
    }

    /// Gets the mutable reference to the underlying value, or `None` if
    /// the cell is uninitialized.
    ///
    /// # Examples
    /// ```
    /// let mut cell = green::sync::OnceLock::from(1);
    /// *cell.get_mut().unwrap() += 1;
    /// assert_eq!(cell.get(), Some(&2));
    /// ```
    #[inline]
    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.value.get_mut().as_mut()
    }

    /// Parks the current green thread until the cell is initialized, and
    /// returns the value.
    ///
    /// # Panics
    /// Panics when it must wait and is called from the hub itself (a timer
    /// callback).
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use green::sync::OnceLock;
    ///
    /// let cell = Arc::new(OnceLock::new());
    /// let c = Arc::clone(&cell);
    /// let reader = green::spawn(move || *c.wait());
    /// green::yield_now(); // the reader parks
    /// cell.set(5).unwrap();
    /// assert_eq!(reader.wait(), 5);
    /// ```
    pub fn wait(&self) -> &T {
        self.once.wait_force();
        self.get().expect("a complete OnceLock holds a value")
    }

    /// Initializes the contents of the cell to `value`.
    ///
    /// If the cell is being initialized by another context, this parks
    /// until that is done.
    ///
    /// # Errors
    /// `Err(value)` if the cell was already initialized.
    ///
    /// # Examples
    /// ```
    /// let cell = green::sync::OnceLock::new();
    /// assert_eq!(cell.set(92), Ok(()));
    /// assert_eq!(cell.set(62), Err(62));
    /// assert_eq!(cell.get(), Some(&92));
    /// ```
    pub fn set(&self, value: T) -> Result<(), T> {
        let mut value = Some(value);
        self.get_or_init(|| value.take().expect("the initializer runs once"));
        match value {
            None => Ok(()),
            Some(value) => Err(value),
        }
    }

    /// Gets the contents of the cell, initializing it to `f()` if the cell
    /// was uninitialized.
    ///
    /// Many contexts may call it at once with different initializers: only
    /// one runs, the others park until it is done, then all return its
    /// value. `f` may park. Calling it on the same cell from inside `f`
    /// waits forever.
    ///
    /// # Panics
    /// If `f` panics, the panic is propagated to the caller and the cell
    /// stays uninitialized. Panics when it must wait and is called from the
    /// hub itself (a timer callback).
    ///
    /// # Examples
    /// ```
    /// let cell = green::sync::OnceLock::new();
    /// assert_eq!(*cell.get_or_init(|| 92), 92);
    /// assert_eq!(*cell.get_or_init(|| unreachable!()), 92);
    /// ```
    pub fn get_or_init<F>(&self, f: F) -> &T
    where
        F: FnOnce() -> T,
    {
        if let Some(v) = self.get() {
            return v;
        }
        self.once.call_once_force(|_| {
            let v = f();
            // SAFETY: `once` runs this initializer alone, and no one reads
            // the value before `once` completes.
            unsafe { *self.value.get() = Some(v) };
        });
        self.get().expect("a complete OnceLock holds a value")
    }

    /// Consumes the cell, returning the wrapped value, or `None` if it was
    /// uninitialized.
    ///
    /// # Examples
    /// ```
    /// let cell: green::sync::OnceLock<String> = green::sync::OnceLock::new();
    /// assert_eq!(cell.into_inner(), None);
    /// let cell = green::sync::OnceLock::from("hello".to_string());
    /// assert_eq!(cell.into_inner(), Some("hello".to_string()));
    /// ```
    #[inline]
    pub fn into_inner(mut self) -> Option<T> {
        self.take()
    }

    /// Takes the value out of the cell, moving it back to an uninitialized
    /// state. Returns `None` if the cell was uninitialized.
    ///
    /// # Examples
    /// ```
    /// let mut cell = green::sync::OnceLock::from(1);
    /// assert_eq!(cell.take(), Some(1));
    /// assert_eq!(cell.get(), None);
    /// ```
    #[inline]
    pub fn take(&mut self) -> Option<T> {
        if self.once.is_completed() {
            self.once = Once::new();
            self.value.get_mut().take()
        } else {
            None
        }
    }
}

impl<T> Default for OnceLock<T> {
    /// Creates a new uninitialized cell.
    #[inline]
    fn default() -> OnceLock<T> {
        OnceLock::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("OnceLock");
        match self.get() {
            Some(v) => d.field(v),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}

impl<T: Clone> Clone for OnceLock<T> {
    fn clone(&self) -> OnceLock<T> {
        let cell = OnceLock::new();
        if let Some(value) = self.get() {
            // A fresh cell: `set` cannot fail.
            let _ = cell.set(value.clone());
        }
        cell
    }
}

impl<T> From<T> for OnceLock<T> {
    /// Creates a new cell with its contents set to `value`.
    fn from(value: T) -> Self {
        let cell = OnceLock::new();
        // A fresh cell: `set` cannot fail.
        let _ = cell.set(value);
        cell
    }
}

impl<T: PartialEq> PartialEq for OnceLock<T> {
    /// Equality for two `OnceLock`s: equal if both are uninitialized, or if
    /// both hold equal values.
    #[inline]
    fn eq(&self, other: &OnceLock<T>) -> bool {
        self.get() == other.get()
    }
}

impl<T: Eq> Eq for OnceLock<T> {}

/// What a [`LazyLock`] holds.
enum Data<T, F> {
    Init(F),
    Value(T),
    /// The initializer was taken and did not return.
    Poisoned,
}

/// A value which is initialized on the first access; callers that arrive
/// while it is being initialized park.
///
/// The mirror of [`std::sync::LazyLock`]: usable in statics, dereferences
/// to the value, runs the initializer once. The initializer may park.
///
/// # Poisoning
/// If the initializer panics, the panic propagates and the `LazyLock` is
/// poisoned, as with std: later accesses panic. Unlike [`Once`], this also
/// happens when the initializing green thread is killed or timed out: the
/// initializer is an `FnOnce`, consumed by the run that did not finish, so
/// there is nothing left to run.
///
/// As std's, it is `Sync` only when the value is `Send` and `Sync` and the
/// initializer is `Send`:
///
/// ```compile_fail,E0277
/// fn assert_sync<T: Sync>() {}
/// assert_sync::<green::sync::LazyLock<std::cell::Cell<u8>>>();
/// ```
///
/// # Examples
/// ```
/// use std::collections::HashMap;
/// use green::sync::LazyLock;
///
/// static TABLE: LazyLock<HashMap<u32, &str>> = LazyLock::new(|| {
///     HashMap::from([(1, "one"), (2, "two")])
/// });
///
/// assert_eq!(TABLE[&1], "one");
/// ```
pub struct LazyLock<T, F = fn() -> T> {
    once: Once,
    /// # Invariant
    /// Changed only by the initializer `once` runs, before `once`
    /// completes; after that only through `&mut self`.
    data: UnsafeCell<Data<T, F>>,
}

// SAFETY: the initializer runs on one thread at a time (`F: Send`), moves
// its value into the cell (`T: Send`), and the value is then shared
// (`T: Sync`). Same bounds as std.
unsafe impl<T: Sync + Send, F: Send> Sync for LazyLock<T, F> {}

impl<T: RefUnwindSafe + UnwindSafe, F: UnwindSafe> RefUnwindSafe for LazyLock<T, F> {}

impl<T, F: FnOnce() -> T> LazyLock<T, F> {
    /// Creates a new lazy value with the given initializing function.
    ///
    /// # Examples
    /// ```
    /// use green::sync::LazyLock;
    ///
    /// let hello = "Hello, World!".to_string();
    /// let lazy = LazyLock::new(|| hello.to_uppercase());
    /// assert_eq!(&*lazy, "HELLO, WORLD!");
    /// ```
    #[inline]
    pub const fn new(f: F) -> LazyLock<T, F> {
        LazyLock {
            once: Once::new(),
            data: UnsafeCell::new(Data::Init(f)),
        }
    }

    /// Forces the evaluation of this lazy value and returns a reference to
    /// the result. This is equivalent to the `Deref` impl, but is explicit.
    ///
    /// If another context is running the initializer, this parks until it
    /// is done.
    ///
    /// # Panics
    /// If the initializer panics, the panic is propagated and the
    /// `LazyLock` is poisoned; forcing a poisoned `LazyLock` panics with
    /// "LazyLock instance has previously been poisoned". Panics when it must
    /// wait and is called from the hub itself (a timer callback).
    ///
    /// # Examples
    /// ```
    /// use green::sync::LazyLock;
    ///
    /// let lazy = LazyLock::new(|| 92);
    /// assert_eq!(LazyLock::force(&lazy), &92);
    /// assert_eq!(&*lazy, &92);
    /// ```
    pub fn force(this: &LazyLock<T, F>) -> &T {
        if !this.once.is_completed() {
            this.once.call_once_force(|_| {
                // SAFETY: `once` runs this initializer alone, and nothing
                // else touches the data before `once` completes.
                let old = unsafe { std::mem::replace(&mut *this.data.get(), Data::Poisoned) };
                let Data::Init(f) = old else {
                    panic!("LazyLock instance has previously been poisoned");
                };
                let value = f();
                // SAFETY: as above; `f` has returned, so no reference into
                // the data is alive.
                unsafe { *this.data.get() = Data::Value(value) };
            });
        }
        LazyLock::get(this).expect("a complete LazyLock holds a value")
    }

    /// Forces the evaluation of this lazy value and returns a mutable
    /// reference to the result.
    ///
    /// # Panics
    /// As [`force`](LazyLock::force).
    ///
    /// # Examples
    /// ```
    /// use green::sync::LazyLock;
    ///
    /// let mut lazy = LazyLock::new(|| 92);
    /// *LazyLock::force_mut(&mut lazy) += 1;
    /// assert_eq!(*lazy, 93);
    /// ```
    pub fn force_mut(this: &mut LazyLock<T, F>) -> &mut T {
        LazyLock::force(this);
        LazyLock::get_mut(this).expect("a complete LazyLock holds a value")
    }
}

impl<T, F> LazyLock<T, F> {
    /// Returns a reference to the value if initialized, or `None` if not.
    /// Never runs the initializer and never waits.
    ///
    /// # Examples
    /// ```
    /// use green::sync::LazyLock;
    ///
    /// let lazy = LazyLock::new(|| 92);
    /// assert_eq!(LazyLock::get(&lazy), None);
    /// let _ = LazyLock::force(&lazy);
    /// assert_eq!(LazyLock::get(&lazy), Some(&92));
    /// ```
    #[inline]
    pub fn get(this: &LazyLock<T, F>) -> Option<&T> {
        if !this.once.is_completed() {
            return None;
        }
        // SAFETY: complete: the value was written before (Acquire) and is
        // only changed through `&mut self` from now on.
        match unsafe { &*this.data.get() } {
            Data::Value(v) => Some(v),
            _ => None,
        }
    }

    /// Returns a mutable reference to the value if initialized, or `None`
    /// if not. Never runs the initializer.
    ///
    /// # Examples
    /// ```
    /// use green::sync::LazyLock;
    ///
    /// let mut lazy = LazyLock::new(|| 92);
    /// assert_eq!(LazyLock::get_mut(&mut lazy), None);
    /// let _ = LazyLock::force(&lazy);
    /// *LazyLock::get_mut(&mut lazy).unwrap() = 44;
    /// assert_eq!(*lazy, 44);
    /// ```
    #[inline]
    pub fn get_mut(this: &mut LazyLock<T, F>) -> Option<&mut T> {
        match this.data.get_mut() {
            Data::Value(v) => Some(v),
            _ => None,
        }
    }
}

impl<T, F: FnOnce() -> T> Deref for LazyLock<T, F> {
    type Target = T;

    /// Dereferences the value, forcing its evaluation first.
    ///
    /// # Panics
    /// As [`LazyLock::force`].
    #[inline]
    fn deref(&self) -> &T {
        LazyLock::force(self)
    }
}

impl<T, F: FnOnce() -> T> DerefMut for LazyLock<T, F> {
    /// Mutably dereferences the value, forcing its evaluation first.
    ///
    /// # Panics
    /// As [`LazyLock::force`].
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        LazyLock::force_mut(self)
    }
}

impl<T: Default> Default for LazyLock<T> {
    /// Creates a new lazy value using `Default` as the initializing
    /// function.
    #[inline]
    fn default() -> LazyLock<T> {
        LazyLock::new(T::default)
    }
}

impl<T: fmt::Debug, F> fmt::Debug for LazyLock<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("LazyLock");
        match LazyLock::get(self) {
            Some(v) => d.field(v),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}

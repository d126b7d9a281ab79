//! [`RwLock`]: a reader-writer lock whose waiters park, served in order.
//!
//! The state (how many readers hold the lock, whether a writer does) and
//! one FIFO queue of waiting readers and writers live under a short
//! internal lock. A request is granted at once only if it is compatible
//! with the holders *and nobody is queued*; otherwise it queues. Whenever
//! the lock is released or a writer downgrades to a reader, [`grant`]
//! admits from the front of the queue: one writer, or every reader up to
//! the next queued writer. So a waiting writer holds back readers that
//! come after it (no writer starvation), and readers queued together are
//! admitted together.

use crate::hub::{Blocker, Kind};
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::ptr::NonNull;
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};

use super::{cannot_wait, poison};
use crate::wait::{self, WaitList, Waited};

/// What a queued context asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

struct State {
    readers: usize,
    writer: bool,
    /// Each waiter's slot holds the [`Access`] it asks for.
    queue: WaitList<Access>,
}

fn queue(s: &mut State) -> &mut WaitList<Access> {
    &mut s.queue
}

/// Admits waiters from the front of the queue while they are compatible
/// with the holders.
fn grant(s: &mut State) {
    while let Some(slot) = s.queue.front_slot() {
        match *slot {
            Some(Access::Write) => {
                if s.readers == 0 && !s.writer {
                    s.writer = true;
                    s.queue.pop_notify(|_| {});
                }
                return;
            }
            Some(Access::Read) => {
                if s.writer {
                    return;
                }
                s.readers += 1;
                s.queue.pop_notify(|_| {});
            }
            None => unreachable!("a queued waiter names its access"),
        }
    }
}

/// A waiter that was granted the lock and then unwound: releases it.
fn release(s: &mut State, granted: Option<Access>) {
    match granted {
        Some(Access::Read) => s.readers -= 1,
        Some(Access::Write) => s.writer = false,
        None => unreachable!("a granted waiter keeps its access"),
    }
    grant(s);
}

/// A reader-writer lock: many readers or one writer at a time; a context
/// that waits for it parks, letting other green threads run.
///
/// The mirror of [`std::sync::RwLock`], with the same methods, signatures,
/// `Send`/`Sync` bounds and poisoning. Waiting parks only the current green
/// thread (a plain OS thread blocks). Requests are served in arrival order:
/// a queued writer is not starved by a stream of readers, since readers
/// arriving after it wait behind it; readers queued next to each other are
/// admitted together.
///
/// Like std's, it is `Sync` only when `T` is both `Send` and `Sync`, since
/// readers on several threads share `&T`:
///
/// ```compile_fail,E0277
/// fn assert_sync<T: Sync>() {}
/// assert_sync::<green::sync::RwLock<std::cell::Cell<u32>>>();
/// ```
///
/// # Poisoning
/// As with std, a panic while a *write* guard is held poisons the lock;
/// read guards never poison. A green thread unwound while holding a write
/// guard by [`GreenThread::kill`](crate::GreenThread::kill), by an expiring
/// [`Timeout`](crate::Timeout) or because its OS thread exits does **not**
/// poison it.
///
/// # Examples
/// ```
/// use green::sync::RwLock;
///
/// let lock = RwLock::new(5);
/// {
///     let r1 = lock.read().unwrap();
///     let r2 = lock.read().unwrap();
///     assert_eq!(*r1 + *r2, 10);
/// }
/// {
///     let mut w = lock.write().unwrap();
///     *w += 1;
///     assert_eq!(*w, 6);
/// }
/// ```
pub struct RwLock<T: ?Sized> {
    state: wait::Lock<State>,
    poison: poison::Flag,
    data: UnsafeCell<T>,
}

// SAFETY: the lock moves a `T` between threads only with `T: Send`.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: readers on several threads share `&T` (`T: Sync`); a writer gets
// `&mut T` on whichever thread it runs (`T: Send`). Same bounds as std.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

impl<T: ?Sized> UnwindSafe for RwLock<T> {}
impl<T: ?Sized> RefUnwindSafe for RwLock<T> {}

/// An RAII guard of shared read access to an [`RwLock`]; released when
/// dropped.
///
/// Made by [`RwLock::read`], [`RwLock::try_read`] and
/// [`RwLockWriteGuard::downgrade`]. Like std's guard it is not `Send`:
///
/// ```compile_fail,E0277
/// fn assert_send<T: Send>() {}
/// assert_send::<green::sync::RwLockReadGuard<'static, u32>>();
/// ```
///
/// and, as std's, it is covariant in `T` (it only reads the `T`), so a
/// guard of `&'long U` may be used where one of `&'short U` is expected:
///
/// ```
/// use green::sync::{RwLock, RwLockReadGuard};
///
/// fn do_stuff<'a>(_: RwLockReadGuard<'_, &'a i32>, _: &'a i32) {}
///
/// let j = 5;
/// let lock = RwLock::new(&j);
/// {
///     let i = 6;
///     do_stuff(lock.read().unwrap(), &i);
/// }
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized + 'a> {
    /// The locked data. A pointer, not `&'a RwLock<T>`: that would make the
    /// guard invariant in `T` (the lock holds an `UnsafeCell<T>`), and a
    /// `&'a T` would promise the data stays shared after the guard is
    /// dropped. `NonNull` is covariant, and not `Send` nor `Sync`.
    ///
    /// # Invariant
    /// Points to the `data` of the `RwLock` whose `state` is `state`, and
    /// that lock is read-locked on behalf of this guard.
    data: NonNull<T>,
    /// The lock's state, to release the read lock from.
    state: &'a wait::Lock<State>,
}

// SAFETY: a shared guard only gives `&T`, shareable when `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}

/// An RAII guard of exclusive write access to an [`RwLock`]; released when
/// dropped.
///
/// Made by [`RwLock::write`] and [`RwLock::try_write`]. Like std's guard it
/// is not `Send`:
///
/// ```compile_fail,E0277
/// fn assert_send<T: Send>() {}
/// assert_send::<green::sync::RwLockWriteGuard<'static, u32>>();
/// ```
///
/// and, unlike the read guard, it is invariant in `T`, as std's: a guard
/// of `&'static str` cannot become one of `&'short str`, through which a
/// short-lived reference could be stored:
///
/// ```compile_fail
/// use green::sync::RwLockWriteGuard;
///
/// fn shorten<'a, 'short>(
///     g: RwLockWriteGuard<'a, &'static str>,
/// ) -> RwLockWriteGuard<'a, &'short str> {
///     g
/// }
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized + 'a> {
    lock: &'a RwLock<T>,
    poison: poison::Guard,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard only gives `&T`, shareable when `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T> RwLock<T> {
    /// Creates a new instance of an `RwLock<T>` which is unlocked.
    ///
    /// # Examples
    /// ```
    /// use green::sync::RwLock;
    ///
    /// static CONFIG: RwLock<u32> = RwLock::new(5);
    /// assert_eq!(*CONFIG.read().unwrap(), 5);
    /// ```
    #[inline]
    pub const fn new(t: T) -> RwLock<T> {
        RwLock {
            state: wait::Lock::new(State {
                readers: 0,
                writer: false,
                queue: WaitList::new(),
            }),
            poison: poison::Flag::new(),
            data: UnsafeCell::new(t),
        }
    }

    /// Consumes this `RwLock`, returning the underlying data.
    ///
    /// # Errors
    /// If the lock is poisoned, the data is returned inside a
    /// [`PoisonError`](std::sync::PoisonError).
    ///
    /// # Examples
    /// ```
    /// let lock = green::sync::RwLock::new(String::from("hello"));
    /// assert_eq!(lock.into_inner().unwrap(), "hello");
    /// ```
    pub fn into_inner(self) -> LockResult<T> {
        let poisoned = self.poison.borrow();
        let data = self.data.into_inner();
        poison::map_result(poisoned, |()| data)
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Waits in the queue for `access`; on return it has been granted.
    #[cold]
    fn wait_for(&self, s: wait::Guard<'_, State>, access: Access) {
        /// Re-runs [`grant`] if the waiter is unwound while queued: the
        /// waiter it leaves may have been holding back readers behind it.
        struct Regrant<'a>(&'a wait::Lock<State>);
        impl Drop for Regrant<'_> {
            fn drop(&mut self) {
                grant(&mut self.0.lock());
            }
        }
        let regrant = Regrant(&self.state);
        let on = Blocker::at(Kind::RwLock, &self.state);
        match wait::wait(&self.state, s, queue, Some(access), None, release, on) {
            Waited::Notified(_) => std::mem::forget(regrant),
            Waited::TimedOut(_) => match access {
                Access::Read => cannot_wait("green::sync::RwLock::read"),
                Access::Write => cannot_wait("green::sync::RwLock::write"),
            },
        }
    }

    /// Locks this `RwLock` with shared read access, parking the current
    /// green thread until it can be acquired.
    ///
    /// Many readers may hold the lock at once. A reader waits while a
    /// writer holds the lock or while anyone is queued before it — so a
    /// context that already reads and reads again behind a queued writer
    /// waits forever, as it may with std.
    ///
    /// # Errors
    /// If the lock is poisoned, the guard is returned inside a
    /// [`PoisonError`](std::sync::PoisonError); the lock is held either way.
    ///
    /// # Panics
    /// Panics when it must wait and is called from the hub itself (a timer
    /// callback).
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use green::sync::RwLock;
    ///
    /// let lock = Arc::new(RwLock::new(1));
    /// let c = Arc::clone(&lock);
    /// let n = green::spawn(move || *c.read().unwrap()).wait();
    /// assert_eq!(n, 1);
    /// ```
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        crate::hub::coop_spend();
        let mut s = self.state.lock();
        if !s.writer && s.queue.is_empty() {
            s.readers += 1;
        } else {
            self.wait_for(s, Access::Read);
        }
        // SAFETY: read access was just granted.
        unsafe { RwLockReadGuard::new(self) }
    }

    /// Attempts to acquire this `RwLock` with shared read access without
    /// waiting.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if a writer holds the lock or anyone is
    /// queued for it; [`TryLockError::Poisoned`] (holding the guard) if it
    /// was acquired but is poisoned.
    ///
    /// # Examples
    /// ```
    /// use green::sync::RwLock;
    ///
    /// let lock = RwLock::new(1);
    /// let r = lock.try_read().unwrap();
    /// assert_eq!(*r, 1);
    /// assert!(lock.try_write().is_err());
    /// ```
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        crate::hub::coop_spend();
        let mut s = self.state.lock();
        if !s.writer && s.queue.is_empty() {
            s.readers += 1;
            drop(s);
            // SAFETY: read access was just granted.
            Ok(unsafe { RwLockReadGuard::new(self) }?)
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    /// Locks this `RwLock` with exclusive write access, parking the current
    /// green thread until it can be acquired.
    ///
    /// Taking the write lock while the current context holds the lock in
    /// either mode waits forever, as with std.
    ///
    /// # Errors
    /// If the lock is poisoned, the guard is returned inside a
    /// [`PoisonError`](std::sync::PoisonError); the lock is held either way.
    ///
    /// # Panics
    /// Panics when it must wait and is called from the hub itself (a timer
    /// callback).
    ///
    /// # Examples
    /// ```
    /// let lock = green::sync::RwLock::new(1);
    /// *lock.write().unwrap() += 1;
    /// assert_eq!(*lock.read().unwrap(), 2);
    /// ```
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        crate::hub::coop_spend();
        let mut s = self.state.lock();
        if !s.writer && s.readers == 0 && s.queue.is_empty() {
            s.writer = true;
        } else {
            self.wait_for(s, Access::Write);
        }
        // SAFETY: write access was just granted.
        unsafe { RwLockWriteGuard::new(self) }
    }

    /// Attempts to acquire this `RwLock` with exclusive write access
    /// without waiting.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if the lock is held or anyone is queued
    /// for it; [`TryLockError::Poisoned`] (holding the guard) if it was
    /// acquired but is poisoned.
    ///
    /// # Examples
    /// ```
    /// use green::sync::RwLock;
    ///
    /// let lock = RwLock::new(1);
    /// let r = lock.read().unwrap();
    /// assert!(lock.try_write().is_err());
    /// drop(r);
    /// assert!(lock.try_write().is_ok());
    /// ```
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        crate::hub::coop_spend();
        let mut s = self.state.lock();
        if !s.writer && s.readers == 0 && s.queue.is_empty() {
            s.writer = true;
            drop(s);
            // SAFETY: write access was just granted.
            Ok(unsafe { RwLockWriteGuard::new(self) }?)
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    /// Determines whether the lock is poisoned.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use green::sync::RwLock;
    ///
    /// let lock = Arc::new(RwLock::new(0));
    /// let c = Arc::clone(&lock);
    /// let _ = std::thread::spawn(move || {
    ///     let _w = c.write().unwrap();
    ///     panic!(); // the lock gets poisoned
    /// })
    /// .join();
    /// assert!(lock.is_poisoned());
    /// ```
    #[inline]
    pub fn is_poisoned(&self) -> bool {
        self.poison.get()
    }

    /// Clears the poisoned state from the lock.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use green::sync::RwLock;
    ///
    /// let lock = Arc::new(RwLock::new(0));
    /// let c = Arc::clone(&lock);
    /// let _ = std::thread::spawn(move || {
    ///     let _w = c.write().unwrap();
    ///     panic!();
    /// })
    /// .join();
    /// lock.clear_poison();
    /// assert!(!lock.is_poisoned());
    /// ```
    #[inline]
    pub fn clear_poison(&self) {
        self.poison.clear();
    }

    /// Returns a mutable reference to the underlying data; no locking is
    /// needed, since the borrow is exclusive.
    ///
    /// # Errors
    /// If the lock is poisoned, the reference is returned inside a
    /// [`PoisonError`](std::sync::PoisonError).
    ///
    /// # Examples
    /// ```
    /// let mut lock = green::sync::RwLock::new(0);
    /// *lock.get_mut().unwrap() = 10;
    /// assert_eq!(*lock.read().unwrap(), 10);
    /// ```
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let poisoned = self.poison.borrow();
        let data = self.data.get_mut();
        poison::map_result(poisoned, |()| data)
    }
}

/// Releases one read lock; the last reader lets the queue in.
fn unlock_read(state: &wait::Lock<State>) {
    let mut s = state.lock();
    s.readers -= 1;
    if s.readers == 0 {
        grant(&mut s);
    }
}

/// Releases the write lock and lets the queue in.
fn unlock_write(state: &wait::Lock<State>) {
    let mut s = state.lock();
    s.writer = false;
    grant(&mut s);
}

impl<T> From<T> for RwLock<T> {
    /// Creates a new instance of an `RwLock<T>` which is unlocked; same as
    /// [`RwLock::new`].
    fn from(t: T) -> Self {
        RwLock::new(t)
    }
}

impl<T: Default> Default for RwLock<T> {
    /// Creates a new `RwLock<T>`, with the `Default` value for T.
    fn default() -> RwLock<T> {
        RwLock::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Ok(guard) => {
                d.field("data", &&*guard);
            }
            Err(TryLockError::Poisoned(err)) => {
                d.field("data", &&**err.get_ref());
            }
            Err(TryLockError::WouldBlock) => {
                d.field("data", &format_args!("<locked>"));
            }
        }
        d.field("poisoned", &self.poison.get());
        d.finish_non_exhaustive()
    }
}

impl<'a, T: ?Sized> RwLockReadGuard<'a, T> {
    /// # Safety
    /// The current context was granted read access to `lock`.
    unsafe fn new(lock: &'a RwLock<T>) -> LockResult<RwLockReadGuard<'a, T>> {
        poison::map_result(lock.poison.borrow(), |()| RwLockReadGuard {
            // SAFETY: `UnsafeCell::get` is never null.
            data: unsafe { NonNull::new_unchecked(lock.data.get()) },
            state: &lock.state,
        })
    }
}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    /// # Safety
    /// The current context was granted write access to `lock`.
    unsafe fn new(lock: &'a RwLock<T>) -> LockResult<RwLockWriteGuard<'a, T>> {
        poison::map_result(lock.poison.guard(), |poison| RwLockWriteGuard {
            lock,
            poison,
            _not_send: PhantomData,
        })
    }

    /// Downgrades a write-locked `RwLockWriteGuard` into a read-locked
    /// [`RwLockReadGuard`].
    ///
    /// Since we have the `RwLockWriteGuard`, the [`RwLock`] must already be
    /// locked for writing, so this method cannot fail.
    ///
    /// After downgrading, other readers will be allowed to read the
    /// protected data. The change is atomic: no writer can get in between
    /// the write access and the read access that follows it.
    ///
    /// This is an associated function that needs to be used as
    /// `RwLockWriteGuard::downgrade(...)`, as with std.
    ///
    /// # Notes
    /// Readers queued at the front of the lock's queue, up to the first
    /// queued writer, are admitted at once beside the downgraded reader;
    /// the writer, and every request queued after it, keep waiting until
    /// all the readers are gone (arrival order, as for every release). As
    /// in std, downgrading does not poison the lock, even while panicking.
    ///
    /// # Examples
    /// ```
    /// use green::sync::{RwLock, RwLockWriteGuard};
    ///
    /// let rw = RwLock::new(0);
    ///
    /// let mut write_guard = rw.write().unwrap();
    /// *write_guard = 42;
    ///
    /// let read_guard = RwLockWriteGuard::downgrade(write_guard);
    /// assert_eq!(42, *read_guard);
    /// ```
    ///
    /// A writer that waits meanwhile cannot get in before the read:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use green::sync::{RwLock, RwLockWriteGuard};
    ///
    /// let rw = Arc::new(RwLock::new(1));
    /// let mut main_write_guard = rw.write().unwrap();
    ///
    /// let rw_clone = rw.clone();
    /// let evil = green::thread::spawn(move || {
    ///     // Waits until the root drops `main_read_guard`.
    ///     let mut evil_guard = rw_clone.write().unwrap();
    ///     assert_eq!(*evil_guard, 2);
    ///     *evil_guard = 3;
    /// });
    /// green::thread::yield_now(); // the writer queues
    ///
    /// *main_write_guard = 2;
    /// let main_read_guard = RwLockWriteGuard::downgrade(main_write_guard);
    /// green::thread::yield_now(); // the writer still waits
    /// assert_eq!(*main_read_guard, 2, "`downgrade` was not atomic");
    ///
    /// drop(main_read_guard);
    /// evil.join().unwrap();
    /// assert_eq!(*rw.read().unwrap(), 3);
    /// ```
    pub fn downgrade(s: Self) -> RwLockReadGuard<'a, T> {
        let lock = s.lock;
        // Not dropped: that would release the write lock (and could poison
        // it). The guard owns nothing else.
        std::mem::forget(s);
        {
            let mut st = lock.state.lock();
            debug_assert!(
                st.writer && st.readers == 0,
                "downgrade of a lock not write-locked"
            );
            st.writer = false;
            st.readers = 1;
            grant(&mut st);
        }
        // SAFETY: read access was just granted, in the same critical
        // section that gave up the write access. As std's, the read guard
        // ignores poisoning: a downgrade cannot fail.
        unsafe { RwLockReadGuard::new(lock) }.unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: by the invariant of `data`, read access is held: no
        // writer reaches the data while the guard lives.
        unsafe { self.data.as_ref() }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: write access is held: nobody else reaches the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: write access is held: nobody else reaches the data.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        unlock_read(self.state);
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.poison.done(&self.poison);
        unlock_write(&self.lock.state);
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

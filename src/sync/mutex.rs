//! [`Mutex`]: a mutual-exclusion lock whose waiters park instead of blocking
//! the OS thread.
//!
//! The lock word is one atomic byte with three states:
//!
//! ```text
//!   UNLOCKED --lock (CAS)--> LOCKED --unlock (CAS)--> UNLOCKED      fast path
//!                              |
//!              a locker finds it held: under the queue lock,
//!              CAS LOCKED -> QUEUED, then join the wait list
//!                              v
//!   QUEUED: ownership is kept in the queue (`owned`), under its lock.
//!     unlock: a waiter is queued -> hand ownership to the first one (FIFO)
//!             none is queued     -> store UNLOCKED (back to the fast path)
//! ```
//!
//! An uncontended lock and unlock are one compare-and-swap each and never
//! touch the queue lock. Once a context waits, every later locker takes the
//! queue lock and lines up behind it, and each unlock hands the lock to the
//! first waiter directly: the lock is fair and nobody barges past a waiter.
//!
//! A waiter that is unwound (kill, [`Timeout`](crate::Timeout)) after being
//! handed the lock passes it on from the wait list's `abandon` callback, so
//! the hand-off is never lost.

use crate::hub::{Blocker, Kind};
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{LockResult, TryLockError, TryLockResult};

use super::{cannot_wait, poison};
use crate::wait::{self, WaitList, Waited};

const UNLOCKED: u8 = 0;
const LOCKED: u8 = 1;
/// Held or not, ownership is decided under the queue lock.
const QUEUED: u8 = 2;

/// The lock without the data: the atomic word and the wait queue.
pub(super) struct RawMutex {
    /// `UNLOCKED`, `LOCKED` or `QUEUED`.
    ///
    /// # Invariant
    /// Leaves `QUEUED` only under the `queue` lock, and only when no
    /// context waits; while it is `QUEUED`, `Queue::owned` tells whether the
    /// lock is held.
    state: AtomicU8,
    queue: wait::Lock<Queue>,
}

struct Queue {
    /// Whether the lock is held, while the state is `QUEUED`.
    ///
    /// # Invariant
    /// `waiters` is non-empty only while `owned` is true.
    owned: bool,
    waiters: WaitList,
}

fn waiters(q: &mut Queue) -> &mut WaitList {
    &mut q.waiters
}

/// A waiter that was handed the lock and then unwound: passes the lock on.
fn hand_back(q: &mut Queue, _: Option<()>) {
    if !q.waiters.pop_notify(|_| {}) {
        q.owned = false;
    }
}

impl RawMutex {
    pub(super) const fn new() -> RawMutex {
        RawMutex {
            state: AtomicU8::new(UNLOCKED),
            queue: wait::Lock::new(Queue {
                owned: false,
                waiters: WaitList::new(),
            }),
        }
    }

    #[inline]
    pub(super) fn lock(&self) {
        crate::hub::coop_spend();
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
    }

    #[cold]
    fn lock_slow(&self) {
        let mut q = self.queue.lock();
        loop {
            match self.state.load(Ordering::Relaxed) {
                UNLOCKED => {
                    if self
                        .state
                        .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        return;
                    }
                }
                LOCKED => {
                    // The fast-path owner's unlock will now fail its CAS and
                    // come here, to the queue.
                    if self
                        .state
                        .compare_exchange(LOCKED, QUEUED, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                    {
                        q.owned = true;
                        break;
                    }
                }
                _ => {
                    if !q.owned {
                        q.owned = true;
                        return;
                    }
                    break;
                }
            }
        }
        let on = Blocker::at(Kind::Mutex, &self.queue);
        match wait::wait(&self.queue, q, waiters, None, None, hand_back, on) {
            // The unlocker handed the lock over.
            Waited::Notified(_) => {}
            Waited::TimedOut(_) => cannot_wait("green::sync::Mutex::lock"),
        }
    }

    #[inline]
    pub(super) fn try_lock(&self) -> bool {
        crate::hub::coop_spend();
        match self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => true,
            Err(LOCKED) => false,
            Err(_) => {
                let mut q = self.queue.lock();
                match self.state.load(Ordering::Relaxed) {
                    UNLOCKED => self
                        .state
                        .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok(),
                    QUEUED if !q.owned => {
                        q.owned = true;
                        true
                    }
                    _ => false,
                }
            }
        }
    }

    /// Releases the lock.
    ///
    /// # Safety
    /// The caller holds the lock.
    #[inline]
    pub(super) unsafe fn unlock(&self) {
        if self
            .state
            .compare_exchange(LOCKED, UNLOCKED, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_slow();
        }
    }

    #[cold]
    fn unlock_slow(&self) {
        let mut q = self.queue.lock();
        if !q.waiters.pop_notify(|_| {}) {
            q.owned = false;
            // No waiter: back to the fast path. Nobody else writes the
            // state now: it is not UNLOCKED, and the queue lock is held.
            self.state.store(UNLOCKED, Ordering::Release);
        }
    }
}

/// A mutual exclusion primitive useful for protecting shared data; a
/// context that waits for it parks, letting other green threads run.
///
/// The mirror of [`std::sync::Mutex`], with the same methods, signatures and
/// poisoning. [`lock`](Mutex::lock) parks only the current green thread,
/// so a green thread may hold the lock across [`green::sleep`](crate::sleep)
/// or I/O while other green threads of the same hub wait for it — with
/// `std::sync::Mutex` the waiters would block the whole OS thread, and with
/// it the holder: a deadlock. It works the same between green threads of
/// different hubs and with plain OS threads, which simply block.
///
/// Waiters get the lock in the order they asked for it: an unlock hands it
/// to the first waiter, and nobody barges past.
///
/// # Poisoning
/// As with std, a panic while a guard is held poisons the mutex: later
/// `lock` and `try_lock` calls return the guard inside a
/// [`PoisonError`](std::sync::PoisonError). A green thread unwound while
/// holding the guard by [`GreenThread::kill`](crate::GreenThread::kill), by
/// an expiring [`Timeout`](crate::Timeout), or because its OS thread exits,
/// does **not** poison it: the unwind is a cancellation, not a failure of
/// the code that held the lock.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use green::sync::Mutex;
///
/// let counter = Arc::new(Mutex::new(0));
/// let workers: Vec<_> = (0..10)
///     .map(|_| {
///         let counter = Arc::clone(&counter);
///         green::spawn(move || {
///             let mut n = counter.lock().unwrap();
///             // Holding the lock across a park: the others wait green.
///             green::sleep(Duration::from_millis(1));
///             *n += 1;
///         })
///     })
///     .collect();
/// for w in workers {
///     w.wait();
/// }
/// assert_eq!(*counter.lock().unwrap(), 10);
/// ```
///
/// A `const` constructor, for statics:
/// ```
/// use green::sync::Mutex;
///
/// static HITS: Mutex<u32> = Mutex::new(0);
/// *HITS.lock().unwrap() += 1;
/// assert_eq!(*HITS.lock().unwrap(), 1);
/// ```
///
/// As std's, it is `Send` and `Sync` when `T` is `Send`, and neither
/// otherwise:
///
/// ```compile_fail,E0277
/// fn assert_sync<T: Sync>() {}
/// assert_sync::<green::sync::Mutex<std::rc::Rc<u32>>>();
/// ```
pub struct Mutex<T: ?Sized> {
    raw: RawMutex,
    poison: poison::Flag,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex hands out access to `data` to one context at a time, so
// sharing it moves a `T` between threads: `T: Send` suffices, as for std.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

impl<T: ?Sized> UnwindSafe for Mutex<T> {}
impl<T: ?Sized> RefUnwindSafe for Mutex<T> {}

/// An RAII guard of a locked [`Mutex`]; the lock is released when it is
/// dropped.
///
/// The data is reached through [`Deref`] and [`DerefMut`]. Made by
/// [`Mutex::lock`] and [`Mutex::try_lock`]. Like std's guard it is not
/// `Send`:
///
/// ```compile_fail,E0277
/// fn assert_send<T: Send>() {}
/// assert_send::<green::sync::MutexGuard<'static, u32>>();
/// ```
///
/// and it is invariant in `T`, as std's: a guard of `&'static str` cannot
/// become one of `&'short str`, through which a short-lived reference
/// could be stored:
///
/// ```compile_fail
/// use green::sync::MutexGuard;
///
/// fn shorten<'a, 'short>(g: MutexGuard<'a, &'static str>) -> MutexGuard<'a, &'short str> {
///     g
/// }
/// ```
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized + 'a> {
    lock: &'a Mutex<T>,
    poison: poison::Guard,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard only gives `&T`, which is shareable when `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    /// Creates a new mutex in an unlocked state ready for use.
    ///
    /// # Examples
    /// ```
    /// let mutex = green::sync::Mutex::new(0);
    /// assert_eq!(*mutex.lock().unwrap(), 0);
    /// ```
    #[inline]
    pub const fn new(t: T) -> Mutex<T> {
        Mutex {
            raw: RawMutex::new(),
            poison: poison::Flag::new(),
            data: UnsafeCell::new(t),
        }
    }

    /// Consumes this mutex, returning the underlying data.
    ///
    /// # Errors
    /// If the mutex is poisoned, the data is returned inside a
    /// [`PoisonError`](std::sync::PoisonError).
    ///
    /// # Examples
    /// ```
    /// let mutex = green::sync::Mutex::new(0);
    /// assert_eq!(mutex.into_inner().unwrap(), 0);
    /// ```
    pub fn into_inner(self) -> LockResult<T> {
        let poisoned = self.poison.borrow();
        let data = self.data.into_inner();
        poison::map_result(poisoned, |()| data)
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Acquires the mutex, parking the current green thread (or blocking
    /// the current plain OS thread) until it is available.
    ///
    /// Returns an RAII guard; the lock is released when it is dropped. A
    /// green thread parked here can be killed or timed out: it then leaves
    /// the queue without taking the lock. Locking a mutex the current
    /// context already holds waits forever, as with std.
    ///
    /// # Errors
    /// If the mutex is poisoned (a holder panicked), the guard is returned
    /// inside a [`PoisonError`](std::sync::PoisonError); the lock is held
    /// either way.
    ///
    /// # Panics
    /// Panics when it must wait and is called from the hub itself (a timer
    /// callback).
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use green::sync::Mutex;
    ///
    /// let mutex = Arc::new(Mutex::new(0));
    /// let c = Arc::clone(&mutex);
    /// std::thread::spawn(move || *c.lock().unwrap() = 10).join().unwrap();
    /// assert_eq!(*mutex.lock().unwrap(), 10);
    /// ```
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        self.raw.lock();
        // SAFETY: the lock was just acquired.
        unsafe { MutexGuard::new(self) }
    }

    /// Attempts to acquire the mutex without waiting.
    ///
    /// Fails if the lock is held, or if other contexts are already queued
    /// for it.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if the lock could not be acquired at
    /// once; [`TryLockError::Poisoned`] (holding the guard) if it was
    /// acquired but is poisoned.
    ///
    /// # Examples
    /// ```
    /// use green::sync::{Mutex, TryLockError};
    ///
    /// let mutex = Mutex::new(0);
    /// let guard = mutex.try_lock().unwrap();
    /// assert!(matches!(mutex.try_lock(), Err(TryLockError::WouldBlock)));
    /// drop(guard);
    /// assert!(mutex.try_lock().is_ok());
    /// ```
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        if self.raw.try_lock() {
            // SAFETY: the lock was just acquired.
            Ok(unsafe { MutexGuard::new(self) }?)
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    /// Determines whether the mutex is poisoned.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use green::sync::Mutex;
    ///
    /// let mutex = Arc::new(Mutex::new(0));
    /// let c = Arc::clone(&mutex);
    /// let _ = std::thread::spawn(move || {
    ///     let _guard = c.lock().unwrap();
    ///     panic!(); // the mutex gets poisoned
    /// })
    /// .join();
    /// assert!(mutex.is_poisoned());
    /// ```
    #[inline]
    pub fn is_poisoned(&self) -> bool {
        self.poison.get()
    }

    /// Clears the poisoned state from the mutex.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use green::sync::Mutex;
    ///
    /// let mutex = Arc::new(Mutex::new(0));
    /// let c = Arc::clone(&mutex);
    /// let _ = std::thread::spawn(move || {
    ///     let _guard = c.lock().unwrap();
    ///     panic!();
    /// })
    /// .join();
    /// let guard = mutex.lock().unwrap_or_else(|e| e.into_inner());
    /// drop(guard);
    /// mutex.clear_poison();
    /// assert!(!mutex.is_poisoned());
    /// ```
    #[inline]
    pub fn clear_poison(&self) {
        self.poison.clear();
    }

    /// Returns a mutable reference to the underlying data; no locking is
    /// needed, since the borrow is exclusive.
    ///
    /// # Errors
    /// If the mutex is poisoned, the reference is returned inside a
    /// [`PoisonError`](std::sync::PoisonError).
    ///
    /// # Examples
    /// ```
    /// let mut mutex = green::sync::Mutex::new(0);
    /// *mutex.get_mut().unwrap() = 10;
    /// assert_eq!(*mutex.lock().unwrap(), 10);
    /// ```
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let poisoned = self.poison.borrow();
        let data = self.data.get_mut();
        poison::map_result(poisoned, |()| data)
    }

    /// The lock itself, for [`Condvar`](super::Condvar).
    pub(super) fn raw(&self) -> &RawMutex {
        &self.raw
    }

    pub(super) fn poison_flag(&self) -> &poison::Flag {
        &self.poison
    }
}

impl<T> From<T> for Mutex<T> {
    /// Creates a new mutex in an unlocked state; same as [`Mutex::new`].
    fn from(t: T) -> Self {
        Mutex::new(t)
    }
}

impl<T: Default> Default for Mutex<T> {
    /// Creates a `Mutex<T>` with the `Default` value of `T`.
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(guard) => {
                d.field("data", &&*guard);
            }
            Err(TryLockError::Poisoned(err)) => {
                d.field("data", &&**err.get_ref());
            }
            Err(TryLockError::WouldBlock) => {
                d.field("data", &"<locked>");
            }
        }
        d.field("poisoned", &self.poison.get());
        d.finish_non_exhaustive()
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// Wraps a held lock.
    ///
    /// # Safety
    /// The current context holds `lock`'s lock, and nothing else will
    /// release it.
    unsafe fn new(lock: &'a Mutex<T>) -> LockResult<MutexGuard<'a, T>> {
        poison::map_result(lock.poison.guard(), |poison| MutexGuard {
            lock,
            poison,
            _not_send: PhantomData,
        })
    }

    /// Takes the guard apart without unlocking, for a condition variable
    /// that releases and re-takes the lock itself.
    pub(super) fn into_parts(self) -> (&'a Mutex<T>, poison::Guard) {
        let parts = (self.lock, self.poison);
        std::mem::forget(self);
        parts
    }

    /// Rebuilds a guard taken apart by [`into_parts`](Self::into_parts).
    ///
    /// # Safety
    /// The current context holds `lock`'s lock again.
    pub(super) unsafe fn from_parts(lock: &'a Mutex<T>, poison: poison::Guard) -> Self {
        MutexGuard {
            lock,
            poison,
            _not_send: PhantomData,
        }
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock: nobody else reaches the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock: nobody else reaches the data.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.poison.done(&self.poison);
        // SAFETY: the guard holds the lock, and gives it up here.
        unsafe { self.lock.raw.unlock() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contention_switches_to_queued_and_back() {
        let m = std::sync::Arc::new(Mutex::new(()));
        let g = m.lock().unwrap();
        let m2 = m.clone();
        let gt = crate::spawn(move || drop(m2.lock().unwrap()));
        crate::yield_now(); // it queues
        assert_eq!(m.raw.state.load(Ordering::Relaxed), QUEUED);
        drop(g);
        gt.wait();
        assert_eq!(m.raw.state.load(Ordering::Relaxed), UNLOCKED);
    }
}

//! `ReentrantLock`: a lock its holder may take again (eventlet's green
//! `RLock`), with the shape of std's `ReentrantLock`.

use std::cell::Cell;
use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};

use super::mutex::RawMutex;

/// A mutual-exclusion lock that the green thread holding it may take
/// again: its guards nest, and the lock is free once the last one drops.
///
/// This is eventlet's green `RLock` with the shape of std's (unstable)
/// `std::sync::ReentrantLock`: [`lock`](Self::lock) gives a guard that
/// dereferences to `&T` only (several guards of one holder may be alive at
/// once), so mutation goes through a `Cell` or `RefCell` inside. The holder
/// is a green thread — two green threads of one OS thread exclude each
/// other — or the root of a hub, or a plain OS thread. Waiting parks only
/// the green thread, and works across hubs and with plain threads, as the
/// other primitives of [`green::sync`](crate::sync). A kill or
/// [`Timeout`](crate::Timeout) while waiting unwinds without taking the
/// lock; one while holding it drops the guards as the stack unwinds. There
/// is no poisoning, as in std's.
///
/// # Examples
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use green::sync::ReentrantLock;
///
/// let log = Rc::new(ReentrantLock::new(RefCell::new(Vec::new())));
/// fn add(log: &ReentrantLock<RefCell<Vec<u32>>>, n: u32) {
///     let g = log.lock();
///     g.borrow_mut().push(n);
///     if n > 0 {
///         add(log, n - 1); // the holder takes it again
///     }
/// }
/// let l = log.clone();
/// let other = green::spawn(move || add(&l, 1));
/// add(&log, 2);
/// other.wait();
/// // Each green thread's nested calls ran under one hold, not interleaved.
/// assert_eq!(*log.lock().borrow(), [2, 1, 0, 1, 0]);
/// ```
pub struct ReentrantLock<T: ?Sized> {
    raw: RawMutex,
    /// The holder's id ([`holder_id`]), 0 when free.
    owner: AtomicU64,
    /// How many guards the holder has.
    ///
    /// # Invariant
    /// Read and written only by the holder.
    count: Cell<u32>,
    data: T,
}

// SAFETY: `count` is reached by the holder only (its invariant) and `data`
// is shared as `&T` with one holder at a time, so moving or sharing the lock
// between threads needs `T: Send`, as std's.
unsafe impl<T: ?Sized + Send> Send for ReentrantLock<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for ReentrantLock<T> {}

/// The guard of a [`ReentrantLock`]: the lock is held until the holder's
/// last guard drops. Not `Send`: a guard belongs to its holder.
#[must_use = "if unused the ReentrantLock will immediately unlock"]
pub struct ReentrantLockGuard<'a, T: ?Sized + 'a> {
    lock: &'a ReentrantLock<T>,
    _not_send: std::marker::PhantomData<*const ()>,
}

/// An id for the context that calls: its green thread id, or an id of the
/// OS thread for a root or a plain thread (taken from the same counter, so
/// the two never collide).
fn holder_id() -> u64 {
    if let Some(id) = crate::current_id() {
        return id;
    }
    thread_local! {
        static OS_ID: u64 = crate::greenthread::next_id();
    }
    OS_ID.with(|id| *id)
}

impl<T> ReentrantLock<T> {
    /// A new, unlocked lock around `t`.
    ///
    /// # Examples
    /// ```
    /// let l = green::sync::ReentrantLock::new(5);
    /// assert_eq!(*l.lock(), 5);
    /// ```
    pub const fn new(t: T) -> ReentrantLock<T> {
        ReentrantLock {
            raw: RawMutex::new(),
            owner: AtomicU64::new(0),
            count: Cell::new(0),
            data: t,
        }
    }

    /// Consumes the lock and returns the value.
    pub fn into_inner(self) -> T {
        self.data
    }
}

impl<T: ?Sized> ReentrantLock<T> {
    /// Takes the lock, parking the caller while another holder has it; the
    /// holder itself gets another guard at once.
    ///
    /// # Panics
    /// If the holder takes it `u32::MAX` times over.
    pub fn lock(&self) -> ReentrantLockGuard<'_, T> {
        let me = holder_id();
        if self.owner.load(Ordering::Relaxed) == me {
            self.nest();
        } else {
            self.raw.lock();
            self.owner.store(me, Ordering::Relaxed);
            self.count.set(1);
        }
        ReentrantLockGuard {
            lock: self,
            _not_send: std::marker::PhantomData,
        }
    }

    /// Takes the lock if it is free or held by the caller; `None` if
    /// another holder has it.
    ///
    /// # Examples
    /// ```
    /// let l = green::sync::ReentrantLock::new(());
    /// let g = l.lock();
    /// assert!(l.try_lock().is_some()); // the holder again
    /// let other = std::thread::scope(|s| s.spawn(|| l.try_lock().is_some()).join().unwrap());
    /// assert!(!other);
    /// drop(g);
    /// ```
    pub fn try_lock(&self) -> Option<ReentrantLockGuard<'_, T>> {
        let me = holder_id();
        if self.owner.load(Ordering::Relaxed) == me {
            self.nest();
        } else if self.raw.try_lock() {
            self.owner.store(me, Ordering::Relaxed);
            self.count.set(1);
        } else {
            return None;
        }
        Some(ReentrantLockGuard {
            lock: self,
            _not_send: std::marker::PhantomData,
        })
    }

    /// The value, through a unique borrow of the lock (no locking).
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.data
    }

    /// One more guard for the holder.
    fn nest(&self) {
        let n = self.count.get().checked_add(1);
        self.count
            .set(n.expect("green::sync::ReentrantLock taken too many times over"));
    }
}

impl<T: ?Sized> Deref for ReentrantLockGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.lock.data
    }
}

impl<T: ?Sized> Drop for ReentrantLockGuard<'_, T> {
    fn drop(&mut self) {
        let l = self.lock;
        let n = l.count.get() - 1;
        l.count.set(n);
        if n == 0 {
            l.owner.store(0, Ordering::Relaxed);
            // SAFETY: the holder's last guard: the raw mutex was taken by
            // this holder's first `lock`.
            unsafe { l.raw.unlock() };
        }
    }
}

impl<T: Default> Default for ReentrantLock<T> {
    fn default() -> Self {
        ReentrantLock::new(T::default())
    }
}

impl<T> From<T> for ReentrantLock<T> {
    fn from(t: T) -> Self {
        ReentrantLock::new(t)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for ReentrantLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ReentrantLock");
        match self.try_lock() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for ReentrantLockGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

//! [`Condvar`]: a condition variable whose waiters park.
//!
//! A waiter joins the wait list and releases the [`Mutex`] while holding
//! the list's lock, so a notifier that changes the condition under the
//! mutex and then notifies always finds it in the list: no wake-up falls in
//! between. It re-takes the mutex after it is woken. A waiter that is woken
//! by `notify_one` and then unwound (kill, [`Timeout`](crate::Timeout))
//! passes the notification on to the next waiter.

use crate::hub::{Blocker, Kind};
use std::fmt;
use std::sync::{LockResult, PoisonError};
use std::time::{Duration, Instant};

use super::{cannot_wait, MutexGuard};
use crate::wait::{self, WaitList, Waited};

/// A condition variable: parks green threads until an event occurs.
///
/// The mirror of [`std::sync::Condvar`], used with
/// [`green::sync::Mutex`](super::Mutex) guards. Waiting parks only the
/// current green thread (a plain OS thread blocks), and notifications work
/// between green threads of one hub, across hubs and with plain OS threads.
/// As with std, waits may wake spuriously: check the condition in a loop, or
/// use [`wait_while`](Condvar::wait_while).
///
/// A green thread parked in a wait can be killed or timed out; it unwinds
/// without the mutex (which it released to wait), and a `notify_one` it had
/// already received goes to the next waiter instead.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use green::sync::{Condvar, Mutex};
///
/// let pair = Arc::new((Mutex::new(false), Condvar::new()));
/// let pair2 = Arc::clone(&pair);
/// green::spawn(move || {
///     let (lock, cvar) = &*pair2;
///     *lock.lock().unwrap() = true;
///     cvar.notify_one();
/// });
/// let (lock, cvar) = &*pair;
/// let mut started = lock.lock().unwrap();
/// while !*started {
///     started = cvar.wait(started).unwrap();
/// }
/// ```
pub struct Condvar {
    waiters: wait::Lock<WaitList>,
}

fn waiters(w: &mut WaitList) -> &mut WaitList {
    w
}

/// A waiter that was notified and then unwound: the next one gets it.
fn pass_on(w: &mut WaitList, _: Option<()>) {
    w.pop_notify(|_| {});
}

/// Whether a timed wait on a [`Condvar`] returned because the time ran out.
///
/// Returned by [`Condvar::wait_timeout`] and
/// [`Condvar::wait_timeout_while`]; the mirror of
/// [`std::sync::WaitTimeoutResult`].
#[derive(Debug, PartialEq, Eq, Copy, Clone)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// Returns `true` if the wait is known to have timed out.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use green::sync::{Condvar, Mutex};
    ///
    /// let (lock, cvar) = (Mutex::new(()), Condvar::new());
    /// let (_guard, res) = cvar
    ///     .wait_timeout(lock.lock().unwrap(), Duration::from_millis(10))
    ///     .unwrap();
    /// assert!(res.timed_out());
    /// ```
    #[must_use]
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condvar {
    /// Creates a new condition variable which is ready to be waited on and
    /// notified.
    ///
    /// # Examples
    /// ```
    /// let condvar = green::sync::Condvar::new();
    /// condvar.notify_one(); // nobody waits: nothing happens
    /// ```
    #[must_use]
    pub const fn new() -> Condvar {
        Condvar {
            waiters: wait::Lock::new(WaitList::new()),
        }
    }

    /// Unlocks the guard's mutex, parks until notified or `deadline`, and
    /// re-locks it. Returns the guard and whether the deadline passed.
    fn wait_until<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> LockResult<(MutexGuard<'a, T>, bool)> {
        let (mutex, poison) = guard.into_parts();
        let list = self.waiters.lock();
        // SAFETY: the guard held the lock, and was taken apart without
        // releasing it.
        unsafe { mutex.raw().unlock() };
        // From here until the re-lock this context holds no lock: an unwind
        // (kill, timeout) leaves the mutex unlocked, as it should.
        let on = Blocker::at(Kind::Condvar, &self.waiters);
        let waited = wait::wait(&self.waiters, list, waiters, None, deadline, pass_on, on);
        let timed_out = match waited {
            Waited::Notified(_) => false,
            Waited::TimedOut(_) if deadline.is_some() => true,
            Waited::TimedOut(_) => cannot_wait("green::sync::Condvar::wait"),
        };
        // A notified waiter unwound (kill, timeout) while it re-takes the
        // mutex passes its notification on, as it does while in the list.
        struct PassOn<'c>(Option<&'c Condvar>);
        impl Drop for PassOn<'_> {
            fn drop(&mut self) {
                if let Some(c) = self.0 {
                    c.notify_one();
                }
            }
        }
        let pass = PassOn((!timed_out).then_some(self));
        mutex.raw().lock();
        std::mem::forget(pass);
        // SAFETY: the lock was just re-acquired.
        let guard = unsafe { MutexGuard::from_parts(mutex, poison) };
        if mutex.poison_flag().get() {
            Err(PoisonError::new((guard, timed_out)))
        } else {
            Ok((guard, timed_out))
        }
    }

    /// Parks the current green thread until this condition variable
    /// receives a notification.
    ///
    /// Atomically unlocks the mutex of `guard` and parks; when woken, locks
    /// the mutex again before returning. Wake-ups may be spurious.
    ///
    /// # Errors
    /// If the mutex is poisoned when it is re-acquired, the guard is
    /// returned inside a [`PoisonError`].
    ///
    /// # Panics
    /// Panics when called from the hub itself (a timer callback).
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use green::sync::{Condvar, Mutex};
    ///
    /// let pair = Arc::new((Mutex::new(false), Condvar::new()));
    /// let pair2 = Arc::clone(&pair);
    /// std::thread::spawn(move || {
    ///     let (lock, cvar) = &*pair2;
    ///     *lock.lock().unwrap() = true;
    ///     cvar.notify_one();
    /// });
    /// let (lock, cvar) = &*pair;
    /// let mut started = lock.lock().unwrap();
    /// while !*started {
    ///     started = cvar.wait(started).unwrap();
    /// }
    /// ```
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        match self.wait_until(guard, None) {
            Ok((g, _)) => Ok(g),
            Err(e) => Err(PoisonError::new(e.into_inner().0)),
        }
    }

    /// Parks the current green thread while `condition` returns `true`,
    /// checking it first and after every wake-up.
    ///
    /// # Errors
    /// If the mutex is poisoned when it is re-acquired, the guard is
    /// returned inside a [`PoisonError`] at once.
    ///
    /// # Panics
    /// Panics when called from the hub itself (a timer callback).
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use green::sync::{Condvar, Mutex};
    ///
    /// let pair = Arc::new((Mutex::new(true), Condvar::new()));
    /// let pair2 = Arc::clone(&pair);
    /// green::spawn(move || {
    ///     let (lock, cvar) = &*pair2;
    ///     *lock.lock().unwrap() = false;
    ///     cvar.notify_one();
    /// });
    /// let (lock, cvar) = &*pair;
    /// let guard = cvar.wait_while(lock.lock().unwrap(), |pending| *pending).unwrap();
    /// assert!(!*guard);
    /// ```
    pub fn wait_while<'a, T, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> LockResult<MutexGuard<'a, T>>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut *guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// Parks the current green thread until notified or until `dur` has
    /// passed.
    ///
    /// Like [`wait`](Condvar::wait), with a time limit; the result tells
    /// whether the time ran out. Wake-ups may be spurious, and the mutex is
    /// re-locked before returning either way.
    ///
    /// # Errors
    /// If the mutex is poisoned when it is re-acquired, the guard and the
    /// result are returned inside a [`PoisonError`].
    ///
    /// # Panics
    /// Panics when called from the hub itself (a timer callback).
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use green::sync::{Condvar, Mutex};
    ///
    /// let pair = Arc::new((Mutex::new(false), Condvar::new()));
    /// let pair2 = Arc::clone(&pair);
    /// green::spawn(move || {
    ///     let (lock, cvar) = &*pair2;
    ///     *lock.lock().unwrap() = true;
    ///     cvar.notify_one();
    /// });
    /// let (lock, cvar) = &*pair;
    /// let mut started = lock.lock().unwrap();
    /// while !*started {
    ///     let (g, res) = cvar.wait_timeout(started, Duration::from_secs(10)).unwrap();
    ///     started = g;
    ///     assert!(!res.timed_out());
    /// }
    /// ```
    pub fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        dur: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        // A deadline past the end of time is no deadline.
        let deadline = Instant::now().checked_add(dur);
        match self.wait_until(guard, deadline) {
            Ok((g, t)) => Ok((g, WaitTimeoutResult(t))),
            Err(e) => {
                let (g, t) = e.into_inner();
                Err(PoisonError::new((g, WaitTimeoutResult(t))))
            }
        }
    }

    /// Waits on this condition variable for a notification, timing out
    /// after `ms` milliseconds.
    ///
    /// Deprecated as in std: use [`wait_timeout`](Condvar::wait_timeout).
    /// Unlike it, the returned `bool` is `true` if the wait did **not**
    /// time out, as std's.
    ///
    /// # Errors
    /// If the mutex is poisoned when it is re-acquired, the guard and the
    /// `bool` are returned inside a [`PoisonError`].
    ///
    /// # Panics
    /// Panics when called from the hub itself (a timer callback).
    ///
    /// # Examples
    /// ```
    /// # #![allow(deprecated)]
    /// use green::sync::{Condvar, Mutex};
    ///
    /// let (lock, cvar) = (Mutex::new(()), Condvar::new());
    /// let (_guard, notified) = cvar.wait_timeout_ms(lock.lock().unwrap(), 10).unwrap();
    /// assert!(!notified);
    /// ```
    #[deprecated(
        since = "1.6.0",
        note = "replaced by `std::sync::Condvar::wait_timeout`"
    )]
    pub fn wait_timeout_ms<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        ms: u32,
    ) -> LockResult<(MutexGuard<'a, T>, bool)> {
        match self.wait_timeout(guard, Duration::from_millis(u64::from(ms))) {
            Ok((g, res)) => Ok((g, !res.timed_out())),
            Err(e) => {
                let (g, res) = e.into_inner();
                Err(PoisonError::new((g, !res.timed_out())))
            }
        }
    }

    /// Parks the current green thread while `condition` returns `true`, for
    /// at most `dur` in all.
    ///
    /// The result's [`timed_out`](WaitTimeoutResult::timed_out) is `true`
    /// if the time ran out while the condition still held.
    ///
    /// # Errors
    /// If the mutex is poisoned when it is re-acquired, the guard and the
    /// result are returned inside a [`PoisonError`] at once.
    ///
    /// # Panics
    /// Panics when called from the hub itself (a timer callback).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use green::sync::{Condvar, Mutex};
    ///
    /// let (lock, cvar) = (Mutex::new(true), Condvar::new());
    /// let (guard, res) = cvar
    ///     .wait_timeout_while(lock.lock().unwrap(), Duration::from_millis(10), |p| *p)
    ///     .unwrap();
    /// assert!(res.timed_out());
    /// assert!(*guard);
    /// ```
    pub fn wait_timeout_while<'a, T, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        dur: Duration,
        mut condition: F,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)>
    where
        F: FnMut(&mut T) -> bool,
    {
        let start = Instant::now();
        loop {
            if !condition(&mut *guard) {
                return Ok((guard, WaitTimeoutResult(false)));
            }
            let timeout = match dur.checked_sub(start.elapsed()) {
                Some(timeout) => timeout,
                None => return Ok((guard, WaitTimeoutResult(true))),
            };
            guard = self.wait_timeout(guard, timeout)?.0;
        }
    }

    /// Wakes up one green thread (or OS thread) parked on this condition
    /// variable, the one that has waited longest. Does nothing if none
    /// waits.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use green::sync::{Condvar, Mutex};
    ///
    /// let pair = Arc::new((Mutex::new(0), Condvar::new()));
    /// let pair2 = Arc::clone(&pair);
    /// let waiter = green::spawn(move || {
    ///     let (lock, cvar) = &*pair2;
    ///     *cvar.wait_while(lock.lock().unwrap(), |n| *n == 0).unwrap()
    /// });
    /// green::yield_now(); // the waiter parks
    /// let (lock, cvar) = &*pair;
    /// *lock.lock().unwrap() = 7;
    /// cvar.notify_one();
    /// assert_eq!(waiter.wait(), 7);
    /// ```
    pub fn notify_one(&self) {
        self.waiters.lock().pop_notify(|_| {});
    }

    /// Wakes up every green thread (or OS thread) parked on this condition
    /// variable.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use green::sync::{Condvar, Mutex};
    ///
    /// let pair = Arc::new((Mutex::new(false), Condvar::new()));
    /// let waiters: Vec<_> = (0..3)
    ///     .map(|_| {
    ///         let pair = Arc::clone(&pair);
    ///         green::spawn(move || {
    ///             let (lock, cvar) = &*pair;
    ///             drop(cvar.wait_while(lock.lock().unwrap(), |go| !*go).unwrap());
    ///         })
    ///     })
    ///     .collect();
    /// green::yield_now(); // all three park
    /// let (lock, cvar) = &*pair;
    /// *lock.lock().unwrap() = true;
    /// cvar.notify_all();
    /// for w in waiters {
    ///     w.wait();
    /// }
    /// ```
    pub fn notify_all(&self) {
        self.waiters.lock().notify_all(|_| {});
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}

impl Default for Condvar {
    /// Creates a `Condvar` which is ready to be waited on and notified.
    fn default() -> Condvar {
        Condvar::new()
    }
}

//! Counting semaphores: [`Semaphore`], [`BoundedSemaphore`],
//! [`CappedSemaphore`] (eventlet's `semaphore` module).
//!
//! A release with acquirers waiting hands its permit straight to the first
//! of them (FIFO), so a newcomer cannot overtake a waiter, and a waiter that
//! is killed after being handed a permit gives it back.

use crate::hub::{Blocker, Kind as WaitKind};
use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::wait::watch::{Watched, Watchers};
use crate::wait::{self, Lock, WaitList, Waited};

/// The shared core of the three semaphores.
struct Core {
    state: Lock<State>,
}

struct State {
    count: usize,
    /// `BoundedSemaphore`: a release past this is an error.
    /// `CappedSemaphore`: a release past this waits.
    limit: Option<usize>,
    /// Whether a release at the limit waits (`CappedSemaphore`).
    capped: bool,
    /// Permits of a `CappedSemaphore` given back at its limit by acquirers
    /// unwound after a permit was handed to them; each goes into the count,
    /// before any waiting release, once an acquire makes room (at a limit
    /// of 0, straight to the next acquire).
    owed: usize,
    acquirers: WaitList,
    /// Releases of a `CappedSemaphore` waiting for room.
    releasers: WaitList,
    /// Waits on many ([`crate::wait_any`]) that watch for a free permit.
    watchers: Watchers,
}

impl State {
    /// One permit comes back: to the first acquirer, else to the count.
    fn put_back(&mut self) {
        if !self.acquirers.pop_notify(|_| {}) {
            self.count += 1;
            self.watchers.fire();
        }
    }

    /// Whether an acquire would succeed now (as [`take`](State::take)
    /// decides, without taking).
    fn free(&self) -> bool {
        self.count > 0 || self.owed > 0 || !self.releasers.is_empty()
    }

    /// Takes a permit without waiting. Taking from the count makes room
    /// for an owed permit or a waiting capped release, let in at once; at
    /// a limit of 0 the count stays 0 and the acquire takes such a permit
    /// directly.
    fn take(&mut self) -> bool {
        let let_in = if self.owed > 0 {
            self.owed -= 1;
            true
        } else {
            self.releasers.pop_notify(|_| {})
        };
        if self.count == 0 {
            return let_in;
        }
        if !let_in {
            self.count -= 1;
        }
        true
    }
}

fn acquirers(s: &mut State) -> &mut WaitList {
    &mut s.acquirers
}

fn releasers(s: &mut State) -> &mut WaitList {
    &mut s.releasers
}

/// What a waiter hands back when it is unwound holding a permit: what its
/// guard would release. Other releases may have filled the count to its
/// limit meanwhile; then a bounded semaphore drops the permit (as a guard
/// drops its release past the bound) and a capped one owes it.
fn abandon_acquire(s: &mut State, _: Option<()>) {
    match s.limit {
        Some(limit) if s.acquirers.is_empty() && s.count >= limit => {
            if s.capped {
                s.owed += 1;
                s.watchers.fire();
            }
        }
        _ => s.put_back(),
    }
}

/// A capped release that was let in, then unwound: its release stands.
fn abandon_release(_: &mut State, _: Option<()>) {}

impl Core {
    fn new(count: usize, limit: Option<usize>, capped: bool) -> Arc<Core> {
        Arc::new(Core {
            state: Lock::new(State {
                count,
                limit,
                capped,
                owed: 0,
                acquirers: WaitList::default(),
                releasers: WaitList::default(),
                watchers: Watchers::new(),
            }),
        })
    }

    fn try_acquire(&self) -> bool {
        crate::hub::coop_spend();
        self.state.lock().take()
    }

    fn acquire(&self, deadline: Option<Instant>) -> bool {
        crate::hub::coop_spend();
        let mut s = self.state.lock();
        if s.take() {
            return true;
        }
        let on = Blocker::at(WaitKind::Semaphore, &self.state);
        match wait::wait(
            &self.state,
            s,
            acquirers,
            None,
            deadline,
            abandon_acquire,
            on,
        ) {
            Waited::Notified(_) => true,
            Waited::TimedOut(_) => false,
        }
    }

    fn release_bounded(&self) -> Result<(), ReleaseError> {
        let mut s = self.state.lock();
        if let Some(limit) = s.limit {
            if s.acquirers.is_empty() && s.count >= limit {
                return Err(ReleaseError { limit });
            }
        }
        s.put_back();
        Ok(())
    }

    fn release_capped(&self) {
        let mut s = self.state.lock();
        let limit = s.limit.unwrap_or(usize::MAX);
        if !s.acquirers.is_empty() || s.count < limit {
            s.put_back();
            return;
        }
        // Waits until an acquire makes room; that acquire adds the permit.
        // Meanwhile an acquire would succeed.
        s.watchers.fire();
        let on = Blocker::at(WaitKind::Semaphore, &self.state);
        wait::wait(&self.state, s, releasers, None, None, abandon_release, on);
    }

    fn fmt(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.lock();
        f.debug_struct(name)
            .field("count", &s.count)
            .field("waiting", &s.acquirers.len())
            .field("watching", &s.watchers.len())
            .finish()
    }
}

/// The error of [`BoundedSemaphore::release`] past the initial count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReleaseError {
    limit: usize,
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "semaphore released too many times: the count would exceed its initial value {}",
            self.limit
        )
    }
}

impl Error for ReleaseError {}

/// A held permit; dropping it releases the permit.
///
/// Returned by the `acquire` methods of all three semaphores.
/// [`forget`](SemaphoreGuard::forget) keeps the permit taken, for code that
/// releases by hand, as eventlet code does.
#[must_use = "dropping the guard releases the permit at once"]
pub struct SemaphoreGuard<'a> {
    core: &'a Core,
    kind: Kind,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Plain,
    Capped,
}

impl SemaphoreGuard<'_> {
    /// Keeps the permit taken: nothing is released when the guard goes.
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        match self.kind {
            // The guard holds one of the permits, so even a bounded
            // semaphore has room for it, unless permits were also released
            // by hand; that surplus is dropped rather than panicking here.
            Kind::Plain => drop(self.core.release_bounded()),
            Kind::Capped => self.core.release_capped(),
        }
    }
}

macro_rules! acquire_methods {
    ($kind:expr) => {
        /// Takes a permit, waiting until one is free.
        ///
        /// Parks only the current green thread; a plain OS thread blocks.
        pub fn acquire(&self) -> SemaphoreGuard<'_> {
            self.core.acquire(None);
            self.guard()
        }

        /// Takes a permit if one is free now.
        pub fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
            self.core.try_acquire().then(|| self.guard())
        }

        /// Takes a permit, waiting at most `timeout`; `None` if none was
        /// free by then.
        pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
            self.core
                // A deadline past the end of time is no deadline.
                .acquire(Instant::now().checked_add(timeout))
                .then(|| self.guard())
        }

        /// Free permits now.
        pub fn count(&self) -> usize {
            self.core.state.lock().count
        }

        /// Free permits minus waiting acquirers (eventlet's `balance`): a
        /// negative balance counts the acquirers that wait.
        pub fn balance(&self) -> isize {
            let s = self.core.state.lock();
            s.count as isize - s.acquirers.len() as isize
        }

        /// Whether an `acquire` would wait now.
        pub fn locked(&self) -> bool {
            self.count() == 0
        }

        fn guard(&self) -> SemaphoreGuard<'_> {
            SemaphoreGuard {
                core: &self.core,
                kind: $kind,
            }
        }
    };
}

/// A counting semaphore (eventlet's `Semaphore`).
///
/// Holds `count` permits; [`acquire`](Semaphore::acquire) takes one,
/// waiting while none is free, and the returned guard gives it back.
/// [`release`](Semaphore::release) adds a permit by hand and may raise the
/// count past its initial value. Cloning gives another handle to the same
/// semaphore; it works between green threads, hubs and plain OS threads.
///
/// # Examples
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
///
/// let sem = green::Semaphore::new(2);
/// let inside = Rc::new(Cell::new(0));
/// let most = Rc::new(Cell::new(0));
/// let workers: Vec<_> = (0..6)
///     .map(|_| {
///         let (sem, inside, most) = (sem.clone(), inside.clone(), most.clone());
///         green::spawn(move || {
///             let _permit = sem.acquire();
///             inside.set(inside.get() + 1);
///             most.set(most.get().max(inside.get()));
///             green::sleep(Duration::from_millis(1));
///             inside.set(inside.get() - 1);
///         })
///     })
///     .collect();
/// workers.into_iter().for_each(|w| w.wait());
/// assert_eq!(most.get(), 2);
/// ```
#[derive(Clone)]
pub struct Semaphore {
    core: Arc<Core>,
}

impl Semaphore {
    /// Creates a semaphore with `count` free permits.
    pub fn new(count: usize) -> Semaphore {
        Semaphore {
            core: Core::new(count, None, false),
        }
    }

    /// Adds a permit: wakes the first waiting acquirer, or raises the count.
    pub fn release(&self) {
        self.core.state.lock().put_back();
    }

    acquire_methods!(Kind::Plain);
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt("Semaphore", f)
    }
}

/// A semaphore whose count may not exceed its initial value (eventlet's
/// `BoundedSemaphore`): releasing more than was acquired is an error,
/// which catches a double release.
///
/// # Examples
/// ```
/// let sem = green::BoundedSemaphore::new(1);
/// sem.acquire().forget();
/// assert!(sem.release().is_ok());
/// assert!(sem.release().is_err()); // one release too many
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    core: Arc<Core>,
}

impl BoundedSemaphore {
    /// Creates a semaphore with `count` free permits, which is also the
    /// most it may hold.
    pub fn new(count: usize) -> BoundedSemaphore {
        BoundedSemaphore {
            core: Core::new(count, Some(count), false),
        }
    }

    /// Gives back a permit taken with [`acquire`](Self::acquire) (and
    /// [`forget`](SemaphoreGuard::forget)).
    ///
    /// # Errors
    /// [`ReleaseError`] if the count is already at its initial value and
    /// nobody waits: the permit was never taken.
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.core.release_bounded()
    }

    acquire_methods!(Kind::Plain);
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt("BoundedSemaphore", f)
    }
}

/// A semaphore whose `release` waits while the count is at its limit
/// (eventlet's `CappedSemaphore`): acquiring waits for a release, and
/// releasing waits for an acquire.
///
/// # Examples
/// ```
/// let sem = green::CappedSemaphore::new(0, 1);
/// let producer = {
///     let sem = sem.clone();
///     green::spawn(move || {
///         sem.release(); // count 0 -> 1
///         sem.release(); // waits: the count is at its limit of 1
///     })
/// };
/// green::yield_now();
/// assert_eq!(sem.count(), 1);
/// sem.acquire().forget(); // makes room; the second release goes in
/// producer.wait();
/// assert_eq!(sem.count(), 1);
/// ```
#[derive(Clone)]
pub struct CappedSemaphore {
    core: Arc<Core>,
}

impl CappedSemaphore {
    /// Creates a semaphore with `count` free permits and a `limit` on the
    /// count.
    ///
    /// With a limit of 0 no permit is ever free: each release waits for an
    /// acquire and hands its permit straight to it (a rendezvous).
    ///
    /// # Panics
    /// If `count > limit`.
    pub fn new(count: usize, limit: usize) -> CappedSemaphore {
        assert!(
            count <= limit,
            "CappedSemaphore::new: the count ({count}) must not exceed the limit ({limit})"
        );
        CappedSemaphore {
            core: Core::new(count, Some(limit), true),
        }
    }

    /// Adds a permit, waiting while the count is at its limit.
    pub fn release(&self) {
        self.core.release_capped();
    }

    /// The most permits the semaphore holds before `release` waits.
    pub fn limit(&self) -> usize {
        self.core.state.lock().limit.unwrap_or(usize::MAX)
    }

    acquire_methods!(Kind::Capped);
}

impl fmt::Debug for CappedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt("CappedSemaphore", f)
    }
}

/// Ready while a permit is free.
impl Watched for State {
    fn is_ready(&self) -> bool {
        self.free()
    }

    fn watchers(&mut self) -> &mut Watchers {
        &mut self.watchers
    }
}

macro_rules! waitable {
    ($($t:ty),*) => {$(
        impl crate::wait_any::sealed::Sealed for $t {
            fn item(&self) -> crate::wait_any::sealed::Item<'_> {
                crate::wait_any::sealed::Item::Watch(&self.core.state)
            }
        }

        /// Ready while a permit is free (an acquire would not wait).
        impl crate::Waitable for $t {}
    )*};
}
waitable!(Semaphore, BoundedSemaphore, CappedSemaphore);

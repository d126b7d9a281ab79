//! [`Barrier`]: lets a group of green threads wait for each other.

use crate::hub::{Blocker, Kind};
use std::fmt;

use super::cannot_wait;
use crate::wait::{self, WaitList, Waited};

struct State {
    /// How many have arrived in the current generation.
    count: usize,
    /// Bumped each time the barrier trips.
    generation: u64,
    waiters: WaitList,
}

fn waiters(s: &mut State) -> &mut WaitList {
    &mut s.waiters
}

/// A barrier enables multiple green threads to synchronize the beginning of
/// some computation; the ones that arrive early park.
///
/// The mirror of [`std::sync::Barrier`]: a barrier for `n` parks each caller
/// of [`wait`](Barrier::wait) until `n` of them have called it, then wakes
/// them all; exactly one of each group is the leader. It can be reused: the
/// next `n` callers form the next group. Waiters may be green threads of one
/// or several hubs and plain OS threads.
///
/// # Cancellation
/// A green thread killed or timed out while parked in `wait` leaves the
/// barrier: it no longer counts towards the current group, so the barrier
/// does not trip before `n` live waiters have arrived. (The group it left
/// still needs `n` arrivals; another caller takes its place.)
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use green::sync::Barrier;
///
/// let n = 10;
/// let barrier = Arc::new(Barrier::new(n));
/// let workers: Vec<_> = (0..n)
///     .map(|_| {
///         let b = Arc::clone(&barrier);
///         green::spawn(move || b.wait().is_leader())
///     })
///     .collect();
/// let leaders = workers.into_iter().map(|w| w.wait()).filter(|&leader| leader).count();
/// assert_eq!(leaders, 1);
/// ```
pub struct Barrier {
    n: usize,
    state: wait::Lock<State>,
}

/// What [`Barrier::wait`] returns: whether this caller is the leader of its
/// group.
///
/// The mirror of [`std::sync::BarrierWaitResult`].
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// Returns `true` if this caller is the "leader" of its group: exactly
    /// one caller of each group is, the one whose arrival tripped the
    /// barrier.
    ///
    /// # Examples
    /// ```
    /// let barrier = green::sync::Barrier::new(1);
    /// assert!(barrier.wait().is_leader());
    /// ```
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl fmt::Debug for BarrierWaitResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierWaitResult")
            .field("is_leader", &self.0)
            .finish()
    }
}

impl Barrier {
    /// Creates a new barrier that can block a given number of green threads.
    ///
    /// A barrier will park `n - 1` callers of [`wait`](Barrier::wait) and
    /// wake them all when the `n`th arrives. With `n` of 0 or 1, `wait`
    /// returns at once, always as the leader.
    ///
    /// # Examples
    /// ```
    /// let barrier = green::sync::Barrier::new(10);
    /// # let _ = barrier;
    /// ```
    #[must_use]
    pub const fn new(n: usize) -> Barrier {
        Barrier {
            n,
            state: wait::Lock::new(State {
                count: 0,
                generation: 0,
                waiters: WaitList::new(),
            }),
        }
    }

    /// Parks the current green thread until all `n` have rendezvoused here.
    ///
    /// Barriers are reusable after all of a group have rendezvoused. A
    /// single (arbitrary) caller of each group gets a result whose
    /// [`is_leader`](BarrierWaitResult::is_leader) is `true`: the one that
    /// arrived last.
    ///
    /// # Panics
    /// Panics when called from the hub itself (a timer callback).
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use green::sync::Barrier;
    ///
    /// let barrier = Arc::new(Barrier::new(2));
    /// let b = Arc::clone(&barrier);
    /// let other = std::thread::spawn(move || b.wait().is_leader());
    /// let me = barrier.wait().is_leader();
    /// assert!(me != other.join().unwrap());
    /// ```
    pub fn wait(&self) -> BarrierWaitResult {
        let mut s = self.state.lock();
        s.count += 1;
        // Queued waiters all arrived before this one; a waiter that leaves
        // is dequeued before it leaves the count.
        debug_assert!(s.waiters.len() < s.count);
        if s.count >= self.n {
            s.count = 0;
            s.generation = s.generation.wrapping_add(1);
            s.waiters.notify_all(|_| {});
            return BarrierWaitResult(true);
        }
        let generation = s.generation;

        /// Leaves the count if the waiter is unwound before its group is
        /// complete.
        struct Leave<'a> {
            state: &'a wait::Lock<State>,
            generation: u64,
        }
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                let mut s = self.state.lock();
                if s.generation == self.generation {
                    s.count -= 1;
                }
            }
        }
        let leave = Leave {
            state: &self.state,
            generation,
        };
        // A waiter woken and then unwound has nothing to hand back: its
        // group is complete.
        let on = Blocker::at(Kind::Barrier, &self.state);
        match wait::wait(&self.state, s, waiters, None, None, |_, _| {}, on) {
            Waited::Notified(_) => {
                std::mem::forget(leave);
                BarrierWaitResult(false)
            }
            Waited::TimedOut(_) => cannot_wait("green::sync::Barrier::wait"),
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier").finish_non_exhaustive()
    }
}

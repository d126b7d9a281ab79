//! Readiness watchers: how [`wait_any`](crate::wait_any) and
//! [`iwait`](crate::iwait) wait on many primitives at once.
//!
//! A waiter on many makes one [`Signal`] and registers a watcher, the
//! signal and the item's index, with each primitive (under that
//! primitive's lock, after looking at its state: [`Watchable::watch`]).
//! A primitive that may have become ready (an event sent, an item put, a
//! permit released, a green thread finished) fires and drops all its
//! watchers; firing records the index in the signal and unparks the
//! waiter. Watchers take nothing: the waiter looks again at the items that
//! fired, and registers again with any that is not ready after all
//! (another context took what made it ready).
//!
//! ```text
//!  waiter (wait_any)                       primitive (send, put, release)
//!  for each item: lock, ready? else add    lock, change state
//!  park  <--------------------------------  fire watchers: signal.fire(i)
//!  take fired indices, check them          unlock
//!  leave: lock each item, remove watcher
//! ```

use std::sync::{Arc, Mutex};

use crate::hub::Unparker;

use super::{lock, Lock};

/// What a waiter on many shares with the primitives it watches.
#[derive(Debug)]
pub struct Signal {
    state: Mutex<SignalState>,
}

#[derive(Debug)]
struct SignalState {
    /// Indices of the items that fired since the waiter last looked.
    fired: Vec<usize>,
    /// How to wake the waiter, set before each park.
    unparker: Option<Unparker>,
}

impl Signal {
    pub(crate) fn new() -> Arc<Signal> {
        Arc::new(Signal {
            state: Mutex::new(SignalState {
                fired: Vec::new(),
                unparker: None,
            }),
        })
    }

    /// Records that item `index` may be ready and wakes the waiter.
    fn fire(&self, index: usize) {
        let mut s = lock(&self.state);
        s.fired.push(index);
        if let Some(u) = &s.unparker {
            u.unpark();
        }
    }

    /// Sets who is woken by the next fire: the current context, about to
    /// park. Returns the indices that fired meanwhile (the park is then
    /// not needed).
    pub(crate) fn arm(&self, u: Unparker) -> Vec<usize> {
        let mut s = lock(&self.state);
        s.unparker = Some(u);
        std::mem::take(&mut s.fired)
    }

    /// After the park: the indices that fired since the last look. The
    /// waiter is disarmed, so that fires until its next park (between two
    /// calls of an `iwait`) wake nothing else it waits on.
    pub(crate) fn take_fired(&self) -> Vec<usize> {
        let mut s = lock(&self.state);
        s.unparker = None;
        std::mem::take(&mut s.fired)
    }
}

/// A primitive's watchers, kept in its locked state.
#[derive(Debug, Default)]
pub(crate) struct Watchers(Vec<(Arc<Signal>, usize)>);

impl Watchers {
    pub(crate) const fn new() -> Watchers {
        Watchers(Vec::new())
    }

    /// One watcher, to fire.
    pub(crate) fn one(signal: Arc<Signal>, index: usize) -> Watchers {
        Watchers(vec![(signal, index)])
    }

    /// The primitive may have become ready: wakes every watcher, once.
    #[inline]
    pub(crate) fn fire(&mut self) {
        if !self.0.is_empty() {
            self.fire_all();
        }
    }

    #[cold]
    #[inline(never)]
    fn fire_all(&mut self) {
        for (signal, index) in self.0.drain(..) {
            signal.fire(index);
        }
    }

    /// How many waits on many watch the primitive (for its `Debug`).
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn add(&mut self, signal: &Arc<Signal>, index: usize) {
        self.0.push((signal.clone(), index));
    }

    /// Removes the watcher of `signal` for item `index`, if it has not
    /// fired.
    pub(crate) fn remove(&mut self, signal: &Arc<Signal>, index: usize) {
        if let Some(i) = self
            .0
            .iter()
            .position(|(s, n)| Arc::ptr_eq(s, signal) && *n == index)
        {
            self.0.swap_remove(i);
        }
    }
}

/// A primitive that a waiter on many can watch. (`pub` in a module that
/// is not: it appears in [`crate::Waitable`]'s sealed supertrait.)
pub trait Watchable {
    /// Whether the primitive is ready now (its taking call would not wait).
    fn ready(&self) -> bool;
    /// Under the primitive's lock: `true` if it is ready, else registers
    /// the watcher `(signal, index)` and returns `false`.
    fn watch(&self, signal: &Arc<Signal>, index: usize) -> bool;
    /// Removes the watcher `(signal, index)` if it is still registered.
    fn unwatch(&self, signal: &Arc<Signal>, index: usize);
}

/// A primitive's locked state, as a wait on many sees it.
pub(crate) trait Watched {
    /// Whether the primitive's taking call would not wait now.
    fn is_ready(&self) -> bool;
    /// The primitive's watchers.
    fn watchers(&mut self) -> &mut Watchers;
}

/// A primitive is watched through its lock: looked at and registered with
/// under it, so that no change falls between the two.
impl<S: Watched> Watchable for Lock<S> {
    fn ready(&self) -> bool {
        self.lock().is_ready()
    }

    fn watch(&self, signal: &Arc<Signal>, index: usize) -> bool {
        let mut s = self.lock();
        if s.is_ready() {
            return true;
        }
        s.watchers().add(signal, index);
        false
    }

    fn unwatch(&self, signal: &Arc<Signal>, index: usize) {
        self.lock().watchers().remove(signal, index);
    }
}

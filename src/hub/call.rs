//! Public timers: a callback run by the hub at a given time (eventlet's
//! `hub.schedule_call_global`).

use std::fmt;
use std::time::{Duration, Instant};

use super::timer::{Action, TimerId};
use super::{hub, try_hub};

/// A callback scheduled on the current OS thread's hub by [`call_later`] or
/// [`call_at`]; [`cancel`](Timer::cancel) keeps it from running.
///
/// Dropping the handle does not cancel the callback (it runs as scheduled).
/// The handle belongs to the OS thread whose hub runs the callback: it is
/// neither `Send` nor `Sync`.
///
/// ```compile_fail
/// fn assert_send<T: Send>(_: T) {}
/// assert_send(green::hub::call_later(std::time::Duration::ZERO, || ()));
/// ```
pub struct Timer {
    id: TimerId,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Timer {
    /// Cancels the callback if it has not run yet; returns whether it was
    /// still pending (`false` once it has run or was cancelled already).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let t = green::hub::call_later(Duration::from_secs(60), || unreachable!());
    /// assert!(t.cancel());
    /// assert!(!t.cancel());
    /// assert_eq!(green::hub::stats().timers, 0);
    /// ```
    pub fn cancel(&self) -> bool {
        match try_hub() {
            Some(h) => {
                // Dropped here, the heap no longer borrowed.
                let action = h.timers.borrow_mut().cancel(self.id);
                action.is_some()
            }
            None => false,
        }
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer").finish_non_exhaustive()
    }
}

/// Runs `f` on this OS thread's hub once `delay` has passed, and returns a
/// handle that can cancel it.
///
/// `f` runs on the hub itself, between green threads, when the hub's loop
/// next fires its timers (it runs while the root or a green thread of this
/// OS thread waits). Callbacks due at the same time run in the order they
/// were scheduled. `f` must not block: a park, sleep or wait from it panics
/// with "do not call blocking functions from the hub" — spawn a green
/// thread from it for work that waits. A panic in `f` is reported by the
/// panic hook (printed) and the hub goes on, as eventlet's hub does with an
/// exception in a timer.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use std::{cell::Cell, rc::Rc};
///
/// let fired = Rc::new(Cell::new(false));
/// let f = fired.clone();
/// green::hub::call_later(Duration::from_millis(5), move || f.set(true));
/// assert!(!fired.get());
/// green::sleep(Duration::from_millis(20)); // the hub runs while the root sleeps
/// assert!(fired.get());
/// ```
pub fn call_later(delay: Duration, f: impl FnOnce() + 'static) -> Timer {
    // A delay too long to express never comes.
    let at = Instant::now().checked_add(delay).unwrap_or_else(far_future);
    call_at(at, f)
}

/// Runs `f` on this OS thread's hub at `deadline` (at once, at the loop's
/// next pass, if it has passed), and returns a handle that can cancel it.
/// See [`call_later`].
///
/// # Examples
/// ```
/// use std::time::{Duration, Instant};
/// use std::{cell::RefCell, rc::Rc};
///
/// let order = Rc::new(RefCell::new(Vec::new()));
/// let now = Instant::now();
/// for (name, ms) in [("b", 10), ("a", 5)] {
///     let order = order.clone();
///     green::hub::call_at(now + Duration::from_millis(ms), move || order.borrow_mut().push(name));
/// }
/// green::sleep(Duration::from_millis(20));
/// assert_eq!(*order.borrow(), ["a", "b"]);
/// ```
pub fn call_at(deadline: Instant, f: impl FnOnce() + 'static) -> Timer {
    let id = hub()
        .timers
        .borrow_mut()
        .add(deadline, Action::Call(Box::new(f)));
    Timer {
        id,
        _not_send: std::marker::PhantomData,
    }
}

/// An instant no timer reaches in practice.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// Runs a callback fired by the loop (which runs as the hub itself, so a
/// park from it panics); a panic is reported by the hook and swallowed.
pub(super) fn run(f: Box<dyn FnOnce()>) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
}

//! Timeouts delivered at park points (eventlet's `Timeout`).
//!
//! A [`Timeout`] arms a timer for the context that creates it. If the timer
//! fires while that context is parked (sleeping, waiting on an fd, joining,
//! ...), the context unwinds from its park point with an [`Elapsed`] payload;
//! if it is running, the unwind happens at its next park point. Destructors
//! run on the way out. [`with_timeout`] catches its own timeout and turns it
//! into `Err(Elapsed)`.

use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::hub::timer::ArmedTimeout;
use crate::hub::{end_cancel_unwind, hub};

pub use crate::hub::cancel::Elapsed;

static NEXT_TIMEOUT: AtomicU64 = AtomicU64::new(1);

/// A guard that interrupts the current context if it is still alive after a
/// duration; dropping it cancels the timer.
///
/// When it expires, the context that created it unwinds from its current or
/// next park point with an [`Elapsed`] payload. Catch it with
/// [`with_timeout`] (or `catch_unwind`); uncaught in a green thread, it ends
/// that green thread and [`GreenThread::join`](crate::GreenThread::join)
/// returns it as the error.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let gt = green::spawn(|| {
///     let _t = green::Timeout::new(Duration::from_millis(10));
///     green::sleep(Duration::from_secs(10));
/// });
/// assert!(gt.join().unwrap_err().is::<green::Elapsed>());
/// ```
///
/// # Panics
/// Panics when created from the hub itself (a timer callback).
pub struct Timeout {
    id: u64,
    armed: ArmedTimeout,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout").field("id", &self.id).finish()
    }
}

impl Timeout {
    /// Starts a timeout of `dur` for the current context.
    pub fn new(dur: Duration) -> Timeout {
        // A deadline past the end of time never fires: a century is as good.
        let deadline = Instant::now()
            .checked_add(dur)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86_400));
        Timeout::at(deadline)
    }

    /// Starts a timeout that expires at `deadline`.
    pub fn at(deadline: Instant) -> Timeout {
        let h = hub();
        // Fails from the hub itself before an id is taken.
        let _ = h.token();
        let id = NEXT_TIMEOUT.fetch_add(1, Ordering::Relaxed);
        Timeout {
            id,
            armed: h.arm_timeout(deadline, id),
            _not_send: PhantomData,
        }
    }

    /// Cancels the timeout; returns `true` if it had not expired yet.
    pub fn cancel(self) -> bool {
        hub().disarm_timeout(&self.armed)
    }

    /// Whether `payload` (from `catch_unwind` or `join`) is this timeout
    /// expiring.
    pub fn is_mine(&self, payload: &(dyn std::any::Any + Send)) -> bool {
        payload.downcast_ref::<Elapsed>() == Some(&Elapsed::new(self.id))
    }
}

impl Drop for Timeout {
    fn drop(&mut self) {
        hub().disarm_timeout(&self.armed);
    }
}

/// Runs `f`, interrupting it if it runs longer than `dur` (eventlet's
/// `with_timeout`).
///
/// The interruption happens at a park point of the current context (a
/// sleep, I/O wait, join ...): `f` unwinds from there, its destructors run,
/// and `with_timeout` returns `Err(Elapsed)`. A CPU-bound `f` that never
/// parks cannot be interrupted. Other panics in `f` propagate unchanged.
///
/// # Errors
/// [`Elapsed`] if `dur` passed before `f` returned.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// assert_eq!(green::with_timeout(Duration::from_secs(1), || 7), Ok(7));
/// ```
pub fn with_timeout<T, F>(dur: Duration, f: F) -> Result<T, Elapsed>
where
    F: FnOnce() -> T,
{
    let t = Timeout::new(dur);
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => Ok(v),
        Err(p) if t.is_mine(&*p) => {
            end_cancel_unwind();
            Err(Elapsed::new(t.id))
        }
        Err(p) => panic::resume_unwind(p),
    }
}

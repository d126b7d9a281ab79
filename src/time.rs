//! Temporal quantification: [`std::time`], with a [`sleep`] that parks only
//! the current green thread.
//!
//! As eventlet's `green.time`, this module re-exports std's and overrides
//! only what blocks: [`Duration`], [`Instant`], [`SystemTime`] and the rest
//! are std's own types.
//!
//! ```
//! use green::time::{sleep, Duration, Instant};
//!
//! let start = Instant::now();
//! let sleepers: Vec<_> = (0..10)
//!     .map(|_| green::spawn(|| sleep(Duration::from_millis(20))))
//!     .collect();
//! sleepers.into_iter().for_each(|s| s.wait());
//! // Ten sleeps of 20 ms overlap on one OS thread.
//! assert!(start.elapsed() < Duration::from_secs(2));
//! ```

pub use std::time::*;

/// Puts the current green thread (or the root) to sleep for at least `dur`,
/// letting the other green threads of its hub run.
///
/// This is [`green::sleep`](crate::sleep); `sleep(Duration::ZERO)` yields.
///
/// # Panics
/// Panics when called from the hub itself (a timer callback).
///
/// # Examples
/// ```
/// use green::time::{sleep, Duration, Instant};
///
/// let start = Instant::now();
/// sleep(Duration::from_millis(10));
/// assert!(start.elapsed() >= Duration::from_millis(10));
/// ```
pub fn sleep(dur: Duration) {
    crate::greenthread::sleep(dur);
}

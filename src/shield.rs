//! Shielding: holding kills and timeouts back while a piece of work ends.

use crate::hub;

/// Runs `f` with [`kill`](crate::GreenThread::kill) and
/// [`Timeout`](crate::Timeout) held back until it returns.
///
/// A kill or timeout that arrives while `f` runs does not interrupt it:
/// every wait inside `f` (a sleep, a channel receive, a lock, a socket
/// read) goes on until it ends by itself. The cancellation stays pending
/// and is delivered at the first park point after the outermost shield
/// returns — the next sleep, wait or yield — as a kill that arrives while
/// a green thread runs always is. Shields nest. This is what
/// [`tpool::execute`](crate::tpool::execute) and
/// [`thread::scope`](crate::thread::scope) do inside, for work that must
/// not be abandoned half way: a commit, a reply already promised, a
/// cleanup that waits.
///
/// From a plain OS thread (no hub) it just runs `f`. A cancellation still
/// wakes a wait inside the shield once, which the wait takes as a spurious
/// wakeup and goes on waiting (the primitives all check their condition).
///
/// # Examples
/// ```
/// use std::time::{Duration, Instant};
/// use std::{cell::Cell, rc::Rc};
///
/// let done = Rc::new(Cell::new(false));
/// let d = done.clone();
/// let gt = green::spawn(move || {
///     // The kill comes during this sleep, which still lasts 50 ms ...
///     green::shield(|| green::sleep(Duration::from_millis(50)));
///     d.set(true);
///     // ... and is delivered here, at the next park point.
///     green::sleep(Duration::from_secs(10));
/// });
/// let t = Instant::now();
/// green::yield_now(); // it sleeps in the shield
/// gt.kill();
/// assert!(gt.join().unwrap_err().is::<green::Killed>());
/// assert!(done.get());
/// assert!(t.elapsed() >= Duration::from_millis(50));
/// ```
pub fn shield<T>(f: impl FnOnce() -> T) -> T {
    match hub::try_hub() {
        Some(h) => h.shield(f),
        None => f(),
    }
}

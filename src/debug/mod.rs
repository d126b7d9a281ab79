//! Seeing inside the hubs: the blocking detector, the dump, "would block
//! forever", and the backdoor.
//!
//! - [`hub_blocking_detection`] starts a watchdog that names a green thread
//!   holding its hub (below).
//! - [`dump`] lists every green thread of every hub: id, name, spawn site,
//!   and running, runnable or parked on what, for how long and until when;
//!   [`dump_on_signal`] prints it on a signal, as Go does on `SIGQUIT`.
//! - A root's wait that provably can never end (nothing runnable, no
//!   timer, fd or tpool job, no other thread that could act) panics with
//!   "would block forever" and the dump, as gevent's `LoopExit`.
//! - [`serve_backdoor`] serves a line console (`dump`, `stats`, `kill ID`,
//!   `help`) on a loopback port or a Unix socket, from an OS thread of its
//!   own. Anyone who can connect can kill any green thread: listen only on
//!   loopback or a protected socket.
//!
//! `docs/debugging.md` shows each with real output.
//!
//! # The blocking detector
//!
//! Cooperative scheduling fails in one way above all: one green thread
//! holds its hub — a loop that computes without parking, or a blocking call
//! green does not make cooperative (a file read, a lock of C code, a std
//! `Mutex` whose holder is a green thread parked on the same hub) — and
//! every other green thread of that OS thread stops. eventlet has
//! `debug.hub_blocking_detection`, gevent a monitor thread; green has
//! [`hub_blocking_detection`].
//!
//! With a threshold set, a watchdog OS thread looks at every hub of the
//! process. A green thread that runs longer than the threshold without
//! switching is reported once on stderr, and to the hook set with
//! [`on_blocking`]: which OS thread, which green thread (its id, its name
//! if it has one, the file and line of the call that spawned it), for how
//! long, and what it is doing — running user code, or the system call its
//! OS thread is in, with the likely cause and the fix. When it switches
//! again, a second report says how long the stall lasted.
//!
//! The hub's side costs three relaxed stores per switch to a green thread,
//! whether the detector is on or off.
//!
//! # Examples
//! ```
//! use std::sync::mpsc;
//! use std::time::{Duration, Instant};
//!
//! let (tx, rx) = mpsc::channel();
//! green::debug::on_blocking(move |r| {
//!     let _ = tx.send((r.green_thread, r.ended));
//! });
//! green::debug::hub_blocking_detection(Some(Duration::from_millis(20)));
//! let busy = green::spawn(|| {
//!     let start = Instant::now();
//!     while start.elapsed() < Duration::from_millis(200) {} // no park point
//! });
//! let id = busy.id();
//! busy.wait();
//! // First the stall, then its end.
//! assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), (id, false));
//! assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), (id, true));
//! green::debug::hub_blocking_detection(None);
//! ```

mod backdoor;
mod dump;
mod signal;
mod syscall;
mod watchdog;

use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

pub use backdoor::{serve_backdoor, Backdoor, BackdoorAddr};
pub use dump::{dump, Dump, GreenThreadInfo, HubDump, State, WaitReason};
pub use signal::dump_on_signal;
pub use syscall::Activity;
pub(crate) use watchdog::watch_shared_identity;

/// Turns the blocking detector on with `threshold` (`Some`), or off
/// (`None`). Off by default; process-wide, for every hub.
///
/// A green thread that runs for longer than `threshold` without switching
/// is reported on stderr and to the [`on_blocking`] hook; see the
/// [module docs](self). Thresholds under 1 ms count as 1 ms. The watchdog
/// looks every quarter of the threshold (at most every 250 ms), so a stall
/// is reported between one and one and a quarter thresholds after it
/// began, and the durations it reports are short by at most that quarter.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// green::debug::hub_blocking_detection(Some(Duration::from_millis(100)));
/// green::debug::hub_blocking_detection(None);
/// ```
pub fn hub_blocking_detection(threshold: Option<Duration>) {
    watchdog::set_threshold(threshold);
}

/// Sets the function that receives every blocking report (replacing the
/// one set before). It runs on the watchdog's OS thread; reports still go
/// to stderr too. A panic in it is caught and ignored.
///
/// # Examples
/// ```
/// green::debug::on_blocking(|report| {
///     // Hand it to the program's own logging.
///     let _ = format!("{report}");
/// });
/// ```
pub fn on_blocking<F>(f: F)
where
    F: Fn(&BlockingReport) + Send + Sync + 'static,
{
    *watchdog::HOOK.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(f));
}

/// A report of the blocking detector: a hub held by one green thread, or
/// (with [`ended`](Self::ended) set) the end of that.
///
/// Its `Display` is the text printed on stderr.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BlockingReport {
    /// The hub's OS thread, by its kernel id (`gettid`).
    pub os_thread: u64,
    /// The id of the green thread that holds the hub
    /// ([`GreenThread::id`](crate::GreenThread::id)).
    pub green_thread: u64,
    /// Its name, if a `Builder` gave it one.
    pub name: Option<Arc<str>>,
    /// The call that spawned it.
    pub spawned_at: Option<&'static Location<'static>>,
    /// How long it has held the hub so far; in the report of the end, how
    /// long it held it. Short by at most a quarter of the threshold.
    pub held_for: Duration,
    /// What its OS thread was doing when the stall was reported.
    pub activity: Activity,
    /// The likely cause and the fix, in words.
    pub hint: String,
    /// The green thread switched again (or its OS thread ended): the
    /// stall is over.
    pub ended: bool,
}

impl fmt::Display for BlockingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "green: green thread {}", self.green_thread)?;
        if let Some(n) = &self.name {
            write!(f, " {n:?}")?;
        }
        if let Some(at) = self.spawned_at {
            write!(f, " (spawned at {at})")?;
        }
        let ms = self.held_for.as_secs_f64() * 1e3;
        if self.ended {
            return write!(
                f,
                " let the hub of OS thread {} go again: it held it for {ms:.0} ms",
                self.os_thread
            );
        }
        write!(
            f,
            " has held the hub of OS thread {} for {ms:.0} ms without a switch: {}.",
            self.os_thread, self.activity
        )?;
        if !self.hint.is_empty() {
            write!(f, " {}", self.hint)?;
        }
        Ok(())
    }
}

/// Kills green thread `id` of any hub, from any OS thread: the operator's
/// kill (the backdoor's `kill ID`), for a green thread found in a
/// [`dump`]. Returns whether a live green thread had that id.
///
/// The kill is delivered as [`GreenThread::kill`](crate::GreenThread::kill)
/// delivers it, when the green thread's hub next runs its loop: it unwinds
/// from its park point with [`Killed`](crate::Killed). A hub held by a
/// green thread that never switches cannot deliver it.
///
/// # Examples
/// ```
/// let sleeper = green::spawn(|| green::sleep(std::time::Duration::from_secs(60)));
/// green::yield_now();
/// assert!(green::debug::kill(sleeper.id()));
/// assert!(sleeper.join().unwrap_err().is::<green::Killed>());
/// assert!(!green::debug::kill(u64::MAX)); // no such green thread
/// ```
pub fn kill(id: u64) -> bool {
    crate::hub::stall::kill_by_id(id)
}

/// Panics from a root's wait on `on` that can never end, with a dump.
#[cold]
#[track_caller]
pub(crate) fn would_block_forever(on: crate::hub::Blocker) -> ! {
    let tid = crate::sys::thread::gettid().as_raw_nonzero().get();
    let what = dump::WaitReason::of(on).map_or_else(|| "something".to_owned(), |r| r.to_string());
    panic!(
        "green: this wait would block forever: the root of OS thread {tid} waits on {what}, \
         and nothing can wake it (no green thread is runnable; no timer, fd or tpool job \
         is pending; no other thread of the process could act)\n\n{}",
        dump()
    )
}

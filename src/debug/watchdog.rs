//! The watchdog: an OS thread that notices a hub held by one green thread.
//!
//! Every period (a quarter of the threshold, between 1 ms and 250 ms) it
//! reads each hub's beat (`hub::stall`). A hub whose resume count has not
//! moved while a green thread runs has been held by that green thread
//! since the watchdog first saw the count; past the threshold it is
//! reported once, with what its OS thread is doing
//! (`/proc/self/task/TID/syscall`), and again when it switches.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::syscall::{self, Activity};
use super::BlockingReport;
use crate::hub::stall::{self, Beat};

/// The threshold the user set, in nanoseconds; 0: off.
static THRESHOLD: AtomicU64 = AtomicU64::new(0);
/// Why green threads share their OS thread's identity, if `patch()` found
/// they must: the watchdog then reports at [`SHARED_LIMIT`] even when the
/// user set no threshold (two of them in std's `thread::park` spin).
static SHARED: Mutex<Option<String>> = Mutex::new(None);
static STARTED: AtomicBool = AtomicBool::new(false);
/// Set by the watchdog's thread itself, once it runs (it never ends).
static RUNNING: AtomicBool = AtomicBool::new(false);

/// The watchdog's threads, as a helper of green's own: it wakes no hub by
/// itself, but a hook of the user's may, while the watchdog reports
/// (`hub::register_helpers`).
fn helpers() -> Option<usize> {
    // Asked by a hub about to sleep: it must not wait for the lock.
    if threshold().is_some() && crate::wait::try_lock(&HOOK)?.is_some() {
        return None;
    }
    Some(usize::from(RUNNING.load(Ordering::SeqCst)))
}

/// How long a green thread may hold its hub under shared identity before
/// it is reported, when the user set no threshold.
const SHARED_LIMIT: Duration = Duration::from_secs(10);

/// The hook the user set ([`super::on_blocking`]).
pub(super) type Hook = Arc<dyn Fn(&BlockingReport) + Send + Sync>;
pub(super) static HOOK: Mutex<Option<Hook>> = Mutex::new(None);

/// Sets the threshold (`None`: off) and starts the watchdog if needed.
pub(super) fn set_threshold(t: Option<Duration>) {
    let nanos = t.map_or(0, |t| {
        t.max(Duration::from_millis(1))
            .as_nanos()
            .min(u64::MAX as u128) as u64
    });
    THRESHOLD.store(nanos, Ordering::SeqCst);
    if nanos != 0 {
        start();
    }
}

/// The threshold in force: the user's, or the shared-identity one.
fn threshold() -> Option<Duration> {
    match THRESHOLD.load(Ordering::SeqCst) {
        0 => shared_reason().map(|_| SHARED_LIMIT),
        n => Some(Duration::from_nanos(n)),
    }
}

fn shared_reason() -> Option<String> {
    SHARED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Watches for hubs held by green threads that share their OS thread's
/// identity (`why` says why they do), even with no threshold set.
pub(crate) fn watch_shared_identity(why: String) {
    *SHARED.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    start();
}

fn start() {
    if STARTED.swap(true, Ordering::SeqCst) {
        return;
    }
    crate::hub::register_helpers(helpers);
    let spawned = std::thread::Builder::new()
        .name("green-watchdog".into())
        .spawn(watch);
    if spawned.is_err() {
        STARTED.store(false, Ordering::SeqCst);
    }
}

/// One hub as last seen.
struct Seen {
    beat: Weak<Beat>,
    /// The resume count, and when the watchdog first saw it.
    resumes: u64,
    since: Instant,
    /// The report of the stall in progress, if one was made.
    reported: Option<BlockingReport>,
}

fn watch() -> ! {
    RUNNING.store(true, Ordering::SeqCst);
    let mut seen: Vec<Seen> = Vec::new();
    loop {
        let limit = threshold();
        let period = limit.map_or(Duration::from_millis(250), |t| {
            (t / 4).clamp(Duration::from_millis(1), Duration::from_millis(250))
        });
        std::thread::sleep(period);
        let Some(limit) = limit else {
            seen.clear();
            continue;
        };
        let now = Instant::now();
        for beat in stall::beats() {
            if !seen.iter().any(|s| s.beat.as_ptr() == Arc::as_ptr(&beat)) {
                seen.push(Seen {
                    beat: Arc::downgrade(&beat),
                    resumes: u64::MAX,
                    since: now,
                    reported: None,
                });
            }
        }
        seen.retain_mut(|s| match s.beat.upgrade() {
            Some(beat) => {
                look(s, &beat, now, limit);
                true
            }
            None => {
                // The hub's OS thread ended: so did the stall.
                end(s, now);
                false
            }
        });
    }
}

/// Compares hub `beat` with what was seen of it, and reports.
fn look(s: &mut Seen, beat: &Beat, now: Instant, limit: Duration) {
    let resumes = beat.resumes.load(Ordering::Relaxed);
    let running = beat.running.load(Ordering::Relaxed);
    if resumes != s.resumes || running == 0 {
        end(s, now);
        s.resumes = resumes;
        s.since = now;
        return;
    }
    if s.reported.is_none() && now.duration_since(s.since) >= limit {
        let tid = beat.tid.load(Ordering::Relaxed);
        let activity = syscall::of_thread(tid);
        let origin = stall::origin_of(beat, running);
        let r = BlockingReport {
            os_thread: tid,
            green_thread: running,
            name: origin.name,
            spawned_at: origin.site,
            held_for: now.duration_since(s.since),
            hint: hint(&activity),
            activity,
            ended: false,
        };
        emit(&r);
        s.reported = Some(r);
    }
}

/// Reports the end of the stall of `s`, if one was reported.
fn end(s: &mut Seen, now: Instant) {
    if let Some(mut r) = s.reported.take() {
        r.held_for = now.duration_since(s.since);
        r.ended = true;
        emit(&r);
    }
}

/// What most likely holds the hub, and what fixes it.
fn hint(a: &Activity) -> String {
    let shared = if THRESHOLD.load(Ordering::SeqCst) == 0 {
        shared_reason()
    } else {
        None
    };
    if let Some(why) = shared {
        return format!(
            "Green threads here share their OS thread's identity ({why}): two of them \
             blocked in std::thread::park at once (under std's mpsc, crossbeam-channel, \
             parking_lot, thread::scope) share one parker and spin for ever. Turn on \
             per-green-thread identity (green::patch() does where it is supported), or use \
             green::sync and green::thread, which park per green thread. (A green thread that \
             computes without blocking also holds its hub.)"
        );
    }
    match a {
        Activity::Running => "A green thread switches only where it parks: a loop that \
             computes without parking holds its hub. Call green::yield_now() in the loop, or \
             run the computation in green::tpool."
            .into(),
        a if a.is_futex_wait() => "A futex wait: most likely a lock, condition variable or \
             channel of std (or parking_lot, crossbeam) that another green thread of this same \
             hub holds or must signal while it is parked, so it never can. Use green::sync's \
             types, which park only the green thread, or call green::patch() at startup, \
             which makes std's do so."
            .into(),
        Activity::Syscall { name, .. } => format!(
            "The system call {name} blocks the OS thread: green does not make it cooperative \
             here. Use green's own types (green::net, green::process, green::sync), run the \
             call in green::tpool, or call green::patch() at startup."
        ),
        _ => String::new(),
    }
}

/// Prints a report on stderr and hands it to the user's hook.
fn emit(r: &BlockingReport) {
    eprintln!("{r}");
    let hook = HOOK.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(f) = hook {
        // A hook that panics must not end the watchdog.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(r)));
    }
}

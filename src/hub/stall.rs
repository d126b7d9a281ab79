//! A watchdog that reports a hub held by one green thread, for where green
//! threads share their OS thread's identity.
//!
//! There, two green threads of one hub blocked in std's `thread::park`
//! (under std's `mpsc`, crossbeam-channel, parking_lot, `thread::scope`)
//! share one parker word, and the second spins on it in user space for
//! ever: no call is made that green could hook, and the hub stops. The
//! watchdog, an OS thread started by `patch()` when identity is shared,
//! looks at every hub once a second. A hub whose current green thread has
//! run for [`LIMIT`] without switching is reported on stderr, once per
//! stall, with the likely cause and the fix; so is the end of the stall.
//!
//! The hub's side is two stores per resume (`resumes`, `running`) and one
//! when the green thread switches back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How long a green thread may run without switching before it is reported.
pub(crate) const LIMIT: Duration = Duration::from_secs(10);

/// What the watchdog reads of a hub.
#[derive(Debug, Default)]
pub(crate) struct Beat {
    /// Resumes of green threads so far.
    pub(crate) resumes: AtomicU64,
    /// The id of the green thread running now, 0 when none is.
    pub(crate) running: AtomicU64,
    /// The hub's OS thread (kernel id), for the report.
    pub(crate) tid: AtomicU64,
}

impl Beat {
    /// A green thread `id` is resumed.
    #[inline]
    pub(crate) fn resume(&self, id: u64) {
        let n = self.resumes.load(Ordering::Relaxed);
        self.resumes.store(n.wrapping_add(1), Ordering::Relaxed);
        self.running.store(id, Ordering::Relaxed);
    }

    /// The green thread switched back to the hub.
    #[inline]
    pub(crate) fn back(&self) {
        self.running.store(0, Ordering::Relaxed);
    }
}

static HUBS: Mutex<Vec<Weak<Beat>>> = Mutex::new(Vec::new());
static STARTED: AtomicBool = AtomicBool::new(false);

/// Makes a hub's beat visible to the watchdog.
pub(crate) fn register(beat: &Arc<Beat>) {
    let mut hubs = HUBS.lock().unwrap_or_else(|e| e.into_inner());
    hubs.retain(|w| w.strong_count() > 0);
    hubs.push(Arc::downgrade(beat));
}

/// Starts the watchdog (once per process); `why` says why identity is
/// shared, for the report.
pub(crate) fn start(why: String) {
    if STARTED.swap(true, Ordering::SeqCst) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("green-stall-watchdog".into())
        .spawn(move || watch(&why));
    if spawned.is_err() {
        STARTED.store(false, Ordering::SeqCst);
    }
}

/// One hub as last seen: its beat, the resume count and when it last
/// changed, and whether its stall was reported.
struct Seen {
    beat: Weak<Beat>,
    resumes: u64,
    since: Instant,
    reported: bool,
}

fn watch(why: &str) -> ! {
    let mut seen: Vec<Seen> = Vec::new();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = Instant::now();
        for w in HUBS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if !seen.iter().any(|s| s.beat.ptr_eq(w)) {
                seen.push(Seen {
                    beat: w.clone(),
                    resumes: u64::MAX,
                    since: now,
                    reported: false,
                });
            }
        }
        seen.retain(|s| s.beat.strong_count() > 0);
        for s in &mut seen {
            let Some(beat) = s.beat.upgrade() else {
                continue;
            };
            let resumes = beat.resumes.load(Ordering::Relaxed);
            let running = beat.running.load(Ordering::Relaxed);
            let tid = beat.tid.load(Ordering::Relaxed);
            if resumes != s.resumes || running == 0 {
                if s.reported {
                    eprintln!(
                        "green: the hub of OS thread {tid} switched again after {:.0} s",
                        now.duration_since(s.since).as_secs_f64()
                    );
                }
                s.resumes = resumes;
                s.since = now;
                s.reported = false;
            } else if !s.reported && now.duration_since(s.since) >= LIMIT {
                s.reported = true;
                eprintln!(
                    "green: the hub of OS thread {tid} has run green thread {running} for {} s \
                     without a switch. Green threads here share their OS thread's identity \
                     ({why}): two of them blocked in std::thread::park at once (under std's \
                     mpsc, crossbeam-channel, parking_lot, thread::scope) share one parker and \
                     spin for ever. Turn on per-green-thread identity (green::patch() does where \
                     it is supported), or use green::sync and green::thread, which park per \
                     green thread. (A green thread that computes without blocking also holds \
                     its hub.)",
                    LIMIT.as_secs()
                );
            }
        }
    }
}

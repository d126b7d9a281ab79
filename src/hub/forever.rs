//! "Would block forever": a wait of the root that provably cannot end.
//!
//! gevent raises `LoopExit` when the main greenlet waits and the loop has
//! nothing left that could wake it; Go stops with "all goroutines are
//! asleep". The hub makes the same proof when its root parks with no
//! deadline (in a wait that may panic: [`park_watched`]) and the loop finds
//! nothing to do:
//!
//! - no context is runnable, no timer is set, no context waits for an fd,
//!   and no wake-up or kill from another OS thread is queued;
//! - no cancellation waits to be delivered;
//! - and no other OS thread of the process can run code that would wake
//!   it: the process has no thread besides this one and green's own helper
//!   threads, and those are idle (no tpool job is queued or running).
//!
//! Then every context of this hub is parked on something only another
//! context of this hub could end (green thread handles cannot leave their
//! OS thread; every other handle that could wake them would need a thread
//! to run on), so the root's wait never ends: the wait panics with "would
//! block forever" instead of sleeping in the poller for ever.
//!
//! The proof is conservative: any other OS thread of the process (a plain
//! thread blocked in a read, another hub, the test harness's main thread)
//! means no proof, so a deadlock among several hubs is not reported.

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use super::slots::State;
use super::{Hub, Token, Wake, ROOT};

/// How green's own helper threads say how many of them there are when
/// they are all idle (`None`: one of them is busy and could wake a hub).
type Helpers = fn() -> Option<usize>;

static HELPERS: Mutex<Vec<Helpers>> = Mutex::new(Vec::new());

/// Registers a kind of helper thread of green's own (tpool workers, the
/// watchdog, ...): `count` returns how many threads of that kind exist if
/// none of them is doing anything that could wake a hub, else `None`. A
/// function registered again is kept once.
pub(crate) fn register_helpers(count: Helpers) {
    let mut h = HELPERS.lock().unwrap_or_else(|e| e.into_inner());
    if !h.iter().any(|&f| std::ptr::fn_addr_eq(f, count)) {
        h.push(count);
    }
}

/// The number of OS threads of the process, from `/proc/self/stat`.
fn process_threads() -> Option<usize> {
    use crate::sys::fs::{open, Mode, OFlags};
    let fd = open(
        "/proc/self/stat",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut buf = [0u8; 1024];
    let n = crate::sys::io::read(&fd, &mut buf).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    // After the command name (in parentheses, which may hold anything):
    // state, ppid, ... num_threads is the 18th field.
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(17)?.parse().ok()
}

impl Hub {
    /// The root's park may be proven endless until the guard is dropped,
    /// however the park ends (a failing loop unwinds through it).
    pub(super) fn watch_root(&self) -> Unwatch<'_> {
        self.forever.set(false);
        self.forever_looks.set(0);
        self.root_watched.set(true);
        Unwatch(self)
    }

    /// Whether the root's wait, with the loop about to sleep with no
    /// timer, provably never ends (see the module docs): `Some(true)` if it
    /// does; `Some(false)` if this hub has something that may end it;
    /// `None` if only other threads might (look again later: a helper
    /// that just finished a job or a thread that is exiting still counts).
    #[cold]
    pub(super) fn proves_forever(&self) -> Option<bool> {
        if !self.root_watched.get()
            || !self.run_queue.borrow().is_empty()
            || !self.timers.borrow().is_empty()
            || self.io.borrow().waiters() > 0
            || self.shared.has_remote.load(Ordering::SeqCst)
            || self.cancels.any_pending()
            || self.cancels.any_deferred()
            || self.slots.borrow()[ROOT as usize].state != State::Parked
        {
            return Some(false);
        }
        // Without waiting for a lock another thread holds: no proof then,
        // and the loop looks again.
        let helpers_list = super::try_lock(&HELPERS)?;
        let mut helpers = 0;
        for count in helpers_list.iter() {
            helpers += count()?;
        }
        if process_threads()? != 1 + helpers {
            return None;
        }
        // A thread that woke this hub and then ended before the count (or
        // a helper that finished a job just before it was counted idle)
        // has queued its wake by now.
        let queued = self.shared.has_remote.load(Ordering::SeqCst)
            || !self.run_queue.borrow().is_empty()
            || self.cancels.any_pending();
        Some(!queued)
    }

    /// How long the loop sleeps before it looks again when only other
    /// threads keep the proof from holding: 1 ms, doubling up to 1 s.
    pub(super) fn forever_recheck(&self) -> std::time::Duration {
        let n = self.forever_looks.get();
        self.forever_looks.set(n.saturating_add(1));
        std::time::Duration::from_millis(1 << n.min(10))
    }

    /// Wakes the root to panic from its wait ([`park_watched`]).
    #[cold]
    pub(super) fn wake_root_forever(&self) {
        self.forever.set(true);
        let (gen, seq) = {
            let slots = self.slots.borrow();
            let root = &slots[ROOT as usize];
            (root.gen, root.seq)
        };
        self.wake(
            Token {
                key: ROOT,
                gen,
                seq,
            },
            Wake::Woken,
        );
    }
}

/// A park that may find that it can never end: as [`park`](super::park),
/// but a root parked with no deadline whose hub proves (see the module
/// docs) that nothing can ever wake it returns `Err(WouldBlockForever)`,
/// for the caller to panic with a dump.
#[inline(always)]
pub(crate) fn park_watched(
    deadline: Option<std::time::Instant>,
    on: super::Blocker,
) -> Result<Wake, WouldBlockForever> {
    let h = super::hub();
    let w = h.park_inner(deadline, true, on, true);
    // Set by the loop for the root's watched park: only the root takes it
    // (a green thread that a late kill put first in the run queue leaves
    // it to the root).
    if h.forever.get() && h.current.get() == ROOT {
        h.forever.set(false);
        return Err(WouldBlockForever);
    }
    match w {
        Wake::Cancel(c) => super::deliver(c),
        w => Ok(w),
    }
}

/// Ends the watch of the root's park when dropped ([`Hub::watch_root`]).
pub(super) struct Unwatch<'a>(&'a Hub);

impl Drop for Unwatch<'_> {
    fn drop(&mut self) {
        self.0.root_watched.set(false);
    }
}

/// A root's wait that can never end ([`park_watched`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WouldBlockForever;

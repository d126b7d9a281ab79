//! What other OS threads can see of a hub: its beat, and a record of each
//! context. The watchdog (`crate::debug`) and dumps read them.
//!
//! A hub held by one green thread (a CPU loop, or a call green does not
//! make cooperative) stops every other green thread of its OS thread, so
//! what the watchdog and a dump read must be shared, not the hub's own
//! (`RefCell`) state. Each hub publishes:
//!
//! - a [`Beat`]: a resume counter and the id of the green thread running
//!   now, its counts as of its loop's last look at I/O, and its recent
//!   looks at the clock ([`Look`]);
//! - a [`Record`] per slot: the id of the green thread in it, where it was
//!   spawned, and, while it is parked, what it waits on ([`Blocker`]),
//!   since which look and until when. Names live beside the records, in a
//!   map by id ([`Records`]), as few green threads have one.
//!
//! The hub's side: two relaxed stores per resume and one when the green
//! thread switches back; a spawn two (and a lock if it is named), a reap
//! one; a park four, a wake one; a look at the clock one.

use std::collections::HashMap;
use std::panic::Location;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::slots::CHUNK;
use super::{HubStats, Shared};

/// Where a green thread comes from: the spawn call and the name it was
/// given.
#[derive(Clone, Debug, Default)]
pub(crate) struct Origin {
    /// The call of the spawn family that made it (`#[track_caller]`).
    pub(crate) site: Option<&'static Location<'static>>,
    /// The name given by a `Builder`, if any.
    pub(crate) name: Option<Arc<str>>,
}

/// What another OS thread can read of one slot's green thread.
#[derive(Debug, Default)]
pub(crate) struct Record {
    /// The id of the green thread in the slot; 0 when it is vacant (and
    /// for the root, which has no green id).
    id: AtomicU64,
    /// Where it was spawned (null: unknown). Locations are `'static`: the
    /// pointer stays valid whatever the green thread does.
    site: AtomicPtr<Location<'static>>,
    /// What it is parked on ([`Blocker::pack`]); 0 when not parked.
    wait: AtomicU64,
    /// The blocker's argument.
    arg: AtomicU64,
    /// When it parked: the hub's last look at the clock before ([`Look`],
    /// packed).
    since: AtomicU64,
    /// Its park's deadline, in nanoseconds since [`epoch`] plus one; 0
    /// for none.
    until: AtomicU64,
}

impl Record {
    /// Green thread `id`, spawned at `site`, now lives in the slot. (Its
    /// `wait` is 0: a green thread ends running, after its last wake.)
    #[inline]
    pub(super) fn fill(&self, id: u64, site: Option<&'static Location<'static>>) {
        let site = site.map_or(ptr::null_mut(), |l| ptr::from_ref(l).cast_mut());
        self.site.store(site, Ordering::Relaxed);
        self.id.store(id, Ordering::Release);
    }

    /// The slot's green thread ended.
    #[inline]
    pub(super) fn clear(&self) {
        self.id.store(0, Ordering::Release);
    }

    /// Its context parks on `on` at `since`, until `until` (as the fields
    /// say).
    #[inline]
    pub(super) fn park(&self, on: Blocker, since: u64, until: u64) {
        self.arg.store(on.arg, Ordering::Relaxed);
        self.since.store(since, Ordering::Relaxed);
        self.until.store(until, Ordering::Relaxed);
        self.wait.store(on.pack(), Ordering::Release);
    }

    /// Its context is runnable (or running) again.
    #[inline]
    pub(super) fn unparked(&self) {
        self.wait.store(0, Ordering::Relaxed);
    }
}

/// The process's clock origin for the records' times.
pub(crate) fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `t` in nanoseconds since `epoch` (0 before it).
#[inline]
pub(crate) fn nanos_since(epoch: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX - 1)
}

/// One slot's record as read at one moment.
#[derive(Clone, Debug)]
pub(crate) struct Snap {
    /// The slot (0: the root).
    pub(crate) slot: usize,
    /// The green thread's id (0 for the root).
    pub(crate) id: u64,
    pub(crate) site: Option<&'static Location<'static>>,
    pub(crate) name: Option<Arc<str>>,
    /// What it is parked on (`Kind::None`: not parked).
    pub(crate) on: Blocker,
    /// When it parked, as near as the hub's looks at the clock tell: the
    /// hub's first look after the park if the hub still remembers it, else
    /// its last look before.
    pub(crate) since: Option<Instant>,
    /// Its park's deadline.
    pub(crate) until: Option<Instant>,
}

/// Every live record of a hub (`beat`'s): its root's and its green
/// threads'.
pub(crate) fn snapshot(beat: &Beat) -> Vec<Snap> {
    let records = &beat.records;
    let chunks = records.chunks();
    let names = records
        .names
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let epoch = epoch();
    let mut out = Vec::new();
    for (slot, r) in chunks.iter().flat_map(|c| c.iter()).enumerate() {
        let id = r.id.load(Ordering::Acquire);
        if id == 0 && slot != 0 {
            continue;
        }
        let word = r.wait.load(Ordering::Acquire);
        let arg = r.arg.load(Ordering::Relaxed);
        let since = r.since.load(Ordering::Relaxed);
        let until = r.until.load(Ordering::Relaxed);
        let p = r.site.load(Ordering::Relaxed);
        // SAFETY: only `fill` stores here, null or a `&'static Location`.
        let site = unsafe { p.cast_const().as_ref() };
        let name = names.get(&id).cloned();
        // The same green thread throughout: what was read is its own.
        if r.id.load(Ordering::Acquire) != id {
            continue;
        }
        let on = Blocker::unpack(word, arg);
        let parked = on.kind != Kind::None;
        out.push(Snap {
            slot,
            id,
            site,
            name,
            on,
            since: parked.then(|| epoch + beat.park_time(Look::unpack(since))),
            until: (parked && until != 0).then(|| epoch + Duration::from_nanos(until - 1)),
        });
    }
    out
}

/// The records of a hub's slots, in chunks as the slab has them (a chunk
/// is added when the slab grows and never moves), and the names of its
/// named green threads, by id: few green threads have one, and a record
/// without it stays small (a spawn and a reap touch one cache line of it).
#[derive(Debug, Default)]
pub(crate) struct Records {
    chunks: Mutex<Vec<Arc<[Record; CHUNK]>>>,
    names: Mutex<HashMap<u64, Arc<str>>>,
}

impl Records {
    /// Adds the records of a new chunk of slots.
    pub(super) fn push(&self, chunk: Arc<[Record; CHUNK]>) {
        self.chunks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(chunk);
    }

    /// The chunks now.
    fn chunks(&self) -> Vec<Arc<[Record; CHUNK]>> {
        self.chunks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Green thread `id` is named `name` (or no longer, with `None`).
    #[cold]
    #[inline(never)]
    pub(super) fn name(&self, id: u64, name: Option<Arc<str>>) {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        match name {
            Some(n) => names.insert(id, n),
            None => names.remove(&id),
        };
    }
}

/// Where green thread `id` of a hub comes from, as far as its records
/// say (nothing if it has ended meanwhile).
pub(crate) fn origin_of(beat: &Beat, id: u64) -> Origin {
    snapshot(beat)
        .into_iter()
        .find(|s| id != 0 && s.id == id)
        .map_or_else(Origin::default, |s| Origin {
            site: s.site,
            name: s.name,
        })
}

/// One look of a hub's loop at the clock: its number (modulo
/// [`Look::WRAP`]) and its time in microseconds since [`epoch`]. A park
/// records the last look before it (one store, no clock read); the
/// hub's next look, kept in its beat's ring of recent looks, bounds the
/// park's time from above, so a dump shows how long a context has been
/// parked to within the time between two looks. The loop looks each time
/// it is about to sleep, when it fires timers, after it slept, and every
/// `POLL_EVERY` passes of a busy loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Look {
    n: u64,
    micros: u64,
}

impl Look {
    const WRAP: u64 = 1 << 16;
    const MICROS: u64 = (1 << 48) - 1;
    const RING: usize = 64;

    /// The look of a new hub.
    pub(crate) fn first(epoch: Instant) -> Look {
        Look {
            n: 0,
            micros: nanos_since(epoch, Instant::now()) / 1000,
        }
    }

    /// The look after this one, at `now`.
    pub(crate) fn next(self, epoch: Instant, now: Instant) -> Look {
        Look {
            n: (self.n + 1) % Self::WRAP,
            micros: nanos_since(epoch, now) / 1000,
        }
    }

    /// The number in the top 16 bits, the microseconds (8.9 years'
    /// worth) in the rest.
    pub(crate) fn pack(self) -> u64 {
        (self.n << 48) | (self.micros & Self::MICROS)
    }

    pub(crate) fn unpack(v: u64) -> Look {
        Look {
            n: v >> 48,
            micros: v & Self::MICROS,
        }
    }
}

/// What the watchdog reads of a hub.
#[derive(Debug, Default)]
pub(crate) struct Beat {
    /// Resumes of green threads so far.
    pub(crate) resumes: AtomicU64,
    /// The id of the green thread running now, 0 when none is.
    pub(crate) running: AtomicU64,
    /// The records of the hub's slots.
    pub(crate) records: Arc<Records>,
    /// The hub's OS thread (kernel id), for the report.
    pub(crate) tid: AtomicU64,
    /// The hub's counts, as of its loop's last look at I/O (`None`
    /// before it first looked).
    pub(crate) counts: Mutex<Option<Counts>>,
    /// The loop's recent looks at the clock, packed, by number modulo the
    /// ring's length.
    pub(super) looks: Looks,
}

/// A ring of looks ([`Beat::looked`]).
#[derive(Debug)]
pub(super) struct Looks([AtomicU64; Look::RING]);

impl Default for Looks {
    fn default() -> Looks {
        // Look 0 at time 0: the hub publishes its first look, at its
        // creation, over it; the others are overwritten before they are
        // wanted.
        Looks(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

/// A hub's counts as its loop published them: each time it is about to
/// sleep in the poller, and every `POLL_EVERY` passes of a busy loop.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Counts {
    pub(crate) stats: HubStats,
    /// When its next timer is due.
    pub(crate) next_timer: Option<Instant>,
}

impl Beat {
    /// Green thread `id` is resumed.
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

    /// The loop looked at the clock.
    #[inline]
    pub(crate) fn looked(&self, look: Look) {
        self.looks.0[look.n as usize % Look::RING].store(look.pack(), Ordering::Relaxed);
    }

    /// When a context parked after look `at` did, since [`epoch`]: the
    /// next look's time if the ring still has it, else `at`'s.
    fn park_time(&self, at: Look) -> Duration {
        let slot =
            |n: u64| Look::unpack(self.looks.0[n as usize % Look::RING].load(Ordering::Relaxed));
        let want = (at.n + 1) % Look::WRAP;
        // The ring still holds `at` itself: the next look in it is `at`'s
        // next, not one a whole wrap of numbers later.
        let recent = slot(at.n) == at;
        let next = slot(want);
        let micros = if recent && next.n == want && next.micros >= at.micros {
            next.micros
        } else {
            at.micros
        };
        Duration::from_micros(micros)
    }
}

static HUBS: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// Makes a hub visible to the watchdog and to dumps.
pub(crate) fn register(shared: &Arc<Shared>) {
    let mut hubs = HUBS.lock().unwrap_or_else(|e| e.into_inner());
    hubs.retain(|w| w.strong_count() > 0);
    hubs.push(Arc::downgrade(shared));
}

/// The hubs alive now, oldest first.
fn hubs() -> Vec<Arc<Shared>> {
    let hubs = HUBS.lock().unwrap_or_else(|e| e.into_inner());
    hubs.iter().filter_map(Weak::upgrade).collect()
}

/// The beats of the hubs alive now.
pub(crate) fn beats() -> Vec<Arc<Beat>> {
    hubs().iter().map(|h| h.beat.clone()).collect()
}

/// Asks the hub of green thread `id` to kill it, from any OS thread.
/// Returns whether a live green thread had that id when asked; the kill
/// is delivered as [`GreenThread::kill`](crate::GreenThread::kill)'s is,
/// when its hub next runs.
pub(crate) fn kill_by_id(id: u64) -> bool {
    if id == 0 {
        return false;
    }
    for h in hubs() {
        if h.closed.load(Ordering::Acquire) {
            continue;
        }
        let has = h
            .beat
            .records
            .chunks()
            .iter()
            .flat_map(|c| c.iter())
            .any(|r| r.id.load(Ordering::Acquire) == id);
        if has {
            h.kills.lock().unwrap_or_else(|e| e.into_inner()).push(id);
            h.wake_loop();
            return true;
        }
    }
    false
}

/// What a parked context waits on, as its record keeps it for a dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// Not parked (running or runnable).
    None = 0,
    /// `park_until` or an `Unparker`.
    Park,
    /// A sleep.
    Sleep,
    /// An fd, for reading (`fd`).
    FdRead,
    /// An fd, for writing (`fd`).
    FdWrite,
    /// Several fds at once (poll, select).
    Fds,
    Event,
    Semaphore,
    Mutex,
    RwLock,
    Condvar,
    Barrier,
    Once,
    QueueGet,
    QueuePut,
    QueueJoin,
    MpscRecv,
    MpscSend,
    /// A free place in a `GreenPool`.
    Pool,
    /// A `GreenPool` with nothing running.
    PoolIdle,
    /// The end of green thread `arg`.
    Join,
    /// A tpool job.
    Tpool,
    /// A child process `arg` (through its pidfd `fd`).
    Child,
    /// A futex word at address `arg` (under `patch()`).
    Futex,
    /// The scoped threads of a `thread::scope`.
    Scope,
    /// A future (`block_on`).
    Future,
    /// The start of a `spawn_after` green thread.
    Start,
    /// Any of `arg` items (`wait_any`, `iwait`).
    Any,
    /// The members of a `Group` or pool to end.
    Group,
}

impl Kind {
    const ALL: [Kind; 29] = [
        Kind::None,
        Kind::Park,
        Kind::Sleep,
        Kind::FdRead,
        Kind::FdWrite,
        Kind::Fds,
        Kind::Event,
        Kind::Semaphore,
        Kind::Mutex,
        Kind::RwLock,
        Kind::Condvar,
        Kind::Barrier,
        Kind::Once,
        Kind::QueueGet,
        Kind::QueuePut,
        Kind::QueueJoin,
        Kind::MpscRecv,
        Kind::MpscSend,
        Kind::Pool,
        Kind::PoolIdle,
        Kind::Join,
        Kind::Tpool,
        Kind::Child,
        Kind::Futex,
        Kind::Scope,
        Kind::Future,
        Kind::Start,
        Kind::Any,
        Kind::Group,
    ];

    fn from_u8(v: u8) -> Kind {
        Kind::ALL.get(v as usize).copied().unwrap_or(Kind::None)
    }
}

/// What a park waits on: a kind, an fd (or -1) and an argument (an
/// address, a green thread id, a pid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Blocker {
    pub(crate) kind: Kind,
    pub(crate) fd: i32,
    pub(crate) arg: u64,
}

impl Blocker {
    /// A park on `kind` with no fd nor argument.
    pub(crate) const fn of(kind: Kind) -> Blocker {
        Blocker {
            kind,
            fd: -1,
            arg: 0,
        }
    }

    /// A park on the primitive at `addr`.
    #[inline]
    pub(crate) fn at<T: ?Sized>(kind: Kind, addr: *const T) -> Blocker {
        Blocker {
            kind,
            fd: -1,
            arg: addr.cast::<()>() as usize as u64,
        }
    }

    /// A park on `kind` with argument `arg`.
    pub(crate) const fn arg(kind: Kind, arg: u64) -> Blocker {
        Blocker { kind, fd: -1, arg }
    }

    fn pack(self) -> u64 {
        (self.kind as u64) | (u64::from(self.fd as u32) << 32)
    }

    fn unpack(word: u64, arg: u64) -> Blocker {
        Blocker {
            kind: Kind::from_u8(word as u8),
            fd: (word >> 32) as u32 as i32,
            arg,
        }
    }
}

// `Kind::ALL` lists the kinds in the order of their values.
const _: () = {
    let mut i = 0;
    while i < Kind::ALL.len() {
        assert!(Kind::ALL[i] as usize == i);
        i += 1;
    }
};

// A record is six words: a spawn, a park and a reap each touch one cache
// line of it (the name lives in `Records::names`).
const _: () = assert!(std::mem::size_of::<Record>() == 48);

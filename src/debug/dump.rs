//! The dump: every green thread of every hub, and what each waits on.
//!
//! Each hub keeps, per slot, a record that other OS threads can read
//! (`hub::stall`): the green thread's id and spawn site (its name beside),
//! and, while it is parked, what it waits on, since when and until when. A
//! park writes four relaxed stores there, a wake one. A dump reads the records
//! without stopping any hub, so it also works while a hub is held by a
//! green thread that never switches (the blocking detector's case).

use std::fmt;
use std::os::fd::RawFd;
use std::panic::Location;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::hub::stall::{self, Blocker, Kind, Snap};
use crate::hub::{HubStats, Interest};

/// Every green thread of every hub of the process, at one moment.
///
/// Made by [`dump`]; its `Display` is the text [`dump_on_signal`] prints.
/// Each green thread's entry is read without stopping its hub: an entry of
/// a green thread that parks and wakes very often may mix two of its
/// consecutive waits, and a green thread spawned while the dump is taken
/// may be missing.
///
/// [`dump_on_signal`]: super::dump_on_signal
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Dump {
    /// When it was taken.
    pub taken_at: Instant,
    /// The hubs alive, in the order they were created.
    pub hubs: Vec<HubDump>,
}

/// One hub in a [`Dump`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HubDump {
    /// The hub's OS thread, by its kernel id (`gettid`).
    pub os_thread: u64,
    /// That OS thread's name (`/proc/self/task/TID/comm`), if it can be
    /// read.
    pub os_thread_name: Option<String>,
    /// What the OS thread's own context (the root, which runs the hub's
    /// loop when it waits) is doing.
    pub root: State,
    /// The hub's counts, as of the last time its loop looked at I/O (each
    /// time it is about to sleep, and every few dozen passes of a busy
    /// loop); `None` if it has not done so yet.
    pub counts: Option<HubStats>,
    /// When the hub's next timer is due, as of the same moment.
    pub next_timer: Option<Instant>,
    /// Its green threads, in slot order.
    pub green_threads: Vec<GreenThreadInfo>,
}

/// One green thread in a [`Dump`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GreenThreadInfo {
    /// Its id ([`GreenThread::id`](crate::GreenThread::id)).
    pub id: u64,
    /// Its name, if a `Builder` gave it one.
    pub name: Option<Arc<str>>,
    /// The call that spawned it.
    pub spawned_at: Option<&'static Location<'static>>,
    /// What it is doing.
    pub state: State,
}

/// What a context is doing, in a [`Dump`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// It holds its hub now.
    Running,
    /// It is in its hub's run queue.
    Runnable,
    /// It waits.
    Parked {
        /// On what.
        on: WaitReason,
        /// For how long so far. The start is the hub's clock of its last
        /// pass, so this may be long by the length of one pass of the
        /// loop.
        parked_for: Duration,
        /// When the wait gives up (a timeout), if it does.
        deadline: Option<Instant>,
    },
}

/// What a parked context waits on, in a [`Dump`].
///
/// The `addr` of a primitive is the address of its shared state: two
/// green threads waiting on the same `Mutex` show the same address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitReason {
    /// [`thread::park`](crate::thread::park), `park_until` or an
    /// [`Unparker`](crate::hub::Unparker).
    Park,
    /// A sleep (its deadline is the end of the sleep).
    Sleep,
    /// An fd's readiness ([`trampoline`](crate::hub::trampoline) and every
    /// green I/O type).
    Fd {
        /// The fd.
        fd: RawFd,
        /// Reading or writing.
        interest: Interest,
    },
    /// Several fds at once (`poll`, `select` under `patch()`).
    Fds {
        /// How many.
        count: usize,
        /// The first of them.
        first: RawFd,
    },
    /// An [`Event`](crate::Event).
    Event {
        /// Its address.
        addr: usize,
    },
    /// A [`Semaphore`](crate::Semaphore) (acquire, or a bounded release).
    Semaphore {
        /// Its address.
        addr: usize,
    },
    /// A [`sync::Mutex`](crate::sync::Mutex).
    Mutex {
        /// Its address.
        addr: usize,
    },
    /// A [`sync::RwLock`](crate::sync::RwLock).
    RwLock {
        /// Its address.
        addr: usize,
    },
    /// A [`sync::Condvar`](crate::sync::Condvar).
    Condvar {
        /// Its address.
        addr: usize,
    },
    /// A [`sync::Barrier`](crate::sync::Barrier).
    Barrier {
        /// Its address.
        addr: usize,
    },
    /// A [`sync::Once`](crate::sync::Once) (or a `OnceLock`,
    /// `LazyLock`) another context is running.
    Once {
        /// Its address.
        addr: usize,
    },
    /// A get from an empty [`Queue`](crate::queue::Queue).
    QueueGet {
        /// The queue's address.
        addr: usize,
    },
    /// A put into a full [`Queue`](crate::queue::Queue).
    QueuePut {
        /// The queue's address.
        addr: usize,
    },
    /// A queue's `join` (unfinished tasks).
    QueueJoin {
        /// The queue's address.
        addr: usize,
    },
    /// A `recv` from an empty [`sync::mpsc`](crate::sync::mpsc) channel.
    MpscRecv {
        /// The channel's address.
        addr: usize,
    },
    /// A `send` into a full [`sync::mpsc`](crate::sync::mpsc) channel.
    MpscSend {
        /// The channel's address.
        addr: usize,
    },
    /// A free place in a [`GreenPool`](crate::GreenPool).
    Pool {
        /// The pool's address.
        addr: usize,
    },
    /// A [`GreenPool::waitall`](crate::GreenPool::waitall).
    PoolIdle {
        /// The pool's address.
        addr: usize,
    },
    /// The end of another green thread (`join`, `wait`).
    Join {
        /// Its id.
        id: u64,
    },
    /// A [`tpool`](crate::tpool) job.
    Tpool,
    /// A child process's exit.
    Child {
        /// Its pid.
        pid: u32,
    },
    /// A futex word (a lock or condition variable of std or C code, under
    /// `patch()`).
    Futex {
        /// The word's address.
        addr: usize,
    },
    /// The threads of a [`thread::scope`](crate::thread::scope).
    Scope,
    /// A future ([`block_on`](crate::block_on)).
    Future,
    /// Its start: a [`spawn_after`](crate::spawn_after) green thread
    /// whose delay has not passed.
    Start,
    /// Any of several items ([`wait_any`](crate::wait_any),
    /// [`iwait`](crate::iwait)).
    Any {
        /// How many items it watches.
        count: usize,
    },
    /// The members of a [`Group`](crate::Group) or a pool to end
    /// (`join`, `kill_all`).
    Group {
        /// The group's address.
        addr: usize,
    },
}

impl WaitReason {
    pub(super) fn of(b: Blocker) -> Option<WaitReason> {
        let addr = b.arg as usize;
        Some(match b.kind {
            Kind::None => return None,
            Kind::Park => WaitReason::Park,
            Kind::Sleep => WaitReason::Sleep,
            Kind::FdRead => WaitReason::Fd {
                fd: b.fd,
                interest: Interest::Read,
            },
            Kind::FdWrite => WaitReason::Fd {
                fd: b.fd,
                interest: Interest::Write,
            },
            Kind::Fds => WaitReason::Fds {
                count: addr,
                first: b.fd,
            },
            Kind::Event => WaitReason::Event { addr },
            Kind::Semaphore => WaitReason::Semaphore { addr },
            Kind::Mutex => WaitReason::Mutex { addr },
            Kind::RwLock => WaitReason::RwLock { addr },
            Kind::Condvar => WaitReason::Condvar { addr },
            Kind::Barrier => WaitReason::Barrier { addr },
            Kind::Once => WaitReason::Once { addr },
            Kind::QueueGet => WaitReason::QueueGet { addr },
            Kind::QueuePut => WaitReason::QueuePut { addr },
            Kind::QueueJoin => WaitReason::QueueJoin { addr },
            Kind::MpscRecv => WaitReason::MpscRecv { addr },
            Kind::MpscSend => WaitReason::MpscSend { addr },
            Kind::Pool => WaitReason::Pool { addr },
            Kind::PoolIdle => WaitReason::PoolIdle { addr },
            Kind::Join => WaitReason::Join { id: b.arg },
            Kind::Tpool => WaitReason::Tpool,
            Kind::Child => WaitReason::Child { pid: b.arg as u32 },
            Kind::Futex => WaitReason::Futex { addr },
            Kind::Scope => WaitReason::Scope,
            Kind::Future => WaitReason::Future,
            Kind::Start => WaitReason::Start,
            Kind::Any => WaitReason::Any { count: addr },
            Kind::Group => WaitReason::Group { addr },
        })
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WaitReason::Park => f.write_str("park"),
            WaitReason::Sleep => f.write_str("sleep"),
            WaitReason::Fd { fd, interest } => {
                let what = match interest {
                    Interest::Read => "read",
                    Interest::Write => "write",
                };
                write!(f, "fd {fd} {what}")
            }
            WaitReason::Fds { count, first } => write!(f, "{count} fds (fd {first}, ...)"),
            WaitReason::Event { addr } => write!(f, "Event {addr:#x}"),
            WaitReason::Semaphore { addr } => write!(f, "Semaphore {addr:#x}"),
            WaitReason::Mutex { addr } => write!(f, "Mutex {addr:#x}"),
            WaitReason::RwLock { addr } => write!(f, "RwLock {addr:#x}"),
            WaitReason::Condvar { addr } => write!(f, "Condvar {addr:#x}"),
            WaitReason::Barrier { addr } => write!(f, "Barrier {addr:#x}"),
            WaitReason::Once { addr } => write!(f, "Once {addr:#x}"),
            WaitReason::QueueGet { addr } => write!(f, "Queue get {addr:#x}"),
            WaitReason::QueuePut { addr } => write!(f, "Queue put {addr:#x}"),
            WaitReason::QueueJoin { addr } => write!(f, "Queue join {addr:#x}"),
            WaitReason::MpscRecv { addr } => write!(f, "mpsc recv {addr:#x}"),
            WaitReason::MpscSend { addr } => write!(f, "mpsc send {addr:#x}"),
            WaitReason::Pool { addr } => write!(f, "GreenPool slot {addr:#x}"),
            WaitReason::PoolIdle { addr } => write!(f, "GreenPool waitall {addr:#x}"),
            WaitReason::Join { id } => write!(f, "join of green thread {id}"),
            WaitReason::Tpool => f.write_str("tpool job"),
            WaitReason::Child { pid } => write!(f, "child pid {pid}"),
            WaitReason::Futex { addr } => write!(f, "futex {addr:#x}"),
            WaitReason::Scope => f.write_str("thread::scope"),
            WaitReason::Future => f.write_str("future (block_on)"),
            WaitReason::Start => f.write_str("start (spawn_after)"),
            WaitReason::Any { count } => write!(f, "any of {count} items (wait_any)"),
            WaitReason::Group { addr } => write!(f, "Group members {addr:#x}"),
        }
    }
}

/// Writes `d` for a person: "1.2 s", "35 ms", "120 µs".
fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.1} s")
    } else if s >= 1e-3 {
        format!("{:.0} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

impl State {
    fn of(s: &Snap, running: bool, now: Instant) -> State {
        match WaitReason::of(s.on) {
            Some(on) => State::Parked {
                on,
                parked_for: s
                    .since
                    .map_or(Duration::ZERO, |t| now.saturating_duration_since(t)),
                deadline: s.until,
            },
            None if running => State::Running,
            None => State::Runnable,
        }
    }

    /// Writes the state, with deadlines relative to `now`.
    fn write(&self, f: &mut fmt::Formatter<'_>, now: Instant) -> fmt::Result {
        match self {
            State::Running => f.write_str("running"),
            State::Runnable => f.write_str("runnable"),
            State::Parked {
                on,
                parked_for,
                deadline,
            } => {
                write!(f, "parked {} on {on}", human(*parked_for))?;
                match deadline {
                    Some(d) if *d > now => write!(f, " (until in {})", human(*d - now)),
                    Some(d) => write!(f, " (until {} ago)", human(now - *d)),
                    None => Ok(()),
                }
            }
        }
    }
}

impl HubDump {
    /// The hub's line: its OS thread and its counts, with times relative
    /// to `now`.
    pub(super) fn head(&self, now: Instant) -> String {
        use fmt::Write;
        let mut s = format!("hub of OS thread {}", self.os_thread);
        if let Some(name) = &self.os_thread_name {
            let _ = write!(s, " ({name})");
        }
        let _ = write!(s, ": {} green threads", self.green_threads.len());
        let Some(c) = &self.counts else {
            s.push_str(", no counts yet (its loop has not looked at I/O)");
            return s;
        };
        let _ = write!(s, ", {} runnable, {} timers", c.runnable, c.timers);
        if let Some(t) = self.next_timer {
            let _ = write!(s, " (next in {})", human(t.saturating_duration_since(now)));
        }
        let _ = write!(
            s,
            ", {} fd waiters, {} registered fds, {} pooled stacks",
            c.fd_waiters, c.registered_fds, c.pooled_stacks
        );
        s
    }
}

impl Dump {
    /// Every green thread of the dump, hub after hub.
    pub fn green_threads(&self) -> impl Iterator<Item = &GreenThreadInfo> {
        self.hubs.iter().flat_map(|h| h.green_threads.iter())
    }

    /// The green thread with id `id`, if the dump has it.
    pub fn find(&self, id: u64) -> Option<&GreenThreadInfo> {
        self.green_threads().find(|g| g.id == id)
    }
}

impl fmt::Display for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let now = self.taken_at;
        let n: usize = self.hubs.iter().map(|h| h.green_threads.len()).sum();
        writeln!(f, "green: {} hubs, {n} green threads", self.hubs.len())?;
        for h in &self.hubs {
            write!(f, "\n{}", h.head(now))?;
            f.write_str("\n  root: ")?;
            h.root.write(f, now)?;
            f.write_str("\n")?;
            for g in &h.green_threads {
                write!(f, "  green thread {}", g.id)?;
                if let Some(name) = &g.name {
                    write!(f, " {name:?}")?;
                }
                if let Some(at) = g.spawned_at {
                    write!(f, " (spawned at {at})")?;
                }
                f.write_str(": ")?;
                g.state.write(f, now)?;
                f.write_str("\n")?;
            }
        }
        Ok(())
    }
}

/// A dump of every green thread of every hub: id, name, spawn site, and
/// what it is doing — running, runnable, or parked on what, for how long
/// and until when — with each hub's counts.
///
/// It can be taken from any OS thread, with or without a hub, and stops
/// no hub: it reads what each hub publishes (see [`Dump`] for what that
/// means for a busy hub).
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let sleeper = green::Builder::new()
///     .name("sleeper")
///     .spawn(|| green::sleep(Duration::from_secs(10)))?;
/// green::yield_now(); // it runs and parks in its sleep
/// let dump = green::debug::dump();
/// let me = dump.find(sleeper.id()).expect("the sleeper is in the dump");
/// assert_eq!(me.name.as_deref(), Some("sleeper"));
/// assert!(matches!(
///     me.state,
///     green::debug::State::Parked { on: green::debug::WaitReason::Sleep, .. }
/// ));
/// println!("{dump}");
/// sleeper.kill();
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn dump() -> Dump {
    let taken_at = Instant::now();
    let hubs = stall::beats()
        .into_iter()
        .map(|beat| {
            let running = beat.running.load(Ordering::Relaxed);
            let tid = beat.tid.load(Ordering::Relaxed);
            let mut root = State::Runnable;
            let mut green_threads = Vec::new();
            for s in stall::snapshot(&beat) {
                if s.slot == 0 {
                    root = State::of(&s, running == 0, taken_at);
                } else {
                    green_threads.push(GreenThreadInfo {
                        id: s.id,
                        name: s.name.clone(),
                        spawned_at: s.site,
                        state: State::of(&s, running == s.id, taken_at),
                    });
                }
            }
            let counts = *beat.counts.lock().unwrap_or_else(|e| e.into_inner());
            HubDump {
                os_thread: tid,
                os_thread_name: std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                    .ok()
                    .map(|s| s.trim_end().to_owned()),
                root,
                counts: counts.map(|c| c.stats),
                next_timer: counts.and_then(|c| c.next_timer),
                green_threads,
            }
        })
        .collect();
    Dump { taken_at, hubs }
}

//! The hub: one scheduler per OS thread.
//!
//! A hub owns a run queue, a timer heap, a poller for fd readiness and a queue
//! of wakeups sent from other OS threads. It is created the first time an OS
//! thread uses green, and torn down when that thread exits.
//!
//! # The loop
//!
//! ```text
//! run until the root is woken:
//!     take remote wakeups          -> run queue
//!     run what is in the run queue, FIFO (each runs until it parks)
//!     fire due timers              -> run queue
//!     nothing runnable? poller.wait(until the next timer)
//!         each event wakes the waiters of its fd
//! ```
//!
//! There is no separate hub thread or hub coroutine: the loop runs on the
//! stack of the OS thread itself (the *root context*) whenever the root
//! blocks, exactly as eventlet's main greenlet switches to the hub. Green
//! threads are resumed from the loop and suspend back into it:
//!
//! ```text
//!  root stack                      green thread stacks
//!  ----------                      -------------------
//!  main()
//!   green::sleep(..)   park root
//!    Hub::run_root     ---resume-->  A: ... green::sleep(..) --suspend--+
//!      (loop)          <------------------------------------------------+
//!                      ---resume-->  B: ... trampoline(..)  --suspend--+
//!      (loop)          <------------------------------------------------+
//!      poller.wait
//!      root's timer fires, root popped from the run queue
//!   <- returns to main()
//! ```
//!
//! # Park and unpark
//!
//! Every context (the root and each green thread) has a slot. Parking records
//! the slot's *park sequence number*; the hub's own wakeups (a deadline timer,
//! an fd event) name `(slot, generation, sequence)` and are ignored unless all
//! three still match a parked context, so a stale one (a timeout that lost the
//! race, an event for a waiter that gave up, a green thread that exited and
//! whose slot was reused) can never resume a later wait. [`Unparker`] names
//! `(slot, generation)` only and behaves like `std::thread::Thread::unpark`:
//! it wakes the context's current park or makes its next one return. It is
//! `Send + Sync`: used on the hub's own thread it pushes onto the run queue;
//! from another OS thread it pushes onto the hub's remote queue and notifies
//! the poller only if the hub is asleep.
//!
//! # The parts
//!
//! The hub is the bottom of the scheduler: it imports nothing from the
//! layers above it (`crate::coro` and `crate::sys` are below it). What those
//! layers keep per context they keep through the hub's hooks: a
//! type-erased handle per slot (`Hub::current_thread`), and a function run
//! when teardown leaks a context (`on_leaked_teardown`).
//!
//! | file | concept |
//! |---|---|
//! | `slots.rs` | the slots of the contexts, in a slab that never moves them |
//! | `park.rs` | park, wake and yield: tokens and the closing hub's park |
//! | `unpark.rs` | [`Unparker`] and the wait lists' `NodeUnparker` |
//! | `run.rs` | the loop, the remote queue, the timers' and poller's dispatch |
//! | `spawn.rs` | ids, spawning, a green thread's start, exit and reaping |
//! | `seat.rs` | the seating of shared-stack green threads in their arenas |
//! | `cancel.rs` | kill and timeout: one state type and its transitions |
//! | `coop.rs` | the cooperative budget |
//! | `teardown.rs` | the hub's end at its thread's exit |
//! | `timer.rs`, `poller.rs` | the timer heap, epoll and the eventfd |
//! | `call.rs` | public timers: `call_later`, `call_at` and their [`Timer`] |
//! | `io/`, `fdmap.rs` | fd readiness, [`trampoline`], closes and the I/O loop |
//! | `stall.rs` | what a watchdog sees of a hub: its beat, spawn sites, names |

mod call;
pub(crate) mod cancel;
mod coop;
pub(crate) mod fdmap;
mod forever;
mod io;
mod park;
mod poller;
mod run;
mod seat;
mod slots;
pub(crate) mod spawn;
pub(crate) mod stall;
mod teardown;
pub(crate) mod timer;
mod unpark;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::coro::{self, StackPool, Yielder};
use park::next_seq;
use slots::Slab;
use timer::Timers;

pub use call::{call_at, call_later, Timer};
pub(crate) use cancel::{
    deliver, end_cancel_unwind, note_not_unwinding, stronger, unwinding_from_cancel, Cancel,
};
pub(crate) use coop::coop_spend;
pub use coop::set_coop_budget;
pub(crate) use forever::{park_watched, register_helpers, WouldBlockForever};
pub(crate) use io::trampoline_as;
pub(crate) use io::FdTable;
pub(crate) use io::{io_loop, io_loop_unsignalled, poll_now, Backoff};
pub use io::{notify_close, trampoline, trampoline_both, wait_io, Interest, Ready};
pub use park::{current_unparker, park_until};
pub(crate) use park::{park_fd, sleep, sleep_until, Token};
pub(crate) use spawn::next_id;
pub(crate) use stall::{Blocker, Kind};
pub(crate) use teardown::on_leaked_teardown;
pub(crate) use unpark::NodeUnparker;
pub use unpark::Unparker;

/// Slot of the root context (the OS thread's own stack).
pub(crate) const ROOT: u32 = 0;
/// Value of `current` while the hub itself runs (timer callbacks, dispatch).
const HUB_CTX: u32 = u32::MAX;

/// Why a parked context was woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Unparked by whoever it waited for (or spuriously).
    Woken,
    /// Its park deadline passed.
    TimedOut,
    /// The fd it waited on was closed, or (from [`park_fd`] only) the hub
    /// is torn down while the context unwinds.
    Closed,
    /// A kill or timeout is to be delivered.
    Cancel(Cancel),
}

/// The part of a hub that other OS threads reach.
pub(crate) struct Shared {
    poller: poller::Poller,
    remote: Mutex<Vec<(u32, u32, u32)>>,
    /// Set with every push on `remote` or `closes`: the loop drains both.
    has_remote: AtomicBool,
    /// Fds closed on other threads that this hub registered, with the
    /// close count of each (`io::notify_close`).
    closes: Mutex<Vec<(std::os::fd::RawFd, u32)>>,
    has_closes: AtomicBool,
    /// This hub's id (`io::register_hub`): which bit it sets in the
    /// process-wide record of who registered each fd.
    id: u32,
    sleeping: AtomicBool,
    /// Set when the hub's thread tears it down: its contexts never run
    /// again.
    closed: AtomicBool,
    /// What the stall watchdog reads (`stall`).
    beat: Arc<stall::Beat>,
    /// Green threads to kill, by id, asked for from any OS thread
    /// ([`kill_by_id`]); drained with `remote`.
    kills: Mutex<Vec<u64>>,
}

/// A per-OS-thread scheduler. See the module docs.
///
/// Each concept keeps its own fields: `cancels` (`cancel.rs`), `coop`
/// (`coop.rs`), `seats` (`seat.rs`); the slots hold the per-context state.
pub(crate) struct Hub {
    shared: Arc<Shared>,
    slots: RefCell<Slab>,
    run_queue: RefCell<VecDeque<(u32, u32)>>,
    /// Slot of the running context, or `HUB_CTX`.
    current: Cell<u32>,
    current_yielder: Cell<*const Yielder>,
    timers: RefCell<Timers>,
    io: RefCell<FdTable>,
    events: RefCell<(poller::EventBuf, Vec<poller::Event>)>,
    remote_buf: RefCell<Vec<(u32, u32, u32)>>,
    /// How many strong references to `shared` the hub holds for handles
    /// that let go of theirs on this thread ([`Hub::lend_ref`]), to hand
    /// out again ([`Hub::shared_ref`]): a wait list's node lets go of its
    /// hub after every wait and takes it back for the next one without
    /// touching the reference count.
    ///
    /// # Invariant
    /// Exactly this many strong references to `shared` are owned by this
    /// count (released when the hub is dropped). It is at most the number
    /// of nodes that ever waited on this hub, far from overflowing.
    lent_refs: Cell<usize>,
    stacks: RefCell<StackPool>,
    seats: seat::Seats,
    /// Stack pointer of the shared-stack green thread that suspended last.
    last_sp: Cell<usize>,
    /// The running green thread is on a shared stack: it records its
    /// stack pointer in `last_sp` as it suspends.
    current_seated: Cell<bool>,
    green_count: Cell<usize>,
    cancels: cancel::Cancels,
    closing: Cell<bool>,
    ticks: Cell<u32>,
    altstack: Cell<Option<(usize, usize)>>,
    /// The OS thread's thread pointer, restored when a green thread with
    /// a block of its own suspends.
    os_tp: usize,
    /// `wrfsbase` may set the thread pointer.
    fsgsbase: bool,
    coop: coop::Budget,
    /// The origin of the records' times (`stall::epoch`).
    epoch: std::time::Instant,
    /// The same as `shared.beat`, one pointer nearer: each resume
    /// writes to it.
    beat: Arc<stall::Beat>,
    /// The loop's last look at the clock (`stall::Look`, packed): what a
    /// park records as its start (`Hub::refresh_clock`).
    clock: Cell<u64>,
    /// The root is parked in a wait that may find it never ends
    /// (`forever::park_watched`).
    root_watched: Cell<bool>,
    /// The loop proved that the root's wait never ends: it panics.
    forever: Cell<bool>,
    /// Looks taken at the root's current wait (`Hub::forever_recheck`).
    forever_looks: Cell<u32>,
    /// This hub's name for the locks biased to it (`wait::Lock`): unique
    /// in the process, never reused, at least 2.
    bias_id: usize,
    /// The green thread ids this hub hands out next, `next..end`
    /// (`spawn::Hub::fresh_id`).
    ids: Cell<(u64, u64)>,
    /// How many primitives' internal locks this thread holds
    /// (`wait::Lock`). While it holds one, its context must not park:
    /// another green thread of the hub would find the lock taken by its own
    /// thread. So a park then panics (user code run under a lock — a
    /// priority queue's `Ord`, an `Event` value's `Clone` — must not block),
    /// and a hooked libc call (a contended internal mutex under `patch()`)
    /// blocks the OS thread for its short while instead of parking.
    locks_held: Cell<u32>,
}

thread_local! {
    /// This OS thread's hub, or null before first use and after teardown.
    static HUB: Cell<*const Hub> = const { Cell::new(std::ptr::null()) };
    /// Tears the hub down when the thread exits.
    static OWNER: HubOwner = const { HubOwner };
}

struct HubOwner;

impl Drop for HubOwner {
    fn drop(&mut self) {
        let p = HUB.with(|h| h.get());
        if p.is_null() {
            return;
        }
        // SAFETY: `p` came from Box::into_raw in `create` and is freed only
        // below, after it has been unset.
        let hub = unsafe { &*p };
        if hub.current.get() != ROOT {
            // The thread is exiting from inside a green thread (or the hub):
            // `std::process::exit` runs thread-local destructors on the
            // caller's stack. Unmapping green stacks now would pull the
            // running stack away; the process is ending, so leave it all.
            HUB.with(|h| h.set(std::ptr::null()));
            return;
        }
        hub.teardown();
        HUB.with(|h| h.set(std::ptr::null()));
        // SAFETY: as above; no green thread remains that could refer to it.
        drop(unsafe { Box::from_raw(p as *mut Hub) });
    }
}

/// Locks an internal mutex. Internal critical sections run no user code
/// that can panic while the state is inconsistent, so poisoning is ignored.
#[inline]
pub(crate) fn lock<S>(m: &Mutex<S>) -> MutexGuard<'_, S> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes an internal mutex if it is free (poisoning ignored, as in
/// [`lock`]); `None` if another thread holds it. For a hub about to sleep,
/// which must not wait for a lock: under `patch()` a green thread of its
/// own may wait for the same lock, parked, and only the hub can run it.
#[inline]
pub(crate) fn try_lock<S>(m: &Mutex<S>) -> Option<MutexGuard<'_, S>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// The current OS thread's hub, created on first use.
///
/// The reference stays valid until the thread exits (the hub is freed by a
/// thread-local destructor, after every green thread on it has been dropped).
#[inline]
pub(crate) fn hub() -> &'static Hub {
    let p = HUB.with(|h| h.get());
    if p.is_null() {
        create()
    } else {
        // SAFETY: non-null means alive until the thread's TLS teardown.
        unsafe { &*p }
    }
}

/// The current OS thread's hub, if it has one.
#[inline]
pub(crate) fn try_hub() -> Option<&'static Hub> {
    let p = HUB.try_with(|h| h.get()).ok()?;
    // SAFETY: as in `hub`.
    (!p.is_null()).then(|| unsafe { &*p })
}

#[cold]
fn create() -> &'static Hub {
    if OWNER.try_with(|_| ()).is_err() {
        panic!(
            "green: the hub of this OS thread was used during thread exit, after it was torn down"
        );
    }
    let poller = poller::Poller::new()
        .unwrap_or_else(|e| panic!("green: cannot create the hub's poller: {e}"));
    let altstack = coro::install_overflow_handler();
    let records = Arc::new(stall::Records::default());
    let beat = {
        let beat = Arc::new(stall::Beat {
            records: records.clone(),
            ..stall::Beat::default()
        });
        let tid = crate::sys::thread::gettid().as_raw_nonzero().get();
        beat.tid.store(tid as u64, Ordering::Relaxed);
        beat
    };
    let epoch = stall::epoch();
    let hub = Box::new(Hub {
        shared: io::register_hub(|id| Shared {
            poller,
            remote: Mutex::new(Vec::new()),
            has_remote: AtomicBool::new(false),
            closes: Mutex::new(Vec::new()),
            has_closes: AtomicBool::new(false),
            id,
            sleeping: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            beat: beat.clone(),
            kills: Mutex::new(Vec::new()),
        }),
        slots: RefCell::new(Slab::with_root(records)),
        run_queue: RefCell::new(VecDeque::new()),
        current: Cell::new(ROOT),
        current_yielder: Cell::new(std::ptr::null()),
        timers: RefCell::new(Timers::new()),
        io: RefCell::new(FdTable::default()),
        events: RefCell::new((Vec::with_capacity(256), Vec::with_capacity(256))),
        remote_buf: RefCell::new(Vec::new()),
        lent_refs: Cell::new(0),
        stacks: RefCell::new(StackPool::default()),
        seats: seat::Seats::default(),
        last_sp: Cell::new(0),
        current_seated: Cell::new(false),
        green_count: Cell::new(0),
        cancels: cancel::Cancels::default(),
        closing: Cell::new(false),
        ticks: Cell::new(0),
        altstack: Cell::new(altstack),
        os_tp: crate::coro::tls::os_tp(),
        fsgsbase: crate::coro::tls::fsgsbase(),
        coop: coop::Budget::default(),
        epoch,
        beat,
        clock: Cell::new(stall::Look::first(epoch).pack()),
        root_watched: Cell::new(false),
        forever: Cell::new(false),
        forever_looks: Cell::new(0),
        ids: Cell::new((0, 0)),
        locks_held: Cell::new(0),
        bias_id: {
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(2);
            NEXT.fetch_add(1, Ordering::Relaxed)
        },
    });
    hub.beat.looked(stall::Look::unpack(hub.clock.get()));
    stall::register(&hub.shared);
    let p = Box::into_raw(hub);
    HUB.with(|h| h.set(p));
    // SAFETY: just allocated, and now owned by the thread-local.
    unsafe { &*p }
}

impl Hub {
    /// Whether the hub is being torn down (its OS thread exits).
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// This hub's name for the locks biased to it: unique in the process,
    /// at least 2 (`wait::Lock`).
    #[inline]
    pub(crate) fn bias_id(&self) -> usize {
        self.bias_id
    }

    /// A primitive's internal lock was taken by this thread (`wait::Lock`).
    #[inline]
    pub(crate) fn enter_lock(&self) {
        self.locks_held.set(self.locks_held.get() + 1);
    }

    /// A primitive's internal lock taken by this thread was released.
    #[inline]
    pub(crate) fn leave_lock(&self) {
        self.locks_held.set(self.locks_held.get() - 1);
    }

    /// A park or yield while this thread holds a primitive's internal lock.
    #[cold]
    #[inline(never)]
    pub(super) fn park_under_lock() -> ! {
        panic!(
            "green: a green thread tried to wait while holding the internal lock of a green \
             primitive: code run under that lock (a priority queue's `Ord`, an `Event` \
             value's `Clone`) must not block or yield"
        )
    }

    /// Whether the hub itself is running (not the root nor a green thread).
    pub(crate) fn in_hub(&self) -> bool {
        self.current.get() == HUB_CTX
    }

    /// Counts for [`stats`].
    fn stats(&self) -> HubStats {
        let io = self.io.borrow();
        HubStats {
            green_threads: self.green_count.get(),
            runnable: self.run_queue.borrow().len(),
            timers: self.timers.borrow().len(),
            fd_waiters: io.waiters(),
            registered_fds: io.registered(),
            pooled_stacks: self.stacks.borrow().len(),
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        for _ in 0..self.lent_refs.replace(0) {
            // SAFETY: the references the count owns (its invariant);
            // `shared` holds one more until the fields are dropped.
            unsafe { Arc::decrement_strong_count(Arc::as_ptr(&self.shared)) };
        }
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub").field("stats", &self.stats()).finish()
    }
}

/// Counts of what the current OS thread's hub holds.
///
/// Tests use them to prove that nothing leaks: after a kill, a timeout or a
/// panic, the counts return to where they were.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubStats {
    /// Live green threads (started or not, not yet finished).
    pub green_threads: usize,
    /// Contexts waiting in the run queue.
    pub runnable: usize,
    /// Live timers (sleeps, park deadlines, timeouts, `spawn_after`).
    pub timers: usize,
    /// Contexts parked in [`trampoline`] waiting for an fd.
    pub fd_waiters: usize,
    /// File descriptors registered with the poller.
    pub registered_fds: usize,
    /// Free stacks kept for reuse.
    pub pooled_stacks: usize,
}

/// Counts of the current OS thread's hub (creating it if needed).
///
/// # Examples
/// ```
/// let before = green::hub::stats();
/// green::spawn(|| green::sleep(std::time::Duration::from_millis(1))).wait();
/// let after = green::hub::stats();
/// assert_eq!(after.green_threads, before.green_threads);
/// assert_eq!(after.timers, 0);
/// ```
pub fn stats() -> HubStats {
    hub().stats()
}

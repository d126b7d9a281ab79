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

pub(crate) mod fdmap;
mod io;
mod poller;
pub(crate) mod stall;
pub(crate) mod timer;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::coro::{self, Arena, Coro, GreenStack, RunningInfo, StackPool, Yielder};
use timer::{Action, TimerId, Timers};

pub(crate) use io::FdTable;
pub(crate) use io::{io_loop, io_loop_unsignalled, poll_now, Backoff};
pub use io::{notify_close, trampoline, wait_io, Interest};

/// Operations that complete without parking a context may do in a row
/// before [`coop_spend`] makes it yield.
pub(crate) const COOP_BUDGET: u32 = 128;

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
    /// The fd it waited on was closed.
    Closed,
    /// A kill or timeout is to be delivered.
    Cancel(Cancel),
}

/// A cancellation delivered at a park point by unwinding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cancel {
    /// [`GreenThread::kill`](crate::GreenThread::kill).
    Kill,
    /// The [`Timeout`](crate::Timeout) with this id expired.
    Timeout(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    Runnable,
    Parked,
    Vacant,
}

/// How many shared-stack arenas a hub uses; green threads that opted in are
/// spread over them round-robin.
const ARENAS: usize = 4;

/// The body of a shared-stack green thread, run when it is first resumed.
type Start = Box<dyn FnOnce(&Yielder)>;

/// A green thread as the hub sees it.
pub(crate) struct GreenCtx {
    pub(crate) id: u64,
    /// `None` only before the first run of a shared-stack green thread.
    coro: Option<Coro>,
    yielder: *const Yielder,
    guard: (usize, usize),
    /// Boxed: only shared-stack green threads have one.
    seat: Option<Box<Seat>>,
    /// Its own TLS block and thread pointer, if it has an identity of its
    /// own (0: it runs on the OS thread's).
    tls: Option<crate::coro::tls::Block>,
    tp: usize,
}

/// Where a shared-stack green thread keeps its frames.
struct Seat {
    arena: usize,
    /// The body, until the first run creates the coroutine.
    start: Option<Start>,
    /// Its stack pointer when it last suspended.
    sp: usize,
    /// Its frames while evicted from the arena.
    saved: Vec<u8>,
    evicted: bool,
}

/// One context: the root (slot 0) or a green thread.
struct Slot {
    gen: u32,
    seq: u32,
    state: State,
    /// A wake arrived for the current `seq` while not parked: the next park
    /// returns at once (like the token of `std::thread::park`).
    notified: bool,
    reason: Wake,
    pending: Option<Cancel>,
    /// The context is unwinding because of a kill or timeout delivered by
    /// [`deliver`]; cleared at its next park outside an unwind. Locks use it
    /// to skip poisoning.
    cancel_unwind: bool,
    /// The timer of the current park's deadline, or of `spawn_after`.
    timer: Option<TimerId>,
    /// How deep the context is in calls that C-ABI frames surround (the
    /// interposers of `patch`): a coroutine parked there must never be
    /// unwound, since an unwind cannot cross those frames.
    foreign: u32,
    /// A kill or timeout already reported to a C caller as an error (it
    /// could not unwind there). It becomes pending again at the context's
    /// next park point outside such a call.
    foreign_cancel: Option<Cancel>,
    /// Its thread's exit runs (thread-local destructors): no kill or
    /// timeout is delivered to it any more (it would unwind through C
    /// frames), and teardown leaks rather than unwinds it.
    exiting: bool,
    /// Inline, so spawning allocates no box for it; the slab never moves
    /// a slot, so a running coroutine stays put.
    green: Option<GreenCtx>,
    /// The context's [`crate::thread::Thread`], once made (by
    /// `thread::current` or `thread::Builder::spawn`); dropped when its
    /// green thread is reaped. Kept in the slot, not in `green`, so that a
    /// destructor run while teardown unwinds the green thread still finds it.
    thread: Option<crate::thread::Thread>,
}

impl Slot {
    fn vacant() -> Slot {
        Slot {
            gen: 0,
            seq: 0,
            state: State::Vacant,
            notified: false,
            reason: Wake::Woken,
            pending: None,
            cancel_unwind: false,
            timer: None,
            foreign: 0,
            foreign_cancel: None,
            exiting: false,
            green: None,
            thread: None,
        }
    }
}

/// Slots in fixed chunks: a slot never moves once made, so the coroutine of
/// a running green thread can be resumed through a pointer into its slot
/// while that green thread spawns others.
struct Slab {
    chunks: Vec<Box<[Slot; CHUNK]>>,
    len: usize,
}

const CHUNK: usize = 64;

impl Slab {
    fn new() -> Slab {
        Slab {
            chunks: Vec::new(),
            len: 0,
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, slot: Slot) {
        if self.len == self.chunks.len() * CHUNK {
            self.grow();
        }
        self.chunks[self.len / CHUNK][self.len % CHUNK] = slot;
        self.len += 1;
    }

    /// Adds a chunk of vacant slots, built on the heap: a chunk is about
    /// 12 KiB, too much for the stack of a green thread that spawns.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let mut v = Vec::with_capacity(CHUNK);
        v.resize_with(CHUNK, Slot::vacant);
        let chunk: Box<[Slot; CHUNK]> = v
            .into_boxed_slice()
            .try_into()
            .unwrap_or_else(|_| unreachable!("the vector has CHUNK slots"));
        self.chunks.push(chunk);
    }

    #[inline]
    fn get_mut(&mut self, i: usize) -> Option<&mut Slot> {
        if i < self.len {
            Some(&mut self.chunks[i / CHUNK][i % CHUNK])
        } else {
            None
        }
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
        let len = self.len;
        self.chunks.iter_mut().flat_map(|c| c.iter_mut()).take(len)
    }
}

impl std::ops::Index<usize> for Slab {
    type Output = Slot;

    /// Slots past `len` in the last chunk are vacant: reading one is
    /// harmless, so only the chunk index is checked.
    #[inline]
    fn index(&self, i: usize) -> &Slot {
        &self.chunks[i / CHUNK][i % CHUNK]
    }
}

impl std::ops::IndexMut<usize> for Slab {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut Slot {
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }
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
}

impl Shared {
    fn unpark_remote(&self, key: u32, gen: u32, seq: u32) {
        self.remote
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((key, gen, seq));
        self.wake_loop();
    }

    /// Makes the hub's loop drain its remote queues: at once if it is
    /// awake, by notifying its poller if it sleeps.
    fn wake_loop(&self) {
        self.has_remote.store(true, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            // A failed notify leaves the hub to its next timer; nothing better
            // can be done from here.
            let _ = self.poller.notify();
        }
    }
}

/// A per-OS-thread scheduler. See the module docs.
pub(crate) struct Hub {
    shared: Arc<Shared>,
    slots: RefCell<Slab>,
    free_slots: RefCell<Vec<u32>>,
    run_queue: RefCell<VecDeque<(u32, u32)>>,
    /// Slot of the running context, or `HUB_CTX`.
    current: Cell<u32>,
    current_yielder: Cell<*const Yielder>,
    pub(crate) timers: RefCell<Timers>,
    pub(crate) io: RefCell<FdTable>,
    events: RefCell<(Vec<libc::epoll_event>, Vec<poller::Event>)>,
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
    arenas: RefCell<Vec<Arena>>,
    next_arena: Cell<usize>,
    /// Stack pointer of the green thread that suspended last.
    last_sp: Cell<usize>,
    green_count: Cell<usize>,
    /// Upper bound of the slots with a pending cancellation; zero means
    /// none, so the switch path can skip looking.
    pending_count: Cell<usize>,
    /// Contexts left parked with a pending cancellation because the OS
    /// thread was unwinding when they could have taken it (`panicking()` is
    /// per OS thread, so another context's unwind hides it). The loop makes
    /// them runnable again once no unwind is in progress.
    deferred: RefCell<Vec<(u32, u32)>>,
    closing: Cell<bool>,
    ticks: Cell<u32>,
    altstack: Cell<Option<(usize, usize)>>,
    /// The OS thread's thread pointer, restored when a green thread with
    /// a block of its own suspends.
    os_tp: usize,
    /// `wrfsbase` may set the thread pointer.
    fsgsbase: bool,
    /// What the running context may still do without parking before it
    /// yields ([`coop_spend`]); refilled whenever a context is resumed.
    budget: Cell<u32>,
    /// What the budget is refilled to ([`set_coop_budget`]).
    refill: Cell<u32>,
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
    let beat = {
        let beat = Arc::new(stall::Beat::default());
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        beat.tid.store(tid as u64, Ordering::Relaxed);
        stall::register(&beat);
        beat
    };
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
            beat,
        }),
        slots: RefCell::new({
            let mut slab = Slab::new();
            slab.push(Slot {
                state: State::Running,
                ..Slot::vacant()
            });
            slab
        }),
        free_slots: RefCell::new(Vec::new()),
        run_queue: RefCell::new(VecDeque::new()),
        current: Cell::new(ROOT),
        current_yielder: Cell::new(std::ptr::null()),
        timers: RefCell::new(Timers::new()),
        io: RefCell::new(FdTable::default()),
        events: RefCell::new((Vec::with_capacity(256), Vec::with_capacity(256))),
        remote_buf: RefCell::new(Vec::new()),
        lent_refs: Cell::new(0),
        stacks: RefCell::new(StackPool::default()),
        arenas: RefCell::new(Vec::new()),
        next_arena: Cell::new(0),
        last_sp: Cell::new(0),
        green_count: Cell::new(0),
        pending_count: Cell::new(0),
        deferred: RefCell::new(Vec::new()),
        closing: Cell::new(false),
        ticks: Cell::new(0),
        altstack: Cell::new(altstack),
        os_tp: crate::coro::tls::os_tp(),
        fsgsbase: crate::coro::tls::fsgsbase(),
        budget: Cell::new(COOP_BUDGET),
        refill: Cell::new(COOP_BUDGET),
    });
    let p = Box::into_raw(hub);
    HUB.with(|h| h.set(p));
    // SAFETY: just allocated, and now owned by the thread-local.
    unsafe { &*p }
}

/// The sequence number of a token that wakes whichever park its context is
/// in, or the next one (an [`Unparker`]'s).
const ANY_PARK: u32 = u32::MAX;

/// The park sequence number after `s` (never [`ANY_PARK`]).
#[inline]
fn next_seq(s: u32) -> u32 {
    if s + 1 == ANY_PARK {
        0
    } else {
        s + 1
    }
}

/// A parked context's identity: `(slot, generation, park sequence)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) key: u32,
    pub(crate) gen: u32,
    pub(crate) seq: u32,
}

impl Hub {
    fn blocking_from_hub() -> ! {
        panic!(
            "do not call blocking functions from the hub: a timer callback or other \
             code run by the hub itself tried to park; spawn a green thread for it instead"
        )
    }

    /// The token the current context's next park will carry.
    pub(crate) fn token(&self) -> Token {
        let key = self.current.get();
        if key == HUB_CTX {
            Self::blocking_from_hub();
        }
        let slots = self.slots.borrow();
        let s = &slots[key as usize];
        Token {
            key,
            gen: s.gen,
            seq: s.seq,
        }
    }

    /// An unparker for the current context's next park.
    pub(crate) fn unparker(&self) -> Unparker {
        Unparker {
            shared: self.shared_ref(),
            token: self.local_unparker(),
        }
    }

    /// A strong reference to the shared part: one that a handle lent the
    /// hub if there is one (no atomic operation), else a new one.
    #[inline]
    fn shared_ref(&self) -> Arc<Shared> {
        let n = self.lent_refs.get();
        if n == 0 {
            return self.shared.clone();
        }
        self.lent_refs.set(n - 1);
        // SAFETY: the count owned one strong reference (its invariant),
        // which passes to the Arc made here.
        unsafe { Arc::from_raw(Arc::as_ptr(&self.shared)) }
    }

    /// Takes over one strong reference to the shared part from a handle
    /// that lets go of it, to hand out again.
    ///
    /// # Safety
    /// The caller owns a strong reference to this hub's shared part and
    /// gives it up: it neither uses nor drops it afterwards.
    #[inline]
    unsafe fn lend_ref(&self) {
        self.lent_refs.set(self.lent_refs.get() + 1);
    }

    /// The token of an [`Unparker`] for the current context, for wakers on
    /// this hub's own thread (no reference count to take).
    pub(crate) fn local_unparker(&self) -> Token {
        Token {
            seq: ANY_PARK,
            ..self.token()
        }
    }

    /// Id of the running green thread, if a green thread is running.
    /// Whether the running context is a green thread on a shared stack,
    /// whose frames move while it is parked: nothing on its stack may be
    /// lent to another thread across a park.
    pub(crate) fn on_shared_stack(&self) -> bool {
        let key = self.current.get();
        if key == ROOT || key == HUB_CTX {
            return false;
        }
        self.slots.borrow()[key as usize]
            .green
            .as_ref()
            .is_some_and(|g| g.seat.is_some())
    }

    pub(crate) fn current_green_id(&self) -> Option<u64> {
        let key = self.current.get();
        if key == ROOT || key == HUB_CTX {
            return None;
        }
        self.slots.borrow()[key as usize]
            .green
            .as_ref()
            .map(|g| g.id)
    }

    /// An [`Unparker`] for green thread `(key, gen)`: it wakes whichever
    /// park that green thread is in, or makes its next one return.
    pub(crate) fn unparker_of(&self, key: u32, gen: u32) -> Unparker {
        Unparker {
            shared: self.shared.clone(),
            token: Token {
                key,
                gen,
                seq: ANY_PARK,
            },
        }
    }

    /// The [`crate::thread::Thread`] of the running context, made by
    /// `make(unparker, green_id)` and kept in its slot on first use.
    /// `green_id` is `None` for the root.
    ///
    /// # Panics
    /// Panics when called from the hub itself.
    pub(crate) fn current_thread(
        &self,
        make: impl FnOnce(Unparker, Option<u64>) -> crate::thread::Thread,
    ) -> crate::thread::Thread {
        let Token { key, gen, .. } = self.token();
        let id = {
            let slots = self.slots.borrow();
            let slot = &slots[key as usize];
            if let Some(t) = &slot.thread {
                return t.clone();
            }
            // A green thread being unwound at teardown is out of its slot.
            (key != ROOT).then(|| {
                slot.green
                    .as_ref()
                    .map_or_else(crate::greenthread::next_id, |g| g.id)
            })
        };
        let t = make(self.unparker_of(key, gen), id);
        self.slots.borrow_mut()[key as usize].thread = Some(t.clone());
        t
    }

    /// Gives green thread `(key, gen)` its [`crate::thread::Thread`].
    pub(crate) fn set_thread(&self, key: u32, gen: u32, t: crate::thread::Thread) {
        let mut slots = self.slots.borrow_mut();
        if let Some(slot) = slots.get_mut(key as usize) {
            if slot.gen == gen && slot.green.is_some() {
                slot.thread = Some(t);
            }
        }
    }

    /// Wakes a context parked with `token`, on this hub's own thread.
    pub(crate) fn wake(&self, token: Token, reason: Wake) -> bool {
        let mut slots = self.slots.borrow_mut();
        let Some(slot) = slots.get_mut(token.key as usize) else {
            return false;
        };
        let any = token.seq == ANY_PARK;
        if slot.gen != token.gen || !(any || slot.seq == token.seq) {
            return false;
        }
        match slot.state {
            State::Parked => {
                slot.state = State::Runnable;
                slot.reason = reason;
                slot.seq = next_seq(slot.seq);
                drop(slots);
                self.run_queue
                    .borrow_mut()
                    .push_back((token.key, token.gen));
                true
            }
            // An unparker's wake before the park: the next park returns at
            // once, like std's park token.
            State::Running | State::Runnable if any => {
                slot.notified = true;
                false
            }
            State::Running | State::Runnable | State::Vacant => false,
        }
    }

    /// Delivers a kill or timeout to a context: at once if it is parked,
    /// else at its next park point.
    pub(crate) fn cancel(&self, key: u32, gen: u32, cancel: Cancel) {
        let mut slots = self.slots.borrow_mut();
        let Some(slot) = slots.get_mut(key as usize) else {
            return;
        };
        if slot.gen != gen || slot.state == State::Vacant {
            return;
        }
        self.set_pending(slot, cancel);
        if slot.state == State::Parked {
            slot.state = State::Runnable;
            slot.reason = Wake::Woken;
            slot.seq = next_seq(slot.seq);
            drop(slots);
            let mut rq = self.run_queue.borrow_mut();
            if cancel == Cancel::Kill {
                rq.push_front((key, gen));
            } else {
                rq.push_back((key, gen));
            }
        }
    }

    /// Forgets a pending timeout `id` of a context (its guard was dropped).
    pub(crate) fn clear_pending_timeout(&self, key: u32, gen: u32, id: u64) {
        let mut slots = self.slots.borrow_mut();
        if let Some(slot) = slots.get_mut(key as usize) {
            if slot.gen == gen && slot.pending == Some(Cancel::Timeout(id)) {
                take_pending(&self.pending_count, slot);
            }
            if slot.gen == gen && slot.foreign_cancel == Some(Cancel::Timeout(id)) {
                slot.foreign_cancel = None;
            }
        }
    }

    /// Parks the current context until it is woken, `deadline` passes, or a
    /// cancellation arrives. Never unwinds; see [`park`].
    pub(crate) fn park_raw(&self, deadline: Option<Instant>) -> Wake {
        self.park_inner(deadline, true)
    }

    /// Parks like [`Hub::park_raw`] but leaves a pending kill or timeout
    /// pending: it neither returns [`Wake::Cancel`] nor refuses to park
    /// because of one. A cancellation that arrives meanwhile wakes the
    /// context once, as a spurious [`Wake::Woken`]. For waits that must not
    /// end early (a `futex` wait whose caller would spin).
    pub(crate) fn park_keep_cancel(&self, deadline: Option<Instant>) -> Wake {
        self.park_inner(deadline, false)
    }

    fn park_inner(&self, deadline: Option<Instant>, mut take_cancel: bool) -> Wake {
        let key = self.current.get();
        if key == HUB_CTX {
            Self::blocking_from_hub();
        }
        if self.closing.get() {
            return if std::thread::panicking() {
                Wake::Closed
            } else {
                Wake::Cancel(Cancel::Kill)
            };
        }
        {
            let mut slots = self.slots.borrow_mut();
            let slot = &mut slots[key as usize];
            // A thread's exit takes no cancellation (see `exit_thread`).
            take_cancel &= !slot.exiting;
            // A context that is already unwinding (a destructor parks) gets
            // its cancellation at a park after the unwind: a second unwind
            // from inside a destructor would abort the process.
            let unwinding = std::thread::panicking();
            if take_cancel && slot.foreign == 0 {
                if let Some(c) = slot.foreign_cancel.take() {
                    self.set_pending(slot, c);
                }
            }
            if !take_cancel {
                // Left pending for the caller to deliver later.
            } else if !unwinding {
                set_cancel_unwind(slot, false);
                if let Some(c) = take_pending(&self.pending_count, slot) {
                    return Wake::Cancel(c);
                }
            } else if slot.pending.is_some() {
                self.deferred.borrow_mut().push((key, slot.gen));
            }
            if slot.notified {
                slot.notified = false;
                slot.seq = next_seq(slot.seq);
                return Wake::Woken;
            }
            if let Some(d) = deadline {
                slot.timer = Some(self.timers.borrow_mut().add(
                    d,
                    Action::Wake {
                        key,
                        gen: slot.gen,
                        seq: slot.seq,
                        reason: Wake::TimedOut,
                    },
                ));
            }
            slot.state = State::Parked;
        }
        self.switch_out(key);
        let mut slots = self.slots.borrow_mut();
        let slot = &mut slots[key as usize];
        if let Some(t) = slot.timer.take() {
            self.timers.borrow_mut().cancel(t);
        }
        if slot.pending.is_some() && take_cancel {
            if std::thread::panicking() {
                // Woken by a cancellation it cannot take now: spurious. If
                // another context's unwind is what hides it, the loop
                // retries once that unwind is over.
                let gen = slot.gen;
                drop(slots);
                self.deferred.borrow_mut().push((key, gen));
                return Wake::Woken;
            }
            if let Some(c) = take_pending(&self.pending_count, slot) {
                return Wake::Cancel(c);
            }
        }
        slot.reason
    }

    /// Leaves the current context until the hub resumes it: a green thread
    /// suspends into the loop; the root runs the loop in place.
    #[inline]
    fn switch_out(&self, key: u32) {
        if key == ROOT {
            self.run_root();
        } else {
            // SAFETY: `current_yielder` is the yielder of the running green
            // thread `key`: `run_green` sets it before every resume.
            unsafe { coro::suspend(self.current_yielder.get(), &self.last_sp) }
        }
    }

    /// Requeues the current context behind everything runnable and switches
    /// out. Delivers pending cancellations before and after.
    pub(crate) fn yield_now(&self) {
        self.yield_inner(true);
    }

    /// Spends one unit of the running context's cooperative budget: see
    /// [`coop_spend`].
    #[inline]
    fn spend(&self) {
        let b = self.budget.get();
        if b != 0 {
            self.budget.set(b - 1);
        } else {
            self.coop_yield();
        }
    }

    /// The budget is spent: yield to the back of the run queue (the budget
    /// refills when the context is resumed). A yield from inside a hooked C
    /// call delivers no cancellation: it cannot unwind there.
    #[cold]
    #[inline(never)]
    fn coop_yield(&self) {
        self.budget.set(self.refill.get());
        let key = self.current.get();
        if key == HUB_CTX || self.closing.get() {
            return;
        }
        let foreign = self.slots.borrow()[key as usize].foreign > 0;
        self.yield_inner(!foreign);
    }

    fn yield_inner(&self, deliver: bool) {
        let key = self.current.get();
        if key == HUB_CTX {
            Self::blocking_from_hub();
        }
        if self.closing.get() {
            return;
        }
        let gen = {
            let mut slots = self.slots.borrow_mut();
            let slot = &mut slots[key as usize];
            if slot.foreign == 0 {
                if let Some(c) = slot.foreign_cancel.take() {
                    self.set_pending(slot, c);
                }
            }
            if deliver
                && self.pending_count.get() != 0
                && !std::thread::panicking()
                && !slot.exiting
            {
                if let Some(c) = take_pending(&self.pending_count, slot) {
                    drop(slots);
                    deliver_cancel(c);
                }
            }
            slot.state = State::Runnable;
            slot.gen
        };
        self.run_queue.borrow_mut().push_back((key, gen));
        self.switch_out(key);
        if deliver && self.pending_count.get() != 0 && !std::thread::panicking() {
            let pending = {
                let mut slots = self.slots.borrow_mut();
                let slot = &mut slots[key as usize];
                if slot.exiting {
                    None
                } else {
                    take_pending(&self.pending_count, slot)
                }
            };
            if let Some(c) = pending {
                deliver_cancel(c);
            }
        }
    }

    /// The loop, run on the root's stack until the root is runnable again.
    fn run_root(&self) {
        self.current.set(HUB_CTX);
        loop {
            if self.shared.has_remote.load(Ordering::Acquire) {
                self.drain_remote();
            }
            if !self.deferred.borrow().is_empty() && !std::thread::panicking() {
                self.retry_deferred();
            }
            let mut root_ready = false;
            let n = self.run_queue.borrow().len();
            for _ in 0..n {
                let next = self.run_queue.borrow_mut().pop_front();
                let Some((key, gen)) = next else { break };
                if key == ROOT {
                    root_ready = true;
                    break;
                }
                self.run_green(key, gen);
            }
            if !self.timers.borrow().is_empty() {
                self.fire_timers(Instant::now());
            }
            // An unwind that hid a cancellation may have ended in this pass:
            // retry before sleeping in the poller, which nothing may wake.
            if !self.deferred.borrow().is_empty() && !std::thread::panicking() {
                self.retry_deferred();
            }
            if !root_ready && self.run_queue.borrow().is_empty() {
                let next = self.timers.borrow_mut().next_deadline();
                let timeout = next.map(|d| d.saturating_duration_since(Instant::now()));
                self.poll(timeout);
            } else {
                // A busy hub (or a root that yields in a loop) still looks
                // at I/O now and then; with no fd registered there is
                // nothing to look at (remote wakeups are checked every pass).
                let t = self.ticks.get().wrapping_add(1);
                self.ticks.set(t);
                if t.is_multiple_of(61) && self.io.borrow().registered() > 0 {
                    self.poll(Some(Duration::ZERO));
                }
            }
            if root_ready {
                // Timers due by now have fired (their green threads queue
                // behind the root), as eventlet's `sleep(0)` passes through
                // the hub's timers before the main greenlet resumes.
                self.slots.borrow_mut()[ROOT as usize].state = State::Running;
                self.budget.set(self.refill.get());
                self.current.set(ROOT);
                return;
            }
        }
    }

    /// Makes the contexts whose cancellation was deferred by an unwind
    /// runnable again, so that their park delivers it.
    #[cold]
    fn retry_deferred(&self) {
        let deferred = std::mem::take(&mut *self.deferred.borrow_mut());
        let mut slots = self.slots.borrow_mut();
        for (key, gen) in deferred {
            let Some(slot) = slots.get_mut(key as usize) else {
                continue;
            };
            if slot.gen == gen && slot.state == State::Parked && slot.pending.is_some() {
                slot.state = State::Runnable;
                slot.reason = Wake::Woken;
                slot.seq = next_seq(slot.seq);
                // First, as `cancel` queues a kill: the cancellation is late.
                self.run_queue.borrow_mut().push_front((key, gen));
            }
        }
    }

    /// Resumes green thread `key` until it parks or finishes.
    #[inline]
    fn run_green(&self, key: u32, gen: u32) {
        let (coro, yielder, info, seated, tp) = {
            let mut slots = self.slots.borrow_mut();
            let Some(slot) = slots.get_mut(key as usize) else {
                return;
            };
            if slot.gen != gen || slot.state != State::Runnable {
                return;
            }
            slot.state = State::Running;
            let g = slot
                .green
                .as_mut()
                .expect("runnable slot without a green thread");
            let seated = g.seat.is_some();
            if seated {
                drop(slots);
                self.seat(key);
                slots = self.slots.borrow_mut();
            }
            let g = slots[key as usize]
                .green
                .as_mut()
                .expect("runnable slot without a green thread");
            let coro: *mut Coro = g.coro.as_mut().expect("green thread without a coroutine");
            (
                coro,
                g.yielder,
                RunningInfo {
                    guard_lo: g.guard.0,
                    guard_hi: g.guard.1,
                    id: g.id,
                },
                seated,
                g.tp,
            )
        };
        self.current.set(key);
        self.current_yielder.set(yielder);
        // The overflow handler keeps the last green thread's guard page
        // while the hub runs: the hub never runs on that stack.
        coro::set_running(Some(info));
        self.shared.beat.resume(info.id);
        self.budget.set(self.refill.get());
        // SAFETY: the coroutine lives in its slot, which never moves (the
        // slab's chunks are fixed) and is emptied only by `reap` below,
        // after the coroutine returned. A block of its own lives as long
        // as the slot's green thread; the hub holds no thread-local
        // reference across the switch.
        let done = unsafe {
            if tp != 0 {
                crate::coro::tls::set_tp(self.fsgsbase, tp);
            }
            let done = (*coro).resume();
            if tp != 0 {
                crate::coro::tls::set_tp(self.fsgsbase, self.os_tp);
            }
            done
        };
        self.shared.beat.back();
        self.current.set(HUB_CTX);
        if done {
            self.reap(key);
        } else if seated {
            let mut slots = self.slots.borrow_mut();
            if let Some(seat) = slots[key as usize]
                .green
                .as_mut()
                .and_then(|g| g.seat.as_mut())
            {
                seat.sp = self.last_sp.get();
            }
        }
    }

    /// Prepares shared-stack green thread `key` to run: its frames in its
    /// arena, and its coroutine created on first run.
    #[cold]
    fn seat(&self, key: u32) {
        self.take_seat(key);
        let mut slots = self.slots.borrow_mut();
        let g = slots[key as usize]
            .green
            .as_mut()
            .expect("runnable slot without a green thread");
        if g.coro.is_none() {
            let start = g
                .seat
                .as_mut()
                .and_then(|s| s.start.take())
                .expect("shared-stack green thread without a body");
            let arena = g.seat.as_ref().expect("seated green thread").arena;
            let bounds = self.arenas.borrow()[arena].bounds();
            g.coro = Some(Coro::new(bounds, start));
        }
    }

    /// Makes the arena of shared-stack green thread `key` hold its frames:
    /// saves the current occupant's frames to the heap and copies `key`'s
    /// back, if they are not there already.
    fn take_seat(&self, key: u32) {
        let mut slots = self.slots.borrow_mut();
        let mut arenas = self.arenas.borrow_mut();
        let idx = slots[key as usize]
            .green
            .as_ref()
            .and_then(|g| g.seat.as_ref())
            .expect("seated green thread")
            .arena;
        let arena = &mut arenas[idx];
        if arena.occupant == Some(key) {
            return;
        }
        if let Some(other) = arena.occupant.take() {
            if let Some(seat) = slots[other as usize]
                .green
                .as_mut()
                .and_then(|g| g.seat.as_mut())
            {
                // SAFETY: the occupant is suspended (only `key` is about to
                // run, and nothing runs now: this is the hub) and `sp`
                // was recorded at its suspension.
                unsafe { arena.save(seat.sp, &mut seat.saved) };
                seat.evicted = true;
            }
        }
        let seat = slots[key as usize]
            .green
            .as_mut()
            .and_then(|g| g.seat.as_mut())
            .expect("seated green thread");
        if seat.evicted {
            // SAFETY: nothing runs on the arena (its occupant was saved
            // above), and `saved` was taken from this arena by `save`.
            unsafe { arena.restore(&seat.saved) };
            seat.evicted = false;
        }
        arena.occupant = Some(key);
    }

    /// Called by a green thread's first frame: records its yielder and drops
    /// the `spawn_after` timer if it was started early (by a kill).
    pub(crate) fn started(&self, y: &Yielder) {
        let key = self.current.get();
        self.current_yielder.set(y);
        let timer = {
            let mut slots = self.slots.borrow_mut();
            let slot = &mut slots[key as usize];
            if let Some(g) = slot.green.as_mut() {
                g.yielder = y;
            }
            slot.timer.take()
        };
        if let Some(t) = timer {
            self.timers.borrow_mut().cancel(t);
        }
    }

    /// Takes a pending kill aimed at the current context, if any.
    pub(crate) fn take_kill(&self) -> bool {
        if self.pending_count.get() == 0 {
            return false;
        }
        let key = self.current.get();
        let mut slots = self.slots.borrow_mut();
        let slot = &mut slots[key as usize];
        if slot.pending == Some(Cancel::Kill) {
            take_pending(&self.pending_count, slot);
            true
        } else {
            false
        }
    }

    /// Takes a kill that a patched libc call reported to its caller as an
    /// error and that no later park delivered: the green thread ended
    /// first, and counts as killed.
    pub(crate) fn take_foreign_kill(&self) -> bool {
        let key = self.current.get();
        let mut slots = self.slots.borrow_mut();
        let slot = &mut slots[key as usize];
        let kill = slot.foreign_cancel == Some(Cancel::Kill);
        slot.foreign_cancel = None;
        kill
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// Frees the slot of a finished green thread and pools its stack.
    fn reap(&self, key: u32) {
        let (coro, seat, timer) = {
            let mut slots = self.slots.borrow_mut();
            let slot = &mut slots[key as usize];
            slot.state = State::Vacant;
            slot.gen = slot.gen.wrapping_add(1);
            take_pending(&self.pending_count, slot);
            slot.notified = false;
            set_cancel_unwind(slot, false);
            slot.foreign_cancel = None;
            slot.foreign = 0;
            slot.exiting = false;
            let timer = slot.timer.take();
            let (coro, seat) = match slot.green.as_mut() {
                Some(g) => (g.coro.take(), g.seat.take()),
                None => (None, None),
            };
            slot.green = None;
            slot.thread = None;
            (coro, seat, timer)
        };
        if let Some(t) = timer {
            self.timers.borrow_mut().cancel(t);
        }
        self.free_slots.borrow_mut().push(key);
        self.green_count.set(self.green_count.get() - 1);
        if let Some(seat) = seat {
            let mut arenas = self.arenas.borrow_mut();
            if arenas[seat.arena].occupant == Some(key) {
                arenas[seat.arena].occupant = None;
            }
        }
        if let Some(c) = coro {
            if c.done() {
                self.stacks.borrow_mut().put(c.into_stack());
            }
        }
    }

    /// Creates a green thread running `body`, runnable now or parked until
    /// `at`. Returns its slot, generation and id.
    pub(crate) fn spawn_raw<F>(
        &self,
        stack_size: usize,
        shared: bool,
        identity: bool,
        at: Option<Instant>,
        body: F,
    ) -> std::io::Result<(u32, u32, u64)>
    where
        F: FnOnce() + 'static,
    {
        let entry = move |y: &Yielder| {
            hub().started(y);
            // A thread's exit, under its own block, however the body ends.
            let _exit = ExitGuard;
            body();
        };
        let span;
        let green = if shared {
            let arena = {
                let mut arenas = self.arenas.borrow_mut();
                if arenas.len() < ARENAS {
                    arenas.push(Arena::new()?);
                }
                let i = self.next_arena.get() % arenas.len();
                self.next_arena.set(i + 1);
                i
            };
            GreenCtx {
                id: crate::greenthread::next_id(),
                coro: None,
                yielder: std::ptr::null(),
                guard: {
                    let arenas = self.arenas.borrow();
                    span = arenas[arena].span();
                    arenas[arena].guard()
                },
                seat: Some(Box::new(Seat {
                    arena,
                    start: Some(Box::new(entry)),
                    sp: 0,
                    saved: Vec::new(),
                    evicted: false,
                })),
                tls: None,
                tp: 0,
            }
        } else {
            let stack = self.stacks.borrow_mut().get(stack_size)?;
            let guard = stack.guard();
            span = stack.span();
            GreenCtx {
                id: crate::greenthread::next_id(),
                coro: Some(Coro::new(GreenStack::Own(stack), entry)),
                yielder: std::ptr::null(),
                guard,
                seat: None,
                tls: None,
                tp: 0,
            }
        };
        let mut green = green;
        if identity {
            self.give_identity(&mut green, span)?;
        }
        let id = green.id;
        let free = self.free_slots.borrow_mut().pop();
        let mut slots = self.slots.borrow_mut();
        let key = match free {
            Some(k) => k,
            None => {
                slots.push(Slot::vacant());
                (slots.len() - 1) as u32
            }
        };
        let slot = &mut slots[key as usize];
        slot.green = Some(green);
        slot.reason = Wake::Woken;
        let gen = slot.gen;
        match at {
            None => {
                slot.state = State::Runnable;
                drop(slots);
                self.run_queue.borrow_mut().push_back((key, gen));
            }
            Some(at) => {
                slot.state = State::Parked;
                slot.timer = Some(self.timers.borrow_mut().add(
                    at,
                    Action::Wake {
                        key,
                        gen,
                        seq: slot.seq,
                        reason: Wake::Woken,
                    },
                ));
            }
        }
        self.green_count.set(self.green_count.get() + 1);
        Ok((key, gen, id))
    }

    /// Gives a green thread about to be spawned a TLS block of its own,
    /// where that is supported (else it keeps sharing the OS thread's).
    fn give_identity(
        &self,
        green: &mut GreenCtx,
        stack: (usize, usize, usize),
    ) -> std::io::Result<()> {
        let Ok(layout) = crate::coro::tls::layout() else {
            return Ok(());
        };
        let hub = self as *const Hub;
        let info = RunningInfo {
            guard_lo: green.guard.0,
            guard_hi: green.guard.1,
            id: green.id,
        };
        let block = crate::coro::tls::Block::new(layout, self.os_tp, stack, &|| {
            // The runtime's own thread-locals, as the OS thread has them
            // (the overflow handler's: this green thread's own).
            HUB.with(|h| h.set(hub));
            coro::set_running(Some(info));
        })?;
        green.tp = block.tp();
        green.tls = Some(block);
        Ok(())
    }

    /// Runs the current green thread's thread exit if it has an identity
    /// of its own ([`crate::coro::tls::run_exit`]: its thread-local and
    /// pthread-key destructors). The destructors run inside C frames
    /// (`__call_tls_dtors`): while they run, a kill or timeout is kept
    /// pending rather than delivered by unwinding, and an OS-thread exit
    /// leaks the green thread rather than unwinding it.
    pub(crate) fn exit_thread(&self) {
        if !crate::coro::tls::on_own_block() {
            return;
        }
        let key = self.current.get();
        if key == HUB_CTX || key == ROOT {
            return;
        }
        self.slots.borrow_mut()[key as usize].exiting = true;
        self.in_foreign(crate::coro::tls::run_exit);
    }

    /// Whether green thread `(key, gen)` is the running context.
    pub(crate) fn is_current(&self, key: u32, gen: u32) -> bool {
        self.current.get() == key && self.slots.borrow()[key as usize].gen == gen
    }

    /// Whether the hub itself is running (not the root nor a green thread).
    pub(crate) fn in_hub(&self) -> bool {
        self.current.get() == HUB_CTX
    }

    /// Whether the running context may park from inside a C-ABI frame: it
    /// is a green thread or a root (not the hub itself), and the hub is not
    /// tearing down.
    #[inline]
    pub(crate) fn can_park_foreign(&self) -> bool {
        self.current.get() != HUB_CTX && !self.closing.get()
    }

    /// Runs `f` with the current context marked as being inside a C-ABI
    /// frame, so that teardown leaks rather than unwinds it if it parks
    /// there and the OS thread exits.
    pub(crate) fn in_foreign<T>(&self, f: impl FnOnce() -> T) -> T {
        struct Exit<'a>(&'a Hub, u32);
        impl Drop for Exit<'_> {
            fn drop(&mut self) {
                if let Some(s) = self.0.slots.borrow_mut().get_mut(self.1 as usize) {
                    s.foreign -= 1;
                }
            }
        }
        let key = self.current.get();
        self.slots.borrow_mut()[key as usize].foreign += 1;
        let _exit = Exit(self, key);
        f()
    }

    /// Keeps `c`, taken by a park inside a C-ABI frame (which cannot
    /// unwind) and reported to its caller as an error, for the current
    /// context's next park point outside such frames.
    pub(crate) fn defer_to_green_park(&self, c: Cancel) {
        let key = self.current.get();
        if key == HUB_CTX {
            return;
        }
        let mut slots = self.slots.borrow_mut();
        let slot = &mut slots[key as usize];
        slot.foreign_cancel = Some(stronger(slot.foreign_cancel, c));
    }

    /// Makes `c` pending on `slot`, merged with what is pending already.
    fn set_pending(&self, slot: &mut Slot, c: Cancel) {
        if slot.pending.is_none() {
            self.pending_count.set(self.pending_count.get() + 1);
        }
        slot.pending = Some(stronger(slot.pending, c));
    }

    fn drain_remote(&self) {
        self.shared.has_remote.store(false, Ordering::SeqCst);
        if self.shared.has_closes.swap(false, Ordering::SeqCst) {
            self.drain_closes();
        }
        let mut buf = self.remote_buf.borrow_mut();
        std::mem::swap(
            &mut *buf,
            &mut *self.shared.remote.lock().unwrap_or_else(|e| e.into_inner()),
        );
        for (key, gen, seq) in buf.drain(..) {
            self.wake(Token { key, gen, seq }, Wake::Woken);
        }
    }

    fn fire_timers(&self, now: Instant) {
        loop {
            let action = self.timers.borrow_mut().pop_due(now);
            match action {
                None => return,
                Some(Action::Wake {
                    key,
                    gen,
                    seq,
                    reason,
                }) => {
                    let fired = self.wake(Token { key, gen, seq }, reason);
                    if fired {
                        // The timer is spent: don't let the woken park cancel it.
                        let mut slots = self.slots.borrow_mut();
                        slots[key as usize].timer = None;
                    }
                }
                Some(Action::Cancel { key, gen, cancel }) => self.cancel(key, gen, cancel),
            }
        }
    }

    /// Waits for fd events (at most `timeout`) and wakes their waiters.
    fn poll(&self, timeout: Option<Duration>) {
        let blocking = timeout != Some(Duration::ZERO);
        if blocking {
            self.shared.sleeping.store(true, Ordering::SeqCst);
            if self.shared.has_remote.load(Ordering::SeqCst) {
                self.shared.sleeping.store(false, Ordering::SeqCst);
                return;
            }
        }
        let mut events = self.events.borrow_mut();
        let (buf, out) = &mut *events;
        out.clear();
        let res = self.shared.poller.wait(buf, timeout, out);
        if blocking {
            self.shared.sleeping.store(false, Ordering::SeqCst);
        }
        if let Err(e) = res {
            panic!("green: the hub's poller failed: {e}");
        }
        for ev in out.iter() {
            self.dispatch_fd(ev.fd, ev.readable, ev.writable, ev.hangup);
        }
    }

    /// Tears down at thread exit: drops every green thread (unwinding those
    /// that are parked, so their destructors run).
    fn teardown(&self) {
        self.closing.set(true);
        self.shared.closed.store(true, Ordering::Release);
        io::unregister_hub(self.shared.id);
        let mut leaked = false;
        loop {
            let next = {
                let mut slots = self.slots.borrow_mut();
                // Newest first: a green thread goes before the one that
                // spawned it, whose frames it may borrow from (a scoped
                // thread of `thread::scope`), while they are still intact.
                let found = slots
                    .iter_mut()
                    .enumerate()
                    .filter(|(_, s)| s.green.is_some())
                    .max_by_key(|(_, s)| s.green.as_ref().map(|g| g.id));
                found.map(|(k, s)| {
                    s.state = State::Running;
                    // Unwound like a kill: what it holds is not poisoned.
                    set_cancel_unwind(s, true);
                    let g = s.green.as_ref().expect("checked above");
                    (
                        k as u32,
                        g.seat.is_some() && g.coro.is_some(),
                        s.foreign > 0,
                    )
                })
            };
            let Some((key, restore, foreign)) = next else {
                break;
            };
            if restore {
                self.take_seat(key);
            }
            let Some(mut green) = self.slots.borrow_mut()[key as usize].green.take() else {
                continue;
            };
            self.current.set(key);
            self.current_yielder.set(green.yielder);
            coro::set_running(Some(RunningInfo {
                guard_lo: green.guard.0,
                guard_hi: green.guard.1,
                id: green.id,
            }));
            // Dropping a parked coroutine unwinds it. Without unwinding
            // (panic = "abort"), or when it is parked inside a patched libc
            // call (an unwind cannot cross that C frame), it is leaked
            // instead: its frames are abandoned as if it stayed parked
            // forever.
            if cfg!(panic = "abort") || foreign {
                if let Some(c) = green.coro.take() {
                    std::mem::forget(c);
                    // Its thread-locals may still be reached from the
                    // abandoned frames (a tpool job): keep the block too.
                    std::mem::forget(green.tls.take());
                    leaked = true;
                }
            } else if green.tp != 0 {
                // It unwinds under its own thread pointer, so that its
                // thread-locals and their destructors are its own.
                // SAFETY: the block lives in `green` until after the drop;
                // no thread-local reference is held across the switch.
                unsafe {
                    crate::coro::tls::set_tp(self.fsgsbase, green.tp);
                    drop(green.coro.take());
                    crate::coro::tls::set_tp(self.fsgsbase, self.os_tp);
                }
            } else {
                drop(green.coro.take());
            }
            coro::set_running(None);
            if let Some(seat) = &green.seat {
                let mut arenas = self.arenas.borrow_mut();
                if arenas[seat.arena].occupant == Some(key) {
                    arenas[seat.arena].occupant = None;
                }
            }
            self.green_count.set(self.green_count.get() - 1);
        }
        self.current.set(ROOT);
        // A leaked coroutine's stack may sit in a pooled chunk or an arena,
        // and may still be written (a tpool job borrowing from it): leave
        // all green stack memory mapped.
        if leaked {
            // Green threads parked in a patched futex wait stay in its wait
            // table: take them out, so that no wakeup goes to them.
            crate::patch::forget_closed_waiters();
            std::mem::forget(std::mem::take(&mut *self.stacks.borrow_mut()));
            std::mem::forget(std::mem::take(&mut *self.arenas.borrow_mut()));
        }
        if let Some(a) = self.altstack.take() {
            coro::free_altstack(a);
        }
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

/// Runs the thread exit ([`Hub::exit_thread`]) when dropped: a green
/// thread's entry holds one, so that it runs however the body ends
/// (returns, is killed, or is unwound at its OS thread's exit), and again
/// for what code after an earlier run set up.
struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        hub().exit_thread();
    }
}

/// Takes a slot's pending cancellation, keeping the hub's count in step.
#[inline]
/// Of two cancellations, the one that wins: a kill beats a timeout; of two
/// timeouts the outer one (made first, smaller id) wins: it unwinds through
/// the inner one anyway, and the inner one's own catch would otherwise
/// swallow the outer's expiry, whose timer is spent.
pub(crate) fn stronger(a: Option<Cancel>, b: Cancel) -> Cancel {
    match (a, b) {
        (Some(Cancel::Kill), _) | (_, Cancel::Kill) => Cancel::Kill,
        (Some(Cancel::Timeout(x)), Cancel::Timeout(y)) => Cancel::Timeout(x.min(y)),
        (None, c) => c,
    }
}

fn take_pending(count: &Cell<usize>, slot: &mut Slot) -> Option<Cancel> {
    let c = slot.pending.take();
    if c.is_some() {
        count.set(count.get() - 1);
    }
    c
}

/// Delivers a cancellation by unwinding from the current park point.
pub(crate) fn deliver(c: Cancel) -> ! {
    deliver_cancel(c)
}

/// [`deliver`], under a name a `deliver` flag does not shadow.
fn deliver_cancel(c: Cancel) -> ! {
    if let Some(h) = try_hub() {
        let key = h.current.get();
        if key != HUB_CTX {
            set_cancel_unwind(&mut h.slots.borrow_mut()[key as usize], true);
        }
    }
    match c {
        Cancel::Kill => std::panic::resume_unwind(Box::new(crate::Killed)),
        Cancel::Timeout(id) => std::panic::resume_unwind(Box::new(crate::Elapsed::new(id))),
    }
}

/// Spends one unit of the running context's cooperative budget (tokio's
/// `coop`): called at the start of every operation that may complete
/// without parking — channel and queue puts and gets, lock acquisitions,
/// `Event` and semaphore operations, green fd reads and writes. After
/// the hub's budget of them in a row ([`set_coop_budget`], default
/// [`COOP_BUDGET`]), the next yields first (to the back of
/// the run queue, a park point like `yield_now`), so that a green thread
/// looping on operations that never wait (`while tx.send(x).is_ok() {}`)
/// cannot starve the others of its hub. Costs a thread-local read and a
/// decrement; does nothing on a thread without a hub or in the hub itself.
#[inline]
pub(crate) fn coop_spend() {
    if let Some(h) = try_hub() {
        h.spend();
    }
}

/// Sets the cooperative budget of this OS thread's hub: how many
/// operations that complete without parking a green thread (or the root)
/// may do in a row before the next one yields to the others first. `None`
/// turns it off. The default is 128, as tokio's.
///
/// The operations that count: puts and gets of channels and queues
/// (`sync::mpsc`, `queue::*`, their `try_` forms), lock acquisitions
/// (`sync::Mutex`, `sync::RwLock`, also `try_lock`, `try_read`,
/// `try_write`), `Event::send`, `wait`, `try_wait`, semaphore acquisitions,
/// and reads and writes of green sockets, pipes and other fds. A yield
/// made for the budget is a park point: a kill or `Timeout` pending for the
/// green thread is delivered there (before the operation, so nothing is
/// lost).
///
/// # Examples
/// ```
/// // A green thread that never waits cannot starve the others for long.
/// let (tx, rx) = green::sync::mpsc::channel::<u32>();
/// let reader = green::spawn(move || {
///     for _ in 0..10 {
///         rx.recv().unwrap();
///     }
/// });
/// let writer = green::spawn(move || {
///     let mut sent = 0;
///     while tx.send(1).is_ok() {
///         sent += 1; // ends once the reader has gone
///     }
///     sent
/// });
/// reader.wait();
/// assert!(writer.wait() >= 10);
///
/// green::hub::set_coop_budget(Some(1024)); // fewer yields, per hub
/// green::hub::set_coop_budget(None); // off: a loop like the one above never ends
/// ```
pub fn set_coop_budget(budget: Option<u32>) {
    let h = hub();
    let n = budget.unwrap_or(u32::MAX);
    h.refill.set(n);
    h.budget.set(n);
}

/// Parks the current context until it is unparked or `deadline` passes.
///
/// Returns [`Wake::Woken`], [`Wake::TimedOut`] or [`Wake::Closed`]; a pending
/// kill or timeout unwinds from here instead.
pub(crate) fn park(deadline: Option<Instant>) -> Wake {
    match hub().park_raw(deadline) {
        Wake::Cancel(c) => deliver(c),
        w => w,
    }
}

/// Whether the current context is unwinding because of a kill or a
/// [`Timeout`](crate::Timeout), rather than a panic of its own.
pub(crate) fn unwinding_from_cancel() -> bool {
    if !std::thread::panicking() {
        return false;
    }
    let Some(h) = try_hub() else {
        return false;
    };
    let key = h.current.get();
    key != HUB_CTX && h.slots.borrow()[key as usize].cancel_unwind
}

/// How many contexts, on all hubs, have their `cancel_unwind` flag set:
/// while none has, [`note_not_unwinding`] costs one load.
static CANCEL_UNWINDS: AtomicUsize = AtomicUsize::new(0);

/// Sets a slot's `cancel_unwind` flag, keeping [`CANCEL_UNWINDS`] in step.
fn set_cancel_unwind(slot: &mut Slot, v: bool) {
    if slot.cancel_unwind != v {
        slot.cancel_unwind = v;
        if v {
            CANCEL_UNWINDS.fetch_add(1, Ordering::Relaxed);
        } else {
            CANCEL_UNWINDS.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Called where a context takes a lock or starts an initializer: if it is
/// not unwinding, a cancellation unwind it went through earlier was caught
/// (by `catch_unwind`), so a later real panic must poison again.
#[inline]
pub(crate) fn note_not_unwinding() {
    if CANCEL_UNWINDS.load(Ordering::Relaxed) != 0 && !std::thread::panicking() {
        end_cancel_unwind();
    }
}

/// Marks the current context's cancellation unwind as caught.
pub(crate) fn end_cancel_unwind() {
    if let Some(h) = try_hub() {
        let key = h.current.get();
        if key != HUB_CTX {
            set_cancel_unwind(&mut h.slots.borrow_mut()[key as usize], false);
        }
    }
}

/// A handle that wakes one green context (a green thread or a root);
/// `Send + Sync`.
///
/// Get one with [`current_unparker`], hand it to whoever will wake you, then
/// park with [`park_until`]. It behaves like [`std::thread::Thread::unpark`]:
/// unparking wakes the context if it is parked, or else makes its next park
/// return at once. Parks may therefore return spuriously, so callers check
/// their condition in a loop. Once the green thread has exited, unparking is
/// a no-op, even if its slot was reused. Unparking from another OS thread
/// reaches the hub through its remote queue, and writes to the hub's eventfd
/// only if the hub is asleep.
///
/// # Examples
/// ```
/// let u = green::hub::current_unparker();
/// std::thread::spawn(move || u.unpark());
/// // Parks the root context; the other OS thread wakes it.
/// while !green::hub::park_until(None) {}
/// ```
#[derive(Clone)]
pub struct Unparker {
    shared: Arc<Shared>,
    token: Token,
}

impl fmt::Debug for Unparker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unparker")
            .field("slot", &self.token.key)
            .field("seq", &self.token.seq)
            .finish()
    }
}

impl Unparker {
    /// Wakes the context this handle was made for, if it is still in the
    /// park the handle names.
    pub fn unpark(&self) {
        match try_hub() {
            Some(h) if Arc::ptr_eq(&h.shared, &self.shared) => {
                h.wake(self.token, Wake::Woken);
            }
            _ => self
                .shared
                .unpark_remote(self.token.key, self.token.gen, self.token.seq),
        }
    }

    /// Whether the hub of the context was torn down (its thread exited):
    /// the context never runs again.
    pub(crate) fn hub_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Turns the handle into a [`std::task::Waker`] that unparks on wake.
    pub fn into_waker(self) -> std::task::Waker {
        std::task::Waker::from(Arc::new(self))
    }
}

impl std::task::Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.unpark();
    }
}

/// The wakeup of a wait list's node (`crate::wait`), kept with the node
/// across waits: an [`Unparker`] that holds its hub only while a waiter
/// waits.
///
/// Once it has woken its context it lets go of its reference to the hub's
/// shared part, which owns the poller's fds: a node the list keeps for
/// reuse must not keep the hub of an exited OS thread open, however long
/// the primitive lives. On the hub's own thread — the common case, two
/// green threads of one hub — the reference is lent to the hub and taken
/// back by the next [`refresh`](NodeUnparker::refresh) there, so a wait
/// costs no reference counting.
pub(crate) struct NodeUnparker {
    /// The hub's shared part: valid while `owned`; afterwards only
    /// compared with the current hub's, never dereferenced.
    ///
    /// # Invariant
    /// The handle owns one strong reference to `*shared` if and only if
    /// `owned`.
    shared: *const Shared,
    token: Token,
    owned: bool,
}

// SAFETY: the pointer is an `Arc<Shared>` when owned (`Shared` is `Send +
// Sync`), and is only compared otherwise.
unsafe impl Send for NodeUnparker {}
// SAFETY: as above; `&self` methods only read.
unsafe impl Sync for NodeUnparker {}

impl NodeUnparker {
    /// A handle for the current context of `hub`.
    pub(crate) fn new(hub: &Hub) -> NodeUnparker {
        let token = hub.local_unparker();
        NodeUnparker {
            shared: Arc::into_raw(hub.shared_ref()),
            token,
            owned: true,
        }
    }

    /// Makes the handle name the current context of `hub`, taking a
    /// reference to it again (from the hub if it lent one), or swapping
    /// the hub it held for `hub`.
    #[inline]
    pub(crate) fn refresh(&mut self, hub: &Hub) {
        if std::ptr::eq(self.shared, Arc::as_ptr(&hub.shared)) {
            if !self.owned {
                std::mem::forget(hub.shared_ref());
                self.owned = true;
            }
            self.token = hub.local_unparker();
        } else {
            *self = NodeUnparker::new(hub);
        }
    }

    /// Wakes the context like [`Unparker::unpark`], then lets go of the
    /// hub: lent to it on its own thread, else dropped.
    #[inline]
    pub(crate) fn unpark_and_release(&mut self) {
        if !self.owned {
            return;
        }
        self.owned = false;
        match try_hub() {
            Some(h) if std::ptr::eq(self.shared, Arc::as_ptr(&h.shared)) => {
                // SAFETY: the handle owned a reference to this hub's
                // shared part (`owned` was set) and gives it up.
                unsafe { h.lend_ref() };
                h.wake(self.token, Wake::Woken);
            }
            _ => {
                // SAFETY: owned until now: a strong reference, which the
                // Arc made here takes over and drops.
                let shared = unsafe { Arc::from_raw(self.shared) };
                let Token { key, gen, seq } = self.token;
                shared.unpark_remote(key, gen, seq);
            }
        }
    }
}

impl Drop for NodeUnparker {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: the strong reference the handle owns.
            drop(unsafe { Arc::from_raw(self.shared) });
        }
    }
}

impl fmt::Debug for NodeUnparker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeUnparker")
            .field("slot", &self.token.key)
            .field("owned", &self.owned)
            .finish()
    }
}

/// An [`Unparker`] for the current context's next park.
///
/// # Panics
/// Panics when called from the hub itself (a timer callback).
pub fn current_unparker() -> Unparker {
    hub().unparker()
}

/// Parks the current context (green thread, or the root running the hub)
/// until an [`Unparker`] wakes it or `deadline` passes.
///
/// Returns `true` if woken, `false` if the deadline passed. Like
/// [`std::thread::park`], it may also return `true` spuriously: callers check
/// their condition in a loop. A pending [`kill`](crate::GreenThread::kill) or
/// [`Timeout`](crate::Timeout) unwinds from here.
///
/// # Panics
/// Panics when called from the hub itself (a timer callback).
pub fn park_until(deadline: Option<Instant>) -> bool {
    !matches!(park(deadline), Wake::TimedOut)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Code run by the hub itself (timer actions, fd dispatch) has no
    /// context to park; trying to is a bug that must be named.
    #[test]
    #[should_panic(expected = "do not call blocking functions from the hub")]
    fn park_from_hub_panics() {
        let h = hub();
        h.current.set(HUB_CTX);
        park(None);
    }

    #[test]
    #[should_panic(expected = "do not call blocking functions from the hub")]
    fn yield_from_hub_panics() {
        let h = hub();
        h.current.set(HUB_CTX);
        h.yield_now();
    }

    #[test]
    fn seq_skips_any_park() {
        assert_eq!(next_seq(ANY_PARK - 1), 0);
        assert_eq!(next_seq(0), 1);
    }
}

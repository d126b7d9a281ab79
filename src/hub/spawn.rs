//! Spawning green threads, their ids, and their end.
//!
//! [`Hub::spawn_raw`] makes a slot for a body: a coroutine on a pooled
//! guarded stack, or a seat in a shared-stack arena (`seat.rs`), and
//! optionally a TLS block of its own (an identity, `crate::coro::tls`). The
//! green thread's first frame reports to the hub ([`Hub::started`]); a
//! guard in it runs the thread's exit however the body ends
//! ([`Hub::exit_thread`]); once its coroutine returns, the loop frees its
//! slot and pools its stack ([`Hub::reap`]).

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::slots::{GreenCtx, State};
use super::stall::Origin;
use super::{hub, try_hub, Hub, Unparker, Wake, HUB, HUB_CTX, ROOT};
use crate::coro::{self, Coro, GreenStack, Yielder};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// How far below the top of a new stack the prefetch hint of a green
/// thread not yet run points: its first frames (the coroutine's start, the
/// unwind catcher, the body's) lie there.
const FIRST_FRAMES: usize = 448;

/// How many ids a hub takes from the process-wide counter at a time, so
/// that a spawn makes no atomic read-modify-write.
const ID_BLOCK: u64 = 1024;

/// A fresh process-wide green thread id.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The id of the green thread that calls it, or `None` on the root or a
/// plain OS thread.
///
/// # Examples
/// ```
/// assert_eq!(green::current_id(), None);
/// let gt = green::spawn(green::current_id);
/// let id = gt.id();
/// assert_eq!(gt.wait(), Some(id));
/// ```
pub fn current_id() -> Option<u64> {
    try_hub().and_then(|h| h.current_green_id())
}

impl Hub {
    /// A fresh process-wide green thread id, from this hub's block of
    /// [`ID_BLOCK`] (the ids of one hub increase; those of two hubs
    /// interleave by blocks).
    #[inline]
    fn fresh_id(&self) -> u64 {
        let (next, end) = self.ids.get();
        if next < end {
            self.ids.set((next + 1, end));
            return next;
        }
        let start = NEXT_ID.fetch_add(ID_BLOCK, Ordering::Relaxed);
        self.ids.set((start + 1, start + ID_BLOCK));
        start
    }

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

    /// Id of the running green thread, if a green thread is running.
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

    /// The handle the layers above keep for the running context (the
    /// thread module's `Thread`), made by `make(unparker, green_id)` and
    /// kept in its slot on first use; `green_id` is `None` for the root.
    /// The hub stores it type-erased: it needs not know the type, which
    /// must be the same at every call.
    ///
    /// # Panics
    /// Panics when called from the hub itself, or if a handle of another
    /// type is kept already.
    pub(crate) fn current_thread<T: Clone + 'static>(
        &self,
        make: impl FnOnce(Unparker, Option<u64>) -> T,
    ) -> T {
        let super::Token { key, gen, .. } = self.token();
        let id = {
            let slots = self.slots.borrow();
            let slot = &slots[key as usize];
            if let Some(t) = &slot.thread {
                return t
                    .downcast_ref::<T>()
                    .expect("one type of thread handle per context")
                    .clone();
            }
            // A green thread being unwound at teardown is out of its slot.
            (key != ROOT).then(|| slot.green.as_ref().map_or_else(next_id, |g| g.id))
        };
        let t = make(self.unparker_of(key, gen), id);
        self.slots.borrow_mut()[key as usize].thread = Some(Box::new(t.clone()));
        t
    }

    /// Gives green thread `(key, gen)` its handle (see
    /// [`Hub::current_thread`]).
    pub(crate) fn set_thread<T: 'static>(&self, key: u32, gen: u32, t: T) {
        let mut slots = self.slots.borrow_mut();
        if let Some(slot) = slots.get_mut(key as usize) {
            if slot.gen == gen && slot.green.is_some() {
                slot.thread = Some(Box::new(t) as Box<dyn Any>);
            }
        }
    }

    /// Called by a green thread's first frame: records its yielder and drops
    /// the `spawn_after` timer if it was started early (by a kill).
    pub(super) fn started(&self, y: &Yielder) {
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
            self.cancel_timer(t);
        }
    }

    /// Frees the slot of a finished green thread and pools its stack.
    pub(super) fn reap(&self, key: u32) {
        let (coro, seat, timer) = {
            let mut slots = self.slots.borrow_mut();
            let slot = &mut slots[key as usize];
            slot.state = State::Vacant;
            slot.gen = slot.gen.wrapping_add(1);
            slot.cancel.reset(&self.cancels);
            slot.notified = false;
            let timer = slot.timer.take();
            let (coro, seat, named, id) = match slot.green.as_mut() {
                Some(g) => (g.coro.take(), g.seat.take(), g.named, g.id),
                None => (None, None, false, 0),
            };
            slot.green = None;
            slot.thread = None;
            slots.clear(key, id, named);
            (coro, seat, timer)
        };
        if let Some(t) = timer {
            self.cancel_timer(t);
        }
        self.slots.borrow_mut().release(key);
        self.green_count.set(self.green_count.get() - 1);
        if let Some(seat) = seat {
            self.seats.leave(key, &seat);
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
        origin: Origin,
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
        let mut hint = 0;
        let mut green = if shared {
            let (seat, guard, arena_span) = self.seats.take(Box::new(entry))?;
            span = Some(arena_span);
            GreenCtx {
                id: self.fresh_id(),
                coro: None,
                yielder: std::ptr::null(),
                guard,
                seat: Some(seat),
                tls: None,
                tp: 0,
                named: false,
            }
        } else {
            let stack = self.stacks.borrow_mut().get(stack_size)?;
            let guard = stack.guard();
            hint = stack.top() - FIRST_FRAMES;
            span = identity.then(|| stack.span());
            GreenCtx {
                id: self.fresh_id(),
                coro: Some(Coro::new(GreenStack::Own(stack), entry)),
                yielder: std::ptr::null(),
                guard,
                seat: None,
                tls: None,
                tp: 0,
                named: false,
            }
        };
        if let Some(span) = span.filter(|_| identity) {
            self.give_identity(&mut green, span)?;
        }
        let id = green.id;
        green.named = origin.name.is_some();
        let mut slots = self.slots.borrow_mut();
        let key = slots.alloc();
        slots.fill(key, id, origin);
        let slot = &mut slots[key as usize];
        slot.green = Some(green);
        slot.sp_hint = hint;
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
                slot.timer = Some(self.add_wake_timer(at, key, gen, slot.seq, Wake::Woken));
                let until = super::stall::nanos_since(self.epoch, at) + 1;
                let start = super::stall::Blocker::of(super::stall::Kind::Start);
                slots.record(key).park(start, self.clock.get(), until);
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
        let info = green.running_info();
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
        self.slots.borrow_mut()[key as usize].cancel.begin_exit();
        self.in_foreign(crate::coro::tls::run_exit);
    }

    /// Whether green thread `(key, gen)` is the running context.
    pub(crate) fn is_current(&self, key: u32, gen: u32) -> bool {
        self.current.get() == key && self.slots.borrow()[key as usize].gen == gen
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

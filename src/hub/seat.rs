//! Seating shared-stack green threads in their arenas.
//!
//! A green thread spawned with a shared stack has no stack of its own: it
//! runs on one of the hub's [`ARENAS`] arenas (`crate::coro::Arena`, one
//! guarded mapping each), and while another green thread of the same arena
//! runs, its frames wait on the heap. Before the hub resumes it, it is
//! *seated*: the arena's occupant, suspended, is evicted (its used slice
//! copied to the heap) and this one's frames copied back, unless it is the
//! occupant already ([`Hub::take_seat`]). Its coroutine is created on its
//! first run ([`Hub::seat`]). Copies cost in proportion to the depth of
//! the stack in use; memory follows real use rather than a fixed size.
//!
//! This is the arena's policy, beside the mechanism in `crate::coro`
//! (which is below the hub and cannot see its slots).

use std::cell::{Cell, RefCell};

use crate::coro::{Arena, Coro, Yielder};

use super::Hub;

/// How many shared-stack arenas a hub uses; green threads that opted in are
/// spread over them round-robin.
const ARENAS: usize = 4;

/// The body of a shared-stack green thread, run when it is first resumed.
pub(super) type Start = Box<dyn FnOnce(&Yielder)>;

/// Where a shared-stack green thread keeps its frames.
pub(super) struct Seat {
    pub(super) arena: usize,
    /// The body, until the first run creates the coroutine.
    start: Option<Start>,
    /// Its stack pointer when it last suspended.
    pub(super) sp: usize,
    /// Its frames while evicted from the arena.
    saved: Vec<u8>,
    evicted: bool,
}

/// A hub's arenas.
#[derive(Default)]
pub(super) struct Seats {
    arenas: RefCell<Vec<Arena>>,
    next_arena: Cell<usize>,
}

impl Seats {
    /// A seat for a new green thread that runs `start`, in the next arena
    /// (made if fewer than [`ARENAS`] exist), with that arena's guard page
    /// and span.
    #[allow(clippy::type_complexity)]
    pub(super) fn take(
        &self,
        start: Start,
    ) -> std::io::Result<(Box<Seat>, (usize, usize), (usize, usize, usize))> {
        let mut arenas = self.arenas.borrow_mut();
        if arenas.len() < ARENAS {
            arenas.push(Arena::new()?);
        }
        let i = self.next_arena.get() % arenas.len();
        self.next_arena.set(i + 1);
        let seat = Box::new(Seat {
            arena: i,
            start: Some(start),
            sp: 0,
            saved: Vec::new(),
            evicted: false,
        });
        Ok((seat, arenas[i].guard(), arenas[i].span()))
    }

    /// Green thread `key`, seated at `seat`, is gone: its arena has no
    /// occupant if it was that.
    pub(super) fn leave(&self, key: u32, seat: &Seat) {
        let mut arenas = self.arenas.borrow_mut();
        if arenas[seat.arena].occupant == Some(key) {
            arenas[seat.arena].occupant = None;
        }
    }

    /// Leaves every arena mapped for ever: a leaked coroutine's frames may
    /// still be in one.
    pub(super) fn leak(&self) {
        std::mem::forget(std::mem::take(&mut *self.arenas.borrow_mut()));
    }
}

impl Hub {
    /// Prepares shared-stack green thread `key` to run: its frames in its
    /// arena, and its coroutine created on first run.
    #[cold]
    pub(super) fn seat(&self, key: u32) {
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
            let bounds = self.seats.arenas.borrow()[arena].bounds();
            g.coro = Some(Coro::new(bounds, start));
        }
    }

    /// Makes the arena of shared-stack green thread `key` hold its frames:
    /// saves the current occupant's frames to the heap and copies `key`'s
    /// back, if they are not there already.
    pub(super) fn take_seat(&self, key: u32) {
        let mut slots = self.slots.borrow_mut();
        let mut arenas = self.seats.arenas.borrow_mut();
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
}

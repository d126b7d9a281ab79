//! The shared-stack arena: many green threads run on one guarded stack,
//! one at a time (greenlet's technique).
//!
//! An [`Arena`] is the memory and the two copies: [`Arena::save`] takes a
//! suspended occupant's frames out to the heap, [`Arena::restore`] puts
//! them back at the same addresses. The picture is on [`Arena`].
//!
//! # Seating
//! Which green thread occupies an arena, and when one is evicted for
//! another, is the hub's seating, the arena's one user. A shared-stack
//! green thread has a seat: the arena it runs on, its body until its
//! first run makes its coroutine (on [`Arena::bounds`]), its stack
//! pointer when it last suspended, and its frames while evicted. Before
//! it runs, its arena's occupant, if another, is saved and marked
//! evicted, its own frames are restored if they were evicted, and it
//! becomes the occupant; when it ends it leaves the arena free.

use std::io;
use std::ptr;

use corosensei::stack::Stack;

use super::coroutine::suspend_margin;
use super::stack::{page_size, GreenStack, GuardedStack, DEFAULT_STACK_SIZE};

/// A shared stack: many green threads run on it one at a time, and the
/// used part of a suspended one is copied to the heap when another needs the
/// arena (greenlet's technique).
///
/// ```text
///   arena base ─┬──────────────────────┐
///               │ occupant's frames    │ live while it runs; left in place
///               │ (in use)             │ when it suspends, until evicted
///   sp - margin ┼──────────────────────┤
///               │ free                 │
///   guard ──────┴──────────────────────┘
///
///   evict(occupant):  copy [sp - margin, base) -> occupant's Vec<u8> on the heap
///   enter(thread):    copy its Vec<u8>        -> [base - len, base)
/// ```
///
/// A thread's frames always return to the same addresses, so pointers into
/// its own stack stay valid for the thread itself. Memory used per suspended
/// thread is what its frames really use, not a whole stack.
#[derive(Debug)]
pub(crate) struct Arena {
    stack: GuardedStack,
    /// The slot whose frames are in the arena memory now.
    pub(crate) occupant: Option<u32>,
}

impl Arena {
    pub(crate) fn new() -> io::Result<Arena> {
        // Measure the switch's footprint before any green thread needs it.
        suspend_margin();
        Ok(Arena {
            stack: GuardedStack::new(DEFAULT_STACK_SIZE)?,
            occupant: None,
        })
    }

    /// The arena's bounds, as a coroutine stack.
    pub(crate) fn bounds(&self) -> GreenStack {
        GreenStack::Shared {
            base: self.stack.base().get(),
            limit: self.stack.limit().get(),
        }
    }

    pub(crate) fn guard(&self) -> (usize, usize) {
        self.stack.guard()
    }

    /// The arena's mapping, as [`GuardedStack::span`].
    pub(crate) fn span(&self) -> (usize, usize, usize) {
        self.stack.span()
    }

    /// Copies the frames of a suspended occupant into `saved`: the arena from
    /// `sp` (recorded by its last [`suspend_recording`](super::suspend_recording)) less [`suspend_margin`] up to
    /// the base. If that is not inside the arena (the occupant suspended
    /// while running on another stack), the whole arena is saved.
    ///
    /// # Safety
    /// The occupant must be suspended and nothing may run on the arena.
    pub(crate) unsafe fn save(&self, sp: usize, saved: &mut Vec<u8>) {
        let base = self.stack.base().get();
        // The guard page is never live: saving stops above it.
        let floor = self.stack.limit().get() + page_size();
        let low = sp.saturating_sub(suspend_margin());
        let low = if (floor..=base).contains(&low) {
            low
        } else {
            floor
        };
        saved.clear();
        // SAFETY: `[low, base)` is readable arena memory (`floor <= low`).
        saved
            .extend_from_slice(unsafe { std::slice::from_raw_parts(low as *const u8, base - low) });
    }

    /// Copies saved frames back to `[base - saved.len(), base)`.
    ///
    /// # Safety
    /// No coroutine may be running on the arena, and `saved` must come from
    /// [`Arena::save`] on this arena.
    pub(crate) unsafe fn restore(&self, saved: &[u8]) {
        let base = self.stack.base().get();
        // SAFETY: the range lies in the arena's writable part (save took it
        // from there) and nothing runs on the arena.
        unsafe {
            ptr::copy_nonoverlapping(saved.as_ptr(), (base - saved.len()) as *mut u8, saved.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_never_reads_the_guard_page() {
        let arena = Arena::new().unwrap();
        let base = arena.stack.base().get();
        let floor = arena.stack.limit().get() + page_size();
        let mut saved = Vec::new();
        // A thread parked just above the guard page.
        // SAFETY: no coroutine runs on the arena; `save` only reads it.
        unsafe { arena.save(floor + 8, &mut saved) };
        assert_eq!(saved.len(), base - floor);
        // A thread parked while running on another stack.
        // SAFETY: as above.
        unsafe { arena.save(base + (1 << 20), &mut saved) };
        assert_eq!(saved.len(), base - floor);
        // SAFETY: as above.
        unsafe { arena.save(base - 1000, &mut saved) };
        assert_eq!(saved.len(), 1000 + suspend_margin());
    }
}

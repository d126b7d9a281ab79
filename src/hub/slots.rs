//! The slots of a hub's contexts: the root (slot 0) and its green threads.
//!
//! A slot is named by its index and a generation, bumped each time the slot
//! is freed, so a handle to an exited green thread never reaches the one
//! that reuses the slot. Slots live in fixed chunks ([`Slab`]) and never
//! move: the hub resumes a running green thread's coroutine through a
//! pointer into its slot, while that green thread may spawn others (which
//! may add a chunk).

use std::any::Any;
use std::sync::Arc;

use super::cancel::CancelState;
use super::seat::Seat;
use super::stall::{Record, Records};
use super::timer::TimerId;
use super::Wake;
use crate::coro::{Coro, RunningInfo, Yielder};

/// Where a context is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    Running,
    Runnable,
    Parked,
    Vacant,
}

/// A green thread as the hub sees it.
pub(super) struct GreenCtx {
    pub(super) id: u64,
    /// `None` only before the first run of a shared-stack green thread.
    pub(super) coro: Option<Coro>,
    pub(super) yielder: *const Yielder,
    pub(super) guard: (usize, usize),
    /// Boxed: only shared-stack green threads have one.
    pub(super) seat: Option<Box<Seat>>,
    /// Its own TLS block and thread pointer, if it has an identity of its
    /// own (0: it runs on the OS thread's).
    pub(super) tls: Option<crate::coro::tls::Block>,
    pub(super) tp: usize,
    /// Its record (`stall::Record`) holds a name, to clear when it ends.
    pub(super) named: bool,
}

impl GreenCtx {
    /// What the overflow handler and the watchdog know of it while it runs.
    pub(super) fn running_info(&self) -> RunningInfo {
        RunningInfo {
            guard_lo: self.guard.0,
            guard_hi: self.guard.1,
            id: self.id,
        }
    }
}

/// One context: the root (slot 0) or a green thread.
pub(super) struct Slot {
    pub(super) gen: u32,
    pub(super) seq: u32,
    pub(super) state: State,
    /// A wake arrived for the current `seq` while not parked: the next park
    /// returns at once (like the token of `std::thread::park`).
    pub(super) notified: bool,
    pub(super) reason: Wake,
    /// Kill and timeout: what is pending, reported, being unwound.
    pub(super) cancel: CancelState,
    /// The timer of the current park's deadline, or of `spawn_after`.
    pub(super) timer: Option<TimerId>,
    /// Inline, so spawning allocates no box for it; the slab never moves
    /// a slot, so a running coroutine stays put.
    pub(super) green: Option<GreenCtx>,
    /// The handle the layers above keep for the context (the thread
    /// module's `Thread`, made by `thread::current` or
    /// `thread::Builder::spawn`), type-erased so that the hub needs not
    /// know it ([`Hub::current_thread`](super::Hub::current_thread));
    /// dropped when its green thread is reaped. Kept in the slot, not in
    /// `green`, so that a destructor run while teardown unwinds the green
    /// thread still finds it.
    pub(super) thread: Option<Box<dyn Any>>,
    /// Where its stack was in use when it last parked: the stack pointer
    /// of the park, or for a green thread not yet run a little below the
    /// top of its stack, where its first frames go. Only a hint for the
    /// loop's prefetch (`Hub::prefetch_next`); 0 where there is none.
    pub(super) sp_hint: usize,
}

impl Slot {
    pub(super) fn vacant() -> Slot {
        Slot {
            gen: 0,
            seq: 0,
            state: State::Vacant,
            notified: false,
            reason: Wake::Woken,
            cancel: CancelState::default(),
            timer: None,
            green: None,
            thread: None,
            sp_hint: 0,
        }
    }
}

/// Slots in fixed chunks: a slot never moves once made, so the coroutine of
/// a running green thread can be resumed through a pointer into its slot
/// while that green thread spawns others.
pub(super) struct Slab {
    chunks: Vec<Box<[Slot; CHUNK]>>,
    /// The slots' records, chunk for chunk, also in `shared`.
    records: Vec<Arc<[Record; CHUNK]>>,
    /// The records as the watchdog reads them (the hub's `Beat`).
    shared: Arc<Records>,
    len: usize,
    /// Vacant slots below `len`, reused before the slab grows.
    free: Vec<u32>,
}

pub(super) const CHUNK: usize = 64;

impl Slab {
    /// A slab holding the root's slot, running, whose records are
    /// published in `shared`.
    pub(super) fn with_root(shared: Arc<Records>) -> Slab {
        let mut slab = Slab {
            chunks: Vec::new(),
            records: Vec::new(),
            shared,
            len: 0,
            free: Vec::new(),
        };
        slab.push(Slot {
            state: State::Running,
            ..Slot::vacant()
        });
        slab
    }

    /// A vacant slot for a new green thread: a freed one, else a new one.
    pub(super) fn alloc(&mut self) -> u32 {
        if let Some(k) = self.free.pop() {
            return k;
        }
        self.push(Slot::vacant());
        (self.len - 1) as u32
    }

    /// Slot `key` is vacant again (its generation already bumped).
    pub(super) fn release(&mut self, key: u32) {
        self.free.push(key);
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
        // Also made on the heap (`Arc::from` a vector copies heap to heap).
        let records: Vec<Record> = (0..CHUNK).map(|_| Record::default()).collect();
        let records: Arc<[Record; CHUNK]> = Arc::<[Record]>::from(records)
            .try_into()
            .unwrap_or_else(|_| unreachable!("the vector has CHUNK records"));
        self.shared.push(records.clone());
        self.records.push(records);
    }

    /// Green thread `id` from `origin` now lives in slot `key`.
    #[inline]
    pub(super) fn fill(&self, key: u32, id: u64, origin: super::stall::Origin) {
        self.record(key).fill(id, origin.site);
        if origin.name.is_some() {
            self.shared.name(id, origin.name);
        }
    }

    /// Green thread `id` of slot `key` ended; `named` if it had a name.
    #[inline]
    pub(super) fn clear(&self, key: u32, id: u64, named: bool) {
        self.record(key).clear();
        if named {
            self.shared.name(id, None);
        }
    }

    /// The record of slot `key`.
    #[inline]
    pub(super) fn record(&self, key: u32) -> &Record {
        let i = key as usize;
        &self.records[i / CHUNK][i % CHUNK]
    }

    #[inline]
    pub(super) fn get_mut(&mut self, i: usize) -> Option<&mut Slot> {
        if i < self.len {
            Some(&mut self.chunks[i / CHUNK][i % CHUNK])
        } else {
            None
        }
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
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

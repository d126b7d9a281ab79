//! What a watchdog on another OS thread can see of a hub: its beat, and
//! a record of each green thread.
//!
//! A hub held by one green thread (a CPU loop, or a call green does not
//! make cooperative) stops every other green thread of its OS thread. The
//! watchdog (`crate::debug`) notices it from another OS thread, so what it
//! reads must be shared: each hub publishes a [`Beat`] (a resume counter and
//! the id of the green thread running now) and a [`Record`] per slot (the
//! id of the green thread in it, where it was spawned, its name), which the
//! slab writes when it spawns one and clears when it reaps it.
//!
//! The hub's side is two relaxed stores per resume and one when the green
//! thread switches back; a spawn adds two stores (and a lock if the green
//! thread is named), a reap one.

use std::panic::Location;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::slots::CHUNK;

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
    /// The id of the green thread in the slot; 0 when it is vacant.
    id: AtomicU64,
    /// Where it was spawned (null: unknown). Locations are `'static`: the
    /// pointer stays valid whatever the green thread does.
    site: AtomicPtr<Location<'static>>,
    /// Its name, if it has one.
    name: Mutex<Option<Arc<str>>>,
}

impl Record {
    /// Green thread `id` from `origin` now lives in the slot.
    pub(super) fn fill(&self, id: u64, origin: Origin) {
        let site = origin
            .site
            .map_or(ptr::null_mut(), |l| ptr::from_ref(l).cast_mut());
        self.site.store(site, Ordering::Relaxed);
        if origin.name.is_some() {
            *self.name.lock().unwrap_or_else(|e| e.into_inner()) = origin.name;
        }
        self.id.store(id, Ordering::Release);
    }

    /// The slot's green thread ended; `named` if it had a name.
    pub(super) fn clear(&self, named: bool) {
        self.id.store(0, Ordering::Release);
        if named {
            *self.name.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

/// The records of a hub's slots, in chunks as the slab has them: a chunk
/// is added when the slab grows and never moves.
pub(crate) type Records = Mutex<Vec<Arc<[Record; CHUNK]>>>;

/// Where green thread `id` of a hub comes from, as far as its records
/// say (nothing if it has ended meanwhile).
pub(crate) fn origin_of(records: &Records, id: u64) -> Origin {
    let chunks = records.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for r in chunks.iter().flat_map(|c| c.iter()) {
        if id != 0 && r.id.load(Ordering::Acquire) == id {
            let p = r.site.load(Ordering::Relaxed);
            // SAFETY: only `fill` stores here, null or a `&'static Location`.
            let site = unsafe { p.cast_const().as_ref() };
            let name = r.name.lock().unwrap_or_else(|e| e.into_inner()).clone();
            // Still the same green thread: the site and name are its own.
            if r.id.load(Ordering::Acquire) == id {
                return Origin { site, name };
            }
        }
    }
    Origin::default()
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
}

static HUBS: Mutex<Vec<Weak<Beat>>> = Mutex::new(Vec::new());

/// Makes a hub's beat visible to the watchdog.
pub(crate) fn register(beat: &Arc<Beat>) {
    let mut hubs = HUBS.lock().unwrap_or_else(|e| e.into_inner());
    hubs.retain(|w| w.strong_count() > 0);
    hubs.push(Arc::downgrade(beat));
}

/// The beats of the hubs alive now.
pub(crate) fn beats() -> Vec<Arc<Beat>> {
    let hubs = HUBS.lock().unwrap_or_else(|e| e.into_inner());
    hubs.iter().filter_map(Weak::upgrade).collect()
}

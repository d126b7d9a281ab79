//! Closes, on any OS thread: the process-wide close count of each fd
//! number, the registry of live hubs, and [`notify_close`].
//!
//!
//! The kernel tells epoll nothing when an fd closes, so [`notify_close`]
//! must come first, and it may come on any OS thread: a green socket is
//! `Send`, and a plain thread may close what a green thread reads. Each fd
//! number has one process-wide word, [`FD_STATE`]: a close count, and a bit
//! for each hub that registered the number since its last close.
//!
//! ```text
//!  hub A registers fd 7        FD_STATE[7] = (count 4, hubs {A})   fetch_or
//!  hub B registers fd 7        FD_STATE[7] = (count 4, hubs {A, B})
//!  notify_close(7) on thread T FD_STATE[7] = (count 5, hubs {})    one CAS
//!    T's own hub (if A or B):  forget entry 7, wake its waiters with Closed
//!    each other hub in {A, B}: epoll_ctl(DEL, 7) on its poller (the fd
//!                              still names the file), push (7, count 4) on
//!                              its close queue, wake its loop if it sleeps
//!  hub B's loop drains (7, 4): its entry 7 registered at count <= 4 names
//!                              the closed file: forget it, wake its waiters
//!                              with Closed; an entry registered since (for
//!                              a file that reuses the number) stays
//! ```
//!
//! An fd no hub registered costs the close one compare-and-swap; one that
//! only the closing thread's hub registered, no more than before. A waiter
//! woken by an edge that finds the count changed when it runs fails as
//! closed too, rather than retry on a number that may name another file.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, Weak};

use crate::hub::fdmap::FdMap;
use crate::hub::{Hub, Shared, Wake};

/// Process-wide, per fd number: the number's close count (high 32 bits)
/// and the hubs that registered it since its last close (low 32 bits, one
/// bit per hub id modulo 32). A hub that registers the number sets its bit
/// and learns the count in one `fetch_or`; [`notify_close`] bumps the count
/// and takes the bits in one compare-and-swap, so it reaches every hub that
/// may have a waiter on the file being closed, and a hub whose entry is
/// older than the current count knows the number names another file now.
/// Reading the count is one or two loads and never locks.
pub(super) static FD_STATE: FdMap<AtomicU64> = FdMap::new();

/// The close count of a [`FD_STATE`] word.
pub(super) fn count_of(word: u64) -> u32 {
    (word >> 32) as u32
}

/// The hub bits of a [`FD_STATE`] word.
fn hubs_of(word: u64) -> u32 {
    word as u32
}

pub(super) fn generation(fd: RawFd) -> u32 {
    FD_STATE
        .get(fd)
        .map_or(0, |w| count_of(w.load(Ordering::Acquire)))
}

/// Whether an entry registered at close count `entry` names the file whose
/// close at count `closed` was announced: it was registered then or before.
fn registered_by(entry: u32, closed: u32) -> bool {
    closed.wrapping_sub(entry) as i32 >= 0
}

/// Every live hub's shared part, indexed by hub id, so that a close on any
/// thread reaches the hubs that registered the fd. An id is reused once its
/// hub is gone; `Weak`, so the registry never keeps a hub's poller open.
static HUBS: Mutex<Vec<Option<Weak<Shared>>>> = Mutex::new(Vec::new());

/// How many hub ids were ever handed out: while at most 32, a hub bit of
/// [`FD_STATE`] names one hub exactly.
static HUB_IDS: AtomicU32 = AtomicU32::new(0);

/// Set in a child made by `fork`: the parent's hubs are not the child's
/// (their pollers are shared with the parent, and the registry lock may be
/// held by a thread that is not there), so closes tell no other hub.
static FORKED: AtomicBool = AtomicBool::new(false);

fn hubs() -> MutexGuard<'static, Vec<Option<Weak<Shared>>>> {
    HUBS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes a hub's shared part with `make(id)` under a free hub id, and
/// records it for closes on other threads.
pub(in crate::hub) fn register_hub(make: impl FnOnce(u32) -> Shared) -> Arc<Shared> {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        extern "C" fn in_child() {
            FORKED.store(true, Ordering::Relaxed);
        }
        // glibc fails only when out of memory; that is not reported.
        // SAFETY: the handler runs in the child only, and only stores an
        // atomic.
        let _ = unsafe { crate::sys::pthread::at_fork_child(in_child) };
    });
    let mut hubs = hubs();
    let id = match hubs
        .iter()
        .position(|h| h.as_ref().is_none_or(|w| w.strong_count() == 0))
    {
        Some(i) => i,
        None => {
            hubs.push(None);
            HUB_IDS.store(hubs.len() as u32, Ordering::Relaxed);
            hubs.len() - 1
        }
    };
    let shared = Arc::new(make(id as u32));
    hubs[id] = Some(Arc::downgrade(&shared));
    shared
}

/// Frees hub `id` (its thread is exiting).
pub(in crate::hub) fn unregister_hub(id: u32) {
    if let Some(h) = hubs().get_mut(id as usize) {
        *h = None;
    }
}

/// The bit of hub `id` in [`FD_STATE`].
pub(super) fn hub_bit(id: u32) -> u32 {
    1 << (id % 32)
}

/// Tells every hub that `fd` is about to be closed: each green thread
/// waiting on it, on any OS thread, wakes with a `ConnectionAborted` error,
/// and the pollers forget it.
///
/// Call it *before* closing an fd that green threads may wait on (eventlet's
/// `hubs.notify_close`), on whichever OS thread closes it. The calling
/// thread's hub wakes its waiters at once; another hub that registered the
/// fd is sent the close through its remote queue (its poller is woken if it
/// sleeps) and wakes its waiters when its loop next runs. A hub that
/// registered the number again since, for another file, is left alone. An
/// fd no hub knows costs one compare-and-swap.
///
/// # Examples
/// ```
/// use std::os::fd::AsRawFd;
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// let fd = a.as_raw_fd();
/// let waiter = green::spawn(move || green::hub::trampoline(fd, green::hub::Interest::Read, None));
/// green::yield_now(); // the waiter parks on fd
/// // Closed on another OS thread: the waiter's hub is told too.
/// std::thread::spawn(move || {
///     green::hub::notify_close(fd);
///     drop(a);
/// })
/// .join()
/// .unwrap();
/// assert_eq!(waiter.wait().unwrap_err().kind(), std::io::ErrorKind::ConnectionAborted);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn notify_close(fd: RawFd) {
    let here = crate::hub::try_hub();
    // A new close count, and the hubs that registered the file being
    // closed, at one instant: a hub that registers the number later sees
    // the new count.
    let word = FD_STATE.get_or_make(fd).map(|w| {
        w.fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
            Some((count_of(old).wrapping_add(1) as u64) << 32)
        })
        .unwrap_or_else(|old| old)
    });
    if let Some(word) = word {
        let mine = here.map_or(0, |h| hub_bit(h.shared.id));
        let hubs = hubs_of(word);
        // Another hub's bit, or this hub's bit shared with another hub.
        if hubs & !mine != 0 || (hubs != 0 && HUB_IDS.load(Ordering::Relaxed) > 32) {
            close_elsewhere(fd, count_of(word), hubs, here);
        }
    }
    if let Some(hub) = here {
        hub.close_here(fd);
    }
}

/// Sends the close of `fd` (at close count `gen`) to every other hub whose
/// bit is in `hubs`.
#[cold]
#[inline(never)]
fn close_elsewhere(fd: RawFd, gen: u32, hubs: u32, here: Option<&Hub>) {
    if FORKED.load(Ordering::Relaxed) {
        return;
    }
    let targets: Vec<Arc<Shared>> = self::hubs()
        .iter()
        .enumerate()
        .filter(|(id, _)| hubs & hub_bit(*id as u32) != 0)
        .filter_map(|(_, h)| h.as_ref()?.upgrade())
        .filter(|s| here.is_none_or(|h| !Arc::ptr_eq(s, &h.shared)))
        .collect();
    // With the registry unlocked: dropping the last reference to a hub's
    // shared part closes its poller, which may come back here.
    for shared in targets {
        shared.close_remote(fd, gen);
    }
}

impl Shared {
    /// Tells this hub, from another thread, that `fd` (at close count `gen`)
    /// is about to be closed.
    fn close_remote(&self, fd: RawFd, gen: u32) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        // Forgotten now, while the fd still names the file that this
        // hub registered (the kernel would forget it at the close only if
        // no duplicate keeps the file open). An error means this hub did
        // not have it registered.
        let _ = self.poller.deregister(fd);
        self.closes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((fd, gen));
        self.has_closes.store(true, Ordering::SeqCst);
        self.wake_loop();
    }
}

impl Hub {
    /// Forgets `fd` and wakes its waiters with [`Wake::Closed`]: a close on
    /// this hub's own thread.
    fn close_here(&self, fd: RawFd) {
        let entry = {
            let mut io = self.io.borrow_mut();
            let Some(slot) = io.entries.get_mut(fd as usize) else {
                return;
            };
            let Some(e) = slot.take() else { return };
            io.registered -= 1;
            io.waiters -= e.readers.len() + e.writers.len();
            e
        };
        // An error means the kernel already forgot the fd (it was closed).
        let _ = self.shared.poller.deregister(fd);
        for t in entry.readers.into_iter().chain(entry.writers) {
            self.wake(t, Wake::Closed);
        }
    }

    /// Handles the closes other threads sent (see [`notify_close`]): each
    /// entry registered at or before the close's count names the closed
    /// file and goes, its waiters woken with [`Wake::Closed`]; an entry
    /// registered since names another file and stays. The poller has
    /// forgotten the fd already.
    pub(in crate::hub) fn drain_closes(&self) {
        let closes =
            std::mem::take(&mut *self.shared.closes.lock().unwrap_or_else(|e| e.into_inner()));
        for (fd, gen) in closes {
            let entry = {
                let mut io = self.io.borrow_mut();
                let Some(slot) = io.entries.get_mut(fd as usize) else {
                    continue;
                };
                if !slot.as_ref().is_some_and(|e| registered_by(e.gen, gen)) {
                    continue;
                }
                let e = slot.take().expect("checked above");
                io.registered -= 1;
                io.waiters -= e.readers.len() + e.writers.len();
                e
            };
            for t in entry.readers.into_iter().chain(entry.writers) {
                self.wake(t, Wake::Closed);
            }
        }
    }
}

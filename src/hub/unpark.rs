//! Unparkers: the `Send + Sync` handles that wake a parked context.
//!
//! An [`Unparker`] holds a strong reference to its hub's shared part (the
//! remote queue and the poller) and a token whose sequence is `ANY_PARK`.
//! On the hub's own thread it wakes through the run queue; from any other
//! thread it pushes onto the remote queue and notifies the poller only if
//! the hub sleeps ([`Shared::wake_loop`]). A [`NodeUnparker`], kept by a
//! wait list's node across waits, lends its reference to the hub between
//! waits so that a same-hub wait touches no reference count.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::park::ANY_PARK;
use super::{try_hub, Hub, Shared, Token, Wake};

impl Shared {
    /// Queues the wake of token `(key, gen, seq)` for the hub's loop.
    pub(super) fn unpark_remote(&self, key: u32, gen: u32, seq: u32) {
        self.remote
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((key, gen, seq));
        self.wake_loop();
    }

    /// Makes the hub's loop drain its remote queues: at once if it is
    /// awake, by notifying its poller if it sleeps.
    pub(super) fn wake_loop(&self) {
        self.has_remote.store(true, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            // A failed notify leaves the hub to its next timer; nothing better
            // can be done from here.
            let _ = self.poller.notify();
        }
    }
}

impl Hub {
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
}

/// A handle that wakes one green context (a green thread or a root);
/// `Send + Sync`.
///
/// Get one with [`current_unparker`](super::current_unparker), hand it to whoever will wake you, then
/// park with [`park_until`](super::park_until). It behaves like [`std::thread::Thread::unpark`]:
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
    // Used only by the futex table, which `cfg(loom)` replaces by a model.
    #[cfg_attr(loom, allow(dead_code))]
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

/// The wakeup of a wait list's node (`crate::wait`): an [`Unparker`] that
/// holds its hub only until it has woken its context.
///
/// Once it has woken its context it lets go of its reference to the hub's
/// shared part, which owns the poller's fds. On the hub's own thread — the
/// common case, two green threads of one hub — the reference is lent to
/// the hub and taken back by the next [`new`](NodeUnparker::new) there, so
/// a wait costs no reference counting.
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

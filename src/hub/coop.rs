//! The cooperative budget (tokio's `coop`).
//!
//! Operations that may complete without parking (a channel put, a lock
//! taken, a green read that finds data) spend one unit of the running
//! context's budget; once it is spent, the next one yields first, so that
//! a green thread that never waits cannot starve the others of its hub.
//! The budget refills whenever the hub resumes a context.

use std::cell::Cell;

use super::{hub, try_hub, Hub, HUB_CTX};

/// Operations that complete without parking a context may do in a row
/// before [`coop_spend`] makes it yield.
pub(crate) const COOP_BUDGET: u32 = 128;

/// The hub's budget.
pub(super) struct Budget {
    /// What the running context may still do without parking before it
    /// yields ([`coop_spend`]); refilled whenever a context is resumed.
    budget: Cell<u32>,
    /// What the budget is refilled to ([`set_coop_budget`]).
    refill: Cell<u32>,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            budget: Cell::new(COOP_BUDGET),
            refill: Cell::new(COOP_BUDGET),
        }
    }
}

impl Budget {
    /// Refills the budget: a context is resumed.
    #[inline]
    pub(super) fn refill(&self) {
        self.budget.set(self.refill.get());
    }
}

impl Hub {
    /// Spends one unit of the running context's cooperative budget: see
    /// [`coop_spend`].
    #[inline]
    pub(super) fn spend(&self) {
        let b = self.coop.budget.get();
        if b != 0 {
            self.coop.budget.set(b - 1);
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
        self.coop.refill();
        let key = self.current.get();
        if key == HUB_CTX || self.closing.get() {
            return;
        }
        let foreign = self.slots.borrow()[key as usize].cancel.in_foreign();
        self.yield_inner(!foreign);
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
    let n = budget.unwrap_or(u32::MAX);
    let b = &hub().coop;
    b.refill.set(n);
    b.budget.set(n);
}

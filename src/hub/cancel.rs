//! Cancellation: kill and timeout, delivered at park points by unwinding.
//!
//! [`GreenThread::kill`](crate::GreenThread::kill) and
//! [`Timeout`](crate::Timeout) do not stop a context where it runs: they
//! arm a cancellation on its slot, and the context unwinds from its next
//! park point (at once if it is parked) with a private payload ([`Killed`],
//! [`Elapsed`]). Destructors run; the green thread's top frame or
//! `with_timeout` catches the payload.
//!
//! Three things make the delivery conditional, and each is part of one
//! state per context, [`CancelState`]:
//!
//! - **C frames** (`foreign`): inside a patched libc call an unwind would
//!   cross an `extern "C"` frame. There, a park reports the cancellation to
//!   its caller as an error (`ECANCELED`, `ETIMEDOUT` ...) and keeps it as
//!   `reported`; it becomes pending again at the next park outside such a
//!   call, and is delivered there.
//! - **An unwind in progress** (`std::thread::panicking()`, per OS thread):
//!   a second unwind from a destructor would abort. A cancellation that
//!   reaches a park point during an unwind waits; if another context's
//!   unwind is what hides it, the context is queued in the hub's
//!   `deferred` list and made runnable again once no unwind is in
//!   progress.
//! - **Thread exit** (`exiting`): a green thread's thread-local destructors
//!   run inside C frames: no cancellation is delivered any more.
//!
//! `unwinding` records that the context unwinds because of a cancellation
//! (locks use it to skip poisoning).
//!
//! # Transitions
//!
//! `P` is `pending`, `R` `reported`; `stronger` merges two cancellations (a
//! kill beats a timeout; of two timeouts the outer one wins).
//!
//! | event (method) | caused by | condition | result |
//! |---|---|---|---|
//! | arm `c` ([`CancelState::arm`]) | `Hub::cancel`: a kill, a `Timeout`'s timer, `thread::scope` | slot live | `P := stronger(P, c)` |
//! | disarm timeout `id` ([`CancelState::disarm_timeout`]) | a `Timeout` dropped | `P` or `R` is `Timeout(id)` | that one `:= None` |
//! | resurface ([`CancelState::resurface`]) | a park or yield | `foreign == 0`, the park takes cancellations | `P := stronger(P, R)`, `R := None` |
//! | park point ([`CancelState::at_park`]) | `park`, `park_raw` | not `exiting`, no unwind in progress | `unwinding := false`; `P` taken and delivered |
//! | park point during an unwind | as above | an unwind in progress, `P` set | `P` kept; queued in `deferred` |
//! | woken by a cancellation ([`CancelState::after_park`]) | the hub resumes the park | as the park point | as the park point |
//! | yield ([`CancelState::at_yield`]) | `yield_now`, the coop budget | no unwind, not `exiting`, the yield delivers | `P` taken and delivered |
//! | deliver ([`deliver`]) | a park point or `kill` of oneself | | `unwinding := true` |
//! | unwind caught ([`end_cancel_unwind`], [`note_not_unwinding`]) | `with_timeout`, locks | not panicking | `unwinding := false` |
//! | report `c` ([`CancelState::report`]) | a patched call's park took `c` | `foreign > 0` | `R := stronger(R, c)` |
//! | enter / leave a C frame | `Hub::in_foreign` | | `foreign += 1` / `-= 1` |
//! | enter / leave a shield ([`CancelState::enter_shield`]) | `crate::shield` | | `shielded += 1` / `-= 1`; while it is above 0 no park point takes `P` (a cancellation still wakes a park once, spuriously) |
//! | begin exit ([`CancelState::begin_exit`]) | `Hub::exit_thread` | | `exiting := true` |
//! | take kill ([`CancelState::take_kill`]) | the green thread's first frame | `P == Kill` | `P := None`; the body never runs |
//! | take reported kill | the green thread's body returned | | `R := None`; it counts as killed if `R` was a kill |
//! | teardown ([`CancelState::torn_down`]) | the hub's teardown | | `unwinding := true` |
//! | reset ([`CancelState::reset`]) | the slot is reaped | | all cleared |
//!
//! The hub counts the slots with a `P` (`Cancels::pending`), so the switch
//! path skips looking while it is zero, and the process counts the
//! contexts with `unwinding` set ([`CANCEL_UNWINDS`]), so locks skip
//! looking while it is zero.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::slots::State;
use super::{next_seq, try_hub, Hub, Wake, HUB_CTX};

/// A cancellation delivered at a park point by unwinding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cancel {
    /// [`GreenThread::kill`](crate::GreenThread::kill).
    Kill,
    /// The [`Timeout`](crate::Timeout) with this id expired.
    Timeout(u64),
}

/// The payload a green thread unwinds with when it is killed.
///
/// [`GreenThread::kill`](crate::GreenThread::kill) makes the target unwind
/// from its park point with this payload (eventlet's `GreenletExit`); its
/// destructors run and the green thread's own top frame catches it, so no
/// panic message is printed. [`GreenThread::join`](crate::GreenThread::join)
/// of a killed green thread returns `Err` holding it.
///
/// # Examples
/// ```
/// let gt = green::spawn(|| green::sleep(std::time::Duration::from_secs(60)));
/// green::yield_now(); // let it start sleeping
/// gt.kill();
/// let err = gt.join().unwrap_err();
/// assert!(err.is::<green::Killed>());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Killed;

impl fmt::Display for Killed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("green thread was killed")
    }
}

impl std::error::Error for Killed {}

/// The error of [`with_timeout`](crate::with_timeout), and the payload a
/// context unwinds with when its [`Timeout`](crate::Timeout) expires.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let r = green::with_timeout(Duration::from_millis(10), || {
///     green::sleep(Duration::from_secs(10));
/// });
/// assert!(r.is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed {
    id: u64,
}

impl Elapsed {
    pub(crate) fn new(id: u64) -> Elapsed {
        Elapsed { id }
    }

    /// The id of the [`Timeout`](crate::Timeout) that expired.
    pub(crate) fn id(self) -> u64 {
        self.id
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("green timeout elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(e: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}

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

/// The hub's side of cancellation.
#[derive(Default)]
pub(super) struct Cancels {
    /// Upper bound of the slots with a pending cancellation; zero means
    /// none, so the switch path can skip looking.
    pending: Cell<usize>,
    /// Contexts left parked with a pending cancellation because the OS
    /// thread was unwinding when they could have taken it (`panicking()` is
    /// per OS thread, so another context's unwind hides it). The loop makes
    /// them runnable again once no unwind is in progress.
    deferred: RefCell<Vec<(u32, u32)>>,
}

impl Cancels {
    /// Whether some context may have a pending cancellation.
    #[inline]
    pub(super) fn any_pending(&self) -> bool {
        self.pending.get() != 0
    }

    /// Whether contexts wait for an unwind to end to take theirs.
    #[inline]
    pub(super) fn any_deferred(&self) -> bool {
        !self.deferred.borrow().is_empty()
    }

    fn defer(&self, key: u32, gen: u32) {
        self.deferred.borrow_mut().push((key, gen));
    }
}

/// An `Option<Cancel>` in one word, so that a slot stays small: 0 is none,
/// `u64::MAX` a kill, anything else the id of a timeout (ids start at 1
/// and are never near `u64::MAX`).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Word(u64);

impl Word {
    const KILL: u64 = u64::MAX;

    #[inline]
    fn get(self) -> Option<Cancel> {
        match self.0 {
            0 => None,
            Word::KILL => Some(Cancel::Kill),
            id => Some(Cancel::Timeout(id)),
        }
    }

    #[inline]
    fn of(c: Option<Cancel>) -> Word {
        Word(match c {
            None => 0,
            Some(Cancel::Kill) => Word::KILL,
            Some(Cancel::Timeout(id)) => id,
        })
    }

    #[inline]
    fn is_some(self) -> bool {
        self.0 != 0
    }

    #[inline]
    fn take(&mut self) -> Option<Cancel> {
        std::mem::take(self).get()
    }
}

/// A context's cancellation state. See the module docs for its
/// transitions; every change goes through a method here.
#[derive(Default)]
pub(super) struct CancelState {
    /// Armed, to be delivered at the next park point.
    pending: Word,
    /// The context is unwinding because of a kill or timeout delivered by
    /// [`deliver`]; cleared at its next park outside an unwind. Locks use it
    /// to skip poisoning.
    unwinding: bool,
    /// How deep the context is in calls that C-ABI frames surround (the
    /// interposers of `patch`): a coroutine parked there must never be
    /// unwound, since an unwind cannot cross those frames.
    foreign: u32,
    /// A kill or timeout already reported to a C caller as an error (it
    /// could not unwind there). It becomes pending again at the context's
    /// next park point outside such a call.
    reported: Word,
    /// Its thread's exit runs (thread-local destructors): no kill or
    /// timeout is delivered to it any more (it would unwind through C
    /// frames), and teardown leaks rather than unwinds it.
    exiting: bool,
    /// How deep the context is in [`crate::shield`]s: while it is inside
    /// one, its parks and yields take no cancellation (a pending one stays
    /// pending, for the first park point after the outermost shield).
    shielded: u32,
}

/// What a park point does about a cancellation.
pub(super) enum AtPark {
    /// Nothing is to be delivered: park (or return) as usual.
    Park,
    /// Return this cancellation to be delivered.
    Deliver(Cancel),
}

impl CancelState {
    /// Arms `c`, merged with what is pending already.
    pub(super) fn arm(&mut self, cs: &Cancels, c: Cancel) {
        if !self.pending.is_some() {
            cs.pending.set(cs.pending.get() + 1);
        }
        self.pending = Word::of(Some(stronger(self.pending.get(), c)));
    }

    /// Takes the pending cancellation, keeping the hub's count in step.
    #[inline]
    fn take(&mut self, cs: &Cancels) -> Option<Cancel> {
        let c = self.pending.take();
        if c.is_some() {
            cs.pending.set(cs.pending.get() - 1);
        }
        c
    }

    pub(super) fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Forgets timeout `id`, pending or reported (its guard was dropped).
    pub(super) fn disarm_timeout(&mut self, cs: &Cancels, id: u64) {
        if self.pending.get() == Some(Cancel::Timeout(id)) {
            self.take(cs);
        }
        if self.reported.get() == Some(Cancel::Timeout(id)) {
            self.reported = Word::default();
        }
    }

    /// Outside C frames, a cancellation reported to a C caller becomes
    /// pending again.
    #[inline]
    fn resurface(&mut self, cs: &Cancels) {
        if self.foreign == 0 {
            if let Some(c) = self.reported.take() {
                self.arm(cs, c);
            }
        }
    }

    /// Whether a park that wants cancellations (`want`) takes them: not
    /// during the thread's exit.
    #[inline]
    pub(super) fn takes(&self, want: bool) -> bool {
        want && !self.exiting && self.shielded == 0
    }

    /// A park point of context `(key, gen)`, before it parks; `take` as
    /// [`takes`](Self::takes) decided.
    #[inline]
    pub(super) fn at_park(&mut self, cs: &Cancels, take: bool, key: u32, gen: u32) -> AtPark {
        if !take {
            // Left pending for the caller to deliver later.
            return AtPark::Park;
        }
        self.resurface(cs);
        // A context that is already unwinding (a destructor parks) gets
        // its cancellation at a park after the unwind: a second unwind
        // from inside a destructor would abort the process.
        if !std::thread::panicking() {
            self.set_unwinding(false);
            if let Some(c) = self.take(cs) {
                return AtPark::Deliver(c);
            }
        } else if self.pending.is_some() {
            cs.defer(key, gen);
        }
        AtPark::Park
    }

    /// The park of context `(key, gen)` was resumed; `take` as at the
    /// park. `None` if no cancellation is involved; `Some(Woken)` if a
    /// cancellation woke it that it cannot take now (a spurious wake).
    #[inline]
    pub(super) fn after_park(
        &mut self,
        cs: &Cancels,
        take: bool,
        key: u32,
        gen: u32,
    ) -> Option<Wake> {
        if !self.pending.is_some() || !take {
            return None;
        }
        if std::thread::panicking() {
            // Woken by a cancellation it cannot take now: spurious. If
            // another context's unwind is what hides it, the loop retries
            // once that unwind is over.
            cs.defer(key, gen);
            return Some(Wake::Woken);
        }
        self.take(cs).map(Wake::Cancel)
    }

    /// A yield point, before (`deliver`: the yield delivers cancellations)
    /// or after the switch; returns what to deliver.
    #[inline]
    pub(super) fn at_yield(&mut self, cs: &Cancels, deliver: bool, before: bool) -> Option<Cancel> {
        if before {
            self.resurface(cs);
        }
        if deliver
            && cs.any_pending()
            && !std::thread::panicking()
            && !self.exiting
            && self.shielded == 0
        {
            self.take(cs)
        } else {
            None
        }
    }

    /// The green thread's first frame: a kill that came before it ran.
    pub(super) fn take_kill(&mut self, cs: &Cancels) -> bool {
        if self.pending.get() == Some(Cancel::Kill) {
            self.take(cs);
            true
        } else {
            false
        }
    }

    /// The green thread's body returned: whether a kill was reported to a
    /// C caller and never delivered.
    pub(super) fn take_reported_kill(&mut self) -> bool {
        self.reported.take() == Some(Cancel::Kill)
    }

    /// Keeps `c`, reported to a C caller as an error, for a later park.
    pub(super) fn report(&mut self, c: Cancel) {
        self.reported = Word::of(Some(stronger(self.reported.get(), c)));
    }

    pub(super) fn enter_foreign(&mut self) {
        self.foreign += 1;
    }

    pub(super) fn leave_foreign(&mut self) {
        self.foreign -= 1;
    }

    /// Whether the context is inside a C frame.
    #[inline]
    pub(super) fn in_foreign(&self) -> bool {
        self.foreign > 0
    }

    pub(super) fn begin_exit(&mut self) {
        self.exiting = true;
    }

    pub(super) fn enter_shield(&mut self) {
        self.shielded += 1;
    }

    pub(super) fn leave_shield(&mut self) {
        self.shielded -= 1;
    }

    /// Teardown unwinds the context: like a kill, what it holds is not
    /// poisoned.
    pub(super) fn torn_down(&mut self) {
        self.set_unwinding(true);
    }

    /// The slot is freed.
    pub(super) fn reset(&mut self, cs: &Cancels) {
        self.take(cs);
        self.set_unwinding(false);
        self.reported = Word::default();
        self.foreign = 0;
        self.exiting = false;
        self.shielded = 0;
    }

    /// Sets `unwinding`, keeping [`CANCEL_UNWINDS`] in step.
    fn set_unwinding(&mut self, v: bool) {
        if self.unwinding != v {
            self.unwinding = v;
            if v {
                CANCEL_UNWINDS.fetch_add(1, Ordering::Relaxed);
            } else {
                CANCEL_UNWINDS.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// How many contexts, on all hubs, have their `unwinding` flag set: while
/// none has, [`note_not_unwinding`] costs one load.
static CANCEL_UNWINDS: AtomicUsize = AtomicUsize::new(0);

impl Hub {
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
        slot.cancel.arm(&self.cancels, cancel);
        if slot.state == State::Parked {
            slot.state = State::Runnable;
            slot.reason = Wake::Woken;
            slot.seq = next_seq(slot.seq);
            slots.record(key).unparked();
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
    pub(super) fn clear_pending_timeout(&self, key: u32, gen: u32, id: u64) {
        let mut slots = self.slots.borrow_mut();
        if let Some(slot) = slots.get_mut(key as usize) {
            if slot.gen == gen {
                slot.cancel.disarm_timeout(&self.cancels, id);
            }
        }
    }

    /// Makes the contexts whose cancellation was deferred by an unwind
    /// runnable again, so that their park delivers it.
    #[cold]
    pub(super) fn retry_deferred(&self) {
        let deferred = std::mem::take(&mut *self.cancels.deferred.borrow_mut());
        let mut slots = self.slots.borrow_mut();
        for (key, gen) in deferred {
            let Some(slot) = slots.get_mut(key as usize) else {
                continue;
            };
            if slot.gen == gen && slot.state == State::Parked && slot.cancel.is_pending() {
                slot.state = State::Runnable;
                slot.reason = Wake::Woken;
                slot.seq = next_seq(slot.seq);
                slots.record(key).unparked();
                // First, as `cancel` queues a kill: the cancellation is late.
                self.run_queue.borrow_mut().push_front((key, gen));
            }
        }
    }

    /// Takes a pending kill aimed at the current context, if any.
    pub(crate) fn take_kill(&self) -> bool {
        if !self.cancels.any_pending() {
            return false;
        }
        let key = self.current.get();
        self.slots.borrow_mut()[key as usize]
            .cancel
            .take_kill(&self.cancels)
    }

    /// Takes a kill that a patched libc call reported to its caller as an
    /// error and that no later park delivered: the green thread ended
    /// first, and counts as killed.
    pub(crate) fn take_foreign_kill(&self) -> bool {
        let key = self.current.get();
        self.slots.borrow_mut()[key as usize]
            .cancel
            .take_reported_kill()
    }

    /// Whether the running context may park from inside a C-ABI frame: it
    /// is a green thread or a root (not the hub itself), and the hub is not
    /// tearing down.
    #[inline]
    pub(crate) fn can_park_foreign(&self) -> bool {
        self.current.get() != HUB_CTX && !self.closing.get() && self.locks_held.get() == 0
    }

    /// Runs `f` with kills and timeouts of the current context held back:
    /// they stay pending until the first park point after it
    /// ([`crate::shield`]). On the hub itself `f` just runs.
    pub(crate) fn shield<T>(&self, f: impl FnOnce() -> T) -> T {
        if self.current.get() == HUB_CTX {
            return f();
        }
        self.bracket(CancelState::enter_shield, CancelState::leave_shield, f)
    }

    /// Runs `f` with the current context marked as being inside a C-ABI
    /// frame, so that teardown leaks rather than unwinds it if it parks
    /// there and the OS thread exits.
    pub(crate) fn in_foreign<T>(&self, f: impl FnOnce() -> T) -> T {
        self.bracket(CancelState::enter_foreign, CancelState::leave_foreign, f)
    }

    /// Runs `f` between `enter` and `leave` applied to the current
    /// context's cancellation state; `leave` also when `f` unwinds.
    fn bracket<T>(
        &self,
        enter: fn(&mut CancelState),
        leave: fn(&mut CancelState),
        f: impl FnOnce() -> T,
    ) -> T {
        struct Leave<'a>(&'a Hub, u32, fn(&mut CancelState));
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                if let Some(s) = self.0.slots.borrow_mut().get_mut(self.1 as usize) {
                    (self.2)(&mut s.cancel);
                }
            }
        }
        let key = self.current.get();
        enter(&mut self.slots.borrow_mut()[key as usize].cancel);
        let _leave = Leave(self, key, leave);
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
        self.slots.borrow_mut()[key as usize].cancel.report(c);
    }
}

/// Delivers a cancellation by unwinding from the current park point.
pub(crate) fn deliver(c: Cancel) -> ! {
    if let Some(h) = try_hub() {
        let key = h.current.get();
        if key != HUB_CTX {
            h.slots.borrow_mut()[key as usize]
                .cancel
                .set_unwinding(true);
        }
    }
    match c {
        Cancel::Kill => std::panic::resume_unwind(Box::new(Killed)),
        Cancel::Timeout(id) => std::panic::resume_unwind(Box::new(Elapsed::new(id))),
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
    key != HUB_CTX && h.slots.borrow()[key as usize].cancel.unwinding
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
            h.slots.borrow_mut()[key as usize]
                .cancel
                .set_unwinding(false);
        }
    }
}

//! Park, wake and yield: how a context leaves the CPU and comes back.
//!
//! A context parks by recording its state in its slot and switching out: a
//! green thread suspends into the loop, the root runs the loop in place
//! ([`Hub::switch_out`]). A wake names the park it ends with a [`Token`]
//! `(slot, generation, park sequence)`; a token whose sequence is
//! [`ANY_PARK`] (an unparker's) ends whichever park the context is in, or
//! makes its next one return at once.
//!
//! # A closing hub
//!
//! While its OS thread exits, the hub unwinds its parked green threads
//! (`teardown.rs`), and their destructors may park again. Nothing can run
//! the loop any more, so such a park blocks the OS thread itself, in the
//! hub's poller, until an unpark from another OS thread or the deadline
//! ([`Hub::park_closing`]): callers see an ordinary wake. Outside an unwind
//! a park on a closing hub delivers a kill. Two waits keep their own rule:
//! a sleep returns at once ([`sleep_until`]), and an fd wait ends as if the
//! fd were closed ([`park_fd`]): teardown has stopped watching fds.

use std::time::{Duration, Instant};

use super::cancel::{AtPark, Cancel};
use super::slots::State;
use super::stall::{self, Blocker, Kind};
use super::unpark::Unparker;
use super::{deliver, hub, Hub, Wake, HUB_CTX, ROOT};
use crate::coro;

/// The sequence number of a token that wakes whichever park its context is
/// in, or the next one (an [`Unparker`]'s).
pub(super) const ANY_PARK: u32 = u32::MAX;

/// The park sequence number after `s` (never [`ANY_PARK`]).
#[inline]
pub(super) fn next_seq(s: u32) -> u32 {
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
    pub(super) fn blocking_from_hub() -> ! {
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

    /// The token of an [`Unparker`] for the current context, for wakers on
    /// this hub's own thread (no reference count to take).
    pub(crate) fn local_unparker(&self) -> Token {
        Token {
            seq: ANY_PARK,
            ..self.token()
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
                slots.record(token.key).unparked();
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

    /// Parks the current context until it is woken, `deadline` passes, or a
    /// cancellation arrives. Never unwinds; see [`park`].
    #[inline(always)]
    pub(crate) fn park_raw(&self, deadline: Option<Instant>, on: Blocker) -> Wake {
        self.park_inner(deadline, true, on, false)
    }

    /// Parks like [`Hub::park_raw`] but leaves a pending kill or timeout
    /// pending: it neither returns [`Wake::Cancel`] nor refuses to park
    /// because of one. A cancellation that arrives meanwhile wakes the
    /// context once, as a spurious [`Wake::Woken`]. For waits that must not
    /// end early (a `futex` wait whose caller would spin).
    // Used only by the futex table, which `cfg(loom)` replaces by a model.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn park_keep_cancel(&self, deadline: Option<Instant>, on: Blocker) -> Wake {
        self.park_inner(deadline, false, on, false)
    }

    /// The park of all parks. With `watch`, a root parked with no deadline
    /// lets the loop prove that its wait never ends (`forever.rs`).
    #[inline(always)]
    pub(super) fn park_inner(
        &self,
        deadline: Option<Instant>,
        want_cancel: bool,
        on: Blocker,
        watch: bool,
    ) -> Wake {
        let key = self.current.get();
        if key == HUB_CTX {
            Self::blocking_from_hub();
        }
        if self.locks_held.get() != 0 {
            Self::park_under_lock();
        }
        if self.closing.get() {
            return self.park_closing(key, deadline);
        }
        let (take, gen) = {
            let mut slots = self.slots.borrow_mut();
            let slot = &mut slots[key as usize];
            let gen = slot.gen;
            // A thread's exit takes no cancellation (see `exit_thread`).
            let take = slot.cancel.takes(want_cancel);
            if let AtPark::Deliver(c) = slot.cancel.at_park(&self.cancels, take, key, gen) {
                return Wake::Cancel(c);
            }
            if slot.notified {
                slot.notified = false;
                slot.seq = next_seq(slot.seq);
                return Wake::Woken;
            }
            let mut until = 0;
            if let Some(d) = deadline {
                slot.timer = Some(self.add_wake_timer(d, key, gen, slot.seq, Wake::TimedOut));
                until = stall::nanos_since(self.epoch, d) + 1;
            }
            slot.state = State::Parked;
            // Where its stack will be touched first when it runs again.
            slot.sp_hint = coro::stack_pointer();
            slots.record(key).park(on, self.clock.get(), until);
            (take, gen)
        };
        // Not while unwinding: a destructor's wait that fails the proof
        // again would panic inside a panic.
        let watched = watch && key == ROOT && deadline.is_none() && !std::thread::panicking();
        if watched {
            let _watch = self.watch_root();
            self.switch_out(key);
        } else {
            self.switch_out(key);
        }
        let mut slots = self.slots.borrow_mut();
        let slot = &mut slots[key as usize];
        if let Some(t) = slot.timer.take() {
            self.cancel_timer(t);
        }
        slot.cancel
            .after_park(&self.cancels, take, key, gen)
            .unwrap_or(slot.reason)
    }

    /// A park on a closing hub (see the module docs): outside an unwind it
    /// delivers a kill; during one it blocks the OS thread until an unpark
    /// from another OS thread or `deadline`.
    #[cold]
    fn park_closing(&self, key: u32, deadline: Option<Instant>) -> Wake {
        if !std::thread::panicking() {
            return Wake::Cancel(Cancel::Kill);
        }
        self.block_closing(key, deadline)
    }

    /// Parks context `key` of a closing hub by blocking the OS thread in
    /// the poller until a wake from another OS thread (the only ones left)
    /// or `deadline`.
    #[cold]
    fn block_closing(&self, key: u32, deadline: Option<Instant>) -> Wake {
        {
            let mut slots = self.slots.borrow_mut();
            let slot = &mut slots[key as usize];
            if slot.notified {
                slot.notified = false;
                slot.seq = next_seq(slot.seq);
                return Wake::Woken;
            }
            slot.state = State::Parked;
        }
        loop {
            self.drain_remote();
            let now = Instant::now();
            {
                let mut slots = self.slots.borrow_mut();
                let slot = &mut slots[key as usize];
                if slot.state != State::Parked {
                    slot.state = State::Running;
                    return slot.reason;
                }
                if deadline.is_some_and(|d| now >= d) {
                    slot.state = State::Running;
                    slot.seq = next_seq(slot.seq);
                    slots.record(key).unparked();
                    return Wake::TimedOut;
                }
            }
            self.block_os_thread(deadline.map(|d| d - now));
        }
    }

    /// Blocks the OS thread until `done()`, without running the loop: for
    /// a wait that must not end before its event and cannot park, such as
    /// a tpool caller whose stack the job borrows, unwound by teardown or
    /// by a failed loop. `done` must turn true with an unpark from another
    /// OS thread (through the remote queue).
    pub(crate) fn wait_blocking(&self, done: impl Fn() -> bool) {
        loop {
            self.drain_remote();
            if done() {
                return;
            }
            self.block_os_thread(None);
        }
    }

    /// Sleeps in the poller for at most `timeout`, until a wake from
    /// another OS thread arrives; fd events are dispatched as the loop
    /// does (their waiters run when the loop runs again, if ever).
    #[cold]
    fn block_os_thread(&self, timeout: Option<Duration>) {
        use std::sync::atomic::Ordering::SeqCst;
        // The protocol of the loop's sleep (`Hub::poll`): a waker that
        // pushed before `sleeping` was set is seen here.
        self.shared.sleeping.store(true, SeqCst);
        if !self.shared.has_remote.load(SeqCst) {
            let (mut buf, mut events) = (Vec::new(), Vec::new());
            if self
                .shared
                .poller
                .wait(&mut buf, timeout, &mut events)
                .is_err()
            {
                // Look again soon rather than spin (a real sleep: under
                // `patch`, std's would ask this closing hub to park).
                let nap = timeout.map_or(Duration::from_millis(1), |t| {
                    t.min(Duration::from_millis(1))
                });
                let nap = crate::sys::time::Timespec::try_from(nap).unwrap_or_default();
                let _ = crate::sys::thread::nanosleep(&nap);
            }
            for ev in events {
                self.dispatch_fd(ev.fd, ev.readable, ev.writable, ev.hangup);
            }
        }
        self.shared.sleeping.store(false, SeqCst);
    }

    /// Leaves the current context until the hub resumes it: a green thread
    /// suspends into the loop; the root runs the loop in place.
    #[inline(always)]
    pub(super) fn switch_out(&self, key: u32) {
        if key == ROOT {
            self.run_root();
        } else if self.current_seated.get() {
            // SAFETY: `current_yielder` is the yielder of the running green
            // thread `key`: `run_green` sets it before every resume.
            unsafe { coro::suspend_recording(self.current_yielder.get(), &self.last_sp) }
        } else {
            // SAFETY: as above.
            unsafe { coro::suspend(self.current_yielder.get()) }
        }
    }

    /// Requeues the current context behind everything runnable and switches
    /// out. Delivers pending cancellations before and after.
    #[inline]
    pub(crate) fn yield_now(&self) {
        self.yield_inner(true);
    }

    #[inline(always)]
    pub(super) fn yield_inner(&self, deliver_cancel: bool) {
        let key = self.current.get();
        if key == HUB_CTX {
            Self::blocking_from_hub();
        }
        if self.locks_held.get() != 0 {
            Self::park_under_lock();
        }
        if self.closing.get() {
            return;
        }
        let gen = {
            let mut slots = self.slots.borrow_mut();
            let slot = &mut slots[key as usize];
            if let Some(c) = slot.cancel.at_yield(&self.cancels, deliver_cancel, true) {
                drop(slots);
                deliver(c);
            }
            slot.state = State::Runnable;
            slot.gen
        };
        self.run_queue.borrow_mut().push_back((key, gen));
        self.switch_out(key);
        if deliver_cancel && self.cancels.any_pending() {
            let c = self.slots.borrow_mut()[key as usize].cancel.at_yield(
                &self.cancels,
                deliver_cancel,
                false,
            );
            if let Some(c) = c {
                deliver(c);
            }
        }
    }
}

/// Parks the current context until it is unparked or `deadline` passes.
///
/// Returns [`Wake::Woken`] or [`Wake::TimedOut`]; a pending kill or timeout
/// unwinds from here instead. On a closing hub it blocks the OS thread (see
/// the module docs).
#[inline(always)]
pub(crate) fn park(deadline: Option<Instant>, on: Blocker) -> Wake {
    match hub().park_raw(deadline, on) {
        Wake::Cancel(c) => deliver(c),
        w => w,
    }
}

/// Parks the current context, queued as an fd's waiter, until it is woken,
/// `deadline` passes, or the fd is closed ([`Wake::Closed`]).
///
/// On a closing hub, while the context unwinds, it returns
/// [`Wake::Closed`] at once: teardown stopped watching fds (and hearing of
/// their closes on other threads), so the wait cannot be trusted to end.
#[inline(always)]
pub(crate) fn park_fd(deadline: Option<Instant>, on: Blocker) -> Wake {
    let h = hub();
    if h.closing.get() && std::thread::panicking() && !h.in_hub() {
        return Wake::Closed;
    }
    park(deadline, on)
}

/// Sleeps until `deadline` (green threads and the root alike); yields once
/// if it has already passed. On a closing hub, while the context unwinds,
/// it returns at once: no one is left to wait for.
///
/// # Panics
/// Panics when called from the hub itself (a timer callback).
pub(crate) fn sleep_until(deadline: Instant) {
    if Instant::now() >= deadline {
        return hub().yield_now();
    }
    sleep_to(deadline);
}

/// [`sleep_until`] for a deadline still ahead when the caller looked.
#[inline(always)]
fn sleep_to(deadline: Instant) {
    let h = hub();
    loop {
        if h.closing.get() && std::thread::panicking() && !h.in_hub() {
            return;
        }
        if park(Some(deadline), SLEEP) == Wake::TimedOut || Instant::now() >= deadline {
            return;
        }
    }
}

/// Sleeps for `dur`; `sleep(Duration::ZERO)` yields. See [`sleep_until`].
#[inline]
pub(crate) fn sleep(dur: Duration) {
    if dur.is_zero() {
        return hub().yield_now();
    }
    sleep_for(dur);
}

/// [`sleep`] for a duration that is not zero.
#[inline(never)]
fn sleep_for(dur: Duration) {
    match Instant::now().checked_add(dur) {
        // Ahead of now, since `dur` is not zero: one clock read per sleep.
        Some(deadline) => sleep_to(deadline),
        None => loop {
            let h = hub();
            if h.closing.get() && std::thread::panicking() && !h.in_hub() {
                return;
            }
            park(None, SLEEP);
        },
    }
}

/// What a sleep parks on.
const SLEEP: Blocker = Blocker::of(Kind::Sleep);

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
    !matches!(park(deadline, Blocker::of(Kind::Park)), Wake::TimedOut)
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
        park(None, Blocker::of(Kind::Park));
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

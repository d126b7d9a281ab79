//! The loop: what the hub does while no context runs.
//!
//! It runs on the root's stack ([`Hub::run_root`]) whenever the root parks,
//! until the root is runnable again: remote wakeups first, then the run
//! queue in FIFO order (each green thread runs until it parks, resumed by
//! [`Hub::run_green`]): the contexts queued when the pass began and up to
//! [`PASS_EXTRA`] queued during it; then due timers; with nothing runnable it sleeps in
//! the poller until the next timer, and each fd event wakes that fd's
//! waiters. A busy loop still looks at fd readiness every
//! [`POLL_EVERY`] passes.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::slots::State;
use super::timer::Action;
use super::{stall, Cancel, Hub, Token, Wake, HUB_CTX, ROOT};
use crate::coro::{self, Coro};

/// How many passes of a busy loop (one with something runnable every
/// time) go between two non-blocking looks at fd readiness. Prime, so
/// that it does not fall into step with a periodic pattern of the green
/// threads; small enough that a busy hub answers I/O within a few
/// thousand switches, large enough that the `epoll_wait` costs little.
const POLL_EVERY: u32 = 61;

/// How many contexts made runnable during a pass (a channel's receiver
/// woken by a send, a green thread that yields) the pass runs after those
/// queued when it began, before it fires timers and looks at remote
/// wakeups. The order stays first in, first out; a ping-pong between two
/// green threads then takes the loop's per-pass work once every
/// `PASS_EXTRA` switches instead of at every one, and timers and remote
/// wakeups wait at most that many switches more.
const PASS_EXTRA: usize = 64;

/// From how many contexts queued at the start of a pass the loop asks the
/// CPU for the next one's stack while it runs the current one
/// ([`Hub::prefetch_next`]). Below it, what the runnable contexts touch
/// stays in the CPU's caches from one pass to the next, and the prefetch
/// would only cost its instructions.
const PREFETCH_FROM: usize = 1024;

impl Hub {
    /// The loop, run on the root's stack until the root is runnable again.
    pub(super) fn run_root(&self) {
        self.current.set(HUB_CTX);
        loop {
            if self.shared.has_remote.load(Ordering::Acquire) {
                self.drain_remote();
            }
            if self.cancels.any_deferred() && !std::thread::panicking() {
                self.retry_deferred();
            }
            let mut root_ready = false;
            let n = self.run_queue.borrow().len();
            let prefetch = n > PREFETCH_FROM;
            for _ in 0..n + PASS_EXTRA {
                let next = self.run_queue.borrow_mut().pop_front();
                let Some((key, gen)) = next else { break };
                if key == ROOT {
                    root_ready = true;
                    break;
                }
                if prefetch {
                    self.prefetch_next();
                }
                self.run_green(key, gen);
            }
            if !self.timers.borrow().is_empty() {
                let now = Instant::now();
                self.refresh_clock(now);
                self.fire_timers(now);
            }
            // An unwind that hid a cancellation may have ended in this pass:
            // retry before sleeping in the poller, which nothing may wake.
            if self.cancels.any_deferred() && !std::thread::panicking() {
                self.retry_deferred();
            }
            if !root_ready && self.run_queue.borrow().is_empty() {
                let next = self.timers.borrow_mut().next_deadline();
                self.publish(next);
                let now = Instant::now();
                self.refresh_clock(now);
                let mut timeout = next.map(|d| d.saturating_duration_since(now));
                // Free stacks beyond the pool's cap give their memory back
                // once they have stayed free a while: wake up for that.
                if let Some(at) = self.stacks.borrow_mut().trim(now) {
                    let t = at.saturating_duration_since(now);
                    timeout = Some(timeout.map_or(t, |x| x.min(t)));
                }
                if next.is_none() && self.root_watched.get() {
                    match self.proves_forever() {
                        Some(true) => {
                            self.wake_root_forever();
                            continue;
                        }
                        Some(false) => {}
                        None => timeout = Some(self.forever_recheck()),
                    }
                }
                self.poll(timeout);
                self.refresh_clock(Instant::now());
            } else {
                // A busy hub (or a root that yields in a loop) still looks
                // at I/O now and then; with no fd registered there is
                // nothing to look at (remote wakeups are checked every pass).
                let t = self.ticks.get().wrapping_add(1);
                self.ticks.set(t);
                if t.is_multiple_of(POLL_EVERY) {
                    self.refresh_clock(Instant::now());
                    let next = self.timers.borrow_mut().next_deadline();
                    self.publish(next);
                    if self.io.borrow().registered() > 0 {
                        self.poll(Some(Duration::ZERO));
                    }
                }
            }
            if root_ready {
                // Timers due by now have fired (their green threads queue
                // behind the root), as eventlet's `sleep(0)` passes through
                // the hub's timers before the main greenlet resumes.
                self.slots.borrow_mut()[ROOT as usize].state = State::Running;
                self.coop.refill();
                self.current.set(ROOT);
                return;
            }
        }
    }

    /// Asks the CPU for the stack lines the next queued context will touch
    /// first when resumed, around where it last parked (`Slot::sp_hint`).
    /// After a mass wakeup — timers of many sleepers, many sockets ready at
    /// once — each context's stack has left the caches: without this, the
    /// first loads after each switch wait for memory one after the other,
    /// with it they overlap the current context's run.
    #[inline]
    fn prefetch_next(&self) {
        if let Some(&(key, _)) = self.run_queue.borrow().front() {
            let sp = self.slots.borrow()[key as usize].sp_hint;
            if sp != 0 {
                coro::prefetch_stack(sp);
            }
        }
    }

    /// Resumes green thread `key` until it parks or finishes.
    #[inline]
    fn run_green(&self, key: u32, gen: u32) {
        let (coro, yielder, info, seated, tp) = {
            let mut slots = self.slots.borrow_mut();
            let Some(slot) = slots.get_mut(key as usize) else {
                return;
            };
            if slot.gen != gen || slot.state != State::Runnable {
                return;
            }
            slot.state = State::Running;
            let g = slot
                .green
                .as_mut()
                .expect("runnable slot without a green thread");
            let seated = g.seat.is_some();
            if seated {
                drop(slots);
                self.seat(key);
                slots = self.slots.borrow_mut();
            }
            let g = slots[key as usize]
                .green
                .as_mut()
                .expect("runnable slot without a green thread");
            let coro: *mut Coro = g.coro.as_mut().expect("green thread without a coroutine");
            (coro, g.yielder, g.running_info(), seated, g.tp)
        };
        self.current.set(key);
        self.current_yielder.set(yielder);
        self.current_seated.set(seated);
        // The overflow handler keeps the last green thread's guard page
        // while the hub runs: the hub never runs on that stack.
        coro::set_running(Some(info));
        self.beat.resume(info.id);
        self.coop.refill();
        // SAFETY: the coroutine lives in its slot, which never moves (the
        // slab's chunks are fixed) and is emptied only by `reap` below,
        // after the coroutine returned. A block of its own lives as long
        // as the slot's green thread; the hub holds no thread-local
        // reference across the switch.
        let done = unsafe {
            if tp != 0 {
                crate::coro::tls::set_tp(self.fsgsbase, tp);
            }
            let done = (*coro).resume();
            if tp != 0 {
                crate::coro::tls::set_tp(self.fsgsbase, self.os_tp);
            }
            done
        };
        self.beat.back();
        self.current.set(HUB_CTX);
        if done {
            self.reap(key);
        } else if seated {
            let mut slots = self.slots.borrow_mut();
            if let Some(seat) = slots[key as usize]
                .green
                .as_mut()
                .and_then(|g| g.seat.as_mut())
            {
                seat.sp = self.last_sp.get();
            }
        }
    }

    /// Takes the wakeups and closes sent from other OS threads.
    pub(super) fn drain_remote(&self) {
        self.shared.has_remote.store(false, Ordering::SeqCst);
        if self.shared.has_closes.swap(false, Ordering::SeqCst) {
            self.drain_closes();
        }
        let mut buf = self.remote_buf.borrow_mut();
        std::mem::swap(
            &mut *buf,
            &mut *self.shared.remote.lock().unwrap_or_else(|e| e.into_inner()),
        );
        for (key, gen, seq) in buf.drain(..) {
            self.wake(Token { key, gen, seq }, Wake::Woken);
        }
        drop(buf);
        let kills =
            std::mem::take(&mut *self.shared.kills.lock().unwrap_or_else(|e| e.into_inner()));
        // A closing hub is unwinding its green threads already.
        if !self.closing.get() {
            for id in kills {
                self.kill_id(id);
            }
        }
    }

    /// Kills green thread `id` of this hub, if it still lives
    /// (`stall::kill_by_id`).
    #[cold]
    fn kill_id(&self, id: u64) {
        let found = self
            .slots
            .borrow_mut()
            .iter_mut()
            .enumerate()
            .find(|(_, s)| s.green.as_ref().is_some_and(|g| g.id == id))
            .map(|(k, s)| (k as u32, s.gen));
        if let Some((key, gen)) = found {
            self.cancel(key, gen, Cancel::Kill);
        }
    }

    /// Takes the time now as the clock of the records (when parks begin),
    /// and publishes it for dumps (`stall::Look`).
    #[inline]
    fn refresh_clock(&self, now: Instant) {
        let look = stall::Look::unpack(self.clock.get()).next(self.epoch, now);
        self.clock.set(look.pack());
        self.beat.looked(look);
    }

    /// Publishes the hub's counts for dumps from other OS threads.
    fn publish(&self, next_timer: Option<Instant>) {
        let counts = stall::Counts {
            stats: self.stats(),
            next_timer,
        };
        *self.beat.counts.lock().unwrap_or_else(|e| e.into_inner()) = Some(counts);
    }

    /// Fires the timers due at `now`.
    fn fire_timers(&self, now: Instant) {
        loop {
            let action = self.timers.borrow_mut().pop_due(now);
            match action {
                None => return,
                Some(Action::Wake {
                    key,
                    gen,
                    seq,
                    reason,
                }) => {
                    let fired = self.wake(Token { key, gen, seq }, reason);
                    if fired {
                        // The timer is spent: don't let the woken park cancel it.
                        let mut slots = self.slots.borrow_mut();
                        slots[key as usize].timer = None;
                    }
                }
                Some(Action::Cancel { key, gen, cancel }) => self.cancel(key, gen, cancel),
                Some(Action::Call(f)) => super::call::run(f),
            }
        }
    }

    /// Waits for fd events (at most `timeout`) and wakes their waiters.
    fn poll(&self, timeout: Option<Duration>) {
        let blocking = timeout != Some(Duration::ZERO);
        if blocking {
            self.shared.sleeping.store(true, Ordering::SeqCst);
            if self.shared.has_remote.load(Ordering::SeqCst) {
                self.shared.sleeping.store(false, Ordering::SeqCst);
                return;
            }
        }
        let mut events = self.events.borrow_mut();
        let (buf, out) = &mut *events;
        out.clear();
        let res = self.shared.poller.wait(buf, timeout, out);
        if blocking {
            self.shared.sleeping.store(false, Ordering::SeqCst);
        }
        if let Err(e) = res {
            panic!("green: the hub's poller failed: {e}");
        }
        for ev in out.iter() {
            self.dispatch_fd(ev.fd, ev.readable, ev.writable, ev.hangup);
        }
    }
}

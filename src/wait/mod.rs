//! Wait lists: how every coordination primitive blocks.
//!
//! A primitive (event, semaphore, queue, lock, channel) keeps its state and
//! one or more [`WaitList`]s behind one short internal lock, which is never
//! held while anyone parks. A context that must wait:
//!
//! ```text
//!  waiter                                   notifier
//!  ------                                   --------
//!  lock state
//!  condition false: list.push(value) -> node
//!  unlock state
//!  park until node.notified ------------.   lock state
//!                                        \  node = list.pop_notify(|slot| ...)
//!                                         \   (hands over a value or a permit
//!                                          \   through the node's slot, sets
//!                                           '- notified, unparks the waiter)
//!  take the slot's value                    unlock state
//! ```
//!
//! Nodes live on the heap (an `Arc`), never on a green stack: a shared-stack
//! green thread's frames move while it is parked.
//!
//! The waiter is woken through its hub when the current OS thread has one
//! (a green thread, or a root that runs the hub loop while it waits), and
//! through [`std::thread::park`] on a plain OS thread. So one primitive works
//! between green threads of one hub, across hubs, and with plain threads.
//!
//! Giving up: a waiter that times out re-takes the lock; if it was notified
//! meanwhile it keeps what it was handed (the wait succeeded after all),
//! else it leaves the list. A waiter unwound by a kill or a
//! [`Timeout`](crate::Timeout) does the same from a drop guard and hands
//! whatever it was given back to the primitive (the `abandon` callback), so
//! no permit, item or wake-up is lost to a dead waiter.

pub(crate) mod chan;

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::hub::{self, Blocker, NodeUnparker, Wake};

/// Locks an internal mutex. Internal critical sections run no user code
/// that can panic while the state is inconsistent, so poisoning is ignored.
#[inline]
pub(crate) fn lock<S>(m: &Mutex<S>) -> MutexGuard<'_, S> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a parked waiter is woken.
enum Wakeup {
    /// A green thread, or a root running its hub's loop. Kept by a node
    /// across waits; it holds its hub only while its waiter waits.
    Hub(NodeUnparker),
    /// A plain OS thread (no hub).
    Thread(std::thread::Thread),
    /// Nobody: the waiter was woken.
    Spent,
}

impl Wakeup {
    fn current() -> Wakeup {
        match hub::try_hub() {
            Some(h) => Wakeup::Hub(NodeUnparker::new(h)),
            None => Wakeup::Thread(std::thread::current()),
        }
    }

    /// Makes the wakeup name the current context, reusing what it can.
    #[inline]
    fn refresh(&mut self) {
        match (self, hub::try_hub()) {
            (Wakeup::Hub(u), Some(h)) => u.refresh(h),
            (w, _) => *w = Wakeup::current(),
        }
    }

    /// Wakes the waiter, and lets go of what names it.
    #[inline]
    fn wake(&mut self) {
        match self {
            Wakeup::Hub(u) => u.unpark_and_release(),
            Wakeup::Thread(t) => {
                t.unpark();
                *self = Wakeup::Spent;
            }
            Wakeup::Spent => {}
        }
    }
}

/// One blocked context in a [`WaitList`].
pub(crate) struct Waiter<T> {
    notified: AtomicBool,
    /// The waiter parks through its hub (else it is a plain OS thread).
    on_hub: bool,
    /// How to wake the waiter. Once it has woken the waiter it holds no
    /// hub, so that a node kept for reuse does not keep an exited OS
    /// thread's hub (its poller's fds) open, however long the primitive
    /// lives.
    ///
    /// # Invariant
    /// Accessed only by the notifier that pops the node, with the owning
    /// primitive's lock held, or with the node exclusively owned
    /// (`Arc::get_mut`, or a drop). The waiter never reads it: it may
    /// return as soon as `notified` is set, while the notifier still
    /// wakes it.
    wakeup: UnsafeCell<Wakeup>,
    /// What the waiter brings (a queued item) or is handed (an item, a
    /// value, a permit).
    ///
    /// # Invariant
    /// Accessed only with the owning primitive's lock held, or by the
    /// waiter after it has seen `notified` set (Acquire): the notifier writes
    /// the slot, then sets `notified` (Release) and never touches it again.
    slot: UnsafeCell<Option<T>>,
}

// SAFETY: the slot is reached by one thread at a time (see its invariant),
// and moving a `T` between threads needs `T: Send`.
unsafe impl<T: Send> Send for Waiter<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Waiter<T> {}

impl<T> Waiter<T> {
    fn new(value: Option<T>, wakeup: Wakeup) -> Arc<Waiter<T>> {
        Arc::new(Waiter {
            notified: AtomicBool::new(false),
            on_hub: matches!(wakeup, Wakeup::Hub(_)),
            wakeup: UnsafeCell::new(wakeup),
            slot: UnsafeCell::new(value),
        })
    }
}

impl<T> fmt::Debug for Waiter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiter")
            .field("notified", &self.notified.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A FIFO list of blocked contexts, kept inside a primitive's locked state.
pub(crate) struct WaitList<T = ()> {
    q: VecDeque<Arc<Waiter<T>>>,
    /// The node of the last waiter notified, kept to be reused by the next
    /// `push` once its waiter has let go of it: a ping-pong of two contexts
    /// then allocates nothing. Its wakeup holds no hub (see `Waiter::wakeup`).
    spare: Option<Arc<Waiter<T>>>,
}

impl<T> Default for WaitList<T> {
    fn default() -> Self {
        WaitList::new()
    }
}

impl<T> fmt::Debug for WaitList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitList")
            .field("len", &self.q.len())
            .finish()
    }
}

impl<T> WaitList<T> {
    /// An empty list; `const`, for primitives with `const` constructors.
    pub(crate) const fn new() -> Self {
        WaitList {
            q: VecDeque::new(),
            spare: None,
        }
    }

    /// How many contexts wait.
    pub(crate) fn len(&self) -> usize {
        self.q.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Appends a node for the current context, carrying `value`.
    fn push(&mut self, value: Option<T>) -> Arc<Waiter<T>> {
        // The spare is reusable only once nobody else holds it (its last
        // waiter has returned from `wait`).
        let mut spare = self.spare.take();
        let w = match spare.as_mut().and_then(Arc::get_mut) {
            Some(n) => {
                *n.notified.get_mut() = false;
                let wakeup = n.wakeup.get_mut();
                wakeup.refresh();
                n.on_hub = matches!(wakeup, Wakeup::Hub(_));
                *n.slot.get_mut() = value;
                spare.expect("looked at above")
            }
            None => Waiter::new(value, Wakeup::current()),
        };
        self.q.push_back(w.clone());
        w
    }

    /// The slot of the first waiter, to look at what it brings.
    pub(crate) fn front_slot(&mut self) -> Option<&mut Option<T>> {
        // SAFETY: `&mut self` means the owning primitive's lock is held, and
        // a queued waiter is not yet notified, so it does not read its slot.
        self.q.front().map(|w| unsafe { &mut *w.slot.get() })
    }

    /// Removes the first waiter, lets `f` fill or empty its slot, and wakes
    /// it. Returns `false` if the list was empty.
    pub(crate) fn pop_notify(&mut self, f: impl FnOnce(&mut Option<T>)) -> bool {
        let Some(w) = self.q.pop_front() else {
            return false;
        };
        // SAFETY: the lock is held (`&mut self`) and `notified` is not set
        // yet, so the waiter does not read the slot concurrently.
        f(unsafe { &mut *w.slot.get() });
        w.notified.store(true, Ordering::Release);
        // SAFETY: the lock is held and the node was queued until now:
        // only this notifier reaches its wakeup (the invariant of
        // `wakeup`).
        unsafe { &mut *w.wakeup.get() }.wake();
        self.spare = Some(w);
        true
    }

    /// Wakes every waiter, letting `f` fill each slot.
    pub(crate) fn notify_all(&mut self, mut f: impl FnMut(&mut Option<T>)) {
        while self.pop_notify(&mut f) {}
    }

    /// Removes `w` if it is still queued; `false` if it was notified.
    fn remove(&mut self, w: &Arc<Waiter<T>>) -> bool {
        match self.q.iter().rposition(|x| Arc::ptr_eq(x, w)) {
            Some(i) => {
                self.q.remove(i);
                true
            }
            None => false,
        }
    }
}

/// How a [`wait`] ended.
#[derive(Debug)]
pub(crate) enum Waited<T> {
    /// Notified; the slot's content (what the notifier handed over, or what
    /// the waiter brought if the notifier left it).
    Notified(Option<T>),
    /// The deadline passed first; the waiter left the list and gets back
    /// what it brought.
    TimedOut(Option<T>),
}

/// Appends the current context to the list `list(state)` carrying `value`,
/// releases `guard`, and parks until notified or `deadline` passes.
///
/// If the context is unwound while waiting (a kill, a [`Timeout`]
/// (crate::Timeout), thread exit), it leaves the list; if it had already
/// been notified, `abandon(state, slot)` runs under the lock to hand back
/// what it was given. Then the unwind goes on.
pub(crate) fn wait<'a, S, T>(
    lock_ref: &'a Mutex<S>,
    mut guard: MutexGuard<'a, S>,
    list: fn(&mut S) -> &mut WaitList<T>,
    value: Option<T>,
    deadline: Option<Instant>,
    abandon: fn(&mut S, Option<T>),
    on: Blocker,
) -> Waited<T> {
    /// Leaves the list (or hands back) on every exit but a notified one.
    struct Leave<'a, S, T> {
        lock: &'a Mutex<S>,
        w: Arc<Waiter<T>>,
        list: fn(&mut S) -> &mut WaitList<T>,
        abandon: fn(&mut S, Option<T>),
        armed: bool,
    }
    impl<S, T> Drop for Leave<'_, S, T> {
        fn drop(&mut self) {
            if !self.armed {
                return;
            }
            let mut g = lock(self.lock);
            if !(self.list)(&mut g).remove(&self.w) {
                // SAFETY: notified, and the lock is held: nobody else
                // touches the slot any more.
                let v = unsafe { (*self.w.slot.get()).take() };
                (self.abandon)(&mut g, v);
            }
        }
    }
    let mut leave = Leave {
        lock: lock_ref,
        w: list(&mut guard).push(value),
        list,
        abandon,
        armed: true,
    };
    drop(guard);

    match block(&leave.w, deadline, on) {
        Blocked::Notified => {
            leave.armed = false;
            // SAFETY: `notified` was seen with Acquire; the notifier is
            // done with the slot.
            Waited::Notified(unsafe { (*leave.w.slot.get()).take() })
        }
        Blocked::TimedOut => {
            // Decide under the lock whether a notification raced in.
            leave.armed = false;
            let mut g = lock(lock_ref);
            let queued = list(&mut g).remove(&leave.w);
            drop(g);
            // SAFETY: either removed (nobody else can reach the node)
            // or notified (the notifier finished under the lock just
            // taken).
            let v = unsafe { (*leave.w.slot.get()).take() };
            if queued {
                Waited::TimedOut(v)
            } else {
                Waited::Notified(v)
            }
        }
    }
}

/// Parks the current context as [`hub::park`] does; a root whose wait can
/// never end panics with "would block forever" and a dump instead
/// (`hub::park_watched`).
#[inline]
pub(crate) fn park(deadline: Option<Instant>, on: Blocker) -> Wake {
    match hub::park_watched(deadline, on) {
        Ok(w) => w,
        Err(hub::WouldBlockForever) => crate::debug::would_block_forever(on),
    }
}

/// How [`block`] ended.
enum Blocked {
    Notified,
    TimedOut,
}

/// Parks until `w` is notified or `deadline` passes. Kills and timeouts
/// unwind from here.
fn block<T>(w: &Waiter<T>, deadline: Option<Instant>, on: Blocker) -> Blocked {
    loop {
        if w.notified.load(Ordering::Acquire) {
            return Blocked::Notified;
        }
        if w.on_hub {
            // A closing hub parks by blocking the OS thread: the wakeup
            // still comes through the hub.
            if park(deadline, on) == Wake::TimedOut && !w.notified.load(Ordering::Acquire) {
                return Blocked::TimedOut;
            }
        } else {
            match deadline {
                None => std::thread::park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        if !w.notified.load(Ordering::Acquire) {
                            return Blocked::TimedOut;
                        }
                    } else {
                        std::thread::park_timeout(d - now);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Default)]
    struct State {
        permits: usize,
        list: WaitList<usize>,
    }

    fn list(s: &mut State) -> &mut WaitList<usize> {
        &mut s.list
    }

    fn give_back(s: &mut State, v: Option<usize>) {
        s.permits += v.unwrap_or(0);
    }

    const TEST: Blocker = Blocker::of(crate::hub::Kind::Semaphore);

    #[test]
    fn timed_out_waiter_leaves_the_list() {
        let m = Mutex::new(State::default());
        let g = lock(&m);
        let deadline = Instant::now() + Duration::from_millis(5);
        match wait(&m, g, list, Some(7), Some(deadline), give_back, TEST) {
            Waited::TimedOut(v) => assert_eq!(v, Some(7)),
            w => panic!("expected a timeout, got {w:?}"),
        }
        assert!(lock(&m).list.is_empty());
    }

    #[test]
    fn notify_from_a_plain_thread_hands_a_value() {
        let m = Arc::new(Mutex::new(State::default()));
        let m2 = m.clone();
        let t = std::thread::spawn(move || loop {
            let mut g = lock(&m2);
            if g.list.pop_notify(|slot| *slot = Some(42)) {
                break;
            }
            drop(g);
            std::thread::yield_now();
        });
        let g = lock(&m);
        match wait(&m, g, list, None, None, give_back, TEST) {
            Waited::Notified(v) => assert_eq!(v, Some(42)),
            w => panic!("expected a notification, got {w:?}"),
        }
        t.join().unwrap();
    }

    #[test]
    fn killed_waiter_hands_back_what_it_was_given() {
        let m = Arc::new(Mutex::new(State::default()));
        let m2 = m.clone();
        let gt = crate::spawn(move || {
            let g = lock(&m2);
            wait(&m2, g, list, None, None, give_back, TEST);
            unreachable!("killed before it could run again");
        });
        crate::yield_now(); // it parks in `wait`
        assert!(lock(&m).list.pop_notify(|slot| *slot = Some(3)));
        gt.kill(); // the kill wins: it unwinds before it sees the permits
        assert!(gt.join().unwrap_err().is::<crate::Killed>());
        let s = lock(&m);
        assert_eq!(s.permits, 3);
        assert!(s.list.is_empty());
    }
}

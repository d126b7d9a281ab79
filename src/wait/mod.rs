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
//!  park until node is notified ---------.   lock state
//!                                        \  node = list.pop_notify(|slot| ...)
//!                                         \   (hands over a value or a permit
//!                                          \   through the node's slot, moves
//!                                           \  the wakeup out, marks the node
//!                                            '- notified, unparks the waiter)
//!  take the slot's value,                   unlock state
//!  mark the node done
//! ```
//!
//! Nodes live on the heap, never on a green stack (a shared-stack green
//! thread's frames move while it is parked). The list owns them and lends
//! one to each waiter; a node is reused once its waiter has marked it done,
//! so a wait counts no references and, between two green threads of one
//! hub, makes no atomic read-modify-write of its own.
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
mod lock;
pub(crate) mod watch;

pub(crate) use lock::{Guard, Lock};

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use crate::hub::{self, Blocker, NodeUnparker, Wake};

pub(crate) use crate::hub::{lock, try_lock};

/// How a parked waiter is woken.
enum Wakeup {
    /// A green thread, or a root running its hub's loop.
    Hub(NodeUnparker),
    /// A plain OS thread (no hub).
    Thread(std::thread::Thread),
    /// Nobody: the waiter was woken.
    Spent,
}

impl Wakeup {
    /// A wakeup for the current context.
    #[inline]
    fn current() -> Wakeup {
        match hub::try_hub() {
            Some(h) => Wakeup::Hub(NodeUnparker::new(h)),
            None => Wakeup::Thread(std::thread::current()),
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

/// Where a [`Waiter`] node is in its life.
///
/// `Done → Waiting` (reused by a `push`, lock held) `→ Notified` (by a
/// notifier, lock held) `→ Done` (by its waiter, once it has taken its
/// slot). A waiter that leaves the list itself (timeout, unwind) goes
/// from `Waiting` to `Done` the same way, after taking its slot.
const WAITING: u8 = 0;
const NOTIFIED: u8 = 1;
const DONE: u8 = 2;

/// One blocked context in a [`WaitList`]: a node on the heap, owned by the
/// list and lent to one waiter at a time.
///
/// No reference count: the notifier lets go of the node as it marks it
/// notified (it has moved the wakeup out first), and the waiter lets go of
/// it by marking it done; the list reuses only done nodes and frees them
/// all when it drops (the primitive, and so its list, outlives every wait
/// on it: a waiter borrows it while it waits). On one hub a wait touches
/// the node with plain loads and stores only.
pub(crate) struct Waiter<T> {
    /// `WAITING`, `NOTIFIED` or `DONE`.
    state: AtomicU8,
    /// How to wake the waiter; moved out by the notifier before it sets
    /// `NOTIFIED`.
    ///
    /// # Invariant
    /// Accessed only with the owning primitive's lock held, or with the
    /// node done (its waiter gone).
    wakeup: UnsafeCell<Wakeup>,
    /// What the waiter brings (a queued item) or is handed (an item, a
    /// value, a permit).
    ///
    /// # Invariant
    /// Accessed only with the owning primitive's lock held, or by the
    /// waiter after it has seen `NOTIFIED` (Acquire) or left the list: the
    /// notifier writes the slot, then sets `NOTIFIED` (Release) and never
    /// touches the node again.
    slot: UnsafeCell<Option<T>>,
}

impl<T> fmt::Debug for Waiter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiter")
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A waiter's handle to its node, lent by the list for one wait.
struct Lent<T>(NonNull<Waiter<T>>);

impl<T> Lent<T> {
    fn node(&self) -> &Waiter<T> {
        // SAFETY: the list frees its nodes only when it drops, and it
        // outlives the wait that holds this handle (see `Waiter`).
        unsafe { self.0.as_ref() }
    }

    fn notified(&self) -> bool {
        self.node().state.load(Ordering::Acquire) == NOTIFIED
    }

    /// Takes the slot's content and gives the node back to the list.
    ///
    /// # Safety
    /// The node is notified (seen with Acquire) or out of the list, and
    /// this handle is not used again.
    unsafe fn finish(&self) -> Option<T> {
        let n = self.node();
        // SAFETY: the caller's condition: nobody else reaches the slot
        // (the slot's invariant).
        let v = unsafe { (*n.slot.get()).take() };
        n.state.store(DONE, Ordering::Release);
        v
    }
}

/// Most done nodes a list keeps for reuse beyond those in use.
const SPARE_MAX: usize = 8;

/// A FIFO list of blocked contexts, kept inside a primitive's locked state.
pub(crate) struct WaitList<T = ()> {
    /// Queued waiters, first in first out.
    q: VecDeque<NonNull<Waiter<T>>>,
    /// Nodes out of the queue: done, or still read by their waiter.
    ///
    /// # Invariant
    /// Every node the list made is in exactly one of `q` and `spares`, and
    /// came from `Box::into_raw`.
    spares: Vec<NonNull<Waiter<T>>>,
}

// SAFETY: the nodes are reached through the list only with the owning
// primitive's lock held (or by their waiter, as `Waiter` says); moving a
// `T` between threads needs `T: Send`.
unsafe impl<T: Send> Send for WaitList<T> {}
// SAFETY: as above; `&WaitList` gives no access to the nodes.
unsafe impl<T: Send> Sync for WaitList<T> {}

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

impl<T> Drop for WaitList<T> {
    fn drop(&mut self) {
        for n in self.q.drain(..).chain(self.spares.drain(..)) {
            // SAFETY: made by `Box::into_raw` and owned by the list (the
            // invariant of `spares`); no wait uses it any more (the list
            // outlives every wait).
            drop(unsafe { Box::from_raw(n.as_ptr()) });
        }
    }
}

impl<T> WaitList<T> {
    /// An empty list; `const`, for primitives with `const` constructors.
    pub(crate) const fn new() -> Self {
        WaitList {
            q: VecDeque::new(),
            spares: Vec::new(),
        }
    }

    /// How many contexts wait.
    pub(crate) fn len(&self) -> usize {
        self.q.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Appends a node for the current context, carrying `value`; returns
    /// it and whether the context waits through a hub.
    #[inline]
    fn push(&mut self, value: Option<T>) -> (Lent<T>, bool) {
        let wakeup = Wakeup::current();
        let on_hub = matches!(wakeup, Wakeup::Hub(_));
        let done = self.spares.iter().position(|n| {
            // SAFETY: a node of this list (the invariant of `spares`).
            unsafe { n.as_ref() }.state.load(Ordering::Acquire) == DONE
        });
        let node = match done {
            Some(i) => {
                let n = self.spares.swap_remove(i);
                // SAFETY: done: its waiter and notifier have let go, and
                // the lock is held; only this list reaches it.
                let w = unsafe { &mut *n.as_ptr() };
                *w.state.get_mut() = WAITING;
                *w.wakeup.get_mut() = wakeup;
                *w.slot.get_mut() = value;
                if self.spares.len() > SPARE_MAX {
                    self.shed();
                }
                n
            }
            None => NonNull::from(Box::leak(Box::new(Waiter {
                state: AtomicU8::new(WAITING),
                wakeup: UnsafeCell::new(wakeup),
                slot: UnsafeCell::new(value),
            }))),
        };
        self.q.push_back(node);
        (Lent(node), on_hub)
    }

    /// Frees done spares beyond [`SPARE_MAX`], after a crowd has waited.
    #[cold]
    fn shed(&mut self) {
        let mut i = 0;
        while i < self.spares.len() && self.spares.len() > SPARE_MAX {
            let n = self.spares[i];
            // SAFETY: a node of this list.
            if unsafe { n.as_ref() }.state.load(Ordering::Acquire) == DONE {
                self.spares.swap_remove(i);
                // SAFETY: done and out of the queue: nobody reaches it;
                // made by `Box::into_raw`.
                drop(unsafe { Box::from_raw(n.as_ptr()) });
            } else {
                i += 1;
            }
        }
    }

    /// The slot of the first waiter, to look at what it brings.
    pub(crate) fn front_slot(&mut self) -> Option<&mut Option<T>> {
        // SAFETY: `&mut self` means the owning primitive's lock is held, and
        // a queued waiter is not yet notified, so it does not read its slot.
        self.q
            .front()
            .map(|w| unsafe { &mut *w.as_ref().slot.get() })
    }

    /// Removes the first waiter, lets `f` fill or empty its slot, and wakes
    /// it. Returns `false` if the list was empty. Should `f` panic (a
    /// user's `Clone`), the waiter stays queued, its slot as it was.
    #[inline]
    pub(crate) fn pop_notify(&mut self, f: impl FnOnce(&mut Option<T>)) -> bool {
        let Some(&n) = self.q.front() else {
            return false;
        };
        // SAFETY: a node of this list, queued: its waiter does not touch
        // its slot or wakeup until it sees `NOTIFIED`, and the lock is held
        // (`&mut self`).
        let w = unsafe { n.as_ref() };
        // SAFETY: as above.
        f(unsafe { &mut *w.slot.get() });
        self.q.pop_front();
        self.spares.push(n);
        // SAFETY: as above.
        let mut wakeup = std::mem::replace(unsafe { &mut *w.wakeup.get() }, Wakeup::Spent);
        w.state.store(NOTIFIED, Ordering::Release);
        // The node may be reused from here on: only the moved-out wakeup
        // is used.
        wakeup.wake();
        true
    }

    /// Wakes every waiter, letting `f` fill each slot.
    pub(crate) fn notify_all(&mut self, mut f: impl FnMut(&mut Option<T>)) {
        while self.pop_notify(&mut f) {}
    }

    /// Removes `w` if it is still queued; `false` if it was notified.
    fn remove(&mut self, w: &Lent<T>) -> bool {
        match self.q.iter().rposition(|x| *x == w.0) {
            Some(i) => {
                self.q.remove(i);
                self.spares.push(w.0);
                // The waiter no longer needs to be woken.
                // SAFETY: out of the queue with the lock held: only this
                // list and the waiter (which reads only the slot) reach it.
                let _ = std::mem::replace(unsafe { &mut *w.node().wakeup.get() }, Wakeup::Spent);
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
#[inline(always)]
pub(crate) fn wait<'a, S, T>(
    lock_ref: &'a Lock<S>,
    mut guard: Guard<'a, S>,
    list: fn(&mut S) -> &mut WaitList<T>,
    value: Option<T>,
    deadline: Option<Instant>,
    abandon: fn(&mut S, Option<T>),
    on: Blocker,
) -> Waited<T> {
    /// Leaves the list (or hands back) on every exit but a notified one.
    struct Leave<'a, S, T> {
        lock: &'a Lock<S>,
        w: Lent<T>,
        list: fn(&mut S) -> &mut WaitList<T>,
        abandon: fn(&mut S, Option<T>),
        armed: bool,
    }
    impl<S, T> Drop for Leave<'_, S, T> {
        fn drop(&mut self) {
            if !self.armed {
                return;
            }
            let mut g = self.lock.lock();
            let queued = (self.list)(&mut g).remove(&self.w);
            // SAFETY: out of the list, or notified (the notifier finished
            // under the lock just taken); the handle is not used again.
            let v = unsafe { self.w.finish() };
            if !queued {
                (self.abandon)(&mut g, v);
            }
        }
    }
    let (w, on_hub) = list(&mut guard).push(value);
    let mut leave = Leave {
        lock: lock_ref,
        w,
        list,
        abandon,
        armed: true,
    };
    drop(guard);

    match block(&leave.w, on_hub, deadline, on) {
        Blocked::Notified => {
            leave.armed = false;
            // SAFETY: `NOTIFIED` was seen with Acquire; the notifier is
            // done with the node.
            Waited::Notified(unsafe { leave.w.finish() })
        }
        Blocked::TimedOut => {
            // Decide under the lock whether a notification raced in.
            leave.armed = false;
            let mut g = lock_ref.lock();
            let queued = list(&mut g).remove(&leave.w);
            drop(g);
            // SAFETY: either removed (nobody else can reach the node)
            // or notified (the notifier finished under the lock just
            // taken).
            let v = unsafe { leave.w.finish() };
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
#[inline(always)]
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

/// Parks until `w` is notified or `deadline` passes, through the hub if
/// `on_hub`, else as a plain OS thread. Kills and timeouts unwind from here.
#[inline(always)]
fn block<T>(w: &Lent<T>, on_hub: bool, deadline: Option<Instant>, on: Blocker) -> Blocked {
    loop {
        if w.notified() {
            return Blocked::Notified;
        }
        if on_hub {
            // A closing hub parks by blocking the OS thread: the wakeup
            // still comes through the hub.
            if park(deadline, on) == Wake::TimedOut && !w.notified() {
                return Blocked::TimedOut;
            }
        } else {
            match deadline {
                None => std::thread::park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        if !w.notified() {
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
    use std::sync::Arc;
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
        let m = Lock::new(State::default());
        let g = m.lock();
        let deadline = Instant::now() + Duration::from_millis(5);
        match wait(&m, g, list, Some(7), Some(deadline), give_back, TEST) {
            Waited::TimedOut(v) => assert_eq!(v, Some(7)),
            w => panic!("expected a timeout, got {w:?}"),
        }
        assert!(m.lock().list.is_empty());
    }

    #[test]
    fn notify_from_a_plain_thread_hands_a_value() {
        let m = Arc::new(Lock::new(State::default()));
        let m2 = m.clone();
        let t = std::thread::spawn(move || loop {
            let mut g = m2.lock();
            if g.list.pop_notify(|slot| *slot = Some(42)) {
                break;
            }
            drop(g);
            std::thread::yield_now();
        });
        let g = m.lock();
        match wait(&m, g, list, None, None, give_back, TEST) {
            Waited::Notified(v) => assert_eq!(v, Some(42)),
            w => panic!("expected a notification, got {w:?}"),
        }
        t.join().unwrap();
    }

    #[test]
    fn killed_waiter_hands_back_what_it_was_given() {
        let m = Arc::new(Lock::new(State::default()));
        let m2 = m.clone();
        let gt = crate::spawn(move || {
            let g = m2.lock();
            wait(&m2, g, list, None, None, give_back, TEST);
            unreachable!("killed before it could run again");
        });
        crate::yield_now(); // it parks in `wait`
        assert!(m.lock().list.pop_notify(|slot| *slot = Some(3)));
        gt.kill(); // the kill wins: it unwinds before it sees the permits
        assert!(gt.join().unwrap_err().is::<crate::Killed>());
        let s = m.lock();
        assert_eq!(s.permits, 3);
        assert!(s.list.is_empty());
    }
}

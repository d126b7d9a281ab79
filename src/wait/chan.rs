//! The channel core behind [`queue`](crate::queue) and
//! [`sync::mpsc`](crate::sync::mpsc): Go-channel style direct handoff.
//!
//! A channel is an item store (FIFO, LIFO or priority) plus two
//! [`WaitList`]s, all behind one internal lock:
//!
//! ```text
//!   putters (each carries its item)       store            getters (empty slots)
//!   [p3: c] [p2: b]  --- when room --->  [a ...]  --->  handed to [g1] [g2]
//! ```
//!
//! - `get`: pop from the store, then move the first waiting putter's item
//!   into the room just made; with an empty store take the item straight
//!   from a waiting putter's slot (the rendezvous of a zero-sized channel);
//!   else wait as a getter.
//! - `put`: hand the item straight to the first waiting getter; else push it
//!   if the store has room; else wait as a putter carrying the item.
//!
//! Two invariants make the order fair and the waits short:
//!
//! 1. putters wait only while the store is full (`len >= maxsize`);
//! 2. getters wait only while the store is empty and no putter waits.
//!
//! A waiter that times out gets back what it brought. A waiter unwound by a
//! kill or a [`Timeout`](crate::Timeout) after it was served hands what it
//! was given back: a getter's item goes to the next getter, or to the front
//! of the store (it is the next item out); a putter whose item was taken has
//! nothing to give back. User code never runs under the lock, except a
//! priority store's `Ord`, which must compare.

use crate::hub::{Blocker, Kind};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use crate::wait::watch::{Watchable, Watched, Watchers};
use crate::wait::{self, Lock, WaitList, Waited};

/// Where a channel keeps the items nobody has taken yet.
pub(crate) trait Store<T>: Default {
    /// How many items are stored.
    fn len(&self) -> usize;
    /// Stores an item.
    fn push(&mut self, item: T);
    /// Takes the next item out.
    fn pop(&mut self) -> Option<T>;
    /// Puts back an item taken by [`pop`](Store::pop) so that it is the
    /// next one out again.
    fn unpop(&mut self, item: T);
}

/// First in, first out.
#[derive(Debug)]
pub(crate) struct Fifo<T>(VecDeque<T>);

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo(VecDeque::new())
    }
}

impl<T> Store<T> for Fifo<T> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn push(&mut self, item: T) {
        self.0.push_back(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop_front()
    }
    fn unpop(&mut self, item: T) {
        self.0.push_front(item);
    }
}

/// Last in, first out.
#[derive(Debug)]
pub(crate) struct Lifo<T>(Vec<T>);

impl<T> Default for Lifo<T> {
    fn default() -> Self {
        Lifo(Vec::new())
    }
}

impl<T> Store<T> for Lifo<T> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn push(&mut self, item: T) {
        self.0.push(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn unpop(&mut self, item: T) {
        self.0.push(item);
    }
}

/// Smallest first, as Python's and eventlet's `PriorityQueue`.
#[derive(Debug)]
pub(crate) struct Prio<T>(BinaryHeap<Reverse<T>>);

impl<T: Ord> Default for Prio<T> {
    fn default() -> Self {
        Prio(BinaryHeap::new())
    }
}

impl<T: Ord> Store<T> for Prio<T> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn push(&mut self, item: T) {
        self.0.push(Reverse(item));
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop().map(|Reverse(item)| item)
    }
    fn unpop(&mut self, item: T) {
        self.0.push(Reverse(item));
    }
}

/// How long an operation may wait.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Block {
    /// Not at all.
    No,
    /// Until this instant.
    Until(Instant),
    /// As long as it takes.
    Forever,
}

impl Block {
    /// Waiting at most `timeout` from now.
    pub(crate) fn timeout(timeout: Duration) -> Block {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => Block::Until(deadline),
            None => Block::Forever,
        }
    }
}

/// Why a `get` returned no item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GetFail {
    /// Nothing to take, and it could not (or would no longer) wait.
    Empty,
    /// Nothing to take, and every putting side has closed.
    Closed,
}

/// Why a `put` did not deliver its item; the item comes back.
#[derive(Debug)]
pub(crate) enum PutFail<T> {
    /// No room, and it could not (or would no longer) wait.
    Full(T),
    /// The getting side has closed.
    Closed(T),
}

struct State<T, St> {
    store: St,
    /// `None`: unbounded. `Some(0)`: rendezvous.
    maxsize: Option<usize>,
    /// Blocked getters; a slot receives the item handed over.
    ///
    /// # Invariant
    /// Non-empty only while `store` is empty and `putters` is empty.
    getters: WaitList<T>,
    /// Blocked putters; a slot holds the putter's item until it is taken.
    ///
    /// # Invariant
    /// Non-empty only while `store` is full (`len >= maxsize`), and every
    /// queued slot holds an item.
    putters: WaitList<T>,
    /// Contexts blocked in `join`.
    joiners: WaitList<()>,
    /// Whether to count unfinished tasks.
    track: bool,
    /// Items accepted and not yet marked done (when `track`).
    unfinished: usize,
    /// Every putting side has gone: an empty channel stays empty.
    putters_closed: bool,
    /// The getting side has gone: puts fail.
    getters_closed: bool,
    /// Waits on many ([`crate::wait_any`]) that watch for an item to take.
    watchers: Watchers,
}

impl<T, St: Store<T>> State<T, St> {
    /// Whether a `get` now would not wait: an item is stored or carried by
    /// a waiting putter, or the putting side has closed.
    fn gettable(&self) -> bool {
        self.store.len() > 0 || !self.putters.is_empty() || self.putters_closed
    }

    fn has_room(&self) -> bool {
        self.maxsize.is_none_or(|max| self.store.len() < max)
    }

    /// An item has left its putter for good.
    fn accepted(&mut self) {
        if self.track {
            self.unfinished += 1;
        }
    }

    /// Takes the first waiting putter's item and wakes that putter.
    fn take_from_putter(&mut self) -> Option<T> {
        let item = self.putters.front_slot()?.take();
        self.putters.pop_notify(|_| {});
        if item.is_some() {
            self.accepted();
        }
        item
    }

    /// Moves waiting putters' items into the store while it has room.
    fn refill(&mut self) {
        while !self.putters.is_empty() && self.has_room() {
            // The putter is woken before its item reaches the store: should
            // a priority store's `Ord` panic, no waiter is left stranded.
            if let Some(item) = self.take_from_putter() {
                self.store.push(item);
            }
        }
    }

    /// The next item: from the store (refilled from waiting putters), else
    /// straight from a waiting putter.
    fn next_item(&mut self) -> Option<T> {
        match self.store.pop() {
            Some(item) => {
                self.refill();
                Some(item)
            }
            None => self.take_from_putter(),
        }
    }
}

fn getters<T, St>(s: &mut State<T, St>) -> &mut WaitList<T> {
    &mut s.getters
}

fn putters<T, St>(s: &mut State<T, St>) -> &mut WaitList<T> {
    &mut s.putters
}

fn joiners<T, St>(s: &mut State<T, St>) -> &mut WaitList<()> {
    &mut s.joiners
}

/// A getter unwound after it was handed `item`: the item goes to the next
/// getter, else back to the front of the store (even past `maxsize`).
fn getter_gone<T, St: Store<T>>(s: &mut State<T, St>, item: Option<T>) {
    let Some(item) = item else { return };
    let mut item = Some(item);
    if !s.getters.pop_notify(|slot| *slot = item.take()) {
        if let Some(item) = item {
            s.store.unpop(item);
            s.watchers.fire();
        }
    }
}

/// A putter unwound after it was notified. Its item was taken (nothing to
/// do), or handed back because the getting side closed: then the item
/// stays in the store, never to be taken, and is dropped with the channel
/// (not here, under the lock).
fn putter_gone<T, St: Store<T>>(s: &mut State<T, St>, item: Option<T>) {
    if let Some(item) = item {
        s.store.push(item);
    }
}

fn joiner_gone<T, St>(_: &mut State<T, St>, _: Option<()>) {}

/// A channel: state behind one lock. Handles share it through an `Arc`.
pub(crate) struct Chan<T, St> {
    state: Lock<State<T, St>>,
    /// What a getter and a putter wait on, as a dump shows it.
    kinds: (Kind, Kind),
}

impl<T, St: Store<T>> Chan<T, St> {
    /// A channel holding at most `maxsize` items (`None`: no limit), which
    /// counts unfinished tasks if `track`.
    /// `mpsc` says which kind of channel it is in a dump.
    pub(crate) fn new(maxsize: Option<usize>, track: bool, mpsc: bool) -> Self {
        Chan {
            kinds: if mpsc {
                (Kind::MpscRecv, Kind::MpscSend)
            } else {
                (Kind::QueueGet, Kind::QueuePut)
            },
            state: Lock::new(State {
                store: St::default(),
                maxsize,
                getters: WaitList::default(),
                putters: WaitList::default(),
                joiners: WaitList::default(),
                track,
                unfinished: 0,
                putters_closed: false,
                getters_closed: false,
                watchers: Watchers::new(),
            }),
        }
    }

    /// Delivers `item`, waiting for room as `block` allows.
    #[inline(always)]
    pub(crate) fn put(&self, item: T, block: Block) -> Result<(), PutFail<T>> {
        crate::hub::coop_spend();
        let mut item = item;
        let mut s = self.state.lock();
        loop {
            if s.getters_closed {
                return Err(PutFail::Closed(item));
            }
            let mut hand = Some(item);
            if s.getters.pop_notify(|slot| *slot = hand.take()) {
                s.accepted();
                return Ok(());
            }
            item = hand.expect("no getter took the item");
            if s.has_room() {
                debug_assert!(s.putters.is_empty(), "putters wait only while full");
                s.accepted();
                s.store.push(item);
                s.watchers.fire();
                return Ok(());
            }
            let deadline = match block {
                Block::No => return Err(PutFail::Full(item)),
                Block::Until(d) => Some(d),
                Block::Forever => None,
            };
            // A waiting putter's item can be taken.
            s.watchers.fire();
            let on = Blocker::at(self.kinds.1, &self.state);
            match wait::wait(
                &self.state,
                s,
                putters,
                Some(item),
                deadline,
                putter_gone,
                on,
            ) {
                Waited::Notified(None) => return Ok(()),
                // Handed back: the getting side closed; look again.
                Waited::Notified(Some(back)) => item = back,
                Waited::TimedOut(back) => {
                    return Err(PutFail::Full(
                        back.expect("a waiting putter keeps its item"),
                    ))
                }
            }
            s = self.state.lock();
        }
    }

    /// Takes the next item, waiting for one as `block` allows.
    #[inline(always)]
    pub(crate) fn get(&self, block: Block) -> Result<T, GetFail> {
        crate::hub::coop_spend();
        let mut s = self.state.lock();
        loop {
            if let Some(item) = s.next_item() {
                return Ok(item);
            }
            if s.putters_closed {
                return Err(GetFail::Closed);
            }
            let deadline = match block {
                Block::No => return Err(GetFail::Empty),
                Block::Until(d) => Some(d),
                Block::Forever => None,
            };
            let on = Blocker::at(self.kinds.0, &self.state);
            match wait::wait(&self.state, s, getters, None, deadline, getter_gone, on) {
                Waited::Notified(Some(item)) => return Ok(item),
                // Woken empty-handed: the putting side closed; look again.
                Waited::Notified(None) => {}
                Waited::TimedOut(_) => return Err(GetFail::Empty),
            }
            s = self.state.lock();
        }
    }

    /// How many items are stored (not counting those blocked putters carry).
    pub(crate) fn len(&self) -> usize {
        self.state.lock().store.len()
    }

    /// Whether a `put` now would have to wait (or fail without waiting).
    pub(crate) fn is_full(&self) -> bool {
        let s = self.state.lock();
        !s.has_room()
    }

    pub(crate) fn maxsize(&self) -> Option<usize> {
        self.state.lock().maxsize
    }

    /// Changes the limit; items that now fit move in from waiting putters.
    pub(crate) fn resize(&self, maxsize: Option<usize>) {
        let mut s = self.state.lock();
        s.maxsize = maxsize;
        s.refill();
    }

    /// How many contexts wait in `get`.
    pub(crate) fn getting(&self) -> usize {
        self.state.lock().getters.len()
    }

    /// What a wait on many ([`crate::wait_any`]) watches: ready while a
    /// `get` would not wait.
    pub(crate) fn watched(&self) -> &dyn Watchable {
        &self.state
    }

    /// How many waits on many ([`crate::wait_any`]) watch the channel.
    pub(crate) fn watching(&self) -> usize {
        self.state.lock().watchers.len()
    }

    /// How many contexts wait in `put`.
    pub(crate) fn putting(&self) -> usize {
        self.state.lock().putters.len()
    }

    /// Marks one accepted item as processed.
    ///
    /// # Panics
    /// If every accepted item has been marked already.
    pub(crate) fn task_done(&self) {
        let mut s = self.state.lock();
        if s.unfinished == 0 {
            drop(s);
            panic!("task_done() called more times than there were items");
        }
        s.unfinished -= 1;
        if s.unfinished == 0 {
            s.joiners.notify_all(|_| {});
        }
    }

    /// Waits until every accepted item has been marked done.
    pub(crate) fn join(&self) {
        let mut s = self.state.lock();
        while s.unfinished > 0 {
            let on = Blocker::at(Kind::QueueJoin, &self.state);
            wait::wait(&self.state, s, joiners, None, None, joiner_gone, on);
            s = self.state.lock();
        }
    }

    /// The putting side has gone: waiting getters wake and find the
    /// channel closed once it is empty.
    pub(crate) fn close_putters(&self) {
        let mut s = self.state.lock();
        s.putters_closed = true;
        s.getters.notify_all(|_| {});
        s.watchers.fire();
    }

    /// The getting side has gone: waiting putters get their items back,
    /// later puts fail. Returns the stored items, for the caller to drop
    /// outside the lock.
    pub(crate) fn close_getters(&self) -> St {
        let mut s = self.state.lock();
        s.getters_closed = true;
        s.putters.notify_all(|_| {});
        std::mem::take(&mut s.store)
    }
}

/// Ready while a `get` would not wait.
impl<T, St: Store<T>> Watched for State<T, St> {
    fn is_ready(&self) -> bool {
        self.gettable()
    }

    fn watchers(&mut self) -> &mut Watchers {
        &mut self.watchers
    }
}

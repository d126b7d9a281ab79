//! The hub's timer heap.
//!
//! Timers are ordered by `(deadline, sequence number)`, so timers with equal
//! deadlines fire in the order they were added. Cancelling is lazy, as in
//! eventlet: the entry is freed at once but its node stays until it
//! reaches the front, or until cancelled nodes outnumber live timers, when
//! the nodes are rebuilt without them (eventlet's `timers_canceled` rule).
//!
//! A timer whose deadline is not before the last one added in order goes
//! to the back of a sorted queue (the *lane*) instead of the heap: many
//! green threads sleeping or waiting for the same duration add their
//! timers in deadline order, and take them back in O(1) each instead of a
//! heap's O(log n) walk through memory. The earliest timer is at the front
//! of the lane or at the top of the heap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::time::Instant;

use super::{Cancel, Hub, Wake};

/// What a timer does when it fires.
pub(super) enum Action {
    /// Wake the context `key` (of generation `gen`) if it is still parked
    /// in park number `seq`.
    Wake {
        key: u32,
        gen: u32,
        seq: u32,
        reason: Wake,
    },
    /// Deliver a cancellation (kill or timeout) to a context.
    Cancel { key: u32, gen: u32, cancel: Cancel },
    /// Run a callback on the hub ([`call_at`](super::call_at)).
    Call(Box<dyn FnOnce()>),
}

/// Names one timer, to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerId {
    index: u32,
    seq: u64,
}

struct Entry {
    seq: u64,
    action: Option<Action>,
}

/// A timer's place in the order: `(deadline, seq, entry index)`.
type Node = (Instant, u64, u32);

/// The hub's timers: a heap and a sorted lane.
///
/// # Invariant
/// Every live timer has exactly one node, in `heap` or in `lane`, with its
/// `seq`, and `entries[index].seq == seq` with `action` set. `lane` is
/// sorted by `(deadline, seq)`. `cancelled` counts the nodes whose entry is
/// gone.
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<Node>>,
    lane: VecDeque<Node>,
    entries: Vec<Entry>,
    free: Vec<u32>,
    live: usize,
    cancelled: usize,
    next_seq: u64,
}

impl fmt::Debug for Timers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timers")
            .field("live", &self.live)
            .field("cancelled", &self.cancelled)
            .finish()
    }
}

impl Timers {
    pub(super) fn new() -> Timers {
        Timers {
            heap: BinaryHeap::new(),
            lane: VecDeque::new(),
            entries: Vec::new(),
            free: Vec::new(),
            live: 0,
            cancelled: 0,
            next_seq: 0,
        }
    }

    /// Number of live (not fired, not cancelled) timers.
    pub(super) fn len(&self) -> usize {
        self.live
    }

    pub(super) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Adds a timer that fires `action` at `deadline`.
    pub(super) fn add(&mut self, deadline: Instant, action: Action) -> TimerId {
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = Entry {
            seq,
            action: Some(action),
        };
        let index = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = entry;
                i
            }
            None => {
                self.entries.push(entry);
                (self.entries.len() - 1) as u32
            }
        };
        // `seq` grows, so a deadline not before the lane's last keeps the
        // lane sorted.
        if self
            .lane
            .back()
            .is_none_or(|&(last, _, _)| last <= deadline)
        {
            self.lane.push_back((deadline, seq, index));
        } else {
            self.heap.push(Reverse((deadline, seq, index)));
        }
        self.live += 1;
        TimerId { index, seq }
    }

    /// Cancels a timer; returns its action if it was still pending (for
    /// the caller to drop once the heap is no longer borrowed: a
    /// callback's captures may run code of their own as they drop).
    pub(super) fn cancel(&mut self, id: TimerId) -> Option<Action> {
        let entry = self.entries.get_mut(id.index as usize)?;
        if entry.seq != id.seq || entry.action.is_none() {
            return None;
        }
        let action = entry.action.take();
        self.free.push(id.index);
        self.live -= 1;
        self.cancelled += 1;
        if self.cancelled > 1024 && self.cancelled > self.live {
            self.compact();
        }
        action
    }

    /// Rebuilds the heap and the lane without the nodes of cancelled timers.
    fn compact(&mut self) {
        let entries = &self.entries;
        let live = |&(_, seq, index): &Node| {
            let e = &entries[index as usize];
            e.seq == seq && e.action.is_some()
        };
        let heap = std::mem::take(&mut self.heap);
        self.heap = heap.into_vec().into_iter().filter(|n| live(&n.0)).collect();
        self.lane.retain(live);
        self.cancelled = 0;
    }

    /// The earliest node, live or not, and whether it is in the lane.
    #[inline]
    fn front(&self) -> Option<(Node, bool)> {
        match (self.lane.front(), self.heap.peek()) {
            (Some(&l), Some(&Reverse(h))) => Some(if l <= h { (l, true) } else { (h, false) }),
            (Some(&l), None) => Some((l, true)),
            (None, Some(&Reverse(h))) => Some((h, false)),
            (None, None) => None,
        }
    }

    /// Removes the earliest node (the one [`Timers::front`] named).
    #[inline]
    fn remove_front(&mut self, in_lane: bool) {
        if in_lane {
            self.lane.pop_front();
        } else {
            self.heap.pop();
        }
    }

    /// Drops the nodes of cancelled timers from the front; returns the
    /// earliest live node and where it is.
    fn live_front(&mut self) -> Option<(Node, bool)> {
        loop {
            let (node @ (_, seq, index), in_lane) = self.front()?;
            let e = &self.entries[index as usize];
            if e.seq == seq && e.action.is_some() {
                return Some((node, in_lane));
            }
            self.remove_front(in_lane);
            self.cancelled = self.cancelled.saturating_sub(1);
        }
    }

    /// The earliest deadline of a live timer.
    pub(super) fn next_deadline(&mut self) -> Option<Instant> {
        self.live_front().map(|((d, _, _), _)| d)
    }

    /// Removes and returns the action of the earliest timer due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Action> {
        let ((deadline, _, index), in_lane) = self.live_front()?;
        if deadline > now {
            return None;
        }
        self.remove_front(in_lane);
        let action = self.entries[index as usize].action.take();
        self.free.push(index);
        self.live -= 1;
        action
    }
}

impl Hub {
    /// Adds a timer that wakes context `(key, gen)` from park number `seq`
    /// with `reason` at `deadline`.
    pub(super) fn add_wake_timer(
        &self,
        deadline: Instant,
        key: u32,
        gen: u32,
        seq: u32,
        reason: Wake,
    ) -> TimerId {
        self.timers.borrow_mut().add(
            deadline,
            Action::Wake {
                key,
                gen,
                seq,
                reason,
            },
        )
    }

    /// Cancels a timer; returns whether it was still pending.
    pub(super) fn cancel_timer(&self, id: TimerId) -> bool {
        let action = self.timers.borrow_mut().cancel(id);
        action.is_some()
    }

    /// Arms timeout `id` for the current context: at `deadline` it is
    /// delivered like a kill ([`Hub::cancel`]).
    ///
    /// # Panics
    /// Panics when called from the hub itself (a timer callback).
    pub(crate) fn arm_timeout(&self, deadline: Instant, id: u64) -> ArmedTimeout {
        let token = self.token();
        let timer = self.timers.borrow_mut().add(
            deadline,
            Action::Cancel {
                key: token.key,
                gen: token.gen,
                cancel: Cancel::Timeout(id),
            },
        );
        ArmedTimeout {
            key: token.key,
            gen: token.gen,
            id,
            timer,
        }
    }

    /// Disarms a timeout: its timer is cancelled and, if it expired
    /// already, its cancellation is forgotten. Returns whether the timer
    /// was still pending.
    pub(crate) fn disarm_timeout(&self, t: &ArmedTimeout) -> bool {
        let pending = self.cancel_timer(t.timer);
        self.clear_pending_timeout(t.key, t.gen, t.id);
        pending
    }
}

/// A timeout armed by [`Hub::arm_timeout`].
#[derive(Debug)]
pub(crate) struct ArmedTimeout {
    key: u32,
    gen: u32,
    id: u64,
    timer: TimerId,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn wake(key: u32) -> Action {
        Action::Wake {
            key,
            gen: 0,
            seq: 0,
            reason: Wake::Woken,
        }
    }

    fn key_of(a: Action) -> u32 {
        match a {
            Action::Wake { key, .. } => key,
            Action::Cancel { key, .. } => key,
            Action::Call(_) => u32::MAX,
        }
    }

    #[test]
    fn equal_deadlines_fire_fifo() {
        let mut t = Timers::new();
        let d = Instant::now();
        for k in 0..100 {
            t.add(d, wake(k));
        }
        let order: Vec<u32> = std::iter::from_fn(|| t.pop_due(d).map(key_of)).collect();
        assert_eq!(order, (0..100).collect::<Vec<_>>());
        assert!(t.is_empty());
    }

    #[test]
    fn equal_deadlines_fire_fifo_across_lane_and_heap() {
        let mut t = Timers::new();
        let d = Instant::now();
        let later = d + Duration::from_millis(5);
        // 0 goes to the lane; 1, earlier, to the heap; 2 to the lane
        // again; 3 to the heap.
        t.add(later, wake(0));
        t.add(d, wake(1));
        t.add(later, wake(2));
        t.add(d, wake(3));
        assert_eq!((t.lane.len(), t.heap.len()), (2, 2));
        assert_eq!(t.next_deadline(), Some(d));
        assert!(t.pop_due(d - Duration::from_millis(1)).is_none());
        let order: Vec<u32> = std::iter::from_fn(|| t.pop_due(later).map(key_of)).collect();
        assert_eq!(order, [1, 3, 0, 2]);
    }

    #[test]
    fn mixed_order_fires_sorted_with_cancels() {
        // Runs of increasing deadlines (the lane's case) broken by earlier
        // ones (the heap's), some cancelled, against a sorted reference.
        let mut t = Timers::new();
        let base = Instant::now();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rand = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut expected: Vec<(u64, u32)> = Vec::new();
        let mut ids = Vec::new();
        let mut at = 0u64;
        for k in 0..20_000u32 {
            at = if rand(10) == 0 {
                rand(at + 1)
            } else {
                at + rand(3)
            };
            ids.push((t.add(base + Duration::from_micros(at), wake(k)), at, k));
        }
        for (i, &(id, at, k)) in ids.iter().enumerate() {
            if i % 5 == 2 {
                assert!(t.cancel(id).is_some());
            } else {
                expected.push((at, k));
            }
        }
        assert!(!t.lane.is_empty() && !t.heap.is_empty(), "both used");
        expected.sort();
        assert_eq!(t.len(), expected.len());
        let fired: Vec<u32> =
            std::iter::from_fn(|| t.pop_due(base + Duration::from_secs(1)).map(key_of)).collect();
        assert_eq!(fired, expected.iter().map(|&(_, k)| k).collect::<Vec<_>>());
        assert!(t.is_empty() && t.next_deadline().is_none());
    }

    #[test]
    fn cancelled_never_fire_and_compaction_keeps_live() {
        let mut t = Timers::new();
        let now = Instant::now();
        let ids: Vec<TimerId> = (0..5000)
            .map(|k| t.add(now + Duration::from_millis(k as u64 % 7), wake(k)))
            .collect();
        for (k, id) in ids.iter().enumerate() {
            if k % 3 != 0 {
                assert!(t.cancel(*id).is_some());
            }
        }
        assert!(
            t.cancel(ids[1]).is_none(),
            "second cancel reports nothing pending"
        );
        assert_eq!(t.len(), (0..5000).filter(|k| k % 3 == 0).count());
        let mut fired: Vec<u32> = Vec::new();
        while let Some(a) = t.pop_due(now + Duration::from_secs(1)) {
            fired.push(key_of(a));
        }
        assert!(fired.iter().all(|k| k % 3 == 0));
        assert_eq!(fired.len(), 1667);
        assert!(t.next_deadline().is_none());
    }
}

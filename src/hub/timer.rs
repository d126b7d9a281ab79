//! The hub's timer heap.
//!
//! Timers are ordered by `(deadline, sequence number)`, so timers with equal
//! deadlines fire in the order they were added. Cancelling is lazy, as in
//! eventlet: the entry is freed at once but its heap node stays until it
//! reaches the top, or until cancelled nodes outnumber live timers, when the
//! heap is rebuilt without them (eventlet's `timers_canceled` rule).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
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

/// A heap of timers.
///
/// # Invariant
/// Every live timer has exactly one node in `heap` with its `seq`, and
/// `entries[index].seq == seq` with `action` set. `cancelled` counts the heap
/// nodes whose entry is gone.
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, u32)>>,
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
        self.heap.push(Reverse((deadline, seq, index)));
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

    /// Rebuilds the heap without the nodes of cancelled timers.
    fn compact(&mut self) {
        let entries = &self.entries;
        let heap = std::mem::take(&mut self.heap);
        self.heap = heap
            .into_vec()
            .into_iter()
            .filter(|Reverse((_, seq, index))| {
                let e = &entries[*index as usize];
                e.seq == *seq && e.action.is_some()
            })
            .collect();
        self.cancelled = 0;
    }

    /// Drops cancelled nodes from the top of the heap.
    fn skip_cancelled(&mut self) {
        while let Some(Reverse((_, seq, index))) = self.heap.peek() {
            let e = &self.entries[*index as usize];
            if e.seq == *seq && e.action.is_some() {
                return;
            }
            self.heap.pop();
            self.cancelled = self.cancelled.saturating_sub(1);
        }
    }

    /// The earliest deadline of a live timer.
    pub(super) fn next_deadline(&mut self) -> Option<Instant> {
        self.skip_cancelled();
        self.heap.peek().map(|Reverse((d, _, _))| *d)
    }

    /// Removes and returns the action of the earliest timer due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Action> {
        self.skip_cancelled();
        let Reverse((deadline, _, index)) = *self.heap.peek()?;
        if deadline > now {
            return None;
        }
        self.heap.pop();
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

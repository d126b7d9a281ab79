//! A model copy, checked with `loom`, of the hub's remote-wakeup protocol.
//!
//! This is not the hub's code: it is a standalone copy of its steps, with
//! the same atomics and orderings, each function naming the hub function it
//! mirrors (`src/hub/unpark.rs`: `Shared::unpark_remote`,
//! `Shared::wake_loop`; `src/hub/run.rs`: `Hub::run_root`,
//! `Hub::drain_remote`, `Hub::poll`; `src/hub/poller.rs`: `Poller::notify`,
//! `Poller::wait`, `Poller::drain`). A change to the protocol there must be
//! made here too.
//!
//! The protocol: a waker on another OS thread pushes onto the hub's remote
//! queue, sets `has_remote`, and writes the eventfd only if the hub says it
//! sleeps (at most one write until the hub drains it). The hub, before it
//! sleeps in `epoll_wait`, sets `sleeping` and looks at `has_remote` again.
//! Checked: every push is seen by the hub (a hub asleep with a push it has
//! not seen, and no notification coming, is a deadlock to loom), and the
//! eventfd is written at most once per push.
//!
//! Run with `cargo rustc --profile test --test loom_remote_wake -- --cfg loom`
//! and then the test binary (`cfg(loom)` given to this crate only: tokio,
//! a dev-dependency, reads it too and does not build with it).
#![cfg(loom)]

use loom::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

/// Where the hub orders a `SeqCst` store before a `SeqCst` load of the
/// other flag (`wake_loop`: `has_remote` then `sleeping`; `poll`: `sleeping`
/// then `has_remote`). The protocol rests on the single total order of
/// `SeqCst` accesses, which loom does not model (it treats them as
/// `AcqRel`, its README, "Unsupported features"); a `SeqCst` fence, which
/// it does model, stands for that order here.
fn seq_cst_order() {
    fence(Ordering::SeqCst);
}

/// `hub/poller.rs` `Poller`: the eventfd (a counter the poller's wait
/// blocks on) and the `notified` flag.
struct Poller {
    eventfd: Mutex<u64>,
    readable: Condvar,
    notified: AtomicBool,
    /// How many writes the eventfd took (the model's own count).
    writes: AtomicUsize,
}

impl Poller {
    /// `Poller::notify`.
    fn notify(&self) {
        if self.notified.swap(true, Ordering::AcqRel) {
            return;
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        *self.eventfd.lock().unwrap() += 1;
        self.readable.notify_one();
    }

    /// `Poller::wait` with no timeout and no fd registered: `epoll_wait`
    /// returns when the eventfd is readable, and the notification is
    /// drained.
    fn wait(&self) {
        let mut count = self.eventfd.lock().unwrap();
        while *count == 0 {
            count = self.readable.wait(count).unwrap();
        }
        drop(count);
        self.drain();
    }

    /// `Poller::drain`.
    fn drain(&self) {
        *self.eventfd.lock().unwrap() = 0;
        self.notified.store(false, Ordering::Release);
    }
}

/// `hub/mod.rs` `Shared`: the part of a hub other threads reach.
struct Shared {
    poller: Poller,
    remote: Mutex<Vec<u32>>,
    has_remote: AtomicBool,
    sleeping: AtomicBool,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            poller: Poller {
                eventfd: Mutex::new(0),
                readable: Condvar::new(),
                notified: AtomicBool::new(false),
                writes: AtomicUsize::new(0),
            },
            remote: Mutex::new(Vec::new()),
            has_remote: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
        }
    }

    /// `Shared::unpark_remote`.
    fn unpark_remote(&self, item: u32) {
        self.remote.lock().unwrap().push(item);
        self.wake_loop();
    }

    /// `Shared::wake_loop`.
    fn wake_loop(&self) {
        self.has_remote.store(true, Ordering::SeqCst);
        seq_cst_order();
        if self.sleeping.load(Ordering::SeqCst) {
            self.poller.notify();
        }
    }

    /// `Hub::drain_remote` (without the closes queue, which rides the same
    /// flag).
    fn drain_remote(&self, seen: &mut Vec<u32>) {
        self.has_remote.store(false, Ordering::SeqCst);
        seen.append(&mut self.remote.lock().unwrap());
    }

    /// `Hub::poll` with no timeout (nothing runnable, no timer).
    fn poll(&self) {
        self.sleeping.store(true, Ordering::SeqCst);
        seq_cst_order();
        if self.has_remote.load(Ordering::SeqCst) {
            self.sleeping.store(false, Ordering::SeqCst);
            return;
        }
        self.poller.wait();
        self.sleeping.store(false, Ordering::SeqCst);
    }

    /// `Hub::run_root`, reduced to the remote wakeups: the hub runs until
    /// it has seen `n` pushes, sleeping whenever it has nothing to do.
    fn run_root(&self, n: usize) -> Vec<u32> {
        let mut seen = Vec::new();
        loop {
            if self.has_remote.load(Ordering::Acquire) {
                self.drain_remote(&mut seen);
            }
            if seen.len() == n {
                return seen;
            }
            self.poll();
        }
    }
}

/// Runs `wakers` threads that each push one item while the hub (the
/// model's main thread) runs its loop.
fn check(wakers: u32, preemptions: usize) {
    let mut b = loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        b.preemption_bound = Some(preemptions);
    }
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = runs.clone();
    b.check(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let shared = Arc::new(Shared::new());
        let threads: Vec<_> = (0..wakers)
            .map(|i| {
                let shared = shared.clone();
                thread::spawn(move || shared.unpark_remote(i))
            })
            .collect();
        let mut seen = shared.run_root(wakers as usize);
        for t in threads {
            t.join().unwrap();
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..wakers).collect::<Vec<_>>());
        let writes = shared.poller.writes.load(Ordering::Relaxed);
        assert!(writes <= wakers as usize, "{writes} eventfd writes");
    });
    let runs = runs.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{wakers} waker(s): {runs} executions");
}

#[test]
fn remote_push_wakes_a_sleeping_hub() {
    check(1, 3);
}

#[test]
fn two_remote_pushes_are_both_seen() {
    check(2, 3);
}

//! `green::sync::Barrier`: parks callers until `n` have arrived, with one
//! leader per group, reusable; works across hubs and with plain OS threads;
//! a waiter killed or timed out leaves its group's count.

mod common;

use std::cell::Cell;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use green::sync::{Barrier, BarrierWaitResult};

/// Waits for a green thread, failing instead of hanging if it never
/// finishes (a lost wake-up): a working one finishes in milliseconds.
fn join_within<T>(gt: green::GreenThread<T>) -> T {
    green::with_timeout(Duration::from_secs(10), || gt.wait())
        .expect("the green thread never finished: a wake-up was lost")
}

#[test]
fn barrier_has_std_bounds() {
    fn send_sync<T: Send + Sync + UnwindSafe + RefUnwindSafe>() {}
    send_sync::<Barrier>();
    send_sync::<BarrierWaitResult>();
}

#[test]
fn ten_green_threads_one_leader_per_round_over_three_rounds() {
    const N: usize = 10;
    const ROUNDS: usize = 3;
    let barrier = Rc::new(Barrier::new(N));
    let arrived = Rc::new(Cell::new(0));
    let workers: Vec<_> = (0..N)
        .map(|_| {
            let (barrier, arrived) = (barrier.clone(), arrived.clone());
            green::spawn(move || {
                let mut led = Vec::new();
                for round in 0..ROUNDS {
                    arrived.set(arrived.get() + 1);
                    let leader = barrier.wait().is_leader();
                    // Nobody passes before the whole group has arrived.
                    assert!(arrived.get() >= N * (round + 1));
                    if leader {
                        led.push(round);
                    }
                }
                led
            })
        })
        .collect();
    let mut leaders_per_round = [0; ROUNDS];
    for w in workers {
        for round in join_within(w) {
            leaders_per_round[round] += 1;
        }
    }
    assert_eq!(leaders_per_round, [1; ROUNDS]);
}

#[test]
fn barrier_joins_two_hubs_and_a_plain_os_thread() {
    let barrier = Arc::new(Barrier::new(4));
    let leaders = Arc::new(AtomicUsize::new(0));
    let wait = |b: Arc<Barrier>, l: Arc<AtomicUsize>| {
        if b.wait().is_leader() {
            l.fetch_add(1, Ordering::SeqCst);
        }
    };
    let (b, l) = (barrier.clone(), leaders.clone());
    let plain = std::thread::spawn(move || wait(b, l));
    let (b, l) = (barrier.clone(), leaders.clone());
    let other_hub = std::thread::spawn(move || {
        let gt = green::spawn(move || wait(b, l));
        join_within(gt);
    });
    let local: Vec<_> = (0..2)
        .map(|_| {
            let (b, l) = (barrier.clone(), leaders.clone());
            green::spawn(move || wait(b, l))
        })
        .collect();
    for gt in local {
        join_within(gt);
    }
    plain.join().unwrap();
    other_hub.join().unwrap();
    assert_eq!(leaders.load(Ordering::SeqCst), 1);
}

#[test]
fn green_leader_wakes_plain_os_thread_waiter() {
    let barrier = Arc::new(Barrier::new(2));
    let (tid_tx, tid_rx) = mpsc::channel();
    let b = barrier.clone();
    let plain = std::thread::spawn(move || {
        tid_tx.send(common::tid()).unwrap();
        b.wait().is_leader()
    });
    common::wait_until_sleeping(tid_rx.recv().unwrap()); // it waits
    let b = barrier.clone();
    let green_side = green::spawn(move || b.wait().is_leader());
    assert!(join_within(green_side));
    assert!(!plain.join().unwrap());
}

#[test]
fn killed_waiter_leaves_the_count() {
    let barrier = Rc::new(Barrier::new(3));
    let spawn_waiter = || {
        let b = barrier.clone();
        let gt = green::spawn(move || b.wait().is_leader());
        green::yield_now(); // it parks
        gt
    };
    let doomed = spawn_waiter();
    let a = spawn_waiter();
    doomed.kill();
    assert!(doomed.join().unwrap_err().is::<green::Killed>());
    let b = spawn_waiter();
    // Two live arrivals of three: the barrier has not tripped.
    assert!(!a.is_finished() && !b.is_finished());
    let c = spawn_waiter();
    let leaders = [a, b, c]
        .into_iter()
        .map(join_within)
        .filter(|&l| l)
        .count();
    assert_eq!(leaders, 1);
}

#[test]
fn timed_out_waiter_leaves_the_count() {
    let barrier = Rc::new(Barrier::new(2));
    let r = green::with_timeout(Duration::from_millis(10), || barrier.wait());
    assert!(r.is_err());
    let b = barrier.clone();
    let first = green::spawn(move || b.wait().is_leader());
    green::yield_now(); // it parks: one arrival of two
    assert!(!first.is_finished());
    assert!(barrier.wait().is_leader());
    assert!(!join_within(first));
}

#[test]
fn waiter_killed_after_the_trip_does_not_shift_the_next_round() {
    let barrier = Rc::new(Barrier::new(2));
    let b = barrier.clone();
    let woken = green::spawn(move || b.wait().is_leader());
    green::yield_now(); // it parks
    assert!(barrier.wait().is_leader()); // trips: `woken` is notified
    woken.kill(); // and unwinds before it runs
    assert!(woken.join().unwrap_err().is::<green::Killed>());
    // The next round needs two fresh arrivals.
    let b = barrier.clone();
    let next = green::spawn(move || b.wait().is_leader());
    green::yield_now();
    assert!(!next.is_finished());
    assert!(barrier.wait().is_leader());
    assert!(!join_within(next));
}

#[test]
fn barrier_of_zero_or_one_never_waits() {
    for n in [0, 1] {
        let b = Barrier::new(n);
        assert!(b.wait().is_leader());
        assert!(b.wait().is_leader());
    }
}

#[test]
fn debug_reads_like_std() {
    let (g, s) = (Barrier::new(1), std::sync::Barrier::new(1));
    assert_eq!(format!("{g:?}"), format!("{s:?}"));
    assert_eq!(format!("{:?}", g.wait()), format!("{:?}", s.wait()));
}

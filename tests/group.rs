//! `green::Group` (spawn, spawn_n, join, kill_all, len, is_empty), and
//! `GreenPool::kill_all` and `GreenPool::imap_unordered`.

mod common;

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::thread;
use std::time::Duration;

use green::sync::mpsc;
use green::{GreenPool, Group, Killed};

/// Counts drops: proves a killed member unwound through its destructors.
struct Dropped(Rc<Cell<usize>>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// Spawns `n` members that sleep for an hour, each counting its drop.
fn sleepers_in(group: &Group, n: usize, dropped: &Rc<Cell<usize>>) {
    for _ in 0..n {
        let d = Dropped(dropped.clone());
        group.spawn_n(move || {
            let _d = d;
            green::sleep(Duration::from_secs(3600));
        });
    }
}

#[test]
fn members_come_and_go_and_join_waits_for_all() {
    let group = Group::new();
    assert!(group.is_empty());
    let done = Rc::new(Cell::new(0));
    let gt = group.spawn(|| 7);
    for ms in [3u64, 1, 2] {
        let done = done.clone();
        group.spawn_n(move || {
            green::sleep(Duration::from_millis(ms));
            done.set(done.get() + 1);
        });
    }
    assert_eq!(group.len(), 4);
    assert_eq!(gt.wait(), 7);
    assert_eq!(group.len(), 3);
    group.join();
    assert_eq!((done.get(), group.len()), (3, 0));
    group.join(); // an empty group: returns at once
}

#[test]
fn join_waits_for_members_spawned_while_it_waits() {
    let group = Group::new();
    let inner = group.clone();
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    group.spawn_n(move || {
        green::yield_now(); // the root is in join by now
        inner.spawn_n(move || {
            green::yield_now();
            d.set(true);
        });
    });
    group.join();
    assert!(done.get(), "the member's member was waited for");
}

#[test]
fn join_timeout_gives_up_then_succeeds() {
    let group = Group::new();
    let (tx, rx) = mpsc::channel::<()>();
    group.spawn_n(move || rx.recv().unwrap());
    assert!(!group.join_timeout(Duration::from_millis(10)));
    tx.send(()).unwrap();
    assert!(group.join_timeout(Duration::from_secs(60)));
}

#[test]
fn join_from_a_member_panics_rather_than_wait_for_itself() {
    let group = Group::new();
    let g = group.clone();
    let gt = group.spawn(move || g.join());
    let p = gt.join().unwrap_err();
    let msg = p.downcast_ref::<String>().unwrap();
    assert!(msg.contains("called from a member"), "{msg}");
    assert!(group.is_empty());
}

#[test]
fn kill_all_of_ten_thousand_sleepers_leaves_the_hub_at_baseline() {
    let base = green::hub::stats();
    let group = Group::new();
    let dropped = Rc::new(Cell::new(0));
    for i in 0..10_000u64 {
        let d = Dropped(dropped.clone());
        group.spawn_n(move || {
            let _d = d;
            green::sleep(Duration::from_secs(3600 + i));
        });
    }
    green::yield_now(); // all of them park in their sleep
    let busy = green::hub::stats();
    assert_eq!(busy.green_threads, base.green_threads + 10_000);
    assert_eq!(busy.timers, base.timers + 10_000);
    group.kill_all();
    assert!(group.is_empty());
    assert_eq!(dropped.get(), 10_000, "every member unwound");
    let after = green::hub::stats();
    assert_eq!(after.green_threads, base.green_threads);
    assert_eq!(after.timers, base.timers);
    assert_eq!(after.runnable, base.runnable);
    assert_eq!(after.fd_waiters, base.fd_waiters);
}

#[test]
fn kill_all_stops_members_that_never_started_and_waits_for_slow_destructors() {
    let group = Group::new();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let unstarted = group.spawn(move || r.set(true));
    // A member whose destructor parks: kill_all waits for it.
    struct SlowDrop(Rc<Cell<bool>>);
    impl Drop for SlowDrop {
        fn drop(&mut self) {
            green::sleep(Duration::from_millis(20));
            self.0.set(true);
        }
    }
    let cleaned = Rc::new(Cell::new(false));
    let c = SlowDrop(cleaned.clone());
    let slow = group.spawn(move || {
        let _c = c;
        green::sleep(Duration::from_secs(3600));
    });
    group.kill_all();
    assert!(!ran.get(), "killed before it started: never runs");
    assert!(cleaned.get(), "the parking destructor finished first");
    assert!(unstarted.join().unwrap_err().is::<Killed>());
    assert!(slow.join().unwrap_err().is::<Killed>());
}

#[test]
fn kill_all_waits_for_a_started_member_whose_destructor_parks() {
    struct SlowDrop(Rc<Cell<bool>>);
    impl Drop for SlowDrop {
        fn drop(&mut self) {
            green::sleep(Duration::from_millis(20));
            self.0.set(true);
        }
    }
    let group = Group::new();
    let cleaned = Rc::new(Cell::new(false));
    let c = SlowDrop(cleaned.clone());
    let member = group.spawn(move || {
        let _c = c;
        green::sleep(Duration::from_secs(3600));
    });
    green::yield_now(); // it starts and sleeps
    group.kill_all();
    assert!(cleaned.get(), "kill_all returned after the destructor");
    assert!(member.join().unwrap_err().is::<Killed>());
}

#[test]
fn kill_all_during_a_panic_kills_without_waiting() {
    // The errgroup pattern on a panic: a member's guard cancels the others
    // as it unwinds. The hub holds kills back while a context parks in an
    // unwind, so kill_all must not wait there.
    struct CancelOnPanic(Group);
    impl Drop for CancelOnPanic {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.kill_all();
            }
        }
    }
    let group = Group::new();
    let dropped = Rc::new(Cell::new(0));
    sleepers_in(&group, 5, &dropped);
    let guard = CancelOnPanic(group.clone());
    let failing = group.spawn(move || {
        let _guard = guard;
        green::yield_now(); // the sleepers, spawned first, are parked
        panic!("one member failed");
    });
    common::within(Duration::from_secs(60), || {
        assert!(failing.join().is_err());
        group.join();
    });
    assert_eq!(dropped.get(), 5, "the others were killed");
}

#[test]
fn kill_all_kills_members_spawned_by_dying_members() {
    let group = Group::new();
    struct SpawnOnDrop(Group, Rc<Cell<bool>>);
    impl Drop for SpawnOnDrop {
        fn drop(&mut self) {
            let late = self.1.clone();
            self.0.spawn_n(move || {
                green::sleep(Duration::from_secs(3600));
                late.set(true);
            });
        }
    }
    let late = Rc::new(Cell::new(false));
    let s = SpawnOnDrop(group.clone(), late.clone());
    group.spawn_n(move || {
        let _s = s;
        green::sleep(Duration::from_secs(3600));
    });
    green::yield_now();
    group.kill_all();
    assert!(group.is_empty());
    assert!(!late.get());
}

#[test]
fn kill_all_from_a_member_kills_the_others_and_returns() {
    // The errgroup pattern: the first member to fail cancels the rest.
    let group = Group::new();
    let dropped = Rc::new(Cell::new(0));
    sleepers_in(&group, 5, &dropped);
    let g = group.clone();
    let failing = group.spawn(move || {
        green::yield_now(); // the sleepers, spawned first, are parked
        g.kill_all();
        g.len()
    });
    assert_eq!(failing.wait(), 1, "only the caller is left");
    assert_eq!(dropped.get(), 5);
    assert!(group.is_empty());
}

#[test]
fn a_group_on_a_plain_threads_hub_with_members_woken_from_another_hub() {
    let (tx, rx) = std::sync::mpsc::channel::<mpsc::Sender<u32>>();
    let feeder = thread::spawn(move || {
        // Another OS thread's hub: sends to the members of the group.
        let senders: Vec<_> = rx.iter().collect();
        green::spawn(move || {
            for (i, s) in senders.iter().enumerate() {
                s.send(i as u32).unwrap();
            }
        })
        .wait();
    });
    let worker = thread::spawn(move || {
        let group = Group::new();
        let total = Rc::new(Cell::new(0));
        for _ in 0..10 {
            let (s, r) = mpsc::channel::<u32>();
            tx.send(s).unwrap();
            let total = total.clone();
            group.spawn_n(move || {
                let v = r.recv().unwrap();
                total.set(total.get() + v);
            });
        }
        drop(tx);
        group.join();
        // Ten more, killed while they wait on channels nobody feeds.
        let (keep, r) = mpsc::channel::<u32>();
        let r = Rc::new(r);
        for _ in 0..10 {
            let r = r.clone();
            group.spawn_n(move || {
                let _ = r.recv();
            });
        }
        green::yield_now();
        group.kill_all();
        drop(keep);
        (total.get(), group.len())
    });
    feeder.join().unwrap();
    assert_eq!(worker.join().unwrap(), ((0..10).sum(), 0));
}

#[test]
fn pool_kill_all_frees_every_slot_and_a_waiting_spawner_gets_one() {
    let pool = Rc::new(GreenPool::new(3));
    let dropped = Rc::new(Cell::new(0));
    for _ in 0..3 {
        let d = Dropped(dropped.clone());
        pool.spawn_n(move || {
            let _d = d;
            green::sleep(Duration::from_secs(3600));
        });
    }
    // A fourth spawner waits for a slot; it is not a member, so the kill
    // spares it, and it gets a slot the kill freed.
    let p = pool.clone();
    let spawner = green::spawn(move || p.spawn(|| "after the kill").wait());
    green::yield_now();
    assert_eq!(pool.waiting(), 1);
    pool.kill_all();
    assert_eq!(dropped.get(), 3);
    assert_eq!(spawner.wait(), "after the kill");
    pool.waitall();
    assert_eq!((pool.running(), pool.free()), (0, 3));
}

#[test]
fn pool_kill_all_from_a_member_kills_the_others() {
    let pool = Rc::new(GreenPool::new(4));
    for _ in 0..3 {
        pool.spawn_n(|| green::sleep(Duration::from_secs(3600)));
    }
    let p = pool.clone();
    let me = pool.spawn(move || {
        p.kill_all();
        p.running()
    });
    assert_eq!(me.wait(), 1);
    assert_eq!(pool.running(), 0);
}

#[test]
fn imap_unordered_yields_results_as_they_finish_with_at_most_size_in_flight() {
    let pool = GreenPool::new(3);
    let in_flight = Rc::new(Cell::new(0usize));
    let most = Rc::new(Cell::new(0usize));
    let (f, m) = (in_flight.clone(), most.clone());
    let out: Vec<u64> = pool
        .imap_unordered(
            move |ms: u64| {
                f.set(f.get() + 1);
                m.set(m.get().max(f.get()));
                green::sleep(Duration::from_millis(ms));
                f.set(f.get() - 1);
                ms
            },
            // Apart by 100 ms and more, so that a loaded machine keeps the
            // order asserted below.
            [400u64, 100, 250, 1, 1, 1],
        )
        .collect();
    assert_eq!(most.get(), 3, "never more than the pool's size at once");
    let mut sorted = out.clone();
    sorted.sort();
    assert_eq!(sorted, [1, 1, 1, 100, 250, 400]);
    assert_eq!(
        out[0], 100,
        "the first to finish comes first, not the first in"
    );
    assert_eq!(*out.last().unwrap(), 400);
}

#[test]
fn imap_unordered_resumes_a_panic_of_f_where_its_result_is_taken() {
    let pool = GreenPool::new(2);
    let mut it = pool.imap_unordered(
        |x: u32| {
            if x == 2 {
                panic!("item 2 failed");
            }
            x
        },
        [1u32, 2, 3],
    );
    let mut got = Vec::new();
    let mut panics = 0;
    loop {
        match panic::catch_unwind(AssertUnwindSafe(|| it.next())) {
            Ok(Some(x)) => got.push(x),
            Ok(None) => break,
            Err(p) => {
                assert_eq!(*p.downcast_ref::<&str>().unwrap(), "item 2 failed");
                panics += 1;
            }
        }
    }
    got.sort();
    assert_eq!((got, panics), (vec![1, 3], 1));
}

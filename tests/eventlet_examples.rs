//! The examples of eventlet's own documentation, run on green: spawn order,
//! cooperative scheduling, passing values through `wait`, links, many
//! sleepers, and `spawn_after`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A shared, ordered record of what ran.
type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn push(log: &Log, s: impl Into<String>) {
    log.borrow_mut().push(s.into());
}

fn entries(log: &Log) -> Vec<String> {
    log.borrow().clone()
}

#[test]
fn spawned_run_in_spawn_order_then_root_continues() {
    let log = log();
    for name in ["a", "b"] {
        let l = log.clone();
        green::spawn_n(move || push(&l, name));
    }
    assert!(
        entries(&log).is_empty(),
        "spawn must not run the green thread at once"
    );
    green::yield_now(); // eventlet's sleep(0)
    push(&log, "root");
    assert_eq!(entries(&log), ["a", "b", "root"]);
}

#[test]
fn busy_green_thread_starves_others_until_it_yields() {
    let log = log();
    let b_ran = Rc::new(Cell::new(false));

    let (l, seen) = (log.clone(), b_ran.clone());
    let a = green::spawn(move || {
        push(&l, "a: start");
        // Burn CPU without a park point; an OS-level yield gives the OS a
        // chance to run something else, but no other green thread may run.
        for _ in 0..1000 {
            std::thread::yield_now();
            assert!(!seen.get(), "b ran while a never yielded");
        }
        push(&l, "a: yields");
        green::yield_now();
        push(&l, "a: resumed");
    });
    let (l, flag) = (log.clone(), b_ran.clone());
    let b = green::spawn(move || {
        flag.set(true);
        push(&l, "b");
    });
    a.wait();
    b.wait();
    assert_eq!(entries(&log), ["a: start", "a: yields", "b", "a: resumed"]);
}

#[test]
fn wait_passes_value_between_green_threads() {
    let producer = green::spawn(|| 21);
    let consumer = green::spawn(move || producer.wait() * 2);
    assert_eq!(consumer.wait(), 42);
}

#[test]
fn wait_chains_through_many_green_threads() {
    // Each green thread waits for the previous one and adds one: the value
    // crosses 100 green threads, each parked in `wait` until its turn.
    let mut prev = green::spawn(|| 0u32);
    for _ in 0..100 {
        let p = prev;
        prev = green::spawn(move || p.wait() + 1);
    }
    assert_eq!(prev.wait(), 100);
}

#[test]
fn wait_resumes_the_green_threads_panic() {
    let gt = green::spawn(|| -> u32 { panic!("boom in green thread") });
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| gt.wait()))
        .expect_err("wait must re-raise the panic");
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"boom in green thread")
    );
}

#[test]
fn link_runs_with_result_before_wait_returns() {
    let log = log();
    let gt = green::spawn(|| 7);
    let l = log.clone();
    gt.link(move |r| push(&l, format!("link saw {}", r.as_ref().unwrap())));
    let v = gt.wait();
    push(&log, format!("wait returned {v}"));
    assert_eq!(entries(&log), ["link saw 7", "wait returned 7"]);
}

#[test]
fn link_runs_on_the_finishing_green_thread() {
    let ran_on = Rc::new(Cell::new(None));
    let gt = green::spawn(|| ());
    let id = gt.id();
    let r = ran_on.clone();
    gt.link(move |_| r.set(green::current_id()));
    gt.wait();
    assert_eq!(ran_on.get(), Some(id));
}

#[test]
fn link_after_finish_runs_at_once() {
    let gt = green::spawn(|| "done");
    green::yield_now();
    assert!(gt.is_finished());
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    gt.link(move |r| *s.borrow_mut() = Some(*r.as_ref().unwrap()));
    // No yield in between: the link ran inside `link`, on the caller.
    assert_eq!(*seen.borrow(), Some("done"));
    assert_eq!(gt.wait(), "done");
}

#[test]
fn links_run_in_the_order_added() {
    let log = log();
    let gt = green::spawn(|| ());
    for i in 1..=3 {
        let l = log.clone();
        gt.link(move |_| push(&l, format!("link {i}")));
    }
    gt.wait();
    assert_eq!(entries(&log), ["link 1", "link 2", "link 3"]);
}

#[test]
fn panicking_link_does_not_stop_later_links_or_wait() {
    let log = log();
    let gt = green::spawn(|| 3);
    gt.link(|_| panic!("link panics"));
    let l = log.clone();
    gt.link(move |_| push(&l, "second link"));
    assert_eq!(gt.wait(), 3);
    assert_eq!(entries(&log), ["second link"]);
}

#[test]
fn ten_thousand_sleepers_overlap() {
    let before = green::hub::stats();
    let start = Instant::now();
    let sleepers: Vec<_> = (0..10_000u64)
        .map(|i| {
            green::spawn(move || {
                green::sleep(Duration::from_millis(50));
                i
            })
        })
        .collect();
    let sum: u64 = sleepers.into_iter().map(|gt| gt.wait()).sum();
    let elapsed = start.elapsed();
    assert_eq!(sum, 9_999 * 10_000 / 2);
    // Every green thread slept 50 ms, so at least that passed.
    assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
    // Margin: run one after another the sleeps would take 500 s; even 60 of
    // them in sequence would take 3 s. Measured ~0.4 s in a debug build
    // (mapping 10 000 stacks dominates), so 3 s leaves 7x headroom for a
    // loaded 2-core machine while still proving the sleeps overlap.
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    let after = green::hub::stats();
    assert_eq!(after.green_threads, before.green_threads);
    assert_eq!(after.timers, before.timers);
}

#[test]
fn spawn_after_runs_after_its_delay() {
    let delay = Duration::from_millis(30);
    let start = Instant::now();
    let gt = green::spawn_after(delay, Instant::now);
    let ran_at = gt.wait();
    assert!(ran_at - start >= delay, "ran after {:?}", ran_at - start);
}

#[test]
fn spawn_after_in_delay_order() {
    // Later spawn, earlier delay: the delay decides, not the spawn order.
    let log = log();
    for (name, ms) in [("slow", 40), ("fast", 10)] {
        let l = log.clone();
        green::spawn_after(Duration::from_millis(ms), move || push(&l, name));
    }
    green::sleep(Duration::from_millis(60));
    assert_eq!(entries(&log), ["fast", "slow"]);
}

#[test]
fn cancel_prevents_spawn_after_from_running() {
    let before = green::hub::stats();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let gt = green::spawn_after(Duration::from_millis(20), move || r.set(true));
    assert!(
        gt.cancel(),
        "a spawn_after that has not started can be cancelled"
    );
    // Sleep well past the delay: had its timer survived, it would be due
    // before ours and would have run first.
    green::sleep(Duration::from_millis(60));
    assert!(!ran.get());
    assert!(gt.join().unwrap_err().is::<green::Killed>());
    let after = green::hub::stats();
    assert_eq!(after.timers, before.timers);
    assert_eq!(after.green_threads, before.green_threads);
}

#[test]
fn cancel_after_start_returns_false() {
    let gt = green::spawn(|| green::sleep(Duration::from_millis(10)));
    green::yield_now(); // it starts and parks in sleep
    assert!(!gt.cancel());
    assert!(gt.join().is_ok(), "a refused cancel must not kill");
}

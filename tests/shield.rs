//! `green::shield`: kills and timeouts held back while a piece of work
//! ends, then delivered at the next park point.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use green::sync::mpsc;

/// A kill during a shielded sleep: the sleep lasts its whole time, the
/// code after the shield runs up to the next park point, and the green
/// thread is killed there.
#[test]
fn a_kill_waits_for_the_shield_then_lands_at_the_next_park() {
    let after = Rc::new(Cell::new(false));
    let a = after.clone();
    let t = Instant::now();
    let gt = green::spawn(move || {
        let slept = green::shield(|| {
            let t = Instant::now();
            green::sleep(Duration::from_millis(60));
            t.elapsed()
        });
        a.set(true);
        green::sleep(Duration::from_secs(30));
        slept
    });
    green::yield_now(); // it sleeps in the shield
    gt.kill();
    assert!(gt.join().unwrap_err().is::<green::Killed>());
    assert!(after.get(), "the code after the shield ran");
    assert!(
        t.elapsed() >= Duration::from_millis(60),
        "the sleep was not cut short"
    );
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "the kill landed after the shield"
    );
}

/// A `Timeout` that expires inside a shield fires at the first park point
/// after it; `with_timeout` reports it.
#[test]
fn a_timeout_inside_a_shield_fires_after_it() {
    let got = Rc::new(Cell::new(0u32));
    let g = got.clone();
    let r = green::with_timeout(Duration::from_millis(10), move || {
        green::shield(|| green::sleep(Duration::from_millis(40)));
        g.set(1);
        green::yield_now(); // the first park point after the shield
        g.set(2);
    });
    assert!(r.is_err(), "the timeout fired");
    assert_eq!(got.get(), 1);
}

/// Shields nest: leaving the inner one does not deliver.
#[test]
fn nested_shields_hold_until_the_outermost_returns() {
    let steps = Rc::new(Cell::new(0u32));
    let s = steps.clone();
    let gt = green::spawn(move || {
        green::shield(|| {
            green::shield(|| green::sleep(Duration::from_millis(20)));
            s.set(1);
            green::sleep(Duration::from_millis(20)); // still shielded
            s.set(2);
        });
        green::yield_now();
        s.set(3);
    });
    green::yield_now();
    gt.kill();
    assert!(gt.join().unwrap_err().is::<green::Killed>());
    assert_eq!(steps.get(), 2);
}

/// A shielded receive keeps waiting through a kill until a plain thread
/// sends; the message is received, and the kill lands after.
#[test]
fn a_shielded_recv_gets_its_message_from_another_thread() {
    let (tx, rx) = mpsc::channel::<u32>();
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    let gt = green::spawn(move || {
        let v = green::shield(|| rx.recv().unwrap());
        s.set(Some(v));
        green::sleep(Duration::from_secs(30));
    });
    green::yield_now(); // it waits in recv
    gt.kill();
    green::yield_now(); // the kill wakes it once; it waits on
    assert_eq!(seen.get(), None);
    let t = std::thread::spawn(move || tx.send(7).unwrap());
    assert!(gt.join().unwrap_err().is::<green::Killed>());
    t.join().unwrap();
    assert_eq!(seen.get(), Some(7));
}

/// A panic out of a shield ends it: a kill after that lands at once.
#[test]
fn a_panic_ends_the_shield() {
    let gt = green::spawn(|| {
        let r = std::panic::catch_unwind(|| green::shield(|| panic!("inside")));
        assert!(r.is_err());
        green::sleep(Duration::from_secs(30));
    });
    green::yield_now();
    let t = Instant::now();
    gt.kill();
    assert!(gt.join().unwrap_err().is::<green::Killed>());
    assert!(t.elapsed() < Duration::from_secs(20));
}

/// Without a hub it just runs the closure.
#[test]
fn on_a_plain_thread_it_runs_the_closure() {
    let v = std::thread::spawn(|| green::shield(|| 40 + 2))
        .join()
        .unwrap();
    assert_eq!(v, 42);
}

/// Nothing is left behind.
#[test]
fn a_shielded_green_thread_leaves_no_timer_or_thread() {
    let before = green::hub::stats();
    let gt = green::spawn(|| {
        green::shield(|| green::sleep(Duration::from_millis(5)));
        green::sleep(Duration::from_secs(30));
    });
    green::yield_now(); // it sleeps in the shield
    gt.kill();
    let _ = gt.join();
    let after = green::hub::stats();
    assert_eq!(after.green_threads, before.green_threads);
    assert_eq!(after.timers, before.timers);
}

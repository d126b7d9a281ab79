//! `green::time`: std's time types, with a sleep that parks only the
//! current green thread.

use std::cell::Cell;
use std::rc::Rc;

use green::time::{self, Duration, Instant};

#[test]
fn sleep_waits_at_least_its_duration() {
    let start = Instant::now();
    time::sleep(Duration::from_millis(20));
    let took = start.elapsed();
    // Margin: never early; up to 5 s late on a loaded machine.
    assert!(took >= Duration::from_millis(20), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn sleep_lets_other_green_threads_run() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    green::spawn_n(move || r.set(true));
    // The root's sleep runs the hub, which runs the green thread.
    time::sleep(Duration::from_millis(1));
    assert!(ran.get());
}

#[test]
fn reexports_are_std_types() {
    let d: std::time::Duration = time::Duration::from_millis(1);
    let i: std::time::Instant = time::Instant::now();
    let epoch: std::time::SystemTime = time::UNIX_EPOCH;
    assert!(i.elapsed() < d + Duration::from_secs(3600));
    assert!(time::SystemTime::now() > epoch);
}

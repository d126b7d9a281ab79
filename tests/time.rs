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
    // The annotations are the check that the types are std's; the values
    // must be std's too.
    let d: std::time::Duration = time::Duration::from_millis(1);
    let i: std::time::Instant = time::Instant::now();
    let epoch: std::time::SystemTime = time::UNIX_EPOCH;
    assert_eq!(d, std::time::Duration::from_micros(1000));
    assert_eq!(epoch, std::time::SystemTime::UNIX_EPOCH);
    // The same monotonic clock: an instant read later through std's name
    // is not earlier.
    let later = std::time::Instant::now();
    assert!(later >= i, "{later:?} < {i:?}");
    assert!(time::SystemTime::now() > epoch);
}

//! `hub::call_later` and `hub::call_at`: callbacks run by the hub at a
//! given time, and the `Timer` handle that cancels them.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use green::hub;

#[test]
fn a_callback_runs_after_its_delay_on_the_hubs_thread() {
    let ran_at = Rc::new(Cell::new(None));
    let r = ran_at.clone();
    let me = std::thread::current().id();
    let start = Instant::now();
    hub::call_later(Duration::from_millis(30), move || {
        assert_eq!(std::thread::current().id(), me);
        r.set(Some(start.elapsed()));
    });
    assert_eq!(ran_at.get(), None, "only the hub runs it");
    green::sleep(Duration::from_millis(60));
    let at = ran_at.get().expect("it ran while the root slept");
    assert!(at >= Duration::from_millis(30), "ran after {at:?}");
}

#[test]
fn callbacks_run_by_deadline_then_in_the_order_scheduled() {
    let order = Rc::new(RefCell::new(Vec::new()));
    let at = Instant::now() + Duration::from_millis(10);
    for (name, when) in [
        ("third", at + Duration::from_millis(5)),
        ("first", at),
        ("second", at),
    ] {
        let order = order.clone();
        hub::call_at(when, move || order.borrow_mut().push(name));
    }
    green::sleep(Duration::from_millis(40));
    assert_eq!(*order.borrow(), ["first", "second", "third"]);
}

#[test]
fn a_cancelled_callback_never_runs_and_leaves_no_timer() {
    let before = hub::stats().timers;
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let t = hub::call_later(Duration::from_millis(5), move || r.set(true));
    assert_eq!(hub::stats().timers, before + 1);
    assert!(t.cancel());
    assert!(!t.cancel(), "cancelled once");
    assert_eq!(hub::stats().timers, before);
    green::sleep(Duration::from_millis(20));
    assert!(!ran.get());
    // Cancelling after it ran says so.
    let t = hub::call_later(Duration::ZERO, || ());
    green::yield_now();
    assert!(!t.cancel());
}

#[test]
fn dropping_the_handle_does_not_cancel() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let handle = hub::call_later(Duration::from_millis(1), move || r.set(true));
    #[allow(clippy::drop_non_drop)] // the point: no Drop that cancels
    drop(handle);
    green::sleep(Duration::from_millis(20));
    assert!(ran.get());
}

#[test]
fn a_deadline_in_the_past_runs_at_the_next_pass() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let past = Instant::now() - Duration::from_millis(1);
    hub::call_at(past, move || r.set(true));
    assert!(!ran.get(), "the caller goes on first");
    green::yield_now();
    assert!(ran.get());
}

/// Blocking from a callback is the hub's rule: it panics with its message.
#[test]
fn blocking_in_a_callback_panics_with_the_hubs_message() {
    let msg = Rc::new(RefCell::new(String::new()));
    let m = msg.clone();
    hub::call_later(Duration::from_millis(1), move || {
        let err = std::panic::catch_unwind(|| green::sleep(Duration::from_millis(1)))
            .expect_err("a sleep from the hub panics");
        *m.borrow_mut() = err
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| err.downcast_ref::<String>().cloned())
            .unwrap_or_default();
    });
    green::sleep(Duration::from_millis(20));
    assert!(
        msg.borrow()
            .contains("do not call blocking functions from the hub"),
        "{}",
        msg.borrow()
    );
}

/// A callback's panic is reported and the hub goes on with its other work.
#[test]
fn a_callback_that_panics_leaves_the_hub_going() {
    let later = Rc::new(Cell::new(false));
    let l = later.clone();
    hub::call_later(Duration::from_millis(1), || {
        green::sleep(Duration::from_millis(1))
    });
    hub::call_later(Duration::from_millis(2), move || l.set(true));
    green::sleep(Duration::from_millis(20));
    assert!(later.get(), "the next callback still ran");
}

/// A callback that must wait spawns a green thread for it.
#[test]
fn a_callback_spawns_a_green_thread_that_waits() {
    let done = green::Event::<()>::new();
    let d = done.clone();
    hub::call_later(Duration::from_millis(1), move || {
        green::spawn_n(move || {
            green::sleep(Duration::from_millis(5));
            d.send(()).unwrap();
        });
    });
    // The sender ends before the woken root runs again.
    assert!(done.wait_timeout(Duration::from_secs(60)).is_some());
    assert_eq!(hub::stats().green_threads, 0);
}

/// A callback that schedules another, and one whose captures schedule
/// another as they drop when it is cancelled.
#[test]
fn callbacks_may_schedule_callbacks() {
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let nested_ran = green::Event::<()>::new();
    let n = nested_ran.clone();
    hub::call_later(Duration::from_millis(1), move || {
        c.set(c.get() + 1);
        let c2 = c.clone();
        hub::call_later(Duration::from_millis(1), move || {
            c2.set(c2.get() + 1);
            n.send(()).unwrap();
        });
    });
    struct OnDrop(Rc<Cell<i32>>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            let c = self.0.clone();
            hub::call_later(Duration::ZERO, move || c.set(c.get() + 10));
        }
    }
    let guard = OnDrop(count.clone());
    let t = hub::call_later(Duration::from_secs(60), move || drop(guard));
    assert!(t.cancel());
    // The guard's callback (no delay) runs before the nested one.
    assert!(nested_ran.wait_timeout(Duration::from_secs(60)).is_some());
    assert_eq!(count.get(), 12);
}

/// On a plain OS thread the callback runs in that thread's hub, made on
/// first use, while the thread waits on anything green.
#[test]
fn from_a_plain_thread_it_runs_in_that_threads_hub() {
    let ran_on = std::thread::spawn(|| {
        let ran_on = Rc::new(Cell::new(None));
        let r = ran_on.clone();
        hub::call_later(Duration::from_millis(1), move || {
            r.set(Some(std::thread::current().id()))
        });
        green::sleep(Duration::from_millis(20));
        (ran_on.get(), std::thread::current().id())
    })
    .join()
    .unwrap();
    assert_eq!(ran_on.0, Some(ran_on.1));
}

//! `green::Event`: a value sent once to every waiter, on one hub, across
//! hubs and with plain OS threads; waiters that time out or are killed leave
//! nothing behind.

mod common;

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use green::{AlreadySent, Event};

/// Only guards against a hang: a wake-up that works arrives in microseconds.
const HANG: Duration = Duration::from_secs(60);

/// How many contexts wait on `evt`, read from its `Debug` output.
fn waiters<T>(evt: &Event<T>) -> usize {
    let s = format!("{evt:?}");
    let n = s
        .split("waiters: ")
        .nth(1)
        .expect("Event's Debug output names its waiters");
    n.split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Blocks the calling context until `n` contexts wait on `evt`.
fn until_waiters<T>(evt: &Event<T>, n: usize) {
    let deadline = Instant::now() + HANG;
    while waiters(evt) != n {
        assert!(Instant::now() < deadline, "{n} waiters never arrived");
        std::thread::yield_now();
    }
}

/// The counts that must come back to their starting values.
fn counts() -> (usize, usize) {
    let s = green::hub::stats();
    (s.green_threads, s.timers)
}

// Event is send and sync when its value is send: checked when this file compiles.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Event>();
    assert_send_sync::<Event<String>>();
    // Like `Mutex<T>`: clones are made under the event's lock, so the value
    // needs only to be `Send`.
    assert_send_sync::<Event<Cell<u32>>>();
    assert_send_sync::<AlreadySent<String>>();
};

#[test]
fn send_wakes_every_waiter_with_the_value() {
    let evt = Event::new();
    let gts: Vec<_> = (0..3)
        .map(|_| {
            let evt = evt.clone();
            green::spawn(move || evt.wait())
        })
        .collect();
    green::yield_now();
    assert_eq!(waiters(&evt), 3);
    evt.send(String::from("go")).unwrap();
    assert_eq!(waiters(&evt), 0);
    for gt in gts {
        assert_eq!(gt.wait(), "go");
    }
}

#[test]
fn wait_after_send_returns_at_once() {
    let evt = Event::new();
    evt.send(5).unwrap();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    green::spawn_n(move || r.set(true));
    // Had `wait` parked, the hub would have run the queued green thread.
    assert_eq!(evt.wait(), 5);
    assert_eq!(evt.wait(), 5);
    assert!(!ran.get());
    assert!(evt.ready());
}

#[test]
fn second_send_returns_its_value_in_already_sent() {
    let evt = Event::new();
    evt.send(vec![1]).unwrap();
    let err = evt.send(vec![2, 3]).unwrap_err();
    assert_eq!(err, AlreadySent(vec![2, 3]));
    assert_eq!(err.0, [2, 3]);
    assert_eq!(evt.wait(), [1]);
}

#[test]
fn already_sent_says_to_reset() {
    let evt = Event::new();
    evt.send(1).unwrap();
    let err = evt.send(2).unwrap_err();
    assert!(err.to_string().contains("reset"), "{err}");
    assert_eq!(format!("{err:?}"), "AlreadySent { .. }");
}

#[test]
fn reset_lets_the_event_be_sent_again() {
    let evt = Event::new();
    evt.send(1).unwrap();
    evt.reset();
    assert!(!evt.ready());
    assert_eq!(evt.try_wait(), None);
    let evt2 = evt.clone();
    let gt = green::spawn(move || evt2.wait());
    green::yield_now();
    assert_eq!(waiters(&evt), 1, "a reset event makes waiters wait again");
    evt.send(2).unwrap();
    assert_eq!(gt.wait(), 2);
}

#[test]
fn reset_keeps_the_value_of_woken_waiters() {
    let evt = Event::new();
    let evt2 = evt.clone();
    let gt = green::spawn(move || evt2.wait());
    green::yield_now();
    evt.send(7).unwrap();
    evt.reset(); // before the woken waiter has run
    assert_eq!(gt.wait(), 7);
}

#[test]
fn try_wait_does_not_wait() {
    let evt = Event::new();
    assert_eq!(evt.try_wait(), None);
    assert_eq!(waiters(&evt), 0);
    evt.send('x').unwrap();
    assert_eq!(evt.try_wait(), Some('x'));
}

#[test]
fn wait_timeout_returns_none_after_the_duration() {
    let evt: Event<u8> = Event::new();
    let start = Instant::now();
    assert_eq!(evt.wait_timeout(Duration::from_millis(50)), None);
    let took = start.elapsed();
    // Margin: never early; late by less than 5 s even on a loaded machine.
    assert!(took >= Duration::from_millis(50), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(waiters(&evt), 0);
    assert_eq!(counts().1, 0, "the park's timer is gone");
}

#[test]
fn wait_timeout_in_green_thread_returns_none_after_the_duration() {
    let evt: Event<u8> = Event::new();
    let evt2 = evt.clone();
    let gt = green::spawn(move || {
        let start = Instant::now();
        (
            evt2.wait_timeout(Duration::from_millis(50)),
            start.elapsed(),
        )
    });
    let (v, took) = gt.wait();
    assert_eq!(v, None);
    assert!(took >= Duration::from_millis(50), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(waiters(&evt), 0);
}

#[test]
fn wait_timeout_returns_a_value_sent_in_time() {
    let evt = Event::new();
    let evt2 = evt.clone();
    green::spawn_n(move || evt2.send(3).unwrap());
    assert_eq!(evt.wait_timeout(HANG), Some(3));
    assert_eq!(counts().1, 0, "the park's timer is cancelled");
}

#[test]
fn killed_waiter_does_not_keep_others_from_the_value() {
    let before = counts();
    let evt = Event::new();
    let spawn_waiter = || {
        let evt = evt.clone();
        green::spawn(move || evt.wait())
    };
    let first = spawn_waiter();
    let victim = spawn_waiter();
    let last = spawn_waiter();
    green::yield_now();
    assert_eq!(waiters(&evt), 3);
    victim.kill();
    assert!(victim.join().unwrap_err().is::<green::Killed>());
    assert_eq!(waiters(&evt), 2, "the killed waiter left the list");
    evt.send(9).unwrap();
    assert_eq!((first.wait(), last.wait()), (9, 9));
    assert_eq!(counts(), before);
}

#[test]
fn waiter_killed_after_send_before_it_runs_drops_its_value() {
    let before = counts();
    let evt = Event::new();
    let evt2 = evt.clone();
    let victim = green::spawn(move || drop(evt2.wait()));
    let evt3 = evt.clone();
    let other = green::spawn(move || evt3.wait());
    green::yield_now();
    let value = Arc::new(());
    evt.send(value.clone()).unwrap();
    victim.kill(); // woken with its clone, killed before it ran
    assert!(victim.join().unwrap_err().is::<green::Killed>());
    let got = other.wait();
    // Held: ours, the event's and `other`'s; the victim's clone was dropped.
    assert_eq!(Arc::strong_count(&value), 3);
    drop(got);
    assert_eq!(waiters(&evt), 0);
    assert_eq!(counts(), before);
}

#[test]
fn timeout_around_wait_unwinds_with_elapsed_and_leaves_no_waiter() {
    let before = counts();
    let evt = Event::new();
    let evt2 = evt.clone();
    let gt = green::spawn(move || {
        let _t = green::Timeout::new(Duration::from_millis(20));
        evt2.wait()
    });
    assert!(gt.join().unwrap_err().is::<green::Elapsed>());
    assert_eq!(waiters(&evt), 0);
    assert_eq!(counts(), before);
    // The next send/wait cycle is not disturbed by the dead waiter.
    evt.send(1).unwrap();
    assert_eq!(evt.wait(), 1);
    evt.reset();
    let evt3 = evt.clone();
    let gt = green::spawn(move || evt3.wait());
    green::yield_now();
    evt.send(2).unwrap();
    assert_eq!(gt.wait(), 2);
}

#[test]
fn with_timeout_on_the_root_gives_up_the_wait() {
    let evt: Event<()> = Event::new();
    let r = green::with_timeout(Duration::from_millis(20), || evt.wait());
    assert!(r.is_err());
    assert_eq!(waiters(&evt), 0);
}

#[test]
fn timeout_caught_on_the_root_is_the_callers() {
    let evt: Event<()> = Event::new();
    let t = green::Timeout::new(Duration::from_millis(20));
    let p = panic::catch_unwind(AssertUnwindSafe(|| evt.wait())).unwrap_err();
    assert!(t.is_mine(&*p));
    assert_eq!(waiters(&evt), 0);
}

#[test]
fn send_from_green_thread_of_another_hub_wakes_green_waiter() {
    let evt = Event::new();
    let evt2 = evt.clone();
    let tid = common::tid();
    let sender = std::thread::spawn(move || {
        // The waiter is queued and its hub sleeps: the wake must cross.
        until_waiters(&evt2, 1);
        common::wait_until_asleep_in_poller(tid);
        green::spawn(move || evt2.send(11).unwrap()).wait();
    });
    let evt3 = evt.clone();
    let gt = green::spawn(move || evt3.wait_timeout(HANG));
    assert_eq!(gt.wait(), Some(11));
    sender.join().unwrap();
}

#[test]
fn root_waiting_is_woken_by_green_thread_of_another_hub() {
    let evt = Event::new();
    let evt2 = evt.clone();
    let sender = std::thread::spawn(move || {
        until_waiters(&evt2, 1);
        green::spawn(move || evt2.send("hi").unwrap()).wait();
    });
    green::hub::stats(); // this thread has a hub: its root waits through it
    assert_eq!(evt.wait_timeout(HANG), Some("hi"));
    sender.join().unwrap();
}

#[test]
fn send_from_plain_thread_wakes_green_waiter() {
    let evt = Event::new();
    let evt2 = evt.clone();
    let sender = std::thread::spawn(move || {
        until_waiters(&evt2, 1);
        evt2.send(4u64).unwrap();
    });
    let evt3 = evt.clone();
    let gt = green::spawn(move || evt3.wait_timeout(HANG));
    assert_eq!(gt.wait(), Some(4));
    sender.join().unwrap();
}

#[test]
fn plain_thread_waiting_is_woken_by_green_send() {
    let evt = Event::new();
    let evt2 = evt.clone();
    let waiter = std::thread::spawn(move || evt2.wait_timeout(HANG));
    let evt3 = evt.clone();
    let sender = green::spawn(move || {
        while waiters(&evt3) != 1 {
            green::yield_now();
        }
        evt3.send(8).unwrap();
    });
    sender.wait();
    assert_eq!(waiter.join().unwrap(), Some(8));
}

#[test]
fn plain_thread_wait_timeout_returns_none_after_the_duration() {
    let evt: Event<u8> = Event::new();
    let evt2 = evt.clone();
    let took = std::thread::spawn(move || {
        let start = Instant::now();
        assert_eq!(evt2.wait_timeout(Duration::from_millis(50)), None);
        start.elapsed()
    })
    .join()
    .unwrap();
    assert!(took >= Duration::from_millis(50), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(waiters(&evt), 0);
}

#[test]
fn one_send_reaches_waiters_on_two_hubs_and_a_plain_thread() {
    let evt = Event::new();
    let (tx, rx) = mpsc::channel();
    let other_hub = {
        let evt = evt.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            let gts: Vec<_> = (0..2)
                .map(|_| {
                    let evt = evt.clone();
                    green::spawn(move || evt.wait_timeout(HANG))
                })
                .collect();
            for gt in gts {
                tx.send(gt.wait()).unwrap();
            }
        })
    };
    let plain = {
        let evt = evt.clone();
        std::thread::spawn(move || tx.send(evt.wait_timeout(HANG)).unwrap())
    };
    let local = {
        let evt = evt.clone();
        green::spawn(move || evt.wait_timeout(HANG))
    };
    green::yield_now();
    until_waiters(&evt, 4);
    evt.send(6).unwrap();
    assert_eq!(local.wait(), Some(6));
    let got: Vec<_> = rx.iter().take(3).collect();
    assert_eq!(got, [Some(6); 3]);
    other_hub.join().unwrap();
    plain.join().unwrap();
}

#[test]
fn waiters_wake_in_arrival_order() {
    let evt = Event::new();
    let log = Rc::new(RefCell::new(Vec::new()));
    let gts: Vec<_> = (0..4)
        .map(|i| {
            let (evt, log) = (evt.clone(), log.clone());
            green::spawn(move || {
                evt.wait();
                log.borrow_mut().push(i);
            })
        })
        .collect();
    green::yield_now();
    evt.send(()).unwrap();
    gts.into_iter().for_each(|gt| gt.wait());
    assert_eq!(*log.borrow(), [0, 1, 2, 3]);
}

#[test]
fn wait_timeout_of_duration_max_waits_without_overflow() {
    let evt = Event::new();
    let evt2 = evt.clone();
    green::spawn_n(move || evt2.send(1).unwrap());
    assert_eq!(evt.wait_timeout(Duration::MAX), Some(1));
}

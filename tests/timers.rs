//! Timers: sleeps wake in deadline order, equal deadlines FIFO; `Timeout` and
//! `with_timeout`, nested and cancelled; and many timers at once.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::panic;
use std::rc::Rc;
use std::time::{Duration, Instant};

use green::{with_timeout, Elapsed, Timeout};

fn busy_for(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

#[test]
fn sleepers_wake_in_deadline_order() {
    let base = Instant::now() + Duration::from_millis(20);
    let order = Rc::new(RefCell::new(Vec::new()));
    // Spawn order is not deadline order; the deadlines decide.
    let sleepers: Vec<_> = [50u64, 10, 40, 0, 30, 20]
        .into_iter()
        .map(|ms| {
            let o = order.clone();
            green::spawn(move || {
                green::sleep_until(base + Duration::from_millis(ms));
                o.borrow_mut().push(ms);
            })
        })
        .collect();
    for s in sleepers {
        s.wait();
    }
    assert_eq!(*order.borrow(), [0, 10, 20, 30, 40, 50]);
}

#[test]
fn thousands_of_sleepers_in_mixed_order_wake_in_deadline_order() {
    // Runs of increasing deadlines (the order in which one duration's
    // sleeps arrive) broken by earlier ones, for more green threads than
    // the loop starts prefetching at. 200 ms of margin: every green thread
    // arms its timer in the first pass, a few milliseconds, before the
    // first deadline.
    const N: u64 = 4096;
    let base = Instant::now() + Duration::from_millis(200);
    let at = move |i: u64| {
        let us = if i % 7 == 3 {
            (i * 7919) % 20_000
        } else {
            i * 20_000 / N
        };
        base + Duration::from_micros(us)
    };
    let order = Rc::new(RefCell::new(Vec::new()));
    let sleepers: Vec<_> = (0..N)
        .map(|i| {
            let o = order.clone();
            green::spawn(move || {
                green::sleep_until(at(i));
                o.borrow_mut().push(i);
            })
        })
        .collect();
    for s in sleepers {
        s.wait();
    }
    let mut expected: Vec<u64> = (0..N).collect();
    expected.sort_by_key(|&i| (at(i), i));
    assert_eq!(*order.borrow(), expected);
}

#[test]
fn equal_deadlines_wake_fifo() {
    // 100 ms of margin: every green thread arms its timer (one pass of the run
    // queue, well under a millisecond) before the deadline passes.
    let deadline = Instant::now() + Duration::from_millis(100);
    let order = Rc::new(RefCell::new(Vec::new()));
    let sleepers: Vec<_> = (0..100)
        .map(|i| {
            let o = order.clone();
            green::spawn(move || {
                green::sleep_until(deadline);
                o.borrow_mut().push(i);
            })
        })
        .collect();
    for s in sleepers {
        s.wait();
    }
    assert_eq!(*order.borrow(), (0..100).collect::<Vec<_>>());
}

#[test]
fn sleep_lasts_at_least_its_duration() {
    let d = Duration::from_millis(15);
    let start = Instant::now();
    green::sleep(d);
    assert!(start.elapsed() >= d, "{:?}", start.elapsed());
    assert_eq!(green::hub::stats().timers, 0);
}

#[test]
fn sleep_until_past_deadline_only_yields() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    green::spawn_n(move || r.set(true));
    green::sleep_until(Instant::now() - Duration::from_millis(1));
    assert!(ran.get(), "a past deadline still lets the others run once");
}

#[test]
fn dropped_timeout_never_fires() {
    let before = green::hub::stats().timers;
    let t = Timeout::new(Duration::from_millis(10));
    drop(t);
    assert_eq!(green::hub::stats().timers, before);
    // Park past its deadline: an expiry would unwind from here and fail
    // the test with an `Elapsed` panic.
    green::sleep(Duration::from_millis(40));
}

#[test]
fn dropped_timeout_never_fires_in_green_thread() {
    let gt = green::spawn(|| {
        drop(Timeout::new(Duration::from_millis(10)));
        green::sleep(Duration::from_millis(40));
        "slept through"
    });
    assert_eq!(gt.join().unwrap(), "slept through");
}

#[test]
fn cancel_before_expiry_returns_true_and_never_fires() {
    let t = Timeout::new(Duration::from_millis(10));
    assert!(t.cancel());
    green::sleep(Duration::from_millis(40));
    assert_eq!(green::hub::stats().timers, 0);
}

#[test]
fn cancel_after_expiry_returns_false() {
    let t = Timeout::new(Duration::from_millis(10));
    let payload = panic::catch_unwind(|| green::sleep(Duration::from_secs(3600)))
        .expect_err("the timeout interrupts the sleep");
    assert!(t.is_mine(&*payload));
    assert!(!t.cancel());
}

#[test]
fn is_mine_tells_timeouts_apart() {
    let outer = Timeout::new(Duration::from_secs(3600));
    let inner = Timeout::new(Duration::from_millis(5));
    let payload = panic::catch_unwind(|| green::sleep(Duration::from_secs(3600))).unwrap_err();
    assert!(inner.is_mine(&*payload));
    assert!(!outer.is_mine(&*payload));
    assert!(!outer.is_mine(&"some other panic"));
}

#[test]
fn timeout_at_past_deadline_fires_at_first_park() {
    let start = Instant::now();
    let r = with_timeout(Duration::ZERO, || green::sleep(Duration::from_secs(3600)));
    assert!(r.is_err());
    // Margin: the sleep was an hour; anything under a minute proves it was cut.
    assert!(start.elapsed() < Duration::from_secs(60));
}

#[test]
fn with_timeout_returns_elapsed_when_closure_sleeps_too_long() {
    let limit = Duration::from_millis(20);
    let start = Instant::now();
    let r: Result<(), Elapsed> = with_timeout(limit, || green::sleep(Duration::from_secs(3600)));
    let elapsed = start.elapsed();
    assert!(r.is_err());
    assert!(elapsed >= limit, "{elapsed:?}");
    // Margin: the closure would sleep an hour; a minute is generous for a
    // 20 ms timeout on any machine.
    assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");
    assert_eq!(green::hub::stats().timers, 0);
}

#[test]
fn with_timeout_returns_ok_when_closure_is_quick() {
    let r = with_timeout(Duration::from_millis(30), || {
        green::sleep(Duration::from_millis(1));
        7
    });
    assert_eq!(r, Ok(7));
    // The guard is gone: parking past its deadline does not unwind.
    green::sleep(Duration::from_millis(50));
    assert_eq!(green::hub::stats().timers, 0);
}

#[test]
fn with_timeout_runs_destructors_of_interrupted_closure() {
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let r = with_timeout(Duration::from_millis(10), move || {
        let _f = Flag(d);
        green::sleep(Duration::from_secs(3600));
    });
    assert!(r.is_err());
    assert!(dropped.get());
}

#[test]
fn with_timeout_lets_other_panics_through() {
    let payload = panic::catch_unwind(|| {
        with_timeout::<(), _>(Duration::from_secs(3600), || panic!("not a timeout"))
    })
    .unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"not a timeout"));
    assert_eq!(green::hub::stats().timers, 0);
}

#[test]
fn with_timeout_interrupts_trampoline() -> io::Result<()> {
    let (a, _b) = UnixStream::pair()?;
    let fd = a.as_raw_fd();
    let r = with_timeout(Duration::from_millis(10), || {
        green::hub::trampoline(fd, green::hub::Interest::Read, None)
    });
    assert!(r.is_err(), "{r:?}");
    assert_eq!(green::hub::stats().fd_waiters, 0);
    green::hub::notify_close(fd);
    Ok(())
}

#[test]
fn timeout_waits_for_a_park_point() {
    // A CPU-bound stretch is not interrupted; the timeout is delivered at
    // the next park point after its deadline.
    let reached = Rc::new(Cell::new(false));
    let r2 = reached.clone();
    let gt = green::spawn(move || {
        with_timeout(Duration::from_millis(5), || {
            busy_for(Duration::from_millis(20));
            r2.set(true);
            green::sleep(Duration::from_millis(1));
            "not interrupted"
        })
    });
    assert!(gt.wait().is_err());
    assert!(reached.get());
}

#[test]
fn nested_outer_shorter_fires_outer() {
    let inner_returned = Rc::new(Cell::new(false));
    let ir = inner_returned.clone();
    let start = Instant::now();
    let outer = with_timeout(Duration::from_millis(20), || {
        let inner = with_timeout(Duration::from_secs(3600), || {
            green::sleep(Duration::from_secs(3600));
        });
        ir.set(true);
        inner
    });
    assert!(outer.is_err(), "the outer timeout fires: {outer:?}");
    assert!(
        !inner_returned.get(),
        "the inner with_timeout must not catch it"
    );
    assert!(start.elapsed() < Duration::from_secs(60));
    assert_eq!(green::hub::stats().timers, 0);
}

#[test]
fn nested_inner_shorter_fires_inner() {
    let start = Instant::now();
    let outer = with_timeout(Duration::from_secs(3600), || {
        let inner = with_timeout(Duration::from_millis(20), || {
            green::sleep(Duration::from_secs(3600));
        });
        // The outer one is still armed and does not fire early.
        green::sleep(Duration::from_millis(10));
        inner
    });
    let inner = outer.expect("the outer timeout does not fire");
    assert!(inner.is_err(), "the inner timeout fires");
    assert!(start.elapsed() < Duration::from_secs(60));
    assert_eq!(green::hub::stats().timers, 0);
}

#[test]
fn nested_both_expired_outer_still_fires() {
    let start = Instant::now();
    let outer = with_timeout(Duration::from_millis(10), || {
        let _inner = with_timeout(Duration::from_millis(20), || {
            // Both deadlines pass while busy; both fire at the next park.
            busy_for(Duration::from_millis(40));
            green::sleep(Duration::from_millis(1));
        });
        // The outer deadline passed long ago: this park must be cut short.
        green::sleep(Duration::from_millis(500));
    });
    assert!(outer.is_err(), "the outer timeout was lost");
    assert!(start.elapsed() < Duration::from_millis(500));
}

#[test]
fn expired_timeout_ends_green_thread_with_elapsed() {
    let before = green::hub::stats();
    let gt = green::spawn(|| {
        let _t = Timeout::new(Duration::from_millis(10));
        green::sleep(Duration::from_secs(3600));
        "woke normally"
    });
    let err = gt.join().unwrap_err();
    assert!(err.is::<Elapsed>());
    let after = green::hub::stats();
    assert_eq!(after.green_threads, before.green_threads);
    assert_eq!(after.timers, before.timers);
}

#[test]
fn hundred_thousand_sleeps_all_fire() {
    // 1000 green threads each sleep 100 times: 100 000 timers armed and
    // fired, with up to 1000 live at once.
    let fired = Rc::new(Cell::new(0u32));
    let sleepers: Vec<_> = (0..1000u64)
        .map(|i| {
            let f = fired.clone();
            green::spawn(move || {
                for k in 0..100u64 {
                    green::sleep(Duration::from_micros(100 + (i * 7 + k * 13) % 900));
                    f.set(f.get() + 1);
                }
            })
        })
        .collect();
    for s in sleepers {
        s.wait();
    }
    assert_eq!(fired.get(), 100_000);
    assert_eq!(green::hub::stats().timers, 0);
}

#[test]
fn hundred_thousand_dropped_timeouts_leave_no_timers() {
    let before = green::hub::stats().timers;
    for _ in 0..100 {
        let batch: Vec<Timeout> = (0..1000)
            .map(|_| Timeout::new(Duration::from_secs(3600)))
            .collect();
        assert_eq!(green::hub::stats().timers, before + 1000);
        drop(batch);
        assert_eq!(green::hub::stats().timers, before);
    }
    // None of them fires, and the hub still keeps time.
    let start = Instant::now();
    green::sleep(Duration::from_millis(5));
    assert!(start.elapsed() >= Duration::from_millis(5));
}

#[test]
fn hundred_thousand_cancelled_spawn_afters_leave_nothing() {
    let before = green::hub::stats();
    let ran = Rc::new(Cell::new(0u32));
    for _ in 0..100 {
        let batch: Vec<_> = (0..1000)
            .map(|_| {
                let r = ran.clone();
                green::spawn_after(Duration::from_secs(3600), move || r.set(r.get() + 1))
            })
            .collect();
        assert_eq!(green::hub::stats().timers, before.timers + 1000);
        for gt in &batch {
            assert!(gt.cancel());
        }
        let after = green::hub::stats();
        assert_eq!(after.timers, before.timers);
        assert_eq!(after.green_threads, before.green_threads);
    }
    assert_eq!(ran.get(), 0);
}

#[test]
fn root_yield_loop_lets_sleepers_wake() {
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    green::spawn_n(move || {
        green::sleep(Duration::from_millis(10));
        d.set(true);
    });
    // eventlet's `while not done: sleep(0)`: each sleep(0) passes through the
    // hub, which fires due timers. Bounded so that the bug fails instead of
    // hanging.
    let start = Instant::now();
    while !done.get() && start.elapsed() < Duration::from_secs(2) {
        green::yield_now();
    }
    assert!(done.get(), "the sleeper's timer never fired");
}

//! `green::Semaphore`, `BoundedSemaphore` and `CappedSemaphore`: counts,
//! FIFO hand-off, timeouts, kills, and use across hubs and plain OS threads.

mod common;

use std::cell::RefCell;
use std::panic;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use green::{BoundedSemaphore, CappedSemaphore, ReleaseError, Semaphore, SemaphoreGuard};

/// Only guards against a hang: a wake-up that works arrives in microseconds.
const HANG: Duration = Duration::from_secs(60);

/// Blocks the calling context until `n` acquirers wait on `sem`.
fn until_waiting(sem: &Semaphore, n: isize) {
    let deadline = Instant::now() + HANG;
    while sem.balance() != -n {
        assert!(Instant::now() < deadline, "{n} acquirers never arrived");
        std::thread::yield_now();
    }
}

/// Spawns a green thread that acquires a permit of `sem`, keeps it, and
/// logs `name`.
fn acquirer(
    sem: &Semaphore,
    log: &Rc<RefCell<Vec<&'static str>>>,
    name: &'static str,
) -> green::GreenThread<()> {
    let (sem, log) = (sem.clone(), log.clone());
    green::spawn(move || {
        sem.acquire().forget();
        log.borrow_mut().push(name);
    })
}

/// The counts that must come back to their starting values.
fn counts() -> (usize, usize) {
    let s = green::hub::stats();
    (s.green_threads, s.timers)
}

// Semaphores are send and sync: checked when this file compiles.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Semaphore>();
    assert_send_sync::<BoundedSemaphore>();
    assert_send_sync::<CappedSemaphore>();
    assert_send_sync::<SemaphoreGuard<'static>>();
    assert_send_sync::<ReleaseError>();
};

#[test]
fn count_balance_and_locked_follow_acquires_and_releases() {
    let sem = Semaphore::new(2);
    assert_eq!((sem.count(), sem.balance(), sem.locked()), (2, 2, false));
    let a = sem.acquire();
    let b = sem.acquire();
    assert_eq!((sem.count(), sem.balance(), sem.locked()), (0, 0, true));
    let sem2 = sem.clone();
    let waiter = green::spawn(move || drop(sem2.acquire()));
    green::yield_now();
    assert_eq!((sem.count(), sem.balance(), sem.locked()), (0, -1, true));
    drop(a); // handed straight to the waiter
    assert_eq!((sem.count(), sem.balance()), (0, 0));
    waiter.wait();
    drop(b);
    assert_eq!((sem.count(), sem.balance(), sem.locked()), (2, 2, false));
}

#[test]
fn release_raises_the_count_past_its_start() {
    let sem = Semaphore::new(0);
    sem.release();
    sem.release();
    assert_eq!(sem.count(), 2);
}

#[test]
fn forget_keeps_the_permit_taken() {
    let sem = Semaphore::new(1);
    sem.acquire().forget();
    assert_eq!(sem.count(), 0);
    assert!(sem.try_acquire().is_none());
    sem.release();
    assert!(sem.try_acquire().is_some());
}

#[test]
fn waiters_acquire_in_arrival_order() {
    let sem = Semaphore::new(0);
    let log = Rc::new(RefCell::new(Vec::new()));
    let gts = [
        acquirer(&sem, &log, "a"),
        acquirer(&sem, &log, "b"),
        acquirer(&sem, &log, "c"),
    ];
    green::yield_now();
    assert_eq!(sem.balance(), -3);
    for expected in [["a"].as_slice(), &["a", "b"], &["a", "b", "c"]] {
        sem.release();
        green::yield_now();
        assert_eq!(*log.borrow(), expected);
    }
    gts.into_iter().for_each(|gt| gt.wait());
    assert_eq!(sem.count(), 0);
}

#[test]
fn newcomer_does_not_overtake_a_waiter() {
    let sem = Semaphore::new(0);
    let log = Rc::new(RefCell::new(Vec::new()));
    let gt = acquirer(&sem, &log, "waiter");
    green::yield_now();
    sem.release();
    // The permit went to the waiter, which has not run yet.
    assert!(sem.try_acquire().is_none());
    assert_eq!(sem.count(), 0);
    gt.wait();
    assert_eq!(*log.borrow(), ["waiter"]);
}

#[test]
fn acquire_timeout_returns_none_after_the_duration() {
    let sem = Semaphore::new(0);
    let start = Instant::now();
    assert!(sem.acquire_timeout(Duration::from_millis(50)).is_none());
    let took = start.elapsed();
    // Margin: never early; late by less than 5 s even on a loaded machine.
    assert!(took >= Duration::from_millis(50), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(sem.balance(), 0, "the timed-out acquirer left");
    assert_eq!(counts().1, 0, "the park's timer is gone");
}

#[test]
fn acquire_timeout_gets_a_permit_released_in_time() {
    let sem = Semaphore::new(0);
    let sem2 = sem.clone();
    green::spawn_n(move || sem2.release());
    let g = sem.acquire_timeout(HANG);
    assert!(g.is_some());
    assert_eq!(counts().1, 0, "the park's timer is cancelled");
}

#[test]
fn acquire_timeout_takes_a_free_permit_at_once() {
    let sem = Semaphore::new(1);
    assert!(sem.acquire_timeout(Duration::ZERO).is_some());
}

#[test]
fn release_after_a_killed_waiter_is_not_lost() {
    let before = counts();
    let sem = Semaphore::new(0);
    let log = Rc::new(RefCell::new(Vec::new()));
    let victim = acquirer(&sem, &log, "victim");
    green::yield_now();
    victim.kill();
    assert!(victim.join().unwrap_err().is::<green::Killed>());
    assert_eq!(sem.balance(), 0, "the killed waiter left the queue");
    sem.release();
    assert_eq!(sem.count(), 1);
    assert!(log.borrow().is_empty());
    assert_eq!(counts(), before);
}

#[test]
fn waiter_killed_after_being_handed_a_permit_passes_it_on() {
    let sem = Semaphore::new(0);
    let log = Rc::new(RefCell::new(Vec::new()));
    let victim = acquirer(&sem, &log, "victim");
    let next = acquirer(&sem, &log, "next");
    green::yield_now();
    sem.release(); // handed to `victim`, which has not run yet
    victim.kill();
    assert!(victim.join().unwrap_err().is::<green::Killed>());
    next.wait();
    assert_eq!(*log.borrow(), ["next"]);
    assert_eq!((sem.count(), sem.balance()), (0, 0));
}

#[test]
fn waiter_killed_after_being_handed_a_permit_gives_it_back() {
    let sem = Semaphore::new(0);
    let log = Rc::new(RefCell::new(Vec::new()));
    let victim = acquirer(&sem, &log, "victim");
    green::yield_now();
    sem.release();
    victim.kill();
    assert!(victim.join().unwrap_err().is::<green::Killed>());
    assert!(log.borrow().is_empty());
    assert_eq!((sem.count(), sem.balance()), (1, 1));
}

#[test]
fn timeout_around_acquire_unwinds_and_leaves_no_waiter() {
    let before = counts();
    let sem = Semaphore::new(0);
    let sem2 = sem.clone();
    let gt = green::spawn(move || {
        let _t = green::Timeout::new(Duration::from_millis(20));
        sem2.acquire().forget();
    });
    assert!(gt.join().unwrap_err().is::<green::Elapsed>());
    assert_eq!(sem.balance(), 0);
    sem.release();
    assert_eq!(sem.count(), 1);
    assert_eq!(counts(), before);
}

#[test]
fn with_timeout_on_the_root_gives_up_the_acquire() {
    let sem = Semaphore::new(0);
    let r = green::with_timeout(Duration::from_millis(20), || sem.acquire().forget());
    assert!(r.is_err());
    assert_eq!(sem.balance(), 0);
}

#[test]
fn guard_dropped_by_a_killed_holder_releases() {
    let sem = Semaphore::new(1);
    let sem2 = sem.clone();
    let holder = green::spawn(move || {
        let _permit = sem2.acquire();
        green::sleep(HANG);
    });
    green::yield_now();
    assert_eq!(sem.count(), 0);
    holder.kill();
    assert_eq!(sem.count(), 1);
}

#[test]
fn bounded_release_past_the_initial_count_is_an_error() {
    let sem = BoundedSemaphore::new(2);
    let err = sem.release().unwrap_err();
    assert_eq!(sem.count(), 2);
    let msg = err.to_string();
    assert!(msg.contains("released too many times"), "{msg}");
    assert!(msg.contains('2'), "names the bound: {msg}");
}

#[test]
fn bounded_release_of_a_taken_permit_is_fine() {
    let sem = BoundedSemaphore::new(1);
    sem.acquire().forget();
    assert!(sem.release().is_ok());
    assert_eq!(sem.count(), 1);
    assert!(sem.release().is_err());
}

#[test]
fn bounded_release_hands_the_permit_to_a_waiter() {
    let sem = BoundedSemaphore::new(1);
    sem.acquire().forget();
    let sem2 = sem.clone();
    let gt = green::spawn(move || sem2.acquire().forget());
    green::yield_now();
    assert_eq!(sem.balance(), -1);
    assert!(sem.release().is_ok());
    gt.wait();
    assert_eq!(sem.count(), 0);
}

#[test]
fn bounded_acquire_timeout_returns_none_after_the_duration() {
    let sem = BoundedSemaphore::new(0);
    let start = Instant::now();
    assert!(sem.acquire_timeout(Duration::from_millis(50)).is_none());
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(50), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(sem.balance(), 0);
}

#[test]
fn capped_release_waits_at_the_limit_until_an_acquire() {
    let sem = CappedSemaphore::new(1, 1);
    let log = Rc::new(RefCell::new(Vec::new()));
    let (sem2, log2) = (sem.clone(), log.clone());
    let releaser = green::spawn(move || {
        sem2.release();
        log2.borrow_mut().push("released");
    });
    green::yield_now();
    assert!(log.borrow().is_empty(), "the release waits");
    assert_eq!(sem.count(), 1);
    sem.acquire().forget(); // makes room: the waiting release goes in
    assert_eq!(sem.count(), 1);
    releaser.wait();
    assert_eq!(*log.borrow(), ["released"]);
    assert_eq!((sem.count(), sem.limit()), (1, 1));
}

#[test]
fn capped_release_below_the_limit_does_not_wait() {
    let sem = CappedSemaphore::new(0, 2);
    sem.release();
    sem.release();
    assert_eq!(sem.count(), 2);
}

#[test]
fn capped_release_at_the_limit_hands_to_a_waiting_acquirer() {
    let sem = CappedSemaphore::new(0, 0);
    let sem2 = sem.clone();
    let gt = green::spawn(move || sem2.acquire().forget());
    green::yield_now();
    sem.release(); // does not wait: the permit goes to the acquirer
    gt.wait();
    assert_eq!(sem.count(), 0);
}

#[test]
fn killed_capped_releaser_adds_nothing() {
    let sem = CappedSemaphore::new(1, 1);
    let sem2 = sem.clone();
    let releaser = green::spawn(move || sem2.release());
    green::yield_now();
    releaser.kill();
    assert!(releaser.join().unwrap_err().is::<green::Killed>());
    sem.acquire().forget();
    assert_eq!(sem.count(), 0, "no release was waiting any more");
}

#[test]
fn capped_guard_drop_releases() {
    let sem = CappedSemaphore::new(1, 1);
    drop(sem.acquire());
    assert_eq!(sem.count(), 1);
}

#[test]
fn capped_acquire_timeout_returns_none_after_the_duration() {
    let sem = CappedSemaphore::new(0, 1);
    let start = Instant::now();
    assert!(sem.acquire_timeout(Duration::from_millis(50)).is_none());
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(50), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn capped_count_above_limit_panics() {
    let p = panic::catch_unwind(|| CappedSemaphore::new(3, 2)).unwrap_err();
    let msg = p.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("count (3) must not exceed the limit (2)"),
        "{msg}"
    );
}

#[test]
fn release_from_green_thread_of_another_hub_wakes_green_acquirer() {
    let sem = Semaphore::new(0);
    let sem2 = sem.clone();
    let tid = common::tid();
    let releaser = std::thread::spawn(move || {
        until_waiting(&sem2, 1);
        // The acquirer's hub sleeps: the wake must cross OS threads.
        common::wait_until_asleep_in_poller(tid);
        green::spawn(move || sem2.release()).wait();
    });
    let sem3 = sem.clone();
    let gt = green::spawn(move || sem3.acquire_timeout(HANG).map(SemaphoreGuard::forget));
    assert!(gt.wait().is_some());
    releaser.join().unwrap();
    assert_eq!(sem.count(), 0);
}

#[test]
fn release_from_plain_thread_wakes_green_acquirer() {
    let sem = Semaphore::new(0);
    let sem2 = sem.clone();
    let releaser = std::thread::spawn(move || {
        until_waiting(&sem2, 1);
        sem2.release();
    });
    let sem3 = sem.clone();
    let gt = green::spawn(move || sem3.acquire_timeout(HANG).map(SemaphoreGuard::forget));
    assert!(gt.wait().is_some());
    releaser.join().unwrap();
}

#[test]
fn plain_thread_acquire_is_woken_by_green_release() {
    let sem = Semaphore::new(0);
    let sem2 = sem.clone();
    let acquirer = std::thread::spawn(move || {
        let g = sem2.acquire_timeout(HANG);
        g.map(SemaphoreGuard::forget).is_some()
    });
    let sem3 = sem.clone();
    green::spawn(move || {
        while sem3.balance() != -1 {
            green::yield_now();
        }
        sem3.release();
    })
    .wait();
    assert!(acquirer.join().unwrap());
    assert_eq!(sem.count(), 0);
}

#[test]
fn plain_thread_acquire_timeout_returns_none_after_the_duration() {
    let sem = Semaphore::new(0);
    let sem2 = sem.clone();
    let took = std::thread::spawn(move || {
        let start = Instant::now();
        assert!(sem2.acquire_timeout(Duration::from_millis(50)).is_none());
        start.elapsed()
    })
    .join()
    .unwrap();
    assert!(took >= Duration::from_millis(50), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(sem.balance(), 0);
}

#[test]
fn permits_cross_two_hubs_and_a_plain_thread_in_fifo_order() {
    let sem = Semaphore::new(0);
    let (tx, rx) = mpsc::channel();
    let spawn_acquirer = |name: &'static str, green_side: bool| {
        let (sem, tx) = (sem.clone(), tx.clone());
        std::thread::spawn(move || {
            let take = move || {
                sem.acquire_timeout(HANG).unwrap().forget();
                tx.send(name).unwrap();
            };
            if green_side {
                green::spawn(take).wait();
            } else {
                take();
            }
        })
    };
    // One at a time, so that the arrival order is known.
    let a = spawn_acquirer("other hub", true);
    until_waiting(&sem, 1);
    let b = spawn_acquirer("plain thread", false);
    until_waiting(&sem, 2);
    for expected in ["other hub", "plain thread"] {
        green::spawn({
            let sem = sem.clone();
            move || sem.release()
        })
        .wait();
        assert_eq!(rx.recv_timeout(HANG).unwrap(), expected);
    }
    a.join().unwrap();
    b.join().unwrap();
    assert_eq!(sem.count(), 0);
}

#[test]
fn capped_release_on_plain_thread_waits_for_a_green_acquire() {
    let sem = CappedSemaphore::new(1, 1);
    let sem2 = sem.clone();
    let (tx, rx) = mpsc::channel();
    let releaser = std::thread::spawn(move || {
        sem2.release();
        tx.send(()).unwrap();
    });
    // The count is at its limit: the release cannot return before an
    // acquire, however long we look.
    assert!(rx.recv_timeout(Duration::from_millis(20)).is_err());
    green::spawn({
        let sem = sem.clone();
        move || sem.acquire().forget()
    })
    .wait();
    rx.recv_timeout(HANG).unwrap();
    releaser.join().unwrap();
    assert_eq!(sem.count(), 1);
}

#[test]
fn capped_waiter_killed_with_a_permit_at_the_limit_does_not_overfill() {
    let sem = CappedSemaphore::new(0, 1);
    let sem2 = sem.clone();
    let victim = green::spawn(move || sem2.acquire().forget());
    green::yield_now();
    sem.release(); // handed to `victim`, which has not run yet
    sem.release(); // fills the count to the limit
    victim.kill();
    assert!(victim.join().unwrap_err().is::<green::Killed>());
    assert_eq!(sem.count(), 1, "the count stays within its limit");
    // Neither release is lost: the victim's permit comes in as room is made.
    sem.try_acquire().unwrap().forget();
    assert_eq!(sem.count(), 1);
    sem.try_acquire().unwrap().forget();
    assert_eq!(sem.count(), 0);
}

#[test]
fn bounded_waiter_killed_with_a_permit_at_the_bound_does_not_overfill() {
    let sem = BoundedSemaphore::new(1);
    sem.acquire().forget();
    let sem2 = sem.clone();
    let victim = green::spawn(move || sem2.acquire().forget());
    green::yield_now();
    sem.release().unwrap(); // handed to `victim`, which has not run yet
    let _ = sem.release(); // one release too many
    victim.kill();
    assert!(victim.join().unwrap_err().is::<green::Killed>());
    assert_eq!(sem.count(), 1, "the count stays within its bound");
    assert!(sem.release().is_err());
}

#[test]
fn capped_acquire_at_limit_zero_takes_a_waiting_release() {
    let sem = CappedSemaphore::new(0, 0);
    let sem2 = sem.clone();
    let releaser = green::spawn(move || sem2.release());
    green::yield_now(); // the release waits for an acquire
    assert!(!releaser.is_finished());
    assert!(sem
        .acquire_timeout(HANG)
        .map(SemaphoreGuard::forget)
        .is_some());
    releaser.wait();
    assert_eq!(sem.count(), 0);
}

#[test]
fn capped_waiter_killed_with_a_permit_at_limit_zero_passes_it_on() {
    let sem = CappedSemaphore::new(0, 0);
    let sem2 = sem.clone();
    let victim = green::spawn(move || sem2.acquire().forget());
    green::yield_now();
    sem.release(); // handed to `victim`, which has not run yet
    victim.kill();
    assert!(victim.join().unwrap_err().is::<green::Killed>());
    assert_eq!(sem.count(), 0);
    // The release is not lost: the next acquire gets it.
    assert!(sem.try_acquire().map(SemaphoreGuard::forget).is_some());
    assert!(sem.try_acquire().is_none());
}

#[test]
fn acquire_timeout_of_duration_max_waits_without_overflow() {
    let sem = Semaphore::new(0);
    let sem2 = sem.clone();
    green::spawn_n(move || sem2.release());
    assert!(sem.acquire_timeout(Duration::MAX).is_some());
}

#[test]
fn timeout_around_a_waiting_capped_release_withdraws_it() {
    let sem = CappedSemaphore::new(1, 1);
    let r = green::with_timeout(Duration::from_millis(20), || sem.release());
    assert!(r.is_err());
    sem.acquire().forget();
    assert_eq!(sem.count(), 0, "the timed-out release added nothing");
}

#[test]
fn bounded_release_from_plain_thread_wakes_green_acquirer() {
    let sem = BoundedSemaphore::new(1);
    sem.acquire().forget();
    let sem2 = sem.clone();
    let releaser = std::thread::spawn(move || {
        let deadline = Instant::now() + HANG;
        while sem2.balance() != -1 {
            assert!(Instant::now() < deadline, "the acquirer never arrived");
            std::thread::yield_now();
        }
        sem2.release()
    });
    let sem3 = sem.clone();
    let gt = green::spawn(move || sem3.acquire_timeout(HANG).map(SemaphoreGuard::forget));
    assert!(gt.wait().is_some());
    assert_eq!(releaser.join().unwrap(), Ok(()));
    assert_eq!(sem.count(), 0);
}

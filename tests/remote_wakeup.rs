//! `green::hub::Unparker`: waking a parked context from the same or another
//! OS thread, through the hub's remote queue and the poller's notification.
//! Like `std::thread::Thread::unpark`, a wakeup ends the current park or the
//! next one, and is spent once a park has returned; the unparker of an exited
//! green thread wakes nothing.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use green::hub::{current_unparker, park_until, Unparker};

/// A deadline that only guards against a hang: a wakeup that works arrives
/// in microseconds, so a minute is never reached unless it was lost.
fn hang_guard() -> Option<Instant> {
    Some(Instant::now() + Duration::from_secs(60))
}

/// Parks until `flag` is set, checking it after every (possibly spurious)
/// wakeup. Panics if the hang guard passes.
fn park_until_set(flag: &AtomicBool) {
    let deadline = hang_guard();
    while !flag.load(Ordering::SeqCst) {
        assert!(park_until(deadline), "the wakeup never arrived");
    }
}

// An unparker goes to other OS threads: checked when this file compiles.
const _: () = {
    const fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Unparker>();
};

#[test]
fn unparker_from_other_os_thread_wakes_sleeping_root() {
    let flag = Arc::new(AtomicBool::new(false));
    let u = current_unparker();
    let tid = common::tid();
    let f = flag.clone();
    let waker = std::thread::spawn(move || {
        // Only once the hub sleeps in its poller: the wakeup must notify it.
        common::wait_until_asleep_in_poller(tid);
        f.store(true, Ordering::SeqCst);
        u.unpark();
    });
    park_until_set(&flag);
    waker.join().unwrap();
}

#[test]
fn waker_from_unparker_wakes_sleeping_root() {
    let flag = Arc::new(AtomicBool::new(false));
    let w = current_unparker().into_waker();
    let tid = common::tid();
    let f = flag.clone();
    let t = std::thread::spawn(move || {
        common::wait_until_asleep_in_poller(tid);
        f.store(true, Ordering::SeqCst);
        w.wake();
    });
    park_until_set(&flag);
    t.join().unwrap();
}

#[test]
fn unparker_from_other_os_thread_wakes_green_thread() {
    let (tx, rx) = mpsc::channel::<(Unparker, Arc<AtomicBool>)>();
    let tid = common::tid();
    let waker = std::thread::spawn(move || {
        let (u, flag) = rx.recv().unwrap();
        // The green thread is parked and the root joins it: the hub sleeps.
        common::wait_until_asleep_in_poller(tid);
        flag.store(true, Ordering::SeqCst);
        u.unpark();
    });
    let gt = green::spawn(move || {
        let flag = Arc::new(AtomicBool::new(false));
        tx.send((current_unparker(), flag.clone())).unwrap();
        park_until_set(&flag);
        green::current_id()
    });
    let id = gt.id();
    assert_eq!(gt.wait(), Some(id), "woken on its own green thread");
    waker.join().unwrap();
}

#[test]
fn wakeups_from_several_os_threads_all_arrive() {
    const OS_THREADS: usize = 4;
    const GREEN_THREADS: usize = 500;
    const ROUNDS: usize = 10;
    let mut senders = Vec::new();
    let mut wakers = Vec::new();
    for _ in 0..OS_THREADS {
        let (tx, rx) = mpsc::channel::<(Unparker, Arc<AtomicBool>)>();
        senders.push(tx);
        wakers.push(std::thread::spawn(move || {
            let mut sent = 0;
            for (u, flag) in rx {
                flag.store(true, Ordering::SeqCst);
                u.unpark();
                sent += 1;
            }
            sent
        }));
    }
    let arrived = Rc::new(Cell::new(0usize));
    let greens: Vec<_> = (0..GREEN_THREADS)
        .map(|i| {
            let tx = senders[i % OS_THREADS].clone();
            let arrived = arrived.clone();
            green::spawn(move || {
                for _ in 0..ROUNDS {
                    // Often the flag is set before this green thread parks:
                    // then the wakeup is left over and ends a later park
                    // early, which `park_until_set` must survive.
                    let flag = Arc::new(AtomicBool::new(false));
                    tx.send((current_unparker(), flag.clone())).unwrap();
                    park_until_set(&flag);
                    arrived.set(arrived.get() + 1);
                }
            })
        })
        .collect();
    drop(senders);
    for g in greens {
        g.wait();
    }
    let sent: usize = wakers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(sent, GREEN_THREADS * ROUNDS);
    assert_eq!(arrived.get(), GREEN_THREADS * ROUNDS);
}

#[test]
fn wakeup_after_a_spurious_return_is_not_lost() {
    // An earlier wait made an unparker, was woken, and did not need to park:
    // its wakeup is left over for this context's next park.
    let earlier = current_unparker();
    earlier.unpark();
    // A waiter publishes its unparker and parks; the earlier wake ends the
    // park at once: a spurious return, as far as this waiter can tell.
    let mine = current_unparker();
    assert!(park_until(hang_guard()));
    // Its condition is not met, so it parks again, as `std::thread::park`
    // users do. Its waker has already unparked the handle it was given, so
    // the park returns at once; 200 ms only bounds the failure.
    std::thread::spawn(move || mine.unpark()).join().unwrap();
    let woken = park_until(Some(Instant::now() + Duration::from_millis(200)));
    assert!(woken, "the wakeup sent after the spurious return was lost");
}

#[test]
fn unpark_before_park_returns_at_once() {
    let u = current_unparker();
    std::thread::spawn(move || u.unpark()).join().unwrap();
    // The wake is queued for this park: it returns without waiting.
    assert!(park_until(hang_guard()));
}

#[test]
fn spent_wakeup_does_not_wake_a_later_park() {
    let u = current_unparker();
    // Unparks before the park coalesce into one wakeup, like std's token.
    u.unpark();
    u.unpark();
    u.unpark();
    assert!(park_until(hang_guard()), "the next park returns at once");
    let wait = Duration::from_millis(30);
    let start = Instant::now();
    assert!(
        !park_until(Some(start + wait)),
        "a spent wakeup woke a later park"
    );
    assert!(start.elapsed() >= wait);
}

#[test]
fn spent_remote_wakeup_does_not_wake_a_later_park() {
    let u = current_unparker();
    std::thread::spawn(move || u.unpark()).join().unwrap();
    assert!(park_until(hang_guard()));
    assert!(!park_until(Some(
        Instant::now() + Duration::from_millis(30)
    )));
}

#[test]
fn unparker_of_finished_green_thread_does_not_wake_its_successor() {
    // The first green thread hands out an unparker for a park it never makes.
    let stale = green::spawn(current_unparker).wait();
    // The next one takes over the freed slot and parks with a deadline.
    let successor = green::spawn(|| park_until(Some(Instant::now() + Duration::from_millis(30))));
    green::yield_now(); // it parks
    stale.unpark();
    std::thread::spawn(move || stale.unpark()).join().unwrap();
    assert!(
        !successor.wait(),
        "a stale unparker woke another green thread"
    );
}

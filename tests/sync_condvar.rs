//! `green::sync::Condvar`: waits park the current green thread and release
//! the mutex; notifications reach green threads of the same hub, of another
//! hub, and plain OS threads; a notification given to a waiter that is
//! killed before it runs goes to the next waiter.

mod common;

use std::cell::RefCell;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use green::sync::{Condvar, Mutex, WaitTimeoutResult};

/// Waits for a green thread, failing instead of hanging if it never
/// finishes (a lost notification): a working one finishes in milliseconds.
fn join_within<T>(gt: green::GreenThread<T>) -> T {
    green::with_timeout(Duration::from_secs(10), || gt.wait())
        .expect("the green thread never finished: a wake-up was lost")
}

/// A mutex-protected count of "tokens" and its condition variable.
type Tokens = (Mutex<u32>, Condvar);

/// Waits until a token is available and takes it.
fn take_token(pair: &Tokens) {
    let (lock, cvar) = pair;
    let mut n = cvar.wait_while(lock.lock().unwrap(), |n| *n == 0).unwrap();
    *n -= 1;
}

#[test]
fn condvar_has_std_bounds() {
    fn send_sync<T: Send + Sync + UnwindSafe + RefUnwindSafe>() {}
    send_sync::<Condvar>();
    send_sync::<WaitTimeoutResult>();
}

#[test]
fn ping_pong_between_two_green_threads() {
    const ROUNDS: usize = 100;
    // (whose turn: 0 or 1, moves made)
    let shared = Rc::new((Mutex::new((0usize, Vec::new())), Condvar::new()));
    let players: Vec<_> = (0..2)
        .map(|me| {
            let shared = shared.clone();
            green::spawn(move || {
                let (lock, cvar) = &*shared;
                for _ in 0..ROUNDS {
                    let mut g = cvar
                        .wait_while(lock.lock().unwrap(), |s| s.0 != me)
                        .unwrap();
                    g.1.push(me);
                    g.0 = 1 - me;
                    cvar.notify_one();
                }
            })
        })
        .collect();
    for p in players {
        join_within(p);
    }
    let moves = &shared.0.lock().unwrap().1;
    assert_eq!(moves.len(), 2 * ROUNDS);
    assert!(moves.iter().enumerate().all(|(i, &who)| who == i % 2));
}

#[test]
fn wait_releases_the_mutex_while_parked() {
    let pair = Rc::new((Mutex::new(false), Condvar::new()));
    let p = pair.clone();
    let waiter = green::spawn(move || {
        let (lock, cvar) = &*p;
        drop(cvar.wait_while(lock.lock().unwrap(), |go| !*go).unwrap());
    });
    green::yield_now(); // it parks in the wait
    let (lock, cvar) = &*pair;
    // The waiter holds no lock while parked.
    *lock.try_lock().unwrap() = true;
    cvar.notify_one();
    join_within(waiter);
}

#[test]
fn notify_one_wakes_the_longest_waiter_first() {
    let pair = Rc::new((Mutex::new(0u32), Condvar::new()));
    let order = Rc::new(RefCell::new(Vec::new()));
    let waiters: Vec<_> = (0..3)
        .map(|i| {
            let (pair, order) = (pair.clone(), order.clone());
            let gt = green::spawn(move || {
                take_token(&pair);
                order.borrow_mut().push(i);
            });
            green::yield_now(); // it parks before the next one starts
            gt
        })
        .collect();
    let (lock, cvar) = &*pair;
    for _ in 0..3 {
        *lock.lock().unwrap() += 1;
        cvar.notify_one();
        green::yield_now(); // the woken one takes its token
    }
    for w in waiters {
        join_within(w);
    }
    assert_eq!(*order.borrow(), [0, 1, 2]);
}

#[test]
fn notify_all_wakes_every_waiter() {
    let pair = Rc::new((Mutex::new(false), Condvar::new()));
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let pair = pair.clone();
            green::spawn(move || {
                let (lock, cvar) = &*pair;
                drop(cvar.wait_while(lock.lock().unwrap(), |go| !*go).unwrap());
            })
        })
        .collect();
    green::yield_now(); // all park
    let (lock, cvar) = &*pair;
    *lock.lock().unwrap() = true;
    cvar.notify_all();
    for w in waiters {
        join_within(w);
    }
}

#[test]
fn notify_with_no_waiter_is_not_remembered() {
    let (lock, cvar) = (Mutex::new(()), Condvar::new());
    cvar.notify_one();
    cvar.notify_all();
    let (_g, res) = cvar
        .wait_timeout(lock.lock().unwrap(), Duration::from_millis(10))
        .unwrap();
    assert!(res.timed_out());
}

#[test]
fn wait_timeout_times_out_after_its_duration() {
    let (lock, cvar) = (Mutex::new(()), Condvar::new());
    let start = Instant::now();
    let (guard, res) = cvar
        .wait_timeout(lock.lock().unwrap(), Duration::from_millis(50))
        .unwrap();
    let took = start.elapsed();
    assert!(res.timed_out());
    // Margin: at least the timeout; at most 5 s on a loaded machine.
    assert!(took >= Duration::from_millis(50), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // The mutex is held again.
    assert!(lock.try_lock().is_err());
    drop(guard);
}

#[test]
fn wait_timeout_on_a_plain_os_thread_times_out() {
    let took = std::thread::spawn(|| {
        let (lock, cvar) = (Mutex::new(()), Condvar::new());
        let start = Instant::now();
        let (_g, res) = cvar
            .wait_timeout(lock.lock().unwrap(), Duration::from_millis(50))
            .unwrap();
        assert!(res.timed_out());
        start.elapsed()
    })
    .join()
    .unwrap();
    assert!(took >= Duration::from_millis(50), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn wait_timeout_notified_in_time_does_not_time_out() {
    let pair = Rc::new((Mutex::new(false), Condvar::new()));
    let p = pair.clone();
    let notifier = green::spawn(move || {
        let (lock, cvar) = &*p;
        *lock.lock().unwrap() = true;
        cvar.notify_one();
    });
    let (lock, cvar) = &*pair;
    let (g, res) = cvar
        .wait_timeout_while(lock.lock().unwrap(), Duration::from_secs(10), |go| !*go)
        .unwrap();
    assert!(*g);
    assert!(!res.timed_out());
    drop(g);
    join_within(notifier);
}

#[test]
fn wait_timeout_while_times_out_while_the_condition_holds() {
    let (lock, cvar) = (Mutex::new(1), Condvar::new());
    let start = Instant::now();
    let (g, res) = cvar
        .wait_timeout_while(lock.lock().unwrap(), Duration::from_millis(30), |n| *n == 1)
        .unwrap();
    assert!(res.timed_out());
    assert_eq!(*g, 1);
    assert!(start.elapsed() >= Duration::from_millis(30));
}

#[test]
fn green_notifier_on_another_hub_wakes_green_waiter() {
    let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
    let p = pair.clone();
    let waiter = green::spawn(move || take_token(&p));
    green::yield_now(); // it parks
    let p = pair.clone();
    std::thread::spawn(move || {
        let notifier = green::spawn(move || {
            let (lock, cvar) = &*p;
            *lock.lock().unwrap() += 1;
            cvar.notify_one();
        });
        join_within(notifier);
    })
    .join()
    .unwrap();
    join_within(waiter);
}

#[test]
fn plain_os_thread_notifier_wakes_green_waiter() {
    let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
    let p = pair.clone();
    let waiter = green::spawn(move || take_token(&p));
    green::yield_now(); // it parks
    let p = pair.clone();
    std::thread::spawn(move || {
        let (lock, cvar) = &*p;
        *lock.lock().unwrap() += 1;
        cvar.notify_one();
    })
    .join()
    .unwrap();
    join_within(waiter);
}

#[test]
fn green_notifier_wakes_plain_os_thread_waiter() {
    let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
    let (tid_tx, tid_rx) = mpsc::channel();
    let p = pair.clone();
    let plain = std::thread::spawn(move || {
        tid_tx.send(common::tid()).unwrap();
        take_token(&p);
    });
    common::wait_until_sleeping(tid_rx.recv().unwrap()); // it waits
    let p = pair.clone();
    let notifier = green::spawn(move || {
        let (lock, cvar) = &*p;
        *lock.lock().unwrap() += 1;
        cvar.notify_one();
    });
    join_within(notifier);
    plain.join().unwrap();
}

#[test]
fn killed_waiter_passes_its_notification_on() {
    let pair = Rc::new((Mutex::new(0u32), Condvar::new()));
    let (p1, p2) = (pair.clone(), pair.clone());
    let first = green::spawn(move || take_token(&p1));
    let second = green::spawn(move || take_token(&p2));
    green::yield_now(); // both park, `first` ahead
    let (lock, cvar) = &*pair;
    *lock.lock().unwrap() += 1;
    cvar.notify_one(); // reaches `first`, which has not run yet
    first.kill(); // it unwinds: the notification goes to `second`
    assert!(first.join().unwrap_err().is::<green::Killed>());
    join_within(second);
    assert_eq!(*lock.lock().unwrap(), 0);
}

#[test]
fn killed_waiter_leaves_the_mutex_unlocked() {
    let pair = Rc::new((Mutex::new(false), Condvar::new()));
    let p = pair.clone();
    let waiter = green::spawn(move || {
        let (lock, cvar) = &*p;
        drop(cvar.wait_while(lock.lock().unwrap(), |go| !*go).unwrap());
    });
    green::yield_now(); // it parks
    waiter.kill();
    assert!(waiter.join().unwrap_err().is::<green::Killed>());
    let (lock, _) = &*pair;
    assert!(lock.try_lock().is_ok());
    assert!(!lock.is_poisoned());
}

#[test]
fn waiter_killed_while_re_locking_leaves_the_mutex_consistent() {
    let pair = Rc::new((Mutex::new(false), Condvar::new()));
    let p = pair.clone();
    let waiter = green::spawn(move || {
        let (lock, cvar) = &*p;
        drop(cvar.wait_while(lock.lock().unwrap(), |go| !*go).unwrap());
    });
    green::yield_now(); // it parks
    let (lock, cvar) = &*pair;
    let mut g = lock.lock().unwrap();
    *g = true;
    cvar.notify_one();
    green::yield_now(); // woken, it queues for the mutex this context holds
    waiter.kill();
    assert!(waiter.join().unwrap_err().is::<green::Killed>());
    drop(g);
    assert!(lock.try_lock().is_ok());
    assert!(!lock.is_poisoned());
}

#[test]
fn timeout_around_a_condvar_wait() {
    let (lock, cvar) = (Mutex::new(()), Condvar::new());
    let r = green::with_timeout(Duration::from_millis(20), || {
        drop(cvar.wait(lock.lock().unwrap()).unwrap());
    });
    assert!(r.is_err());
    assert!(lock.try_lock().is_ok());
    assert!(!lock.is_poisoned());
}

#[test]
fn wait_reports_a_mutex_poisoned_meanwhile() {
    let pair = Rc::new((Mutex::new(false), Condvar::new()));
    let p = pair.clone();
    let waiter = green::spawn(move || {
        let (lock, cvar) = &*p;
        let r = cvar.wait_while(lock.lock().unwrap(), |go| !*go);
        r.is_err()
    });
    green::yield_now(); // it parks
    let p = pair.clone();
    let poisoner = green::spawn(move || {
        let mut g = p.0.lock().unwrap();
        *g = true;
        panic!("poison the mutex");
    });
    assert!(poisoner.join().is_err());
    pair.1.notify_one();
    assert!(
        join_within(waiter),
        "the wait returned Ok from a poisoned mutex"
    );
}

/// A waiter woken by notify_one and killed while it re-takes the mutex
/// loses the notification: the other waiter is never woken.
#[test]
fn condvar_notification_passed_on_when_killed_during_relock() {
    use green::sync::{Condvar, Mutex};
    use std::rc::Rc;
    let pair = Rc::new((Mutex::new(0u32), Condvar::new()));
    let consumer = |pair: Rc<(Mutex<u32>, Condvar)>| {
        move || {
            let (l, c) = &*pair;
            let mut g = c.wait_while(l.lock().unwrap(), |n| *n == 0).unwrap();
            *g -= 1;
        }
    };
    let c1 = green::spawn(consumer(pair.clone()));
    let c2 = green::spawn(consumer(pair.clone()));
    green::yield_now(); // both wait on the condvar, c1 first
    let (l, c) = &*pair;
    let mut g = l.lock().unwrap();
    *g = 1;
    c.notify_one(); // c1 is notified
    green::yield_now(); // c1 leaves the condvar and parks on the mutex
    c1.kill();
    green::yield_now(); // c1 unwinds
    drop(g);
    // c2 must now see the item.
    let r = green::with_timeout(Duration::from_secs(2), || c2.wait());
    assert!(
        r.is_ok(),
        "notification lost: c2 still waits with the item available"
    );
    let _ = c1.join();
}

/// Same with a Timeout firing during the re-lock.
#[test]
fn condvar_notification_passed_on_when_timed_out_during_relock() {
    use green::sync::{Condvar, Mutex};
    use std::rc::Rc;
    let pair = Rc::new((Mutex::new(0u32), Condvar::new()));
    let p1 = pair.clone();
    let c1 = green::spawn(move || {
        let (l, c) = &*p1;
        green::with_timeout(Duration::from_millis(50), || {
            let mut g = c.wait_while(l.lock().unwrap(), |n| *n == 0).unwrap();
            *g -= 1;
        })
    });
    let p2 = pair.clone();
    let c2 = green::spawn(move || {
        let (l, c) = &*p2;
        let mut g = c.wait_while(l.lock().unwrap(), |n| *n == 0).unwrap();
        *g -= 1;
    });
    green::yield_now(); // both wait, c1 first
    let (l, c) = &*pair;
    let mut g = l.lock().unwrap();
    *g = 1;
    c.notify_one(); // c1 is notified, then blocks on the mutex
                    // Hold the mutex until c1's timeout has fired.
    green::sleep(Duration::from_millis(100));
    drop(g);
    assert!(c1.wait().is_err(), "c1 timed out");
    let r = green::with_timeout(Duration::from_secs(2), || c2.wait());
    assert!(
        r.is_ok(),
        "notification lost: c2 still waits with the item available"
    );
}

#[test]
#[allow(deprecated)]
fn wait_timeout_ms_returns_false_when_it_times_out() {
    let (lock, cvar) = (Mutex::new(()), Condvar::new());
    let start = Instant::now();
    let (guard, notified) = cvar.wait_timeout_ms(lock.lock().unwrap(), 50).unwrap();
    let took = start.elapsed();
    // std's meaning: `true` only if notified before the time ran out.
    assert!(!notified);
    // Margin: at least the timeout; at most 5 s on a loaded machine.
    assert!(took >= Duration::from_millis(50), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    drop(guard);
}

#[test]
#[allow(deprecated)]
fn wait_timeout_ms_returns_true_when_notified() {
    let pair = Rc::new((Mutex::new(()), Condvar::new()));
    let p = pair.clone();
    let notifier = green::spawn(move || {
        let (lock, cvar) = &*p;
        let _g = lock.lock().unwrap();
        cvar.notify_one();
    });
    let (lock, cvar) = &*pair;
    // The root parks in the wait, so the notifier runs.
    let (guard, notified) = cvar.wait_timeout_ms(lock.lock().unwrap(), 10_000).unwrap();
    assert!(notified);
    drop(guard);
    join_within(notifier);
}

//! `green::sync::Mutex`: parks waiting green threads (never the whole OS
//! thread), hands the lock over in FIFO order, works across hubs and with
//! plain OS threads, and is poisoned by a panic but not by a kill or a
//! `Timeout`.

mod common;

use std::cell::RefCell;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use green::sync::{Mutex, MutexGuard, TryLockError};

/// Waits for a green thread, failing instead of hanging if it never
/// finishes (a lost hand-off): a working one finishes in milliseconds.
fn join_within<T>(gt: green::GreenThread<T>) -> T {
    green::with_timeout(Duration::from_secs(10), || gt.wait())
        .expect("the green thread never finished: a wake-up was lost")
}

// Mutex and guard have std bounds: checked when this file compiles.
const _: () = {
    const fn send<T: Send>() {}
    const fn sync<T: Sync>() {}
    const fn unwind_safe<T: UnwindSafe + RefUnwindSafe>() {}
    // `T: Send` makes the mutex `Send + Sync`, even when `T` is not `Sync`.
    send::<Mutex<std::cell::Cell<u32>>>();
    sync::<Mutex<std::cell::Cell<u32>>>();
    sync::<Mutex<Vec<u8>>>();
    sync::<MutexGuard<'static, u32>>();
    unwind_safe::<Mutex<std::cell::Cell<u32>>>();
};

#[test]
fn holder_sleeping_with_the_lock_lets_the_hub_run() {
    let m = Rc::new(Mutex::new(Vec::new()));
    let log = Rc::new(RefCell::new(Vec::new()));
    let (m1, log1) = (m.clone(), log.clone());
    let holder = green::spawn(move || {
        let mut g = m1.lock().unwrap();
        log1.borrow_mut().push("holder locked");
        green::sleep(Duration::from_millis(20));
        log1.borrow_mut().push("holder unlocks");
        g.push("holder");
    });
    let waiters: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let m = m.clone();
            green::spawn(move || m.lock().unwrap().push(name))
        })
        .collect();
    let log2 = log.clone();
    let bystander = green::spawn(move || log2.borrow_mut().push("bystander ran"));
    join_within(holder);
    for w in waiters {
        join_within(w);
    }
    join_within(bystander);
    // The bystander ran while the holder slept with the lock and two
    // waiters were parked on it.
    assert_eq!(
        *log.borrow(),
        ["holder locked", "bystander ran", "holder unlocks"]
    );
    assert_eq!(*m.lock().unwrap(), ["holder", "a", "b"]);
}

#[test]
fn waiters_get_the_lock_in_arrival_order() {
    let m = Rc::new(Mutex::new(Vec::new()));
    let guard = m.lock().unwrap();
    let waiters: Vec<_> = (0..5)
        .map(|i| {
            let m = m.clone();
            let gt = green::spawn(move || m.lock().unwrap().push(i));
            green::yield_now(); // it queues before the next one starts
            gt
        })
        .collect();
    drop(guard);
    for w in waiters {
        join_within(w);
    }
    assert_eq!(*m.lock().unwrap(), [0, 1, 2, 3, 4]);
}

#[test]
fn unlock_hands_the_lock_to_the_waiter_without_barging() {
    let m = Rc::new(Mutex::new(0));
    let guard = m.lock().unwrap();
    let m1 = m.clone();
    let waiter = green::spawn(move || *m1.lock().unwrap() += 1);
    green::yield_now(); // it queues
    drop(guard);
    // The waiter owns the lock now, though it has not run yet.
    assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
    join_within(waiter);
    assert_eq!(*m.try_lock().unwrap(), 1);
}

#[test]
fn try_lock_fails_while_held_and_succeeds_after() {
    let m = Mutex::new(5);
    let g = m.try_lock().unwrap();
    assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
    drop(g);
    assert_eq!(*m.try_lock().unwrap(), 5);
}

#[test]
fn try_lock_fails_while_others_are_queued() {
    let m = Rc::new(Mutex::new(()));
    let guard = m.lock().unwrap();
    let m1 = m.clone();
    let waiter = green::spawn(move || drop(m1.lock().unwrap()));
    green::yield_now(); // it queues
    assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
    drop(guard);
    join_within(waiter);
    assert!(m.try_lock().is_ok());
}

#[test]
fn green_threads_on_two_hubs_share_a_mutex() {
    const PER_THREAD: usize = 200;
    let m = Arc::new(Mutex::new(0usize));
    let run = |m: Arc<Mutex<usize>>| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                green::spawn(move || {
                    for _ in 0..PER_THREAD {
                        let mut g = m.lock().unwrap();
                        let seen = *g;
                        // Park while holding the lock: others must wait.
                        green::yield_now();
                        *g = seen + 1;
                    }
                })
            })
            .collect();
        for w in workers {
            join_within(w);
        }
    };
    let m2 = m.clone();
    let other = std::thread::spawn(move || run(m2));
    run(m.clone());
    other.join().unwrap();
    assert_eq!(*m.lock().unwrap(), 2 * 4 * PER_THREAD);
}

#[test]
fn green_holder_on_one_hub_wakes_green_waiter_on_another() {
    let m = Arc::new(Mutex::new(0));
    let (locked_tx, locked_rx) = mpsc::channel();
    let (release_tx, release_rx) = green::sync::mpsc::channel::<()>();
    let m2 = m.clone();
    let holder_thread = std::thread::spawn(move || {
        let gt = green::spawn(move || {
            let mut g = m2.lock().unwrap();
            locked_tx.send(()).unwrap();
            // Wait, green, until the other hub's waiter is queued.
            release_rx.recv().unwrap();
            *g = 7;
        });
        join_within(gt);
    });
    locked_rx.recv().unwrap();
    let m3 = m.clone();
    let waiter = green::spawn(move || *m3.lock().unwrap());
    green::yield_now(); // the waiter parks on the lock held by the other hub
    assert!(!waiter.is_finished());
    release_tx.send(()).unwrap();
    assert_eq!(join_within(waiter), 7);
    holder_thread.join().unwrap();
}

#[test]
fn plain_os_thread_waits_until_the_hub_side_unlocks() {
    let m = Arc::new(Mutex::new(0));
    let mut guard = m.lock().unwrap();
    let (tid_tx, tid_rx) = mpsc::channel();
    let m2 = m.clone();
    let plain = std::thread::spawn(move || {
        tid_tx.send(common::tid()).unwrap();
        *m2.lock().unwrap()
    });
    common::wait_until_sleeping(tid_rx.recv().unwrap()); // it waits
    *guard = 3;
    drop(guard);
    assert_eq!(plain.join().unwrap(), 3);
}

#[test]
fn green_waiter_parks_while_plain_os_thread_holds() {
    let m = Arc::new(Mutex::new(0));
    let (locked_tx, locked_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let m2 = m.clone();
    let plain = std::thread::spawn(move || {
        let mut g = m2.lock().unwrap();
        locked_tx.send(()).unwrap();
        // Released only by a green thread that runs while the waiter is
        // parked on the lock: proof that the waiter did not block the hub.
        release_rx.recv().unwrap();
        *g = 9;
    });
    locked_rx.recv().unwrap();
    let m3 = m.clone();
    let waiter = green::spawn(move || *m3.lock().unwrap());
    let releaser = green::spawn(move || release_tx.send(()).unwrap());
    assert_eq!(join_within(waiter), 9);
    join_within(releaser);
    plain.join().unwrap();
}

#[test]
fn panic_while_holding_poisons() {
    let m = Rc::new(Mutex::new(1));
    let m1 = m.clone();
    let gt = green::spawn(move || {
        let _g = m1.lock().unwrap();
        panic!("holder fails");
    });
    assert!(gt.join().is_err());
    assert!(m.is_poisoned());
    let err = m.lock().unwrap_err();
    assert_eq!(**err.get_ref(), 1);
    drop(err);
    assert!(matches!(m.try_lock(), Err(TryLockError::Poisoned(_))));
    m.clear_poison();
    assert!(!m.is_poisoned());
    assert!(m.lock().is_ok());
}

#[test]
fn guard_taken_while_already_panicking_does_not_poison() {
    struct LockOnDrop(Arc<Mutex<u32>>);
    impl Drop for LockOnDrop {
        fn drop(&mut self) {
            *self.0.lock().unwrap() += 1;
        }
    }
    let m = Arc::new(Mutex::new(0));
    let m1 = m.clone();
    let r = std::thread::spawn(move || {
        let _d = LockOnDrop(m1);
        panic!("unrelated failure");
    })
    .join();
    assert!(r.is_err());
    assert!(!m.is_poisoned());
    assert_eq!(*m.lock().unwrap(), 1);
}

#[test]
fn kill_while_holding_does_not_poison() {
    let m = Rc::new(Mutex::new(0));
    let m1 = m.clone();
    let gt = green::spawn(move || {
        let _g = m1.lock().unwrap();
        green::sleep(Duration::from_secs(3600));
    });
    green::yield_now(); // it locks and sleeps
    assert!(m.try_lock().is_err());
    gt.kill();
    assert!(gt.join().unwrap_err().is::<green::Killed>());
    assert!(!m.is_poisoned());
    assert!(m.try_lock().is_ok());
}

#[test]
fn timeout_while_holding_does_not_poison() {
    let m = Mutex::new(0);
    let r = green::with_timeout(Duration::from_millis(10), || {
        let _g = m.lock().unwrap();
        green::sleep(Duration::from_secs(3600));
    });
    assert!(r.is_err());
    assert!(!m.is_poisoned());
    assert!(m.try_lock().is_ok());
}

#[test]
fn os_thread_exit_unwinding_a_holder_does_not_poison() {
    let m = Arc::new(Mutex::new(0));
    let m2 = m.clone();
    std::thread::spawn(move || {
        green::spawn_n(move || {
            let _g = m2.lock().unwrap();
            green::sleep(Duration::from_secs(3600));
        });
        green::yield_now(); // it locks and sleeps; then the thread exits
    })
    .join()
    .unwrap();
    assert!(!m.is_poisoned());
    assert!(m.try_lock().is_ok());
}

#[test]
fn killed_waiter_leaves_the_queue() {
    let m = Rc::new(Mutex::new(Vec::new()));
    let guard = m.lock().unwrap();
    let (m1, m2) = (m.clone(), m.clone());
    let first = green::spawn(move || m1.lock().unwrap().push("first"));
    let second = green::spawn(move || m2.lock().unwrap().push("second"));
    green::yield_now(); // both queue
    first.kill();
    assert!(first.join().unwrap_err().is::<green::Killed>());
    drop(guard);
    join_within(second);
    assert_eq!(*m.lock().unwrap(), ["second"]);
}

#[test]
fn waiter_killed_after_the_hand_off_passes_the_lock_on() {
    let m = Rc::new(Mutex::new(Vec::new()));
    let guard = m.lock().unwrap();
    let (m1, m2) = (m.clone(), m.clone());
    let first = green::spawn(move || m1.lock().unwrap().push("first"));
    let second = green::spawn(move || m2.lock().unwrap().push("second"));
    green::yield_now(); // both queue
    drop(guard); // hands the lock to `first`, which has not run yet
    first.kill(); // it unwinds holding the hand-off: passes it on
    assert!(first.join().unwrap_err().is::<green::Killed>());
    join_within(second);
    assert_eq!(*m.lock().unwrap(), ["second"]);
    assert!(!m.is_poisoned());
}

#[test]
fn last_waiter_killed_after_the_hand_off_leaves_the_lock_free() {
    let m = Rc::new(Mutex::new(0));
    let guard = m.lock().unwrap();
    let m1 = m.clone();
    let waiter = green::spawn(move || *m1.lock().unwrap() += 1);
    green::yield_now(); // it queues
    drop(guard);
    waiter.kill();
    assert!(waiter.join().unwrap_err().is::<green::Killed>());
    assert_eq!(*m.try_lock().unwrap(), 0);
    assert_eq!(*m.lock().unwrap(), 0);
}

#[test]
fn timeout_around_a_blocking_lock() {
    let m = Rc::new(Mutex::new(0));
    let guard = m.lock().unwrap();
    let m1 = m.clone();
    let waiter = green::spawn(move || {
        let start = Instant::now();
        let r = green::with_timeout(Duration::from_millis(20), || *m1.lock().unwrap());
        (r, start.elapsed())
    });
    let (r, took) = join_within(waiter);
    assert!(r.is_err());
    // Margin: at least the timeout; at most 5 s on a loaded machine.
    assert!(took >= Duration::from_millis(20), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    drop(guard);
    assert!(!m.is_poisoned());
    assert!(m.try_lock().is_ok());
}

#[test]
fn static_mutex_works_between_green_threads() {
    static LOG: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    let workers: Vec<_> = (0..3)
        .map(|i| {
            green::spawn(move || {
                let mut g = LOG.lock().unwrap();
                green::yield_now();
                g.push(i);
            })
        })
        .collect();
    for w in workers {
        join_within(w);
    }
    let mut seen = LOG.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(seen, [0, 1, 2]);
}

#[test]
fn into_inner_and_get_mut_reach_the_data() {
    let mut m = Mutex::new(String::from("a"));
    m.get_mut().unwrap().push('b');
    assert_eq!(m.into_inner().unwrap(), "ab");
}

#[test]
fn into_inner_of_a_poisoned_mutex_is_an_error_with_the_data() {
    let m = Arc::new(Mutex::new(4));
    let m1 = m.clone();
    let _ = std::thread::spawn(move || {
        let _g = m1.lock().unwrap();
        panic!("poison it");
    })
    .join();
    let m = Arc::into_inner(m).unwrap();
    assert_eq!(m.into_inner().unwrap_err().into_inner(), 4);
}

#[test]
fn debug_and_display_read_like_std() {
    let green_m = Mutex::new(5);
    let std_m = std::sync::Mutex::new(5);
    assert_eq!(format!("{green_m:?}"), format!("{std_m:?}"));
    let (g1, g2) = (green_m.lock().unwrap(), std_m.lock().unwrap());
    assert_eq!(format!("{green_m:?}"), format!("{std_m:?}"));
    assert_eq!(format!("{g1:?} {g1}"), format!("{g2:?} {g2}"));
}

#[test]
fn default_and_from_build_unlocked_mutexes() {
    let d: Mutex<Vec<u8>> = Mutex::default();
    assert!(d.lock().unwrap().is_empty());
    let f = Mutex::from(3);
    assert_eq!(*f.try_lock().unwrap(), 3);
}

#[test]
fn uncontended_lock_from_a_thread_without_a_hub() {
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || {
        let m = Mutex::new(1);
        *m.lock().unwrap() += 1;
        assert_eq!(*m.lock().unwrap(), 2);
        d.store(true, Ordering::SeqCst);
    })
    .join()
    .unwrap();
    assert!(done.load(Ordering::SeqCst));
}

/// Regression: after a Timeout caught with plain `catch_unwind`, a real
/// panic while holding a lock did not poison it (the context still counted
/// as unwinding from a cancellation).
#[test]
fn real_panic_after_caught_timeout_poisons_mutex() {
    let m = green::sync::Mutex::new(0);
    let t = green::Timeout::new(Duration::from_millis(1));
    let r = std::panic::catch_unwind(|| green::sleep(Duration::from_secs(5)));
    assert!(t.is_mine(&*r.unwrap_err()));
    drop(t);
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _g = m.lock().unwrap();
        panic!("real bug while holding the lock");
    }));
    assert!(m.is_poisoned(), "a real panic must poison");
}

/// Same, in a green thread that catches its own kill.
#[test]
fn real_panic_after_caught_kill_poisons_mutex() {
    let m = Arc::new(green::sync::Mutex::new(0));
    let m2 = m.clone();
    let gt = green::spawn(move || {
        let r = std::panic::catch_unwind(|| green::sleep(Duration::from_secs(5)));
        assert!(r.unwrap_err().is::<green::Killed>());
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = m2.lock().unwrap();
            panic!("real bug while holding the lock");
        }));
    });
    green::yield_now();
    gt.kill();
    let _ = gt.join();
    assert!(m.is_poisoned(), "a real panic must poison");
}

//! `green::sync::{Once, OnceLock, LazyLock}`: one initializer runs, the
//! other callers park until it is done — so an initializer may itself park
//! while green threads of the same hub wait for it (with std's types, those
//! waiters would block the hub's OS thread and deadlock). A panicking
//! initializer poisons; a killed or timed-out one does not, except in a
//! `LazyLock`, whose `FnOnce` initializer is gone.

mod common;

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe, RefUnwindSafe, UnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use green::sync::{LazyLock, Once, OnceLock, OnceState};

/// Waits for a green thread, failing instead of hanging if it never
/// finishes (a lost wake-up): a working one finishes in milliseconds.
fn join_within<T>(gt: green::GreenThread<T>) -> T {
    green::with_timeout(Duration::from_secs(10), || gt.wait())
        .expect("the green thread never finished: a wake-up was lost")
}

/// The message of a panic payload.
fn message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else {
        "<not a message>"
    }
}

/// Runs `f`, which must panic, and returns its panic message.
fn panic_message(f: impl FnOnce()) -> String {
    let payload = panic::catch_unwind(AssertUnwindSafe(f)).expect_err("it did not panic");
    message(&*payload).to_string()
}

// Once types have std bounds: checked when this file compiles.
const _: () = {
    const fn send<T: Send>() {}
    const fn sync<T: Sync>() {}
    const fn unwind_safe<T: UnwindSafe + RefUnwindSafe>() {}
    send::<Once>();
    sync::<Once>();
    unwind_safe::<Once>();
    send::<OnceState>();
    sync::<OnceLock<Vec<u8>>>();
    send::<OnceLock<Cell<u8>>>();
    unwind_safe::<OnceLock<u8>>();
    sync::<LazyLock<Vec<u8>>>();
    send::<LazyLock<Cell<u8>>>();
    unwind_safe::<LazyLock<u8>>();
};

#[test]
fn once_runs_one_parking_initializer_while_callers_on_its_hub_wait() {
    let once = Rc::new(Once::new());
    let runs = Rc::new(Cell::new(0));
    let initialized = Rc::new(Cell::new(false));
    let bystander_ran_during_init = Rc::new(Cell::new(false));
    let callers: Vec<_> = (0..5)
        .map(|_| {
            let (once, runs, init) = (once.clone(), runs.clone(), initialized.clone());
            green::spawn(move || {
                once.call_once(|| {
                    runs.set(runs.get() + 1);
                    green::sleep(Duration::from_millis(20)); // parks
                    init.set(true);
                });
                // Returned only once the initializer is done.
                assert!(init.get());
            })
        })
        .collect();
    let (init, seen) = (initialized.clone(), bystander_ran_during_init.clone());
    let bystander = green::spawn(move || seen.set(!init.get()));
    for c in callers {
        join_within(c);
    }
    join_within(bystander);
    assert_eq!(runs.get(), 1);
    assert!(once.is_completed());
    assert!(bystander_ran_during_init.get());
}

#[test]
fn panicking_initializer_poisons_once() {
    let once = Once::new();
    let msg = panic_message(|| once.call_once(|| panic!("init fails")));
    assert_eq!(msg, "init fails");
    assert!(!once.is_completed());
    let msg = panic_message(|| once.call_once(|| {}));
    assert_eq!(msg, "Once instance has previously been poisoned");
    once.call_once_force(|state| assert!(state.is_poisoned()));
    assert!(once.is_completed());
    once.call_once(|| unreachable!("already complete"));
}

#[test]
fn waiters_of_a_panicking_initializer_panic_too() {
    let once = Rc::new(Once::new());
    let o = once.clone();
    let initializer = green::spawn(move || {
        o.call_once(|| {
            green::yield_now(); // the waiter parks meanwhile
            panic!("init fails");
        })
    });
    let o = once.clone();
    let waiter = green::spawn(move || o.call_once(|| unreachable!("poisoned first")));
    let err = initializer.join().unwrap_err();
    assert_eq!(message(&*err), "init fails");
    let err = waiter.join().unwrap_err();
    assert_eq!(message(&*err), "Once instance has previously been poisoned");
}

#[test]
fn killed_initializer_does_not_poison_and_a_waiter_takes_over() {
    let once = Rc::new(Once::new());
    let o = once.clone();
    let initializer = green::spawn(move || o.call_once(|| green::sleep(Duration::from_secs(3600))));
    green::yield_now(); // it starts initializing and sleeps
    let (o, ran) = (once.clone(), Rc::new(Cell::new(false)));
    let r = ran.clone();
    let waiter = green::spawn(move || o.call_once(|| r.set(true)));
    green::yield_now(); // it parks, waiting for the initializer
    initializer.kill();
    assert!(initializer.join().unwrap_err().is::<green::Killed>());
    join_within(waiter);
    assert!(ran.get(), "the waiter did not run its own initializer");
    assert!(once.is_completed());
}

#[test]
fn timed_out_initializer_does_not_poison_once() {
    let once = Once::new();
    let r = green::with_timeout(Duration::from_millis(10), || {
        once.call_once(|| green::sleep(Duration::from_secs(3600)));
    });
    assert!(r.is_err());
    assert!(!once.is_completed());
    let ran = Cell::new(false);
    once.call_once(|| ran.set(true)); // no poison panic
    assert!(ran.get());
}

#[test]
fn killed_waiter_does_not_disturb_the_initializer() {
    let once = Rc::new(Once::new());
    let (go, o) = (green::Event::new(), once.clone());
    let g = go.clone();
    let initializer = green::spawn(move || o.call_once(|| g.wait()));
    green::yield_now(); // it starts initializing
    let o = once.clone();
    let waiter = green::spawn(move || o.call_once(|| unreachable!("being initialized")));
    green::yield_now(); // it parks
    waiter.kill();
    assert!(waiter.join().unwrap_err().is::<green::Killed>());
    go.send(()).unwrap();
    join_within(initializer);
    assert!(once.is_completed());
}

#[test]
fn once_waiters_on_another_hub_and_a_plain_os_thread_wait_for_a_green_initializer() {
    let once = Arc::new(Once::new());
    let (go, done) = (green::Event::new(), Arc::new(AtomicBool::new(false)));
    let (o, g, d) = (once.clone(), go.clone(), done.clone());
    let initializer = green::spawn(move || {
        o.call_once(|| {
            g.wait();
            d.store(true, Ordering::SeqCst);
        })
    });
    green::yield_now(); // it starts initializing
    let (tid_tx, tid_rx) = mpsc::channel();
    let (o, d, tx) = (once.clone(), done.clone(), tid_tx.clone());
    let plain = std::thread::spawn(move || {
        tx.send(common::tid()).unwrap();
        o.call_once(|| unreachable!("being initialized"));
        assert!(d.load(Ordering::SeqCst));
    });
    let (o, d) = (once.clone(), done.clone());
    let other_hub = std::thread::spawn(move || {
        let gt = green::spawn(move || {
            o.call_once(|| unreachable!("being initialized"));
            assert!(d.load(Ordering::SeqCst));
        });
        tid_tx.send(common::tid()).unwrap();
        join_within(gt);
    });
    // Both wait: the plain thread asleep in its park, the other hub asleep
    // in its poller with its green thread parked on the `Once`.
    let (t1, t2) = (tid_rx.recv().unwrap(), tid_rx.recv().unwrap());
    common::wait_until_sleeping(t1);
    common::wait_until_sleeping(t2);
    go.send(()).unwrap();
    join_within(initializer);
    plain.join().unwrap();
    other_hub.join().unwrap();
}

#[test]
fn once_wait_parks_until_completion() {
    let once = Rc::new(Once::new());
    let o = once.clone();
    let waiter = green::spawn(move || o.wait());
    green::yield_now(); // it parks
    assert!(!waiter.is_finished());
    once.call_once(|| {});
    join_within(waiter);
}

#[test]
fn once_wait_panics_on_poison_and_wait_force_waits_through_it() {
    let once = Rc::new(Once::new());
    let _ = panic::catch_unwind(AssertUnwindSafe(|| once.call_once(|| panic!("init fails"))));
    let msg = panic_message(|| once.wait());
    assert_eq!(msg, "Once instance has previously been poisoned");
    let o = once.clone();
    let waiter = green::spawn(move || o.wait_force());
    green::yield_now(); // it parks through the poison
    assert!(!waiter.is_finished());
    once.call_once_force(|state| assert!(state.is_poisoned()));
    join_within(waiter);
}

#[test]
fn oncelock_runs_one_parking_initializer_while_callers_on_its_hub_wait() {
    // With std::sync::OnceLock the second caller would block this OS thread
    // while the initializer, a green thread of the same OS thread, sleeps:
    // a deadlock. Here the second caller parks.
    let cell = Rc::new(OnceLock::new());
    let runs = Rc::new(Cell::new(0));
    let callers: Vec<_> = (0..5)
        .map(|i| {
            let (cell, runs) = (cell.clone(), runs.clone());
            green::spawn(move || {
                *cell.get_or_init(|| {
                    runs.set(runs.get() + 1);
                    green::sleep(Duration::from_millis(10)); // parks
                    i
                })
            })
        })
        .collect();
    let values: Vec<_> = callers.into_iter().map(join_within).collect();
    assert_eq!(runs.get(), 1);
    assert_eq!(values, [0; 5]);
}

#[test]
fn oncelock_set_get_take_and_into_inner() {
    let mut cell = OnceLock::new();
    assert_eq!(cell.get(), None);
    assert_eq!(cell.set(1), Ok(()));
    assert_eq!(cell.set(2), Err(2));
    assert_eq!(cell.get(), Some(&1));
    *cell.get_mut().unwrap() = 3;
    assert_eq!(cell.take(), Some(3));
    assert_eq!(cell.get(), None);
    assert_eq!(cell.set(4), Ok(()));
    assert_eq!(cell.into_inner(), Some(4));
}

#[test]
fn panicking_initializer_leaves_the_oncelock_empty_for_the_next_caller() {
    let cell = OnceLock::new();
    let msg = panic_message(|| {
        cell.get_or_init(|| -> u32 { panic!("init fails") });
    });
    assert_eq!(msg, "init fails");
    assert_eq!(cell.get(), None);
    assert_eq!(*cell.get_or_init(|| 7), 7);
}

#[test]
fn killed_initializer_leaves_the_oncelock_empty_and_a_waiter_initializes_it() {
    let cell = Rc::new(OnceLock::new());
    let c = cell.clone();
    let initializer = green::spawn(move || {
        *c.get_or_init(|| {
            green::sleep(Duration::from_secs(3600));
            1
        })
    });
    green::yield_now(); // it starts initializing
    let c = cell.clone();
    let waiter = green::spawn(move || *c.get_or_init(|| 2));
    green::yield_now(); // it parks
    initializer.kill();
    assert!(initializer.join().unwrap_err().is::<green::Killed>());
    assert_eq!(join_within(waiter), 2);
    assert_eq!(cell.get(), Some(&2));
}

#[test]
fn oncelock_wait_parks_until_a_plain_os_thread_sets_it() {
    let cell = Arc::new(OnceLock::new());
    let c = cell.clone();
    let reader = green::spawn(move || *c.wait());
    green::yield_now(); // it parks
    let c = cell.clone();
    std::thread::spawn(move || c.set(5).unwrap())
        .join()
        .unwrap();
    assert_eq!(join_within(reader), 5);
}

#[test]
fn oncelock_clone_eq_from_default_and_debug_like_std() {
    let a = OnceLock::from(vec![1]);
    let b = a.clone();
    assert_eq!(a, b);
    let empty: OnceLock<Vec<u32>> = OnceLock::default();
    assert_ne!(a, empty);
    assert_eq!(empty, empty.clone());
    let std_a = std::sync::OnceLock::from(vec![1]);
    let std_empty: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    assert_eq!(format!("{a:?}"), format!("{std_a:?}"));
    assert_eq!(format!("{empty:?}"), format!("{std_empty:?}"));
}

#[test]
fn static_oncelock_initializes_once() {
    static CELL: OnceLock<usize> = OnceLock::new();
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let callers: Vec<_> = (0..3)
        .map(|_| {
            green::spawn(|| {
                *CELL.get_or_init(|| {
                    green::yield_now();
                    RUNS.fetch_add(1, Ordering::SeqCst) + 10
                })
            })
        })
        .collect();
    for c in callers {
        assert_eq!(join_within(c), 10);
    }
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
}

#[test]
fn lazylock_runs_one_parking_initializer_while_callers_on_its_hub_wait() {
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let lazy = Rc::new(LazyLock::new(move || {
        r.set(r.get() + 1);
        green::sleep(Duration::from_millis(10)); // parks
        String::from("ready")
    }));
    let callers: Vec<_> = (0..5)
        .map(|_| {
            let lazy = lazy.clone();
            green::spawn(move || lazy.len())
        })
        .collect();
    for c in callers {
        assert_eq!(join_within(c), 5);
    }
    assert_eq!(runs.get(), 1);
}

#[test]
fn static_lazylock_initializes_on_first_use() {
    static TABLE: LazyLock<Vec<u32>> = LazyLock::new(|| (1..=3).collect());
    let gt = green::spawn(|| TABLE.iter().sum::<u32>());
    assert_eq!(join_within(gt), 6);
    assert_eq!(TABLE.len(), 3);
}

#[test]
fn panicking_lazylock_is_poisoned() {
    let lazy: LazyLock<u32> = LazyLock::new(|| panic!("init fails"));
    assert_eq!(
        panic_message(|| {
            LazyLock::force(&lazy);
        }),
        "init fails"
    );
    let msg = panic_message(|| {
        LazyLock::force(&lazy);
    });
    assert_eq!(msg, "LazyLock instance has previously been poisoned");
    assert_eq!(LazyLock::get(&lazy), None);
}

#[test]
fn killed_lazylock_initializer_leaves_it_poisoned() {
    let lazy = Rc::new(LazyLock::new(|| {
        green::sleep(Duration::from_secs(3600));
        1
    }));
    let l = lazy.clone();
    let initializer = green::spawn(move || **l);
    green::yield_now(); // it starts initializing
    initializer.kill();
    assert!(initializer.join().unwrap_err().is::<green::Killed>());
    // Its `FnOnce` initializer was consumed by the run that was killed.
    let msg = panic_message(|| {
        LazyLock::force(&lazy);
    });
    assert_eq!(msg, "LazyLock instance has previously been poisoned");
}

#[test]
fn lazylock_get_force_mut_and_deref_mut() {
    let mut lazy = LazyLock::new(|| vec![1]);
    assert_eq!(LazyLock::get(&lazy), None);
    assert_eq!(LazyLock::get_mut(&mut lazy), None);
    LazyLock::force_mut(&mut lazy).push(2);
    lazy.push(3);
    assert_eq!(LazyLock::get(&lazy), Some(&vec![1, 2, 3]));
    let d: LazyLock<u8> = LazyLock::default();
    assert_eq!(*d, 0);
}

#[test]
fn lazylock_and_once_debug_like_std() {
    let lazy = LazyLock::new(|| 5);
    let std_lazy = std::sync::LazyLock::new(|| 5);
    assert_eq!(format!("{lazy:?}"), format!("{std_lazy:?}"));
    let _ = (*lazy, *std_lazy);
    assert_eq!(format!("{lazy:?}"), format!("{std_lazy:?}"));
    assert_eq!(
        format!("{:?}", Once::new()),
        format!("{:?}", std::sync::Once::new())
    );
    let state = RefCell::new(String::new());
    Once::new().call_once_force(|s| *state.borrow_mut() = format!("{s:?}"));
    let std_state = RefCell::new(String::new());
    std::sync::Once::new().call_once_force(|s| *std_state.borrow_mut() = format!("{s:?}"));
    assert_eq!(*state.borrow(), *std_state.borrow());
}

/// Regression: as for the mutex, a real panic in an initializer after a
/// caught Timeout reset the `Once` instead of poisoning it.
#[test]
fn real_panic_after_caught_timeout_poisons_once() {
    let once = green::sync::Once::new();
    let t = green::Timeout::new(Duration::from_millis(1));
    let r = std::panic::catch_unwind(|| green::sleep(Duration::from_secs(5)));
    assert!(t.is_mine(&*r.unwrap_err()));
    drop(t);
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        once.call_once(|| panic!("real bug in initializer"));
    }));
    // A panicking initializer must poison: call_once must now panic.
    let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| once.call_once(|| {})));
    assert!(again.is_err(), "Once was not poisoned by a real panic");
}

#[test]
#[allow(deprecated)]
fn once_init_is_a_new_once() {
    static A: Once = green::sync::ONCE_INIT;
    static B: Once = green::sync::ONCE_INIT;
    A.call_once(|| {});
    assert!(A.is_completed());
    assert!(!B.is_completed());
}

#[test]
fn once_state_debug_reads_like_std() {
    let once = Once::new();
    let mut green_dbg = String::new();
    once.call_once_force(|s| green_dbg = format!("{s:?}"));
    let mut std_dbg = String::new();
    std::sync::Once::new().call_once_force(|s| std_dbg = format!("{s:?}"));
    assert_eq!(green_dbg, std_dbg);
}

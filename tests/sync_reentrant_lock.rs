//! `green::sync::ReentrantLock`: reentrant per green thread, exclusive
//! between green threads (of one hub or several) and plain threads.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use green::sync::ReentrantLock;

#[test]
fn the_holder_takes_it_again() {
    let l = ReentrantLock::new(Cell::new(0));
    let a = l.lock();
    let b = l.lock();
    let c = l.try_lock().expect("the holder gets it again");
    c.set(c.get() + 1);
    drop((a, c));
    b.set(b.get() + 1);
    drop(b);
    assert_eq!(l.lock().get(), 2);
}

/// Two green threads of one hub: the second waits until the first has
/// dropped its last guard, although the first yields while it holds it.
#[test]
fn green_threads_of_one_hub_exclude_each_other() {
    let l = Rc::new(ReentrantLock::new(RefCell::new(Vec::new())));
    let run = |name: &'static str| {
        let l = l.clone();
        green::spawn(move || {
            let outer = l.lock();
            outer.borrow_mut().push((name, "in"));
            green::yield_now();
            {
                let inner = l.lock();
                inner.borrow_mut().push((name, "nested"));
                green::yield_now();
            }
            green::sleep(Duration::from_millis(2));
            outer.borrow_mut().push((name, "out"));
        })
    };
    let a = run("a");
    let b = run("b");
    a.wait();
    b.wait();
    let log = l.lock().borrow().clone();
    assert_eq!(
        log,
        [
            ("a", "in"),
            ("a", "nested"),
            ("a", "out"),
            ("b", "in"),
            ("b", "nested"),
            ("b", "out")
        ]
    );
}

#[test]
fn try_lock_by_another_green_thread_fails_while_held() {
    let l = Rc::new(ReentrantLock::new(()));
    let g = l.lock();
    let l2 = l.clone();
    assert!(!green::spawn(move || l2.try_lock().is_some()).wait());
    drop(g);
    let l2 = l.clone();
    assert!(green::spawn(move || l2.try_lock().is_some()).wait());
}

/// Green threads of two hubs and plain threads increment a counter under
/// nested locks, yielding while they hold it: every increment counts and
/// no two holders are ever inside at once.
#[test]
fn hubs_and_plain_threads_share_it() {
    const PER: u64 = 2000;
    let l = Arc::new(ReentrantLock::new((Cell::new(0u64), Cell::new(false))));
    let work = |l: &ReentrantLock<(Cell<u64>, Cell<bool>)>, yielding: bool| {
        for _ in 0..PER {
            let g = l.lock();
            assert!(!g.1.replace(true), "two holders inside at once");
            {
                let g2 = l.lock();
                g2.0.set(g2.0.get() + 1);
            }
            if yielding {
                green::yield_now();
            }
            g.1.set(false);
        }
    };
    let mut threads = Vec::new();
    for i in 0..3 {
        let l = l.clone();
        threads.push(std::thread::spawn(move || {
            if i == 0 {
                // A second hub with two green threads.
                let gs: Vec<_> = (0..2)
                    .map(|_| {
                        let l = l.clone();
                        green::spawn(move || work(&l, true))
                    })
                    .collect();
                gs.into_iter().for_each(|g| g.wait());
            } else {
                work(&l, false);
            }
        }));
    }
    let here: Vec<_> = (0..2)
        .map(|_| {
            let l = l.clone();
            green::spawn(move || work(&l, true))
        })
        .collect();
    here.into_iter().for_each(|g| g.wait());
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(l.lock().0.get(), 6 * PER);
}

/// A holder killed while it waits inside its hold drops its guards as it
/// unwinds: the lock is free for the next one; a waiter killed while it
/// waits for the lock leaves without it.
#[test]
fn kills_release_or_abandon_cleanly() {
    let l = Rc::new(ReentrantLock::new(Cell::new(0)));
    let l1 = l.clone();
    let holder = green::spawn(move || {
        let _a = l1.lock();
        let _b = l1.lock();
        green::sleep(Duration::from_secs(30));
    });
    let l2 = l.clone();
    let waiter = green::spawn(move || {
        let _g = l2.lock();
        unreachable!("killed before it got the lock");
    });
    green::yield_now(); // the holder holds, the waiter waits
    waiter.kill();
    assert!(waiter.join().unwrap_err().is::<green::Killed>());
    holder.kill();
    assert!(holder.join().unwrap_err().is::<green::Killed>());
    let l3 = l.clone();
    let next = green::spawn(move || {
        let g = l3.lock();
        g.set(7);
        g.get()
    });
    assert_eq!(next.wait(), 7);
    assert_eq!(green::hub::stats().green_threads, 0);
}

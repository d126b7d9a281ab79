//! `green::sync::RwLock`: many readers or one writer; waiters park and are
//! served in arrival order (a queued writer holds back later readers,
//! queued readers are admitted together); works across hubs and with plain
//! OS threads; poisoned by a panic in a writer, not by a kill or `Timeout`.

mod common;

use std::cell::{Cell, RefCell};
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use green::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};

/// Waits for a green thread, failing instead of hanging if it never
/// finishes (a lost grant): a working one finishes in milliseconds.
fn join_within<T>(gt: green::GreenThread<T>) -> T {
    green::with_timeout(Duration::from_secs(10), || gt.wait())
        .expect("the green thread never finished: a wake-up was lost")
}

// Rwlock and guards have std bounds: checked when this file compiles.
const _: () = {
    const fn send<T: Send>() {}
    const fn sync<T: Sync>() {}
    const fn unwind_safe<T: UnwindSafe + RefUnwindSafe>() {}
    send::<RwLock<Cell<u32>>>();
    sync::<RwLock<Vec<u8>>>();
    sync::<RwLockReadGuard<'static, u32>>();
    sync::<RwLockWriteGuard<'static, u32>>();
    unwind_safe::<RwLock<Cell<u32>>>();
};

#[test]
fn readers_share_the_lock() {
    let lock = RwLock::new(1);
    let r1 = lock.read().unwrap();
    let r2 = lock.try_read().unwrap();
    assert_eq!(*r1 + *r2, 2);
    assert!(matches!(lock.try_write(), Err(TryLockError::WouldBlock)));
}

#[test]
fn writer_excludes_readers_and_writers() {
    let lock = RwLock::new(1);
    let mut w = lock.write().unwrap();
    *w = 2;
    assert!(matches!(lock.try_read(), Err(TryLockError::WouldBlock)));
    assert!(matches!(lock.try_write(), Err(TryLockError::WouldBlock)));
    drop(w);
    assert_eq!(*lock.try_read().unwrap(), 2);
}

#[test]
fn writer_holding_across_a_park_lets_the_hub_run() {
    let lock = Rc::new(RwLock::new(0));
    let log = Rc::new(RefCell::new(Vec::new()));
    let (l1, log1) = (lock.clone(), log.clone());
    let writer = green::spawn(move || {
        let mut w = l1.write().unwrap();
        green::sleep(Duration::from_millis(20));
        *w = 5;
        log1.borrow_mut().push("writer done");
    });
    let l2 = lock.clone();
    let reader = green::spawn(move || *l2.read().unwrap());
    let log3 = log.clone();
    let bystander = green::spawn(move || log3.borrow_mut().push("bystander ran"));
    assert_eq!(join_within(reader), 5);
    join_within(writer);
    join_within(bystander);
    assert_eq!(*log.borrow(), ["bystander ran", "writer done"]);
}

#[test]
fn queued_writer_holds_back_later_readers() {
    let lock = Rc::new(RwLock::new(()));
    let order = Rc::new(RefCell::new(Vec::new()));
    let r = lock.read().unwrap();
    let (l1, o1) = (lock.clone(), order.clone());
    let writer = green::spawn(move || {
        let _w = l1.write().unwrap();
        o1.borrow_mut().push("writer");
    });
    green::yield_now(); // the writer queues behind the root's read lock
                        // A reader arriving now would starve the writer: it must wait.
    assert!(matches!(lock.try_read(), Err(TryLockError::WouldBlock)));
    let (l2, o2) = (lock.clone(), order.clone());
    let reader = green::spawn(move || {
        let _r = l2.read().unwrap();
        o2.borrow_mut().push("reader");
    });
    green::yield_now(); // the reader queues behind the writer
    assert!(order.borrow().is_empty());
    drop(r);
    join_within(writer);
    join_within(reader);
    assert_eq!(*order.borrow(), ["writer", "reader"]);
}

#[test]
fn consecutive_queued_readers_are_admitted_together() {
    let lock = Rc::new(RwLock::new(()));
    let inside = Rc::new(Cell::new(0));
    let most_inside = Rc::new(Cell::new(0));
    let w = lock.write().unwrap();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (lock, inside, most) = (lock.clone(), inside.clone(), most_inside.clone());
            green::spawn(move || {
                let _r = lock.read().unwrap();
                inside.set(inside.get() + 1);
                most.set(most.get().max(inside.get()));
                green::yield_now(); // hold the read lock across a park
                inside.set(inside.get() - 1);
            })
        })
        .collect();
    let l = lock.clone();
    let inside_w = inside.clone();
    let late_writer = green::spawn(move || {
        let _w = l.write().unwrap();
        assert_eq!(inside_w.get(), 0, "a writer got in beside readers");
    });
    green::yield_now(); // all queue: three readers, then the writer
    drop(w);
    for r in readers {
        join_within(r);
    }
    join_within(late_writer);
    assert_eq!(most_inside.get(), 3);
}

#[test]
fn green_threads_on_two_hubs_share_an_rwlock() {
    const ROUNDS: usize = 100;
    let lock = Arc::new(RwLock::new(0usize));
    let run = |lock: Arc<RwLock<usize>>| {
        let workers: Vec<_> = (0..3)
            .map(|i| {
                let lock = lock.clone();
                green::spawn(move || {
                    for _ in 0..ROUNDS {
                        if i == 0 {
                            let mut w = lock.write().unwrap();
                            let seen = *w;
                            green::yield_now(); // park while writing
                            *w = seen + 1;
                        } else {
                            let r = lock.read().unwrap();
                            let seen = *r;
                            green::yield_now(); // park while reading
                            assert_eq!(*r, seen, "changed under a read lock");
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            join_within(w);
        }
    };
    let l2 = lock.clone();
    let other = std::thread::spawn(move || run(l2));
    run(lock.clone());
    other.join().unwrap();
    assert_eq!(*lock.read().unwrap(), 2 * ROUNDS);
}

#[test]
fn plain_os_thread_reader_waits_for_the_hub_side_writer() {
    let lock = Arc::new(RwLock::new(0));
    let mut w = lock.write().unwrap();
    let (tid_tx, tid_rx) = mpsc::channel();
    let l2 = lock.clone();
    let plain = std::thread::spawn(move || {
        tid_tx.send(common::tid()).unwrap();
        *l2.read().unwrap()
    });
    common::wait_until_sleeping(tid_rx.recv().unwrap()); // it waits
    *w = 4;
    drop(w);
    assert_eq!(plain.join().unwrap(), 4);
}

#[test]
fn green_writer_parks_while_plain_os_thread_reads() {
    let lock = Arc::new(RwLock::new(0));
    let (locked_tx, locked_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let l2 = lock.clone();
    let plain = std::thread::spawn(move || {
        let _r = l2.read().unwrap();
        locked_tx.send(()).unwrap();
        // Released by a green thread that runs while the writer is
        // parked: proof that the writer did not block the hub.
        release_rx.recv().unwrap();
    });
    locked_rx.recv().unwrap();
    let l3 = lock.clone();
    let writer = green::spawn(move || *l3.write().unwrap() = 1);
    let releaser = green::spawn(move || release_tx.send(()).unwrap());
    join_within(writer);
    join_within(releaser);
    plain.join().unwrap();
    assert_eq!(*lock.read().unwrap(), 1);
}

#[test]
fn panic_while_writing_poisons() {
    let lock = Rc::new(RwLock::new(1));
    let l = lock.clone();
    let gt = green::spawn(move || {
        let _w = l.write().unwrap();
        panic!("writer fails");
    });
    assert!(gt.join().is_err());
    assert!(lock.is_poisoned());
    assert_eq!(*lock.read().unwrap_err().into_inner(), 1);
    assert!(matches!(lock.try_write(), Err(TryLockError::Poisoned(_))));
    lock.clear_poison();
    assert!(lock.write().is_ok());
}

#[test]
fn panic_while_reading_does_not_poison() {
    let lock = Rc::new(RwLock::new(1));
    let l = lock.clone();
    let gt = green::spawn(move || {
        let _r = l.read().unwrap();
        panic!("reader fails");
    });
    assert!(gt.join().is_err());
    assert!(!lock.is_poisoned());
    assert!(lock.try_write().is_ok());
}

#[test]
fn kill_while_writing_does_not_poison() {
    let lock = Rc::new(RwLock::new(0));
    let l = lock.clone();
    let gt = green::spawn(move || {
        let _w = l.write().unwrap();
        green::sleep(Duration::from_secs(3600));
    });
    green::yield_now(); // it writes and sleeps
    gt.kill();
    assert!(gt.join().unwrap_err().is::<green::Killed>());
    assert!(!lock.is_poisoned());
    assert!(lock.try_write().is_ok());
}

#[test]
fn timeout_while_writing_does_not_poison() {
    let lock = RwLock::new(0);
    let r = green::with_timeout(Duration::from_millis(10), || {
        let _w = lock.write().unwrap();
        green::sleep(Duration::from_secs(3600));
    });
    assert!(r.is_err());
    assert!(!lock.is_poisoned());
    assert!(lock.try_write().is_ok());
}

#[test]
fn killed_queued_writer_lets_the_readers_behind_it_in() {
    let lock = Rc::new(RwLock::new(()));
    let r = lock.read().unwrap();
    let l1 = lock.clone();
    let writer = green::spawn(move || drop(l1.write().unwrap()));
    green::yield_now(); // the writer queues
    let l2 = lock.clone();
    let reader = green::spawn(move || drop(l2.read().unwrap()));
    green::yield_now(); // the reader queues behind the writer
    writer.kill();
    assert!(writer.join().unwrap_err().is::<green::Killed>());
    // The root still reads; with the writer gone the reader joins it.
    join_within(reader);
    drop(r);
    assert!(lock.try_write().is_ok());
}

#[test]
fn writer_killed_after_its_grant_releases_it() {
    let lock = Rc::new(RwLock::new(Vec::new()));
    let w = lock.write().unwrap();
    let (l1, l2) = (lock.clone(), lock.clone());
    let writer = green::spawn(move || l1.write().unwrap().push("writer"));
    let reader = green::spawn(move || l2.read().unwrap().len());
    green::yield_now(); // both queue
    drop(w); // grants the writer, which has not run yet
    writer.kill(); // it unwinds: the grant passes to the reader
    assert!(writer.join().unwrap_err().is::<green::Killed>());
    assert_eq!(join_within(reader), 0);
    assert!(!lock.is_poisoned());
    assert!(lock.try_write().is_ok());
}

#[test]
fn timeout_around_a_blocking_write() {
    let lock = Rc::new(RwLock::new(0));
    let r = lock.read().unwrap();
    let l = lock.clone();
    let writer = green::spawn(move || {
        green::with_timeout(Duration::from_millis(20), || *l.write().unwrap() = 1)
    });
    assert!(join_within(writer).is_err());
    drop(r);
    assert!(!lock.is_poisoned());
    assert_eq!(*lock.try_write().unwrap(), 0);
}

#[test]
fn static_rwlock_works_between_green_threads() {
    static TOTAL: RwLock<u32> = RwLock::new(0);
    let workers: Vec<_> = (0..4)
        .map(|_| green::spawn(|| *TOTAL.write().unwrap() += 1))
        .collect();
    for w in workers {
        join_within(w);
    }
    assert_eq!(*TOTAL.read().unwrap(), 4);
}

#[test]
fn into_inner_get_mut_default_and_from() {
    let mut lock = RwLock::from(String::from("a"));
    lock.get_mut().unwrap().push('b');
    assert_eq!(lock.into_inner().unwrap(), "ab");
    let d: RwLock<u8> = RwLock::default();
    assert_eq!(*d.read().unwrap(), 0);
}

#[test]
fn debug_and_display_read_like_std() {
    let green_l = RwLock::new(5);
    let std_l = std::sync::RwLock::new(5);
    assert_eq!(format!("{green_l:?}"), format!("{std_l:?}"));
    {
        let (r1, r2) = (green_l.read().unwrap(), std_l.read().unwrap());
        assert_eq!(format!("{r1:?} {r1}"), format!("{r2:?} {r2}"));
    }
    let (w1, w2) = (green_l.write().unwrap(), std_l.write().unwrap());
    assert_eq!(format!("{green_l:?}"), format!("{std_l:?}"));
    assert_eq!(format!("{w1:?} {w1}"), format!("{w2:?} {w2}"));
}

#[test]
fn rwlock_write_guard_downgrades_to_a_read_guard() {
    let lock = RwLock::new(0);
    let mut w = lock.write().unwrap();
    *w = 42;
    let r = RwLockWriteGuard::downgrade(w);
    assert_eq!(*r, 42);
    // Read-locked now: another reader gets in, a writer does not.
    assert_eq!(*lock.try_read().unwrap(), 42);
    assert!(matches!(lock.try_write(), Err(TryLockError::WouldBlock)));
    drop(r);
    assert!(lock.try_write().is_ok());
}

#[test]
fn downgrade_admits_the_readers_queued_behind_the_writer() {
    let lock = Rc::new(RwLock::new(0));
    let mut w = lock.write().unwrap();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let l = lock.clone();
            green::spawn(move || *l.read().unwrap())
        })
        .collect();
    green::yield_now(); // the readers queue
    *w = 7;
    let r = RwLockWriteGuard::downgrade(w);
    // They read beside the downgraded guard, which is still held.
    for reader in readers {
        assert_eq!(join_within(reader), 7);
    }
    assert_eq!(*r, 7);
}

#[test]
fn downgrade_keeps_a_queued_writer_waiting() {
    let lock = Rc::new(RwLock::new(0));
    let mut w = lock.write().unwrap();
    let l = lock.clone();
    let writer = green::spawn(move || {
        let mut w = l.write().unwrap();
        assert_eq!(*w, 2, "the writer got in before the downgraded read");
        *w = 3;
    });
    green::yield_now(); // the writer queues
    *w = 2;
    let r = RwLockWriteGuard::downgrade(w);
    green::yield_now(); // the writer may run: it must still wait
    assert!(!writer.is_finished());
    assert_eq!(*r, 2, "`downgrade` was not atomic");
    drop(r);
    join_within(writer);
    assert_eq!(*lock.read().unwrap(), 3);
}

#[test]
fn downgrade_keeps_readers_queued_behind_a_writer_waiting() {
    let lock = Rc::new(RwLock::new(()));
    let order = Rc::new(RefCell::new(Vec::new()));
    let w = lock.write().unwrap();
    let (l1, o1) = (lock.clone(), order.clone());
    let writer = green::spawn(move || {
        let _w = l1.write().unwrap();
        o1.borrow_mut().push("writer");
    });
    let (l2, o2) = (lock.clone(), order.clone());
    let reader = green::spawn(move || {
        let _r = l2.read().unwrap();
        o2.borrow_mut().push("reader");
    });
    green::yield_now(); // the writer queues, then the reader
    let r = RwLockWriteGuard::downgrade(w);
    green::yield_now();
    assert!(order.borrow().is_empty(), "a reader passed a queued writer");
    drop(r);
    join_within(writer);
    join_within(reader);
    assert_eq!(*order.borrow(), ["writer", "reader"]);
}

#[test]
fn downgrade_of_a_poisoned_lock_gives_a_read_guard() {
    let lock = Rc::new(RwLock::new(1));
    let l = lock.clone();
    let gt = green::spawn(move || {
        let _w = l.write().unwrap();
        panic!("writer fails");
    });
    assert!(gt.join().is_err());
    let w = lock.write().unwrap_err().into_inner();
    let r = RwLockWriteGuard::downgrade(w);
    assert_eq!(*r, 1);
    assert!(lock.is_poisoned());
}

#[test]
fn downgrade_in_every_writer_observes_its_own_write() {
    // std's test_downgrade_observe, on green threads of two hubs.
    const W: usize = 20;
    const N: usize = 100;
    let rw = Arc::new(RwLock::new(0));
    let writers = |rw: Arc<RwLock<usize>>| {
        move || {
            for _ in 0..N {
                let mut w = rw.write().unwrap();
                *w += 1;
                let cur = *w;
                let r = RwLockWriteGuard::downgrade(w);
                green::yield_now(); // others queue meanwhile
                assert_eq!(cur, *r);
            }
        }
    };
    let other_hub = {
        let rw = rw.clone();
        std::thread::spawn(move || {
            let gts: Vec<_> = (0..W / 2)
                .map(|_| green::spawn(writers(rw.clone())))
                .collect();
            gts.into_iter().for_each(|gt| gt.wait())
        })
    };
    let gts: Vec<_> = (0..W / 2)
        .map(|_| green::spawn(writers(rw.clone())))
        .collect();
    for gt in gts {
        join_within(gt);
    }
    other_hub.join().unwrap();
    assert_eq!(*rw.read().unwrap(), W * N);
}

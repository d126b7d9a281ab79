//! `green::wait_any` and `green::iwait`: every kind of item, on one hub,
//! across hubs and from plain threads; a kill or `Timeout` leaves no
//! watcher registered; 10,000 items.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use green::queue::Queue;
use green::sync::mpsc;
use green::{iwait, wait_any, BoundedSemaphore, Event, Semaphore, Timeout, WaitFd, Waitable};

/// How many waits on many watch an item, read from its `Debug`.
fn watching(item: &impl std::fmt::Debug) -> usize {
    let s = format!("{item:?}");
    let at = s.find("watching: ").expect("a watching field") + "watching: ".len();
    s[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn each_kind_of_item_wakes_the_wait_with_its_index() {
    let ev = Event::<u32>::new();
    let (tx, rx) = mpsc::channel::<u32>();
    let q = Queue::<u32>::unbounded();
    let sem = Semaphore::new(0);
    let (mut a, b) = UnixStream::pair().unwrap();
    let sleeper = green::spawn(|| green::sleep(Duration::from_secs(30)));
    let items: [&dyn Waitable; 6] = [&ev, &rx, &q, &sem, &sleeper, &WaitFd::readable(&b)];
    assert_eq!(wait_any(&items, Some(Duration::from_millis(1))), None);

    // Each made ready by another green thread of this hub while the wait
    // is parked; readiness only: the item is still there to take.
    let check = |ready_at: usize, make_ready: Box<dyn FnOnce()>| {
        let maker = green::spawn(make_ready);
        assert_eq!(wait_any(&items, None), Some(ready_at));
        maker.wait();
    };
    let ev2 = ev.clone();
    check(0, Box::new(move || ev2.send(5).unwrap()));
    assert_eq!(ev.try_wait(), Some(5));
    ev.reset();
    let tx2 = tx.clone();
    check(1, Box::new(move || tx2.send(6).unwrap()));
    assert_eq!(rx.try_recv(), Ok(6));
    let q2 = q.clone();
    check(2, Box::new(move || q2.put(7)));
    assert_eq!(q.get_nowait(), Ok(7));
    let sem2 = sem.clone();
    check(3, Box::new(move || sem2.release()));
    sem.try_acquire().expect("the permit released").forget();
    // Every sender gone: a closed channel is ready too, its `recv` fails
    // at once.
    let closer = green::spawn(move || drop(tx));
    assert_eq!(wait_any(&items, None), Some(1));
    closer.wait();
    assert!(rx.try_recv().is_err());
    let items: [&dyn Waitable; 4] = [&ev, &q, &sleeper, &WaitFd::readable(&b)];
    let writer = green::spawn(move || a.write_all(b"x").unwrap());
    assert_eq!(wait_any(&items, None), Some(3));
    writer.wait();
    sleeper.kill();
    assert_eq!(wait_any(&items, None), Some(2));
    assert_eq!((watching(&ev), watching(&q), watching(&sem)), (0, 0, 0));
}

#[test]
fn the_lowest_ready_index_wins_and_the_item_is_left_to_take() {
    let evs: Vec<Event<u32>> = (0..5).map(|_| Event::new()).collect();
    evs[3].send(3).unwrap();
    evs[1].send(1).unwrap();
    let items: Vec<&dyn Waitable> = evs.iter().map(|e| e as _).collect();
    assert_eq!(wait_any(&items, None), Some(1));
    assert_eq!(wait_any(&items, None), Some(1));
    assert_eq!(evs[1].try_wait(), Some(1));
    assert_eq!(wait_any(&[], None), None, "nothing to wait for");
}

#[test]
fn a_writable_fd_is_ready_at_once_and_a_hangup_counts() {
    let (a, b) = UnixStream::pair().unwrap();
    assert_eq!(
        wait_any(&[&WaitFd::readable(&a), &WaitFd::writable(&a)], None),
        Some(1)
    );
    let reader = green::spawn(move || {
        let mut a = a;
        let r = wait_any(&[&WaitFd::readable(&a)], Some(Duration::from_secs(30)));
        let mut buf = [0u8; 4];
        (r, a.read(&mut buf).unwrap())
    });
    green::yield_now();
    assert!(!reader.is_finished(), "it waits");
    drop(b);
    assert_eq!(reader.wait(), (Some(0), 0), "a hang-up: ready, and EOF");
}

#[test]
fn ten_thousand_items_with_one_ready_return_at_once_and_one_sent_later_wakes() {
    let evs: Vec<Event<()>> = (0..10_000).map(|_| Event::new()).collect();
    let items: Vec<&dyn Waitable> = evs.iter().map(|e| e as _).collect();
    evs[9_999].send(()).unwrap();
    assert_eq!(wait_any(&items, Some(Duration::ZERO)), Some(9_999));
    evs[9_999].reset();

    // Nothing ready: the wait parks, watching all; a send from another
    // green thread wakes it with that index; no watcher is left.
    let e = evs[4_321].clone();
    let sender = green::spawn(move || {
        green::yield_now();
        e.send(()).unwrap();
    });
    assert_eq!(wait_any(&items, None), Some(4_321));
    sender.wait();
    assert!(evs.iter().all(|e| watching(e) == 0));
    evs[4_321].reset();

    // The same, woken from a plain thread once this hub sleeps in its
    // poller (the wait parked, watching all).
    let e = evs[17].clone();
    let me = common::tid();
    let t = thread::spawn(move || {
        common::wait_until_asleep_in_poller(me);
        e.send(()).unwrap();
    });
    assert_eq!(wait_any(&items, None), Some(17));
    t.join().unwrap();
    assert!(evs.iter().all(|e| watching(e) == 0));
}

#[test]
fn works_across_hubs_and_from_a_plain_thread() {
    // A plain thread waits on a channel and an event fed by green threads
    // of another hub.
    let (tx, rx) = mpsc::channel::<&str>();
    let ev = Event::<()>::new();
    let ev2 = ev.clone();
    // The event goes out only once the message was taken.
    let taken = Event::<()>::new();
    let taken2 = taken.clone();
    let hub = thread::spawn(move || {
        green::spawn(move || {
            tx.send("from another hub").unwrap();
            taken2.wait();
            ev2.send(()).unwrap();
        })
        .wait();
    });
    let waiter = thread::spawn(move || {
        assert_eq!(wait_any(&[&ev, &rx], None), Some(1));
        assert_eq!(rx.try_recv(), Ok("from another hub"));
        taken.send(()).unwrap();
        // The channel is empty again; the event is next (the sender is
        // still alive until the event is sent).
        let r = wait_any(&[&ev, &rx], None);
        assert!(r == Some(0) || rx.try_recv().is_err(), "{r:?}");
        assert_eq!(wait_any(&[&ev], None), Some(0));
        watching(&ev)
    });
    hub.join().unwrap();
    assert_eq!(waiter.join().unwrap(), 0);

    // Green threads of two hubs wait on one queue; a plain thread puts.
    let q = Queue::<u32>::unbounded();
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            thread::spawn(move || {
                let q2 = q.clone();
                green::spawn(move || {
                    let mut got = 0;
                    while got == 0 {
                        assert_eq!(wait_any(&[&q2], None), Some(0));
                        // Another hub may have taken it first.
                        got = q2.get_nowait().unwrap_or(0);
                    }
                    got
                })
                .wait()
            })
        })
        .collect();
    q.put(1);
    q.put(2);
    let mut got: Vec<u32> = waiters.into_iter().map(|t| t.join().unwrap()).collect();
    got.sort();
    assert_eq!(got, [1, 2]);
    assert_eq!(watching(&q), 0);
}

#[test]
fn a_kill_or_a_timeout_during_the_wait_leaves_nothing_registered() {
    let evs: Vec<Event<()>> = (0..1_000).map(|_| Event::new()).collect();
    let sem = BoundedSemaphore::new(1);
    let guard = sem.acquire();
    let q = Queue::<u8>::new(1);
    let evs = Arc::new(evs);

    let evs2 = evs.clone();
    let (sem2, q2) = (sem.clone(), q.clone());
    let killed = green::spawn(move || {
        let mut items: Vec<&dyn Waitable> = evs2.iter().map(|e| e as _).collect();
        items.push(&sem2);
        items.push(&q2);
        wait_any(&items, None)
    });
    green::yield_now();
    assert_eq!(watching(&evs[500]), 1, "the wait watches each item");
    assert_eq!((watching(&sem), watching(&q)), (1, 1));
    killed.kill();
    assert!(killed.join().unwrap_err().is::<green::Killed>());
    assert!(evs.iter().all(|e| watching(e) == 0));
    assert_eq!((watching(&sem), watching(&q)), (0, 0));

    let evs3 = evs.clone();
    let timed = green::spawn(move || {
        let items: Vec<&dyn Waitable> = evs3.iter().map(|e| e as _).collect();
        green::with_timeout(Duration::from_millis(10), || wait_any(&items, None))
    });
    assert!(timed.wait().is_err(), "the Timeout fired");
    assert!(evs.iter().all(|e| watching(e) == 0));

    // A Timeout in the caller's scope works on a plain `wait_any` too.
    let t = Timeout::new(Duration::from_millis(10));
    let items: Vec<&dyn Waitable> = evs.iter().map(|e| e as _).collect();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wait_any(&items, None)));
    drop(t);
    assert!(r.is_err());
    assert!(evs.iter().all(|e| watching(e) == 0));
    drop(guard);
}

#[test]
fn wait_any_times_out_after_its_timeout() {
    let ev = Event::<()>::new();
    let t = Instant::now();
    assert_eq!(wait_any(&[&ev], Some(Duration::from_millis(30))), None);
    assert!(t.elapsed() >= Duration::from_millis(30));
    assert_eq!(watching(&ev), 0);
}

#[test]
fn iwait_yields_each_item_once_as_it_becomes_ready() {
    // Three finish before the iteration starts (no sleep), three after.
    // Apart by 200 ms, so that a loaded machine keeps the order.
    let workers: Vec<_> = [400u64, 0, 200, 0, 600, 0]
        .into_iter()
        .map(|ms| {
            green::spawn(move || {
                if ms > 0 {
                    green::sleep(Duration::from_millis(ms));
                }
            })
        })
        .collect();
    let items: Vec<&dyn Waitable> = workers.iter().map(|w| w as _).collect();
    green::yield_now(); // the three of 0 ms finish
    assert_eq!(workers.iter().filter(|w| w.is_finished()).count(), 3);
    let order: Vec<usize> = iwait(&items, None).collect();
    // Those ready at the start in index order, then as they finish.
    assert_eq!(order, [1, 3, 5, 2, 0, 4]);
}

#[test]
fn a_rendezvous_sender_and_a_capped_release_waiting_make_their_item_ready() {
    // A sender blocked on a zero-capacity channel: a `recv` would not wait.
    let (tx, rx) = mpsc::sync_channel::<u32>(0);
    let sender = green::spawn(move || tx.send(5).unwrap());
    assert_eq!(wait_any(&[&rx], Some(Duration::from_secs(60))), Some(0));
    assert_eq!(rx.try_recv(), Ok(5));
    sender.wait();
    // A release of a CappedSemaphore at its limit waits for room: an
    // acquire would not wait (it takes that permit).
    let capped = green::CappedSemaphore::new(0, 0);
    let c = capped.clone();
    let releaser = green::spawn(move || c.release());
    assert_eq!(wait_any(&[&capped], Some(Duration::from_secs(60))), Some(0));
    capped
        .try_acquire()
        .expect("the waiting release's permit")
        .forget();
    releaser.wait();
    assert_eq!(watching(&capped), 0);
}

#[test]
fn an_fd_wait_in_a_destructor_at_thread_exit_returns() {
    // The hub is torn down while the green thread sleeps; its destructor
    // then waits on an fd, which a closing hub no longer watches: the wait
    // returns (the fd as ready) instead of spinning or hanging.
    struct WaitOnDrop(UnixStream);
    impl Drop for WaitOnDrop {
        fn drop(&mut self) {
            let r = wait_any(&[&WaitFd::readable(&self.0)], None);
            assert_eq!(r, Some(0));
        }
    }
    let (a, _b) = UnixStream::pair().unwrap();
    common::within(Duration::from_secs(60), move || {
        let t = thread::spawn(move || {
            let guard = WaitOnDrop(a);
            green::spawn_n(move || {
                let _guard = guard;
                green::sleep(Duration::from_secs(3600));
            });
            green::yield_now();
        });
        t.join().unwrap();
    });
}

#[test]
fn iwait_watches_again_an_item_taken_by_another_context_and_stops_at_its_timeout() {
    let q = Queue::<u32>::unbounded();
    let ev = Event::<()>::new();
    let items: [&dyn Waitable; 2] = [&q, &ev];
    let mut it = iwait(&items, Some(Duration::from_secs(60)));
    // The feeder puts an item (the queue fires) and takes it back before
    // the iterator looks: the queue is not ready after all, and must be
    // watched again to be seen when the second item comes.
    let (q2, ev2) = (q.clone(), ev.clone());
    let feeder = green::spawn(move || {
        green::yield_now();
        q2.put(1);
        assert_eq!(q2.get_nowait(), Ok(1));
        green::yield_now();
        ev2.send(()).unwrap();
        green::yield_now();
        q2.put(2);
    });
    assert_eq!(it.next(), Some(1), "the event, not the queue");
    assert_eq!(it.next(), Some(0), "then the queue, for the second item");
    assert_eq!(q.get_nowait(), Ok(2));
    assert_eq!(it.next(), None, "all reported");
    feeder.wait();

    let ev = Event::<()>::new();
    let items: [&dyn Waitable; 1] = [&ev];
    let t = Instant::now();
    let mut it = iwait(&items, Some(Duration::from_millis(30)));
    assert_eq!(it.next(), None);
    assert!(t.elapsed() >= Duration::from_millis(30));
    assert_eq!(watching(&ev), 1, "the iterator keeps its watcher");
    drop(it);
    assert_eq!(watching(&ev), 0);
}

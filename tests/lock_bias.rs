//! Primitives used on one hub for a while, then from other OS threads.
//!
//! A primitive's internal lock is biased towards the hub that uses it
//! alone: its thread then locks with plain loads and stores. These tests
//! use channels, queues, mutexes and events the way programs do — long on
//! one hub, then shared — and check that nothing is lost or left waiting
//! when other threads come in, with std's primitives on plain threads as
//! the reference for the same steps.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use green::sync::mpsc;

/// Round trips on one hub first, so that the channel's lock is biased.
const WARM: u64 = 10_000;

/// Sends back every number received until the channel closes (or the way
/// back does); returns their sum.
fn echo_until_closed(
    mut recv: impl FnMut() -> Option<u64>,
    mut send: impl FnMut(u64) -> bool,
) -> u64 {
    let mut sum = 0;
    while let Some(v) = recv() {
        sum += v;
        if !send(v) {
            break;
        }
    }
    sum
}

/// A channel that carried many messages between two green threads of one
/// hub, then gets a message from a plain thread while a green thread
/// waits in `recv`: the message arrives, and the channel keeps working
/// both ways.
#[test]
fn a_channel_warmed_on_one_hub_takes_a_send_from_a_plain_thread() {
    let (tx, rx) = mpsc::channel::<u64>();
    let (back_tx, back_rx) = mpsc::channel::<u64>();
    let echo =
        green::spawn(move || echo_until_closed(|| rx.recv().ok(), |v| back_tx.send(v).is_ok()));
    for i in 0..WARM {
        tx.send(i).unwrap();
        assert_eq!(back_rx.recv().unwrap(), i);
    }
    // The echoing green thread now waits in `recv`; a plain thread sends.
    let remote = tx.clone();
    let t = std::thread::spawn(move || {
        for i in 0..100u64 {
            remote.send(1_000_000 + i).unwrap();
        }
    });
    for i in 0..100u64 {
        assert_eq!(back_rx.recv().unwrap(), 1_000_000 + i);
    }
    t.join().unwrap();
    // And the hub's own threads go on using it.
    for i in 0..1000 {
        tx.send(i).unwrap();
        assert_eq!(back_rx.recv().unwrap(), i);
    }
    drop(tx);
    let expected: u64 =
        (0..WARM).sum::<u64>() + (0..100u64).map(|i| 1_000_000 + i).sum::<u64>() + 999 * 1000 / 2;
    assert_eq!(echo.wait(), expected);
}

/// The same steps with std's channel and plain threads: the reference for
/// what the test above expects.
#[test]
fn reference_std_channel_with_threads() {
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    let (back_tx, back_rx) = std::sync::mpsc::channel::<u64>();
    let echo = std::thread::spawn(move || {
        echo_until_closed(|| rx.recv().ok(), |v| back_tx.send(v).is_ok())
    });
    for i in 0..1000u64 {
        tx.send(i).unwrap();
        assert_eq!(back_rx.recv().unwrap(), i);
    }
    drop(tx);
    assert_eq!(echo.join().unwrap(), 999 * 1000 / 2);
}

/// A green mutex contended by green threads of one hub long enough to be
/// biased, then at the same time by plain threads and by the green threads
/// of a second hub: every increment counts.
#[test]
fn a_mutex_shared_by_hubs_and_threads_loses_no_increment() {
    const PER: usize = 20_000;
    let m = Arc::new(green::sync::Mutex::new(0usize));
    // Biased towards this hub first.
    let local: Vec<_> = (0..4)
        .map(|_| {
            let m = m.clone();
            green::spawn(move || {
                for _ in 0..PER {
                    *m.lock().unwrap() += 1;
                    green::yield_now();
                }
            })
        })
        .collect();
    let mut others = Vec::new();
    for i in 0..3 {
        let m = m.clone();
        others.push(std::thread::spawn(move || {
            if i == 0 {
                // A second hub, with green threads of its own.
                let gs: Vec<_> = (0..3)
                    .map(|_| {
                        let m = m.clone();
                        green::spawn(move || {
                            for _ in 0..PER {
                                *m.lock().unwrap() += 1;
                                green::yield_now();
                            }
                        })
                    })
                    .collect();
                gs.into_iter().for_each(|g| g.wait());
            } else {
                for _ in 0..PER {
                    *m.lock().unwrap() += 1;
                }
            }
        }));
    }
    local.into_iter().for_each(|g| g.wait());
    for t in others {
        t.join().unwrap();
    }
    assert_eq!(*m.lock().unwrap(), (4 + 3 + 2) * PER);
}

/// A queue between green threads of one hub, then between two hubs, then
/// with a plain thread putting too: every item comes out once.
#[test]
fn a_queue_warmed_on_one_hub_then_shared_delivers_every_item_once() {
    let q = green::queue::Queue::<u64>::unbounded();
    let got = Arc::new(AtomicUsize::new(0));
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            let got = got.clone();
            green::spawn(move || {
                let mut sum = 0u64;
                loop {
                    let v = q.get();
                    if v == u64::MAX {
                        return sum;
                    }
                    sum += v;
                    got.fetch_add(1, Ordering::Relaxed);
                    q.task_done();
                }
            })
        })
        .collect();
    for i in 0..WARM {
        q.put(i);
        if i % 16 == 0 {
            green::yield_now();
        }
    }
    let remote_hub = {
        let q = q.clone();
        std::thread::spawn(move || {
            let p = green::spawn(move || {
                for i in 0..5000u64 {
                    q.put(WARM + i);
                    green::yield_now();
                }
            });
            p.wait();
        })
    };
    let plain = {
        let q = q.clone();
        std::thread::spawn(move || {
            for i in 0..5000u64 {
                q.put(WARM + 5000 + i);
            }
        })
    };
    remote_hub.join().unwrap();
    plain.join().unwrap();
    // Wait (green) until every item put so far was taken and counted.
    q.join();
    assert_eq!(got.load(Ordering::Relaxed), WARM as usize + 10_000);
    q.put(u64::MAX);
    q.put(u64::MAX);
    let sum: u64 = consumers.into_iter().map(|c| c.wait()).sum();
    assert_eq!(sum, (0..WARM + 10_000).sum::<u64>());
}

/// An event waited on and sent many times on one hub, then sent from a
/// plain thread, before or while the root waits on it.
#[test]
fn an_event_used_on_one_hub_is_sent_from_a_plain_thread() {
    for round in 0..200u32 {
        let ev = green::Event::new();
        let e2 = ev.clone();
        let g = green::spawn(move || e2.send(round).is_ok());
        assert_eq!(ev.wait(), round);
        assert!(g.wait());
    }
    for round in 0..100u32 {
        let ev = green::Event::new();
        let e2 = ev.clone();
        let t = std::thread::spawn(move || e2.send(round).is_ok());
        assert_eq!(ev.wait(), round);
        assert!(t.join().unwrap());
    }
}

/// A key whose comparison yields when asked to: user code run under a
/// priority queue's internal lock.
#[derive(Debug)]
struct Key(u32, Rc<Cell<bool>>);

impl PartialEq for Key {
    fn eq(&self, o: &Self) -> bool {
        self.0 == o.0
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Key {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        if self.1.replace(false) {
            green::yield_now();
        }
        self.0.cmp(&o.0)
    }
}

/// An `Ord` that yields under the queue's lock is told so by a panic, on
/// the biased path as on the mutex path; another green thread never gets
/// in meanwhile, and the queue stays usable.
#[test]
fn an_ord_that_yields_under_the_lock_panics_and_leaves_the_queue_whole() {
    let q = Rc::new(green::queue::PriorityQueue::<Key>::unbounded());
    let yield_now = Rc::new(Cell::new(false));
    // Enough puts from this hub for the lock to be biased to it (and the
    // first ones through the mutex).
    for k in [5, 7, 3, 9, 8, 6] {
        q.put(Key(k, yield_now.clone()));
        yield_now.set(true);
        let put = {
            let (q, y) = (q.clone(), yield_now.clone());
            green::spawn(move || q.put(Key(100 + k, y)))
        };
        // Queued behind the put: it must not get in while the put's `Ord`
        // runs under the lock (and find the heap half-sorted).
        let q2 = q.clone();
        let other = green::spawn(move || q2.get_nowait().ok().map(|k| k.0));
        let err = put.join().expect_err("the yielding Ord must panic");
        let msg = err
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| err.downcast_ref::<&str>().copied())
            .unwrap_or("");
        assert!(msg.contains("must not block or yield"), "{msg}");
        yield_now.set(false);
        // The other green thread ran after the panic, with the lock free.
        let _ = other.wait();
    }
    // Whatever is left comes out in order.
    let mut left = Vec::new();
    while let Ok(k) = q.get_nowait() {
        left.push(k.0);
    }
    let mut sorted = left.clone();
    sorted.sort_unstable();
    assert_eq!(left, sorted);
}

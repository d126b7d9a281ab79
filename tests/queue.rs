//! `green::queue`: the four queue kinds between green threads of one hub,
//! across hubs and with plain OS threads; their orders, rendezvous,
//! non-blocking and timed operations, resizing, task tracking, and how a
//! waiter that is killed or timed out leaves the queue without losing an
//! item. Ends with a seeded randomised stress test.

mod common;

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::mpsc as std_mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{stress_seed, Rng};

use green::queue::{Empty, Full, LifoQueue, LightQueue, PriorityQueue, Queue};

/// Tests every kind passes alike: they check contents, not order.
macro_rules! every_kind {
    ($($kind:ident => $module:ident),* $(,)?) => {$(
        mod $module {
            use super::*;

            type Q<T> = $kind<T>;

            fn sorted(mut v: Vec<u32>) -> Vec<u32> {
                v.sort_unstable();
                v
            }

            #[test]
            fn green_to_green_on_one_hub() {
                let q = Q::new(3);
                let producer = {
                    let q = q.clone();
                    green::spawn(move || (0..100).for_each(|i| q.put(i)))
                };
                let consumer = {
                    let q = q.clone();
                    green::spawn(move || (0..100).map(|_| q.get()).collect::<Vec<u32>>())
                };
                producer.wait();
                assert_eq!(sorted(consumer.wait()), (0..100).collect::<Vec<_>>());
                assert_eq!((q.getting(), q.putting(), q.qsize()), (0, 0, 0));
            }

            #[test]
            fn green_to_green_across_hubs() {
                let q = Q::new(2);
                let producers = {
                    let q = q.clone();
                    thread::spawn(move || {
                        let gts: Vec<_> = (0..2u32)
                            .map(|p| {
                                let q = q.clone();
                                green::spawn(move || (0..50).for_each(|i| q.put(p * 100 + i)))
                            })
                            .collect();
                        gts.into_iter().for_each(|gt| gt.wait());
                    })
                };
                let consumers = {
                    let q = q.clone();
                    thread::spawn(move || {
                        let gts: Vec<_> = (0..2)
                            .map(|_| {
                                let q = q.clone();
                                green::spawn(move || (0..50).map(|_| q.get()).collect::<Vec<u32>>())
                            })
                            .collect();
                        gts.into_iter().flat_map(|gt| gt.wait()).collect::<Vec<u32>>()
                    })
                };
                producers.join().unwrap();
                let got = sorted(consumers.join().unwrap());
                let want: Vec<u32> = (0..50).chain(100..150).collect();
                assert_eq!(got, want);
                assert_eq!((q.getting(), q.putting(), q.qsize()), (0, 0, 0));
            }

            #[test]
            fn plain_thread_to_green() {
                let q = Q::new(1);
                let producer = {
                    let q = q.clone();
                    thread::spawn(move || (0..50).for_each(|i| q.put(i)))
                };
                let consumer = {
                    let q = q.clone();
                    green::spawn(move || (0..50).map(|_| q.get()).collect::<Vec<u32>>())
                };
                assert_eq!(sorted(consumer.wait()), (0..50).collect::<Vec<_>>());
                producer.join().unwrap();
                assert_eq!((q.getting(), q.putting()), (0, 0));
            }

            #[test]
            fn green_to_plain_thread() {
                let q = Q::new(1);
                let consumer = {
                    let q = q.clone();
                    thread::spawn(move || (0..50).map(|_| q.get()).collect::<Vec<u32>>())
                };
                let producer = {
                    let q = q.clone();
                    green::spawn(move || (0..50).for_each(|i| q.put(i)))
                };
                producer.wait();
                assert_eq!(sorted(consumer.join().unwrap()), (0..50).collect::<Vec<_>>());
                assert_eq!((q.getting(), q.putting()), (0, 0));
            }

            #[test]
            fn rendezvous_put_waits_for_get() {
                let q = Q::new(0);
                let done = Rc::new(Cell::new(false));
                let putter = {
                    let (q, done) = (q.clone(), done.clone());
                    green::spawn(move || {
                        q.put(1);
                        done.set(true);
                    })
                };
                green::yield_now(); // the putter waits: nobody takes the item
                assert!(!done.get());
                assert_eq!((q.putting(), q.qsize()), (1, 0));
                assert!(q.full());
                assert_eq!(q.get(), 1);
                green::yield_now(); // the putter, woken, returns
                assert!(done.get());
                putter.wait();
                assert_eq!(q.putting(), 0);
            }

            #[test]
            fn rendezvous_put_nowait_needs_a_waiting_getter() {
                let q = Q::new(0);
                assert_eq!(q.put_nowait(1).unwrap_err().into_inner(), 1);
                let getter = {
                    let q = q.clone();
                    green::spawn(move || q.get())
                };
                green::yield_now(); // the getter waits
                assert_eq!(q.put_nowait(2), Ok(()));
                assert_eq!(getter.wait(), 2);
            }

            #[test]
            fn rendezvous_get_nowait_takes_from_a_waiting_putter() {
                let q = Q::new(0);
                assert_eq!(q.get_nowait(), Err(Empty));
                let putter = {
                    let q = q.clone();
                    green::spawn(move || q.put(4))
                };
                green::yield_now(); // the putter waits
                assert_eq!(q.get_nowait(), Ok(4));
                putter.wait();
            }

            #[test]
            fn put_nowait_on_full_queue_returns_item() {
                let q = Q::new(1);
                q.put(1);
                assert_eq!(q.put_nowait(2), Err(Full(2)));
                assert_eq!(q.qsize(), 1);
            }

            #[test]
            fn get_nowait_on_empty_queue_is_empty() {
                let q: Q<u32> = Q::unbounded();
                assert_eq!(q.get_nowait(), Err(Empty));
            }

            #[test]
            fn put_timeout_returns_item_after_deadline() {
                let q = Q::new(1);
                q.put(1);
                let start = Instant::now();
                let err = q.put_timeout(2, Duration::from_millis(50)).unwrap_err();
                let took = start.elapsed();
                assert_eq!(err.into_inner(), 2);
                // Margin: at least the timeout, far less than 5 s.
                assert!(took >= Duration::from_millis(50), "{took:?}");
                assert!(took < Duration::from_secs(5), "{took:?}");
                assert_eq!((q.putting(), q.qsize()), (0, 1));
            }

            #[test]
            fn get_timeout_returns_empty_after_deadline() {
                let q: Q<u32> = Q::new(1);
                let start = Instant::now();
                assert_eq!(q.get_timeout(Duration::from_millis(50)), Err(Empty));
                let took = start.elapsed();
                assert!(took >= Duration::from_millis(50), "{took:?}");
                assert!(took < Duration::from_secs(5), "{took:?}");
                assert_eq!(q.getting(), 0);
            }

            #[test]
            fn get_timeout_receives_item_put_meanwhile() {
                let q = Q::new(1);
                let q2 = q.clone();
                green::spawn(move || q2.put(9));
                assert_eq!(q.get_timeout(Duration::from_secs(60)), Ok(9));
            }

            #[test]
            fn put_timeout_on_plain_thread_returns_item() {
                let q = Q::new(0);
                let q2 = q.clone();
                let r = thread::spawn(move || q2.put_timeout(3, Duration::from_millis(20)));
                assert_eq!(r.join().unwrap(), Err(Full(3)));
                assert_eq!(q.putting(), 0);
            }

            #[test]
            fn resize_wakes_putters_whose_items_fit() {
                let q = Q::new(1);
                q.put(0);
                let putters: Vec<_> = (1..=3)
                    .map(|i| {
                        let q = q.clone();
                        green::spawn(move || q.put(i))
                    })
                    .collect();
                green::yield_now(); // all three wait: the queue is full
                assert_eq!(q.putting(), 3);
                q.resize(Some(3));
                assert_eq!((q.putting(), q.qsize()), (1, 3));
                q.resize(None);
                assert_eq!((q.putting(), q.qsize()), (0, 4));
                putters.into_iter().for_each(|gt| gt.wait());
                assert_eq!(sorted((0..4).map(|_| q.get()).collect()), [0, 1, 2, 3]);
            }

            #[test]
            fn shrinking_keeps_every_item() {
                let q = Q::new(4);
                (0..4).for_each(|i| q.put(i));
                q.resize(Some(1));
                assert_eq!((q.qsize(), q.maxsize()), (4, Some(1)));
                assert!(q.put_nowait(9).is_err());
                (0..3).for_each(|_| {
                    q.get();
                });
                assert!(q.full()); // one item left, limit one
                q.get();
                assert_eq!(q.put_nowait(9), Ok(()));
            }

            #[test]
            fn killed_getter_leaves_no_waiter_behind() {
                let q = Q::unbounded();
                let getter = {
                    let q = q.clone();
                    green::spawn(move || q.get())
                };
                green::yield_now(); // it waits
                assert_eq!(q.getting(), 1);
                getter.kill();
                assert!(getter.join().unwrap_err().is::<green::Killed>());
                assert_eq!(q.getting(), 0);
                q.put(5); // not handed to the dead getter
                assert_eq!(q.get_nowait(), Ok(5));
            }

            #[test]
            fn killed_getter_passes_its_item_to_the_next_getter() {
                let q = Q::unbounded();
                let [first, second] = [0, 1].map(|_| {
                    let q = q.clone();
                    green::spawn(move || q.get())
                });
                green::yield_now(); // both wait
                q.put(7); // handed to `first`, which has not run yet
                first.kill();
                assert!(first.join().unwrap_err().is::<green::Killed>());
                assert_eq!(second.wait(), 7);
                assert_eq!((q.getting(), q.qsize()), (0, 0));
            }

            #[test]
            fn killed_getter_returns_its_item_to_the_head() {
                let q = Q::unbounded();
                let getter = {
                    let q = q.clone();
                    green::spawn(move || q.get())
                };
                green::yield_now();
                q.put(7); // handed to the getter
                q.put(8); // stored
                getter.kill();
                assert!(getter.join().unwrap_err().is::<green::Killed>());
                // 7 is the next item out, whatever the kind's order.
                assert_eq!(q.get_nowait(), Ok(7));
                assert_eq!(q.get_nowait(), Ok(8));
            }

            #[test]
            fn killed_putter_leaves_no_waiter_behind() {
                let q = Q::new(1);
                q.put(1);
                let putter = {
                    let q = q.clone();
                    green::spawn(move || q.put(2))
                };
                green::yield_now(); // it waits
                assert_eq!(q.putting(), 1);
                putter.kill();
                assert!(putter.join().unwrap_err().is::<green::Killed>());
                assert_eq!(q.putting(), 0);
                assert_eq!(q.get(), 1);
                assert_eq!(q.get_nowait(), Err(Empty)); // 2 was never put
                q.put(3); // room is not held by the dead putter
                assert_eq!(q.get_nowait(), Ok(3));
            }

            #[test]
            fn killed_putter_whose_item_was_taken_keeps_it_delivered() {
                let q = Q::new(0);
                let putter = {
                    let q = q.clone();
                    green::spawn(move || q.put(3))
                };
                green::yield_now(); // it waits with its item
                assert_eq!(q.get_nowait(), Ok(3)); // taken, putter woken
                putter.kill(); // unwinds before it runs again
                assert!(putter.join().unwrap_err().is::<green::Killed>());
                assert_eq!((q.putting(), q.qsize()), (0, 0));
                assert_eq!(q.get_nowait(), Err(Empty));
            }

            #[test]
            fn with_timeout_interrupts_blocking_get() {
                let q: Q<u32> = Q::unbounded();
                let r = green::with_timeout(Duration::from_millis(20), || q.get());
                assert!(r.is_err());
                assert_eq!(q.getting(), 0);
                q.put(1);
                assert_eq!(q.get_nowait(), Ok(1));
            }

            #[test]
            fn timeout_ends_green_thread_blocked_in_put() {
                let q = Q::new(0);
                let putter = {
                    let q = q.clone();
                    green::spawn(move || {
                        let _t = green::Timeout::new(Duration::from_millis(20));
                        q.put(1);
                    })
                };
                assert!(putter.join().unwrap_err().is::<green::Elapsed>());
                assert_eq!(q.putting(), 0);
                assert_eq!(q.get_nowait(), Err(Empty));
            }

            #[test]
            fn getting_and_putting_return_to_zero() {
                let q = Q::new(0);
                let getters: Vec<_> = (0..3)
                    .map(|_| {
                        let q = q.clone();
                        green::spawn(move || q.get())
                    })
                    .collect();
                green::yield_now();
                assert_eq!((q.getting(), q.putting()), (3, 0));
                (0..3).for_each(|i| q.put(i));
                assert_eq!(q.getting(), 0);
                assert_eq!(sorted(getters.into_iter().map(|gt| gt.wait()).collect()), [0, 1, 2]);
                let putters: Vec<_> = (0..3)
                    .map(|i| {
                        let q = q.clone();
                        green::spawn(move || q.put(i))
                    })
                    .collect();
                green::yield_now();
                assert_eq!((q.getting(), q.putting()), (0, 3));
                (0..3).for_each(|_| {
                    q.get();
                });
                assert_eq!(q.putting(), 0);
                putters.into_iter().for_each(|gt| gt.wait());
            }

            #[test]
            fn clones_share_one_queue() {
                let q = Q::unbounded();
                let q2 = q.clone();
                q.put(1);
                assert_eq!(q2.qsize(), 1);
                assert_eq!(q2.get(), 1);
                assert!(q.empty());
            }

            #[test]
            fn sizes_report_limits() {
                let unbounded: Q<u32> = Q::unbounded();
                assert_eq!(unbounded.maxsize(), None);
                assert!(!unbounded.full());
                let rendezvous: Q<u32> = Q::new(0);
                assert_eq!(rendezvous.maxsize(), Some(0));
                assert!(rendezvous.full() && rendezvous.empty());
                let bounded: Q<u32> = Q::bounded(2);
                assert_eq!(bounded.maxsize(), Some(2));
                let default: Q<u32> = Q::default();
                assert_eq!(default.maxsize(), None);
            }

            #[test]
            fn debug_shows_state_without_item_debug() {
                struct Opaque;
                impl PartialEq for Opaque {
                    fn eq(&self, _: &Self) -> bool {
                        true
                    }
                }
                impl Eq for Opaque {}
                impl PartialOrd for Opaque {
                    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
                        Some(self.cmp(o))
                    }
                }
                impl Ord for Opaque {
                    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
                        std::cmp::Ordering::Equal
                    }
                }
                let q = Q::new(3);
                q.put(Opaque);
                let s = format!("{q:?}");
                assert!(s.starts_with(stringify!($kind)), "{s}");
                assert!(s.contains("qsize: 1") && s.contains("maxsize: Some(3)"), "{s}");
            }

            // Handles are send and sync: checked when this file compiles.
            const _: () = {
                const fn assert_send_sync<T: Send + Sync>() {}
                assert_send_sync::<Q<u32>>();
                assert_send_sync::<Q<std::sync::Mutex<u32>>>();
            };
        }
    )*};
}

every_kind! {
    Queue => queue,
    LightQueue => light_queue,
    PriorityQueue => priority_queue,
    LifoQueue => lifo_queue,
}

/// `task_done` and `join`, for the kinds that track tasks.
macro_rules! tracked_kind {
    ($($kind:ident => $module:ident),* $(,)?) => {$(
        mod $module {
            use super::*;

            type Q<T> = $kind<T>;

            #[test]
            fn join_waits_until_every_item_is_done() {
                let q = Q::unbounded();
                (0..3).for_each(|i| q.put(i));
                let joined = Rc::new(Cell::new(false));
                let joiner = {
                    let (q, joined) = (q.clone(), joined.clone());
                    green::spawn(move || {
                        q.join();
                        joined.set(true);
                    })
                };
                for _ in 0..3 {
                    green::yield_now();
                    assert!(!joined.get());
                    q.get();
                    q.task_done();
                }
                joiner.wait();
                assert!(joined.get());
            }

            #[test]
            fn join_returns_at_once_with_nothing_unfinished() {
                let q: Q<u32> = Q::unbounded();
                q.join();
                q.put(1);
                q.get();
                q.task_done();
                q.join();
            }

            #[test]
            fn item_taken_from_blocked_putter_counts_as_a_task() {
                let q = Q::new(0);
                let putter = {
                    let q = q.clone();
                    green::spawn(move || q.put(1))
                };
                green::yield_now();
                assert_eq!(q.get(), 1);
                q.task_done(); // must not panic: the item counts
                putter.wait();
                q.join();
            }

            #[test]
            fn join_on_root_waits_for_plain_thread_worker() {
                let q = Q::new(2);
                let worker = {
                    let q = q.clone();
                    thread::spawn(move || {
                        for _ in 0..20 {
                            let _job: u32 = q.get();
                            q.task_done();
                        }
                    })
                };
                (0..20).for_each(|i| q.put(i));
                q.join();
                assert!(q.empty());
                worker.join().unwrap();
            }

            #[test]
            #[should_panic(expected = "task_done() called more times than there were items")]
            fn task_done_more_often_than_items_panics() {
                let q = Q::unbounded();
                q.put(1);
                q.get();
                q.task_done();
                q.task_done();
            }
        }
    )*};
}

tracked_kind! {
    Queue => queue_tasks,
    PriorityQueue => priority_queue_tasks,
    LifoQueue => lifo_queue_tasks,
}

#[test]
fn queue_is_first_in_first_out() {
    let q = Queue::unbounded();
    (0..10).for_each(|i| q.put(i));
    assert_eq!(
        (0..10).map(|_| q.get()).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
}

#[test]
fn light_queue_is_first_in_first_out() {
    let q = LightQueue::new(10);
    (0..10).for_each(|i| q.put(i));
    assert_eq!(
        (0..10).map(|_| q.get()).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
}

#[test]
fn lifo_queue_is_last_in_first_out() {
    let q = LifoQueue::unbounded();
    (0..10).for_each(|i| q.put(i));
    assert_eq!(
        (0..10).map(|_| q.get()).collect::<Vec<_>>(),
        (0..10).rev().collect::<Vec<_>>()
    );
}

#[test]
fn priority_queue_hands_out_smallest_first() {
    let q = PriorityQueue::unbounded();
    for i in [5, 1, 4, 2, 3, 0] {
        q.put(i);
    }
    assert_eq!(
        (0..6).map(|_| q.get()).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
}

#[test]
fn priority_queue_orders_by_tuple_priority() {
    let q = PriorityQueue::unbounded();
    q.put((2, "b"));
    q.put((1, "a"));
    q.put((3, "c"));
    assert_eq!(q.get(), (1, "a"));
    assert_eq!(q.get(), (2, "b"));
    assert_eq!(q.get(), (3, "c"));
}

#[test]
fn blocked_putters_are_served_in_arrival_order() {
    let q = Queue::new(1);
    q.put(0);
    let putters: Vec<_> = (1..=3)
        .map(|i| {
            let q = q.clone();
            green::spawn(move || q.put(i))
        })
        .collect();
    green::yield_now(); // they queue up in order 1, 2, 3
    assert_eq!((0..4).map(|_| q.get()).collect::<Vec<_>>(), [0, 1, 2, 3]);
    putters.into_iter().for_each(|gt| gt.wait());
}

#[test]
fn blocked_getters_are_served_in_arrival_order() {
    let q = Queue::unbounded();
    let getters: Vec<_> = (0..3)
        .map(|_| {
            let q = q.clone();
            green::spawn(move || q.get())
        })
        .collect();
    green::yield_now(); // they queue up in spawn order
    (10..13).for_each(|i| q.put(i));
    let got: Vec<u32> = getters.into_iter().map(|gt| gt.wait()).collect();
    assert_eq!(got, [10, 11, 12]);
}

#[test]
fn root_blocked_in_get_runs_green_threads() {
    let q = Queue::unbounded();
    let q2 = q.clone();
    green::spawn(move || {
        green::yield_now();
        q2.put("late");
    });
    assert_eq!(q.get(), "late");
}

#[test]
fn full_error_hides_item_in_debug_and_reports_in_display() {
    struct NoDebug;
    let err = Full(NoDebug);
    assert_eq!(format!("{err:?}"), "Full { .. }");
    assert_eq!(err.to_string(), "queue is full");
    assert_eq!(Empty.to_string(), "queue is empty");
    fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
    assert_error::<Full<u32>>();
    assert_error::<Empty>();
}

type Msg = Option<(u32, u32)>;
/// What each consumer received.
type Received = Vec<Vec<(u32, u32)>>;
/// `(getting, putting, qsize)` of a queue.
type Counts = (usize, usize, usize);

const PRODUCERS: u32 = 6;
const CONSUMERS: u32 = 4;
const PER_PRODUCER: u32 = 5000;

/// Puts one message with a randomly chosen operation; `green` says
/// whether the caller is a green thread (which may yield to its hub).
fn put_somehow(q: &Queue<Msg>, msg: Msg, rng: &mut Rng, green: bool) {
    match rng.below(4) {
        0 => {
            let mut msg = msg;
            loop {
                let wait = Duration::from_micros(rng.below(2000));
                match q.put_timeout(msg, wait) {
                    Ok(()) => break,
                    Err(Full(back)) => msg = back,
                }
            }
        }
        1 => {
            if let Err(Full(back)) = q.put_nowait(msg) {
                q.put(back);
            }
        }
        2 if green => {
            green::yield_now();
            q.put(msg);
        }
        _ => q.put(msg),
    }
}

/// Gets one message with a randomly chosen operation.
fn get_somehow(q: &Queue<Msg>, rng: &mut Rng) -> Msg {
    match rng.below(3) {
        0 => loop {
            let wait = Duration::from_micros(rng.below(2000));
            if let Ok(msg) = q.get_timeout(wait) {
                break msg;
            }
        },
        1 => q.get_nowait().unwrap_or_else(|_| q.get()),
        _ => q.get(),
    }
}

fn produce(q: Queue<Msg>, id: u32, seed: u64, green: bool) {
    let mut rng = Rng::new(seed ^ (u64::from(id) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    for seq in 0..PER_PRODUCER {
        put_somehow(&q, Some((id, seq)), &mut rng, green);
    }
}

/// Gets until a `None`; marks every item done.
fn consume(q: Queue<Msg>, id: u32, seed: u64) -> Vec<(u32, u32)> {
    let mut rng = Rng::new(seed ^ (u64::from(id) + 101).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut got = Vec::new();
    loop {
        let msg = get_somehow(&q, &mut rng);
        q.task_done();
        match msg {
            Some(m) => got.push(m),
            None => return got,
        }
    }
}

/// Producers 0-1 and consumer 0 on hub A, producers 2-3 and consumers 1-2
/// on hub B, producers 4-5 and consumer 3 on plain threads. Returns what
/// each consumer received, and the queue's final counts.
fn run_queue_stress(seed: u64, maxsize: usize) -> (Received, Counts) {
    let q: Queue<Msg> = Queue::new(maxsize);
    let (done_tx, done_rx) = std_mpsc::channel::<()>();
    let (got_tx, got_rx) = std_mpsc::channel::<Vec<(u32, u32)>>();
    let hub = |producers: Vec<u32>, consumers: Vec<u32>| {
        let (q, done_tx, got_tx) = (q.clone(), done_tx.clone(), got_tx.clone());
        thread::spawn(move || {
            let ps: Vec<_> = producers
                .into_iter()
                .map(|id| {
                    let (q, done_tx) = (q.clone(), done_tx.clone());
                    green::spawn(move || {
                        produce(q, id, seed, true);
                        done_tx.send(()).unwrap();
                    })
                })
                .collect();
            let cs: Vec<_> = consumers
                .into_iter()
                .map(|id| {
                    let (q, got_tx) = (q.clone(), got_tx.clone());
                    green::spawn(move || got_tx.send(consume(q, id, seed)).unwrap())
                })
                .collect();
            ps.into_iter().chain(cs).for_each(|gt| gt.wait());
        })
    };
    let mut threads = vec![hub(vec![0, 1], vec![0]), hub(vec![2, 3], vec![1, 2])];
    for id in 4..PRODUCERS {
        let (q, done_tx) = (q.clone(), done_tx.clone());
        threads.push(thread::spawn(move || {
            produce(q, id, seed, false);
            done_tx.send(()).unwrap();
        }));
    }
    {
        let (q, got_tx) = (q.clone(), got_tx.clone());
        threads.push(thread::spawn(move || {
            got_tx.send(consume(q, 3, seed)).unwrap()
        }));
    }
    drop((done_tx, got_tx));
    for _ in 0..PRODUCERS {
        done_rx.recv().unwrap();
    }
    for _ in 0..CONSUMERS {
        q.put(None);
    }
    q.join(); // every item, stop marks included, was marked done
    let got: Vec<_> = got_rx.iter().collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    (got, (q.getting(), q.putting(), q.qsize()))
}

/// Checks exactly-once delivery and, per consumer, per-producer order.
fn check_deliveries(got: &[Vec<(u32, u32)>]) {
    let mut seen = vec![vec![false; PER_PRODUCER as usize]; PRODUCERS as usize];
    for consumer in got {
        let mut last: HashMap<u32, u32> = HashMap::new();
        for &(p, seq) in consumer {
            let slot = &mut seen[p as usize][seq as usize];
            assert!(!*slot, "({p}, {seq}) delivered twice");
            *slot = true;
            if let Some(prev) = last.insert(p, seq) {
                assert!(prev < seq, "producer {p}: {seq} after {prev}");
            }
        }
    }
    for (p, seqs) in seen.iter().enumerate() {
        if let Some(seq) = seqs.iter().position(|s| !s) {
            panic!("({p}, {seq}) never delivered");
        }
    }
}

#[test]
fn stress_many_producers_and_consumers_across_hubs_and_threads() {
    let seed = stress_seed();
    let maxsize = Rng::new(seed).below(4) as usize; // 0 (rendezvous) to 3
    println!("maxsize {maxsize}");
    let (tx, rx) = std_mpsc::channel();
    thread::spawn(move || tx.send(run_queue_stress(seed, maxsize)).unwrap());
    let (got, counts) = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("no end within 60 s: deadlock? (seed {seed})"));
    assert_eq!(got.len(), CONSUMERS as usize);
    check_deliveries(&got);
    assert_eq!(counts, (0, 0, 0), "getting, putting, qsize at the end");
}

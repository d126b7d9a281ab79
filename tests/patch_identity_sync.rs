//! Third-party crates that keep state per thread, unmodified, on green
//! threads under `green::patch()`: crossbeam-channel's waiter contexts,
//! parking_lot's per-thread queue node, r2d2 (parking_lot inside), rayon's
//! per-thread latch, `std::thread::scope` from green threads, and
//! tracing-subscriber's per-thread span stack.
//!
//! Every green thread runs on the test's own OS thread (spawned with
//! `green::spawn` from it, checked with `gettid`). A ticker green thread,
//! where there is one, shows that the OS thread went on running green
//! threads while others waited in a third-party crate's blocking call.

#[path = "common/identity.rs"]
mod identity;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use identity::{assert_all_on_os_thread, os_tid, wait_until, Ticker, Watchdog};
use rayon::prelude::*;

/// How long any one test here may run before the watchdog ends the process.
const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn identity_is_per_green_thread() {
    identity::patch_with_identity();
}

#[test]
fn twenty_green_consumers_blocked_in_crossbeam_recv_are_fed_by_one_green_producer() {
    green::patch();
    let _w = Watchdog::new("crossbeam consumers", LIMIT);
    identity::consumers_fed_by_one_producer(
        crossbeam_channel::unbounded::<u64>,
        |tx, m| tx.send(m).expect("the consumer listens"),
        |rx| rx.recv().expect("the producer keeps its senders"),
    );
}

#[test]
fn crossbeam_rendezvous_ping_pong_of_200_between_two_green_threads() {
    green::patch();
    let _w = Watchdog::new("crossbeam rendezvous", LIMIT);
    const ROUNDS: u32 = 200;
    let me = os_tid();
    // Zero capacity: every send waits for its receive, and the reverse.
    let (ping_tx, ping_rx) = crossbeam_channel::bounded::<u32>(0);
    let (pong_tx, pong_rx) = crossbeam_channel::bounded::<u32>(0);
    let pinger = green::spawn(move || {
        for i in 0..ROUNDS {
            ping_tx.send(i).expect("the ponger listens");
            assert_eq!(pong_rx.recv().expect("the ponger answers"), i + 1);
        }
        (os_tid(), ping_tx, pong_rx)
    });
    let ponger = green::spawn(move || {
        for _ in 0..ROUNDS {
            let i = ping_rx.recv().expect("the pinger sends");
            pong_tx.send(i + 1).expect("the pinger listens");
        }
        (os_tid(), pong_tx, ping_rx)
    });
    let (a, ping_tx, pong_rx) = pinger.wait();
    let (b, pong_tx, ping_rx) = ponger.wait();
    assert_all_on_os_thread(&[a, b], me);
    drop((ping_tx, pong_rx, pong_tx, ping_rx));
}

#[test]
fn parking_lot_mutex_held_across_a_std_sleep_queues_twenty_green_waiters() {
    green::patch();
    let _w = Watchdog::new("parking_lot mutex", LIMIT);
    const WAITERS: usize = 20;
    const HOLD: Duration = Duration::from_millis(200);
    let me = os_tid();
    let start = Instant::now();
    let ticker = Ticker::start();
    // Who took the lock, in order; the holder is `WAITERS`.
    let lock = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let waiting = Arc::new(AtomicUsize::new(0));
    let (held_tx, held_rx) = mpsc::channel();
    let holder = {
        let (lock, waiting, ticks) = (lock.clone(), waiting.clone(), ticker.counter());
        green::spawn(move || {
            let mut order = lock.lock();
            order.push(WAITERS);
            held_tx.send(()).expect("the test listens");
            let t0 = ticks.load(Ordering::SeqCst);
            thread::sleep(HOLD);
            let ticked = ticks.load(Ordering::SeqCst) - t0;
            let queued = waiting.load(Ordering::SeqCst);
            drop(order);
            (ticked, queued, os_tid())
        })
    };
    held_rx.recv().expect("the holder reports");
    let waiters: Vec<_> = (0..WAITERS)
        .map(|i| {
            let (lock, waiting) = (lock.clone(), waiting.clone());
            green::spawn(move || {
                waiting.fetch_add(1, Ordering::SeqCst);
                let mut order = lock.lock();
                order.push(i);
                // A brief hold: the others stay queued meanwhile.
                thread::sleep(Duration::from_millis(2));
                drop(order);
                os_tid()
            })
        })
        .collect();
    let mut tids: Vec<_> = waiters.into_iter().map(green::GreenThread::wait).collect();
    let (ticked, queued, tid) = holder.wait();
    tids.push(tid);
    let elapsed = start.elapsed();
    println!(
        "held {HOLD:?}, then {WAITERS} waiters, in {elapsed:?}; {ticked} ticks during the hold"
    );
    ticker.stop(me);
    assert_all_on_os_thread(&tids, me);
    // The holder slept ten ticker periods holding the lock.
    assert!(
        ticked >= 1,
        "no other green thread ran while the holder slept holding the lock"
    );

    let order = lock.lock();
    assert_eq!(order[0], WAITERS, "the holder took the lock first");
    let mut waiters_in = order[1..].to_vec();
    waiters_in.sort_unstable();
    assert_eq!(
        waiters_in,
        (0..WAITERS).collect::<Vec<_>>(),
        "every waiter took the lock once"
    );
    assert_eq!(queued, WAITERS, "every waiter queued during the hold");
    // 200 ms held, then 20 holds of 2 ms: about 240 ms. 5 s is a margin of
    // 20x for a loaded machine; a waiter that blocked the OS thread would
    // never have let the holder wake (a hang, caught by the watchdog).
    assert!(
        elapsed < Duration::from_secs(5),
        "the lock round took {elapsed:?}"
    );
}

#[test]
fn parking_lot_condvar_ping_pong_of_200_between_two_green_threads() {
    green::patch();
    let _w = Watchdog::new("parking_lot condvar", LIMIT);
    const ROUNDS: u64 = 200;
    let me = os_tid();
    // The turn count: side 0 moves on even counts, side 1 on odd ones.
    let state = Arc::new((parking_lot::Mutex::new(0u64), parking_lot::Condvar::new()));
    let sides: Vec<_> = (0..2)
        .map(|side| {
            let state = state.clone();
            green::spawn(move || {
                let (turn, cv) = &*state;
                for _ in 0..ROUNDS {
                    let mut t = turn.lock();
                    while *t % 2 != side {
                        cv.wait(&mut t);
                    }
                    *t += 1;
                    cv.notify_one();
                }
                os_tid()
            })
        })
        .collect();
    let tids: Vec<_> = sides.into_iter().map(green::GreenThread::wait).collect();
    assert_all_on_os_thread(&tids, me);
    assert_eq!(*state.0.lock(), 2 * ROUNDS);
}

/// An r2d2 connection manager whose connections are numbers, each made with
/// a short `std::thread::sleep`.
struct SlowConnect {
    connects: Arc<AtomicUsize>,
}

impl r2d2::ManageConnection for SlowConnect {
    type Connection = usize;
    type Error = io::Error;

    fn connect(&self) -> Result<usize, io::Error> {
        thread::sleep(Duration::from_millis(5));
        Ok(self.connects.fetch_add(1, Ordering::SeqCst))
    }

    fn is_valid(&self, _: &mut usize) -> Result<(), io::Error> {
        Ok(())
    }

    fn has_broken(&self, _: &mut usize) -> bool {
        false
    }
}

#[test]
fn r2d2_pool_of_4_is_shared_by_40_green_threads() {
    green::patch();
    let _w = Watchdog::new("r2d2", LIMIT);
    const POOL: u32 = 4;
    const USERS: usize = 40;
    const HOLD: Duration = Duration::from_millis(50);
    let me = os_tid();
    let connects = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let pool = r2d2::Pool::builder()
        .max_size(POOL)
        .connection_timeout(Duration::from_secs(30))
        .build(SlowConnect {
            connects: connects.clone(),
        })
        .expect("the pool fills");
    let holding = Arc::new(AtomicUsize::new(0));
    let most_holding = Arc::new(AtomicUsize::new(0));
    let users: Vec<_> = (0..USERS)
        .map(|_| {
            let (pool, holding, most_holding) =
                (pool.clone(), holding.clone(), most_holding.clone());
            green::spawn(move || {
                let conn = pool.get();
                if conn.is_ok() {
                    let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                    most_holding.fetch_max(now, Ordering::SeqCst);
                    thread::sleep(HOLD);
                    holding.fetch_sub(1, Ordering::SeqCst);
                }
                (conn.map(|c| *c).map_err(|e| e.to_string()), os_tid())
            })
        })
        .collect();
    let mut tids = Vec::new();
    for (i, u) in users.into_iter().enumerate() {
        let (conn, tid) = u.wait();
        let conn = conn.unwrap_or_else(|e| panic!("user {i} got no connection: {e}"));
        assert!(conn < POOL as usize, "user {i} got connection {conn}");
        tids.push(tid);
    }
    let elapsed = start.elapsed();
    println!("{USERS} users of {POOL} connections in {elapsed:?}");
    assert_all_on_os_thread(&tids, me);
    // The four connections were all in use at once: the users' holds
    // overlapped, and never more than the pool's size.
    assert_eq!(most_holding.load(Ordering::SeqCst), POOL as usize);
    assert_eq!(connects.load(Ordering::SeqCst), POOL as usize);
    // 40 holds of 50 ms four at a time: about 500 ms (back to back: 2 s). A
    // user that the pool's condvar did not wake would get its error after
    // the 30 s connection timeout; 10 s is a margin of 20x for a loaded
    // machine.
    assert!(
        elapsed < Duration::from_secs(10),
        "40 users took {elapsed:?}"
    );
}

#[test]
fn rayon_par_iter_sum_from_two_green_threads_while_a_ticker_ticks() {
    green::patch();
    let _w = Watchdog::new("rayon", LIMIT);
    const N: u64 = 2_000_000;
    const ROUNDS: usize = 3;
    // One item of each slow sum sleeps this long on a rayon worker (a plain
    // OS thread): thirty ticker periods, whatever the speed of the machine.
    const SLOW_ITEM: Duration = Duration::from_millis(300);
    let me = os_tid();
    let ticker = Ticker::start();
    // A caller from outside the pool waits for its job on a latch of its
    // thread's (rayon's LOCK_LATCH). The slow summer waits first, and the
    // quick one's sums end while it waits: green threads that shared one
    // latch would let a quick sum's end wake the slow summer, whose job is
    // not done (each round is a chance for it).
    let summers: Vec<_> = [true, false]
        .into_iter()
        .map(|slow| {
            let ticks = ticker.counter();
            green::spawn(move || {
                let t0 = ticks.load(Ordering::SeqCst);
                let sums: Vec<u64> = (0..ROUNDS)
                    .map(|_| {
                        if slow {
                            (0..N)
                                .into_par_iter()
                                .map(|i| {
                                    if i == N / 2 {
                                        thread::sleep(SLOW_ITEM);
                                    }
                                    i
                                })
                                .sum()
                        } else {
                            (0..N).into_par_iter().sum()
                        }
                    })
                    .collect();
                (sums, ticks.load(Ordering::SeqCst) - t0, os_tid())
            })
        })
        .collect();
    let mut tids = Vec::new();
    let mut ticked_in_slow = 0;
    for (i, s) in summers.into_iter().enumerate() {
        let (sums, ticked, tid) = s.wait();
        assert_eq!(sums, vec![N * (N - 1) / 2; ROUNDS], "summer {i}");
        if i == 0 {
            ticked_in_slow = ticked;
        }
        tids.push(tid);
    }
    ticker.stop(me);
    assert_all_on_os_thread(&tids, me);
    assert!(
        ticked_in_slow >= 1,
        "the ticker did not tick while the slow summer waited for rayon"
    );
}

#[test]
fn thread_scope_in_five_green_threads_joins_os_threads_while_a_ticker_ticks() {
    green::patch();
    let _w = Watchdog::new("thread::scope", LIMIT);
    const SCOPES: usize = 5;
    const SLEEP: Duration = Duration::from_millis(100);
    let me = os_tid();
    let start = Instant::now();
    let ticker = Ticker::start();
    let scopes: Vec<_> = (0..SCOPES)
        .map(|_| {
            let ticks = ticker.counter();
            green::spawn(move || {
                thread::scope(|s| {
                    // Two OS threads; their sleeps are the OS's own.
                    let a = s.spawn(|| {
                        thread::sleep(SLEEP);
                        (1, os_tid())
                    });
                    let b = s.spawn(|| {
                        thread::sleep(SLEEP);
                        (2, os_tid())
                    });
                    let t0 = ticks.load(Ordering::SeqCst);
                    let (a, a_tid) = a.join().expect("thread a");
                    let (b, b_tid) = b.join().expect("thread b");
                    let ticked = ticks.load(Ordering::SeqCst) - t0;
                    assert_ne!(a_tid, os_tid(), "scoped thread a is an OS thread");
                    assert_ne!(b_tid, os_tid(), "scoped thread b is an OS thread");
                    (a + b, ticked, os_tid())
                })
            })
        })
        .collect();
    let mut tids = Vec::new();
    for (i, s) in scopes.into_iter().enumerate() {
        let (sum, ticked, tid) = s.wait();
        assert_eq!(sum, 3, "scope {i}");
        // Each join waited for a 100 ms sleep: ten ticker periods. A join
        // that blocked the OS thread would let no tick in at all.
        assert!(
            ticked >= 1,
            "the ticker did not tick while scope {i} joined its threads"
        );
        tids.push(tid);
    }
    let elapsed = start.elapsed();
    println!("{SCOPES} scopes in {elapsed:?}");
    ticker.stop(me);
    assert_all_on_os_thread(&tids, me);
    // Ten 100 ms sleeps on ten OS threads at once: about 100 ms. 5 s is a
    // margin of 50x for a loaded machine (back to back: 1 s).
    assert!(
        elapsed < Duration::from_secs(5),
        "five scopes took {elapsed:?}"
    );
}

#[test]
fn thread_scope_end_waits_for_unjoined_os_threads_in_five_green_threads() {
    green::patch();
    let _w = Watchdog::new("thread::scope end", LIMIT);
    const SCOPES: usize = 5;
    const SLEEP: Duration = Duration::from_millis(100);
    let me = os_tid();
    let start = Instant::now();
    let ticker = Ticker::start();
    let scopes: Vec<_> = (0..SCOPES)
        .map(|_| {
            let ticks = ticker.counter();
            green::spawn(move || {
                let finished = AtomicUsize::new(0);
                let t0 = ticks.load(Ordering::SeqCst);
                // No joins: the scope's end parks its green thread
                // (`thread::park`) until both OS threads have finished, and
                // the last one to finish unparks it from its OS thread.
                thread::scope(|s| {
                    for _ in 0..2 {
                        s.spawn(|| {
                            thread::sleep(SLEEP);
                            finished.fetch_add(1, Ordering::SeqCst);
                        });
                    }
                });
                let ticked = ticks.load(Ordering::SeqCst) - t0;
                (finished.load(Ordering::SeqCst), ticked, os_tid())
            })
        })
        .collect();
    let mut tids = Vec::new();
    for (i, s) in scopes.into_iter().enumerate() {
        let (finished, ticked, tid) = s.wait();
        assert_eq!(finished, 2, "scope {i} ended before its threads");
        // The scope waited for a 100 ms sleep: ten ticker periods.
        assert!(
            ticked >= 1,
            "the ticker did not tick while scope {i} waited for its threads"
        );
        tids.push(tid);
    }
    let elapsed = start.elapsed();
    println!("{SCOPES} scopes in {elapsed:?}");
    ticker.stop(me);
    assert_all_on_os_thread(&tids, me);
    // About 100 ms; 5 s is a margin of 50x for a loaded machine.
    assert!(
        elapsed < Duration::from_secs(5),
        "five scopes took {elapsed:?}"
    );
}

/// The name of the span the calling thread is in, if any.
fn current_span_name() -> Option<&'static str> {
    tracing::Span::current().metadata().map(|m| m.name())
}

#[test]
fn tracing_span_entered_in_a_parked_green_thread_is_not_current_in_another() {
    green::patch();
    let _w = Watchdog::new("tracing", LIMIT);
    // The only test of this binary that sets a subscriber.
    tracing::subscriber::set_global_default(tracing_subscriber::registry())
        .expect("no other subscriber is set");
    let me = os_tid();
    let a_entered = Arc::new(AtomicBool::new(false));
    let b_entered = Arc::new(AtomicBool::new(false));
    let a_checked = Arc::new(AtomicBool::new(false));
    let limit = Duration::from_secs(30);
    let a = {
        let (a_entered, b_entered, a_checked) =
            (a_entered.clone(), b_entered.clone(), a_checked.clone());
        green::spawn(move || {
            let span = tracing::info_span!("a");
            let _entered = span.enter();
            a_entered.store(true, Ordering::SeqCst);
            // Parks in green::sleep while b looks and enters its own span.
            wait_until("b entered its span", limit, || {
                b_entered.load(Ordering::SeqCst)
            });
            let seen = current_span_name();
            a_checked.store(true, Ordering::SeqCst);
            (seen, os_tid())
        })
    };
    let b = {
        let (a_entered, b_entered, a_checked) =
            (a_entered.clone(), b_entered.clone(), a_checked.clone());
        green::spawn(move || {
            wait_until("a entered its span", limit, || {
                a_entered.load(Ordering::SeqCst)
            });
            let before = current_span_name();
            let span = tracing::info_span!("b");
            let _entered = span.enter();
            b_entered.store(true, Ordering::SeqCst);
            wait_until("a looked at its span", limit, || {
                a_checked.load(Ordering::SeqCst)
            });
            let after = current_span_name();
            (before, after, os_tid())
        })
    };
    let (a_seen, a_tid) = a.wait();
    let (b_before, b_after, b_tid) = b.wait();
    assert_all_on_os_thread(&[a_tid, b_tid], me);
    assert_eq!(
        b_before, None,
        "b saw the span that a entered and is parked in"
    );
    assert_eq!(a_seen, Some("a"), "a's span after b entered its own");
    assert_eq!(b_after, Some("b"), "b's span after a looked");
    assert_eq!(current_span_name(), None, "the OS thread is in no span");
}

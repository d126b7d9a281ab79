//! `channel`: message round trips between two green threads on one hub, and
//! a contended `green::sync::Mutex`, against tokio, may and std.
//!
//! Ping-pong: thread A sends a number on one channel, thread B receives it
//! and sends it back on a second channel; time per round trip (two sends,
//! two receives, two parks and two wakes).
//! - green: `green::sync::mpsc::channel`, and `green::queue::LightQueue`
//!   (unbounded), two green threads on one hub;
//! - tokio: `tokio::sync::mpsc::unbounded_channel`, two tasks on a
//!   current-thread runtime;
//! - may: `may::sync::mpsc::channel`, two coroutines on one may worker;
//! - std: `std::sync::mpsc::channel` between two OS threads.
//!
//! Mutex: `CROWD` green threads each take the lock `ROUNDS` times and yield
//! while holding it, so that every other one finds it taken and parks;
//! time per lock/unlock. Against `tokio::sync::Mutex` with
//! `tokio::task::yield_now` on a current-thread runtime. An uncontended
//! lock/unlock of `green::sync::Mutex` and `std::sync::Mutex` is timed too.
//!
//! The cooperative budget: the ping-pong and the uncontended lock again
//! with the hub's budget off (`green::hub::set_coop_budget(None)`): the
//! ratio is what the budget's yields cost (its decrement is paid in both).
//!
//! Run: `cargo bench --bench channel` in `benches/`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use green_benches::{banner, check, fmt_ns, fmt_ratio, green_mpsc, tokio_mpsc, Interleaved, Table};

const WARMUP: usize = 2;
const REPS: usize = 7;
/// Round trips per ping-pong run.
const TRIPS: u64 = 200_000;
/// Contending green threads (tasks) in the mutex case.
const CROWD: u64 = 1000;
/// Lock/unlock rounds per contender.
const ROUNDS: u64 = 100;
/// Uncontended lock/unlock pairs per run.
const PAIRS: u64 = 2_000_000;

fn green_queue(n: u64) -> Duration {
    let to_b = green::queue::LightQueue::<u64>::unbounded();
    let to_a = green::queue::LightQueue::<u64>::unbounded();
    let (qa, qb) = (to_b.clone(), to_a.clone());
    let b = green::spawn(move || {
        for _ in 0..n {
            let v = qa.get();
            qb.put(v);
        }
    });
    let start = Instant::now();
    let a = green::spawn(move || {
        for i in 0..n {
            to_b.put(i);
            assert_eq!(to_a.get(), i);
        }
    });
    a.wait();
    let d = start.elapsed();
    b.wait();
    d
}

fn may_mpsc(n: u64) -> Duration {
    may::go!(move || {
        let (to_b, from_a) = may::sync::mpsc::channel::<u64>();
        let (to_a, from_b) = may::sync::mpsc::channel::<u64>();
        let b = may::go!(move || {
            while let Ok(v) = from_a.recv() {
                to_a.send(v).expect("ping-pong peer");
            }
        });
        let start = Instant::now();
        let a = may::go!(move || {
            for i in 0..n {
                to_b.send(i).expect("ping-pong peer");
                assert_eq!(from_b.recv().expect("ping-pong peer"), i);
            }
        });
        a.join().expect("may coroutine");
        let d = start.elapsed();
        b.join().expect("may coroutine");
        d
    })
    .join()
    .expect("may coroutine")
}

fn std_mpsc(n: u64) -> Duration {
    let (to_b, from_a) = std::sync::mpsc::channel::<u64>();
    let (to_a, from_b) = std::sync::mpsc::channel::<u64>();
    let b = std::thread::spawn(move || {
        for v in from_a.iter() {
            to_a.send(v).expect("ping-pong peer");
        }
    });
    let start = Instant::now();
    for i in 0..n {
        to_b.send(i).expect("ping-pong peer");
        assert_eq!(from_b.recv().expect("ping-pong peer"), i);
    }
    let d = start.elapsed();
    drop(to_b);
    b.join().expect("std thread");
    d
}

fn green_mutex(crowd: u64, rounds: u64) -> Duration {
    let m = Arc::new(green::sync::Mutex::new(0u64));
    let start = Instant::now();
    let all: Vec<_> = (0..crowd)
        .map(|_| {
            let m = m.clone();
            green::spawn(move || {
                for _ in 0..rounds {
                    let mut g = m.lock().expect("not poisoned");
                    *g += 1;
                    green::yield_now();
                }
            })
        })
        .collect();
    for gt in all {
        gt.wait();
    }
    let d = start.elapsed();
    assert_eq!(*m.lock().expect("not poisoned"), crowd * rounds);
    d
}

fn tokio_mutex(rt: &tokio::runtime::Runtime, crowd: u64, rounds: u64) -> Duration {
    rt.block_on(async move {
        let m = Arc::new(tokio::sync::Mutex::new(0u64));
        let start = Instant::now();
        let all: Vec<_> = (0..crowd)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move {
                    for _ in 0..rounds {
                        let mut g = m.lock().await;
                        *g += 1;
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for t in all {
            t.await.expect("tokio task");
        }
        let d = start.elapsed();
        assert_eq!(*m.lock().await, crowd * rounds);
        d
    })
}

fn green_uncontended(n: u64) -> Duration {
    let m = green::sync::Mutex::new(0u64);
    let start = Instant::now();
    for _ in 0..n {
        *std::hint::black_box(&m).lock().expect("not poisoned") += 1;
    }
    start.elapsed()
}

fn std_uncontended(n: u64) -> Duration {
    let m = std::sync::Mutex::new(0u64);
    let start = Instant::now();
    for _ in 0..n {
        *std::hint::black_box(&m).lock().expect("not poisoned") += 1;
    }
    start.elapsed()
}

/// Runs `f` with this hub's cooperative budget off (`set_coop_budget(None)`),
/// then turns it back on at its default.
fn without_budget(f: impl FnOnce() -> Duration) -> Duration {
    green::hub::set_coop_budget(None);
    let d = f();
    green::hub::set_coop_budget(Some(128));
    d
}

fn main() {
    banner(
        "channel",
        "channel round trips and a contended mutex vs tokio, may and std",
    );
    println!("median of {REPS} interleaved runs after {WARMUP} warm-up runs");
    may::config().set_workers(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");

    let mut runs = Interleaved::new();
    runs.case(TRIPS, || green_mpsc(TRIPS))
        .case(TRIPS, || green_queue(TRIPS))
        .case(TRIPS, || tokio_mpsc(&rt, TRIPS))
        .case(TRIPS, || may_mpsc(TRIPS))
        .case(TRIPS / 10, || std_mpsc(TRIPS / 10))
        .case(CROWD * ROUNDS, || green_mutex(CROWD, ROUNDS))
        .case(CROWD * ROUNDS, || tokio_mutex(&rt, CROWD, ROUNDS))
        .case(PAIRS, || green_uncontended(PAIRS))
        .case(PAIRS, || std_uncontended(PAIRS))
        .case(TRIPS, || without_budget(|| green_mpsc(TRIPS)))
        .case(PAIRS, || without_budget(|| green_uncontended(PAIRS)));
    let r = runs.run(WARMUP, REPS);
    let green = r[0];

    let mut t = Table::new(
        &format!("ping-pong between two green threads (tasks, threads), {TRIPS} round trips"),
        &["case", "time per round trip", "this / green mpsc"],
    );
    let names = [
        "green::sync::mpsc (one hub)",
        "green::queue::LightQueue (one hub)",
        "tokio::sync::mpsc unbounded (current-thread)",
        "may::sync::mpsc (1 worker)",
        "std::sync::mpsc (two OS threads)",
    ];
    for (name, ns) in names.iter().zip(&r[..5]) {
        t.row(vec![name.to_string(), fmt_ns(*ns), fmt_ratio(ns / green)]);
    }
    t.print();

    let mut t = Table::new(
        &format!("Mutex: {CROWD} contenders x {ROUNDS} rounds, yielding while holding it"),
        &["case", "time per lock/unlock", "this / green"],
    );
    t.row(vec![
        "green::sync::Mutex".into(),
        fmt_ns(r[5]),
        fmt_ratio(1.0),
    ]);
    t.row(vec![
        "tokio::sync::Mutex (current-thread)".into(),
        fmt_ns(r[6]),
        fmt_ratio(r[6] / r[5]),
    ]);
    t.print();

    let mut t = Table::new(
        "Mutex: uncontended lock/unlock",
        &["case", "time per lock/unlock", "this / green"],
    );
    t.row(vec![
        "green::sync::Mutex".into(),
        fmt_ns(r[7]),
        fmt_ratio(1.0),
    ]);
    t.row(vec![
        "std::sync::Mutex".into(),
        fmt_ns(r[8]),
        fmt_ratio(r[8] / r[7]),
    ]);
    t.print();
    println!();
    println!("green mpsc / tokio mpsc: {}", fmt_ratio(green / r[2]));
    println!("green mpsc / may mpsc: {}", fmt_ratio(green / r[3]));
    println!("green mpsc / std mpsc: {}", fmt_ratio(green / r[4]));
    println!("green Mutex / tokio Mutex: {}", fmt_ratio(r[5] / r[6]));
    let mut t = Table::new(
        "the cooperative budget (default 128) against none (set_coop_budget(None))",
        &["case", "budget on", "budget off", "on / off"],
    );
    t.row(vec![
        "green::sync::mpsc ping-pong round trip".into(),
        fmt_ns(green),
        fmt_ns(r[9]),
        fmt_ratio(green / r[9]),
    ]);
    t.row(vec![
        "green::sync::Mutex uncontended lock/unlock (a yield per 128)".into(),
        fmt_ns(r[7]),
        fmt_ns(r[10]),
        fmt_ratio(r[7] / r[10]),
    ]);
    t.print();
    check(
        "green mpsc round trip / tokio mpsc's (one thread each)",
        &fmt_ratio(green / r[2]),
        "<= 0.5x",
        green / r[2] <= 0.5,
    );
    check(
        "green LightQueue round trip / tokio mpsc's (one thread each)",
        &fmt_ratio(r[1] / r[2]),
        "<= 0.5x",
        r[1] / r[2] <= 0.5,
    );
}

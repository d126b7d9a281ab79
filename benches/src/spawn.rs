//! `spawn`: spawn and wait for an empty green thread, against std threads,
//! may coroutines and tokio tasks.
//!
//! Two shapes, each timed per spawn:
//! - one at a time: spawn, then wait for it, in a loop;
//! - batches: spawn 1000, then wait for all 1000.
//!
//! Peers, in the same run:
//! - `std::thread::spawn` + `join`;
//! - `may::go!` + `join`, from inside a may coroutine, with one may worker
//!   thread (so that, as for green, spawner and spawned share one OS thread);
//! - `tokio::spawn` + `.await` on a current-thread runtime.
//!
//! Run: `cargo bench --bench spawn` in `benches/`.

use std::time::{Duration, Instant};

use green_benches::{banner, check, fmt_ns, fmt_ratio, Interleaved, Table};

const WARMUP: usize = 2;
const REPS: usize = 7;
const BATCH: u64 = 1000;

/// Spawns per timed run, for the cheap runtimes.
const LIGHT_OPS: u64 = 100_000;
/// Spawns per timed run, for OS threads.
const STD_OPS: u64 = 1000;

fn green_one(n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        green::spawn(|| ()).wait();
    }
    start.elapsed()
}

fn green_batch(n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n / BATCH {
        let all: Vec<_> = (0..BATCH).map(|_| green::spawn(|| ())).collect();
        for gt in all {
            gt.wait();
        }
    }
    start.elapsed()
}

fn std_one(n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        std::thread::spawn(|| ()).join().unwrap();
    }
    start.elapsed()
}

fn std_batch(n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n / BATCH {
        let all: Vec<_> = (0..BATCH).map(|_| std::thread::spawn(|| ())).collect();
        for t in all {
            t.join().unwrap();
        }
    }
    start.elapsed()
}

/// Runs `f` inside a may coroutine and returns its result.
fn in_may<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    may::go!(f).join().unwrap()
}

fn may_one(n: u64) -> Duration {
    in_may(move || {
        let start = Instant::now();
        for _ in 0..n {
            may::go!(|| ()).join().unwrap();
        }
        start.elapsed()
    })
}

fn may_batch(n: u64) -> Duration {
    in_may(move || {
        let start = Instant::now();
        for _ in 0..n / BATCH {
            let all: Vec<_> = (0..BATCH).map(|_| may::go!(|| ())).collect();
            for co in all {
                co.join().unwrap();
            }
        }
        start.elapsed()
    })
}

fn tokio_one(rt: &tokio::runtime::Runtime, n: u64) -> Duration {
    rt.block_on(async move {
        let start = Instant::now();
        for _ in 0..n {
            tokio::spawn(async {}).await.unwrap();
        }
        start.elapsed()
    })
}

fn tokio_batch(rt: &tokio::runtime::Runtime, n: u64) -> Duration {
    rt.block_on(async move {
        let start = Instant::now();
        for _ in 0..n / BATCH {
            let all: Vec<_> = (0..BATCH).map(|_| tokio::spawn(async {})).collect();
            for t in all {
                t.await.unwrap();
            }
        }
        start.elapsed()
    })
}

/// The figures of one shape, in ns per spawn.
struct Shape {
    green: f64,
    std: f64,
    may: f64,
    tokio: f64,
}

fn table(title: &str, s: &Shape) {
    let mut t = Table::new(title, &["case", "time per spawn", "ratio to green"]);
    let mut row = |name: &str, ns: f64| {
        t.row(vec![name.into(), fmt_ns(ns), fmt_ratio(ns / s.green)]);
    };
    row("green::spawn + wait", s.green);
    row("std::thread::spawn + join", s.std);
    row("may::go! + join (1 worker)", s.may);
    row("tokio::spawn + await (current-thread)", s.tokio);
    t.print();
}

fn main() {
    banner(
        "spawn",
        "spawn + wait of an empty green thread vs std threads, may, tokio",
    );
    println!(
        "median of {REPS} interleaved runs after {WARMUP} warm-up runs; \
         {LIGHT_OPS} spawns per run ({STD_OPS} for std threads)"
    );
    may::config().set_workers(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");

    let mut runs = Interleaved::new();
    runs.case(LIGHT_OPS, || green_one(LIGHT_OPS))
        .case(STD_OPS, || std_one(STD_OPS))
        .case(LIGHT_OPS, || may_one(LIGHT_OPS))
        .case(LIGHT_OPS, || tokio_one(&rt, LIGHT_OPS))
        .case(LIGHT_OPS, || green_batch(LIGHT_OPS))
        .case(STD_OPS, || std_batch(STD_OPS))
        .case(LIGHT_OPS, || may_batch(LIGHT_OPS))
        .case(LIGHT_OPS, || tokio_batch(&rt, LIGHT_OPS));
    let r = runs.run(WARMUP, REPS);
    let one = Shape {
        green: r[0],
        std: r[1],
        may: r[2],
        tokio: r[3],
    };
    let batch = Shape {
        green: r[4],
        std: r[5],
        may: r[6],
        tokio: r[7],
    };
    table("one at a time: spawn, then wait", &one);
    table(
        &format!("batches: spawn {BATCH}, then wait for all"),
        &batch,
    );
    println!();
    check(
        "green spawn + wait / tokio's, one at a time",
        &fmt_ratio(one.green / one.tokio),
        "<= 0.33x",
        one.green / one.tokio <= 0.33,
    );
    println!(
        "green spawn + wait / tokio's, batches: {}",
        fmt_ratio(batch.green / batch.tokio)
    );
    check(
        "std thread / green, one at a time",
        &fmt_ratio(one.std / one.green),
        ">= 300x",
        one.std / one.green >= 300.0,
    );
}

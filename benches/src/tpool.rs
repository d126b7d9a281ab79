//! `tpool`: the round trip of a no-op through the OS thread pool, against
//! `tokio::task::spawn_blocking`.
//!
//! - green: the root calls `green::tpool::execute(|| ())` in a loop: submit
//!   to a pool thread, park (the hub sleeps in epoll), get the result back
//!   through the remote-wakeup path;
//! - green, 10 green threads calling `execute` at once (throughput, time per
//!   call);
//! - tokio: `spawn_blocking(|| ()).await` in a loop on a current-thread
//!   runtime, and 10 tasks doing it at once.
//!
//! Run: `cargo bench --bench tpool` in `benches/`.

use std::time::{Duration, Instant};

use green_benches::{banner, check, fmt_ns, fmt_ratio, Interleaved, Table};

const WARMUP: usize = 2;
const REPS: usize = 7;
/// Calls per run.
const CALLS: u64 = 20_000;
/// Concurrent callers in the throughput case.
const CALLERS: u64 = 10;

fn green_serial(n: u64) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        assert_eq!(green::tpool::execute(move || i), i);
    }
    start.elapsed()
}

fn green_parallel(callers: u64, n: u64) -> Duration {
    let start = Instant::now();
    let all: Vec<_> = (0..callers)
        .map(|_| {
            green::spawn(move || {
                for i in 0..n / callers {
                    assert_eq!(green::tpool::execute(move || i), i);
                }
            })
        })
        .collect();
    for gt in all {
        gt.wait();
    }
    start.elapsed()
}

fn tokio_serial(rt: &tokio::runtime::Runtime, n: u64) -> Duration {
    rt.block_on(async move {
        let start = Instant::now();
        for i in 0..n {
            let v = tokio::task::spawn_blocking(move || i)
                .await
                .expect("blocking task");
            assert_eq!(v, i);
        }
        start.elapsed()
    })
}

fn tokio_parallel(rt: &tokio::runtime::Runtime, callers: u64, n: u64) -> Duration {
    rt.block_on(async move {
        let start = Instant::now();
        let all: Vec<_> = (0..callers)
            .map(|_| {
                tokio::spawn(async move {
                    for i in 0..n / callers {
                        let v = tokio::task::spawn_blocking(move || i)
                            .await
                            .expect("blocking task");
                        assert_eq!(v, i);
                    }
                })
            })
            .collect();
        for t in all {
            t.await.expect("tokio task");
        }
        start.elapsed()
    })
}

fn main() {
    banner("tpool", "tpool::execute round trip vs tokio spawn_blocking");
    println!("median of {REPS} interleaved runs after {WARMUP} warm-up runs");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");

    let mut runs = Interleaved::new();
    runs.case(CALLS, || green_serial(CALLS))
        .case(CALLS, || tokio_serial(&rt, CALLS))
        .case(CALLS, || green_parallel(CALLERS, CALLS))
        .case(CALLS, || tokio_parallel(&rt, CALLERS, CALLS));
    let r = runs.run(WARMUP, REPS);

    let mut t = Table::new(
        &format!("no-op through the thread pool, {CALLS} calls"),
        &["case", "time per call", "this / green"],
    );
    t.row(vec![
        "green::tpool::execute, one caller".into(),
        fmt_ns(r[0]),
        fmt_ratio(1.0),
    ]);
    t.row(vec![
        "tokio spawn_blocking, one caller".into(),
        fmt_ns(r[1]),
        fmt_ratio(r[1] / r[0]),
    ]);
    t.row(vec![
        format!("green::tpool::execute, {CALLERS} green threads"),
        fmt_ns(r[2]),
        fmt_ratio(r[2] / r[0]),
    ]);
    t.row(vec![
        format!("tokio spawn_blocking, {CALLERS} tasks"),
        fmt_ns(r[3]),
        fmt_ratio(r[3] / r[0]),
    ]);
    t.print();
    println!();
    println!("green / tokio (one caller): {}", fmt_ratio(r[0] / r[1]));
    println!(
        "green / tokio ({CALLERS} callers): {}",
        fmt_ratio(r[2] / r[3])
    );
    check(
        "tpool round trip, one caller",
        &fmt_ns(r[0]),
        "<= 20 µs",
        r[0] <= 20_000.0,
    );
}

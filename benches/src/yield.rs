//! `yield`: the cost of one hub yield, against a raw corosensei switch and
//! the yields of tokio and may.
//!
//! Green: two green threads ping-pong with `green::yield_now()`, `N` times
//! each, while the root waits for them; time per yield. Each yield is one
//! suspend into the hub loop and one resume of the other green thread.
//!
//! Raw: one corosensei `Coroutine` (default stack) that suspends `N` times,
//! resumed in a loop; time per resume + suspend pair, the floor for one
//! green yield.
//!
//! Peers, for context, with the same shape (two of them, `N` yields each,
//! on one OS thread):
//! - tokio: two tasks looping on `tokio::task::yield_now().await` on a
//!   current-thread runtime, awaited by the `block_on` task;
//! - may: two coroutines looping on `may::coroutine::yield_now()`, with one
//!   may worker thread, joined from a third may coroutine.
//!
//! A second table does the same with 1000 green threads (and 1000 raw
//! coroutines resumed round-robin), where the run queue and the stacks no
//! longer sit in the L1 cache.
//!
//! Run: `cargo bench --bench yield` in `benches/`.

use std::time::{Duration, Instant};

use corosensei::{Coroutine, CoroutineResult, Yielder};
use green_benches::{banner, check, fmt_ns, fmt_ratio, Interleaved, Table};

const WARMUP: usize = 2;
const REPS: usize = 7;
/// Yields per green thread in the ping-pong.
const PING_PONG: u64 = 1_000_000;
/// Green threads (and raw coroutines) in the round-robin case.
const CROWD: u64 = 1000;
/// Yields per green thread in the round-robin case.
const CROWD_YIELDS: u64 = 1000;

fn green_ping_pong(n: u64) -> Duration {
    let start = Instant::now();
    let a = green::spawn(move || {
        for _ in 0..n {
            green::yield_now();
        }
    });
    let b = green::spawn(move || {
        for _ in 0..n {
            green::yield_now();
        }
    });
    a.wait();
    b.wait();
    start.elapsed()
}

fn tokio_ping_pong(rt: &tokio::runtime::Runtime, n: u64) -> Duration {
    rt.block_on(async move {
        let start = Instant::now();
        let a = tokio::spawn(async move {
            for _ in 0..n {
                tokio::task::yield_now().await;
            }
        });
        let b = tokio::spawn(async move {
            for _ in 0..n {
                tokio::task::yield_now().await;
            }
        });
        a.await.expect("tokio task");
        b.await.expect("tokio task");
        start.elapsed()
    })
}

fn may_ping_pong(n: u64) -> Duration {
    // Timed inside a may coroutine so that the waiting side, like green's
    // root, parks on the same worker instead of another OS thread.
    may::go!(move || {
        let start = Instant::now();
        let a = may::go!(move || {
            for _ in 0..n {
                may::coroutine::yield_now();
            }
        });
        let b = may::go!(move || {
            for _ in 0..n {
                may::coroutine::yield_now();
            }
        });
        a.join().expect("may coroutine");
        b.join().expect("may coroutine");
        start.elapsed()
    })
    .join()
    .expect("may coroutine")
}

fn green_crowd(threads: u64, n: u64) -> Duration {
    let start = Instant::now();
    let all: Vec<_> = (0..threads)
        .map(|_| {
            green::spawn(move || {
                for _ in 0..n {
                    green::yield_now();
                }
            })
        })
        .collect();
    for gt in all {
        gt.wait();
    }
    start.elapsed()
}

fn raw_coroutine(n: u64) -> Coroutine<(), (), ()> {
    Coroutine::new(move |y: &Yielder<(), ()>, ()| {
        for _ in 0..n {
            y.suspend(());
        }
    })
}

fn raw_ping(n: u64) -> Duration {
    let mut co = raw_coroutine(n);
    let start = Instant::now();
    while let CoroutineResult::Yield(()) = co.resume(()) {}
    start.elapsed()
}

fn raw_crowd(threads: u64, n: u64) -> Duration {
    let mut all: Vec<_> = (0..threads).map(|_| raw_coroutine(n)).collect();
    let start = Instant::now();
    // The last resume of each coroutine returns instead of yielding.
    for _ in 0..=n {
        for co in all.iter_mut() {
            let _ = co.resume(());
        }
    }
    start.elapsed()
}

/// One row of the ping-pong table: time per yield, ratio to raw, and
/// green's time over this case's.
fn ping_row(t: &mut Table, name: &str, ns: f64, raw: f64, green: f64) {
    t.row(vec![
        name.into(),
        fmt_ns(ns),
        fmt_ratio(ns / raw),
        fmt_ratio(green / ns),
    ]);
}

fn main() {
    banner(
        "yield",
        "hub yield round trip vs raw corosensei resume+suspend, tokio and may",
    );
    println!("median of {REPS} interleaved runs after {WARMUP} warm-up runs");
    // One may worker: the may coroutines share one OS thread, as green's do.
    // Set before any may coroutine runs.
    may::config().set_workers(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");

    let ops = CROWD * CROWD_YIELDS;
    let mut runs = Interleaved::new();
    runs.case(2 * PING_PONG, || green_ping_pong(PING_PONG))
        .case(PING_PONG, || raw_ping(PING_PONG))
        .case(2 * PING_PONG, || tokio_ping_pong(&rt, PING_PONG))
        .case(2 * PING_PONG, || may_ping_pong(PING_PONG))
        .case(ops, || green_crowd(CROWD, CROWD_YIELDS))
        .case(ops + CROWD, || raw_crowd(CROWD, CROWD_YIELDS));
    let r = runs.run(WARMUP, REPS);
    let (green2, raw1, tokio2, may2, green_n, raw_n) = (r[0], r[1], r[2], r[3], r[4], r[5]);
    let mut t = Table::new(
        &format!("two green threads ping-pong, {PING_PONG} yields each"),
        &["case", "time per yield", "ratio to raw", "green / this"],
    );
    ping_row(
        &mut t,
        "green::yield_now (2 green threads)",
        green2,
        raw1,
        green2,
    );
    ping_row(
        &mut t,
        "corosensei resume+suspend (default stack)",
        raw1,
        raw1,
        green2,
    );
    ping_row(
        &mut t,
        "tokio::task::yield_now (2 tasks, current-thread)",
        tokio2,
        raw1,
        green2,
    );
    ping_row(
        &mut t,
        "may::coroutine::yield_now (2 coroutines, 1 worker)",
        may2,
        raw1,
        green2,
    );
    t.print();

    let mut t = Table::new(
        &format!("{CROWD} green threads round-robin, {CROWD_YIELDS} yields each"),
        &["case", "time per yield", "ratio to raw"],
    );
    t.row(vec![
        format!("green::yield_now ({CROWD} green threads)"),
        fmt_ns(green_n),
        fmt_ratio(green_n / raw_n),
    ]);
    t.row(vec![
        format!("corosensei resume+suspend ({CROWD} coroutines)"),
        fmt_ns(raw_n),
        fmt_ratio(1.0),
    ]);
    t.print();
    println!();
    println!("green / tokio (ping-pong): {}", fmt_ratio(green2 / tokio2));
    println!("green / may (ping-pong): {}", fmt_ratio(green2 / may2));
    check(
        "green / may (ping-pong)",
        &fmt_ratio(green2 / may2),
        "<= 0.5x",
        green2 / may2 <= 0.5,
    );
}

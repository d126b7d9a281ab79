//! `yield`: the cost of one hub yield, against a raw corosensei switch.
//!
//! Green: two green threads ping-pong with `green::yield_now()`, `N` times
//! each, while the root waits for them; time per yield. Each yield is one
//! suspend into the hub loop and one resume of the other green thread.
//!
//! Raw: one corosensei `Coroutine` (default stack) that suspends `N` times,
//! resumed in a loop; time per resume + suspend pair, the floor for one
//! green yield.
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

fn main() {
    banner(
        "yield",
        "hub yield round trip vs raw corosensei resume+suspend",
    );
    println!("median of {REPS} interleaved runs after {WARMUP} warm-up runs");

    let ops = CROWD * CROWD_YIELDS;
    let mut runs = Interleaved::new();
    runs.case(2 * PING_PONG, || green_ping_pong(PING_PONG))
        .case(PING_PONG, || raw_ping(PING_PONG))
        .case(ops, || green_crowd(CROWD, CROWD_YIELDS))
        .case(ops + CROWD, || raw_crowd(CROWD, CROWD_YIELDS));
    let r = runs.run(WARMUP, REPS);
    let (green2, raw1, green_n, raw_n) = (r[0], r[1], r[2], r[3]);
    let mut t = Table::new(
        &format!("two green threads ping-pong, {PING_PONG} yields each"),
        &["case", "time per yield", "ratio to raw"],
    );
    t.row(vec![
        "green::yield_now (2 green threads)".into(),
        fmt_ns(green2),
        fmt_ratio(green2 / raw1),
    ]);
    t.row(vec![
        "corosensei resume+suspend (default stack)".into(),
        fmt_ns(raw1),
        fmt_ratio(1.0),
    ]);
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
    check(
        "green / raw (ping-pong)",
        &fmt_ratio(green2 / raw1),
        "<= 4x",
        green2 / raw1 <= 4.0,
    );
}

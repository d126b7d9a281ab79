//! `dump`: the time of `green::debug::dump()` with 10,000 parked green
//! threads, as a value and as text.
//!
//! No peer has an in-process dump of its tasks to compare with (tokio's
//! task dump needs `--cfg tokio_unstable`; may has none), so the yardstick
//! in the same run is the time it took to spawn and park those same green
//! threads, and the target is the 50 ms an operator would not notice.
//!
//! Half of the green threads wait on an `Event`, half sleep; a dump reads
//! every one's record.
//!
//! Run: `cargo bench --bench dump` in `benches/`.

use std::time::{Duration, Instant};

use green_benches::{banner, check, fmt_ns, fmt_ratio, median, Table};

const N: usize = 10_000;
const REPS: usize = 7;

fn main() {
    banner(
        "dump",
        "green::debug::dump() of 10,000 parked green threads vs spawning them",
    );
    println!("median of {REPS} runs; {N} green threads, 16 KiB stacks");
    let ev = green::Event::<()>::new();
    let start = Instant::now();
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let e = ev.clone();
            green::Builder::new()
                .stack_size(16 * 1024)
                .spawn(move || {
                    if i % 2 == 0 {
                        e.wait();
                    } else {
                        green::sleep(Duration::from_secs(3600));
                    }
                })
                .expect("spawn")
        })
        .collect();
    green::yield_now(); // every one runs and parks
    let spawn = start.elapsed().as_nanos() as f64;

    let mut value = Vec::new();
    let mut text = Vec::new();
    for _ in 0..REPS {
        let t = Instant::now();
        let d = green::debug::dump();
        value.push(t.elapsed().as_nanos() as f64);
        let parked = d
            .green_threads()
            .filter(|g| matches!(g.state, green::debug::State::Parked { .. }))
            .count();
        assert_eq!(parked, N, "every green thread is in the dump, parked");
        let t = Instant::now();
        let s = d.to_string();
        text.push(t.elapsed().as_nanos() as f64);
        assert!(s.lines().count() > N);
    }
    let (value, text) = (median(value), median(text));
    let total = value + text;

    let mut t = Table::new(
        "10,000 parked green threads",
        &["step", "time", "ratio to spawning them"],
    );
    let mut row = |name: &str, ns: f64| {
        t.row(vec![name.into(), fmt_ns(ns), fmt_ratio(ns / spawn)]);
    };
    row("spawn them and let each park (once)", spawn);
    row("dump() (the value)", value);
    row("its Display (the text)", text);
    row("dump() + text", total);
    t.print();
    println!();
    check(
        "dump of 10,000 + text",
        &fmt_ns(total),
        "< 50 ms",
        total < 50e6,
    );

    ev.send(()).unwrap();
    for (i, h) in handles.into_iter().enumerate() {
        if i % 2 == 1 {
            h.kill();
        }
        let _ = h.join();
    }
}

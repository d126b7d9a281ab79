//! `hotpath`: one hot path of green run `N` times, for counting its
//! instructions with callgrind (and its time, printed per operation).
//!
//! ```text
//! hotpath            every case below, 200 000 operations each
//! hotpath CASE N
//!   yield   two green threads each yield N times (one op: a yield by each)
//!   spawn   spawn + wait of an empty green thread, N times
//!   batch   spawn 1000, then wait for all, N / 1000 times
//!   mpsc    N ping-pong round trips between two green threads (sync::mpsc)
//!   queue   the same with two queue::LightQueue
//!   mutex   4 green threads lock a green Mutex N times in all, yielding
//!           while they hold it
//! ```
//!
//! `benches/callgrind.sh CASE` runs it under callgrind at two counts and
//! prints the instructions per operation (their difference over the
//! difference of the counts, so that start-up cancels out). Not a
//! comparison with a peer: the benchmarks of each path (`yield`, `spawn`,
//! `channel`) are.
//!
//! Run: `cargo bench --bench hotpath -- CASE N` in `benches/`.

use std::time::Instant;

fn yield_pp(n: u64) {
    let a = green::spawn(move || (0..n).for_each(|_| green::yield_now()));
    let b = green::spawn(move || (0..n).for_each(|_| green::yield_now()));
    a.wait();
    b.wait();
}

fn spawn_one(n: u64) {
    for _ in 0..n {
        green::spawn(|| ()).wait();
    }
}

fn spawn_batch(n: u64) {
    let mut v = Vec::with_capacity(1000);
    for _ in 0..n / 1000 {
        v.extend((0..1000).map(|_| green::spawn(|| ())));
        v.drain(..).for_each(|g| g.wait());
    }
}

fn mpsc_pp(n: u64) {
    let (to_b, from_a) = green::sync::mpsc::channel::<u64>();
    let (to_a, from_b) = green::sync::mpsc::channel::<u64>();
    let a = green::spawn(move || {
        for i in 0..n {
            to_b.send(i).unwrap();
            from_b.recv().unwrap();
        }
    });
    let b = green::spawn(move || {
        for _ in 0..n {
            let v = from_a.recv().unwrap();
            to_a.send(v).unwrap();
        }
    });
    a.wait();
    b.wait();
}

fn queue_pp(n: u64) {
    let to_b = green::queue::LightQueue::<u64>::unbounded();
    let to_a = green::queue::LightQueue::<u64>::unbounded();
    let (b_in, a_in) = (to_b.clone(), to_a.clone());
    let a = green::spawn(move || {
        for i in 0..n {
            to_b.put(i);
            a_in.get();
        }
    });
    let b = green::spawn(move || {
        for _ in 0..n {
            let v = b_in.get();
            to_a.put(v);
        }
    });
    a.wait();
    b.wait();
}

fn mutex(n: u64) {
    let m = std::rc::Rc::new(green::sync::Mutex::new(0u64));
    let gs: Vec<_> = (0..4)
        .map(|_| {
            let m = m.clone();
            green::spawn(move || {
                for _ in 0..n / 4 {
                    let mut g = m.lock().unwrap();
                    *g += 1;
                    green::yield_now();
                    drop(g);
                }
            })
        })
        .collect();
    gs.into_iter().for_each(|g| g.wait());
    assert_eq!(*m.lock().unwrap(), n / 4 * 4);
}

/// A case: its name and what it runs `N` times.
type Case = (&'static str, fn(u64));

const CASES: [Case; 6] = [
    ("yield", yield_pp),
    ("spawn", spawn_one),
    ("batch", spawn_batch),
    ("mpsc", mpsc_pp),
    ("queue", queue_pp),
    ("mutex", mutex),
];

fn run(case: &str, f: fn(u64), n: u64) {
    f(1000);
    let t = Instant::now();
    f(n);
    let per = t.elapsed().as_nanos() as f64 / n as f64;
    println!("{case}: {n} ops, {per:.1} ns per op");
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let Some(case) = args.first() else {
        // `cargo bench` with no arguments: every case once.
        for (case, f) in CASES {
            run(case, f, 200_000);
        }
        return;
    };
    let n = args.get(1).and_then(|s| s.parse::<u64>().ok());
    match (CASES.iter().find(|(c, _)| c == case), n) {
        (Some(&(case, f)), Some(n)) => run(case, f, n),
        _ => {
            eprintln!("usage: hotpath [yield|spawn|batch|mpsc|queue|mutex N]");
            std::process::exit(2);
        }
    }
}

//! `select`: waiting on two things at once, against tokio's `select!`.
//!
//! Ping-pong as in `channel`, but the echoing side waits on its channel
//! *or* a stop signal each time, then takes the message:
//! - green: `green::wait_any(&[&from_a, &stop], None)` then
//!   `from_a.try_recv()` (a `green::sync::mpsc` channel and a
//!   `green::Event`), two green threads on one hub;
//! - tokio: `tokio::select! { v = from_a.recv() => ..., _ = stop.notified()
//!   => ... }` (an unbounded mpsc channel and a `Notify`), two tasks on a
//!   current-thread runtime;
//! - and the same ping-pong with a plain `recv` on each side, for what the
//!   wait on two costs over a wait on one.
//!
//! Also `wait_any` over 10,000 `Event`s, one of them sent by another green
//! thread each time: time per wake (the watchers of all 10,000 registered
//! and removed each time).
//!
//! Run: `cargo bench --bench select` in `benches/`.

use std::time::{Duration, Instant};

use green_benches::{
    banner, fmt_ns, fmt_ratio, green_mpsc, green_ping, tokio_mpsc, tokio_ping, Interleaved, Table,
};

const WARMUP: usize = 2;
const REPS: usize = 7;
/// Round trips per ping-pong run.
const TRIPS: u64 = 100_000;
/// Items of the wide wait, and wakes per run.
const WIDE: usize = 10_000;
const WAKES: u64 = 200;

fn green_select(n: u64) -> Duration {
    let (to_b, from_a) = green::sync::mpsc::channel::<u64>();
    let (to_a, from_b) = green::sync::mpsc::channel::<u64>();
    let stop = green::Event::<()>::new();
    let stop_b = stop.clone();
    let b = green::spawn(move || loop {
        match green::wait_any(&[&from_a, &stop_b], None) {
            Some(0) => match from_a.try_recv() {
                Ok(v) => to_a.send(v).expect("ping-pong peer"),
                Err(_) => return,
            },
            _ => return,
        }
    });
    let d = green_ping(n, to_b, from_b);
    stop.send(()).expect("sent once");
    b.wait();
    d
}

fn tokio_select(rt: &tokio::runtime::Runtime, n: u64) -> Duration {
    rt.block_on(async move {
        let (to_b, mut from_a) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let (to_a, from_b) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let stop = std::sync::Arc::new(tokio::sync::Notify::new());
        let stop_b = stop.clone();
        let b = tokio::spawn(async move {
            loop {
                tokio::select! {
                    v = from_a.recv() => match v {
                        Some(v) => to_a.send(v).expect("ping-pong peer"),
                        None => return,
                    },
                    _ = stop_b.notified() => return,
                }
            }
        });
        let d = tokio_ping(n, to_b, from_b).await;
        stop.notify_one();
        b.await.expect("tokio task");
        d
    })
}

fn green_wide(wakes: u64) -> Duration {
    let events: Vec<green::Event<()>> = (0..WIDE).map(|_| green::Event::new()).collect();
    let items: Vec<&dyn green::Waitable> = events.iter().map(|e| e as _).collect();
    let start = Instant::now();
    for k in 0..wakes {
        let i = (k as usize * 7919) % WIDE;
        let e = events[i].clone();
        let sender = green::spawn(move || e.send(()).expect("sent once"));
        assert_eq!(green::wait_any(&items, None), Some(i));
        sender.wait();
        events[i].reset();
    }
    start.elapsed()
}

fn main() {
    banner("select", "waiting on two things at once vs tokio::select!");
    println!("median of {REPS} interleaved runs after {WARMUP} warm-up runs");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let mut runs = Interleaved::new();
    runs.case(TRIPS, || green_select(TRIPS))
        .case(TRIPS, || tokio_select(&rt, TRIPS))
        .case(TRIPS, || green_mpsc(TRIPS))
        .case(TRIPS, || tokio_mpsc(&rt, TRIPS))
        .case(WAKES, || green_wide(WAKES));
    let r = runs.run(WARMUP, REPS);

    let mut t = Table::new(
        &format!(
            "ping-pong, the echo side waiting on its channel or a stop signal, {TRIPS} round trips"
        ),
        &["case", "time per round trip", "green / tokio"],
    );
    t.row(vec![
        "green::wait_any + try_recv (one hub)".into(),
        fmt_ns(r[0]),
        fmt_ratio(r[0] / r[1]),
    ]);
    t.row(vec![
        "tokio::select! recv / Notify (current-thread)".into(),
        fmt_ns(r[1]),
        fmt_ratio(1.0),
    ]);
    t.row(vec![
        "green: plain recv on both sides".into(),
        fmt_ns(r[2]),
        fmt_ratio(r[2] / r[3]),
    ]);
    t.row(vec![
        "tokio: plain recv on both sides".into(),
        fmt_ns(r[3]),
        fmt_ratio(1.0),
    ]);
    t.print();
    println!(
        "wait on two over wait on one: green {}, tokio {}",
        fmt_ratio(r[0] / r[2]),
        fmt_ratio(r[1] / r[3])
    );
    println!(
        "wait_any over {WIDE} events, one sent by another green thread: {} per wake",
        fmt_ns(r[4])
    );
}

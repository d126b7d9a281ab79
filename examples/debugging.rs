//! `green::debug`: the blocking detector names the green thread that holds
//! its hub, where it was spawned, and what its OS thread is doing.
//!
//! Three green threads each hold their hub for 300 ms in a way green cannot
//! see through: a loop that computes, std's `thread::sleep` (not green's),
//! and a `std::sync::Mutex` that another OS thread holds. With a 100 ms
//! threshold, each is reported on stderr, then again when it lets go.
//!
//! ```sh
//! cargo run --example debugging
//! ```

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

fn main() {
    green::debug::hub_blocking_detection(Some(Duration::from_millis(100)));
    let (report, reports) = mpsc::channel();
    green::debug::on_blocking(move |r| {
        let _ = report.send(r.ended);
    });

    // A computation with no park point.
    let checksum = green::Builder::new()
        .name("checksum")
        .spawn(|| {
            let start = Instant::now();
            let mut x = 0u64;
            while start.elapsed() < Duration::from_millis(300) {
                x = x.wrapping_mul(31).wrapping_add(1);
            }
            x
        })
        .expect("spawn");
    checksum.wait();

    // A blocking call green does not make cooperative (no patch() here).
    green::spawn(|| std::thread::sleep(Duration::from_millis(300))).wait();

    // A std lock that another OS thread holds for 300 ms.
    let lock = Arc::new(Mutex::new(0u32));
    let (held, is_held) = mpsc::channel();
    let holder = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            let _g = lock.lock().unwrap();
            held.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        })
    };
    is_held.recv().unwrap();
    let locker = {
        let lock = lock.clone();
        green::spawn(move || *lock.lock().unwrap() += 1)
    };
    locker.wait();
    holder.join().unwrap();

    // Each stall is reported, then its end (the last end on the
    // watchdog's next look).
    let ends: Vec<bool> = (0..6)
        .map(|_| {
            reports
                .recv_timeout(Duration::from_secs(10))
                .expect("a report")
        })
        .collect();
    green::debug::hub_blocking_detection(None);
    assert_eq!(ends, [false, true, false, true, false, true]);
    println!("6 reports: three stalls, each reported when it passed 100 ms and when it ended");
}

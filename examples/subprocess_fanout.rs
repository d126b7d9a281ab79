//! Fan out over child processes from green threads on ONE OS thread.
//!
//! 50 green threads each run `sh -c 'sleep 0.2; echo $N'` with
//! `green::process::Command::output` and check what the child printed. Each
//! waits for its child on a pidfd through the hub, so the 50 sleeps overlap:
//! the whole run takes a little over 0.2 s instead of the 10 s the children
//! take back to back.
//!
//! Run it with `cargo run --release --example subprocess_fanout`.

use std::io;
use std::time::{Duration, Instant};

use green::process::Command;

const CHILDREN: u32 = 50;
const SLEEP: Duration = Duration::from_millis(200);

fn main() -> io::Result<()> {
    let start = Instant::now();
    let runners: Vec<_> = (0..CHILDREN)
        .map(|n| {
            green::spawn(move || -> io::Result<u32> {
                let out = Command::new("sh")
                    .arg("-c")
                    .arg(format!("sleep {}; echo $N", SLEEP.as_secs_f64()))
                    .env("N", n.to_string())
                    .output()?;
                assert!(out.status.success(), "child {n}: {:?}", out.status);
                let printed = String::from_utf8_lossy(&out.stdout);
                Ok(printed.trim().parse().expect("the child prints its number"))
            })
        })
        .collect();
    let mut sum = 0;
    for (n, r) in (0..).zip(runners) {
        let printed = r.wait()?;
        assert_eq!(printed, n);
        sum += printed;
    }
    assert_eq!(sum, CHILDREN * (CHILDREN - 1) / 2);
    let wall = start.elapsed();
    println!(
        "process: {CHILDREN} children x {} ms sleep, output collected by green threads on one \
         OS thread in {:.1} ms (back to back: {} ms)",
        SLEEP.as_millis(),
        wall.as_secs_f64() * 1000.0,
        SLEEP.as_millis() * u128::from(CHILDREN),
    );
    println!("hub:     {:?}", green::hub::stats());
    Ok(())
}

//! Helpers shared by the benchmarks: timing, result tables, machine facts,
//! memory readings, and the libc call loops of `patch_passthrough`
//! ([`libc_calls`]), which must not use green.
//!
//! Every benchmark runs green and its peers in the same process run (or in
//! child processes of the same run), warms each case up, repeats it and
//! reports the median, then prints one table per comparison with the ratio to
//! green.
#![deny(missing_docs, missing_debug_implementations)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

pub mod libc_calls;

/// Median of `v` (the mean of the two middle values for an even count).
///
/// # Panics
/// Panics if `v` is empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty(), "median of no samples");
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Cases timed together, interleaved: each round runs every case once, so
/// that a slow spell of a noisy machine falls on all of them alike.
///
/// Each case performs a known number of operations and returns how long
/// they took, so that set-up and tear-down stay out of the measurement.
pub struct Interleaved<'a> {
    cases: Vec<(u64, Box<dyn FnMut() -> Duration + 'a>)>,
}

impl std::fmt::Debug for Interleaved<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interleaved")
            .field("cases", &self.cases.len())
            .finish()
    }
}

impl Default for Interleaved<'_> {
    fn default() -> Self {
        Interleaved::new()
    }
}

impl<'a> Interleaved<'a> {
    /// No cases yet.
    pub fn new() -> Self {
        Interleaved { cases: Vec::new() }
    }

    /// Adds a case: `run` performs `ops` operations and returns their time.
    pub fn case(&mut self, ops: u64, run: impl FnMut() -> Duration + 'a) -> &mut Self {
        self.cases.push((ops, Box::new(run)));
        self
    }

    /// Runs `warmup` untimed rounds, then `reps` timed ones, and returns the
    /// median time per operation of each case, in nanoseconds, in the order
    /// the cases were added.
    pub fn run(mut self, warmup: usize, reps: usize) -> Vec<f64> {
        for _ in 0..warmup {
            for (_, run) in self.cases.iter_mut() {
                run();
            }
        }
        let mut samples = vec![Vec::with_capacity(reps); self.cases.len()];
        for _ in 0..reps {
            for (i, (ops, run)) in self.cases.iter_mut().enumerate() {
                samples[i].push(run().as_nanos() as f64 / *ops as f64);
            }
        }
        samples.into_iter().map(median).collect()
    }
}

/// A duration given in nanoseconds, in the unit that suits it.
pub fn fmt_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// A ratio such as `3.2x`, with more digits when it is small.
pub fn fmt_ratio(r: f64) -> String {
    if r < 10.0 {
        format!("{r:.2}x")
    } else if r < 100.0 {
        format!("{r:.1}x")
    } else {
        format!("{r:.0}x")
    }
}

/// A byte count in KiB or MiB.
pub fn fmt_bytes(bytes: f64) -> String {
    if bytes.abs() < 1024.0 * 1024.0 {
        format!("{:.1} KiB", bytes / 1024.0)
    } else {
        format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
    }
}

/// A table of results, printed with aligned columns (and valid Markdown).
#[derive(Debug)]
pub struct Table {
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with a title and column names.
    pub fn new(title: &str, header: &[&str]) -> Table {
        Table {
            title: title.to_string(),
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; it should have as many cells as the header.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text: title line, then a Markdown table.
    pub fn render(&self) -> String {
        let cols = self.header.len();
        let mut width = vec![0; cols];
        for r in std::iter::once(&self.header).chain(&self.rows) {
            for (i, c) in r.iter().enumerate().take(cols) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for (i, w) in width.iter().enumerate() {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = w - c.chars().count();
                // Left-align the first column, right-align the figures.
                if i == 0 {
                    let _ = write!(s, " {c}{} |", " ".repeat(pad));
                } else {
                    let _ = write!(s, " {}{c} |", " ".repeat(pad));
                }
            }
            s.push('\n');
            s
        };
        let mut out = format!("\n{}\n\n", self.title);
        out += &line(&self.header);
        let mut sep = String::from("|");
        for (i, w) in width.iter().enumerate() {
            if i == 0 {
                let _ = write!(sep, " {} |", "-".repeat(*w));
            } else {
                let _ = write!(sep, " {}: |", "-".repeat(w - 1));
            }
        }
        out += &sep;
        out.push('\n');
        for r in &self.rows {
            out += &line(r);
        }
        out
    }

    /// Prints the table to stdout.
    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// Prints whether a figure meets its target, in one line.
pub fn check(what: &str, value: &str, target: &str, met: bool) {
    let verdict = if met { "met" } else { "MISSED" };
    println!("{what}: {value} (target {target}): {verdict}");
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// One line naming the machine: cores, kernel, architecture and CPU model.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "?".into());
    let kernel = format!(
        "{} {}",
        read_trimmed("/proc/sys/kernel/ostype").unwrap_or_else(|| "?".into()),
        read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "?".into()),
    );
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores, {kernel} {}, {cpu}", std::env::consts::ARCH)
}

/// Prints the benchmark's name and the machine it runs on.
pub fn banner(name: &str, what: &str) {
    println!("== {name}: {what}");
    println!("machine: {}", machine());
}

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`...), in bytes.
pub fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets this process's peak RSS (`VmHWM`) to its current RSS; returns
/// whether the kernel accepted it (`/proc/self/clear_refs`, Linux 4.0+).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Ping-pong over two `green::sync::mpsc` channels between two green
/// threads of one hub: time of `n` round trips.
pub fn green_mpsc(n: u64) -> Duration {
    let (to_b, from_a) = green::sync::mpsc::channel::<u64>();
    let (to_a, from_b) = green::sync::mpsc::channel::<u64>();
    let b = green::spawn(move || {
        for v in from_a.iter() {
            to_a.send(v).expect("ping-pong peer");
        }
    });
    let d = green_ping(n, to_b, from_b);
    b.wait();
    d
}

/// The pinging side of a green ping-pong, on a green thread of its own:
/// sends `0..n` on `to_b`, expects each back on `from_b`; their time.
pub fn green_ping(
    n: u64,
    to_b: green::sync::mpsc::Sender<u64>,
    from_b: green::sync::mpsc::Receiver<u64>,
) -> Duration {
    let start = Instant::now();
    let a = green::spawn(move || {
        for i in 0..n {
            to_b.send(i).expect("ping-pong peer");
            assert_eq!(from_b.recv().expect("ping-pong peer"), i);
        }
    });
    a.wait();
    start.elapsed()
}

/// The same ping-pong over tokio's unbounded mpsc channels, two tasks on
/// `rt`.
pub fn tokio_mpsc(rt: &tokio::runtime::Runtime, n: u64) -> Duration {
    rt.block_on(async move {
        let (to_b, mut from_a) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let (to_a, from_b) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let b = tokio::spawn(async move {
            while let Some(v) = from_a.recv().await {
                to_a.send(v).expect("ping-pong peer");
            }
        });
        let d = tokio_ping(n, to_b, from_b).await;
        b.await.expect("tokio task");
        d
    })
}

/// The pinging side of a tokio ping-pong, on a task of its own: sends
/// `0..n` on `to_b`, expects each back on `from_b`; their time.
pub async fn tokio_ping(
    n: u64,
    to_b: tokio::sync::mpsc::UnboundedSender<u64>,
    mut from_b: tokio::sync::mpsc::UnboundedReceiver<u64>,
) -> Duration {
    let start = Instant::now();
    let a = tokio::spawn(async move {
        for i in 0..n {
            to_b.send(i).expect("ping-pong peer");
            assert_eq!(from_b.recv().await, Some(i));
        }
    });
    a.await.expect("tokio task");
    start.elapsed()
}

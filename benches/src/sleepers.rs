//! `sleepers`: 100 000 green threads each sleeping 10 ms, against 100 000
//! tokio tasks each sleeping 10 ms.
//!
//! Green: the root spawns every green thread (`green::sleep(10 ms)`), then
//! waits for each. Tokio: on a current-thread runtime, one task spawns every
//! task (`tokio::time::sleep(10 ms).await`), then awaits each. In both, a
//! sleep's deadline is taken when the sleeper first runs. A third row runs
//! the green case with `Builder::shared_stack` (frames copied to the heap
//! when a green thread parks; no mapping per green thread).
//!
//! Each green variant's wall time is compared with tokio's (target: at most
//! 2x), and the peak RSS is given per sleeper (green thread or task). Each
//! child then runs the same again, in the same process, where green's
//! stacks come from its pool (as in a server that has run a while): a
//! second table compares those rounds.
//! `SLEEPERS=1000000 cargo bench --bench sleepers` runs another count.
//!
//! Each run happens in a child process (this binary, re-executed with
//! `--child PEER COUNT`) so that the peak RSS belongs to one peer alone. The
//! child resets its peak RSS just before spawning (`/proc/self/clear_refs`)
//! and reports `VmHWM` minus the `VmRSS` it had then.
//!
//! On Linux 6.13 and later, green carves default-size stacks 64 to a mapping
//! with guard pages installed by `madvise`, so `vm.max_map_count` does not
//! bound the run. On older kernels each stack is one mapping with a guard
//! page, which the kernel counts as 2 of `vm.max_map_count` (default 65530):
//! 100 000 green threads need about 200 000. There, if the limit is lower,
//! the benchmark raises it for the run by writing
//! `/proc/sys/vm/max_map_count` (this needs root) and restores it at the end;
//! if it cannot, it runs with the largest count that fits, for every peer,
//! and says so.
//!
//! Run: `cargo bench --bench sleepers` in `benches/`.

use std::process::Command;
use std::time::{Duration, Instant};

use green_benches::{
    banner, check, fmt_bytes, fmt_ns, fmt_ratio, median, reset_peak_rss, status_bytes, Table,
};

const SLEEPERS: usize = 100_000;
const NAP: Duration = Duration::from_millis(10);
const WARMUP: usize = 1;
const REPS: usize = 3;
/// Mappings left for everything that is not a green thread's stack.
const MAP_MARGIN: usize = 5000;
const MAP_COUNT: &str = "/proc/sys/vm/max_map_count";

/// What one child run measured.
#[derive(Clone, Copy)]
struct Sample {
    spawn_ns: f64,
    wall_ns: f64,
    rss_delta: f64,
    /// The second round in the same process.
    again_spawn_ns: f64,
    again_wall_ns: f64,
}

/// Prints the child's result line: the first round's spawning time, wall
/// time and peak RSS delta, then the second round's spawning and wall time.
fn report(
    wall: Duration,
    spawned: Duration,
    rss0: Option<u64>,
    hwm: Option<u64>,
    again: (Duration, Duration),
) {
    let (Some(rss0), Some(hwm)) = (rss0, hwm) else {
        eprintln!("cannot read VmRSS/VmHWM from /proc/self/status");
        std::process::exit(2);
    };
    println!(
        "result {} {} {} {} {}",
        spawned.as_nanos(),
        wall.as_nanos(),
        hwm as i64 - rss0 as i64,
        again.0.as_nanos(),
        again.1.as_nanos()
    );
}

fn child_green(n: usize, shared: bool) {
    // Create the hub before the baseline reading.
    let _ = green::hub::stats();
    let clear = reset_peak_rss();
    let rss0 = status_bytes("VmRSS");
    let (spawned, wall) = green_round(n, shared);
    let peak = status_bytes("VmHWM");
    // The same again in this process: stacks and memory come back from
    // the pools the first round filled.
    let again = green_round(n, shared);
    if !clear {
        eprintln!("note: could not reset the peak RSS; the figure includes start-up");
    }
    report(wall, spawned, rss0, peak, again);
}

/// Spawns `n` sleepers, then waits for each; returns the time spent
/// spawning and the whole time.
fn green_round(n: usize, shared: bool) -> (Duration, Duration) {
    let start = Instant::now();
    let mut all = Vec::with_capacity(n);
    for i in 0..n {
        let builder = if shared {
            // SAFETY: the sleeper lends no stack data to anything else.
            unsafe { green::Builder::new().shared_stack() }
        } else {
            green::Builder::new()
        };
        match builder.spawn(|| green::sleep(NAP)) {
            Ok(gt) => all.push(gt),
            Err(e) => {
                eprintln!("green thread {i} of {n}: {e}");
                std::process::exit(3);
            }
        }
    }
    let spawned = start.elapsed();
    for gt in all {
        gt.wait();
    }
    (spawned, start.elapsed())
}

fn child_tokio(n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let clear = reset_peak_rss();
        let rss0 = status_bytes("VmRSS");
        let (spawned, wall) = tokio_round(n).await;
        let peak = status_bytes("VmHWM");
        let again = tokio_round(n).await;
        if !clear {
            eprintln!("note: could not reset the peak RSS; the figure includes start-up");
        }
        report(wall, spawned, rss0, peak, again);
    });
}

/// [`green_round`] with tokio tasks.
async fn tokio_round(n: usize) -> (Duration, Duration) {
    let start = Instant::now();
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        all.push(tokio::spawn(async { tokio::time::sleep(NAP).await }));
    }
    let spawned = start.elapsed();
    for t in all {
        t.await.expect("sleeper task");
    }
    (spawned, start.elapsed())
}

/// Runs one child and parses its result line.
fn run_child(peer: &str, n: usize) -> Result<Sample, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = Command::new(exe)
        .args(["--child", peer, &n.to_string()])
        .output()
        .map_err(|e| format!("cannot run the {peer} child: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "{peer} child failed ({}): {}",
            out.status,
            stderr.trim()
        ));
    }
    if !stderr.trim().is_empty() {
        eprintln!("{peer}: {}", stderr.trim());
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("result "))
        .ok_or_else(|| format!("{peer} child printed no result"))?;
    let f: Vec<f64> = line
        .split_whitespace()
        .map(|x| x.parse().map_err(|e| format!("bad result {line:?}: {e}")))
        .collect::<Result<_, _>>()?;
    match f[..] {
        [spawn_ns, wall_ns, rss_delta, again_spawn_ns, again_wall_ns] => Ok(Sample {
            spawn_ns,
            wall_ns,
            rss_delta,
            again_spawn_ns,
            again_wall_ns,
        }),
        _ => Err(format!("bad result {line:?}")),
    }
}

/// Restores `vm.max_map_count` when dropped, if the benchmark raised it.
struct MapLimit {
    restore: Option<usize>,
}

impl Drop for MapLimit {
    fn drop(&mut self) {
        if let Some(old) = self.restore {
            match std::fs::write(MAP_COUNT, old.to_string()) {
                Ok(()) => println!("vm.max_map_count restored to {old}"),
                Err(e) => println!("could not restore vm.max_map_count to {old}: {e}"),
            }
        }
    }
}

/// Whether this kernel installs guard pages with `madvise` (Linux 6.13+).
fn kernel_has_guard_advice() -> bool {
    // SAFETY: maps, advises and unmaps one private page of our own.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return false;
        }
        let ok = libc::madvise(p, 4096, 102 /* MADV_GUARD_INSTALL */) == 0;
        libc::munmap(p, 4096);
        ok
    }
}

/// The kernel's part of a new guarded stack, the floor of a green thread
/// on a stack of its own: per stack, in ns, the guard page installed with
/// `madvise` (where the kernel has it) and the first write to the top page
/// (the page fault that brings it in), for `n` stacks laid out as green's
/// pool carves them (256 KiB + a guard page each). Returns `(guard, touch)`.
fn stack_floor(n: usize) -> (f64, f64) {
    const STACK: usize = green::DEFAULT_STACK_SIZE + 4096;
    let guard_advice = kernel_has_guard_advice();
    // SAFETY: one private anonymous mapping of our own, advised, written
    // inside its bounds and unmapped; nothing else uses it.
    unsafe {
        let len = STACK * n;
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        assert!(p != libc::MAP_FAILED, "cannot map {len} bytes");
        let base = p as *mut u8;
        let t = Instant::now();
        if guard_advice {
            for i in 0..n {
                libc::madvise(base.add(i * STACK) as *mut libc::c_void, 4096, 102);
            }
        }
        let guard = t.elapsed();
        let t = Instant::now();
        for i in 0..n {
            std::ptr::write_volatile(base.add((i + 1) * STACK - 64), 1u8);
        }
        let touch = t.elapsed();
        libc::munmap(p, len);
        (
            guard.as_nanos() as f64 / n as f64,
            touch.as_nanos() as f64 / n as f64,
        )
    }
}

/// Makes room for `want` green threads; returns how many to run.
fn make_room(want: usize) -> (usize, MapLimit) {
    if kernel_has_guard_advice() {
        println!(
            "the kernel installs guard pages with madvise: green stacks take no mapping \
             each, vm.max_map_count left as it is"
        );
        return (want, MapLimit { restore: None });
    }
    let need = 2 * want + MAP_MARGIN;
    let read = || {
        std::fs::read_to_string(MAP_COUNT)
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
    };
    let Some(limit) = read() else {
        println!("cannot read {MAP_COUNT}; trying {want} green threads anyway");
        return (want, MapLimit { restore: None });
    };
    if limit >= need {
        println!("vm.max_map_count = {limit}: room for {want} green threads");
        return (want, MapLimit { restore: None });
    }
    let target = need.max(262_144);
    match std::fs::write(MAP_COUNT, target.to_string()) {
        Ok(()) if read() == Some(target) => {
            println!(
                "vm.max_map_count = {limit} is below the {need} that {want} green threads \
                 need (2 mappings per stack); raised it to {target} for this run"
            );
            (
                want,
                MapLimit {
                    restore: Some(limit),
                },
            )
        }
        res => {
            let fit = (limit.saturating_sub(MAP_MARGIN) / 2).min(want);
            let (why, restore) = match res {
                Err(e) => (e.to_string(), None),
                Ok(()) => ("the value did not stick".into(), Some(limit)),
            };
            println!(
                "vm.max_map_count = {limit} is below the {need} that {want} green threads \
                 need, and raising it failed ({why}): running {fit} sleepers per peer instead"
            );
            (fit, MapLimit { restore })
        }
    }
}

/// Largest wall time of a green variant, as a multiple of tokio's.
const WALL_TARGET: f64 = 2.0;

/// Child argument and row name of each peer; tokio, the reference, last.
const PEERS: [(&str, &str); 3] = [
    ("green", "green::spawn + green::sleep"),
    ("green-shared", "the same, Builder::shared_stack"),
    ("tokio", "tokio::spawn + time::sleep (current-thread)"),
];

/// Runs every peer `WARMUP + REPS` times, interleaved; returns the samples
/// of the timed runs, per peer.
fn measure(n: usize) -> Result<Vec<Vec<Sample>>, String> {
    let mut samples = vec![Vec::new(); PEERS.len()];
    for rep in 0..WARMUP + REPS {
        for (p, (peer, _)) in PEERS.iter().enumerate() {
            let s = run_child(peer, n)?;
            if rep >= WARMUP {
                samples[p].push(s);
            }
        }
    }
    Ok(samples)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let n = args
            .get(i + 2)
            .and_then(|s| s.parse().ok())
            .expect("--child PEER COUNT");
        match args.get(i + 1).map(String::as_str) {
            Some("green") => child_green(n, false),
            Some("green-shared") => child_green(n, true),
            Some("tokio") => child_tokio(n),
            other => panic!("unknown peer {other:?}"),
        }
        return;
    }

    banner(
        "sleepers",
        "many green threads sleeping 10 ms at once vs tokio sleep tasks",
    );
    let want = std::env::var("SLEEPERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SLEEPERS);
    let (n, limit) = make_room(want);
    println!(
        "{n} sleepers of {} ms per run, one child process per run; \
         median of {REPS} runs after {WARMUP} warm-up run",
        NAP.as_millis()
    );
    let measured = measure(n);
    // Restore the kernel setting before anything else, even on failure.
    drop(limit);
    let samples = match measured {
        Ok(s) => s,
        Err(e) => {
            println!("{e}");
            std::process::exit(1);
        }
    };

    let med = |p: usize, f: fn(&Sample) -> f64| median(samples[p].iter().map(f).collect());
    let tokio = PEERS.len() - 1;
    let tokio_wall = med(tokio, |s| s.wall_ns);
    let tokio_rss = med(tokio, |s| s.rss_delta);
    let mut t = Table::new(
        &format!("{n} sleepers of {} ms", NAP.as_millis()),
        &[
            "case",
            "wall time",
            "of which spawning",
            "peak RSS delta",
            "per sleeper",
            "wall, ratio to tokio",
            "RSS, ratio to tokio",
        ],
    );
    let mut walls = Vec::new();
    let mut floor = (f64::MAX, f64::MAX);
    for _ in 0..REPS {
        let (g, t) = stack_floor(n);
        floor = (floor.0.min(g), floor.1.min(t));
    }
    for (p, (_, name)) in PEERS.iter().enumerate() {
        let wall = med(p, |s| s.wall_ns);
        let rss = med(p, |s| s.rss_delta);
        walls.push(wall);
        t.row(vec![
            name.to_string(),
            fmt_ns(wall),
            fmt_ns(med(p, |s| s.spawn_ns)),
            fmt_bytes(rss),
            format!("{:.0} B", rss / n as f64),
            fmt_ratio(wall / tokio_wall),
            fmt_ratio(rss / tokio_rss),
        ]);
    }
    t.print();
    let floor_ns = (floor.0 + floor.1) * n as f64;
    println!(
        "\nthe kernel's floor for a stack of one's own (best of {REPS}): a guard page installed \
         in {} and the top page's first write in {} per stack, {} for {n} stacks \
         ({} tokio's whole run); green's spawning phase took {} that, and its whole run \
         {} beyond it ({} tokio's whole run)",
        fmt_ns(floor.0),
        fmt_ns(floor.1),
        fmt_ns(floor_ns),
        fmt_ratio(floor_ns / tokio_wall),
        fmt_ratio(med(0, |s| s.spawn_ns) / floor_ns),
        fmt_ns(walls[0] - floor_ns),
        fmt_ratio((walls[0] - floor_ns) / tokio_wall),
    );

    // The second round of each child: the stacks (green) and the memory
    // (all) come from what the first round left in the pools.
    let tokio_again = med(tokio, |s| s.again_wall_ns);
    let mut t = Table::new(
        &format!("the same {n} sleepers again in the same process"),
        &[
            "case",
            "wall time",
            "of which spawning",
            "wall, ratio to tokio",
        ],
    );
    for (p, (_, name)) in PEERS.iter().enumerate() {
        let wall = med(p, |s| s.again_wall_ns);
        t.row(vec![
            name.to_string(),
            fmt_ns(wall),
            fmt_ns(med(p, |s| s.again_spawn_ns)),
            fmt_ratio(wall / tokio_again),
        ]);
    }
    t.print();
    println!();
    for (p, (_, name)) in PEERS.iter().enumerate().take(tokio) {
        let ratio = walls[p] / tokio_wall;
        check(
            &format!("{name}: wall time / tokio's"),
            &fmt_ratio(ratio),
            &format!("<= {WALL_TARGET}x"),
            ratio <= WALL_TARGET,
        );
    }
}

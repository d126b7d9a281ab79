//! `identity`: what a green thread's own thread identity costs
//! (`green::Builder::thread_identity(true)`: its own glibc TLS block and
//! TCB, with the hub switching the FS base on each resume and suspend),
//! against green threads that share their OS thread's
//! (`thread_identity(false)`), in one run, side by side.
//!
//! 1. Yield: two green threads ping-pong with `green::yield_now()`, `N`
//!    times each, as in the `yield` bench, both with identity or both
//!    without; time per yield. A yield is one suspend into the hub loop and
//!    one resume of the other green thread, so with identity it sets the
//!    FS base twice (back to the OS thread's on the suspend, to the other
//!    green thread's on the resume): the difference per switch is half the
//!    difference per yield. Each green thread also bumps a
//!    `thread_local!` counter once per yield (a `fs:`-relative increment,
//!    in both cases alike), which checks that each one saw its own
//!    thread-locals across its switches with identity and the shared ones
//!    without.
//! 2. Spawn: spawn and wait for an empty green thread, one at a time,
//!    `Builder::new().thread_identity(b).spawn(|| ()).unwrap().wait()`,
//!    with and without identity; `green::spawn(|| ()).wait()` (the default,
//!    which is without identity unless `patch()` ran; this bench never
//!    patches) for reference, and `std::thread::spawn(|| ()).join()` as
//!    the peer, with fewer iterations. With identity a spawn allocates and
//!    fills in a TLS block (`_dl_allocate_tls`), and the end runs a
//!    thread's exit (thread-local and pthread-key destructors) and frees it.
//! 3. Memory: `LIVE` green threads each parked on one `green::Event`; the
//!    resident set (`/proc/self/statm`: resident pages × page size) before
//!    spawning them and once all are parked, per green thread, with and
//!    without identity; also the malloc heap in use (`mallinfo2`), where
//!    the TLS blocks live. Then the event is sent, every green thread
//!    checks that its thread-local kept its value across the park (with
//!    identity; without, they share one), all are waited for, and the hub
//!    must count no green thread left.
//!
//!    Each memory run is a child process (this binary re-executed with
//!    `--child-mem 0|1 COUNT`), so that neither case inherits the other's
//!    pooled stacks, freed malloc chunks or touched pages: a green thread's
//!    stack goes back to a pool, and a freed TLS block back to malloc's free
//!    lists, both still resident, so a second round in the same process
//!    would measure almost nothing. The child creates its hub and runs one
//!    green thread of its kind (park, wake, wait) before its baseline, so
//!    that one-time set-up (the identity layout probe, the poller) is not
//!    counted; the handles' `Vec` is allocated and touched before the
//!    baseline too. The two cases alternate over `MEM_ROUNDS` rounds; the
//!    median of each is reported.
//!
//! Targets: at most +25 ns per switch; spawn + wait with identity at most
//! 1 µs; at most 6 KiB more resident memory per live green thread.
//!
//! Run: `cargo bench --bench identity` in `benches/`.

use std::cell::Cell;
use std::process::Command;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use green_benches::{banner, check, fmt_bytes, fmt_ns, fmt_ratio, median, Interleaved, Table};

const WARMUP: usize = 2;
const REPS: usize = 9;
/// Yields per green thread in the ping-pong.
const PING_PONG: u64 = 1_000_000;
/// Spawns per timed run, green threads.
const SPAWN_OPS: u64 = 100_000;
/// Spawns per timed run, OS threads.
const STD_OPS: u64 = 500;
/// Live green threads in the memory case.
const LIVE: usize = 10_000;
/// Child processes per memory case.
const MEM_ROUNDS: usize = 3;

/// Targets.
const SWITCH_TARGET_NS: f64 = 25.0;
const SPAWN_TARGET_NS: f64 = 1000.0;
const MEM_TARGET_BYTES: f64 = 6.0 * 1024.0;

thread_local! {
    /// A thread-local the green threads use to tell whose block they run on.
    static PROBE: Cell<u64> = const { Cell::new(0) };
}

/// Green threads that ran, for the untimed checks.
static RAN: AtomicU64 = AtomicU64::new(0);

fn builder(identity: bool) -> green::Builder {
    green::Builder::new().thread_identity(identity)
}

/// The address of the running context's `PROBE`.
fn probe_addr() -> usize {
    PROBE.with(|p| p as *const Cell<u64> as usize)
}

// ---------------------------------------------------------------- yield

/// One ping-pong green thread: `n` yields, counting them in its
/// thread-local; returns the count it sees at the end.
fn pinger(n: u64) -> impl FnOnce() -> u64 {
    move || {
        for _ in 0..n {
            PROBE.set(PROBE.get() + 1);
            green::yield_now();
        }
        PROBE.get()
    }
}

/// Two green threads yield `n` times each; returns the time and what each
/// one's counter read at its end.
fn ping_pong_counted(identity: bool, n: u64) -> (Duration, u64, u64) {
    let start = Instant::now();
    let a = builder(identity).spawn(pinger(n)).expect("spawn");
    let b = builder(identity).spawn(pinger(n)).expect("spawn");
    let (ca, cb) = (a.wait(), b.wait());
    (start.elapsed(), ca, cb)
}

fn ping_pong(identity: bool, n: u64) -> Duration {
    let root = PROBE.get();
    let (t, ca, cb) = ping_pong_counted(identity, n);
    if identity {
        // Each counted only its own yields, on a fresh thread-local; the
        // root's was untouched.
        assert_eq!((ca, cb), (n, n), "identity: each green thread's own count");
        assert_eq!(PROBE.get(), root, "identity: the root's thread-local");
    } else {
        // One shared counter: both added to the root's.
        assert_eq!(PROBE.get(), root + 2 * n, "shared: one counter");
        assert_eq!(cb, root + 2 * n, "shared: b ends last");
    }
    t
}

// ---------------------------------------------------------------- spawn

fn builder_one(identity: bool, n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        builder(identity).spawn(|| ()).unwrap().wait();
    }
    start.elapsed()
}

fn green_one(n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        green::spawn(|| ()).wait();
    }
    start.elapsed()
}

fn std_one(n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        std::thread::spawn(|| ()).join().unwrap();
    }
    start.elapsed()
}

/// Untimed: the spawned green threads run, and each has its own
/// thread-locals exactly when asked for.
fn check_spawns() {
    let root = probe_addr();
    for identity in [false, true] {
        let before = RAN.load(Ordering::Relaxed);
        for _ in 0..1000 {
            let seen = builder(identity)
                .spawn(|| {
                    RAN.fetch_add(1, Ordering::Relaxed);
                    probe_addr()
                })
                .unwrap()
                .wait();
            assert_eq!(seen != root, identity, "own thread-locals iff identity");
        }
        assert_eq!(RAN.load(Ordering::Relaxed) - before, 1000, "all ran");
    }
    let seen = green::spawn(probe_addr).wait();
    assert_eq!(seen, root, "green::spawn shares (not patched)");
}

// ---------------------------------------------------------------- memory

/// Resident bytes of this process (`/proc/self/statm`).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("resident pages in /proc/self/statm");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page
}

/// Bytes malloc has handed out and not had back (heap and mmapped chunks).
fn heap_bytes() -> u64 {
    // SAFETY: mallinfo2 only reads malloc's counters.
    let mi = unsafe { libc::mallinfo2() };
    (mi.uordblks + mi.hblkhd) as u64
}

/// The child: `n` green threads parked on one event, then woken.
fn child_mem(identity: bool, n: usize) {
    let _ = green::hub::stats();
    // One green thread of this kind first: one-time set-up is not counted.
    {
        let evt = green::Event::new();
        let e = evt.clone();
        let gt = builder(identity).spawn(move || e.wait()).expect("spawn");
        green::yield_now();
        evt.send(()).unwrap();
        gt.wait();
    }
    assert_eq!(green::hub::stats().green_threads, 0);
    let mut all = Vec::with_capacity(n);
    // Touch the handles' storage now, so that it is not counted below.
    // SAFETY: the Vec owns `n` elements' worth of memory; zeroing it makes
    // no element live (its length stays 0).
    unsafe { std::ptr::write_bytes(all.as_mut_ptr(), 0, n) };
    let evt = green::Event::<u64>::new();
    let parked = Rc::new(Cell::new(0usize));

    let (rss0, heap0) = (rss_bytes(), heap_bytes());
    for i in 0..n as u64 {
        let e = evt.clone();
        let p = parked.clone();
        let gt = builder(identity)
            .spawn(move || {
                PROBE.set(i);
                p.set(p.get() + 1);
                let v = e.wait();
                // Whether its thread-local kept its value across the park.
                (v, PROBE.get() == i)
            })
            .expect("spawn");
        all.push(gt);
    }
    // Spawned green threads run when the root yields; each parks at once.
    while parked.get() < n {
        green::yield_now();
    }
    let live = green::hub::stats().green_threads;
    let (rss1, heap1) = (rss_bytes(), heap_bytes());
    assert_eq!(live, n, "all parked and alive");

    evt.send(7).unwrap();
    let mut kept = 0;
    for gt in all {
        let (v, own) = gt.wait();
        assert_eq!(v, 7);
        kept += own as usize;
    }
    let left = green::hub::stats().green_threads;
    assert_eq!(left, 0, "no green thread left");
    if identity {
        assert_eq!(kept, n, "each kept its own thread-local");
    } else {
        // One shared thread-local: only the last to set it reads its own.
        assert!(kept <= 1, "shared thread-local, {kept} kept theirs");
    }
    println!("result {rss0} {rss1} {heap0} {heap1} {live} {left}");
}

/// What one memory child measured, per green thread.
#[derive(Clone, Copy)]
struct Mem {
    rss: f64,
    heap: f64,
}

fn run_child(identity: bool, n: usize) -> Result<Mem, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let flag = if identity { "1" } else { "0" };
    let out = Command::new(exe)
        .args(["--child-mem", flag, &n.to_string()])
        .output()
        .map_err(|e| format!("cannot run the memory child: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "memory child (identity {identity}) failed ({}): {}",
            out.status,
            stderr.trim()
        ));
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("result "))
        .ok_or_else(|| "memory child printed no result".to_string())?;
    let f: Vec<f64> = line
        .split_whitespace()
        .map(|x| x.parse().map_err(|e| format!("bad result {line:?}: {e}")))
        .collect::<Result<_, _>>()?;
    match f[..] {
        [rss0, rss1, heap0, heap1, live, left] => {
            assert_eq!((live, left), (n as f64, 0.0), "child's green thread counts");
            Ok(Mem {
                rss: (rss1 - rss0) / n as f64,
                heap: (heap1 - heap0) / n as f64,
            })
        }
        _ => Err(format!("bad result {line:?}")),
    }
}

// ---------------------------------------------------------------- main

/// Bytes per green thread, in KiB and in bytes.
fn per_thread(bytes: f64) -> String {
    format!("{} ({bytes:.0} B)", fmt_bytes(bytes))
}

/// Whether the kernel lets user code write the FS base (`wrfsbase`);
/// otherwise each switch of the thread pointer is an `arch_prctl` call.
fn fsgsbase() -> bool {
    const HWCAP2_FSGSBASE: libc::c_ulong = 1 << 1;
    // SAFETY: getauxval only reads the auxiliary vector.
    unsafe { libc::getauxval(libc::AT_HWCAP2) & HWCAP2_FSGSBASE != 0 }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child-mem") {
        let identity = args.get(i + 1).map(String::as_str) == Some("1");
        let n = args
            .get(i + 2)
            .and_then(|s| s.parse().ok())
            .expect("--child-mem 0|1 COUNT");
        child_mem(identity, n);
        return;
    }

    banner(
        "identity",
        "green threads with their own thread identity vs sharing the OS thread's",
    );
    if let Err(why) = green::patch::thread_identity_supported() {
        // Nothing to compare: both cases would share the OS thread's.
        check(
            "thread identity supported (green::patch::thread_identity_supported)",
            &format!("no: {why}"),
            "Ok, on x86-64 glibc",
            false,
        );
        return;
    }
    println!(
        "thread pointer set with {}",
        if fsgsbase() {
            "wrfsbase (HWCAP2_FSGSBASE)"
        } else {
            "arch_prctl(ARCH_SET_FS): no FSGSBASE"
        }
    );
    println!(
        "median of {REPS} interleaved runs after {WARMUP} warm-up runs; \
         {SPAWN_OPS} spawns per run ({STD_OPS} for std threads); \
         memory: {LIVE} parked green threads, {MEM_ROUNDS} child processes per case"
    );
    check_spawns();

    // 1. Yield.
    let mut runs = Interleaved::new();
    runs.case(2 * PING_PONG, || ping_pong(false, PING_PONG))
        .case(2 * PING_PONG, || ping_pong(true, PING_PONG));
    let r = runs.run(WARMUP, REPS);
    let (y_off, y_on) = (r[0], r[1]);
    let per_switch = (y_on - y_off) / 2.0;
    let mut t = Table::new(
        &format!("two green threads ping-pong, {PING_PONG} yields each"),
        &[
            "case",
            "time per yield",
            "per switch (yield / 2)",
            "ratio to without",
        ],
    );
    for (name, ns) in [
        ("without identity (thread_identity(false))", y_off),
        ("with identity (thread_identity(true))", y_on),
    ] {
        t.row(vec![
            name.into(),
            fmt_ns(ns),
            fmt_ns(ns / 2.0),
            fmt_ratio(ns / y_off),
        ]);
    }
    t.print();

    // 2. Spawn + wait.
    let mut runs = Interleaved::new();
    runs.case(SPAWN_OPS, || builder_one(false, SPAWN_OPS))
        .case(SPAWN_OPS, || builder_one(true, SPAWN_OPS))
        .case(SPAWN_OPS, || green_one(SPAWN_OPS))
        .case(STD_OPS, || std_one(STD_OPS));
    let r = runs.run(WARMUP, REPS);
    let (s_off, s_on, s_green, s_std) = (r[0], r[1], r[2], r[3]);
    let mut t = Table::new(
        "spawn + wait of an empty green thread, one at a time",
        &[
            "case",
            "time per spawn + wait",
            "ratio to without",
            "std / this",
        ],
    );
    for (name, ns) in [
        ("Builder::thread_identity(false).spawn + wait", s_off),
        ("Builder::thread_identity(true).spawn + wait", s_on),
        ("green::spawn + wait (not patched: shared)", s_green),
        ("std::thread::spawn + join", s_std),
    ] {
        t.row(vec![
            name.into(),
            fmt_ns(ns),
            fmt_ratio(ns / s_off),
            fmt_ratio(s_std / ns),
        ]);
    }
    t.print();

    // 3. Memory per live green thread, each run in a child process.
    let mut off = Vec::new();
    let mut on = Vec::new();
    for _ in 0..MEM_ROUNDS {
        for identity in [false, true] {
            match run_child(identity, LIVE) {
                Ok(m) if identity => on.push(m),
                Ok(m) => off.push(m),
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            }
        }
    }
    let med = |v: &[Mem], f: fn(&Mem) -> f64| median(v.iter().map(f).collect());
    let (rss_off, rss_on) = (med(&off, |m| m.rss), med(&on, |m| m.rss));
    let (heap_off, heap_on) = (med(&off, |m| m.heap), med(&on, |m| m.heap));
    let range = |v: &[Mem]| {
        let r: Vec<f64> = v.iter().map(|m| m.rss).collect();
        let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{lo:.0}–{hi:.0} B")
    };
    let mut t = Table::new(
        &format!("{LIVE} green threads parked on a green::Event, per green thread"),
        &[
            "case",
            "RSS",
            "RSS, all rounds",
            "malloc heap",
            "ratio to without",
        ],
    );
    t.row(vec![
        "without identity".into(),
        per_thread(rss_off),
        range(&off),
        per_thread(heap_off),
        fmt_ratio(1.0),
    ]);
    t.row(vec![
        "with identity".into(),
        per_thread(rss_on),
        range(&on),
        per_thread(heap_on),
        fmt_ratio(rss_on / rss_off),
    ]);
    t.row(vec![
        "extra with identity".into(),
        per_thread(rss_on - rss_off),
        String::new(),
        per_thread(heap_on - heap_off),
        String::new(),
    ]);
    t.print();

    println!();
    println!(
        "yield with / without identity: {} (+{} per yield)",
        fmt_ratio(y_on / y_off),
        fmt_ns(y_on - y_off)
    );
    println!(
        "spawn + wait with / without identity: {} (+{})",
        fmt_ratio(s_on / s_off),
        fmt_ns(s_on - s_off)
    );
    println!(
        "RSS per parked green thread with / without identity: {}",
        fmt_ratio(rss_on / rss_off)
    );
    check(
        "identity: extra time per switch (yield difference / 2)",
        &format!("{per_switch:+.1} ns"),
        "<= +25 ns",
        per_switch <= SWITCH_TARGET_NS,
    );
    check(
        "identity: spawn + wait, one at a time",
        &fmt_ns(s_on),
        "<= 1 µs",
        s_on <= SPAWN_TARGET_NS,
    );
    check(
        "identity: extra RSS per parked green thread",
        &per_thread(rss_on - rss_off),
        "<= 6.0 KiB",
        rss_on - rss_off <= MEM_TARGET_BYTES,
    );
}

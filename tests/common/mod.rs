//! Helpers shared by the integration tests.
// Not every test binary uses every helper.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// The kernel id of the calling OS thread.
pub fn tid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Whether OS thread `tid` of this process sleeps in the kernel, in an epoll
/// wait where the kernel names its wait channel.
fn asleep_in_poller(tid: libc::pid_t) -> bool {
    task_asleep_in_poller("self", &tid.to_string())
}

/// Whether OS thread `tid` of process `pid` (a number, or `self`) sleeps in
/// the kernel, in an epoll wait where the kernel names its wait channel.
pub fn task_asleep_in_poller(pid: &str, tid: &str) -> bool {
    let dir = format!("/proc/{pid}/task/{tid}");
    let Ok(stat) = std::fs::read_to_string(format!("{dir}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses.
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|s| s.trim_start().chars().next());
    if state != Some('S') {
        return false;
    }
    match std::fs::read_to_string(format!("{dir}/wchan")) {
        Ok(w) if !w.is_empty() && w != "0" => w.contains("epoll"),
        // The kernel hides the wait channel: a sleeping hub thread can only
        // be sleeping in its poller.
        _ => true,
    }
}

/// Blocks the calling plain OS thread until the hub of OS thread `tid` is
/// asleep in its poller, so that a wakeup sent now must go through the
/// poller's notification. This is synchronisation on observable kernel state,
/// not a guess at a delay.
///
/// # Panics
/// If `tid` is not asleep within 10 s.
pub fn wait_until_asleep_in_poller(tid: libc::pid_t) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !asleep_in_poller(tid) {
        assert!(
            Instant::now() < deadline,
            "thread {tid} did not go to sleep in its poller"
        );
        std::thread::yield_now();
    }
}

/// Blocks the caller until OS thread `tid` of this process sleeps in the
/// kernel (state `S`). A thread that announces it is about to wait for a
/// primitive and then sleeps is parked in that wait: synchronisation on
/// observable kernel state, not a guess at a delay.
///
/// # Panics
/// If `tid` does not go to sleep within 10 s.
pub fn wait_until_sleeping(tid: libc::pid_t) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat =
            std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.trim_start().chars().next());
        if state == Some('S') {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "thread {tid} did not go to sleep"
        );
        std::thread::yield_now();
    }
}

/// xorshift64: a tiny reproducible PRNG for the stress tests.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The seed: `GREEN_STRESS_SEED` if set (to replay a failure), else the clock.
pub fn stress_seed() -> u64 {
    let seed = std::env::var("GREEN_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("stress seed {seed}: replay with GREEN_STRESS_SEED={seed}");
    seed
}

/// Runs `f`, failing the whole test binary (exit 101, with a message) if it
/// has not returned within `limit`: for tests of bugs whose symptom is a
/// hang, which would otherwise stop the suite rather than fail a test.
pub fn within<T>(limit: Duration, f: impl FnOnce() -> T) -> T {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
            eprintln!("a test hung: no return within {limit:?}");
            std::process::exit(101);
        }
    });
    let v = f();
    drop(done);
    watchdog.join().unwrap();
    v
}

//! Helpers shared by the `patch_identity_*` test binaries: every green thread
//! a thread of its own under `green::patch()`.
//!
//! The tests keep their shared state in `Arc`s and atomics even where `Rc`
//! and `Cell` would do on one OS thread, so that the same bodies also run on
//! plain OS threads, as the reference for what a correct result is.
// Not every test binary uses every helper.
#![allow(dead_code)]

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// The kernel id of the calling OS thread: unlike `thread::current().id()`,
/// the same for every green thread of an OS thread.
pub fn os_tid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Checks that every green thread reported running on OS thread `me`: the
/// tests spawn them all from the test's own thread, so that their waits can
/// only have overlapped by parking, not by running on other OS threads.
pub fn assert_all_on_os_thread(tids: &[libc::pid_t], me: libc::pid_t) {
    for (i, &tid) in tids.iter().enumerate() {
        assert_eq!(tid, me, "green thread {i} ran on another OS thread");
    }
}

/// Ends the whole test process if the test it guards runs longer than its
/// limit: a hang (the failure these tests look for when green threads share
/// an identity) then fails the run with a message instead of stalling it.
pub struct Watchdog {
    done: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Watchdog {
    /// Starts watching test `what` for `limit`; dropping the watchdog stops it.
    pub fn new(what: &'static str, limit: Duration) -> Watchdog {
        let (done, rx) = mpsc::channel::<()>();
        let thread = thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                // Straight to stderr: the test harness captures `eprintln!`
                // and the abort would lose it.
                let _ = writeln!(
                    std::io::stderr(),
                    "{what}: still running after {limit:?}: it hangs; aborting the test process"
                );
                std::process::abort();
            }
        });
        Watchdog {
            done: Some(done),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A green thread that makes `std::thread::sleep(10 ms)` calls in a loop and
/// counts them, to show that the OS thread kept running green threads while
/// another green thread waited in some blocking call.
pub struct Ticker {
    ticks: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: green::GreenThread<libc::pid_t>,
}

/// The ticker's period.
pub const TICK: Duration = Duration::from_millis(10);

impl Ticker {
    /// Spawns the ticker on the calling OS thread.
    pub fn start() -> Ticker {
        let ticks = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (ticks, stop) = (ticks.clone(), stop.clone());
            green::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    thread::sleep(TICK);
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
                os_tid()
            })
        };
        Ticker {
            ticks,
            stop,
            thread,
        }
    }

    /// A handle on the tick count, for other green threads to read.
    pub fn counter(&self) -> Arc<AtomicUsize> {
        self.ticks.clone()
    }

    /// Ticks so far.
    pub fn ticks(&self) -> usize {
        self.ticks.load(Ordering::SeqCst)
    }

    /// Stops the ticker, waits for it and checks that it ran on OS thread `me`;
    /// returns its tick count.
    pub fn stop(self, me: libc::pid_t) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        assert_eq!(
            self.thread.wait(),
            me,
            "the ticker ran on another OS thread"
        );
        self.ticks.load(Ordering::SeqCst)
    }
}

/// Waits, letting the calling OS thread's green threads run, until `done`
/// holds; panics naming `what` if it does not within `limit`. It polls
/// observable state: how soon `done` holds does not decide the outcome.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        green::sleep(Duration::from_millis(1));
    }
}

/// The process's resident set size, from `/proc/self/statm`.
pub fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm's second field is the resident page count");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * usize::try_from(page).expect("a positive page size")
}

/// One mebibyte.
pub const MIB: usize = 1 << 20;

/// Patches, and checks that every green thread has an identity of its own
/// here (the tests of these binaries are about nothing else).
pub fn patch_with_identity() {
    green::patch();
    let mode = green::patch::thread_identity();
    if let green::patch::IdentityMode::Shared { reason } = &mode {
        panic!("green threads share their OS thread's identity: {reason}");
    }
    assert!(matches!(mode, green::patch::IdentityMode::PerGreenThread));
}

/// Twenty consumer green threads, each blocked in `recv` on a channel of
/// its own (made by `channel`), fed by one producer green thread, all on
/// this OS thread; the channels are kept open to the end, so that only the
/// sends can wake the consumers.
pub fn consumers_fed_by_one_producer<S: 'static, R: 'static>(
    channel: impl Fn() -> (S, R),
    send: fn(&S, u64),
    recv: fn(&R) -> u64,
) {
    const CONSUMERS: u64 = 20;
    const MESSAGES: u64 = 50;
    let me = os_tid();
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..CONSUMERS).map(|_| channel()).unzip();
    // Spawned before the producer, so that each is blocked in `recv` on
    // its own channel when the producer starts.
    let consumers: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(c, rx)| {
            green::spawn(move || {
                let c = c as u64;
                for k in 0..MESSAGES {
                    let m = recv(&rx);
                    assert_eq!(m, c * 1000 + k, "consumer {c}, message {k}");
                }
                (os_tid(), rx)
            })
        })
        .collect();
    let producer = green::spawn(move || {
        for k in 0..MESSAGES {
            // Yields until the consumers have drained their channels, spun
            // out their backoff and blocked in `recv` (none is runnable),
            // so that this round's sends must wake them: a consumer still
            // spinning would find its message without being woken.
            while {
                green::yield_now();
                green::hub::stats().runnable > 0
            } {}
            for (c, tx) in senders.iter().enumerate() {
                send(tx, c as u64 * 1000 + k);
            }
        }
        // The senders stay open: only their sends may wake the consumers.
        (os_tid(), senders)
    });
    let mut tids = Vec::new();
    let mut receivers = Vec::new();
    for c in consumers {
        let (tid, rx) = c.wait();
        tids.push(tid);
        receivers.push(rx);
    }
    let (tid, senders) = producer.wait();
    tids.push(tid);
    assert_all_on_os_thread(&tids, me);
    drop((senders, receivers));
}

//! Under `green::patch()` every green thread is a thread of its own to std:
//! its own `thread::current()` (and so its own parker), its own
//! `thread_local!`s, destroyed when the green thread ends or is killed, and
//! its own context in std's channels, which skip waking a waiter that has
//! the sender's thread id.
//!
//! Every green thread here runs on the test's own OS thread (spawned with
//! `green::spawn` from it, checked with `gettid`); a blocking std call that
//! blocked that OS thread instead of parking its green thread would
//! deadlock, which the watchdog turns into a failure.

#[path = "common/identity.rs"]
mod identity;

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use identity::{assert_all_on_os_thread, os_tid, rss_bytes, wait_until, Watchdog, MIB};

/// How long any one test here may run before the watchdog ends the process.
const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn identity_is_per_green_thread() {
    identity::patch_with_identity();
}

#[test]
fn std_mpsc_ping_pong_of_1000_between_two_green_threads_with_both_channels_open() {
    green::patch();
    let _w = Watchdog::new("std mpsc ping-pong", LIMIT);
    const ROUNDS: u32 = 1000;
    let me = os_tid();
    let (ping_tx, ping_rx) = mpsc::channel::<u32>();
    let (pong_tx, pong_rx) = mpsc::channel::<u32>();
    // Neither side drops its ends before the end: a disconnect would wake a
    // receiver that a send failed to wake.
    let pinger = green::spawn(move || {
        for i in 0..ROUNDS {
            ping_tx.send(i).expect("the ponger listens");
            assert_eq!(pong_rx.recv().expect("the ponger answers"), i + 1);
        }
        (os_tid(), ping_tx, pong_rx)
    });
    let ponger = green::spawn(move || {
        for _ in 0..ROUNDS {
            let i = ping_rx.recv().expect("the pinger sends");
            pong_tx.send(i + 1).expect("the pinger listens");
        }
        (os_tid(), pong_tx, ping_rx)
    });
    let (a, ping_tx, pong_rx) = pinger.wait();
    let (b, pong_tx, ping_rx) = ponger.wait();
    assert_all_on_os_thread(&[a, b], me);
    drop((ping_tx, pong_rx, pong_tx, ping_rx));
}

#[test]
fn std_mpsc_recv_timeout_returns_when_another_green_thread_sends() {
    green::patch();
    let _w = Watchdog::new("std mpsc recv_timeout", LIMIT);
    let me = os_tid();
    // minreq's connect timeout has this shape: an mpsc::recv_timeout for a
    // send from elsewhere.
    let timeout = Duration::from_secs(30);
    let (tx, rx) = mpsc::channel::<u32>();
    // Spawned first, so that it runs first and waits in recv_timeout when
    // the sender sends.
    let receiver = green::spawn(move || {
        let start = Instant::now();
        let got = rx.recv_timeout(timeout);
        (got, start.elapsed(), os_tid(), rx)
    });
    let sender = green::spawn(move || {
        tx.send(7).expect("the receiver listens");
        (os_tid(), tx)
    });
    let (got, elapsed, a, rx) = receiver.wait();
    let (b, tx) = sender.wait();
    assert_eq!(got, Ok(7));
    // A receiver that the send did not wake would wait out its 30 s; the
    // send comes at once. 10 s is a wide margin for a loaded machine.
    assert!(
        elapsed < Duration::from_secs(10),
        "recv_timeout returned after {elapsed:?}: the send did not wake it"
    );
    assert_all_on_os_thread(&[a, b], me);
    drop((tx, rx));
}

#[test]
fn twenty_green_consumers_blocked_in_std_mpsc_recv_are_fed_by_one_green_producer() {
    green::patch();
    let _w = Watchdog::new("std mpsc consumers", LIMIT);
    identity::consumers_fed_by_one_producer(
        mpsc::channel::<u64>,
        |tx, m| tx.send(m).expect("the consumer listens"),
        |rx| rx.recv().expect("the producer keeps its senders"),
    );
}

/// Counts its drops into the counter it names.
struct CountsDrops(&'static AtomicUsize);

impl Drop for CountsDrops {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

thread_local! {
    static VALUE: Cell<u64> = const { Cell::new(0) };
}

#[test]
fn thread_local_is_per_green_thread() {
    green::patch();
    let _w = Watchdog::new("thread_local values", LIMIT);
    const THREADS: u64 = 10;
    let me = os_tid();
    VALUE.with(|v| v.set(u64::MAX));
    let threads: Vec<_> = (1..=THREADS)
        .map(|i| {
            green::spawn(move || {
                let fresh = VALUE.with(Cell::get);
                VALUE.with(|v| v.set(i));
                // The others run and set theirs meanwhile.
                green::yield_now();
                (fresh, VALUE.with(Cell::get), os_tid())
            })
        })
        .collect();
    let mut tids = Vec::new();
    for (i, g) in (1..=THREADS).zip(threads) {
        let (fresh, after, tid) = g.wait();
        assert_eq!(fresh, 0, "green thread {i} started with another's value");
        assert_eq!(after, i, "green thread {i} saw another's value");
        tids.push(tid);
    }
    assert_eq!(
        VALUE.with(Cell::get),
        u64::MAX,
        "the green threads changed the OS thread's value"
    );
    assert_all_on_os_thread(&tids, me);
}

static ENDED_DROPS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static ENDED: CountsDrops = const { CountsDrops(&ENDED_DROPS) };
}

#[test]
fn thread_local_destructor_runs_when_its_green_thread_ends() {
    green::patch();
    let _w = Watchdog::new("thread_local destructor at the end", LIMIT);
    const THREADS: usize = 10;
    let me = os_tid();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            green::spawn(|| {
                ENDED.with(|_| ());
                // All ten are alive at once.
                green::yield_now();
                os_tid()
            })
        })
        .collect();
    let tids: Vec<_> = threads.into_iter().map(green::GreenThread::wait).collect();
    assert_all_on_os_thread(&tids, me);
    // One destructor per green thread; none for the OS thread, which never
    // touched it.
    wait_until(
        "every green thread's thread_local destroyed",
        Duration::from_secs(10),
        || ENDED_DROPS.load(Ordering::SeqCst) >= THREADS,
    );
    assert_eq!(ENDED_DROPS.load(Ordering::SeqCst), THREADS);
}

static KILLED_DROPS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static KILLED: CountsDrops = const { CountsDrops(&KILLED_DROPS) };
}

#[test]
fn thread_local_destructor_runs_when_its_green_thread_is_killed_in_green_sleep() {
    green::patch();
    let _w = Watchdog::new("thread_local destructor at a kill", LIMIT);
    let baseline = green::hub::stats().green_threads;
    // The OS thread has its own, which must outlive the kill.
    KILLED.with(|_| ());
    let (touched_tx, touched_rx) = mpsc::channel();
    let g = green::spawn(move || {
        KILLED.with(|_| ());
        touched_tx.send(()).expect("the test listens");
        green::sleep(Duration::from_secs(3600));
        unreachable!("the kill unwinds from the sleep");
    });
    // It has touched its thread_local and parks in the sleep.
    touched_rx.recv().expect("the green thread reports");
    g.kill();
    let payload = g.join().expect_err("the green thread was killed");
    assert!(payload.is::<green::Killed>());
    wait_until(
        "the killed green thread's thread_local destroyed",
        Duration::from_secs(10),
        || KILLED_DROPS.load(Ordering::SeqCst) >= 1,
    );
    assert_eq!(
        KILLED_DROPS.load(Ordering::SeqCst),
        1,
        "only the killed green thread's thread_local is destroyed"
    );
    assert!(
        KILLED.try_with(|_| ()).is_ok(),
        "the OS thread's own thread_local was destroyed by the kill"
    );
    assert_eq!(green::hub::stats().green_threads, baseline);
}

#[test]
fn thread_current_id_differs_between_green_threads() {
    green::patch();
    let _w = Watchdog::new("thread::current", LIMIT);
    let me = os_tid();
    let root = thread::current().id();
    let ids = || -> (ThreadId, ThreadId, libc::pid_t) {
        let before = thread::current().id();
        // Both are alive at once; each parks between its two looks.
        green::yield_now();
        (before, thread::current().id(), os_tid())
    };
    let a = green::spawn(ids);
    let b = green::spawn(ids);
    let (a_before, a_after, a_tid) = a.wait();
    let (b_before, b_after, b_tid) = b.wait();
    assert_all_on_os_thread(&[a_tid, b_tid], me);
    assert_eq!(a_before, a_after, "green thread a changed thread id");
    assert_eq!(b_before, b_after, "green thread b changed thread id");
    assert_ne!(a_before, b_before, "two green threads share a thread id");
    assert_ne!(a_before, root, "a green thread has its OS thread's id");
    assert_ne!(b_before, root, "a green thread has its OS thread's id");
    assert_eq!(thread::current().id(), root);
}

static MANY_DROPS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MANY: (Cell<u64>, CountsDrops) = const { (Cell::new(0), CountsDrops(&MANY_DROPS)) };
}

#[test]
fn a_million_green_threads_with_thread_locals_leave_rss_flat_and_none_alive() {
    green::patch();
    // A million green threads, each with its own thread-local block: about
    // 9 s in a debug build on two cores, 1,000 alive at a time.
    const TOTAL: usize = 1_000_000;
    const BATCH: usize = 1000;
    const WARMUP: usize = 10_000;
    let _w = Watchdog::new("a million green threads", Duration::from_secs(600));
    let me = os_tid();
    let mut rss_after_warmup = 0;
    let start = Instant::now();
    for batch in 0..TOTAL / BATCH {
        let threads: Vec<_> = (0..BATCH)
            .map(|i| {
                green::spawn(move || {
                    MANY.with(|(v, _)| {
                        assert_eq!(v.get(), 0, "a fresh thread_local");
                        v.set(i as u64 + 1);
                    });
                    // The whole batch is alive at once.
                    green::yield_now();
                    assert_eq!(MANY.with(|(v, _)| v.get()), i as u64 + 1);
                    os_tid()
                })
            })
            .collect();
        let tids: Vec<_> = threads.into_iter().map(green::GreenThread::wait).collect();
        assert_all_on_os_thread(&tids, me);
        if (batch + 1) * BATCH == WARMUP {
            rss_after_warmup = rss_bytes();
        }
    }
    let elapsed = start.elapsed();
    wait_until(
        "every green thread's thread_local destroyed",
        Duration::from_secs(10),
        || MANY_DROPS.load(Ordering::SeqCst) >= TOTAL,
    );
    let rss_end = rss_bytes();
    println!(
        "{TOTAL} green threads in {elapsed:?}; RSS {} MiB after {WARMUP}, {} MiB after all",
        rss_after_warmup / MIB,
        rss_end / MIB
    );
    assert_eq!(MANY_DROPS.load(Ordering::SeqCst), TOTAL);
    assert_eq!(green::hub::stats().green_threads, 0);
    // A thread-local block (about 5 KiB) or a stack kept per finished green
    // thread would grow RSS by gigabytes over a million, and even std's
    // `thread::current()` handle (about 80 B) by more than the margin; 64 MiB
    // leaves room for allocator noise and the other tests of this binary.
    assert!(
        rss_end <= rss_after_warmup + 64 * MIB,
        "RSS grew from {} MiB after {WARMUP} green threads to {} MiB after {TOTAL}",
        rss_after_warmup / MIB,
        rss_end / MIB
    );
}

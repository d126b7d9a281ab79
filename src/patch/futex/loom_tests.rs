//! Every interleaving of the table's own code (`loom`), green contexts
//! being loom threads parked with loom's park (`shim::Hub`). Run with
//! `cargo rustc --profile test --lib -- --cfg loom`, then the test
//! binary with the filter `loom` (`LOOM_MAX_PREEMPTIONS` overrides each
//! model's bound; unset, each test uses the bound it names).

use super::shim::Hub;
use super::*;
use loom::thread;
use std::mem::MaybeUninit;

/// A table of the model's own (loom's objects live for one execution).
struct Owned {
    buckets: [Bucket; BUCKETS],
    waiting: AtomicUsize,
}

impl Owned {
    fn new() -> Arc<Owned> {
        Arc::new(Owned {
            buckets: std::array::from_fn(|_| Bucket::new()),
            waiting: AtomicUsize::new(0),
        })
    }

    fn table(&self) -> Table<'_> {
        Table {
            buckets: &self.buckets,
            waiting: &self.waiting,
        }
    }

    /// Waits as std's locks do: on `word` while it is 0.
    fn wait(&self, word: &AtomicU32, deadline: Option<Instant>) -> i32 {
        self.table().wait(&Hub::new(), word, 0, u32::MAX, deadline)
    }

    /// Changes `word` as a lock's release does, then wakes up to `n`.
    fn release(&self, word: &AtomicU32, n: i32) -> i32 {
        word.store(1, Ordering::Release);
        self.table().wake(addr(word), n, u32::MAX)
    }

    fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

/// A futex word at a fixed address. The bucket a word hashes to decides
/// which loom objects the table touches, in which order; a word on the
/// heap would move between executions, and loom replays an execution's
/// prefix only if the model is deterministic.
struct Word(std::cell::UnsafeCell<MaybeUninit<AtomicU32>>);

// SAFETY: each `Word` is a test's own and loom runs one execution at a
// time; within one, the word is only reached as a loom atomic.
unsafe impl Sync for Word {}

impl Word {
    const fn new() -> Word {
        Word(std::cell::UnsafeCell::new(MaybeUninit::uninit()))
    }

    /// The word, set to 0 for this execution (the last execution's
    /// atomic, a handle into its finished run, is overwritten).
    fn init(&'static self) -> &'static AtomicU32 {
        // SAFETY: one execution at a time, and every reference to the
        // word of the last one ended with it (its threads were joined).
        unsafe { (*self.0.get()).write(AtomicU32::new(0)) }
    }

    fn addr(&'static self) -> usize {
        self.0.get() as usize
    }
}

fn addr(word: &AtomicU32) -> usize {
    word as *const AtomicU32 as usize
}

/// Explores `f` with at most `preemptions` forced switches per
/// execution (unless `LOOM_MAX_PREEMPTIONS` says otherwise), and
/// prints how many executions that took.
fn model(name: &str, preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runs = Arc::new(AtomicUsize::new(0));
    let mut b = loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        b.preemption_bound = Some(preemptions);
    }
    let counted = runs.clone();
    b.check(move || {
        counted.fetch_add(1, Ordering::Relaxed);
        f()
    });
    eprintln!("{name}: {} executions", runs.load(Ordering::Relaxed));
}

/// The result of a waiter that no waker counted: only `EAGAIN` (it saw
/// the changed word) or a timeout may end such a wait; a park nobody
/// ends is reported by loom as a deadlock.
fn unwoken(r: i32) -> bool {
    r == libc::EAGAIN || r == libc::ETIMEDOUT
}

#[test]
fn loom_wake_never_falls_between_check_and_park() {
    static WORD: Word = Word::new();
    model("check_and_park", 3, || {
        let t = Owned::new();
        let word = WORD.init();
        let waiter = {
            let t = t.clone();
            thread::spawn(move || t.wait(word, None))
        };
        let woken = t.release(word, 1);
        let r = waiter.join().unwrap();
        // Woken by this wake, or never on the table.
        assert!(woken == 1 && r == 0 || woken == 0 && r == libc::EAGAIN);
        assert_eq!(t.waiting(), 0);
    });
}

#[test]
fn loom_timeout_racing_a_wake_is_counted_once() {
    static WORD: Word = Word::new();
    model("timeout_racing_wake", 3, || {
        let t = Owned::new();
        let word = WORD.init();
        let waiter = {
            let t = t.clone();
            thread::spawn(move || t.wait(word, Some(Instant::now())))
        };
        let woken = t.release(word, 1);
        let r = waiter.join().unwrap();
        // A waiter the wake took reports the wake, not its timeout.
        assert!(woken == 1 && r == 0 || woken == 0 && unwoken(r));
        assert_eq!(t.waiting(), 0);
    });
}

#[test]
fn loom_wake_one_wakes_exactly_one() {
    static WORD: Word = Word::new();
    model("wake_one", 2, || {
        let t = Owned::new();
        let word = WORD.init();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let t = t.clone();
                thread::spawn(move || t.wait(word, None))
            })
            .collect();
        let first = t.release(word, 1);
        assert!(first <= 1, "a wake of one woke {first}");
        let second = t.table().wake(addr(word), 1, u32::MAX);
        assert!(second <= 1, "a wake of one woke {second}");
        let rs: Vec<i32> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
        let parked = rs.iter().filter(|&&r| r == 0).count() as i32;
        assert!(rs.iter().all(|&r| r == 0 || unwoken(r)));
        assert_eq!(first + second, parked);
        assert_eq!(t.waiting(), 0);
    });
}

#[test]
fn loom_waiters_sharing_a_bucket_are_woken_by_address() {
    // One word more than buckets: two of them share a bucket.
    static WORDS: [Word; BUCKETS + 1] = [const { Word::new() }; BUCKETS + 1];
    let (i, j) = (0..=BUCKETS)
        .flat_map(|i| (i + 1..=BUCKETS).map(move |j| (i, j)))
        .find(|&(i, j)| bucket_of(WORDS[i].addr()) == bucket_of(WORDS[j].addr()))
        .unwrap();
    model("shared_bucket", 2, move || {
        let t = Owned::new();
        let words = [WORDS[i].init(), WORDS[j].init()];
        let waiters: Vec<_> = words
            .into_iter()
            .map(|word| {
                let t = t.clone();
                thread::spawn(move || t.wait(word, None))
            })
            .collect();
        let counts = words.map(|word| t.release(word, i32::MAX));
        for (w, woken) in waiters.into_iter().zip(counts) {
            let r = w.join().unwrap();
            // Never the other address's waiter.
            assert!(woken == 1 && r == 0 || woken == 0 && r == libc::EAGAIN);
        }
        assert_eq!(t.waiting(), 0);
    });
}

#[test]
fn loom_forget_closed_racing_a_wake_leaves_it_to_the_live_waiter() {
    static WORD: Word = Word::new();
    // At a bound of 2, loom finds an execution in which the live
    // waiter, alone runnable, reads a stale `locked` forever after the
    // last unlock (a store C11 makes visible in finite time; loom's
    // pruning of re-read stores after a yield misses it).
    model("forget_closed_racing_wake", 1, || {
        let t = Owned::new();
        let word = WORD.init();
        // A waiter whose hub was torn down while it was parked: first
        // in the list, it would take a wake of one.
        let hub = Hub::new();
        let dead = Arc::new(Waiter {
            addr: addr(word),
            bitset: u32::MAX,
            unparker: hub.unparker(),
            woken: AtomicBool::new(false),
        });
        t.table().enqueue(word, 0, &dead).unwrap();
        hub.close();
        let live = {
            let t = t.clone();
            thread::spawn(move || t.wait(word, None))
        };
        let forget = {
            let t = t.clone();
            thread::spawn(move || t.table().forget_closed())
        };
        let woken = t.release(word, 1);
        forget.join().unwrap();
        let r = live.join().unwrap();
        assert!(woken == 1 && r == 0 || woken == 0 && r == libc::EAGAIN);
        assert!(!dead.woken.load(Ordering::Relaxed));
        // The dead waiter was taken off once, by one of the two.
        assert_eq!(t.waiting(), 0);
    });
}

#[test]
fn loom_forget_all_empties_the_table() {
    static WORD: Word = Word::new();
    model("forget_all", 0, || {
        let t = Owned::new();
        let word = WORD.init();
        let w = Arc::new(Waiter {
            addr: addr(word),
            bitset: u32::MAX,
            unparker: Hub::new().unparker(),
            woken: AtomicBool::new(false),
        });
        t.table().enqueue(word, 0, &w).unwrap();
        // As a fork child sees it: a bucket locked by a thread that is
        // not there.
        std::mem::forget(t.table().lock(addr(word)));
        t.table().forget_all();
        assert_eq!(t.waiting(), 0);
        assert_eq!(t.table().wake(addr(word), 1, u32::MAX), 0);
        drop(t.table().lock(addr(word)));
    });
}

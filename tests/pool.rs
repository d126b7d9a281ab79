//! `green::GreenPool`, `GreenPile` and `imap`: bounded concurrency with
//! back-pressure, slots freed however a green thread ends, results in input
//! order.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use green::{Event, GreenPile, GreenPool};

/// Only guards against a hang: a wake-up that works arrives in microseconds.
const HANG: Duration = Duration::from_secs(60);

/// Counts green threads inside a section and remembers the most at once.
#[derive(Clone, Default)]
struct Gauge {
    inside: Rc<Cell<usize>>,
    most: Rc<Cell<usize>>,
}

impl Gauge {
    fn enter(&self) {
        self.inside.set(self.inside.get() + 1);
        self.most.set(self.most.get().max(self.inside.get()));
    }

    fn leave(&self) {
        self.inside.set(self.inside.get() - 1);
    }
}

/// Spawns `n` pool threads that wait for `go`.
fn fill(pool: &GreenPool, n: usize, go: &Event) -> Vec<green::GreenThread<()>> {
    (0..n)
        .map(|_| {
            let go = go.clone();
            pool.spawn(move || go.wait())
        })
        .collect()
}

/// Spawns a green thread that spawns into `pool` (waiting if it is full) and
/// then sets its flag.
fn spawner(pool: &Rc<GreenPool>, done: &Rc<Cell<bool>>) -> green::GreenThread<()> {
    let (pool, done) = (pool.clone(), done.clone());
    green::spawn(move || {
        pool.spawn(|| ());
        done.set(true);
    })
}

/// The counts that must come back to their starting values.
fn counts() -> (usize, usize) {
    let s = green::hub::stats();
    (s.green_threads, s.timers)
}

#[test]
fn new_pool_reports_its_slots() {
    let pool = GreenPool::new(4);
    assert_eq!(
        (pool.size(), pool.free(), pool.running(), pool.waiting()),
        (4, 4, 0, 0)
    );
    assert_eq!(GreenPool::default().size(), 1000);
}

#[test]
fn fifth_spawn_waits_while_four_run() {
    let pool = Rc::new(GreenPool::new(4));
    let go = Event::new();
    let workers = fill(&pool, 4, &go);
    assert_eq!((pool.running(), pool.free()), (4, 0));
    let fifth_done = Rc::new(Cell::new(false));
    let fifth = spawner(&pool, &fifth_done);
    green::yield_now(); // the four park on `go`; the fifth spawn waits
    assert!(!fifth_done.get(), "the fifth spawn returned while four ran");
    assert_eq!((pool.running(), pool.waiting(), pool.free()), (4, 1, 0));
    go.send(()).unwrap();
    fifth.wait();
    assert!(fifth_done.get());
    workers.into_iter().for_each(|w| w.wait());
    pool.waitall();
    assert_eq!((pool.running(), pool.waiting(), pool.free()), (0, 0, 4));
}

#[test]
fn a_finished_green_thread_hands_its_slot_to_the_first_waiting_spawner() {
    let pool = Rc::new(GreenPool::new(1));
    let go = Event::new();
    let worker = fill(&pool, 1, &go);
    let log = Rc::new(RefCell::new(Vec::new()));
    let spawners: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let (pool, log) = (pool.clone(), log.clone());
            green::spawn(move || {
                let log2 = log.clone();
                pool.spawn(move || log2.borrow_mut().push(name));
            })
        })
        .collect();
    green::yield_now();
    assert_eq!(pool.waiting(), 2);
    go.send(()).unwrap();
    worker.into_iter().for_each(|w| w.wait());
    spawners.into_iter().for_each(|s| s.wait());
    pool.waitall();
    assert_eq!(*log.borrow(), ["a", "b"]);
}

#[test]
fn waitall_waits_for_every_green_thread() {
    let pool = GreenPool::new(3);
    let finished = Rc::new(Cell::new(0));
    for i in 0..7u64 {
        let finished = finished.clone();
        pool.spawn_n(move || {
            green::sleep(Duration::from_millis(i % 3));
            finished.set(finished.get() + 1);
        });
    }
    pool.waitall();
    assert_eq!(finished.get(), 7);
    assert_eq!(pool.running(), 0);
}

#[test]
fn waitall_on_an_idle_pool_returns_at_once() {
    let pool = GreenPool::new(2);
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    green::spawn_n(move || r.set(true));
    pool.waitall();
    assert!(!ran.get(), "waitall parked on an idle pool");
}

#[test]
fn waitall_from_a_pool_thread_panics() {
    let pool = Rc::new(GreenPool::new(2));
    let p = pool.clone();
    let gt = pool.spawn(move || p.waitall());
    let payload = gt.join().unwrap_err();
    let msg = payload.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("GreenPool::waitall called from one of the pool's own green threads"),
        "{msg}"
    );
    assert_eq!(pool.free(), 2, "the panicking green thread freed its slot");
}

#[test]
fn timeout_around_waitall_leaves_the_pool_usable() {
    let pool = GreenPool::new(1);
    let go = Event::new();
    let workers = fill(&pool, 1, &go);
    let r = green::with_timeout(Duration::from_millis(20), || pool.waitall());
    assert!(r.is_err());
    go.send(()).unwrap();
    pool.waitall();
    workers.into_iter().for_each(|w| w.wait());
    assert_eq!(pool.free(), 1);
}

#[test]
fn slot_is_freed_when_a_pool_thread_panics() {
    let pool = GreenPool::new(1);
    let gt = pool.spawn(|| -> u8 { panic!("worker failed") });
    let payload = gt.join().unwrap_err();
    assert_eq!(*payload.downcast_ref::<&str>().unwrap(), "worker failed");
    assert_eq!((pool.free(), pool.running()), (1, 0));
    assert_eq!(pool.spawn(|| 1).wait(), 1);
}

#[test]
fn slot_is_freed_when_a_pool_thread_is_killed() {
    let before = counts();
    let pool = Rc::new(GreenPool::new(1));
    let sleeper = pool.spawn(|| green::sleep(HANG));
    let done = Rc::new(Cell::new(false));
    let waiting = spawner(&pool, &done);
    green::yield_now();
    assert_eq!(pool.waiting(), 1);
    sleeper.kill();
    assert!(sleeper.join().unwrap_err().is::<green::Killed>());
    waiting.wait();
    assert!(
        done.get(),
        "the waiting spawner got the killed thread's slot"
    );
    pool.waitall();
    assert_eq!(pool.free(), 1);
    assert_eq!(counts(), before);
}

#[test]
fn slot_is_freed_when_a_pool_thread_is_killed_before_it_starts() {
    let pool = GreenPool::new(1);
    let gt = pool.spawn(|| unreachable!("killed before it ran"));
    assert_eq!(pool.free(), 0);
    gt.kill();
    assert!(gt.join().unwrap_err().is::<green::Killed>());
    assert_eq!(pool.free(), 1);
}

#[test]
fn killed_spawner_leaves_the_queue() {
    let pool = Rc::new(GreenPool::new(1));
    let go = Event::new();
    let workers = fill(&pool, 1, &go);
    let done = Rc::new(Cell::new(false));
    let victim = spawner(&pool, &done);
    green::yield_now();
    assert_eq!(pool.waiting(), 1);
    victim.kill();
    assert_eq!(pool.waiting(), 0);
    go.send(()).unwrap();
    workers.into_iter().for_each(|w| w.wait());
    assert!(!done.get());
    assert_eq!((pool.free(), pool.running()), (1, 0));
}

#[test]
fn spawner_killed_after_being_handed_a_slot_gives_it_back() {
    let pool = Rc::new(GreenPool::new(1));
    let go = Event::new();
    let workers = fill(&pool, 1, &go);
    let done = Rc::new(Cell::new(false));
    let victim = spawner(&pool, &done);
    let next_done = Rc::new(Cell::new(false));
    let next = spawner(&pool, &next_done);
    green::yield_now();
    assert_eq!(pool.waiting(), 2);
    go.send(()).unwrap();
    // The worker runs, finishes and hands its slot to `victim`, which is
    // queued behind the root: it has not run when it is killed.
    green::yield_now();
    assert!(workers.iter().all(|w| w.is_finished()));
    assert_eq!((pool.running(), pool.waiting()), (1, 1));
    assert!(!done.get());
    victim.kill();
    assert!(victim.join().unwrap_err().is::<green::Killed>());
    next.wait();
    assert!(!done.get());
    assert!(next_done.get());
    pool.waitall();
    assert_eq!((pool.free(), pool.running(), pool.waiting()), (1, 0, 0));
}

#[test]
fn timeout_around_a_waiting_spawn_leaves_no_waiter() {
    let pool = GreenPool::new(1);
    let go = Event::new();
    let workers = fill(&pool, 1, &go);
    let r = green::with_timeout(Duration::from_millis(20), || pool.spawn(|| ()));
    assert!(r.is_err());
    assert_eq!((pool.waiting(), pool.running()), (0, 1));
    go.send(()).unwrap();
    workers.into_iter().for_each(|w| w.wait());
    assert_eq!(pool.free(), 1, "no slot was lost to the timed-out spawner");
}

#[test]
fn resize_up_lets_waiting_spawners_in() {
    let pool = Rc::new(GreenPool::new(1));
    let go = Event::new();
    let workers = fill(&pool, 1, &go);
    let flags: Vec<_> = (0..2).map(|_| Rc::new(Cell::new(false))).collect();
    let spawners: Vec<_> = flags.iter().map(|f| spawner(&pool, f)).collect();
    green::yield_now();
    assert_eq!(pool.waiting(), 2);
    pool.resize(3);
    assert_eq!((pool.size(), pool.running(), pool.waiting()), (3, 3, 0));
    spawners.into_iter().for_each(|s| s.wait());
    assert!(flags.iter().all(|f| f.get()));
    go.send(()).unwrap();
    workers.into_iter().for_each(|w| w.wait());
}

#[test]
fn resize_down_kills_nothing() {
    let pool = Rc::new(GreenPool::new(4));
    let go = Event::new();
    let workers = fill(&pool, 4, &go);
    green::yield_now();
    pool.resize(2);
    assert_eq!((pool.size(), pool.running(), pool.free()), (2, 4, 0));
    assert!(workers.iter().all(|w| !w.is_finished()));
    let done = Rc::new(Cell::new(false));
    let late = spawner(&pool, &done);
    green::yield_now();
    assert!(!done.get(), "the pool runs over its new size: spawn waits");
    go.send(()).unwrap();
    workers.into_iter().for_each(|w| w.wait());
    late.wait();
    assert!(done.get());
    pool.waitall();
    assert_eq!(pool.free(), 2);
}

#[test]
fn resize_down_runs_at_most_the_new_size() {
    let pool = GreenPool::new(4);
    pool.resize(2);
    let gauge = Gauge::default();
    for _ in 0..6 {
        let gauge = gauge.clone();
        pool.spawn_n(move || {
            gauge.enter();
            green::sleep(Duration::from_millis(1));
            gauge.leave();
        });
    }
    pool.waitall();
    assert_eq!(gauge.most.get(), 2);
}

#[test]
fn spawn_n_frees_its_slot() {
    let pool = GreenPool::new(1);
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    pool.spawn_n(move || r.set(true));
    pool.waitall();
    assert!(ran.get());
    assert_eq!(pool.free(), 1);
}

#[test]
fn imap_yields_results_in_input_order() {
    let pool = GreenPool::new(4);
    // Later items finish first.
    let out: Vec<u64> = pool
        .imap(
            |i: u64| {
                green::sleep(Duration::from_millis(10 - i));
                i * 10
            },
            0..10,
        )
        .collect();
    assert_eq!(out, (0..10).map(|i| i * 10).collect::<Vec<_>>());
}

#[test]
fn imap_runs_at_most_size_at_once() {
    let pool = GreenPool::new(3);
    let gauge = Gauge::default();
    let g = gauge.clone();
    let n = pool
        .imap(
            move |i: u64| {
                g.enter();
                green::sleep(Duration::from_millis(i % 4));
                g.leave();
            },
            0..12,
        )
        .count();
    assert_eq!(n, 12);
    assert_eq!(gauge.most.get(), 3);
}

#[test]
fn imap_pulls_its_input_lazily() {
    const SIZE: usize = 3;
    let pool = GreenPool::new(SIZE);
    let pulled = Rc::new(Cell::new(0));
    let p = pulled.clone();
    let input = (0..20).inspect(move |_| p.set(p.get() + 1));
    let mut results = pool.imap(|i: usize| i, input);
    assert_eq!(pulled.get(), 0, "nothing is pulled before the first result");
    for consumed in 1..=20 {
        assert_eq!(results.next(), Some(consumed - 1));
        assert!(
            pulled.get() < consumed + SIZE,
            "pulled {} items for {consumed} results",
            pulled.get()
        );
    }
    assert_eq!(results.next(), None);
    assert_eq!(pulled.get(), 20);
}

#[test]
fn imap_of_empty_input_yields_nothing() {
    let pool = GreenPool::new(2);
    assert_eq!(pool.imap(|i: u8| i, []).next(), None);
}

#[test]
fn panic_in_imap_function_resumes_in_the_consumer() {
    let pool = GreenPool::new(2);
    let mut results = pool.imap(
        |i: u32| {
            if i == 2 {
                panic!("bad item {i}");
            }
            i
        },
        0..5,
    );
    assert_eq!(results.next(), Some(0));
    assert_eq!(results.next(), Some(1));
    let p = panic::catch_unwind(AssertUnwindSafe(|| results.next())).unwrap_err();
    assert_eq!(p.downcast_ref::<String>().unwrap(), "bad item 2");
    drop(results);
    pool.waitall();
    assert_eq!(pool.free(), 2);
}

#[test]
fn starmap_spreads_each_tuple_over_the_arguments() {
    let pool = GreenPool::new(2);
    let out: Vec<String> = pool
        .starmap(
            |a: u8, b: char, c: &'static str| format!("{a}{b}{c}"),
            vec![(1, 'x', "!"), (2, 'y', "?")],
        )
        .collect();
    assert_eq!(out, ["1x!", "2y?"]);
    let one: Vec<u8> = pool.starmap(|a: u8| a + 1, [(1,)]).collect();
    assert_eq!(one, [2]);
}

#[test]
fn pile_yields_results_in_spawn_order() {
    let mut pile = GreenPile::new(4);
    for i in 0..8u64 {
        pile.spawn(move || {
            green::sleep(Duration::from_millis(8 - i));
            i
        });
    }
    assert_eq!(pile.len(), 8);
    let out: Vec<u64> = pile.by_ref().collect();
    assert_eq!(out, (0..8).collect::<Vec<_>>());
    assert!(pile.is_empty());
}

#[test]
fn pile_with_pool_shares_its_slots() {
    let pool = Rc::new(GreenPool::new(2));
    let go = Event::new();
    let workers = fill(&pool, 1, &go);
    let pile_done = Rc::new(Cell::new(false));
    let pile_spawner = {
        let (pool, go, done) = (pool.clone(), go.clone(), pile_done.clone());
        green::spawn(move || {
            let mut pile = GreenPile::with_pool(&pool);
            for i in 0..2 {
                let go = go.clone();
                pile.spawn(move || {
                    go.wait();
                    i
                });
            }
            done.set(true);
            pile.collect::<Vec<_>>()
        })
    };
    green::yield_now();
    // One slot went to the pool's own worker, one to the pile: its second
    // spawn waits.
    assert!(!pile_done.get());
    assert_eq!((pool.running(), pool.waiting()), (2, 1));
    go.send(()).unwrap();
    assert_eq!(pile_spawner.wait(), [0, 1]);
    workers.into_iter().for_each(|w| w.wait());
    pool.waitall();
    assert_eq!(pool.free(), 2);
}

#[test]
fn pile_resumes_a_panic_in_the_consumer() {
    let mut pile = GreenPile::new(2);
    pile.spawn(|| 1);
    pile.spawn(|| panic!("pile item failed"));
    assert_eq!(pile.next(), Some(1));
    let p = panic::catch_unwind(AssertUnwindSafe(|| pile.next())).unwrap_err();
    assert_eq!(*p.downcast_ref::<&str>().unwrap(), "pile item failed");
    assert_eq!(pile.next(), None);
}

#[test]
fn spawner_waiting_for_a_slot_is_let_in_by_a_wake_from_another_os_thread() {
    let pool = Rc::new(GreenPool::new(1));
    let go = Event::new();
    let sent = Arc::new(AtomicBool::new(false));
    let worker = {
        let go = go.clone();
        pool.spawn(move || go.wait_timeout(HANG))
    };
    let (go2, sent2) = (go.clone(), sent.clone());
    let sender = std::thread::spawn(move || {
        // A plain OS thread sends once the worker waits.
        while format!("{go2:?}") != "Event { ready: false, waiters: 1, watching: 0 }" {
            std::thread::yield_now();
        }
        sent2.store(true, Ordering::SeqCst);
        go2.send(()).unwrap();
    });
    // The root waits in `spawn` for the worker's slot.
    let second = pool.spawn(|| 2);
    assert!(sent.load(Ordering::SeqCst));
    assert_eq!(worker.wait(), Some(()));
    assert_eq!(second.wait(), 2);
    sender.join().unwrap();
}

#[test]
fn pools_on_two_hubs_run_independently() {
    let other = std::thread::spawn(|| {
        let pool = GreenPool::new(2);
        pool.imap(|i: u32| i + 1, 0..5).sum::<u32>()
    });
    let pool = GreenPool::new(2);
    let here: u32 = pool.imap(|i: u32| i * 2, 0..5).sum();
    assert_eq!((here, other.join().unwrap()), (20, 15));
}

/// A pool thread that spawns into its own full pool would wait for a slot
/// only it can free; the function runs inline instead, as in eventlet.
#[test]
fn spawn_from_a_pool_thread_of_a_full_pool_runs_inline() {
    let pool = std::rc::Rc::new(green::GreenPool::new(1));
    let p = pool.clone();
    let outer = pool.spawn(move || {
        let me = green::current_id();
        let inner = p.spawn(green::current_id);
        assert_eq!(p.running(), 1);
        let ran_in = inner.wait();
        let bad = p.spawn(|| -> u8 { panic!("kept in the handle") });
        let err = bad.join().unwrap_err();
        assert_eq!(*err.downcast_ref::<&str>().unwrap(), "kept in the handle");
        (me, ran_in)
    });
    let (me, ran_in) = outer.wait();
    assert_eq!(me, ran_in);
    pool.waitall();
    assert_eq!(pool.running(), 0);
}

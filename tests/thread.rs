//! `green::thread`: std's thread API where every thread is a green thread.
//! Spawn and join, names, stack sizes, park/unpark across green threads,
//! hubs and plain OS threads, `current`, scoped threads (panics, kills and
//! timeouts of the owner, thread exit), and the Send/Sync bounds of std.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe, RefUnwindSafe, UnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use green::thread::{self, Builder, JoinHandle, Scope, ScopedJoinHandle, Thread, ThreadId};

mod common;

/// Parks until `flag` is set. Fails if no unpark arrives within 10 s: a
/// lost unpark shows as a failure, not a hang.
fn park_until_set(flag: &AtomicBool) {
    let start = Instant::now();
    while !flag.load(Ordering::Acquire) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no unpark arrived within 10 s"
        );
        thread::park_timeout(Duration::from_secs(10));
    }
}

#[test]
fn join_returns_the_value() {
    let h = thread::spawn(|| 6 * 7);
    assert_eq!(h.join().unwrap(), 42);
}

#[test]
fn join_gives_the_panic_payload() {
    let h = thread::spawn(|| -> u8 { panic!("thread fails") });
    let payload = h.join().unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"thread fails"));
}

#[test]
fn builder_name_is_seen_by_current_inside() -> std::io::Result<()> {
    let h = Builder::new()
        .name("worker-7".to_string())
        .spawn(|| thread::current().name().map(String::from))?;
    assert_eq!(h.thread().name(), Some("worker-7"));
    assert_eq!(h.join().unwrap().as_deref(), Some("worker-7"));
    Ok(())
}

/// The message of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    match payload.downcast_ref::<String>() {
        Some(s) => s,
        None => payload.downcast_ref::<&str>().copied().unwrap_or(""),
    }
}

#[test]
fn thread_name_with_nul_panics_at_spawn() {
    // Naming does not panic; spawning does, with std's message.
    let green_b = Builder::new().name("a\0b".to_string());
    let std_b = std::thread::Builder::new().name("a\0b".to_string());
    let green_p = panic::catch_unwind(AssertUnwindSafe(|| green_b.spawn(|| ()))).unwrap_err();
    let std_p = panic::catch_unwind(AssertUnwindSafe(|| std_b.spawn(|| ()))).unwrap_err();
    assert!(panic_message(&*std_p).starts_with("thread name may not contain interior null bytes"));
    assert_eq!(panic_message(&*green_p), panic_message(&*std_p));
}

#[test]
fn thread_name_with_nul_panics_at_spawn_scoped() {
    let p = panic::catch_unwind(|| {
        thread::scope(|s| {
            let b = Builder::new().name("\0".to_string());
            let _ = b.spawn_scoped(s, || ());
        })
    })
    .unwrap_err();
    assert!(panic_message(&*p).starts_with("thread name may not contain interior null bytes"));
}

#[test]
fn unnamed_thread_has_no_name_and_root_has_its_os_threads() {
    let h = thread::spawn(|| thread::current().name().is_none());
    assert!(h.join().unwrap());
    assert_eq!(thread::current().name(), std::thread::current().name());
}

/// Recurses `n` deep with 1 KiB of stack per frame.
fn deep(n: u32) -> u64 {
    let buf = std::hint::black_box([n as u8; 1024]);
    if n == 0 {
        0
    } else {
        deep(n - 1) + u64::from(buf[n as usize % 1024])
    }
}

#[test]
fn stack_size_is_honoured() -> std::io::Result<()> {
    // About 3 MiB of frames: far past the default stack (256 KiB), which
    // would overflow and abort the process.
    let depth = 3000;
    let h = Builder::new()
        .stack_size(32 << 20)
        .spawn(move || deep(depth))?;
    let expected: u64 = (1..=depth).map(|n| u64::from(n as u8)).sum();
    assert_eq!(h.join().unwrap(), expected);
    Ok(())
}

#[test]
fn unpark_from_another_green_thread_wakes_park() {
    let flag = Arc::new(AtomicBool::new(false));
    let slot: Rc<RefCell<Option<Thread>>> = Rc::default();
    let (f, s) = (flag.clone(), slot.clone());
    // Spawned with `green::spawn`: its handle is made on demand by `current`.
    let parked = green::spawn(move || {
        *s.borrow_mut() = Some(thread::current());
        park_until_set(&f);
    });
    green::yield_now(); // it hands out its handle and parks
    let target = slot
        .borrow_mut()
        .take()
        .expect("the parked thread's handle");
    let f = flag.clone();
    let unparker = green::spawn(move || {
        f.store(true, Ordering::Release);
        target.unpark();
    });
    unparker.wait();
    parked.wait();
}

#[test]
fn unpark_from_a_green_thread_of_another_hub_wakes_park() {
    let flag = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel::<Thread>();
    let f = flag.clone();
    let parked = thread::spawn(move || {
        tx.send(thread::current()).unwrap();
        park_until_set(&f);
    });
    let f = flag.clone();
    let other_hub = std::thread::spawn(move || {
        let target = rx.recv().unwrap();
        thread::spawn(move || {
            f.store(true, Ordering::Release);
            target.unpark();
        })
        .join()
        .unwrap();
    });
    parked.join().unwrap(); // the root parks: the hub runs `parked`
    other_hub.join().unwrap();
}

#[test]
fn unpark_from_a_plain_os_thread_wakes_park() {
    let flag = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel::<Thread>();
    let f = flag.clone();
    let parked = thread::spawn(move || {
        tx.send(thread::current()).unwrap();
        park_until_set(&f);
    });
    let f = flag.clone();
    let plain = std::thread::spawn(move || {
        let target = rx.recv().unwrap();
        f.store(true, Ordering::Release);
        target.unpark();
    });
    parked.join().unwrap();
    plain.join().unwrap();
}

#[test]
fn root_park_runs_the_hub_until_unparked() {
    let flag = Arc::new(AtomicBool::new(false));
    let me = thread::current();
    let f = flag.clone();
    // Detached: it runs only because the root's park runs the hub.
    drop(thread::spawn(move || {
        f.store(true, Ordering::Release);
        me.unpark();
    }));
    park_until_set(&flag);
}

#[test]
fn root_park_is_woken_from_a_plain_os_thread() {
    let flag = Arc::new(AtomicBool::new(false));
    let me = thread::current();
    let f = flag.clone();
    let plain = std::thread::spawn(move || {
        f.store(true, Ordering::Release);
        me.unpark();
    });
    park_until_set(&flag);
    plain.join().unwrap();
}

#[test]
fn unpark_before_park_makes_park_return_at_once() {
    thread::current().unpark();
    thread::park(); // the token is there: no wait
    let h = thread::spawn(|| {
        thread::current().unpark();
        thread::park();
        1
    });
    assert_eq!(h.join().unwrap(), 1);
}

#[test]
fn tokens_do_not_add_up() {
    let me = thread::current();
    me.unpark();
    me.unpark();
    thread::park(); // takes the one token
    let start = Instant::now();
    thread::park_timeout(Duration::from_millis(50));
    // No second token: the park lasts its whole timeout.
    assert!(start.elapsed() >= Duration::from_millis(50));
}

#[test]
#[allow(deprecated)]
fn sleep_ms_parks_only_the_green_thread() {
    let start = Instant::now();
    let sleepers: Vec<_> = (0..100)
        .map(|_| thread::spawn(|| thread::sleep_ms(50)))
        .collect();
    for s in sleepers {
        s.join().unwrap();
    }
    // Back to back, 100 sleeps of 50 ms take 5 s; overlapping, about 50 ms.
    // Margin: half the sequential time, 50 times the expected one.
    assert!(start.elapsed() < Duration::from_millis(2500));
}

#[test]
#[allow(deprecated)]
fn park_timeout_ms_is_woken_by_unpark() {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let parked = thread::spawn(move || {
        while !f.load(Ordering::Acquire) {
            thread::park_timeout_ms(10_000);
        }
    });
    thread::yield_now(); // it parks
    flag.store(true, Ordering::Release);
    parked.thread().unpark();
    let start = Instant::now();
    parked.join().unwrap();
    // Margin: woken at once, not after its 10 s.
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn park_timeout_times_out() {
    let start = Instant::now();
    thread::park_timeout(Duration::from_millis(50));
    let took = start.elapsed();
    // Margin: never early; up to 5 s late on a loaded machine.
    assert!(took >= Duration::from_millis(50), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let in_green = thread::spawn(|| {
        let start = Instant::now();
        thread::park_timeout(Duration::from_millis(50));
        start.elapsed()
    });
    let took = in_green.join().unwrap();
    assert!(took >= Duration::from_millis(50), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn current_is_one_thread_within_a_thread_and_distinct_across() {
    let h = thread::spawn(|| (thread::current().id(), thread::current().id()));
    let id = h.thread().id();
    let (a, b) = h.join().unwrap();
    assert_eq!(a, b);
    assert_eq!(a, id);
    let other = thread::spawn(|| thread::current().id()).join().unwrap();
    assert_ne!(other, a);
    let root = thread::current().id();
    assert_eq!(root, thread::current().id());
    assert_ne!(root, a);
    let (g1, g2) = green::spawn(|| (thread::current().id(), thread::current().id())).wait();
    assert_eq!(g1, g2);
    assert_ne!(g1, a);
    assert_ne!(g1, root);
    let other_root = std::thread::spawn(|| thread::current().id())
        .join()
        .unwrap();
    assert_ne!(other_root, root);
}

#[test]
fn is_finished_turns_true_when_the_thread_ends() {
    let go = green::Event::new();
    let g = go.clone();
    let h = thread::spawn(move || g.wait());
    assert!(!h.is_finished()); // not run yet
    thread::yield_now(); // it starts and blocks
    assert!(!h.is_finished());
    go.send(()).unwrap();
    thread::yield_now(); // it runs to its end
    assert!(h.is_finished());
    h.join().unwrap();
}

const fn assert_send_sync<T: Send + Sync>() {}
const fn assert_unwind_safe<T: UnwindSafe + RefUnwindSafe>() {}
const fn assert_clone<T: Clone>() {}
const fn assert_id_traits<T: Copy + Eq + std::hash::Hash + std::fmt::Debug>() {}

// Send sync bounds are std's: checked when this file compiles.
const _: () = {
    assert_send_sync::<Thread>();
    assert_unwind_safe::<Thread>();
    assert_clone::<Thread>();
    assert_send_sync::<ThreadId>();
    assert_id_traits::<ThreadId>();
    // As std's: a JoinHandle is Send and Sync whatever `T` (making one
    // requires `T: Send`).
    assert_send_sync::<JoinHandle<Rc<u8>>>();
    assert_send_sync::<JoinHandle<Cell<u8>>>();
    assert_send_sync::<ScopedJoinHandle<'static, Cell<u8>>>();
    assert_send_sync::<Scope<'static, 'static>>();
    assert_send_sync::<Builder>();
};

#[test]
fn sleep_parks_only_the_green_thread() {
    let start = Instant::now();
    let sleepers: Vec<_> = (0..100)
        .map(|_| thread::spawn(|| thread::sleep(Duration::from_millis(50))))
        .collect();
    for s in sleepers {
        s.join().unwrap();
    }
    // Back to back, 100 sleeps of 50 ms take 5 s; overlapping, about 50 ms.
    // Margin: half the sequential time, 50 times the expected one.
    assert!(start.elapsed() < Duration::from_millis(2500));
}

#[test]
fn scope_threads_borrow_locals() {
    let words = ["a", "bb", "ccc"];
    let mut total = 0;
    let lens = thread::scope(|s| {
        let h = s.spawn(|| words.iter().map(|w| w.len()).collect::<Vec<_>>());
        s.spawn(|| total = words.len());
        h.join().unwrap()
    });
    assert_eq!(lens, [1, 2, 3]);
    assert_eq!(total, 3);
}

#[test]
fn scope_waits_for_unjoined_threads() {
    let done = AtomicUsize::new(0);
    thread::scope(|s| {
        for i in 0..10 {
            let done = &done;
            s.spawn(move || {
                thread::sleep(Duration::from_millis(i));
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    assert_eq!(done.load(Ordering::SeqCst), 10);
}

#[test]
fn scope_panics_after_all_threads_finish_when_one_panicked() {
    let slow_done = AtomicBool::new(false);
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        thread::scope(|s| {
            s.spawn(|| panic!("scoped thread fails"));
            s.spawn(|| {
                thread::sleep(Duration::from_millis(20));
                slow_done.store(true, Ordering::SeqCst);
            });
        })
    }));
    let payload = r.unwrap_err();
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"a scoped thread panicked")
    );
    assert!(slow_done.load(Ordering::SeqCst));
}

#[test]
fn joined_panic_does_not_make_scope_panic() {
    let v = thread::scope(|s| {
        let h = s.spawn(|| panic!("handled"));
        assert!(h.join().is_err());
        5
    });
    assert_eq!(v, 5);
}

#[test]
fn scope_resumes_the_closure_panic_after_threads_finish() {
    let slow_done = AtomicBool::new(false);
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        thread::scope(|s| {
            s.spawn(|| {
                thread::sleep(Duration::from_millis(20));
                slow_done.store(true, Ordering::SeqCst);
            });
            panic!("the closure fails");
        })
    }));
    let payload = r.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"the closure fails"));
    assert!(slow_done.load(Ordering::SeqCst));
}

#[test]
fn scoped_thread_can_spawn_into_its_scope() {
    let hits = AtomicUsize::new(0);
    thread::scope(|s| {
        s.spawn(|| {
            hits.fetch_add(1, Ordering::SeqCst);
            s.spawn(|| hits.fetch_add(1, Ordering::SeqCst));
        });
    });
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

/// Records, when dropped, how many scoped threads had finished.
struct Probe {
    finished: Arc<AtomicUsize>,
    seen: Rc<Cell<Option<usize>>>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.seen.set(Some(self.finished.load(Ordering::SeqCst)));
    }
}

/// Spawns a green thread that runs a scope of three threads, each waiting
/// for `release`; `before_wait` runs in the scope's closure after spawning.
fn scope_owner(
    release: &green::Event,
    finished: &Arc<AtomicUsize>,
    seen: &Rc<Cell<Option<usize>>>,
    returned: &Rc<Cell<bool>>,
    before_wait: fn(),
) -> green::GreenThread<()> {
    let (release, finished, seen, returned) = (
        release.clone(),
        finished.clone(),
        seen.clone(),
        returned.clone(),
    );
    green::spawn(move || {
        let _probe = Probe {
            finished: finished.clone(),
            seen,
        };
        thread::scope(|s| {
            for _ in 0..3 {
                let (release, finished) = (release.clone(), finished.clone());
                s.spawn(move || {
                    release.wait();
                    finished.fetch_add(1, Ordering::SeqCst);
                });
            }
            before_wait();
        });
        returned.set(true);
    })
}

#[test]
fn kill_of_scope_owner_waits_for_its_scoped_threads() {
    let release = green::Event::new();
    let finished = Arc::new(AtomicUsize::new(0));
    let seen = Rc::new(Cell::new(None));
    let returned = Rc::new(Cell::new(false));
    let owner = scope_owner(&release, &finished, &seen, &returned, || {});
    green::yield_now(); // the owner spawns its threads and waits for them
    green::yield_now(); // they park on `release`
    owner.kill();
    assert!(
        !owner.is_finished(),
        "the kill waits for the scoped threads"
    );
    assert_eq!(finished.load(Ordering::SeqCst), 0);
    release.send(()).unwrap();
    let err = owner.join().unwrap_err();
    assert!(err.is::<green::Killed>());
    // The scoped threads were not killed: all three ran to their end
    // before the owner unwound.
    assert_eq!(seen.get(), Some(3));
    assert!(!returned.get());
}

#[test]
fn kill_inside_scope_closure_waits_for_its_scoped_threads() {
    let release = green::Event::new();
    let finished = Arc::new(AtomicUsize::new(0));
    let seen = Rc::new(Cell::new(None));
    let returned = Rc::new(Cell::new(false));
    // The closure itself parks: the kill unwinds it at once, then the
    // scope waits for its threads before the unwind goes on.
    let owner = scope_owner(&release, &finished, &seen, &returned, || {
        green::sleep(Duration::from_secs(3600))
    });
    green::yield_now(); // the owner spawns its threads and sleeps
    green::yield_now(); // they park on `release`
    owner.kill();
    assert!(!owner.is_finished());
    release.send(()).unwrap();
    assert!(owner.join().unwrap_err().is::<green::Killed>());
    assert_eq!(seen.get(), Some(3));
    assert!(!returned.get());
}

/// Kills a green thread that holds a green lock around a scope whose one
/// thread waits for an event; `in_closure` makes the scope's closure park
/// too, so that the kill unwinds it before the scope waits. Returns whether
/// the lock was poisoned.
fn kill_scope_owner_holding_a_lock(in_closure: bool) -> bool {
    let lock = Arc::new(green::sync::Mutex::new(0));
    let release = green::Event::new();
    let owner = green::spawn({
        let (lock, release) = (lock.clone(), release.clone());
        move || {
            let _guard = lock.lock().unwrap();
            thread::scope(|s| {
                s.spawn(|| release.wait());
                if in_closure {
                    green::sleep(Duration::from_secs(3600));
                }
            });
        }
    });
    green::yield_now(); // the owner locks, spawns and parks
    green::yield_now(); // the scoped thread parks
    owner.kill();
    release.send(()).unwrap();
    assert!(owner.join().unwrap_err().is::<green::Killed>());
    lock.is_poisoned()
}

#[test]
fn kill_of_scope_owner_does_not_poison_its_locks() {
    assert!(!kill_scope_owner_holding_a_lock(false));
}

#[test]
fn kill_inside_scope_closure_does_not_poison_its_locks() {
    assert!(!kill_scope_owner_holding_a_lock(true));
}

#[test]
fn kill_during_scope_wait_after_a_closure_panic_comes_after_the_panic() {
    let release = green::Event::new();
    let caught = Rc::new(Cell::new(false));
    let owner = green::spawn({
        let (release, caught) = (release.clone(), caught.clone());
        move || {
            let r = panic::catch_unwind(AssertUnwindSafe(|| {
                thread::scope(|s| {
                    s.spawn(|| release.wait());
                    panic!("the closure fails");
                })
            }));
            // The scope resumed the closure's panic; the kill that came
            // meanwhile is delivered at the next park.
            assert!(r.is_err());
            caught.set(true);
            green::sleep(Duration::from_secs(3600));
        }
    });
    green::yield_now(); // the closure spawns, panics; the scope waits
    green::yield_now(); // the scoped thread parks
    owner.kill();
    assert!(!owner.is_finished());
    release.send(()).unwrap();
    assert!(owner.join().unwrap_err().is::<green::Killed>());
    assert!(caught.get());
}

#[test]
fn timeout_of_scope_owner_waits_for_its_scoped_threads() {
    let done = AtomicBool::new(false);
    let start = Instant::now();
    let r = green::with_timeout(Duration::from_millis(10), || {
        thread::scope(|s| {
            s.spawn(|| {
                thread::sleep(Duration::from_millis(100));
                done.store(true, Ordering::SeqCst);
            });
        });
    });
    assert!(
        r.is_err(),
        "the timeout is delivered once the scope is done"
    );
    assert!(done.load(Ordering::SeqCst));
    // The scoped thread slept 100 ms before the scope could give up.
    assert!(start.elapsed() >= Duration::from_millis(100));
}

/// Logs its name when dropped.
struct Noted(&'static str, Arc<Mutex<Vec<String>>>);

impl Drop for Noted {
    fn drop(&mut self) {
        self.1.lock().unwrap().push(format!("{} dropped", self.0));
    }
}

#[test]
fn scoped_threads_unwind_before_their_owner_at_thread_exit() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    std::thread::spawn(move || {
        green::spawn_n(move || {
            let local = Noted("owner's local", l.clone());
            thread::scope(|s| {
                s.spawn(|| {
                    // Unwound at thread exit while it borrows `local`.
                    let _borrower = Noted(local.0, local.1.clone());
                    thread::sleep(Duration::from_secs(3600));
                });
            });
        });
        green::yield_now(); // the owner spawns its scoped thread and waits
        green::yield_now(); // the scoped thread parks; then the OS thread exits
    })
    .join()
    .unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        ["owner's local dropped", "owner's local dropped"]
    );
}

/// Parks until its flag is set, when dropped.
struct ParkOnDrop(Arc<AtomicBool>);

impl Drop for ParkOnDrop {
    fn drop(&mut self) {
        while !self.0.load(Ordering::Acquire) {
            thread::park();
        }
    }
}

#[test]
fn park_in_a_destructor_at_thread_exit_is_woken_from_another_os_thread() {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let exiting = std::thread::spawn(move || {
        green::spawn_n(move || {
            let _g = ParkOnDrop(f);
            tx.send((thread::current(), common::tid())).unwrap();
            thread::sleep(Duration::from_secs(3600));
        });
        // It parks in its sleep; then the OS thread exits and unwinds it.
        green::yield_now();
    });
    let (target, tid) = rx.recv().unwrap();
    // The exiting thread first sleeps in the kernel once its hub, torn
    // down, can no longer park the destructor: it blocks the OS thread.
    common::wait_until_sleeping(tid);
    flag.store(true, Ordering::Release);
    target.unpark();
    exiting.join().unwrap();
}

#[test]
fn thread_unwound_at_os_thread_exit_joins_as_killed() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let h = thread::spawn(|| thread::sleep(Duration::from_secs(3600)));
        thread::yield_now(); // it parks; then the OS thread exits
        tx.send(h).unwrap();
    })
    .join()
    .unwrap();
    let h = rx.recv().unwrap();
    assert!(h.join().unwrap_err().is::<green::Killed>());
}

#[test]
fn thread_never_started_before_os_thread_exit_joins_as_killed() {
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let h = std::thread::spawn(move || thread::spawn(move || r.store(true, Ordering::SeqCst)))
        .join()
        .unwrap();
    assert!(h.join().unwrap_err().is::<green::Killed>());
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn join_from_a_plain_os_thread() {
    let h = thread::spawn(|| {
        thread::sleep(Duration::from_millis(20));
        7
    });
    let (tx, rx) = green::sync::mpsc::channel();
    // The plain thread blocks in `join`; the root parks in `recv`, so the
    // hub runs the green thread meanwhile.
    let joiner = std::thread::spawn(move || tx.send(h.join().unwrap()).unwrap());
    assert_eq!(rx.recv().unwrap(), 7);
    joiner.join().unwrap();
}

#[test]
fn park_is_a_kill_point() {
    let gt = green::spawn(thread::park);
    green::yield_now(); // it parks
    gt.kill();
    assert!(gt.join().unwrap_err().is::<green::Killed>());
}

#[test]
fn unpark_after_the_thread_ended_does_nothing() {
    let h = thread::spawn(thread::current);
    let t = h.join().unwrap();
    t.unpark();
    // The slot may be reused: a new green thread is not woken by it.
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let next = thread::spawn(move || park_until_set(&f));
    thread::yield_now(); // it parks
    t.unpark();
    thread::yield_now();
    assert!(!next.is_finished());
    flag.store(true, Ordering::Release);
    next.thread().unpark();
    next.join().unwrap();
}

#[test]
fn scope_records_its_owner() {
    let owner = thread::current().id();
    thread::scope(|s| {
        let text = format!("{s:?}");
        assert!(text.contains(&format!("{owner:?}")), "{text}");
    });
}

#[test]
fn scoped_thread_result_is_dropped_before_scope_returns() {
    struct Pushes<'a>(&'a Mutex<Vec<&'static str>>);
    impl Drop for Pushes<'_> {
        fn drop(&mut self) {
            self.0.lock().unwrap().push("result dropped");
        }
    }
    let log = Mutex::new(Vec::new());
    thread::scope(|s| {
        // Not joined: its result, which borrows `log`, lives in the packet
        // until the thread has ended, and is dropped before `scope` returns.
        s.spawn(|| Pushes(&log));
    });
    log.lock().unwrap().push("scope returned");
    assert_eq!(*log.lock().unwrap(), ["result dropped", "scope returned"]);
}

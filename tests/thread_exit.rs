//! Green threads still alive when their OS thread exits: they are unwound
//! (destructors run) without hanging, crashing or aborting.

use std::cell::Cell;
use std::process::Command;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Count(Arc<AtomicUsize>);

impl Drop for Count {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A destructor that joins another green thread, run at thread exit.
struct JoinOnDrop(Option<green::GreenThread<()>>, Arc<AtomicUsize>);

impl Drop for JoinOnDrop {
    fn drop(&mut self) {
        let joined = self.0.take().expect("joined once").join();
        // The other green thread is being torn down too: it never finishes.
        assert!(joined.unwrap_err().is::<green::Killed>());
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn join_in_destructor_at_thread_exit_does_not_hang() {
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    std::thread::spawn(move || {
        let worker = green::spawn(|| green::sleep(Duration::from_secs(3600)));
        green::spawn_n(move || {
            let _g = JoinOnDrop(Some(worker), d);
            green::sleep(Duration::from_secs(3600));
        });
        green::yield_now(); // both park; the thread then exits
    })
    .join()
    .unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 1);
}

/// A destructor that sleeps, run at thread exit.
struct SleepOnDrop(Arc<AtomicUsize>);

impl Drop for SleepOnDrop {
    fn drop(&mut self) {
        green::sleep(Duration::from_secs(3600));
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn sleep_in_destructor_at_thread_exit_returns_at_once() {
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let start = Instant::now();
    std::thread::spawn(move || {
        green::spawn_n(move || {
            let _g = SleepOnDrop(d);
            green::sleep(Duration::from_secs(3600));
        });
        green::yield_now();
    })
    .join()
    .unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 1);
    // Margin: an hour-long sleep that returned; any bound far below it works.
    assert!(start.elapsed() < Duration::from_secs(60));
}

#[test]
fn parked_threads_unwind_at_thread_exit() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    std::thread::spawn(move || {
        for _ in 0..100 {
            let c = Count(d.clone());
            green::spawn_n(move || {
                let _c = c;
                green::sleep(Duration::from_secs(3600));
            });
        }
        // Never started: dropped without running.
        let c = Count(d.clone());
        green::spawn_n(move || drop(c));
        let _ = green::spawn_after(Duration::from_secs(3600), || ());
        green::yield_now();
    })
    .join()
    .unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 101);
}

/// A destructor that parks, run while its green thread unwinds from a
/// timeout; a kill arrives at that park.
struct SlowDrop {
    entered: Rc<Cell<bool>>,
    flushed: Rc<Cell<bool>>,
}

impl Drop for SlowDrop {
    fn drop(&mut self) {
        self.entered.set(true);
        green::sleep(Duration::from_millis(20));
        self.flushed.set(true);
    }
}

#[test]
fn kill_during_unwind_waits_for_the_unwind() {
    let entered = Rc::new(Cell::new(false));
    let flushed = Rc::new(Cell::new(false));
    let (e, f) = (entered.clone(), flushed.clone());
    let gt = green::spawn(move || {
        let r = green::with_timeout(Duration::from_millis(1), || {
            let _d = SlowDrop {
                entered: e,
                flushed: f,
            };
            green::sleep(Duration::from_secs(3600));
        });
        assert!(r.is_err());
        green::sleep(Duration::from_secs(3600)); // the kill lands here
    });
    // Wait until the green thread parks inside SlowDrop, mid-unwind.
    while !entered.get() {
        green::sleep(Duration::from_millis(1));
    }
    gt.kill();
    assert!(gt.join().unwrap_err().is::<green::Killed>());
    assert!(flushed.get(), "the destructor finished its park");
}

#[test]
#[ignore = "child process of exit_from_green_thread_exits_cleanly"]
fn child_exits_from_green_thread() {
    green::spawn_n(|| green::sleep(Duration::from_secs(3600)));
    green::spawn(|| std::process::exit(7)).wait();
}

#[test]
fn exit_from_green_thread_exits_cleanly() -> std::io::Result<()> {
    let out = Command::new(std::env::current_exe()?)
        .args([
            "--ignored",
            "--exact",
            "child_exits_from_green_thread",
            "--test-threads=1",
        ])
        .output()?;
    assert_eq!(out.status.code(), Some(7), "{:?}", out);
    Ok(())
}

/// Runs `wait` in the destructor of a green thread that is unwound when its
/// OS thread exits, while `main` holds what it waits for; `main` lets go
/// once the destructor has started.
fn destructor_waits_at_exit<F: FnOnce() + Send + 'static>(wait: F, let_go: impl FnOnce()) {
    struct OnDrop<F: FnOnce()>(Option<F>, Arc<AtomicUsize>);
    impl<F: FnOnce()> Drop for OnDrop<F> {
        fn drop(&mut self) {
            self.1.store(1, Ordering::SeqCst);
            (self.0.take().expect("runs once"))();
            self.1.store(2, Ordering::SeqCst);
        }
    }
    let stage = Arc::new(AtomicUsize::new(0));
    let st = stage.clone();
    let t = std::thread::spawn(move || {
        green::spawn(move || {
            let _d = OnDrop(Some(wait), st);
            green::sleep(Duration::from_secs(3600));
        });
        green::yield_now(); // it parks in its sleep; the thread then exits
    });
    while stage.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    let_go();
    t.join()
        .expect("the exiting thread finishes its destructor");
    assert_eq!(stage.load(Ordering::SeqCst), 2);
}

/// Regression: a destructor run at thread exit that acquired a contended
/// semaphore got a guard without a permit, and its drop minted one.
#[test]
fn semaphore_acquired_in_a_destructor_at_exit_is_a_real_permit() {
    let sem = green::Semaphore::new(1);
    let held = sem.acquire();
    let s = sem.clone();
    destructor_waits_at_exit(
        move || {
            let _permit = s.acquire();
        },
        move || drop(held),
    );
    assert_eq!(sem.count(), 1);
}

/// Regression: a destructor run at thread exit that locked a contended
/// `green::sync::Mutex` aborted the process (a panic during the unwind).
#[test]
fn mutex_locked_in_a_destructor_at_exit_waits_for_its_holder() {
    let m = Arc::new(green::sync::Mutex::new(0));
    let held = m.lock().unwrap();
    let m2 = m.clone();
    destructor_waits_at_exit(move || *m2.lock().unwrap() += 1, move || drop(held));
    assert_eq!(*m.lock().unwrap(), 1);
    assert!(!m.is_poisoned());
}

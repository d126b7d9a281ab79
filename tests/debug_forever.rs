//! "Would block forever": a root's wait that provably cannot end panics
//! with a dump instead of sleeping for ever.
//!
//! The proof needs a process in which no other thread could act, so this
//! binary has no test harness (whose main thread would be one): `main`
//! runs each case on the process's only thread, and exits non-zero if one
//! fails.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use green::{Event, GreenThread};

/// Runs `f`, which must panic; returns the panic's message.
fn panic_message(f: impl FnOnce()) -> String {
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let r = panic::catch_unwind(AssertUnwindSafe(f));
    panic::set_hook(hook);
    let p: Box<dyn Any + Send> = match r {
        Ok(()) => panic!("the wait returned; it should have panicked"),
        Err(p) => p,
    };
    match p.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    }
}

/// The line of the dump that names green thread `id`.
fn line_of(msg: &str, id: u64) -> String {
    let head = format!("green thread {id} ");
    let head2 = format!("green thread {id}:");
    msg.lines()
        .find(|l| l.trim_start().starts_with(&head) || l.trim_start().starts_with(&head2))
        .unwrap_or_else(|| panic!("no line for green thread {id} in:\n{msg}"))
        .to_owned()
}

/// Two green threads each join the other; the root waits for an Event
/// the first would send after its join.
fn two_green_threads_joining_each_other() {
    let done = Event::<()>::new();
    let cell_a: Rc<RefCell<Option<GreenThread<()>>>> = Rc::default();
    let cell_b: Rc<RefCell<Option<GreenThread<()>>>> = Rc::default();
    let (ca, cb) = (cell_a.clone(), cell_b.clone());
    let d = done.clone();
    let a = green::Builder::new()
        .name("a")
        .spawn(move || {
            let b = cb.borrow_mut().take().expect("b is set before a runs");
            b.wait();
            let _ = d.send(());
        })
        .unwrap();
    let b = green::Builder::new()
        .name("b")
        .spawn(move || {
            let a = ca.borrow_mut().take().expect("a is set before b runs");
            a.wait();
        })
        .unwrap();
    let (ida, idb) = (a.id(), b.id());
    *cell_a.borrow_mut() = Some(a);
    *cell_b.borrow_mut() = Some(b);
    let msg = panic_message(|| done.wait());
    assert!(msg.contains("would block forever"), "{msg}");
    assert!(msg.contains("waits on Event"), "{msg}");
    let la = line_of(&msg, ida);
    assert!(la.contains(&format!("join of green thread {idb}")), "{la}");
    assert!(la.contains("\"a\""), "{la}");
    assert!(la.contains("tests/debug_forever.rs"), "{la}");
    let lb = line_of(&msg, idb);
    assert!(lb.contains(&format!("join of green thread {ida}")), "{lb}");
}

/// The root waits on an Event whose only other handle was dropped by a
/// green thread that ended without sending.
fn an_event_whose_only_sender_was_dropped() {
    let ev = Event::<u32>::new();
    let sender = ev.clone();
    // It runs once the root waits, and drops the handle then.
    let gt = green::spawn(move || drop(sender));
    let msg = panic_message(|| {
        ev.wait();
    });
    assert!(msg.contains("would block forever"), "{msg}");
    assert!(msg.contains("waits on Event"), "{msg}");
    gt.wait();
}

/// The same after a tpool call: its idle workers are green's own and
/// cannot send the event.
fn idle_tpool_workers_do_not_hide_it() {
    assert_eq!(green::tpool::execute(|| 7), 7);
    let ev = Event::<()>::new();
    let msg = panic_message(|| {
        ev.wait();
    });
    assert!(msg.contains("would block forever"), "{msg}");
}

/// A root that joins a green thread parked on a green mutex held by a
/// green thread that waits on an Event nobody can send: the dump shows
/// the whole chain.
fn a_chain_through_a_mutex() {
    let m = std::sync::Arc::new(green::sync::Mutex::new(0));
    let never = Event::<()>::new();
    let (m1, n1) = (m.clone(), never.clone());
    let holder = green::spawn(move || {
        let _g = m1.lock().unwrap();
        n1.wait();
    });
    green::yield_now();
    let m2 = m.clone();
    let waiter = green::spawn(move || {
        let _g = m2.lock().unwrap();
    });
    let (hid, wid) = (holder.id(), waiter.id());
    drop(never);
    let msg = panic_message(|| waiter.wait());
    assert!(
        msg.contains(&format!("waits on join of green thread {wid}")),
        "{msg}"
    );
    assert!(line_of(&msg, hid).contains("on Event"), "{msg}");
    assert!(line_of(&msg, wid).contains("on Mutex"), "{msg}");
    drop(holder);
}

/// A plain thread that will send: no proof, the wait ends.
fn a_plain_thread_that_will_send_keeps_it_waiting() {
    let ev = Event::<u32>::new();
    let tx = ev.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        // Blocks until the root is (about to be) parked.
        ready_rx.recv().unwrap();
        tx.send(5).unwrap();
    });
    let g = green::spawn(move || ready_tx.send(()).unwrap());
    assert_eq!(ev.wait(), 5);
    g.wait();
    t.join().unwrap();
}

/// A timer that will fire: no proof.
fn a_pending_timer_keeps_it_waiting() {
    let ev = Event::<u32>::new();
    let tx = ev.clone();
    let g = green::spawn(move || {
        green::sleep(Duration::from_millis(20));
        tx.send(9).unwrap();
    });
    assert_eq!(ev.wait(), 9);
    g.wait();
}

/// An fd waiter: no proof. The fd is a timerfd, which the kernel makes
/// readable 20 ms on: no green timer, no other thread, only the waiter
/// (the root waits on an Event that its green thread sends after).
fn an_fd_waiter_keeps_it_waiting() {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain calls with valid arguments; the new fd is owned at once.
    let timer = unsafe {
        let fd = libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        );
        assert!(
            fd >= 0,
            "timerfd_create: {}",
            std::io::Error::last_os_error()
        );
        OwnedFd::from_raw_fd(fd)
    };
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: 0,
            tv_nsec: 20_000_000,
        },
    };
    // SAFETY: a valid timerfd and itimerspec; no old value asked for.
    let rc = unsafe { libc::timerfd_settime(timer.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    assert_eq!(rc, 0);
    let fd = timer.as_raw_fd();
    let ev = Event::<()>::new();
    let tx = ev.clone();
    let reader = green::spawn(move || {
        green::hub::trampoline(fd, green::hub::Interest::Read, None).unwrap();
        tx.send(()).unwrap();
    });
    ev.wait();
    reader.wait();
    green::hub::notify_close(fd);
    drop(timer);
}

/// The blocking detector's hook may wake the hub (here it sends on a
/// green channel): while a hook is set, the watchdog's thread counts as
/// one that could act. Last of the cases: the hook stays set.
fn a_blocking_hook_that_will_send_keeps_it_waiting() {
    let (tx, rx) = green::sync::mpsc::channel::<bool>();
    let tx = std::sync::Mutex::new(tx);
    green::debug::on_blocking(move |r| {
        let _ = tx.lock().unwrap().send(r.ended);
    });
    green::debug::hub_blocking_detection(Some(Duration::from_millis(20)));
    let spinner = green::spawn(|| {
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(100) {}
    });
    spinner.wait();
    // The stall's report came while the spinner held the hub; the report
    // of its end comes from the watchdog after it, while the root waits
    // here with nothing else that could wake it.
    assert!(!rx.recv().unwrap());
    assert!(rx.recv().unwrap());
    green::debug::hub_blocking_detection(None);
}

/// Whether `/proc/self/stat` gives the process's thread count, which the
/// proof needs (qemu-user's gives 0: there no wait can be proven endless).
fn thread_count_known() -> bool {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or("");
    rest.split_ascii_whitespace()
        .nth(17)
        .and_then(|n| n.parse::<usize>().ok())
        .is_some_and(|n| n > 0)
}

fn main() {
    let provable = thread_count_known();
    let must_panic = [
        "two_green_threads_joining_each_other",
        "an_event_whose_only_sender_was_dropped",
        "idle_tpool_workers_do_not_hide_it",
        "a_chain_through_a_mutex",
    ];
    let cases: &[(&str, fn())] = &[
        (
            "a_plain_thread_that_will_send_keeps_it_waiting",
            a_plain_thread_that_will_send_keeps_it_waiting,
        ),
        (
            "a_pending_timer_keeps_it_waiting",
            a_pending_timer_keeps_it_waiting,
        ),
        (
            "an_fd_waiter_keeps_it_waiting",
            an_fd_waiter_keeps_it_waiting,
        ),
        (
            "two_green_threads_joining_each_other",
            two_green_threads_joining_each_other,
        ),
        (
            "an_event_whose_only_sender_was_dropped",
            an_event_whose_only_sender_was_dropped,
        ),
        (
            "idle_tpool_workers_do_not_hide_it",
            idle_tpool_workers_do_not_hide_it,
        ),
        ("a_chain_through_a_mutex", a_chain_through_a_mutex),
        (
            "a_blocking_hook_that_will_send_keeps_it_waiting",
            a_blocking_hook_that_will_send_keeps_it_waiting,
        ),
    ];
    let mut failed = 0;
    for (name, case) in cases {
        if !provable && must_panic.contains(name) {
            println!("test {name} ... skipped: /proc/self/stat gives no thread count here");
            continue;
        }
        match panic::catch_unwind(case) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    let ran = if provable {
        cases.len()
    } else {
        cases.len() - must_panic.len()
    };
    println!("{} passed; {failed} failed", ran - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}

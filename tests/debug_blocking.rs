//! The blocking detector (`green::debug::hub_blocking_detection`): a green
//! thread that holds its hub is reported with its id, name, spawn site and
//! what its OS thread is doing, and again when it switches.
//!
//! The detector is process-wide: every test here uses the same threshold
//! and one hook, which files each report for the test waiting on it.

use std::panic::Location;
use std::sync::{mpsc, Arc, Condvar, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use green::debug::{Activity, BlockingReport};

const THRESHOLD: Duration = Duration::from_millis(50);
/// Far longer than any report takes: only a lost report waits this long.
const HANG: Duration = Duration::from_secs(30);

static REPORTS: Mutex<Vec<BlockingReport>> = Mutex::new(Vec::new());
static ARRIVED: Condvar = Condvar::new();

fn detect() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        green::debug::on_blocking(|r| {
            REPORTS.lock().unwrap().push(r.clone());
            ARRIVED.notify_all();
        });
        green::debug::hub_blocking_detection(Some(THRESHOLD));
    });
}

/// Waits for the report about green thread `id` (the end of its stall if
/// `ended`).
fn report_for(id: u64, ended: bool) -> BlockingReport {
    let deadline = Instant::now() + HANG;
    let mut reports = REPORTS.lock().unwrap();
    loop {
        if let Some(r) = reports
            .iter()
            .find(|r| r.green_thread == id && r.ended == ended)
        {
            return r.clone();
        }
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("no report (ended: {ended}) for green thread {id}"));
        reports = ARRIVED.wait_timeout(reports, left).unwrap().0;
    }
}

/// Computes for `ms` milliseconds without a park point.
fn spin(ms: u64) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(ms) {
        std::hint::spin_loop();
    }
}

/// Runs `f` as a green thread on a hub of its own OS thread, spawned from
/// `site`; returns the green thread's id and the OS thread to join.
fn on_own_hub(
    name: Option<&'static str>,
    f: impl FnOnce() + Send + 'static,
) -> (u64, &'static Location<'static>, thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let os = thread::spawn(move || {
        let b = match name {
            Some(n) => green::Builder::new().name(n),
            None => green::Builder::new(),
        };
        let site = Location::caller();
        let gt = b.spawn(f).unwrap();
        tx.send((gt.id(), site)).unwrap();
        gt.wait();
    });
    let (id, site) = rx.recv_timeout(HANG).unwrap();
    (id, site, os)
}

#[test]
fn a_spinning_green_thread_is_reported_with_its_name_and_spawn_site() {
    detect();
    let (tx, rx) = mpsc::channel::<(u64, u32)>();
    let os = thread::spawn(move || {
        // No park point for 200 ms: four thresholds. (One line: the spawn
        // call's line is the one expected.)
        #[rustfmt::skip]
        let (gt, line) = (green::Builder::new().name("spinner").spawn(|| spin(200)), line!());
        let gt = gt.unwrap();
        tx.send((gt.id(), line)).unwrap();
        gt.wait();
    });
    let (id, line) = rx.recv_timeout(HANG).unwrap();
    let r = report_for(id, false);
    assert_eq!(r.name.as_deref(), Some("spinner"));
    let at = r.spawned_at.expect("a spawn site");
    assert_eq!((at.file(), at.line()), (file!(), line));
    assert_eq!(r.activity, Activity::Running);
    assert!(r.held_for >= THRESHOLD, "{r}");
    let text = r.to_string();
    assert!(
        text.contains(&format!("green thread {id} \"spinner\"")),
        "{text}"
    );
    assert!(text.contains(&format!("{}:{line}", file!())), "{text}");
    assert!(text.contains("green::yield_now()"), "{text}");
    let end = report_for(id, true);
    // It spun 200 ms; the watchdog sees the start at most a quarter of a
    // threshold late. Half of that is margin enough.
    assert!(end.held_for >= Duration::from_millis(100), "{end}");
    assert!(end.to_string().contains("go again"), "{end}");
    os.join().unwrap();
}

#[test]
fn a_blocking_sleep_is_reported_with_its_system_call() {
    detect();
    let (id, _, os) = on_own_hub(None, || {
        // std's sleep, not green's: the OS thread sleeps in the kernel.
        std::thread::sleep(Duration::from_millis(300));
    });
    let r = report_for(id, false);
    match &r.activity {
        Activity::Syscall { name, .. } => assert!(name.contains("nanosleep"), "{r}"),
        other => panic!("expected a system call, got {other:?}: {r}"),
    }
    assert!(r.name.is_none());
    assert!(r.to_string().contains("green::tpool"), "{r}");
    report_for(id, true);
    os.join().unwrap();
}

#[test]
fn a_std_mutex_wait_is_a_futex_wait_with_its_likely_cause() {
    detect();
    let m = Arc::new(Mutex::new(0u32));
    let held = m.lock().unwrap();
    let m2 = m.clone();
    let (id, site, os) = on_own_hub(Some("locker"), move || {
        *m2.lock().unwrap() += 1;
    });
    let r = report_for(id, false);
    assert!(r.activity.is_futex_wait(), "{r}");
    assert!(r.hint.contains("green::sync"), "{r}");
    assert_eq!(r.spawned_at.map(|l| l.line()), Some(site.line() + 1));
    drop(held);
    let end = report_for(id, true);
    assert!(end.held_for >= THRESHOLD, "{end}");
    os.join().unwrap();
    assert_eq!(*m.lock().unwrap(), 1);
}

#[test]
fn thread_spawn_records_its_caller_too() {
    detect();
    let (tx, rx) = mpsc::channel::<(u64, u32)>();
    let os = thread::spawn(move || {
        #[rustfmt::skip]
        let (h, line) = (green::thread::Builder::new().name("std-shaped".into()).spawn(|| { spin(150); green::current_id() }), line!());
        let h = h.unwrap();
        // The id is the green thread's: ask it.
        let id = h.join().unwrap();
        tx.send((id.unwrap(), line)).unwrap();
    });
    let (id, line) = rx.recv_timeout(HANG).unwrap();
    let r = report_for(id, false);
    assert_eq!(r.name.as_deref(), Some("std-shaped"));
    assert_eq!(
        r.spawned_at.map(|l| (l.file(), l.line())),
        Some((file!(), line))
    );
    os.join().unwrap();
}

#[test]
fn several_green_threads_of_one_hub_are_each_reported_and_the_hub_goes_on() {
    detect();
    const SLEEPERS: usize = 3;
    const ITEMS: u32 = 50;
    let (tx, rx) = mpsc::channel();
    let os = thread::spawn(move || {
        // A consumer and a producer on a green channel kept open across the
        // stalls, and three green threads that each block the OS thread in
        // std's sleep in turn.
        let (items_tx, items_rx) = green::sync::mpsc::channel::<u32>();
        let consumer = green::spawn(move || items_rx.iter().take(ITEMS as usize).sum::<u32>());
        let producer = green::spawn(move || {
            for i in 0..ITEMS {
                items_tx.send(i).unwrap();
                green::yield_now();
            }
            items_tx
        });
        let sleepers: Vec<_> = (0..SLEEPERS)
            .map(|_| green::spawn(|| std::thread::sleep(Duration::from_millis(150))))
            .collect();
        tx.send(sleepers.iter().map(|s| s.id()).collect::<Vec<_>>())
            .unwrap();
        for s in sleepers {
            s.wait();
        }
        let _still_open = producer.wait();
        consumer.wait()
    });
    let ids = rx.recv_timeout(HANG).unwrap();
    for &id in &ids {
        let r = report_for(id, false);
        assert!(
            matches!(&r.activity, Activity::Syscall { name, .. } if name.contains("nanosleep")),
            "{r}"
        );
        report_for(id, true);
    }
    // The stalls ended and the hub went on: every item arrived.
    assert_eq!(os.join().unwrap(), (0..ITEMS).sum::<u32>());
}

#[test]
fn a_crossbeam_recv_and_a_parking_lot_lock_are_futex_waits() {
    detect();
    // Another OS thread holds the lock and owns the sender: each green
    // thread blocks its OS thread in the crate's own park, a futex wait.
    let lock = Arc::new(parking_lot::Mutex::new(0u32));
    let held = lock.lock();
    let (msg_tx, msg_rx) = crossbeam_channel::unbounded::<u32>();
    let (id_tx, id_rx) = mpsc::channel();
    let lock2 = lock.clone();
    let os = thread::spawn(move || {
        let receiver = green::spawn(move || msg_rx.recv().unwrap());
        let locker = green::spawn(move || *lock2.lock() += 1);
        id_tx.send((receiver.id(), locker.id())).unwrap();
        (receiver.wait(), locker.wait())
    });
    let (receiver, locker) = id_rx.recv_timeout(HANG).unwrap();
    // The receiver runs first and holds the hub until a message comes.
    let r = report_for(receiver, false);
    assert!(r.activity.is_futex_wait(), "{r}");
    msg_tx.send(7).unwrap();
    report_for(receiver, true);
    let r = report_for(locker, false);
    assert!(r.activity.is_futex_wait(), "{r}");
    drop(held);
    report_for(locker, true);
    assert_eq!(os.join().unwrap(), (7, ()));
    assert_eq!(*lock.lock(), 1);
}

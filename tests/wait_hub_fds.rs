//! Issue 13: a coordination primitive that once woke a green thread must
//! not keep that green thread's hub — its epoll fd and eventfd — alive
//! after the hub's OS thread has exited, however long the primitive lives.
//!
//! One test in this binary, so that no other test opens or closes fds
//! while it counts them.

mod common;

use std::sync::mpsc;

/// How many fds the process has open.
fn open_fds() -> usize {
    // The directory's own fd is counted every time: the difference holds.
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Runs `body` on a new OS thread, which gets a hub of its own, and hands
/// its kernel id to `started` first.
fn on_hub_thread(
    started: mpsc::Sender<libc::pid_t>,
    body: impl FnOnce() + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        started.send(common::tid()).expect("the test listens");
        body();
    })
}

#[test]
fn wait_list_keeps_no_exited_hub_fds_open() {
    let event = green::Event::<u32>::new();
    let queue = green::queue::LightQueue::<u32>::unbounded();
    let mutex = std::sync::Arc::new(green::sync::Mutex::new(0u32));
    let baseline = open_fds();

    // A green thread waits on the event; this plain thread sends it once
    // the waiter's hub sleeps, so the waiter is parked in the wait list.
    let (tx, rx) = mpsc::channel();
    let ev = event.clone();
    let t = on_hub_thread(tx, move || {
        assert_eq!(green::spawn(move || ev.wait()).wait(), 7);
    });
    common::wait_until_asleep_in_poller(rx.recv().unwrap());
    event.send(7).unwrap();
    t.join().unwrap();

    // The same for a queue's getter.
    let (tx, rx) = mpsc::channel();
    let q = queue.clone();
    let t = on_hub_thread(tx, move || {
        assert_eq!(green::spawn(move || q.get()).wait(), 8);
    });
    common::wait_until_asleep_in_poller(rx.recv().unwrap());
    queue.put(8);
    t.join().unwrap();

    // A mutex handed over between two green threads of one hub: the
    // notifier runs on the waiter's own hub.
    let (tx, _rx) = mpsc::channel();
    let m = mutex.clone();
    let t = on_hub_thread(tx, move || {
        let m2 = m.clone();
        let holder = green::spawn(move || {
            let mut g = m2.lock().unwrap();
            green::yield_now(); // the other one parks in `lock`
            *g += 1;
        });
        let waiter = green::spawn(move || *m.lock().unwrap() += 1);
        holder.wait();
        waiter.wait();
    });
    t.join().unwrap();
    assert_eq!(*mutex.lock().unwrap(), 2);

    assert_eq!(
        open_fds(),
        baseline,
        "the exited threads' hubs closed their pollers while the primitives live on"
    );
    // They do live on, and still work.
    assert_eq!(event.wait(), 7);
    queue.put(9);
    assert_eq!(queue.get(), 9);
}

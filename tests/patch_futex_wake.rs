//! A std lock waited on by a green thread (parked on green's futex table)
//! and, for real, by its own hub's OS thread (the hub cannot park: here a
//! `call_later` callback takes the lock) is handed on by one unlock of a
//! plain thread that held it: the OS thread wakes, and so does the green
//! thread after it. A wake that went to the green waiter alone would leave
//! the OS thread blocked, and with it the green waiter: the hub would hang.
//!
//! The same shape, with the hub's "would block forever" check taking the
//! thread pool's lock while a green thread waited for it, hung the thread
//! pool's first call under qemu now and then.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use common::within;
use std::thread;
use std::time::Duration;

#[test]
fn one_unlock_wakes_the_hub_thread_blocked_for_real_and_its_green_waiter() {
    green::patch();
    within(Duration::from_secs(60), || {
        let m = Arc::new(Mutex::new(Vec::new()));
        let held = Arc::new(Barrier::new(2));
        let release = Arc::new(AtomicBool::new(false));
        let hub_thread = common::tid();
        // The holder: a plain thread, which keeps the lock until the two
        // waiters wait (spinning, so that no wait of its own is involved).
        let holder = {
            let (m, held, release) = (m.clone(), held.clone(), release.clone());
            thread::spawn(move || {
                let mut g = m.lock().unwrap();
                g.push("holder");
                held.wait();
                while !release.load(Ordering::SeqCst) {
                    thread::yield_now();
                }
                // The hub set `release` and went on to the lock: once its
                // thread sleeps, both wait, the green thread parked on the
                // table and the hub's thread in the kernel.
                common::wait_until_sleeping(hub_thread);
                drop(g);
            })
        };
        held.wait();
        let green_waiter = {
            let m = m.clone();
            green::spawn(move || m.lock().unwrap().push("green thread"))
        };
        green::yield_now();
        assert!(!green_waiter.is_finished(), "the green thread did not wait");
        // Run on the hub itself, which cannot park: its wait is a real one.
        let release_in_hub = release.clone();
        let m_in_hub = m.clone();
        let _timer = green::hub::call_later(Duration::ZERO, move || {
            release_in_hub.store(true, Ordering::SeqCst);
            m_in_hub.lock().unwrap().push("hub");
        });
        green_waiter.wait();
        holder.join().unwrap();
        let mut order = m.lock().unwrap().clone();
        assert_eq!(order[0], "holder");
        order.sort();
        assert_eq!(order, ["green thread", "holder", "hub"]);
    });
}

#[test]
fn a_hub_blocked_for_real_on_a_lock_among_green_waiters_is_woken_each_time() {
    // Twenty green threads and the hub itself take one std lock, again and
    // again, against two plain threads: the hub's real waits are among the
    // table's green waiters on every round.
    green::patch();
    within(Duration::from_secs(120), || {
        let m = Arc::new(Mutex::new(0u64));
        let stop = Arc::new(AtomicBool::new(false));
        let plain: Vec<_> = (0..2)
            .map(|_| {
                let (m, stop) = (m.clone(), stop.clone());
                thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        let mut g = m.lock().unwrap();
                        *g += 1;
                        n += 1;
                        // Held across a short real sleep, so that the
                        // others pile up behind it.
                        thread::sleep(Duration::from_micros(200));
                        drop(g);
                        thread::yield_now();
                    }
                    n
                })
            })
            .collect();
        let green_threads: Vec<_> = (0..20)
            .map(|_| {
                let m = m.clone();
                green::spawn(move || {
                    for _ in 0..20 {
                        *m.lock().unwrap() += 1;
                        green::yield_now();
                    }
                    20u64
                })
            })
            .collect();
        let hub_takes = Arc::new(Mutex::new(0u64));
        // Sent by the last callback (the latest deadline runs last).
        let callbacks_done = green::Event::<()>::new();
        let timers: Vec<_> = (0..200u64)
            .map(|i| {
                let (m, hub_takes) = (m.clone(), hub_takes.clone());
                let done = callbacks_done.clone();
                green::hub::call_later(Duration::from_micros(100 * i), move || {
                    *m.lock().unwrap() += 1;
                    *hub_takes.lock().unwrap() += 1;
                    if i == 199 {
                        done.send(()).unwrap();
                    }
                })
            })
            .collect();
        let green_total: u64 = green_threads.into_iter().map(|g| g.wait()).sum();
        callbacks_done.wait();
        stop.store(true, Ordering::SeqCst);
        let plain_total: u64 = plain.into_iter().map(|t| t.join().unwrap()).sum();
        drop(timers);
        let hub_total = *hub_takes.lock().unwrap();
        assert_eq!(hub_total, 200, "every callback ran");
        assert_eq!(*m.lock().unwrap(), green_total + plain_total + hub_total);
    });
}

//! Many waiters, timeouts and kills on one channel fed from everywhere.
//!
//! Producers on plain threads and on the green threads of other hubs send
//! numbered messages; consumers on this hub receive with short timeouts,
//! and some of them are killed while they wait (possibly just after a
//! message was handed to them). Every message must come out exactly once:
//! a timed-out waiter keeps nothing, a killed one hands back what it was
//! given, and no wakeup is lost while the channel's lock moves between
//! biased and shared.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use green::sync::mpsc::{self, RecvTimeoutError};

const PER_PRODUCER: u64 = 3_000;

#[test]
fn every_message_comes_out_once_through_timeouts_and_kills() {
    let (tx, rx) = mpsc::channel::<u64>();
    let rx = Rc::new(rx);
    let seen = Rc::new(RefCell::new(Vec::new()));

    // Producers: two plain threads and two hubs with three green threads
    // each: eight producers, numbered messages.
    let sent = Arc::new(AtomicU64::new(0));
    let mut producers = Vec::new();
    for p in 0..4u64 {
        let tx = tx.clone();
        let sent = sent.clone();
        producers.push(std::thread::spawn(move || {
            if p < 2 {
                for i in 0..PER_PRODUCER {
                    tx.send(p * 1_000_000 + i).unwrap();
                    sent.fetch_add(1, Ordering::Relaxed);
                    if i % 64 == 0 {
                        std::thread::sleep(Duration::from_micros(50));
                    }
                }
            } else {
                let gs: Vec<_> = (0..3u64)
                    .map(|g| {
                        let tx = tx.clone();
                        let sent = sent.clone();
                        green::spawn(move || {
                            for i in 0..PER_PRODUCER {
                                tx.send((p * 3 + g) * 1_000_000 + i).unwrap();
                                sent.fetch_add(1, Ordering::Relaxed);
                                if i % 16 == 0 {
                                    green::sleep(Duration::from_micros(20));
                                }
                            }
                        })
                    })
                    .collect();
                gs.into_iter().for_each(|g| g.wait());
            }
        }));
    }
    drop(tx);

    // Consumers: receive with short timeouts until the channel is closed.
    let consumer = |n: u64| {
        let rx = rx.clone();
        let seen = seen.clone();
        green::spawn(move || loop {
            let t = Duration::from_micros(20 + (n * 37) % 500);
            match rx.recv_timeout(t) {
                // Recorded before the next park point: a kill cannot fall
                // between the two.
                Ok(v) => seen.borrow_mut().push(v),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        })
    };
    let mut consumers: Vec<_> = (0..8).map(consumer).collect();
    // While the producers send, kill a consumer now and then (it may just
    // have been handed a message) and start a new one in its place.
    let total = 8 * PER_PRODUCER;
    let mut kills = 0u64;
    while sent.load(Ordering::Relaxed) < total {
        green::sleep(Duration::from_micros(300));
        let victim = consumers.swap_remove(kills as usize % consumers.len());
        victim.kill();
        let _ = victim.join();
        consumers.push(consumer(8 + kills));
        kills += 1;
    }
    assert!(kills > 0, "the producers finished before any kill");
    for p in producers {
        p.join().unwrap();
    }
    for c in consumers {
        c.wait();
    }

    let mut seen = seen.borrow_mut();
    seen.sort_unstable();
    let mut expected: Vec<u64> = (0..2u64)
        .flat_map(|p| (0..PER_PRODUCER).map(move |i| p * 1_000_000 + i))
        .chain((6..12u64).flat_map(|q| (0..PER_PRODUCER).map(move |i| q * 1_000_000 + i)))
        .collect();
    expected.sort_unstable();
    assert_eq!(seen.len(), expected.len(), "lost or doubled messages");
    assert!(
        *seen == expected,
        "the messages received differ from those sent"
    );
}

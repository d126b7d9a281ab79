//! The cooperative budget: a green thread looping on operations that never
//! wait yields now and then, so that the others of its hub run. Each loop
//! here would run for ever on one hub without it (the other side never
//! gets to run), and finishes with it. The same loops on plain OS threads
//! finish by preemption.

use std::rc::Rc;
use std::time::Duration;

use green::sync::{mpsc, Mutex};

#[path = "common/identity.rs"]
mod identity;

/// Ends the process with a message if the test hangs (the failure these
/// tests look for is a loop that never ends).
fn watchdog(name: &'static str) -> identity::Watchdog {
    identity::Watchdog::new(name, Duration::from_secs(60))
}

#[test]
fn send_loop_ends_when_a_receiver_on_the_same_hub_drops() {
    let _w = watchdog("send_loop_ends_when_a_receiver_on_the_same_hub_drops");
    let (tx, rx) = mpsc::channel::<u32>();
    let reader = green::spawn(move || {
        for _ in 0..10 {
            rx.recv().unwrap();
        }
        // Dropped here: the writer's next send fails.
    });
    let writer = green::spawn(move || {
        let mut sent = 0u64;
        while tx.send(1).is_ok() {
            sent += 1;
        }
        sent
    });
    reader.wait();
    assert!(writer.wait() >= 10);
}

#[test]
fn try_iter_loop_sees_a_sender_on_the_same_hub() {
    let _w = watchdog("try_iter_loop_sees_a_sender_on_the_same_hub");
    let (tx, rx) = mpsc::channel::<u32>();
    let reader = green::spawn(move || {
        let mut got = 0;
        while got < 100 {
            got += rx.try_iter().count();
        }
        got
    });
    let writer = green::spawn(move || {
        for i in 0..100 {
            tx.send(i).unwrap();
        }
        tx
    });
    assert_eq!(reader.wait(), 100);
    drop(writer.wait());
}

#[test]
fn sync_channel_try_send_loop_sees_the_receiver_drain() {
    let _w = watchdog("sync_channel_try_send_loop_sees_the_receiver_drain");
    let (tx, rx) = mpsc::sync_channel::<u32>(1);
    let writer = green::spawn(move || {
        let mut sent = 0;
        while sent < 50 {
            if tx.try_send(sent).is_ok() {
                sent += 1;
            }
        }
        sent
    });
    let reader = green::spawn(move || (0..50).map(|_| rx.recv().unwrap()).sum::<u32>());
    assert_eq!(writer.wait(), 50);
    assert_eq!(reader.wait(), (0..50).sum());
}

#[test]
fn try_lock_loop_sees_the_holder_release_after_its_sleep() {
    let _w = watchdog("try_lock_loop_sees_the_holder_release_after_its_sleep");
    let m = Rc::new(Mutex::new(0));
    let holder = {
        let m = m.clone();
        green::spawn(move || {
            let mut g = m.lock().unwrap();
            // Parked holding the lock: the hub's timer wakes it.
            green::sleep(Duration::from_millis(5));
            *g += 1;
        })
    };
    let spinner = {
        let m = m.clone();
        green::spawn(move || loop {
            if let Ok(mut g) = m.try_lock() {
                *g += 1;
                return *g;
            }
        })
    };
    holder.wait();
    assert_eq!(spinner.wait(), 2);
}

#[test]
fn queue_get_nowait_loop_sees_a_putter_on_the_same_hub() {
    let _w = watchdog("queue_get_nowait_loop_sees_a_putter_on_the_same_hub");
    let q = Rc::new(green::queue::Queue::<u32>::unbounded());
    let getter = {
        let q = q.clone();
        green::spawn(move || loop {
            if let Ok(v) = q.get_nowait() {
                return v;
            }
        })
    };
    let putter = {
        let q = q.clone();
        green::spawn(move || q.put(7))
    };
    assert_eq!(getter.wait(), 7);
    putter.wait();
}

#[test]
fn event_try_wait_loop_sees_a_sender_on_the_same_hub() {
    let _w = watchdog("event_try_wait_loop_sees_a_sender_on_the_same_hub");
    let ev = Rc::new(green::Event::<u32>::new());
    let waiter = {
        let ev = ev.clone();
        green::spawn(move || loop {
            if let Some(v) = ev.try_wait() {
                return v;
            }
        })
    };
    let sender = {
        let ev = ev.clone();
        green::spawn(move || ev.send(3).unwrap())
    };
    assert_eq!(waiter.wait(), 3);
    sender.wait();
}

#[test]
fn semaphore_try_acquire_loop_sees_a_release_on_the_same_hub() {
    let _w = watchdog("semaphore_try_acquire_loop_sees_a_release_on_the_same_hub");
    let sem = Rc::new(green::Semaphore::new(0));
    let acquirer = {
        let sem = sem.clone();
        green::spawn(move || loop {
            if let Some(g) = sem.try_acquire() {
                g.forget();
                return true;
            }
        })
    };
    let releaser = {
        let sem = sem.clone();
        green::spawn(move || sem.release())
    };
    assert!(acquirer.wait());
    releaser.wait();
}

#[test]
fn a_kill_reaches_a_green_thread_that_never_waits() {
    let _w = watchdog("a_kill_reaches_a_green_thread_that_never_waits");
    let (tx, _rx) = mpsc::channel::<u32>();
    let spinner = green::spawn(move || while tx.send(1).is_ok() {});
    green::yield_now();
    spinner.kill();
    assert!(spinner.join().is_err(), "killed at a budget yield");
}

#[test]
fn a_green_reader_that_always_has_data_lets_the_others_run() -> std::io::Result<()> {
    let _w = watchdog("a_green_reader_that_always_has_data_lets_the_others_run");
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    // A plain OS thread keeps the socket full until the reader hangs up.
    let feeder = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        let chunk = [7u8; 4096];
        while s.write_all(&chunk).is_ok() {}
        Ok(())
    });
    let mut stream = green::net::TcpStream::connect(addr)?;
    // Data is there before the reader starts, and more keeps coming.
    let mut first = [0u8; 1];
    stream.read_exact(&mut first)?;
    let ticks = Rc::new(std::cell::Cell::new(0u32));
    let ticker = {
        let ticks = ticks.clone();
        green::spawn(move || {
            for _ in 0..3 {
                ticks.set(ticks.get() + 1);
                green::yield_now();
            }
        })
    };
    let reader = {
        let ticks = ticks.clone();
        green::spawn(move || -> std::io::Result<u64> {
            let mut buf = [0u8; 512];
            let mut total = 0u64;
            // Stops once the ticker has run three times: only budget
            // yields can let it run while every read finds data.
            while ticks.get() < 3 {
                total += stream.read(&mut buf)? as u64;
            }
            Ok(total)
        })
    };
    let read = reader.wait()?;
    ticker.wait();
    assert!(read > 0);
    feeder.join().expect("the feeder panicked")?;
    Ok(())
}

/// How many sends a writer green thread has made when a green thread
/// spawned after it first runs.
fn sent_before_the_other_ran() -> u32 {
    let (tx, _rx) = mpsc::channel::<u32>();
    let sent = Rc::new(std::cell::Cell::new(0));
    let writer = {
        let sent = sent.clone();
        green::spawn(move || {
            for _ in 0..10_000 {
                tx.send(1).unwrap();
                sent.set(sent.get() + 1);
            }
        })
    };
    let other = green::spawn(move || sent.get());
    let seen = other.wait();
    writer.wait();
    seen
}

#[test]
fn the_budget_can_be_turned_off_and_back_on() {
    let _w = watchdog("the_budget_can_be_turned_off_and_back_on");
    green::hub::set_coop_budget(None);
    assert_eq!(sent_before_the_other_ran(), 10_000, "off: no yield");
    green::hub::set_coop_budget(Some(16));
    assert_eq!(sent_before_the_other_ran(), 16, "a yield after 16 sends");
    green::hub::set_coop_budget(Some(128));
    assert_eq!(sent_before_the_other_ran(), 128);
}

/// std's `test_recv_try_iter` (library/std/src/sync/mpsc/tests.rs), on
/// green's mirrors: the spawned thread loops on `try_iter` and `send`
/// without ever waiting, and the spawning thread, on the same hub, must
/// still get to answer it.
#[test]
fn std_test_recv_try_iter_finishes_on_one_hub() {
    let _w = watchdog("std_test_recv_try_iter_finishes_on_one_hub");
    let (request_tx, request_rx) = mpsc::channel();
    let (response_tx, response_rx) = mpsc::channel();

    // Request `x`s until we have `6`.
    let t = green::thread::spawn(move || {
        let mut count = 0;
        loop {
            for x in response_rx.try_iter() {
                count += x;
                if count == 6 {
                    return count;
                }
            }
            request_tx.send(()).unwrap();
        }
    });

    for _ in request_rx.iter() {
        if response_tx.send(2).is_err() {
            break;
        }
    }

    assert_eq!(t.join().unwrap(), 6);
}

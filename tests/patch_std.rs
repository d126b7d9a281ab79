//! Plain std code on green threads under `green::patch()`: std's sockets,
//! child processes, name resolution and locks park only the green thread
//! that calls them, so green threads of one OS thread overlap their waits.
//!
//! Every test checks that its green threads ran on the test's own OS thread;
//! a blocking call that blocked that thread instead of parking would stall
//! the others (or deadlock), which the timings and orderings would show.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::Command;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Condvar, Mutex, OnceLock, RwLock};
use std::thread;
use std::time::{Duration, Instant};

/// The OS thread running the caller: under `patch()` every green thread is
/// a thread of its own to std (`thread::current()` differs), so the OS
/// thread is told by its kernel id.
fn os_thread() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

fn me() -> libc::pid_t {
    os_thread()
}

/// Waits for every green thread and checks that each ran on OS thread `os`.
fn wait_all<T>(threads: Vec<green::GreenThread<(T, libc::pid_t)>>, os: libc::pid_t) -> Vec<T> {
    threads
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let (v, id) = g.wait();
            assert_eq!(id, os, "green thread {i} ran on another OS thread");
            v
        })
        .collect()
}

#[test]
fn connect_timeout_to_a_listener_connects() -> io::Result<()> {
    green::patch();
    let os = me();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = green::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.write_all(b"hi").expect("write");
        me()
    });
    let client = green::spawn(move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        let mut buf = [0; 2];
        s.read_exact(&mut buf).expect("read");
        (buf, me())
    });
    let (buf, id) = client.wait();
    assert_eq!(&buf, b"hi");
    assert_eq!(id, os);
    assert_eq!(server.wait(), os);
    Ok(())
}

#[test]
fn connect_timeout_to_a_closed_port_is_refused() -> io::Result<()> {
    green::patch();
    let os = me();
    // A port nobody listens on: bound, then closed.
    let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let client = green::spawn(move || {
        let r = TcpStream::connect_timeout(&addr, Duration::from_secs(5));
        (r.map(drop).map_err(|e| e.kind()), me())
    });
    let (r, id) = client.wait();
    assert_eq!(r, Err(io::ErrorKind::ConnectionRefused));
    assert_eq!(id, os);
    Ok(())
}

// A connect_timeout that expires needs a peer that never answers; on
// loopback there is none that is reliable (a listener with a full backlog
// still completes or refuses connects depending on kernel settings), so
// that case is not tested here.

#[test]
fn read_timeout_expires_with_would_block_while_other_green_threads_run() -> io::Result<()> {
    green::patch();
    let os = me();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    // The peer stays connected and silent until the reader is done.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let server = green::spawn(move || {
        let (_s, _) = listener.accept().expect("accept");
        done_rx.recv().expect("the reader reports");
        me()
    });
    let timeout = Duration::from_millis(500);
    let other_ran = Rc::new(Cell::new(false));
    let reader = {
        let other_ran = other_ran.clone();
        green::spawn(move || {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(timeout)).expect("set_read_timeout");
            let t = Instant::now();
            let r = s.read(&mut [0; 16]).map_err(|e| e.kind());
            let elapsed = t.elapsed();
            let other_ran_meanwhile = other_ran.get();
            done_tx.send(()).expect("the server listens");
            ((r, elapsed, other_ran_meanwhile), me())
        })
    };
    // Sleeps 10 ms, well within the reader's 500 ms timeout: on one hub
    // its timer fires first, so it runs before the read gives up.
    let other = {
        let other_ran = other_ran.clone();
        green::spawn(move || {
            thread::sleep(Duration::from_millis(10));
            other_ran.set(true);
            ((), me())
        })
    };
    let mut results = wait_all(vec![reader], os);
    let (r, elapsed, other_ran_meanwhile) = results.remove(0);
    wait_all(vec![other], os);
    assert_eq!(server.wait(), os);
    assert_eq!(r, Err(io::ErrorKind::WouldBlock));
    assert!(elapsed >= timeout, "the read gave up after {elapsed:?}");
    // Upper bound with a margin of 10x for a loaded machine.
    assert!(elapsed < Duration::from_secs(5), "read took {elapsed:?}");
    assert!(
        other_ran_meanwhile,
        "another green thread ran while the read waited"
    );
    Ok(())
}

#[test]
fn command_output_of_20_sleeping_children_overlaps() {
    green::patch();
    let os = me();
    let start = Instant::now();
    let children: Vec<_> = (0..20)
        .map(|i| {
            green::spawn(move || {
                let out = Command::new("sh")
                    .arg("-c")
                    .arg(format!("sleep 0.3; echo {i}"))
                    .output()
                    .expect("run sh");
                (out, me())
            })
        })
        .collect();
    let outputs = wait_all(children, os);
    let elapsed = start.elapsed();
    for (i, out) in outputs.iter().enumerate() {
        assert!(out.status.success(), "child {i}: {:?}", out.status);
        assert_eq!(out.stdout, format!("{i}\n").as_bytes(), "child {i} stdout");
    }
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    // One after another: 20 x 0.3 s = 6 s. Together: about 0.3 s; 3 s
    // allows 10x for a loaded machine and is still half the serial time.
    assert!(
        elapsed < Duration::from_secs(3),
        "20 children took {elapsed:?}: their waits did not overlap"
    );
}

#[test]
fn localhost_resolves_from_100_green_threads() {
    green::patch();
    let os = me();
    let port = 4321;
    let resolvers: Vec<_> = (0..100)
        .map(|_| {
            green::spawn(move || {
                let addrs: Vec<SocketAddr> = ("localhost", port)
                    .to_socket_addrs()
                    .expect("localhost resolves")
                    .collect();
                (addrs, me())
            })
        })
        .collect();
    for (i, addrs) in wait_all(resolvers, os).into_iter().enumerate() {
        assert!(
            !addrs.is_empty()
                && addrs
                    .iter()
                    .all(|a| a.ip().is_loopback() && a.port() == port),
            "resolver {i}: {addrs:?}"
        );
    }
    assert!(
        green::patch::hooks_seen().contains(&"getaddrinfo"),
        "name resolution went through the patched getaddrinfo"
    );
}

#[test]
fn mpsc_producers_and_consumer_overlap() {
    green::patch();
    let os = me();
    let (tx, rx) = mpsc::channel::<u64>();
    let start = Instant::now();
    let consumer = green::spawn(move || (rx.iter().collect::<Vec<_>>(), me()));
    let producers: Vec<_> = (0..20u64)
        .map(|i| {
            let tx = tx.clone();
            green::spawn(move || {
                thread::sleep(Duration::from_millis(250));
                tx.send(i).expect("the consumer is there");
                ((), me())
            })
        })
        .collect();
    drop(tx);
    wait_all(producers, os);
    let mut got = wait_all(vec![consumer], os).remove(0);
    let elapsed = start.elapsed();
    got.sort_unstable();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    // Serial: 20 x 250 ms = 5 s. Overlapped: about 250 ms; 2.5 s allows 10x.
    assert!(
        elapsed < Duration::from_millis(2500),
        "producers took {elapsed:?}: their sleeps did not overlap"
    );
}

#[test]
fn mutex_held_across_a_std_sleep_makes_the_others_wait() {
    green::patch();
    let os = me();
    let m = Arc::new(Mutex::new(0u32));
    let released = Rc::new(Cell::new(None::<Instant>));
    let ticked = Rc::new(Cell::new(false));
    let holder = {
        let (m, released, ticked) = (m.clone(), released.clone(), ticked.clone());
        green::spawn(move || {
            let mut g = m.lock().expect("not poisoned");
            thread::sleep(Duration::from_millis(500));
            // The ticker's 10 ms sleep ended during this 500 ms one.
            let ticked_meanwhile = ticked.get();
            *g += 1;
            released.set(Some(Instant::now()));
            drop(g);
            (ticked_meanwhile, me())
        })
    };
    // The holder takes the lock and sleeps holding it.
    green::yield_now();
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let m = m.clone();
            green::spawn(move || {
                let mut g = m.lock().expect("not poisoned");
                let seen = *g;
                *g += 1;
                ((seen, Instant::now()), me())
            })
        })
        .collect();
    let ticker = {
        let ticked = ticked.clone();
        green::spawn(move || {
            thread::sleep(Duration::from_millis(10));
            ticked.set(true);
            ((), me())
        })
    };
    let ticked_meanwhile = wait_all(vec![holder], os).remove(0);
    let got = wait_all(waiters, os);
    wait_all(vec![ticker], os);
    let released = released.get().expect("the holder released the lock");
    assert!(
        ticked_meanwhile,
        "the OS thread ran others during the sleep"
    );
    for (i, (seen, at)) in got.into_iter().enumerate() {
        assert!(
            seen >= 1,
            "waiter {i} got the lock before the holder's write"
        );
        assert!(at >= released, "waiter {i} got the lock while it was held");
    }
    assert_eq!(*m.lock().expect("not poisoned"), 6);
}

#[test]
fn condvar_hands_off_between_two_green_threads() {
    green::patch();
    let os = me();
    let pair = Arc::new((Mutex::new(None::<u32>), Condvar::new()));
    let waiter = {
        let pair = pair.clone();
        green::spawn(move || {
            let (lock, cv) = &*pair;
            let mut g = lock.lock().expect("not poisoned");
            let mut waits = 0;
            while g.is_none() {
                g = cv.wait(g).expect("not poisoned");
                waits += 1;
            }
            ((g.take().expect("set"), waits), me())
        })
    };
    // The waiter finds nothing and waits on the condvar.
    green::yield_now();
    let notifier = {
        let pair = pair.clone();
        green::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            let (lock, cv) = &*pair;
            *lock.lock().expect("not poisoned") = Some(42);
            cv.notify_one();
            ((), me())
        })
    };
    let (value, waits) = wait_all(vec![waiter], os).remove(0);
    wait_all(vec![notifier], os);
    assert_eq!(value, 42);
    assert!(waits >= 1, "the waiter waited on the condvar");
}

#[test]
fn barrier_releases_10_green_threads_together() {
    green::patch();
    let os = me();
    let barrier = Arc::new(Barrier::new(10));
    let arrived = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..10)
        .map(|i| {
            let (barrier, arrived) = (barrier.clone(), arrived.clone());
            green::spawn(move || {
                // Staggered arrivals: the first ones wait for the last.
                thread::sleep(Duration::from_millis(10 * i));
                arrived.fetch_add(1, Ordering::SeqCst);
                let leader = barrier.wait().is_leader();
                ((leader, arrived.load(Ordering::SeqCst)), me())
            })
        })
        .collect();
    let results = wait_all(threads, os);
    for (i, (_, seen)) in results.iter().enumerate() {
        assert_eq!(*seen, 10, "green thread {i} passed before all arrived");
    }
    assert_eq!(results.iter().filter(|(leader, _)| *leader).count(), 1);
}

#[test]
fn rwlock_readers_hold_it_together() {
    green::patch();
    let os = me();
    let lock = Arc::new(RwLock::new(7));
    let start = Instant::now();
    let readers: Vec<_> = (0..20)
        .map(|_| {
            let lock = lock.clone();
            green::spawn(move || {
                let g = lock.read().expect("not poisoned");
                thread::sleep(Duration::from_millis(100));
                (*g, me())
            })
        })
        .collect();
    assert!(wait_all(readers, os).into_iter().all(|v| v == 7));
    let elapsed = start.elapsed();
    // Serial: 20 x 100 ms = 2 s. Shared: about 100 ms; 1 s allows 10x.
    assert!(
        elapsed < Duration::from_secs(1),
        "readers took {elapsed:?}: they did not hold the lock together"
    );
}

#[test]
fn rwlock_writer_excludes_readers_until_it_releases() {
    green::patch();
    let os = me();
    let lock = Arc::new(RwLock::new(0));
    let writer = {
        let lock = lock.clone();
        green::spawn(move || {
            let mut g = lock.write().expect("not poisoned");
            thread::sleep(Duration::from_millis(100));
            *g = 1;
            ((), me())
        })
    };
    // The writer takes the lock and sleeps holding it.
    green::yield_now();
    let readers: Vec<_> = (0..5)
        .map(|_| {
            let lock = lock.clone();
            green::spawn(move || (*lock.read().expect("not poisoned"), me()))
        })
        .collect();
    wait_all(vec![writer], os);
    assert!(wait_all(readers, os).into_iter().all(|v| v == 1));
}

#[test]
fn once_lock_runs_one_init_while_racers_wait() {
    green::patch();
    let os = me();
    let cell = Arc::new(OnceLock::new());
    let inits = Arc::new(AtomicUsize::new(0));
    let events = Rc::new(RefCell::new(Vec::new()));
    let racers: Vec<_> = (0..10)
        .map(|i| {
            let (cell, inits, events) = (cell.clone(), inits.clone(), events.clone());
            green::spawn(move || {
                events.borrow_mut().push("enter");
                let v = *cell.get_or_init(|| {
                    inits.fetch_add(1, Ordering::SeqCst);
                    // The others enter and wait while this sleeps.
                    thread::sleep(Duration::from_millis(100));
                    events.borrow_mut().push("init");
                    42 + i
                });
                events.borrow_mut().push("got");
                (v, me())
            })
        })
        .collect();
    // The first racer to run (the first spawned) initialises.
    assert!(wait_all(racers, os).into_iter().all(|v| v == 42));
    assert_eq!(inits.load(Ordering::SeqCst), 1);
    let mut expected = vec!["enter"; 10];
    expected.push("init");
    expected.extend(["got"; 10]);
    assert_eq!(
        *events.borrow(),
        expected,
        "every racer entered during the init and got the value after it"
    );
}

//! `green::Hubs`: N OS threads, each with its own hub, running one closure.

mod common;

use std::cell::Cell;
use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::panic;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use green::{Event, Hubs};

#[test]
fn each_index_runs_once_on_an_os_thread_of_its_own() -> io::Result<()> {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let ran = Hubs::new().threads(4).run(move |i| {
        counted.fetch_add(1, Ordering::SeqCst);
        (i, thread::current().id())
    })?;
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    let indices: Vec<usize> = ran.iter().map(|&(i, _)| i).collect();
    assert_eq!(indices, [0, 1, 2, 3]);
    let ids: HashSet<_> = ran.iter().map(|&(_, id)| id).collect();
    assert_eq!(ids.len(), 4, "two indices shared an OS thread");
    assert!(!ids.contains(&thread::current().id()));
    Ok(())
}

#[test]
fn green_threads_spawned_by_f_run_on_that_threads_own_hub() -> io::Result<()> {
    // Hub i holds i + 1 green threads at once: each hub counts only its own.
    let seen = Hubs::new().threads(3).run(|i| {
        let root = thread::current().id();
        let release = Event::new();
        let gts: Vec<_> = (0..=i)
            .map(|_| {
                let release = release.clone();
                green::spawn(move || {
                    release.wait();
                    thread::current().id() == root
                })
            })
            .collect();
        let live = green::hub::stats().green_threads;
        release.send(()).unwrap();
        let on_root_thread = gts.into_iter().all(|gt| gt.wait());
        (live, on_root_thread)
    })?;
    assert_eq!(seen, [(1, true), (2, true), (3, true)]);
    Ok(())
}

#[test]
fn results_come_back_in_index_order() -> io::Result<()> {
    // Thread i waits for thread i + 1 to finish first: they end in reverse.
    let done: Arc<Vec<Event<()>>> = Arc::new((0..4).map(|_| Event::new()).collect());
    let order = Arc::new(AtomicUsize::new(0));
    let (d, o) = (done.clone(), order.clone());
    let finished_as = common::within(Duration::from_secs(60), || {
        Hubs::new().threads(4).run(move |i| {
            if let Some(next) = d.get(i + 1) {
                next.wait();
            }
            let rank = o.fetch_add(1, Ordering::SeqCst);
            d[i].send(()).unwrap();
            (i, rank)
        })
    })?;
    assert_eq!(finished_as, [(0, 3), (1, 2), (2, 1), (3, 0)]);
    Ok(())
}

#[test]
fn default_count_is_available_parallelism() -> io::Result<()> {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let hubs = Hubs::new().spawn(|i| i)?;
    assert_eq!(hubs.len(), cores);
    assert_eq!(hubs.join(), (0..cores).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn zero_threads_is_invalid_input() {
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let err = Hubs::new()
        .threads(0)
        .spawn(move |_| r.store(true, Ordering::SeqCst))
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let err = Hubs::new().threads(0).run(|_| ()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn names_are_prefix_dash_index() -> io::Result<()> {
    let name = || thread::current().name().map(String::from);
    let named = Hubs::new().threads(2).name("web").run(move |_| name())?;
    assert_eq!(named, [Some("web-0".into()), Some("web-1".into())]);
    let default = Hubs::new().threads(2).run(move |_| name())?;
    assert_eq!(
        default,
        [Some("green-hub-0".into()), Some("green-hub-1".into())]
    );
    let hubs = Hubs::new().threads(2).name("x").spawn(|_| ())?;
    let names: Vec<_> = hubs.threads().map(|t| t.name().map(String::from)).collect();
    assert_eq!(names, [Some("x-0".into()), Some("x-1".into())]);
    hubs.join();
    Ok(())
}

#[test]
fn a_panic_carries_out_after_the_others_finish() -> io::Result<()> {
    let go = Event::new();
    let finished = Arc::new(AtomicUsize::new(0));
    let (g, fin) = (go.clone(), finished.clone());
    let hubs = Hubs::new().threads(3).spawn(move |i| {
        if i == 1 {
            // The others finish only after this panic has begun.
            g.send(()).unwrap();
            panic::panic_any(format!("hub {i} gives up"));
        }
        g.wait();
        fin.fetch_add(1, Ordering::SeqCst);
        i
    })?;
    let payload = panic::catch_unwind(panic::AssertUnwindSafe(|| hubs.join())).unwrap_err();
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("hub 1 gives up")
    );
    assert_eq!(finished.load(Ordering::SeqCst), 2, "join left early");
    Ok(())
}

#[test]
fn of_two_panics_the_lowest_index_carries_out() -> io::Result<()> {
    // Index 3 panics first in time; index 1 after it.
    let three_panicked = Event::new();
    let e = three_panicked.clone();
    let hubs = Hubs::new().threads(4).spawn(move |i| match i {
        1 => {
            e.wait();
            panic::panic_any(1usize)
        }
        3 => {
            // Sent by a guard as the panic unwinds.
            struct SendOnDrop(Event<()>);
            impl Drop for SendOnDrop {
                fn drop(&mut self) {
                    self.0.send(()).unwrap();
                }
            }
            let _guard = SendOnDrop(e.clone());
            panic::panic_any(3usize)
        }
        _ => i,
    })?;
    let payload = panic::catch_unwind(panic::AssertUnwindSafe(|| hubs.join())).unwrap_err();
    assert_eq!(payload.downcast_ref::<usize>(), Some(&1));
    Ok(())
}

#[test]
fn a_thread_that_cannot_start_is_an_error_and_f_runs_nowhere() {
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    // No address space holds this stack.
    let err = Hubs::new()
        .threads(2)
        .stack_size(usize::MAX / 2)
        .spawn(move |_| r.store(true, Ordering::SeqCst))
        .unwrap_err();
    assert!(err.raw_os_error().is_some(), "{err:?}");
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(Arc::strong_count(&ran), 1, "a clone of f was left behind");
}

/// Sets its flag when dropped: a green thread unwound drops it.
struct SetOnDrop(Arc<AtomicUsize>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn green_threads_left_behind_are_unwound_before_join_returns() -> io::Result<()> {
    let dropped = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let (d, s) = (dropped.clone(), started.clone());
    let hubs = Hubs::new().threads(2).spawn(move |_| {
        // One green thread parked forever, one never started.
        let guard = SetOnDrop(d.clone());
        let s2 = s.clone();
        green::spawn(move || {
            let _guard = guard;
            s2.fetch_add(1, Ordering::SeqCst);
            Event::<()>::new().wait();
        });
        green::yield_now();
        let never = SetOnDrop(d.clone());
        green::spawn(move || drop(never));
        // f returns without waiting for either.
    })?;
    hubs.join();
    assert_eq!(started.load(Ordering::SeqCst), 2);
    assert_eq!(dropped.load(Ordering::SeqCst), 4);
    Ok(())
}

#[test]
fn nothing_of_the_threads_is_left_after_join() -> io::Result<()> {
    let shared = Arc::new(());
    let s = shared.clone();
    let hubs = Hubs::new().threads(3).spawn(move |_| {
        let s = s.clone();
        green::spawn(move || drop(s)).wait();
    })?;
    hubs.join();
    // Every clone of `f`, and what its green threads held, is gone.
    assert_eq!(Arc::strong_count(&shared), 1);
    Ok(())
}

#[test]
fn join_from_a_green_thread_parks_only_it() {
    // The hub thread waits for a green thread of the joiner's hub: that one
    // can run only while `join` parks the joiner alone.
    let go = Event::new();
    let g = go.clone();
    let joiner = green::spawn(move || {
        let hubs = Hubs::new()
            .threads(1)
            .spawn(move |_| g.wait_timeout(Duration::from_secs(30)).is_some())
            .unwrap();
        hubs.join()
    });
    let sender = green::spawn(move || go.send(()).unwrap());
    assert_eq!(joiner.wait(), [true]);
    sender.wait();
}

#[test]
fn a_kill_ends_a_join_while_the_hubs_still_run() {
    // The hubs wait for an event sent only after the joiner was killed:
    // the kill must reach the joiner in its wait, not after the threads.
    let go = Event::new();
    let g = go.clone();
    let hubs = Hubs::new().threads(2).spawn(move |_| g.wait()).unwrap();
    let joiner = green::spawn(move || hubs.join());
    green::yield_now(); // it parks in join
    joiner.kill();
    common::within(Duration::from_secs(60), || {
        assert!(joiner.join().unwrap_err().is::<green::Killed>());
    });
    // The threads, detached, end once the event is sent.
    go.send(()).unwrap();
}

#[test]
fn reuseport_server_on_every_hub_serves_from_each() -> io::Result<()> {
    const HUBS: usize = 4;
    // One port for all: reserved by a socket bound with SO_REUSEPORT that
    // never listens, so it takes no connections.
    let reserve = green::net::TcpSocket::new_v4()?;
    reserve.set_reuseport(true)?;
    reserve.bind("127.0.0.1:0".parse().unwrap())?;
    let addr = reserve.local_addr()?;

    // Each hub says whether it listens, with the handle that stops it.
    let (ready, listening) = green::sync::mpsc::channel();
    let hubs = Hubs::new()
        .threads(HUBS)
        .spawn(move |i| -> io::Result<usize> {
            let server = green::listen(addr).map(|l| green::Server::new(l, 100));
            ready
                .send(server.as_ref().map(|s| s.handle()).ok())
                .unwrap();
            let served = Rc::new(Cell::new(0));
            let count = served.clone();
            server?.serve(move |mut s, _| {
                count.set(count.get() + 1);
                s.write_all(&[i as u8])
            })?;
            Ok(served.get())
        })?;
    // Every hub listens before the first connect.
    let stops: Vec<_> = listening.iter().take(HUBS).flatten().collect();
    if stops.len() < HUBS {
        stops.iter().for_each(|s| s.stop());
        hubs.join().into_iter().collect::<io::Result<Vec<_>>>()?;
        unreachable!("a hub that did not listen returned Ok");
    }

    // The kernel picks a listener by a hash of the connection's addresses:
    // connect until every hub has answered (4 hubs need about 8 connections;
    // the bound is never reached unless some hub gets none).
    let mut by_hub = [0usize; HUBS];
    let mut connections = 0;
    while by_hub.contains(&0) && connections < 10_000 {
        let mut reply = Vec::new();
        std::net::TcpStream::connect(addr)?.read_to_end(&mut reply)?;
        assert_eq!(reply.len(), 1, "{reply:?}");
        by_hub[reply[0] as usize] += 1;
        connections += 1;
    }
    stops.iter().for_each(|s| s.stop());
    let served = hubs.join().into_iter().collect::<io::Result<Vec<_>>>()?;
    assert_eq!(served, by_hub, "served per hub");
    assert!(
        !by_hub.contains(&0),
        "a hub served no connection: {by_hub:?}"
    );
    drop(reserve);
    Ok(())
}

#[test]
fn every_index_runs_at_the_same_time() -> io::Result<()> {
    // A std Barrier among the roots: every index runs at the same time.
    let barrier = Arc::new(Barrier::new(3));
    let b = barrier.clone();
    let leaders = common::within(Duration::from_secs(60), || {
        Hubs::new().threads(3).run(move |_| b.wait().is_leader())
    })?;
    assert_eq!(leaders.iter().filter(|&&l| l).count(), 1);
    Ok(())
}

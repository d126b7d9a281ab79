//! A green thread killed, or whose `green::Timeout` expires, while parked
//! inside a hooked std call: the call fails (`ECANCELED` for a kill,
//! `ETIMEDOUT` for a timeout) or, for a sleep, returns early; a std lock
//! keeps waiting. The unwind (`Killed`, `Elapsed`) comes at the thread's next
//! green park point, and the hub holds nothing of it afterwards.

use std::cell::RefCell;
use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the hub holds that a green thread's wait could leak.
fn held() -> (usize, usize, usize) {
    let s = green::hub::stats();
    (s.green_threads, s.timers, s.fd_waiters)
}

/// A connected pair made on this OS thread.
fn tcp_pair() -> io::Result<(TcpStream, TcpStream)> {
    green::spawn(|| -> io::Result<_> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let client = TcpStream::connect(listener.local_addr()?)?;
        let (server, _) = listener.accept()?;
        Ok((client, server))
    })
    .wait()
}

/// How a hooked call ended, as the green thread saw it.
type Outcome = Rc<RefCell<Option<(io::Result<usize>, Duration)>>>;

/// Spawns a green thread that reads `client` (no data will come), records
/// the read's outcome and then parks in `green::sleep`, where the unwind of
/// its cancellation is due. `timeout` starts a `green::Timeout` first.
fn reader(
    client: TcpStream,
    timeout: Option<Duration>,
    outcome: &Outcome,
) -> green::GreenThread<()> {
    let outcome = outcome.clone();
    green::spawn(move || {
        let _t = timeout.map(green::Timeout::new);
        let mut s = client;
        let start = Instant::now();
        let r = s.read(&mut [0; 8]);
        *outcome.borrow_mut() = Some((r, start.elapsed()));
        green::sleep(Duration::from_secs(3600));
        unreachable!("the cancellation unwinds from the sleep");
    })
}

#[test]
fn kill_during_std_read_fails_it_with_ecanceled_then_unwinds_at_the_next_park() -> io::Result<()> {
    green::patch();
    let (client, mut server) = tcp_pair()?;
    let baseline = held();
    let outcome = Outcome::default();
    let g = reader(client, None, &outcome);
    green::yield_now();
    // It is parked in the read, waiting for its fd.
    assert_eq!(green::hub::stats().fd_waiters, baseline.2 + 1);
    assert!(outcome.borrow().is_none());

    g.kill();
    let payload = g.join().expect_err("the green thread was killed");
    assert!(payload.is::<green::Killed>());
    let (r, _) = outcome.borrow_mut().take().expect("the read returned");
    let e = r.expect_err("the read failed");
    assert_eq!(e.raw_os_error(), Some(libc::ECANCELED), "{e}");
    // The unwind dropped the stream: the peer sees it closed.
    assert_eq!(server.read(&mut [0; 8])?, 0);
    assert_eq!(held(), baseline);
    Ok(())
}

#[test]
fn timeout_during_std_read_fails_it_with_etimedout_then_unwinds_at_the_next_park() -> io::Result<()>
{
    green::patch();
    let (client, mut server) = tcp_pair()?;
    let baseline = held();
    let outcome = Outcome::default();
    let timeout = Duration::from_millis(100);
    let g = reader(client, Some(timeout), &outcome);

    let payload = g.join().expect_err("the timeout expired");
    assert!(payload.is::<green::Elapsed>());
    let (r, elapsed) = outcome.borrow_mut().take().expect("the read returned");
    let e = r.expect_err("the read failed");
    assert_eq!(e.raw_os_error(), Some(libc::ETIMEDOUT), "{e}");
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    assert!(elapsed >= timeout, "the read failed after {elapsed:?}");
    // A margin of 50x for a loaded machine.
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert_eq!(server.read(&mut [0; 8])?, 0);
    assert_eq!(held(), baseline);
    Ok(())
}

/// Spawns a green thread that makes a std sleep of an hour, records how
/// long it lasted, and then yields, where the unwind of its cancellation is
/// due.
fn sleeper(
    timeout: Option<Duration>,
    slept: &Rc<RefCell<Option<Duration>>>,
) -> green::GreenThread<()> {
    let slept = slept.clone();
    green::spawn(move || {
        let _t = timeout.map(green::Timeout::new);
        let start = Instant::now();
        thread::sleep(Duration::from_secs(3600));
        *slept.borrow_mut() = Some(start.elapsed());
        green::yield_now();
        unreachable!("the cancellation unwinds from the yield");
    })
}

#[test]
fn kill_during_std_sleep_returns_it_early() {
    green::patch();
    let baseline = held();
    let slept = Rc::new(RefCell::new(None));
    let g = sleeper(None, &slept);
    green::yield_now();
    assert_eq!(green::hub::stats().timers, baseline.1 + 1, "it sleeps");

    g.kill();
    assert!(g.join().expect_err("killed").is::<green::Killed>());
    let slept = slept.borrow_mut().take().expect("the sleep returned");
    // Far less than the hour asked for.
    assert!(slept < Duration::from_secs(10), "slept {slept:?}");
    assert_eq!(held(), baseline);
}

#[test]
fn timeout_during_std_sleep_returns_it_early() {
    green::patch();
    let baseline = held();
    let slept = Rc::new(RefCell::new(None));
    let timeout = Duration::from_millis(100);
    let g = sleeper(Some(timeout), &slept);

    assert!(g.join().expect_err("timed out").is::<green::Elapsed>());
    let slept = slept.borrow_mut().take().expect("the sleep returned");
    assert!(slept >= timeout, "slept {slept:?}");
    // A margin of 50x for a loaded machine; the sleep asked for an hour.
    assert!(slept < Duration::from_secs(5), "slept {slept:?}");
    assert_eq!(held(), baseline);
}

#[test]
fn kill_during_std_mutex_lock_takes_effect_after_the_lock_is_taken() {
    green::patch();
    let baseline = held();
    let m = Arc::new(Mutex::new(0));
    let events = Rc::new(RefCell::new(Vec::new()));
    let guard = m.lock().expect("not poisoned");
    let g = {
        let (m, events) = (m.clone(), events.clone());
        green::spawn(move || {
            let mut g = m.lock().expect("not poisoned");
            events.borrow_mut().push("locked");
            *g += 1;
            drop(g);
            green::yield_now();
            unreachable!("the kill unwinds from the yield");
        })
    };
    // It waits for the lock this context holds.
    green::yield_now();
    g.kill();
    // The lock wait goes on: std's lock loop would spin on a wait that
    // returned at once.
    assert!(!g.is_finished(), "the kill did not end the lock wait");
    assert!(events.borrow().is_empty());

    events.borrow_mut().push("released");
    drop(guard);
    assert!(g.join().expect_err("killed").is::<green::Killed>());
    assert_eq!(*events.borrow(), ["released", "locked"]);
    assert!(
        !m.is_poisoned(),
        "the kill came after the guard was dropped"
    );
    assert_eq!(*m.lock().expect("not poisoned"), 1);
    assert_eq!(held(), baseline);
}

//! `green::debug`, its four tools in turn:
//!
//! 1. The blocking detector names the green thread that holds its hub,
//!    where it was spawned, and what its OS thread is doing. Three green
//!    threads each hold their hub for 300 ms in a way green cannot see
//!    through: a loop that computes, std's `thread::sleep` (not green's),
//!    and a `std::sync::Mutex` that another OS thread holds. With a 100 ms
//!    threshold, each is reported on stderr, then again when it lets go.
//! 2. A dump of every green thread and what it waits on, printed on
//!    `SIGUSR1` as Go prints its goroutines on `SIGQUIT`.
//! 3. The backdoor: a console on a loopback port, driven here by a plain
//!    TCP client as an operator would with `nc`: `stats`, `kill ID`.
//! 4. "Would block forever": a wait that nothing can end panics with the
//!    dump instead of sleeping for ever.
//!
//! ```sh
//! cargo run --example debugging
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

fn main() {
    detector();
    let workers = park_some();
    dump_on_signal();
    backdoor(workers.sleeper.id());
    workers.finish();
    would_block_forever();
}

fn detector() {
    green::debug::hub_blocking_detection(Some(Duration::from_millis(100)));
    let (report, reports) = mpsc::channel();
    green::debug::on_blocking(move |r| {
        let _ = report.send(r.ended);
    });

    // A computation with no park point.
    let checksum = green::Builder::new()
        .name("checksum")
        .spawn(|| {
            let start = Instant::now();
            let mut x = 0u64;
            while start.elapsed() < Duration::from_millis(300) {
                x = x.wrapping_mul(31).wrapping_add(1);
            }
            x
        })
        .expect("spawn");
    checksum.wait();

    // A blocking call green does not make cooperative (no patch() here).
    green::spawn(|| std::thread::sleep(Duration::from_millis(300))).wait();

    // A std lock that another OS thread holds for 300 ms.
    let lock = Arc::new(Mutex::new(0u32));
    let (held, is_held) = mpsc::channel();
    let holder = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            let _g = lock.lock().unwrap();
            held.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        })
    };
    is_held.recv().unwrap();
    let locker = {
        let lock = lock.clone();
        green::spawn(move || *lock.lock().unwrap() += 1)
    };
    locker.wait();
    holder.join().unwrap();

    // Each stall is reported, then its end (the last end on the
    // watchdog's next look).
    let ends: Vec<bool> = (0..6)
        .map(|_| {
            reports
                .recv_timeout(Duration::from_secs(10))
                .expect("a report")
        })
        .collect();
    green::debug::hub_blocking_detection(None);
    assert_eq!(ends, [false, true, false, true, false, true]);
    println!("6 reports: three stalls, each reported when it passed 100 ms and when it ended");
}

/// Green threads parked on a sleep, a green mutex, a channel and a join.
struct Workers {
    sleeper: green::GreenThread<()>,
    locker: green::GreenThread<()>,
    joiner: green::GreenThread<()>,
    tx: green::sync::mpsc::Sender<u32>,
    guard: Arc<green::sync::Mutex<u32>>,
}

fn park_some() -> Workers {
    let guard = Arc::new(green::sync::Mutex::new(0));
    let held = guard.clone();
    let sleeper = green::Builder::new()
        .name("sleeper")
        .spawn(move || {
            let _g = held.lock().unwrap();
            green::sleep(Duration::from_secs(3600));
        })
        .expect("spawn");
    green::yield_now();
    let lock = guard.clone();
    let locker = green::Builder::new()
        .name("locker")
        .spawn(move || *lock.lock().unwrap() += 1)
        .expect("spawn");
    let (tx, rx) = green::sync::mpsc::channel::<u32>();
    let receiver = green::Builder::new()
        .name("receiver")
        .spawn(move || {
            let _ = rx.recv();
        })
        .expect("spawn");
    let joiner = green::spawn(move || receiver.wait());
    green::yield_now();
    Workers {
        sleeper,
        locker,
        joiner,
        tx,
        guard,
    }
}

impl Workers {
    fn finish(self) {
        self.tx.send(1).unwrap();
        self.joiner.wait();
        assert!(self.sleeper.join().unwrap_err().is::<green::Killed>());
        self.locker.wait();
        assert_eq!(*self.guard.lock().unwrap(), 1);
    }
}

fn dump_on_signal() {
    green::debug::dump_on_signal(libc::SIGUSR1).expect("dump_on_signal");
    // SAFETY: raise(3) has no preconditions.
    assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
    // The dump is written by the `green-dump` thread; give it a moment.
    green::sleep(Duration::from_millis(200));
}

/// An operator's session on the backdoor, from a plain OS thread.
fn backdoor(sleeper: u64) {
    let door = green::debug::serve_backdoor("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap())
        .expect("serve_backdoor");
    let addr = door.local_addr().to_string();
    let session = std::thread::spawn(move || -> std::io::Result<String> {
        let mut s = TcpStream::connect(addr)?;
        s.write_all(format!("stats\nkill {sleeper}\nquit\n").as_bytes())?;
        let mut out = String::new();
        for line in BufReader::new(s).lines() {
            out.push_str(&line?);
            out.push('\n');
        }
        Ok(out)
    });
    // The root waits in tpool (parked, so the hub runs): the backdoor
    // answers from its own OS thread, and the kill reaches this hub.
    let out = green::tpool::execute(move || session.join())
        .unwrap()
        .expect("the session");
    print!("backdoor session:\n{out}");
    assert!(out.contains(&format!("killed green thread {sleeper}")));
    door.stop();
}

/// The root waits on an Event no one else holds: it can never be sent.
fn would_block_forever() {
    let never = green::Event::<()>::new();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let err = std::panic::catch_unwind(|| never.wait()).unwrap_err();
    std::panic::set_hook(hook);
    let msg = err.downcast_ref::<String>().expect("a message");
    println!("the wait panicked:\n{msg}");
    assert!(msg.contains("would block forever"));
}

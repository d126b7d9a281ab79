//! `green::signal`: green threads wait for signals through a signalfd.
//!
//! Signals are process-wide, so every test that sends a process-directed
//! signal (`kill -TERM <pid>`) sends it to a child: this binary again, with
//! `GREEN_SIGNAL_CHILD` naming the role, run with `--exact`. libtest's own
//! threads exist before any test runs and would take a process-directed
//! signal they do not block, so the child starts with the signals blocked
//! (the mask is kept across `exec`): what a program gets by creating its
//! first `Signals` on the main thread before it starts other threads.
//!
//! The tests that run in this process send only thread-directed signals
//! (`tgkill`) to threads that block them, mostly `SIGURG` and `SIGWINCH`,
//! whose default action is to do nothing.

mod common;

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use green::hub::{self, Interest};
use green::signal::Signals;
use libc::{c_int, SIGHUP, SIGINT, SIGTERM, SIGURG, SIGWINCH};

const CHILD: &str = "GREEN_SIGNAL_CHILD";

/// Whether this process is the child for `test`.
fn is_child(test: &str) -> bool {
    std::env::var(CHILD).as_deref() == Ok(test)
}

/// Sends `sig` to thread `tid` of this process (`tgkill`).
fn signal_thread(tid: libc::pid_t, sig: c_int) {
    // SAFETY: a plain tgkill(2) to a thread of this process that blocks
    // `sig` (it holds a `Signals` for it): the signal waits for a read.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, sig) };
    assert_eq!(r, 0, "tgkill: {}", io::Error::last_os_error());
}

/// Whether the calling thread blocks `sig`.
fn blocked_here(sig: c_int) -> bool {
    // SAFETY: an all-zero sigset_t is a valid (empty) set.
    let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: reads the calling thread's mask into `mask` (no new set).
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask) };
    assert_eq!(r, 0);
    // SAFETY: `mask` is a valid set and `sig` a valid signal number.
    unsafe { libc::sigismember(&mask, sig) == 1 }
}

/// Blocks (`how` = `SIG_BLOCK`) or unblocks `sig` in the calling thread.
fn set_blocked(sig: c_int, how: c_int) {
    // SAFETY: an all-zero sigset_t is a valid (empty) set.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid set; `sig` a valid signal that the C
    // library does not keep for itself.
    let r = unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(how, &set, std::ptr::null_mut())
    };
    assert_eq!(r, 0);
}

// -------------------------------------------------------------------------
// The child processes

/// A line on the child's stdout, for the parent to read.
fn say(line: &str) {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// A child process running one role of this binary, its stdout read line
/// by line.
struct Kid {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    seen: String,
}

impl Drop for Kid {
    /// A failed assertion in the parent must not leave the child running
    /// (with SIGTERM blocked, a plain `kill` would not end it).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Kid {
    /// Starts this binary running only `test`, as the child, with `blocked`
    /// blocked in its every thread from the start.
    fn spawn(test: &str, blocked: &[c_int]) -> io::Result<Kid> {
        // SAFETY: an all-zero sigset_t is a valid (empty) set.
        let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        for &sig in blocked {
            // SAFETY: `mask` is a valid set and `sig` a valid signal.
            assert_eq!(unsafe { libc::sigaddset(&mut mask, sig) }, 0);
        }
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(CHILD, test)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: between fork and exec the closure makes one
        // async-signal-safe call on a set built before the fork.
        unsafe {
            cmd.pre_exec(move || {
                match libc::pthread_sigmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut()) {
                    0 => Ok(()),
                    e => Err(io::Error::from_raw_os_error(e)),
                }
            });
        }
        let mut child = cmd.spawn()?;
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut err = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Ok(Kid {
            child,
            lines,
            stderr: Some(stderr),
            seen: String::new(),
        })
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Reads lines up to one that contains `marker`; returns what follows
    /// the marker on it. A child that ends first, or says nothing for a
    /// minute, fails the test with what it printed.
    fn expect(&mut self, marker: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                    // libtest's "test NAME ... " may come first on a line.
                    if let Some(rest) = line.split(marker).nth(1) {
                        return rest.trim().to_string();
                    }
                }
                Err(e) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "no {marker:?} from the child ({e}); its stdout:\n{}",
                        self.seen
                    );
                }
            }
        }
    }

    /// Sends a signal to the child with the `kill` command, as a shell
    /// would (`sig` as `kill` takes it: "-TERM").
    fn kill(&self, sig: &str) -> io::Result<()> {
        let status = Command::new("kill").args([sig, &self.pid()]).status()?;
        assert!(status.success(), "kill {sig}: {status}");
        Ok(())
    }

    /// Waits for the child's end, which must be a success.
    fn finish(mut self) -> io::Result<()> {
        let status = self.child.wait()?;
        let err = self
            .stderr
            .take()
            .map(|t| t.join().unwrap())
            .unwrap_or_default();
        assert!(
            status.success(),
            "child: {status}\nstdout:\n{}\nstderr:\n{err}",
            self.seen
        );
        Ok(())
    }
}

/// Waits until the hub of the child's thread `tid` sleeps in its poller.
fn wait_until_asleep(pid: &str, tid: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !common::task_asleep_in_poller(pid, tid) {
        assert!(Instant::now() < deadline, "child thread {tid} never slept");
        std::thread::yield_now();
    }
}

#[test]
fn kill_term_wakes_the_waiting_green_thread() -> io::Result<()> {
    const NAME: &str = "kill_term_wakes_the_waiting_green_thread";
    if is_child(NAME) {
        let waiter = green::spawn(|| -> io::Result<()> {
            let signals = Signals::new(&[SIGTERM, SIGHUP])?;
            loop {
                let sig = signals.wait()?;
                say(&format!("got {sig}"));
                if sig == SIGTERM {
                    return Ok(());
                }
            }
        });
        let ticks = Rc::new(Cell::new(0u32));
        let t = ticks.clone();
        let ticker = green::spawn(move || loop {
            green::sleep(Duration::from_millis(10));
            t.set(t.get() + 1);
            say(&format!("tick {}", t.get()));
        });
        while hub::stats().fd_waiters == 0 {
            green::yield_now(); // the waiter blocks the signals and parks
        }
        say("ready");
        waiter.wait()?;
        ticker.kill();
        say(&format!("done after {} ticks", ticks.get()));
        return Ok(());
    }
    let mut kid = Kid::spawn(NAME, &[SIGTERM, SIGHUP])?;
    kid.expect("ready");
    // The hub runs the ticker while the waiter is parked.
    kid.expect("tick");
    kid.kill("-HUP")?;
    assert_eq!(kid.expect("got"), SIGHUP.to_string());
    kid.expect("tick");
    kid.kill("-TERM")?;
    assert_eq!(kid.expect("got"), SIGTERM.to_string());
    kid.expect("done after");
    kid.finish()
}

#[test]
fn kill_int_wakes_a_plain_thread() -> io::Result<()> {
    const NAME: &str = "kill_int_wakes_a_plain_thread";
    if is_child(NAME) {
        // A plain thread, no green thread: the wait runs its hub in place.
        say(&format!("ready {}", common::tid()));
        let sig = green::signal::wait(&[SIGINT])?;
        say(&format!("got {sig}"));
        return Ok(());
    }
    let mut kid = Kid::spawn(NAME, &[SIGINT])?;
    let tid = kid.expect("ready");
    // Sent while the thread sleeps in its poller: the signal wakes it.
    wait_until_asleep(&kid.pid(), &tid);
    kid.kill("-INT")?;
    assert_eq!(kid.expect("got"), SIGINT.to_string());
    kid.finish()
}

/// Hubs "a" and "b", each with a green thread waiting on its own `Signals`
/// for `sig`: each says `(name, tid)` once its waiter is parked, then
/// `(name, signal)` once it woke (having found nothing else pending).
#[allow(clippy::type_complexity)]
fn two_hubs_waiting_on(
    sig: c_int,
) -> (
    Vec<std::thread::JoinHandle<io::Result<()>>>,
    mpsc::Receiver<(&'static str, libc::pid_t)>,
    mpsc::Receiver<(&'static str, c_int)>,
) {
    let (ready_tx, ready) = mpsc::channel();
    let (woke_tx, woke) = mpsc::channel();
    let hubs = ["a", "b"]
        .into_iter()
        .map(|name| {
            let (ready_tx, woke_tx) = (ready_tx.clone(), woke_tx.clone());
            std::thread::spawn(move || -> io::Result<()> {
                let signals = Signals::new(&[sig])?;
                let waiter = green::spawn(move || {
                    let got = signals.wait()?;
                    // Exactly one: nothing else is pending here.
                    assert_eq!(signals.try_wait()?, None);
                    Ok::<_, io::Error>(got)
                });
                green::yield_now(); // it parks
                ready_tx.send((name, common::tid())).unwrap();
                woke_tx.send((name, waiter.wait()?)).unwrap();
                Ok(())
            })
        })
        .collect();
    (hubs, ready, woke)
}

#[test]
fn one_process_signal_wakes_one_of_two_hubs() -> io::Result<()> {
    const NAME: &str = "one_process_signal_wakes_one_of_two_hubs";
    if is_child(NAME) {
        let (hubs, ready, woke) = two_hubs_waiting_on(SIGTERM);
        for _ in 0..2 {
            common::wait_until_asleep_in_poller(ready.recv().unwrap().1);
        }
        say("ready");
        let (first, sig) = woke.recv().unwrap();
        say(&format!("woke {first} {sig}"));
        let (second, sig) = woke.recv().unwrap();
        say(&format!("woke {second} {sig}"));
        assert_ne!(first, second);
        for h in hubs {
            h.join().unwrap()?;
        }
        // Each SIGTERM was read once: none is left pending.
        assert_eq!(Signals::new(&[SIGTERM])?.try_wait()?, None);
        say("done");
        return Ok(());
    }
    let mut kid = Kid::spawn(NAME, &[SIGTERM])?;
    kid.expect("ready");
    kid.kill("-TERM")?;
    let first = kid.expect("woke");
    kid.kill("-TERM")?;
    let second = kid.expect("woke");
    kid.expect("done");
    assert!(first.ends_with(&format!(" {SIGTERM}")), "{first}");
    assert!(second.ends_with(&format!(" {SIGTERM}")), "{second}");
    kid.finish()
}

// -------------------------------------------------------------------------
// In this process: thread-directed signals only

#[test]
fn a_wait_parks_only_its_green_thread() -> io::Result<()> {
    let signals = Signals::new(&[SIGURG])?;
    let waiter = green::spawn(move || signals.wait());
    let done = green::Event::new();
    let d = done.clone();
    let worker = green::spawn(move || {
        for _ in 0..3 {
            green::sleep(Duration::from_millis(1));
        }
        d.send(()).unwrap();
    });
    done.wait(); // the worker ran to its end meanwhile
    worker.wait();
    assert!(!waiter.is_finished());
    assert_eq!(hub::stats().fd_waiters, 1);
    // From another OS thread, once this hub sleeps in its poller.
    let tid = common::tid();
    let sender = std::thread::spawn(move || {
        common::wait_until_asleep_in_poller(tid);
        signal_thread(tid, SIGURG);
    });
    assert_eq!(waiter.wait()?, SIGURG);
    sender.join().unwrap();
    Ok(())
}

#[test]
fn thread_directed_signals_reach_their_own_hub() -> io::Result<()> {
    let (hubs, ready, woke) = two_hubs_waiting_on(SIGWINCH);
    let mut tids = [0; 2];
    for _ in 0..2 {
        let (name, tid) = ready.recv().unwrap();
        tids[usize::from(name == "b")] = tid;
    }
    // b's signal wakes b, and only b: a is still parked when b reports.
    signal_thread(tids[1], SIGWINCH);
    assert_eq!(woke.recv().unwrap(), ("b", SIGWINCH));
    signal_thread(tids[0], SIGWINCH);
    assert_eq!(woke.recv().unwrap(), ("a", SIGWINCH));
    for h in hubs {
        h.join().unwrap()?;
    }
    Ok(())
}

#[test]
fn wait_from_a_plain_thread() -> io::Result<()> {
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || -> io::Result<c_int> {
        let signals = Signals::new(&[SIGURG])?;
        tx.send(common::tid()).unwrap();
        signals.wait()
    });
    let tid = rx.recv().unwrap();
    common::wait_until_asleep_in_poller(tid);
    signal_thread(tid, SIGURG);
    assert_eq!(waiter.join().unwrap()?, SIGURG);
    Ok(())
}

#[test]
fn wait_timeout_expires_without_a_signal() -> io::Result<()> {
    let signals = Signals::new(&[SIGURG])?;
    let start = Instant::now();
    assert_eq!(signals.wait_timeout(Duration::from_millis(30))?, None);
    assert!(start.elapsed() >= Duration::from_millis(30));
    let s = hub::stats();
    assert_eq!((s.timers, s.fd_waiters), (0, 0));
    // A signal already pending is returned at once, even with no time.
    signal_thread(common::tid(), SIGURG);
    assert_eq!(signals.wait_timeout(Duration::ZERO)?, Some(SIGURG));
    assert_eq!(signals.try_wait()?, None);
    Ok(())
}

#[test]
fn kill_during_wait_leaves_nothing_registered() -> io::Result<()> {
    let before = hub::stats();
    let waiter = green::spawn(|| Signals::new(&[SIGURG])?.wait());
    green::yield_now(); // it parks on the signalfd
    let s = hub::stats();
    assert_eq!(s.fd_waiters, before.fd_waiters + 1);
    assert_eq!(s.registered_fds, before.registered_fds + 1);
    assert!(blocked_here(SIGURG));
    waiter.kill();
    assert!(waiter.join().unwrap_err().is::<green::Killed>());
    let after = hub::stats();
    assert_eq!(after.fd_waiters, before.fd_waiters);
    assert_eq!(after.registered_fds, before.registered_fds);
    assert_eq!(after.timers, before.timers);
    // The unwinding dropped the Signals: the mask is as it was.
    assert!(!blocked_here(SIGURG));
    Ok(())
}

#[test]
fn timeout_during_wait_leaves_nothing_registered() -> io::Result<()> {
    let signals = Signals::new(&[SIGURG])?;
    let before = hub::stats();
    let r = green::with_timeout(Duration::from_millis(10), || signals.wait());
    assert!(r.is_err(), "{r:?}");
    let s = hub::stats();
    assert_eq!((s.fd_waiters, s.timers), (before.fd_waiters, 0));
    // The timeout read nothing: a later signal goes to the next wait.
    signal_thread(common::tid(), SIGURG);
    assert_eq!(signals.wait()?, SIGURG);
    drop(signals);
    assert_eq!(hub::stats().registered_fds, before.registered_fds);
    Ok(())
}

#[test]
fn signals_that_cannot_be_waited_for_are_refused() {
    let e = Signals::new(&[]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("no signals"), "{e}");
    let reserved = libc::SIGRTMIN() - 1; // the C library's
    for sig in [
        0,
        -1,
        65,
        1000,
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGFPE,
        reserved,
    ] {
        let e = Signals::new(&[SIGTERM, sig]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{sig}");
        let msg = e.to_string();
        assert!(msg.starts_with("green::signal: "), "{msg}");
        assert!(msg.contains(&sig.to_string()), "{msg}");
        let e = green::signal::wait(&[sig]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{sig}");
    }
    // Nothing was blocked on the way.
    assert!(!blocked_here(SIGTERM));
}

#[test]
fn the_mask_is_restored_when_the_last_signals_drops() -> io::Result<()> {
    use libc::{SIGPROF, SIGUSR1, SIGUSR2};
    assert!(!blocked_here(SIGUSR1) && !blocked_here(SIGUSR2));
    let first = Signals::new(&[SIGUSR1])?;
    assert!(blocked_here(SIGUSR1));
    let second = Signals::new(&[SIGUSR1, SIGUSR2])?;
    drop(first);
    assert!(blocked_here(SIGUSR1), "the second one still takes it");
    drop(second);
    assert!(!blocked_here(SIGUSR1) && !blocked_here(SIGUSR2));
    // A signal the program blocked itself stays blocked.
    set_blocked(SIGPROF, libc::SIG_BLOCK);
    drop(Signals::new(&[SIGPROF])?);
    assert!(blocked_here(SIGPROF));
    set_blocked(SIGPROF, libc::SIG_UNBLOCK);
    Ok(())
}

#[test]
fn threads_started_later_and_children_inherit_the_mask() -> io::Result<()> {
    use libc::SIGUSR2;
    // A thread that exists already is not touched.
    let (asked_tx, asked) = mpsc::channel::<()>();
    let older = std::thread::spawn(move || {
        asked.recv().unwrap();
        blocked_here(SIGUSR2)
    });
    let signals = Signals::new(&[SIGUSR2])?;
    asked_tx.send(()).unwrap();
    assert!(!older.join().unwrap());
    assert!(std::thread::spawn(|| blocked_here(SIGUSR2)).join().unwrap());
    // A child process starts with it blocked too.
    let out = Command::new("grep")
        .args(["SigBlk", "/proc/self/status"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.trim().trim_start_matches("SigBlk:").trim();
    let mask = u64::from_str_radix(hex, 16).unwrap();
    assert_ne!(mask & (1 << (SIGUSR2 - 1)), 0, "{text}");
    drop(signals);
    Ok(())
}

#[test]
fn an_unread_signal_is_delivered_when_the_last_signals_drops() -> io::Result<()> {
    static HANDLED: AtomicUsize = AtomicUsize::new(0);
    extern "C" fn count(_: c_int) {
        HANDLED.fetch_add(1, Ordering::SeqCst);
    }
    // A real-time signal no other test uses, with a handler that counts.
    let sig = libc::SIGRTMIN() + 4;
    // SAFETY: an all-zero sigaction is valid; the fields are set below.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = count as extern "C" fn(c_int) as usize;
    act.sa_flags = libc::SA_RESTART;
    // SAFETY: `act` is valid; the handler only adds to an atomic.
    assert_eq!(
        unsafe { libc::sigaction(sig, &act, std::ptr::null_mut()) },
        0
    );
    let signals = Signals::new(&[sig])?;
    signal_thread(common::tid(), sig);
    assert_eq!(HANDLED.load(Ordering::SeqCst), 0, "blocked: it waits");
    drop(signals);
    // Unblocked as the Signals drops: the handler ran before drop returned.
    assert_eq!(HANDLED.load(Ordering::SeqCst), 1);
    Ok(())
}

#[test]
fn two_signals_of_one_thread_read_each_signal_once() -> io::Result<()> {
    let a = Signals::new(&[SIGURG])?;
    let b = Signals::new(&[SIGURG, SIGWINCH])?;
    signal_thread(common::tid(), SIGURG);
    let got = [a.try_wait()?, b.try_wait()?];
    assert_eq!(got.iter().flatten().count(), 1, "{got:?}");
    assert_eq!((a.try_wait()?, b.try_wait()?), (None, None));
    Ok(())
}

#[test]
fn the_signalfd_composes_with_fd_waits() -> io::Result<()> {
    let signals = Signals::new(&[SIGWINCH, SIGURG])?;
    let fd = signals.as_raw_fd();
    let shown = format!("{signals:?}");
    assert!(
        shown.contains("SIGURG (23)") && shown.contains("SIGWINCH (28)"),
        "{shown}"
    );
    let tid = common::tid();
    let sender = std::thread::spawn(move || {
        common::wait_until_asleep_in_poller(tid);
        signal_thread(tid, SIGWINCH);
    });
    hub::trampoline(fd, Interest::Read, Some(Duration::from_secs(60)))?;
    sender.join().unwrap();
    assert_eq!(signals.try_wait()?, Some(SIGWINCH));
    Ok(())
}

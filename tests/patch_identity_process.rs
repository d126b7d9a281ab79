//! Child processes from green threads that are threads of their own under
//! `green::patch()`: std's `Command` (spawn, pipes, wait) from ten green
//! threads at once, and a raw `fork` from a green thread, whose child must
//! come out a working single-threaded process while the parent's other
//! green threads go on.

#[path = "common/identity.rs"]
mod identity;

use std::process::Command;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use identity::{assert_all_on_os_thread, os_tid, Ticker, Watchdog};

/// How long any one test here may run before the watchdog ends the process.
const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn identity_is_per_green_thread() {
    identity::patch_with_identity();
}

#[test]
fn command_output_from_ten_green_threads_at_once_overlaps() {
    green::patch();
    let _w = Watchdog::new("Command::output", LIMIT);
    const CHILDREN: usize = 10;
    let me = os_tid();
    let start = Instant::now();
    let children: Vec<_> = (0..CHILDREN)
        .map(|_| {
            green::spawn(|| {
                let began = Instant::now();
                let out = Command::new("sh")
                    .args(["-c", "sleep 0.2; echo hi"])
                    .output();
                (out, began, Instant::now(), os_tid())
            })
        })
        .collect();
    let mut tids = Vec::new();
    let mut spans = Vec::new();
    for (i, c) in children.into_iter().enumerate() {
        let (out, began, ended, tid) = c.wait();
        let out = out.unwrap_or_else(|e| panic!("child {i}: {e}"));
        assert!(out.status.success(), "child {i}: {}", out.status);
        assert_eq!(out.stdout, b"hi\n", "child {i}'s output");
        spans.push((began, ended));
        tids.push(tid);
    }
    let elapsed = start.elapsed();
    println!("{CHILDREN} children in {elapsed:?}");
    assert_all_on_os_thread(&tids, me);
    // Every child was started before the first had finished: they ran at
    // once, not one after another.
    let last_start = spans.iter().map(|s| s.0).max().expect("children");
    let first_end = spans.iter().map(|s| s.1).min().expect("children");
    assert!(
        last_start < first_end,
        "a child started only after another had finished"
    );
    // At once: about one 200 ms sleep. One at a time: 10 x 200 ms = 2 s.
    // 1.5 s leaves a margin of 7x for a loaded machine and still shows the
    // waits overlapped.
    assert!(
        elapsed < Duration::from_millis(1500),
        "{CHILDREN} children took {elapsed:?}"
    );
}

#[test]
fn raw_fork_from_a_green_thread_child_exits_7_and_parent_waitpid_parks() {
    green::patch();
    let _w = Watchdog::new("fork", LIMIT);
    let me = os_tid();
    // The child makes only async-signal-safe calls: a real nanosleep
    // (looked up now, in the parent, so that the child does not have to),
    // getpid and _exit.
    let child_sleep = libc::timespec {
        tv_sec: 0,
        tv_nsec: 200_000_000,
    };
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec; no remainder asked for.
    unsafe { green::patch::original::nanosleep(&zero, std::ptr::null_mut()) };
    let ticker = Ticker::start();
    let parent = {
        let ticks = ticker.counter();
        green::spawn(move || {
            let id_before = thread::current().id();
            // SAFETY: getpid has no preconditions.
            let parent_pid = unsafe { libc::getpid() };
            // SAFETY: the child below makes async-signal-safe calls only.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // The child: sleeps 200 ms on its own OS thread, then exits
                // with 7 if it really is another process.
                // SAFETY: valid arguments; _exit ends the process at once.
                unsafe {
                    green::patch::original::nanosleep(&child_sleep, std::ptr::null_mut());
                    libc::_exit(if libc::getpid() != parent_pid { 7 } else { 1 });
                }
            }
            assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
            let t0 = ticks.load(Ordering::SeqCst);
            let mut status = 0;
            // SAFETY: our own child; a valid status pointer.
            let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
            let ticked = ticks.load(Ordering::SeqCst) - t0;
            let same_id = thread::current().id() == id_before;
            (waited == pid, status, ticked, same_id, os_tid())
        })
    };
    let (reaped, status, ticked, same_id, tid) = parent.wait();
    let ticks = ticker.stop(me);
    assert_all_on_os_thread(&[tid], me);
    assert!(reaped, "waitpid returned another pid");
    assert!(
        libc::WIFEXITED(status),
        "the child did not exit normally: status {status:#x}"
    );
    assert_eq!(libc::WEXITSTATUS(status), 7, "the child's exit status");
    assert!(
        same_id,
        "the parent green thread changed identity over fork"
    );
    // The child slept 200 ms: twenty ticker periods.
    assert!(
        ticked >= 1,
        "the ticker did not tick while the parent waited ({ticks} ticks in all)"
    );
}

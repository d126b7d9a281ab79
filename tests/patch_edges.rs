//! Edge cases of `patch()` that once went wrong: each test pins one.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

mod common;
#[path = "common/patched.rs"]
mod patched;

/// A green thread on a shared stack, blocked on a std `Mutex` that a plain
/// OS thread holds, is woken when it is released, while other shared-stack
/// green threads run over the same stack memory meanwhile.
#[test]
fn shared_stack_green_thread_waits_on_a_std_mutex() {
    green::patch();
    let m = Arc::new(Mutex::new(0u32));
    let (locked_tx, locked_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let m2 = m.clone();
    let holder = thread::spawn(move || {
        let mut g = m2.lock().unwrap();
        locked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        *g += 1;
    });
    locked_rx.recv().unwrap();
    // SAFETY: the closures lend nothing from their stacks to other threads.
    let builder = || unsafe { green::Builder::new().shared_stack() };
    let m3 = m.clone();
    let waiter = builder()
        .spawn(move || {
            *m3.lock().unwrap() += 10;
        })
        .unwrap();
    // Others overwrite the shared stack while the waiter is parked.
    let scribblers: Vec<_> = (0..8)
        .map(|i| {
            builder()
                .spawn(move || {
                    let buf = std::hint::black_box([i as u8; 2048]);
                    green::sleep(Duration::from_millis(5));
                    buf.iter().map(|&b| b as u32).sum::<u32>()
                })
                .unwrap()
        })
        .collect();
    for (i, s) in scribblers.into_iter().enumerate() {
        assert_eq!(s.wait(), i as u32 * 2048);
    }
    release_tx.send(()).unwrap();
    waiter.wait();
    holder.join().unwrap();
    assert_eq!(*m.lock().unwrap(), 11);
}

/// A kill reported to a hooked call as an error does not stay with the
/// slot: the next green thread is not killed by it.
#[test]
fn a_kill_reported_as_an_error_does_not_reach_the_next_green_thread() -> io::Result<()> {
    green::patch();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let victim = green::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let mut b = [0u8; 1];
        // The read fails with the kill, and the thread panics on it.
        s.read_exact(&mut b).unwrap();
    });
    green::yield_now();
    green::yield_now();
    victim.kill();
    assert!(victim.join().is_err());
    let next = green::spawn(|| {
        green::sleep(Duration::from_millis(5));
        42
    });
    assert_eq!(next.join().ok(), Some(42));
    Ok(())
}

/// A plain OS thread's write to a blocking pipe that a green thread also
/// wrote to is written whole, as a blocking write is.
#[test]
fn a_plain_threads_pipe_write_is_not_cut_short() -> io::Result<()> {
    green::patch();
    let (r, w) = os_pipe::pipe()?;
    // A green thread writes and reads the pipe: its ends are known to the
    // hooks as blocking pipes.
    let (mut r, w, five) = green::spawn(move || {
        let (mut r, mut w) = (r, w);
        w.write_all(b"green")?;
        let mut five = [0u8; 5];
        r.read_exact(&mut five).map(|()| (r, w, five))
    })
    .wait()?;
    assert_eq!(&five, b"green");
    let reader = thread::spawn(move || {
        let mut all = Vec::new();
        r.read_to_end(&mut all).map(|_| all.len())
    });
    let fd = w.as_raw_fd();
    let n = thread::spawn(move || {
        let big = vec![7u8; 100_000];
        // SAFETY: a valid buffer and an fd that stays open until the join.
        unsafe { libc::write(fd, big.as_ptr().cast(), big.len()) }
    })
    .join()
    .unwrap();
    assert_eq!(n, 100_000);
    drop(w);
    assert_eq!(reader.join().unwrap()?, 100_000);
    Ok(())
}

/// `waitpid` on a pid that is not a child fails at once with `ECHILD`, as
/// the kernel does, instead of waiting for that process to exit.
#[test]
fn waitpid_on_a_non_child_fails_at_once() {
    green::patch();
    let rc = green::spawn(|| {
        let mut status = 0;
        // SAFETY: a valid status pointer; pid 1 is never our child.
        let rc = unsafe { libc::waitpid(1, &mut status, 0) };
        (rc, io::Error::last_os_error().raw_os_error())
    })
    .wait();
    assert_eq!(rc, (-1, Some(libc::ECHILD)));
}

/// A failed `dup2` onto an open socket leaves it as it was: still blocking
/// to its owner, still parking its green reader.
#[test]
fn a_failed_dup2_leaves_the_target_alone() -> io::Result<()> {
    green::patch();
    green::spawn(|| -> io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let mut client = TcpStream::connect(listener.local_addr()?)?;
        let (mut server, _) = listener.accept()?;
        let fd = server.as_raw_fd();
        // SAFETY: -1 is not an fd: the call fails with EBADF.
        assert_eq!(unsafe { libc::dup2(-1, fd) }, -1);
        let writer = green::spawn(move || client.write_all(b"x"));
        let mut b = [0u8; 1];
        // Parks until the writer runs, rather than failing with WouldBlock.
        server.read_exact(&mut b)?;
        writer.wait()?;
        assert_eq!(&b, b"x");
        Ok(())
    })
    .wait()
}

/// A `poll` that lists one fd twice, for different events, wakes when the
/// second entry's event comes (not only the first's). Margin: the event
/// comes after 20 ms, the poll may take up to 5 s of its 30 s timeout.
#[test]
fn poll_with_an_fd_listed_twice_waits_for_both_entries() -> io::Result<()> {
    green::patch();
    let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
    // Fill `a` so that it is not writable: only the read entry can wake.
    a.set_nonblocking(true)?;
    let chunk = [0u8; 4096];
    while (&a).write(&chunk).is_ok() {}
    a.set_nonblocking(false)?;
    let fd = a.as_raw_fd();
    let poller = green::spawn(move || {
        let mut fds = [
            libc::pollfd {
                fd,
                events: libc::POLLOUT,
                revents: 0,
            },
            libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let start = std::time::Instant::now();
        // SAFETY: two valid pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, 30_000) };
        (n, fds[1].revents, start.elapsed())
    });
    // Spawned second, it runs once the poller has parked.
    let writer = green::spawn(move || b.write_all(b"x").map(|()| b));
    // Kept open: its close would wake both entries.
    let _b = writer.wait()?;
    let (n, revents, took) = poller.wait();
    assert!(took < Duration::from_secs(5), "poll woke after {took:?}");
    assert_eq!(n, 1, "poll returned {n}, not the one ready entry");
    assert_ne!(revents & libc::POLLIN, 0);
    Ok(())
}

/// A green thread leaked parked on a std `Mutex` (its OS thread exited
/// while it waited) does not absorb the wakeup meant for a later waiter.
#[test]
fn a_waiter_leaked_at_thread_exit_does_not_take_a_wakeup() -> io::Result<()> {
    green::patch();
    let m = Arc::new(Mutex::new(()));
    let guard = m.lock().unwrap();
    let m1 = m.clone();
    // Its green thread parks in the futex wait, then the thread exits.
    thread::spawn(move || {
        green::spawn_n(move || drop(m1.lock()));
        green::yield_now();
    })
    .join()
    .unwrap();
    let (tid_tx, tid_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let m2 = m.clone();
    let plain = thread::spawn(move || {
        tid_tx.send(common::tid()).unwrap();
        drop(m2.lock());
        done_tx.send(()).unwrap();
    });
    // Asleep in the kernel's futex wait.
    common::wait_until_sleeping(tid_rx.recv().unwrap());
    drop(guard);
    let woke = done_rx.recv_timeout(Duration::from_secs(10));
    assert!(woke.is_ok(), "the plain waiter was not woken");
    plain.join().unwrap();
    Ok(())
}

/// Applies `set` to a clone (`try_clone`, a dup) of a green-managed
/// socket, then reads from the original on a green thread: the read's error
/// kind, or `Err` if it was still waiting after 10 s.
fn read_after_setting_a_clone(
    set: impl FnOnce(&TcpStream) -> io::Result<()>,
) -> io::Result<Result<io::ErrorKind, green::Elapsed>> {
    let (mut client, _server) = patched::green_used_pair()?;
    set(&client.try_clone()?)?;
    let r = green::spawn(move || {
        green::with_timeout(Duration::from_secs(10), || {
            client.read(&mut [0; 16]).map(|_| ()).unwrap_err().kind()
        })
    })
    .wait();
    Ok(r)
}

/// A read timeout set on a clone of a socket also ends reads on the
/// original, as the kernel keeps it per socket. Margin: the timeout is
/// 50 ms; the read is given 10 s before it counts as stuck.
#[test]
fn a_read_timeout_set_on_a_clone_reaches_the_original() -> io::Result<()> {
    green::patch();
    let r = read_after_setting_a_clone(|c| c.set_read_timeout(Some(Duration::from_millis(50))))?;
    assert_eq!(r, Ok(io::ErrorKind::WouldBlock));
    Ok(())
}

/// `set_nonblocking(true)` on a clone of a socket makes reads on the
/// original non-blocking too (the flag belongs to the open file).
#[test]
fn non_blocking_mode_set_on_a_clone_reaches_the_original() -> io::Result<()> {
    green::patch();
    let r = read_after_setting_a_clone(|c| c.set_nonblocking(true))?;
    assert_eq!(r, Ok(io::ErrorKind::WouldBlock));
    Ok(())
}

/// A green thread's first write to a char device that cannot be polled
/// (`/dev/null`) is written in full, as without `patch()`.
#[test]
fn a_first_green_write_to_dev_null_is_not_cut_short() -> io::Result<()> {
    green::patch();
    let f = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    let fd = f.as_raw_fd();
    let n = green::spawn(move || {
        let buf = vec![0u8; 100_000];
        // SAFETY (both): a valid buffer of its length, an open fd.
        let first = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        let second = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        (first, second)
    })
    .wait();
    assert_eq!(n, (100_000, 100_000));
    Ok(())
}

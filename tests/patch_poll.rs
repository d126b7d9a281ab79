//! `poll` and `select` over several fds under `patch()`: a green caller
//! parks on all of them at once and wakes on the first that becomes ready,
//! with the results a plain OS thread gets from the kernel.

use std::io::{self, PipeReader, PipeWriter, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How many green threads poll at once on one hub.
const POLLERS: usize = 8;

/// What a `poll` call returned: its count and each entry's `revents`.
type Polled = (i32, Vec<i16>);

/// `poll` for input on `fds`, for `timeout_ms`.
fn poll_in(fds: &[RawFd], timeout_ms: i32) -> Polled {
    let mut set: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: a live array of `set.len()` pollfds.
    let n = unsafe { libc::poll(set.as_mut_ptr(), set.len() as libc::nfds_t, timeout_ms) };
    (n, set.iter().map(|p| p.revents).collect())
}

/// Two pipes: their read ends, and their write ends.
fn two_pipes() -> io::Result<([PipeReader; 2], [PipeWriter; 2])> {
    let (r0, w0) = io::pipe()?;
    let (r1, w1) = io::pipe()?;
    Ok(([r0, r1], [w0, w1]))
}

/// Runs `f` on an OS thread of its own and waits up to 20 s for it: a
/// poll that blocked its OS thread instead of parking would hang the hub,
/// and the test fails rather than hangs.
fn within_20s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the test did not finish in 20 s: a poll blocked its hub")
}

/// Several pollers, each on two pipes, wake when the *second* pipe of
/// each is written: the green ones on one hub, the reference ones on
/// plain OS threads. Each gets one ready entry, the second.
#[test]
fn poll_on_two_pipes_wakes_on_a_write_to_the_second() -> io::Result<()> {
    green::patch();
    let green_results = within_20s(|| -> io::Result<Vec<Polled>> {
        let mut pollers = Vec::new();
        let mut writers = Vec::new();
        for _ in 0..POLLERS {
            let (r, w) = two_pipes()?;
            let fds = [r[0].as_raw_fd(), r[1].as_raw_fd()];
            pollers.push(green::spawn(move || {
                let polled = poll_in(&fds, 30_000);
                drop(r);
                polled
            }));
            writers.push(w);
        }
        // Spawned after the pollers, it runs once every one has parked.
        let writer = green::spawn(move || -> io::Result<Vec<[PipeWriter; 2]>> {
            for w in &mut writers {
                w[1].write_all(b"x")?;
            }
            Ok(writers)
        });
        // Kept open until the pollers are done: a close would wake them too.
        let _writers = writer.wait()?;
        Ok(pollers.into_iter().map(|p| p.wait()).collect())
    })?;
    assert!(green::patch::hooks_seen().contains(&"poll"));

    let reference: Vec<Polled> = within_20s(|| -> io::Result<Vec<Polled>> {
        let mut pollers = Vec::new();
        let mut writers = Vec::new();
        let (ready_tx, ready_rx) = mpsc::channel();
        for _ in 0..POLLERS {
            let (r, w) = two_pipes()?;
            let ready_tx = ready_tx.clone();
            pollers.push(thread::spawn(move || {
                let fds = [r[0].as_raw_fd(), r[1].as_raw_fd()];
                ready_tx.send(()).unwrap();
                poll_in(&fds, 30_000)
            }));
            writers.push(w);
        }
        for _ in 0..POLLERS {
            ready_rx.recv().unwrap();
        }
        for w in &mut writers {
            w[1].write_all(b"x")?;
        }
        Ok(pollers.into_iter().map(|p| p.join().unwrap()).collect())
    })?;

    let expected: Polled = (1, vec![0, libc::POLLIN]);
    assert_eq!(reference, vec![expected.clone(); POLLERS]);
    assert_eq!(green_results, reference);
    Ok(())
}

/// A `poll` of two pipes with a timeout and no event returns 0 once the
/// timeout passes, with no entry ready, as on a plain OS thread; the green
/// caller parks meanwhile (another green thread runs). Margins: at least
/// the 50 ms asked for, at most 5 s.
#[test]
fn poll_with_a_timeout_and_no_event_returns_zero() -> io::Result<()> {
    green::patch();
    let (r, _w) = two_pipes()?;
    let fds = [r[0].as_raw_fd(), r[1].as_raw_fd()];
    let (polled, took, other_first) = within_20s(move || {
        let poller = green::spawn(move || {
            let start = Instant::now();
            let polled = poll_in(&fds, 50);
            (polled, start.elapsed(), Instant::now())
        });
        // Spawned second, it runs while the poller is parked.
        let other = green::spawn(Instant::now);
        let (polled, took, poll_end) = poller.wait();
        (polled, took, other.wait() < poll_end)
    });
    assert!(other_first, "the poll held its hub");
    assert_eq!(polled, (0, vec![0, 0]));
    assert!(
        took >= Duration::from_millis(50),
        "poll returned after {took:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "poll returned after {took:?}"
    );

    let start = Instant::now();
    let reference = poll_in(&fds, 50);
    assert_eq!(reference, (0, vec![0, 0]));
    assert!(start.elapsed() >= Duration::from_millis(50));
    drop(r);
    Ok(())
}

/// What a `select` for reading returned: its count, which of the fds it
/// left set, and the time left in its timeout.
type Selected = (i32, Vec<bool>, Duration);

/// `select` for reading on `fds`, with a timeout of `timeout`.
fn select_read(fds: &[RawFd], timeout: Duration) -> Selected {
    // SAFETY: an fd_set is plain data; all-zero is an empty set.
    let mut set: libc::fd_set = unsafe { std::mem::zeroed() };
    for &fd in fds {
        assert!((fd as usize) < libc::FD_SETSIZE);
        // SAFETY: a live fd_set; fd is below FD_SETSIZE.
        unsafe { libc::FD_SET(fd, &mut set) };
    }
    let mut tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    let nfds = fds.iter().max().map_or(0, |&fd| fd + 1);
    // SAFETY: a live read set and timeval; no other sets.
    let n = unsafe {
        libc::select(
            nfds,
            &mut set,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut tv,
        )
    };
    // SAFETY: a live fd_set.
    let isset = fds.iter().map(|&fd| unsafe { libc::FD_ISSET(fd, &set) });
    let left = Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
    (n, isset.collect(), left)
}

/// A `select` for reading on two sockets wakes when the second is written
/// to: it reports that one alone, and the time left of its 30 s, as on a
/// plain OS thread.
#[test]
fn select_on_two_sockets_reports_the_one_written() -> io::Result<()> {
    green::patch();
    let (a, _a_peer) = UnixStream::pair()?;
    let (b, mut b_peer) = UnixStream::pair()?;
    let fds = [a.as_raw_fd(), b.as_raw_fd()];
    let timeout = Duration::from_secs(30);
    let (selected, _b_peer) = within_20s(move || -> io::Result<_> {
        let selecter = green::spawn(move || select_read(&fds, timeout));
        // Spawned second, it runs once the selecter has parked.
        let writer = green::spawn(move || b_peer.write_all(b"x").map(|()| b_peer));
        let b_peer = writer.wait()?;
        Ok((selecter.wait(), b_peer))
    })?;
    assert!(green::patch::hooks_seen().contains(&"select"));
    let (n, isset, left) = selected;
    assert_eq!((n, isset), (1, vec![false, true]));
    assert!(
        left > Duration::ZERO && left < timeout,
        "time left: {left:?}"
    );

    // The reference, on this plain thread: the byte is still there.
    let (n, isset, left) = select_read(&fds, timeout);
    assert_eq!((n, isset), (1, vec![false, true]));
    assert!(
        left > Duration::ZERO && left <= timeout,
        "time left: {left:?}"
    );
    drop((a, b));
    Ok(())
}

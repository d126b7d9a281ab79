//! Blocking behaviour for plain OS threads on sockets green made
//! non-blocking.
//!
//! Under `patch()` a socket that a green context touched is `O_NONBLOCK`
//! underneath while its owner believes it blocking. A call on it from a
//! thread with no hub (or with patching being undone) must still block as
//! the kernel would: it is made, and on `EAGAIN` the OS thread waits in a
//! real `poll` (honouring the socket's `SO_RCVTIMEO`/`SO_SNDTIMEO`) and
//! makes it again. An `EAGAIN` that no readiness edge follows (a Unix
//! datagram receiver's full queue, a Unix listener's full backlog) is
//! retried after a growing delay instead.

use std::os::fd::{BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use super::{errno, fds, poll_events, set_errno};
use crate::hub::{self, Interest};
use crate::sys::event::{poll, PollFd, PollFlags, Timespec};
use crate::sys::io::Errno;
use crate::sys::thread::nanosleep;

/// Blocking behaviour for a caller that is not green, on a socket green
/// made non-blocking: retry after a real `poll`, honouring the socket's
/// timeout as the kernel would. `unsignalled`: the `EAGAIN` has no
/// readiness edge to follow ([`unsignalled`](super::data::unsignalled)), so the tries are spaced by
/// the growing delay of [`hub::io_loop_unsignalled`].
pub(super) fn emulate(
    fd: RawFd,
    interest: Interest,
    unsignalled: bool,
    op: &mut dyn FnMut() -> isize,
) -> isize {
    let deadline = fds::deadline(fd, interest);
    emulate_until(fd, interest, unsignalled, deadline, op)
}

/// [`emulate`] with the deadline given.
pub(super) fn emulate_until(
    fd: RawFd,
    interest: Interest,
    unsignalled: bool,
    deadline: Option<Instant>,
    op: &mut dyn FnMut() -> isize,
) -> isize {
    let events = poll_events(interest);
    let mut backoff = unsignalled.then(hub::Backoff::new);
    loop {
        let n = op();
        if n >= 0 || errno() != libc::EAGAIN {
            return n;
        }
        let more = match &mut backoff {
            None => os_wait(fd, events, deadline),
            Some(b) => os_pause(fd, events, b.next_delay(), deadline),
        };
        if !more {
            set_errno(libc::EAGAIN);
            return -1;
        }
    }
}

/// Blocks the OS thread for `delay` at most (less if `deadline` comes
/// first): in a real `poll` if `fd` lacks `events` now, else in a sleep,
/// since a ready fd raises nothing to wait for. False if `deadline` has
/// passed.
fn os_pause(fd: RawFd, events: libc::c_short, delay: Duration, deadline: Option<Instant>) -> bool {
    let mut wait = delay;
    if let Some(d) = deadline {
        let left = d.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        wait = wait.min(left);
    }
    // An error is left for the retried call to report.
    if poll_one(fd, events, Some(Duration::ZERO)) == Ok(0) {
        let _ = poll_one(fd, events, Some(wait));
    } else {
        let _ = nanosleep(&timespec(wait));
    }
    true
}

/// Blocks the OS thread in a real `poll` until `fd` has `events` or
/// `deadline` passes (false).
pub(super) fn os_wait(fd: RawFd, events: libc::c_short, deadline: Option<Instant>) -> bool {
    loop {
        let wait = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                Some(left)
            }
        };
        match poll_one(fd, events, wait) {
            Ok(0) | Err(Errno::INTR) => {}
            // Ready, or an error that the call itself will report.
            _ => return true,
        }
    }
}

/// A real `poll` of `fd` for `events`, for `wait` at most (`None`: no
/// limit): how many fds have events (0 or 1).
fn poll_one(fd: RawFd, events: libc::c_short, wait: Option<Duration>) -> Result<usize, Errno> {
    // SAFETY: `fd` is the fd of a call being made (the emulated blocking
    // call's): it is only polled, and a number closed meanwhile reports
    // `POLLNVAL`, as libc's `poll` would.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut set = [PollFd::from_borrowed_fd(
        fd,
        PollFlags::from_bits_retain(events as u16),
    )];
    poll(&mut set, wait.map(timespec).as_ref())
}

/// `d` as a timespec (saturating at the greatest).
fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: d.subsec_nanos().into(),
    }
}

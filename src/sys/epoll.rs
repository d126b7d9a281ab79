//! An epoll wait with a nanosecond timeout.
//!
//! rustix's `epoll::wait` takes a timespec but, unless built for Linux
//! 5.11 or later only, makes `epoll_pwait` with the timeout rounded up to
//! whole milliseconds: a timer due in 50 µs would fire a millisecond late.
//! [`wait`] makes `epoll_pwait2` (Linux 5.11), whose timeout is the
//! timespec itself, and falls back to rustix's wait, for good, on a kernel
//! that lacks it.

use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::event::epoll::{self, Event};
use rustix::event::Timespec;
use rustix::io::Errno;

/// `epoll_pwait2` answered `ENOSYS`: the kernel is older than 5.11.
static NO_PWAIT2: AtomicBool = AtomicBool::new(false);

/// Waits on `epoll` at most `timeout` (`None`: forever) and fills the
/// start of `events`; returns how many it filled.
///
/// `timeout` is kept to the nanosecond where the kernel can (5.11 and
/// later); before that it is rounded up to milliseconds, so a timer is
/// never woken for early.
pub(crate) fn wait(
    epoll: BorrowedFd<'_>,
    events: &mut [MaybeUninit<Event>],
    timeout: Option<&Timespec>,
) -> Result<usize, Errno> {
    if !NO_PWAIT2.load(Ordering::Relaxed) {
        let tsp = timeout.map_or(std::ptr::null(), |t| t as *const Timespec);
        let cap = events.len().min(i32::MAX as usize);
        // SAFETY: `events` has room for `cap` entries, laid out as the
        // kernel's `epoll_event` (rustix's `Event` is that layout); `tsp`
        // is null or a valid timespec (rustix's is the kernel's 64-bit
        // one); no signal mask is passed.
        let r = unsafe {
            super::raw::syscall(
                libc::SYS_epoll_pwait2,
                epoll.as_raw_fd() as usize,
                events.as_mut_ptr() as usize,
                cap,
                tsp as usize,
                0,
                0,
            )
        };
        match r {
            Ok(n) => return Ok(n),
            Err(Errno::NOSYS) => NO_PWAIT2.store(true, Ordering::Relaxed),
            Err(e) => return Err(e),
        }
    }
    epoll::wait(epoll, events, timeout).map(|(filled, _)| filled.len())
}

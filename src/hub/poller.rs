//! The hub's poller: epoll plus an eventfd for wakeups from other threads.
//!
//! This is the one place that knows the platform's readiness API. It makes
//! exactly one syscall per wait (`epoll_pwait2` with a nanosecond timeout,
//! or `epoll_pwait` rounded up to milliseconds on kernels before 5.11: see
//! `sys::epoll`), none per fd wait (fds are registered once,
//! edge-triggered), and one `write` to the eventfd per notification, only
//! when the hub is asleep and not yet notified.
//!
//! Every call goes through `crate::sys` (rustix, or the machine's system
//! call instruction), which makes the system call itself: none of them can
//! land in one of green's own interposers.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::sys::event::{epoll, eventfd, EventfdFlags, Timespec};
use crate::sys::io::Errno;

/// Key of the eventfd's registration; fd keys are fd numbers (below 2^31).
const NOTIFY_KEY: u64 = u64::MAX;

/// The event buffer of a poller's waits, kept by the hub between waits.
pub(super) type EventBuf = Vec<epoll::Event>;

/// One readiness event.
#[derive(Clone, Copy, Debug)]
pub(super) struct Event {
    pub(super) fd: RawFd,
    pub(super) readable: bool,
    pub(super) writable: bool,
    /// Hang-up, peer shutdown, error or urgent data: readiness that no later
    /// edge repeats, or reads that stop short of the data queued, so the hub
    /// must stop trusting a cleared readiness bit.
    pub(super) hangup: bool,
}

/// An epoll instance with an eventfd to interrupt its wait.
#[derive(Debug)]
pub(super) struct Poller {
    epoll: OwnedFd,
    eventfd: OwnedFd,
    /// A notification is in the eventfd and not yet drained.
    notified: AtomicBool,
}

/// The fd of a registration, borrowed for one `epoll_ctl`.
fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: the fd is only named to the kernel by `epoll_ctl`, which
    // checks it; no I/O is done through it and it is not kept.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

impl Poller {
    pub(super) fn new() -> io::Result<Poller> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let eventfd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        epoll::add(
            &epoll,
            &eventfd,
            epoll::EventData::new_u64(NOTIFY_KEY),
            epoll::EventFlags::IN,
        )?;
        Ok(Poller {
            epoll,
            eventfd,
            notified: AtomicBool::new(false),
        })
    }

    /// Registers `fd` for both directions, edge-triggered. With `modify`,
    /// replaces an existing registration instead.
    ///
    /// `EPOLLPRI` is asked for so that urgent data (TCP's, or a Unix
    /// socket's `MSG_OOB`) is seen: a read stops short at its mark while
    /// more data is queued, so a short read no longer means drained.
    pub(super) fn register(&self, fd: RawFd, modify: bool) -> io::Result<()> {
        use epoll::EventFlags as F;
        let flags = F::IN | F::PRI | F::OUT | F::RDHUP | F::ET;
        let data = epoll::EventData::new_u64(fd as u64);
        if modify {
            epoll::modify(&self.epoll, borrow(fd), data, flags)?;
        } else {
            epoll::add(&self.epoll, borrow(fd), data, flags)?;
        }
        Ok(())
    }

    /// Forgets `fd`.
    pub(super) fn deregister(&self, fd: RawFd) -> io::Result<()> {
        epoll::delete(&self.epoll, borrow(fd))?;
        Ok(())
    }

    /// Interrupts a wait in progress (or the next one), from any thread.
    pub(super) fn notify(&self) -> io::Result<()> {
        if self.notified.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        match crate::sys::io::write(&self.eventfd, &1u64.to_ne_bytes()) {
            // A full counter still wakes the poller.
            Ok(_) | Err(Errno::AGAIN) => Ok(()),
            Err(e) => {
                // Nothing was written: let the next notify try again.
                self.notified.store(false, Ordering::Release);
                Err(e.into())
            }
        }
    }

    /// Waits at most `timeout` (`None`: forever) and appends the fd events to
    /// `out`. A notification ends the wait and is drained. A signal ends it
    /// too, with no events.
    pub(super) fn wait(
        &self,
        buf: &mut EventBuf,
        timeout: Option<Duration>,
        out: &mut Vec<Event>,
    ) -> io::Result<()> {
        buf.clear();
        let cap = buf.capacity().max(64);
        buf.reserve(cap);
        // A timeout past what a timespec holds is as good as none.
        let ts = timeout.and_then(|t| Timespec::try_from(t).ok());
        let spare = &mut buf.spare_capacity_mut()[..cap];
        let n = match crate::sys::epoll::wait(self.epoll.as_fd(), spare, ts.as_ref()) {
            Ok(n) => n,
            Err(Errno::INTR) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        // SAFETY: the kernel initialised the first `n` entries.
        unsafe { buf.set_len(n) };
        use epoll::EventFlags as F;
        let readable = F::IN | F::PRI | F::RDHUP;
        let both = F::HUP | F::ERR;
        for ev in buf.iter() {
            let (bits, key) = (ev.flags, ev.data.u64());
            if key == NOTIFY_KEY {
                self.drain();
                continue;
            }
            out.push(Event {
                fd: key as RawFd,
                readable: bits.intersects(readable | both),
                writable: bits.intersects(F::OUT | both),
                hangup: bits.intersects(F::RDHUP | F::PRI | both),
            });
        }
        Ok(())
    }

    fn drain(&self) {
        let mut v = [0u8; 8];
        // Non-blocking: an empty counter (a notification drained already)
        // is no error worth reporting.
        let _ = crate::sys::io::read(&self.eventfd, &mut v);
        self.notified.store(false, Ordering::Release);
    }
}

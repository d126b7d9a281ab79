//! The hub's poller: epoll plus an eventfd for wakeups from other threads.
//!
//! This is the one place that knows the platform's readiness API. It makes
//! exactly one syscall per wait (`epoll_pwait2`, or `epoll_wait` on kernels
//! before 5.11), none per fd wait (fds are registered once, edge-triggered),
//! and one `write` to the eventfd per notification, only when the hub is
//! asleep and not yet notified.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Key of the eventfd's registration; fd keys are fd numbers (below 2^31).
const NOTIFY_KEY: u64 = u64::MAX;

/// One readiness event.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Event {
    pub(crate) fd: RawFd,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// Hang-up, peer shutdown, error or urgent data: readiness that no later
    /// edge repeats, or reads that stop short of the data queued, so the hub
    /// must stop trusting a cleared readiness bit.
    pub(crate) hangup: bool,
}

/// An epoll instance with an eventfd to interrupt its wait.
#[derive(Debug)]
pub(crate) struct Poller {
    epoll: OwnedFd,
    eventfd: OwnedFd,
    /// A notification is in the eventfd and not yet drained.
    notified: AtomicBool,
    /// `epoll_pwait2` is missing (kernel before 5.11): use `epoll_wait`.
    no_pwait2: AtomicBool,
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl Poller {
    pub(crate) fn new() -> io::Result<Poller> {
        // SAFETY: plain syscalls; each returned fd is owned at once.
        let epoll = unsafe { OwnedFd::from_raw_fd(cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC))?) };
        // SAFETY: as above.
        let eventfd = unsafe {
            OwnedFd::from_raw_fd(cvt(libc::eventfd(
                0,
                libc::EFD_CLOEXEC | libc::EFD_NONBLOCK,
            ))?)
        };
        let p = Poller {
            epoll,
            eventfd,
            notified: AtomicBool::new(false),
            no_pwait2: AtomicBool::new(false),
        };
        p.ctl(
            libc::EPOLL_CTL_ADD,
            p.eventfd.as_raw_fd(),
            libc::EPOLLIN as u32,
            NOTIFY_KEY,
        )?;
        Ok(p)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, key: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: key };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) })?;
        Ok(())
    }

    /// Registers `fd` for both directions, edge-triggered. With `modify`,
    /// replaces an existing registration instead.
    ///
    /// `EPOLLPRI` is asked for so that urgent data (TCP's, or a Unix
    /// socket's `MSG_OOB`) is seen: a read stops short at its mark while
    /// more data is queued, so a short read no longer means drained.
    pub(crate) fn register(&self, fd: RawFd, modify: bool) -> io::Result<()> {
        let events =
            (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET)
                as u32;
        let op = if modify {
            libc::EPOLL_CTL_MOD
        } else {
            libc::EPOLL_CTL_ADD
        };
        self.ctl(op, fd, events, fd as u64)
    }

    /// Forgets `fd`.
    pub(crate) fn deregister(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Interrupts a wait in progress (or the next one), from any thread.
    pub(crate) fn notify(&self) -> io::Result<()> {
        if self.notified.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
        let n = unsafe {
            crate::sys::original::write(self.eventfd.as_raw_fd(), (&one as *const u64).cast(), 8)
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            // A full counter still wakes the poller.
            if e.kind() != io::ErrorKind::WouldBlock {
                // Nothing was written: let the next notify try again.
                self.notified.store(false, Ordering::Release);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Waits at most `timeout` (`None`: forever) and appends the fd events to
    /// `out`. A notification ends the wait and is drained.
    pub(crate) fn wait(
        &self,
        buf: &mut Vec<libc::epoll_event>,
        timeout: Option<Duration>,
        out: &mut Vec<Event>,
    ) -> io::Result<()> {
        buf.clear();
        let cap = buf.capacity().max(64);
        buf.reserve(cap);
        let n = self.wait_raw(buf.spare_capacity_mut().as_mut_ptr().cast(), cap, timeout)?;
        // SAFETY: the kernel initialised the first `n` entries.
        unsafe { buf.set_len(n) };
        for ev in buf.iter() {
            let (bits, key) = (ev.events, ev.u64);
            if key == NOTIFY_KEY {
                self.drain();
                continue;
            }
            let readable = libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLRDHUP;
            let writable = libc::EPOLLOUT;
            let both = libc::EPOLLHUP | libc::EPOLLERR;
            out.push(Event {
                fd: key as RawFd,
                readable: bits & (readable | both) as u32 != 0,
                writable: bits & (writable | both) as u32 != 0,
                hangup: bits & (libc::EPOLLRDHUP | libc::EPOLLPRI | both) as u32 != 0,
            });
        }
        Ok(())
    }

    fn wait_raw(
        &self,
        events: *mut libc::epoll_event,
        cap: usize,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let epfd = self.epoll.as_raw_fd();
        let cap = cap.min(libc::c_int::MAX as usize) as libc::c_int;
        if !self.no_pwait2.load(Ordering::Relaxed) {
            let ts = timeout.map(|t| libc::timespec {
                tv_sec: t.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                tv_nsec: t.subsec_nanos() as libc::c_long,
            });
            let tsp = ts
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: `events` has room for `cap` entries; `tsp` is null or
            // points to a valid timespec; no signal mask is passed.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    epfd,
                    events,
                    cap,
                    tsp,
                    std::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOSYS) => self.no_pwait2.store(true, Ordering::Relaxed),
                Some(libc::EINTR) => return Ok(0),
                _ => return Err(e),
            }
        }
        // Round up so that a timer is never woken for early and spun on.
        let ms = match timeout {
            None => -1,
            Some(t) => {
                let ms = t.as_nanos().div_ceil(1_000_000);
                ms.min(libc::c_int::MAX as u128) as libc::c_int
            }
        };
        // SAFETY: `events` has room for `cap` entries.
        let n = unsafe { crate::sys::original::epoll_wait(epfd, events, cap, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                return Ok(0);
            }
            return Err(e);
        }
        Ok(n as usize)
    }

    fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64 from our non-blocking eventfd.
        unsafe {
            crate::sys::original::read(self.eventfd.as_raw_fd(), (&mut v as *mut u64).cast(), 8);
        }
        self.notified.store(false, Ordering::Release);
    }
}

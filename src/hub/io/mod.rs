//! Fd readiness: the one I/O loop, `trampoline`, and the fd table under them.
//!
//! Each fd is registered with the poller once, in edge-triggered mode for
//! both directions. Readiness edges are cached per fd: a green I/O operation
//! that gets `EAGAIN` clears the cached bit and parks; the next edge sets it
//! and wakes every waiter of that direction, in the order they started
//! waiting. No `epoll_ctl` happens per wait.
//!
//! ```text
//!   green I/O types, patch()'s data hooks
//!        |
//!        v
//!   io_loop / wait_io     the chokepoint: try the call; on EAGAIN wait, retry
//!        |
//!        v
//!   park_on (table)       one token in the fd's waiter list, one park
//!        ^
//!   trampoline            the public wait (eventlet's), same park
//!   Hub::wait_any         a wait on several fds (patch()'s poll/select):
//!                         one token in each fd's list, one park
//! ```
//!
//! [`wait_io`] (inside the crate [`io_loop`], the same loop) is the one
//! chokepoint of green I/O: every green I/O type tries its syscall
//! non-blocking through it, and no other code loops on `EAGAIN`. Its
//! waits, and [`trampoline`]'s, park in `table::park_on`.
//!
//! - `table`: the per-hub fd table (registration, cached readiness,
//!   waiters, the parks);
//! - `close`: closes on any thread ([`notify_close`]) and the registry of
//!   hubs that lets them reach each other.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use super::{hub, Blocker};
use crate::sys::event::{poll, PollFd, PollFlags, Timespec};

mod close;
mod table;

pub use close::notify_close;
pub(super) use close::{register_hub, unregister_hub};
pub(crate) use table::FdTable;
use table::{name, park_on, wait_ready};

/// Which readiness [`trampoline`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interest {
    /// The fd is readable (or at end of file, or in error).
    Read,
    /// The fd is writable (or in error).
    Write,
}

/// Runs the non-blocking operation `op` on `fd`, parking the current context
/// whenever it fails with `WouldBlock` until `fd` is ready for `interest`,
/// then trying again.
///
/// This is the single chokepoint of green I/O: every green I/O type goes
/// through it (by way of `io_loop`, the same loop with a readiness
/// shortcut), and no other code loops on `EAGAIN`. `fd` must be in
/// non-blocking mode, or `op` must not block (use `MSG_DONTWAIT` and the
/// like).
///
/// # Errors
/// `op`'s own errors other than `WouldBlock`; `TimedOut` if `timeout`
/// passes before the operation can complete; the errors of [`trampoline`].
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use std::os::fd::AsRawFd;
/// use green::hub::{wait_io, Interest};
///
/// let (mut r, mut w) = std::os::unix::net::UnixStream::pair()?;
/// r.set_nonblocking(true)?;
/// green::spawn_n(move || w.write_all(b"ping").unwrap());
/// let mut buf = [0; 4];
/// let n = wait_io(r.as_raw_fd(), Interest::Read, None, || r.read(&mut buf))?;
/// assert_eq!(&buf[..n], b"ping");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn wait_io<T, F>(
    fd: RawFd,
    interest: Interest,
    timeout: Option<Duration>,
    op: F,
) -> io::Result<T>
where
    F: FnMut() -> io::Result<T>,
{
    io_loop(fd, interest, timeout, op, |_| false)
}

/// [`wait_io`] that also learns from each success: when `drained` says the
/// result emptied the fd for `interest` (a read shorter than its buffer),
/// the hub's cached readiness is cleared, and the next operation on the fd
/// parks until the next edge without first trying a syscall that would
/// fail with `EAGAIN`. That saves one syscall per message on a busy socket.
///
/// Safe because edges are dispatched only by the hub loop, which cannot run
/// between the operation and the clearing: any data that arrives after the
/// operation raises a new edge. A hang-up, error or urgent data seen on the
/// fd disables the shortcut (no later edge would repeat it, or a read stops
/// short at the urgent mark). `drained` must be false wherever a short read
/// can leave data queued (datagrams, peeks, a Unix stream's messages that
/// carry fds or credentials).
#[inline(always)]
pub(crate) fn io_loop<T, F, D>(
    fd: RawFd,
    interest: Interest,
    timeout: Option<Duration>,
    mut op: F,
    drained: D,
) -> io::Result<T>
where
    F: FnMut() -> io::Result<T>,
    D: Fn(&T) -> bool,
{
    let hub = hub();
    hub.spend();
    let mut deadline = None;
    let mut try_first = !hub.known_unready(fd, interest);
    loop {
        if try_first {
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Ok(v) => {
                    if drained(&v) {
                        hub.clear_ready(fd, interest);
                    }
                    return Ok(v);
                }
                Err(e) => return Err(e),
            }
        }
        try_first = true;
        if deadline.is_none() {
            deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        }
        wait_ready(hub, fd, interest, deadline)?;
    }
}

/// The loop of [`io_loop`] for an operation whose `EAGAIN` is *not*
/// followed by a readiness edge on `fd`: it waits on another socket's
/// queue, which nothing on `fd` announces (a Unix `connect` to a full
/// backlog, a Unix datagram `send_to` to a full receiver). Between tries it
/// parks for a growing delay (1 ms, doubling to 64 ms) — for an edge on `fd`
/// if `fd` is not ready for `interest` now (its own buffer is full), else
/// for the delay alone, since a ready fd raises no edge to wait for.
///
/// # Errors
/// `op`'s own errors other than `WouldBlock`; `TimedOut` when `timeout`
/// passes first; the errors of waiting on `fd`.
pub(crate) fn io_loop_unsignalled<T>(
    fd: RawFd,
    interest: Interest,
    timeout: Option<Duration>,
    mut op: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mut backoff = Backoff::new();
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            r => return r,
        }
        let mut wait = backoff.next_delay();
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("timed out waiting for fd {fd} to become {}", name(interest)),
                ));
            }
            wait = wait.min(left);
        }
        if ready_now(fd, interest)? {
            super::sleep(wait);
        } else {
            match trampoline(fd, interest, Some(wait)) {
                Err(e) if e.kind() != io::ErrorKind::TimedOut => return Err(e),
                _ => {}
            }
        }
    }
}

/// The growing delays between the tries of [`io_loop_unsignalled`] (and of
/// the blocking emulation of the same waits for plain OS threads).
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(1);
    const MAX: Duration = Duration::from_millis(64);

    pub(crate) fn new() -> Backoff {
        Backoff {
            next: Backoff::FIRST,
        }
    }

    /// The delay before the next try: 1 ms, doubling up to 64 ms.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(Backoff::MAX);
        d
    }
}

/// The `revents` of `fd` for `events` right now: one `poll(2)` with a zero
/// timeout.
///
/// # Errors
/// `EBADF` if `fd` is not open; the error of `poll`.
pub(crate) fn poll_now(fd: RawFd, events: libc::c_short) -> io::Result<libc::c_short> {
    if fd < 0 {
        // poll(2) skips a negative fd: no events.
        return Ok(0);
    }
    // SAFETY: the fd is only polled, for the duration of the call; a number
    // that is not open reports `POLLNVAL` (below), as with libc's `poll`.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut set = [PollFd::from_borrowed_fd(
        fd,
        PollFlags::from_bits_retain(events as u16),
    )];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut set, Some(&zero))?;
    let revents = set[0].revents();
    if revents.contains(PollFlags::NVAL) {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    Ok(revents.bits() as libc::c_short)
}

/// Whether `fd` is ready for `interest` right now, asked with `poll(2)`.
fn ready_now(fd: RawFd, interest: Interest) -> io::Result<bool> {
    let events = match interest {
        Interest::Read => libc::POLLIN,
        Interest::Write => libc::POLLOUT,
    };
    Ok(poll_now(fd, events)? != 0)
}

/// Parks the current green thread (or the root, running the hub) until `fd`
/// is ready for `interest`, `timeout` passes, or the fd is closed.
///
/// This is eventlet's `hubs.trampoline`. Several green threads may wait on
/// one fd; they are woken in the order they started waiting. The fd is
/// registered with the hub's poller on first use and stays registered until
/// [`notify_close`] is called for it.
///
/// # Errors
/// - `InvalidInput` for a negative fd, or a regular file (always ready);
/// - `TimedOut` when `timeout` passes first;
/// - `ConnectionAborted` when [`notify_close`] is called for the fd while
///   this one waits, on any OS thread;
/// - the OS error if the fd is not open.
///
/// # Panics
/// Panics when called from the hub itself (a timer callback).
///
/// # Notes
/// The kernel says nothing to epoll when an fd is closed, so an fd closed
/// with a plain `close(2)` (dropping a std socket, say) while a green thread
/// waits on it leaves that waiter parked until its timeout, and a new fd
/// that reuses the number is not watched. Call [`notify_close`] first (the
/// green I/O types do, and so does `close` under [`patch`](crate::patch())).
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use std::os::fd::AsRawFd;
/// use green::hub::{trampoline, Interest};
///
/// let (mut r, mut w) = std::os::unix::net::UnixStream::pair()?;
/// let writer = green::spawn(move || w.write_all(b"hi"));
/// trampoline(r.as_raw_fd(), Interest::Read, None)?; // the writer runs meanwhile
/// let mut buf = [0; 2];
/// r.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"hi");
/// writer.wait()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn trampoline(fd: RawFd, interest: Interest, timeout: Option<Duration>) -> io::Result<()> {
    trampoline_as(fd, interest, timeout, None)
}

/// Which directions an fd is ready for, as [`trampoline_both`] found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Ready {
    /// A read would not block (data, end of file, or an error to report).
    pub readable: bool,
    /// A write would not block (room, or an error to report).
    pub writable: bool,
}

/// Parks the current green thread (or the root, running the hub) until `fd`
/// is readable **or** writable, `timeout` passes, or the fd is closed, and
/// says which (both may be). This is eventlet's
/// `trampoline(fd, read=True, write=True)`.
///
/// It returns at once if the fd is ready either way already. A hang-up or
/// an error on the fd counts as both (the next read or write reports it).
///
/// # Errors
/// As [`trampoline`]: `InvalidInput` for a negative fd or a regular file,
/// `TimedOut`, `ConnectionAborted` when [`notify_close`] is called for the
/// fd meanwhile, the OS error if the fd is not open.
///
/// # Panics
/// Panics when called from the hub itself (a timer callback).
///
/// # Examples
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use green::hub::trampoline_both;
///
/// let (r, mut w) = std::os::unix::net::UnixStream::pair()?;
/// // A fresh socket has room: writable at once, nothing to read yet.
/// let ready = trampoline_both(r.as_raw_fd(), None)?;
/// assert!(ready.writable && !ready.readable);
/// w.write_all(b"x")?;
/// assert!(trampoline_both(r.as_raw_fd(), None)?.readable);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn trampoline_both(fd: RawFd, timeout: Option<Duration>) -> io::Result<Ready> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let hub = hub();
    hub.ensure_registered(fd)?;
    let both = [(fd, Interest::Read), (fd, Interest::Write)];
    loop {
        const ERR: libc::c_short = libc::POLLERR | libc::POLLHUP;
        let revents = poll_now(fd, libc::POLLIN | libc::POLLOUT)?;
        let ready = Ready {
            readable: revents & (libc::POLLIN | libc::POLLRDHUP | ERR) != 0,
            writable: revents & (libc::POLLOUT | ERR) != 0,
        };
        if ready.readable || ready.writable {
            return Ok(ready);
        }
        // An edge in either direction wakes the wait; the look above then
        // says which.
        hub.wait_any(&both, deadline)?;
    }
}

/// [`trampoline`], shown in a dump as a wait on `on` (with `fd`) rather
/// than on the fd: a child's pidfd is a wait for the child.
pub(crate) fn trampoline_as(
    fd: RawFd,
    interest: Interest,
    timeout: Option<Duration>,
    on: Option<Blocker>,
) -> io::Result<()> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let hub = hub();
    let fresh = hub.ensure_registered(fd)?;
    if !fresh {
        let cached = {
            let mut io = hub.io.borrow_mut();
            io.get(fd).map(|e| *e.ready(interest)).unwrap_or(false)
        };
        // The cached bit may be stale (the data was consumed since):
        // confirm it before returning.
        if cached && ready_now(fd, interest)? {
            return Ok(());
        }
    }
    park_on(hub, fd, interest, deadline, on)
}

#[cfg(test)]
mod tests {
    use super::Backoff;

    #[test]
    fn backoff_doubles_to_its_cap() {
        let mut b = Backoff::new();
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 64, 64]);
    }
}

//! A hub's table of the fds it watches: registration with the poller,
//! cached readiness, and the waiters of each fd and direction.
//!
//! An fd is registered once, edge-triggered for both directions. An edge
//! sets the cached bit of its direction and wakes every waiter of that
//! direction in the order they started waiting ([`Hub::dispatch_fd`]). A
//! waiter is a park token in a list; a wait on one fd ([`park_on`]) puts
//! one there, a wait on several ([`Hub::wait_any`]) one per fd, all the
//! same token.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::close::{count_of, generation, hub_bit, FD_STATE};
use super::Interest;
use crate::hub::{self as hubmod, Blocker, Hub, Kind, Token, Wake};

#[derive(Debug, Default)]
pub(super) struct FdEntry {
    /// The fd's close count when it was registered: a different count
    /// means the number was closed and reused since.
    pub(super) gen: u32,
    readable: bool,
    writable: bool,
    /// A hang-up, error or urgent data was seen: readiness is final, or a
    /// short read may leave data behind, so a cleared bit must not be
    /// trusted.
    hangup: bool,
    pub(super) readers: VecDeque<Token>,
    pub(super) writers: VecDeque<Token>,
}

impl FdEntry {
    pub(super) fn waiters(&mut self, interest: Interest) -> &mut VecDeque<Token> {
        match interest {
            Interest::Read => &mut self.readers,
            Interest::Write => &mut self.writers,
        }
    }

    pub(super) fn ready(&mut self, interest: Interest) -> &mut bool {
        match interest {
            Interest::Read => &mut self.readable,
            Interest::Write => &mut self.writable,
        }
    }
}

/// The hub's table of registered fds, indexed by fd number.
#[derive(Debug, Default)]
pub(crate) struct FdTable {
    pub(super) entries: Vec<Option<FdEntry>>,
    pub(super) registered: usize,
    pub(super) waiters: usize,
}

impl FdTable {
    pub(crate) fn waiters(&self) -> usize {
        self.waiters
    }

    pub(crate) fn registered(&self) -> usize {
        self.registered
    }

    pub(super) fn get(&mut self, fd: RawFd) -> Option<&mut FdEntry> {
        self.entries.get_mut(fd as usize)?.as_mut()
    }

    /// Removes `token` from the waiters of `fd`; returns whether it was there.
    fn remove_waiter(&mut self, fd: RawFd, interest: Interest, token: Token) -> bool {
        let Some(e) = self.get(fd) else { return false };
        let q = e.waiters(interest);
        match q.iter().position(|t| *t == token) {
            Some(i) => {
                q.remove(i);
                self.waiters -= 1;
                true
            }
            None => false,
        }
    }
}

impl Hub {
    /// Registers `fd` with the poller unless it already is. Returns whether
    /// this call registered it.
    pub(super) fn ensure_registered(&self, fd: RawFd) -> io::Result<bool> {
        if fd < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot wait on fd {fd}: not a file descriptor"),
            ));
        }
        // Before the fd table is borrowed: making the cell's chunk may wait
        // for another thread making it, and under `patch` that wait parks.
        let cell = FD_STATE.get_or_make(fd);
        let mut io = self.io.borrow_mut();
        let stale = match io.get(fd) {
            Some(e) if e.gen == cell.map_or(0, |w| count_of(w.load(Ordering::Acquire))) => {
                return Ok(false)
            }
            Some(_) => true,
            None => false,
        };
        // Tell closes on other threads that this hub registers the number,
        // and learn its close count at the same instant.
        let gen = cell.map_or(0, |w| {
            count_of(w.fetch_or(hub_bit(self.shared.id) as u64, Ordering::AcqRel))
        });
        if stale {
            // The number was closed on another thread and now names another
            // file: forget the old entry and wake whoever still waited on it.
            let old = io.entries[fd as usize].take().expect("entry seen above");
            io.registered -= 1;
            io.waiters -= old.readers.len() + old.writers.len();
            for t in old.readers.into_iter().chain(old.writers) {
                self.wake(t, Wake::Closed);
            }
        }
        match self.shared.poller.register(fd, false) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                // Registered before under this number and never forgotten
                // (closed without notify_close while a dup kept it alive).
                self.shared.poller.register(fd, true)?;
            }
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "cannot wait on fd {fd}: it is a regular file or directory, \
                         which is always ready (epoll refuses it)"
                    ),
                ))
            }
            Err(e) => return Err(e),
        }
        let i = fd as usize;
        if io.entries.len() <= i {
            io.entries.resize_with(i + 1, || None);
        }
        io.entries[i] = Some(FdEntry {
            gen,
            ..FdEntry::default()
        });
        io.registered += 1;
        Ok(true)
    }

    /// Handles one poller event: caches readiness and wakes the waiters.
    pub(in crate::hub) fn dispatch_fd(
        &self,
        fd: RawFd,
        readable: bool,
        writable: bool,
        hangup: bool,
    ) {
        let mut io = self.io.borrow_mut();
        let FdTable {
            entries, waiters, ..
        } = &mut *io;
        let Some(Some(e)) = entries.get_mut(fd as usize) else {
            return;
        };
        e.hangup |= hangup;
        // Waking touches the slots and the run queue, never the fd table.
        if readable {
            e.readable = true;
            *waiters -= e.readers.len();
            for t in e.readers.drain(..) {
                self.wake(t, Wake::Woken);
            }
        }
        if writable {
            e.writable = true;
            *waiters -= e.writers.len();
            for t in e.writers.drain(..) {
                self.wake(t, Wake::Woken);
            }
        }
    }
}

/// Removes the waiter if the wait ends any way but a dispatch: timeout,
/// close, or unwinding by kill or `Timeout`.
struct WaiterGuard<'a> {
    hub: &'a Hub,
    fd: RawFd,
    interest: Interest,
    token: Token,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.hub
            .io
            .borrow_mut()
            .remove_waiter(self.fd, self.interest, self.token);
    }
}

fn closed_error(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        format!("fd {fd} was closed while a green thread waited on it"),
    )
}

/// Parks until `fd` has a new readiness edge for `interest` (the caller got
/// `EAGAIN`), `deadline` passes, or the fd is closed: the wait of
/// [`io_loop`](super::io_loop), registering the fd first.
///
/// # Errors
/// `TimedOut` at the deadline; `ConnectionAborted` if the fd is closed
/// through [`notify_close`](super::notify_close) while waited on; the poller's error if the fd
/// cannot be registered.
#[inline(always)]
pub(super) fn wait_ready(
    hub: &Hub,
    fd: RawFd,
    interest: Interest,
    deadline: Option<Instant>,
) -> io::Result<()> {
    hub.ensure_registered(fd)?;
    park_on(hub, fd, interest, deadline, None)
}

/// Parks until `fd` (registered) has a new readiness edge for `interest`,
/// `deadline` passes, or the fd is closed: one waiter in the fd's list,
/// taken out again however the wait ends. The park of every wait on one
/// fd ([`wait_ready`], [`trampoline`](super::trampoline)).
///
/// # Errors
/// As [`wait_ready`].
///
/// The dump shows the park as a wait on `fd` for `interest`, or as `on`
/// (with `fd`) if given.
#[inline(always)]
pub(super) fn park_on(
    hub: &Hub,
    fd: RawFd,
    interest: Interest,
    deadline: Option<Instant>,
    on: Option<Blocker>,
) -> io::Result<()> {
    let on = match on {
        Some(b) => Blocker { fd, ..b },
        None => Blocker {
            kind: match interest {
                Interest::Read => Kind::FdRead,
                Interest::Write => Kind::FdWrite,
            },
            fd,
            arg: 0,
        },
    };
    loop {
        let token = hub.token();
        let gen = {
            let mut io = hub.io.borrow_mut();
            let e = io.get(fd).expect("fd registered above");
            *e.ready(interest) = false;
            e.waiters(interest).push_back(token);
            let gen = e.gen;
            io.waiters += 1;
            gen
        };
        let guard = WaiterGuard {
            hub,
            fd,
            interest,
            token,
        };
        let wake = hubmod::park_fd(deadline, on);
        let still_waiting = {
            let mut io = hub.io.borrow_mut();
            io.get(fd)
                .is_some_and(|e| e.waiters(interest).contains(&token))
        };
        drop(guard);
        match wake {
            Wake::Closed => return Err(closed_error(fd)),
            // Woken by an event, but the fd was closed since it parked (on
            // another thread, whose news has not reached this hub yet): the
            // number may name another file by now, which is not to be
            // touched.
            Wake::Woken if generation(fd) != gen => return Err(closed_error(fd)),
            Wake::TimedOut => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("timed out waiting for fd {fd} to become {}", name(interest)),
                ))
            }
            // Woken but still queued: a spurious wake; wait again.
            Wake::Woken if still_waiting => continue,
            _ => return Ok(()),
        }
    }
}

/// Removes one context's waiters from several fds' lists when its wait on
/// all of them ends ([`Hub::wait_any`]): those no dispatch took.
pub(crate) struct ManyGuard<'a> {
    hub: &'a Hub,
    set: &'a [(RawFd, Interest)],
    token: Token,
}

impl ManyGuard<'_> {
    /// Whether every waiter is still in its list: no edge woke the wait.
    fn all_queued(&self) -> bool {
        let mut io = self.hub.io.borrow_mut();
        self.set.iter().all(|&(fd, interest)| {
            io.get(fd)
                .is_none_or(|e| e.waiters(interest).contains(&self.token))
        })
    }
}

impl Drop for ManyGuard<'_> {
    fn drop(&mut self) {
        let mut io = self.hub.io.borrow_mut();
        for &(fd, interest) in self.set {
            io.remove_waiter(fd, interest, self.token);
        }
    }
}

impl Hub {
    /// Registers `fd` with the poller if it is not yet (see
    /// [`Hub::queue_many`]).
    pub(crate) fn watch_fd(&self, fd: RawFd) -> io::Result<()> {
        self.ensure_registered(fd).map(|_| ())
    }

    /// Queues the current context as a waiter of each fd of `set` (those
    /// registered with the poller: [`Hub::watch_fd`]) for its coming park,
    /// clearing their cached readiness (the caller found them not ready);
    /// the guard takes the waiters no wake took out again.
    pub(crate) fn queue_many<'a>(&'a self, set: &'a [(RawFd, Interest)]) -> ManyGuard<'a> {
        let token = self.token();
        let mut io = self.io.borrow_mut();
        let mut added = 0;
        for &(fd, interest) in set {
            if let Some(e) = io.get(fd) {
                *e.ready(interest) = false;
                e.waiters(interest).push_back(token);
                added += 1;
            }
        }
        io.waiters += added;
        drop(io);
        ManyGuard {
            hub: self,
            set,
            token,
        }
    }

    /// Parks the current context until one of the fds of `set` has a new
    /// readiness edge for its interest, `deadline` passes, or one of them is
    /// closed: a wait on several fds at once (`poll` and `select` under
    /// `patch()`). `self` is the current thread's hub.
    ///
    /// One park, with one waiter in each fd's list, all carrying the same
    /// token. The first wake takes the token (a wake advances the context's
    /// park sequence), which leaves the other waiters stale; they are taken
    /// out of their lists before this returns. No epoll set is made: the
    /// fds are registered with the hub's poller once, as for [`park_on`].
    ///
    /// The caller found the fds not ready (their cached readiness is
    /// cleared), and looks at them again after: a wake says only that one
    /// may be ready now. An fd listed twice for one interest gets a waiter
    /// for each entry.
    ///
    /// # Errors
    /// `TimedOut` at the deadline; `ConnectionAborted` if one of the fds is
    /// closed through [`notify_close`](super::notify_close) meanwhile; the
    /// error of registering an fd with the poller if none of them could be
    /// (one that cannot is left out of the wait).
    pub(crate) fn wait_any(
        &self,
        set: &[(RawFd, Interest)],
        deadline: Option<Instant>,
    ) -> io::Result<()> {
        debug_assert!(std::ptr::eq(self, hubmod::hub()), "not this thread's hub");
        let mut refused = None;
        let mut watched = false;
        for &(fd, _) in set {
            match self.ensure_registered(fd) {
                Ok(_) => watched = true,
                Err(e) => refused = Some(e),
            }
        }
        if !watched {
            return Err(refused.unwrap_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "no fd to wait on")
            }));
        }
        loop {
            let guard = self.queue_many(set);
            let on = Blocker {
                fd: set.first().map_or(-1, |&(fd, _)| fd),
                ..Blocker::arg(Kind::Fds, set.len() as u64)
            };
            let wake = hubmod::park_fd(deadline, on);
            let spurious = wake == Wake::Woken && guard.all_queued();
            drop(guard);
            match wake {
                Wake::Closed => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "an fd was closed while a green thread waited on it",
                    ))
                }
                Wake::TimedOut => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "timed out waiting for an fd to become ready",
                    ))
                }
                // Woken, but no edge took a waiter: wait again.
                Wake::Woken if spurious => continue,
                _ => return Ok(()),
            }
        }
    }
}

pub(super) fn name(i: Interest) -> &'static str {
    match i {
        Interest::Read => "readable",
        Interest::Write => "writable",
    }
}

impl Hub {
    /// Whether the hub knows `fd` has nothing for `interest` since its last
    /// readiness edge (and no hang-up was seen).
    pub(super) fn known_unready(&self, fd: RawFd, interest: Interest) -> bool {
        let gen = generation(fd);
        let mut io = self.io.borrow_mut();
        match io.get(fd) {
            Some(e) => e.gen == gen && !e.hangup && !*e.ready(interest),
            None => false,
        }
    }

    pub(super) fn clear_ready(&self, fd: RawFd, interest: Interest) {
        let mut io = self.io.borrow_mut();
        if let Some(e) = io.get(fd) {
            *e.ready(interest) = false;
        }
    }
}

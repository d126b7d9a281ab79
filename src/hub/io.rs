//! Fd readiness: registration, cached readiness, waiters, and `trampoline`.
//!
//! Each fd is registered with the poller once, in edge-triggered mode for
//! both directions. Readiness edges are cached per fd: a green I/O operation
//! that gets `EAGAIN` clears the cached bit and parks; the next edge sets it
//! and wakes every waiter of that direction, in the order they started
//! waiting. No `epoll_ctl` happens per wait.
//!
//! [`wait_ready`] is the one place where green I/O parks; the I/O types of
//! `green` try their syscall non-blocking and call it on `EAGAIN`.
//!
//! # Closes
//!
//! The kernel tells epoll nothing when an fd closes, so [`notify_close`]
//! must come first, and it may come on any OS thread: a green socket is
//! `Send`, and a plain thread may close what a green thread reads. Each fd
//! number has one process-wide word, [`FD_STATE`]: a close count, and a bit
//! for each hub that registered the number since its last close.
//!
//! ```text
//!  hub A registers fd 7        FD_STATE[7] = (count 4, hubs {A})   fetch_or
//!  hub B registers fd 7        FD_STATE[7] = (count 4, hubs {A, B})
//!  notify_close(7) on thread T FD_STATE[7] = (count 5, hubs {})    one CAS
//!    T's own hub (if A or B):  forget entry 7, wake its waiters with Closed
//!    each other hub in {A, B}: epoll_ctl(DEL, 7) on its poller (the fd
//!                              still names the file), push (7, count 4) on
//!                              its close queue, wake its loop if it sleeps
//!  hub B's loop drains (7, 4): its entry 7 registered at count <= 4 names
//!                              the closed file: forget it, wake its waiters
//!                              with Closed; an entry registered since (for
//!                              a file that reuses the number) stays
//! ```
//!
//! An fd no hub registered costs the close one compare-and-swap; one that
//! only the closing thread's hub registered, no more than before. A waiter
//! woken by an edge that finds the count changed when it runs fails as
//! closed too, rather than retry on a number that may name another file.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, Weak};
use std::time::{Duration, Instant};

use super::{hub, Hub, Shared, Token, Wake};
use crate::hub::fdmap::FdMap;

/// Which readiness [`trampoline`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interest {
    /// The fd is readable (or at end of file, or in error).
    Read,
    /// The fd is writable (or in error).
    Write,
}

/// Process-wide, per fd number: the number's close count (high 32 bits)
/// and the hubs that registered it since its last close (low 32 bits, one
/// bit per hub id modulo 32). A hub that registers the number sets its bit
/// and learns the count in one `fetch_or`; [`notify_close`] bumps the count
/// and takes the bits in one compare-and-swap, so it reaches every hub that
/// may have a waiter on the file being closed, and a hub whose entry is
/// older than the current count knows the number names another file now.
/// Reading the count is one or two loads and never locks.
static FD_STATE: FdMap<AtomicU64> = FdMap::new();

/// The close count of a [`FD_STATE`] word.
fn count_of(word: u64) -> u32 {
    (word >> 32) as u32
}

/// The hub bits of a [`FD_STATE`] word.
fn hubs_of(word: u64) -> u32 {
    word as u32
}

fn generation(fd: RawFd) -> u32 {
    FD_STATE
        .get(fd)
        .map_or(0, |w| count_of(w.load(Ordering::Acquire)))
}

/// Whether an entry registered at close count `entry` names the file whose
/// close at count `closed` was announced: it was registered then or before.
fn registered_by(entry: u32, closed: u32) -> bool {
    closed.wrapping_sub(entry) as i32 >= 0
}

/// Every live hub's shared part, indexed by hub id, so that a close on any
/// thread reaches the hubs that registered the fd. An id is reused once its
/// hub is gone; `Weak`, so the registry never keeps a hub's poller open.
static HUBS: Mutex<Vec<Option<Weak<Shared>>>> = Mutex::new(Vec::new());

/// How many hub ids were ever handed out: while at most 32, a hub bit of
/// [`FD_STATE`] names one hub exactly.
static HUB_IDS: AtomicU32 = AtomicU32::new(0);

/// Set in a child made by `fork`: the parent's hubs are not the child's
/// (their pollers are shared with the parent, and the registry lock may be
/// held by a thread that is not there), so closes tell no other hub.
static FORKED: AtomicBool = AtomicBool::new(false);

fn hubs() -> MutexGuard<'static, Vec<Option<Weak<Shared>>>> {
    HUBS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes a hub's shared part with `make(id)` under a free hub id, and
/// records it for closes on other threads.
pub(super) fn register_hub(make: impl FnOnce(u32) -> Shared) -> Arc<Shared> {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        extern "C" fn in_child() {
            FORKED.store(true, Ordering::Relaxed);
        }
        // SAFETY: registers a handler that only stores an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
    });
    let mut hubs = hubs();
    let id = match hubs
        .iter()
        .position(|h| h.as_ref().is_none_or(|w| w.strong_count() == 0))
    {
        Some(i) => i,
        None => {
            hubs.push(None);
            HUB_IDS.store(hubs.len() as u32, Ordering::Relaxed);
            hubs.len() - 1
        }
    };
    let shared = Arc::new(make(id as u32));
    hubs[id] = Some(Arc::downgrade(&shared));
    shared
}

/// Frees hub `id` (its thread is exiting).
pub(super) fn unregister_hub(id: u32) {
    if let Some(h) = hubs().get_mut(id as usize) {
        *h = None;
    }
}

/// The bit of hub `id` in [`FD_STATE`].
pub(super) fn hub_bit(id: u32) -> u32 {
    1 << (id % 32)
}

#[derive(Debug, Default)]
struct FdEntry {
    /// The fd's close count when it was registered: a different count
    /// means the number was closed and reused since.
    gen: u32,
    readable: bool,
    writable: bool,
    /// A hang-up, error or urgent data was seen: readiness is final, or a
    /// short read may leave data behind, so a cleared bit must not be
    /// trusted.
    hangup: bool,
    readers: VecDeque<Token>,
    writers: VecDeque<Token>,
}

impl FdEntry {
    fn waiters(&mut self, interest: Interest) -> &mut VecDeque<Token> {
        match interest {
            Interest::Read => &mut self.readers,
            Interest::Write => &mut self.writers,
        }
    }

    fn ready(&mut self, interest: Interest) -> &mut bool {
        match interest {
            Interest::Read => &mut self.readable,
            Interest::Write => &mut self.writable,
        }
    }
}

/// The hub's table of registered fds, indexed by fd number.
#[derive(Debug, Default)]
pub(crate) struct FdTable {
    entries: Vec<Option<FdEntry>>,
    registered: usize,
    waiters: usize,
}

impl FdTable {
    pub(crate) fn waiters(&self) -> usize {
        self.waiters
    }

    pub(crate) fn registered(&self) -> usize {
        self.registered
    }

    fn get(&mut self, fd: RawFd) -> Option<&mut FdEntry> {
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
    fn ensure_registered(&self, fd: RawFd) -> io::Result<bool> {
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
    pub(super) fn dispatch_fd(&self, fd: RawFd, readable: bool, writable: bool, hangup: bool) {
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
/// `EAGAIN`), `deadline` passes, or the fd is closed.
///
/// This is the single suspension point of green I/O.
///
/// # Errors
/// `TimedOut` at the deadline; `ConnectionAborted` if the fd is closed
/// through [`notify_close`] while waited on; the poller's error if the fd
/// cannot be registered.
fn wait_ready(
    hub: &Hub,
    fd: RawFd,
    interest: Interest,
    deadline: Option<Instant>,
) -> io::Result<()> {
    hub.ensure_registered(fd)?;
    park_on(hub, fd, interest, deadline)
}

fn park_on(hub: &Hub, fd: RawFd, interest: Interest, deadline: Option<Instant>) -> io::Result<()> {
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
        let wake = super::park_fd(deadline);
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

fn name(i: Interest) -> &'static str {
    match i {
        Interest::Read => "readable",
        Interest::Write => "writable",
    }
}

/// Runs the non-blocking operation `op` on `fd`, parking the current context
/// whenever it fails with `WouldBlock` until `fd` is ready for `interest`,
/// then trying again.
///
/// This is the single chokepoint of green I/O: every green I/O type calls
/// it, and no other code loops on `EAGAIN`. `fd` must be in non-blocking
/// mode, or `op` must not block (use `MSG_DONTWAIT` and the like).
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
            crate::greenthread::sleep(wait);
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

impl Hub {
    /// Whether the hub knows `fd` has nothing for `interest` since its last
    /// readiness edge (and no hang-up was seen).
    fn known_unready(&self, fd: RawFd, interest: Interest) -> bool {
        let gen = generation(fd);
        let mut io = self.io.borrow_mut();
        match io.get(fd) {
            Some(e) => e.gen == gen && !e.hangup && !*e.ready(interest),
            None => false,
        }
    }

    fn clear_ready(&self, fd: RawFd, interest: Interest) {
        let mut io = self.io.borrow_mut();
        if let Some(e) = io.get(fd) {
            *e.ready(interest) = false;
        }
    }
}

/// The `revents` of `fd` for `events` right now: one `poll(2)` with a zero
/// timeout.
///
/// # Errors
/// `EBADF` if `fd` is not open; the error of `poll`.
pub(crate) fn poll_now(fd: RawFd, events: libc::c_short) -> io::Result<libc::c_short> {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if p.revents & libc::POLLNVAL != 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    Ok(p.revents)
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
    park_on(hub, fd, interest, deadline)
}

/// Tells every hub that `fd` is about to be closed: each green thread
/// waiting on it, on any OS thread, wakes with a `ConnectionAborted` error,
/// and the pollers forget it.
///
/// Call it *before* closing an fd that green threads may wait on (eventlet's
/// `hubs.notify_close`), on whichever OS thread closes it. The calling
/// thread's hub wakes its waiters at once; another hub that registered the
/// fd is sent the close through its remote queue (its poller is woken if it
/// sleeps) and wakes its waiters when its loop next runs. A hub that
/// registered the number again since, for another file, is left alone. An
/// fd no hub knows costs one compare-and-swap.
///
/// # Examples
/// ```
/// use std::os::fd::AsRawFd;
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// let fd = a.as_raw_fd();
/// let waiter = green::spawn(move || green::hub::trampoline(fd, green::hub::Interest::Read, None));
/// green::yield_now(); // the waiter parks on fd
/// // Closed on another OS thread: the waiter's hub is told too.
/// std::thread::spawn(move || {
///     green::hub::notify_close(fd);
///     drop(a);
/// })
/// .join()
/// .unwrap();
/// assert_eq!(waiter.wait().unwrap_err().kind(), std::io::ErrorKind::ConnectionAborted);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn notify_close(fd: RawFd) {
    let here = super::try_hub();
    // A new close count, and the hubs that registered the file being
    // closed, at one instant: a hub that registers the number later sees
    // the new count.
    let word = FD_STATE.get_or_make(fd).map(|w| {
        w.fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
            Some((count_of(old).wrapping_add(1) as u64) << 32)
        })
        .unwrap_or_else(|old| old)
    });
    if let Some(word) = word {
        let mine = here.map_or(0, |h| hub_bit(h.shared.id));
        let hubs = hubs_of(word);
        // Another hub's bit, or this hub's bit shared with another hub.
        if hubs & !mine != 0 || (hubs != 0 && HUB_IDS.load(Ordering::Relaxed) > 32) {
            close_elsewhere(fd, count_of(word), hubs, here);
        }
    }
    if let Some(hub) = here {
        hub.close_here(fd);
    }
}

/// Sends the close of `fd` (at close count `gen`) to every other hub whose
/// bit is in `hubs`.
#[cold]
#[inline(never)]
fn close_elsewhere(fd: RawFd, gen: u32, hubs: u32, here: Option<&Hub>) {
    if FORKED.load(Ordering::Relaxed) {
        return;
    }
    let targets: Vec<Arc<Shared>> = self::hubs()
        .iter()
        .enumerate()
        .filter(|(id, _)| hubs & hub_bit(*id as u32) != 0)
        .filter_map(|(_, h)| h.as_ref()?.upgrade())
        .filter(|s| here.is_none_or(|h| !Arc::ptr_eq(s, &h.shared)))
        .collect();
    // With the registry unlocked: dropping the last reference to a hub's
    // shared part closes its poller, which may come back here.
    for shared in targets {
        shared.close_remote(fd, gen);
    }
}

impl Shared {
    /// Tells this hub, from another thread, that `fd` (at close count `gen`)
    /// is about to be closed.
    fn close_remote(&self, fd: RawFd, gen: u32) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        // Forgotten now, while the fd still names the file that this
        // hub registered (the kernel would forget it at the close only if
        // no duplicate keeps the file open). An error means this hub did
        // not have it registered.
        let _ = self.poller.deregister(fd);
        self.closes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((fd, gen));
        self.has_closes.store(true, Ordering::SeqCst);
        self.wake_loop();
    }
}

impl Hub {
    /// Forgets `fd` and wakes its waiters with [`Wake::Closed`]: a close on
    /// this hub's own thread.
    fn close_here(&self, fd: RawFd) {
        let entry = {
            let mut io = self.io.borrow_mut();
            let Some(slot) = io.entries.get_mut(fd as usize) else {
                return;
            };
            let Some(e) = slot.take() else { return };
            io.registered -= 1;
            io.waiters -= e.readers.len() + e.writers.len();
            e
        };
        // An error means the kernel already forgot the fd (it was closed).
        let _ = self.shared.poller.deregister(fd);
        for t in entry.readers.into_iter().chain(entry.writers) {
            self.wake(t, Wake::Closed);
        }
    }

    /// Handles the closes other threads sent (see [`notify_close`]): each
    /// entry registered at or before the close's count names the closed
    /// file and goes, its waiters woken with [`Wake::Closed`]; an entry
    /// registered since names another file and stays. The poller has
    /// forgotten the fd already.
    pub(super) fn drain_closes(&self) {
        let closes =
            std::mem::take(&mut *self.shared.closes.lock().unwrap_or_else(|e| e.into_inner()));
        for (fd, gen) in closes {
            let entry = {
                let mut io = self.io.borrow_mut();
                let Some(slot) = io.entries.get_mut(fd as usize) else {
                    continue;
                };
                if !slot.as_ref().is_some_and(|e| registered_by(e.gen, gen)) {
                    continue;
                }
                let e = slot.take().expect("checked above");
                io.registered -= 1;
                io.waiters -= e.readers.len() + e.writers.len();
                e
            };
            for t in entry.readers.into_iter().chain(entry.writers) {
                self.wake(t, Wake::Closed);
            }
        }
    }
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

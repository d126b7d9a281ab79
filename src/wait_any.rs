//! Waiting on many: [`wait_any`] and [`iwait`] (gevent's `wait`/`iwait`,
//! Go's `select`).
//!
//! The items are green threads (finished), [`Event`](crate::Event)s (sent),
//! queues and [`mpsc::Receiver`](crate::sync::mpsc::Receiver)s (an item can
//! be taken), semaphores (a permit is free) and fds ([`WaitFd`]: readable
//! or writable). A wait registers a watcher with each item and parks once;
//! an item that may have become ready wakes it, and it looks again at that
//! item (see `wait/watch.rs`). It reports readiness only: taking the item
//! is the caller's next call, which another context may have beaten it to
//! (a `try_recv` then finds the channel empty, as after `select` in Go).

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::hub::{self, Blocker, Interest, Kind, Wake};
use crate::wait::watch::Signal;

use sealed::Item;

pub(crate) mod sealed {
    use std::os::fd::RawFd;

    use crate::hub::Interest;
    use crate::wait::watch::Watchable;

    /// What a [`Waitable`](super::Waitable) is, to a wait on many.
    #[allow(missing_debug_implementations)]
    pub enum Item<'a> {
        /// A primitive with watchers.
        Watch(&'a dyn Watchable),
        /// An fd and the direction waited for.
        Fd(RawFd, Interest),
    }

    /// Implemented by green's own types only.
    pub trait Sealed {
        fn item(&self) -> Item<'_>;
    }
}

/// Something [`wait_any`] and [`iwait`] can wait on.
///
/// Implemented by [`GreenThread`](crate::GreenThread) (ready once
/// finished), [`Event`](crate::Event) (once sent), the queues of
/// [`queue`](crate::queue) and [`mpsc::Receiver`](crate::sync::mpsc::Receiver)
/// (while an item can be taken, or the channel is closed, so that the
/// taking call would not wait), the semaphores (while a permit is free),
/// and [`WaitFd`] (while the fd is readable or writable, as `poll(2)`
/// says). The trait is sealed: other types cannot implement it.
pub trait Waitable: sealed::Sealed {}

/// An fd as an item of [`wait_any`] or [`iwait`], with the direction waited
/// for.
///
/// Ready when `poll(2)` reports the direction, or a hang-up, an error, or
/// an fd that is not open (`POLLNVAL`): the caller's next call on it then
/// returns at once, with its data or its error.
///
/// # Examples
/// ```
/// use green::net::UdpSocket;
///
/// let a = UdpSocket::bind("127.0.0.1:0")?;
/// let b = UdpSocket::bind("127.0.0.1:0")?;
/// b.send_to(b"hi", a.local_addr()?)?;
/// let ready = green::wait_any(&[&green::WaitFd::readable(&a)], None);
/// assert_eq!(ready, Some(0));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct WaitFd<'a> {
    fd: BorrowedFd<'a>,
    interest: Interest,
}

impl<'a> WaitFd<'a> {
    /// `fd`, waited on for `interest`.
    pub fn new<F: AsFd + ?Sized>(fd: &'a F, interest: Interest) -> WaitFd<'a> {
        WaitFd {
            fd: fd.as_fd(),
            interest,
        }
    }

    /// `fd`, waited on until it is readable.
    pub fn readable<F: AsFd + ?Sized>(fd: &'a F) -> WaitFd<'a> {
        WaitFd::new(fd, Interest::Read)
    }

    /// `fd`, waited on until it is writable.
    pub fn writable<F: AsFd + ?Sized>(fd: &'a F) -> WaitFd<'a> {
        WaitFd::new(fd, Interest::Write)
    }
}

impl sealed::Sealed for WaitFd<'_> {
    fn item(&self) -> Item<'_> {
        Item::Fd(self.fd.as_raw_fd(), self.interest)
    }
}

impl Waitable for WaitFd<'_> {}

/// Parks the calling green thread (or the root, or a plain OS thread) until
/// one of `items` is ready, and returns its index; `None` if `timeout`
/// passes first (`None`: no limit), or if `items` is empty.
///
/// If several are ready when it is called, the lowest index wins; after
/// that, the first to become ready. Readiness only: the caller takes the
/// item with its next, non-blocking call (`try_recv`, `try_wait`,
/// `try_acquire`, a read), which may find it gone if another context took
/// it first. A kill or [`Timeout`](crate::Timeout) during the wait unwinds
/// from it and leaves no watcher registered with any item.
///
/// Works across hubs and from plain OS threads, as every primitive: an
/// event sent or a message sent from another OS thread wakes the wait.
/// Called from the hub itself (a `call_later` callback) it panics, as any
/// wait there. Green thread handles work only on the OS thread that
/// spawned them, as the handles themselves.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use green::sync::mpsc;
///
/// let (tx, rx) = mpsc::channel::<&str>();
/// let stop = green::Event::<()>::new();
/// let worker = green::spawn(move || {
///     green::sleep(Duration::from_millis(10));
///     tx.send("done").unwrap();
/// });
/// match green::wait_any(&[&rx, &stop, &worker], Some(Duration::from_secs(5))) {
///     Some(0) => assert_eq!(rx.try_recv().unwrap(), "done"),
///     other => panic!("unexpected: {other:?}"),
/// }
/// ```
///
/// Items of one type go in as a `Vec` of trait objects:
/// ```
/// let events: Vec<green::Event<u32>> = (0..100).map(|_| green::Event::new()).collect();
/// events[42].send(7).unwrap();
/// let items: Vec<&dyn green::Waitable> = events.iter().map(|e| e as _).collect();
/// assert_eq!(green::wait_any(&items, None), Some(42));
/// ```
pub fn wait_any(items: &[&dyn Waitable], timeout: Option<Duration>) -> Option<usize> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    Select::new(items).next(deadline)
}

/// Yields the indices of `items` as they become ready, each once, until
/// all have been or `timeout` (for the whole iteration; `None`: no limit)
/// passes (gevent's `iwait`).
///
/// The items ready at the start come first, lowest index first; then each
/// as it becomes ready. An item that fired but was taken by another
/// context before the iterator looked at it is watched again, not
/// reported. The iterator keeps its watchers registered between calls to
/// `next` and removes them all when it is dropped (or unwound by a kill or
/// a [`Timeout`](crate::Timeout)). Readiness and threads as in
/// [`wait_any`].
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let workers: Vec<_> = [30u64, 10, 20]
///     .into_iter()
///     .map(|ms| green::spawn(move || green::sleep(Duration::from_millis(ms))))
///     .collect();
/// let items: Vec<&dyn green::Waitable> = workers.iter().map(|w| w as _).collect();
/// let order: Vec<usize> = green::iwait(&items, None).collect();
/// assert_eq!(order, [1, 2, 0]);
/// ```
pub fn iwait<'a>(items: &'a [&'a dyn Waitable], timeout: Option<Duration>) -> Iwait<'a> {
    Iwait {
        select: Select::new(items),
        deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
    }
}

/// The iterator of [`iwait`]: the index of each item as it becomes ready.
pub struct Iwait<'a> {
    select: Select<'a>,
    deadline: Option<Instant>,
}

impl std::fmt::Debug for Iwait<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iwait")
            .field("items", &self.select.items.len())
            .field("left", &self.select.left)
            .finish()
    }
}

impl Iterator for Iwait<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        self.select.next(self.deadline)
    }
}

/// The state of a wait on many, across the calls of an [`Iwait`].
struct Select<'a> {
    items: &'a [&'a dyn Waitable],
    /// Not yet reported.
    live: Vec<bool>,
    /// How many are live.
    left: usize,
    /// Whether item `i` has a watcher registered (not yet fired).
    watched: Vec<bool>,
    /// Whether any item is an fd.
    has_fds: bool,
    /// Made at the first registration.
    signal: Option<Arc<Signal>>,
    /// Whether the items were looked at once.
    scanned: bool,
    /// Whether the watchers were registered.
    started: bool,
    /// Found ready by the first look, to report in index order.
    pending: VecDeque<usize>,
    /// Indices that fired (or were ready at registration), to look at in
    /// that order.
    fired: VecDeque<usize>,
}

impl<'a> Select<'a> {
    fn new(items: &'a [&'a dyn Waitable]) -> Select<'a> {
        Select {
            items,
            live: vec![true; items.len()],
            left: items.len(),
            watched: vec![false; items.len()],
            has_fds: items.iter().any(|it| matches!(it.item(), Item::Fd(..))),
            signal: None,
            scanned: false,
            started: false,
            pending: VecDeque::new(),
            fired: VecDeque::new(),
        }
    }

    /// Reports item `i`.
    fn report(&mut self, i: usize) -> Option<usize> {
        self.live[i] = false;
        self.left -= 1;
        Some(i)
    }

    /// Looks at item `i` and registers a watcher if it is not ready;
    /// `true` if it is ready.
    fn watch(&mut self, i: usize) -> bool {
        match self.items[i].item() {
            Item::Watch(w) => {
                let signal = self.signal.get_or_insert_with(Signal::new);
                if w.watch(signal, i) {
                    return true;
                }
                self.watched[i] = true;
                false
            }
            // Fds are queued with the hub for each park instead.
            Item::Fd(..) => false,
        }
    }

    /// The live fds, with their indices.
    fn fds(&self) -> (Vec<usize>, Vec<(RawFd, Interest)>) {
        if !self.has_fds {
            return (Vec::new(), Vec::new());
        }
        self.items
            .iter()
            .enumerate()
            .filter(|&(i, _)| self.live[i])
            .filter_map(|(i, it)| match it.item() {
                Item::Fd(fd, interest) => Some((i, (fd, interest))),
                Item::Watch(_) => None,
            })
            .unzip()
    }

    /// The items ready now, in index order.
    fn ready_now(&self) -> Vec<usize> {
        let (fd_idx, fds) = self.fds();
        let fd_ready = poll_ready(&fds);
        let mut ready: Vec<usize> = fd_idx
            .iter()
            .zip(&fd_ready)
            .filter(|(_, &r)| r)
            .map(|(&i, _)| i)
            .collect();
        ready.extend((0..self.items.len()).filter(|&i| {
            self.live[i] && matches!(self.items[i].item(), Item::Watch(w) if w.ready())
        }));
        ready.sort_unstable();
        ready
    }

    /// The next ready item, parking until there is one or `deadline`.
    fn next(&mut self, deadline: Option<Instant>) -> Option<usize> {
        crate::hub::coop_spend();
        if let Some(i) = self.pending.pop_front() {
            return self.report(i);
        }
        if self.left == 0 {
            return None;
        }
        if !self.scanned {
            // Ready now: reported first, in index order, before any
            // watcher is registered.
            self.scanned = true;
            self.pending = self.ready_now().into();
            if let Some(i) = self.pending.pop_front() {
                return self.report(i);
            }
        }
        if !self.started {
            self.started = true;
            for i in 0..self.items.len() {
                if self.live[i] && self.watch(i) {
                    // Became ready since the look above.
                    self.fired.push_back(i);
                }
            }
        }
        let h = hub::hub();
        loop {
            // Those that fired: ready, or watched again.
            while let Some(i) = self.fired.pop_front() {
                self.watched[i] = false;
                if self.live[i] && self.watch(i) {
                    return self.report(i);
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            // Armed before the fds are queued with this park's token: the
            // signal's lock may park (under `patch()`), and so may
            // registering an fd, and such a park must not take the token.
            if let Some(s) = &self.signal {
                let fired = s.arm(h.unparker());
                if !fired.is_empty() {
                    self.fired.extend(fired);
                    continue;
                }
            }
            let on = Blocker::arg(Kind::Any, self.items.len() as u64);
            if self.has_fds {
                let (fd_idx, fds) = self.fds();
                // An fd the poller refuses cannot be waited for: reported
                // as ready, for the caller's call to say why.
                if let Some(k) = fds.iter().position(|&(fd, _)| h.watch_fd(fd).is_err()) {
                    return self.report(fd_idx[k]);
                }
                // Queued, then looked at: an edge after the look wakes the
                // park through the queued waiters.
                let queued = h.queue_many(&fds);
                if let Some(k) = poll_ready(&fds).iter().position(|&r| r) {
                    drop(queued);
                    return self.report(fd_idx[k]);
                }
                let wake = hub::park_fd(deadline, on);
                drop(queued);
                if wake == Wake::Closed && h.is_closing() {
                    // The hub is torn down and watches no fd any more:
                    // the first fd, whose own call then fails or returns.
                    return self.report(fd_idx[0]);
                }
            } else {
                crate::wait::park(deadline, on);
            }
            if let Some(s) = &self.signal {
                self.fired.extend(s.take_fired());
            }
        }
    }
}

impl Drop for Select<'_> {
    /// Leaves no watcher behind: after the wait, and when a kill or a
    /// timeout unwinds it.
    fn drop(&mut self) {
        let Some(signal) = &self.signal else { return };
        for (i, _) in self.watched.iter().enumerate().filter(|(_, &w)| w) {
            if let Item::Watch(w) = self.items[i].item() {
                w.unwatch(signal, i);
            }
        }
    }
}

/// Which of `fds` are ready for their interest (or hung up, in error, or
/// not open), asked with one `poll(2)`.
fn poll_ready(fds: &[(RawFd, Interest)]) -> Vec<bool> {
    use crate::sys::event::{poll, PollFd, PollFlags, Timespec};
    if fds.is_empty() {
        return Vec::new();
    }
    let mut set: Vec<PollFd<'_>> = fds
        .iter()
        .map(|&(fd, interest)| {
            let events = match interest {
                Interest::Read => PollFlags::IN,
                Interest::Write => PollFlags::OUT,
            };
            // SAFETY: the fd is only polled, during this call; one that is
            // not open reports `POLLNVAL`.
            PollFd::from_borrowed_fd(unsafe { BorrowedFd::borrow_raw(fd) }, events)
        })
        .collect();
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut set, Some(&zero)) {
        Ok(_) => set.iter().map(|p| !p.revents().is_empty()).collect(),
        // Only `EINTR` or `ENOMEM` here: every fd counts as ready, for the
        // caller's own call to tell.
        Err(_) => vec![true; fds.len()],
    }
}

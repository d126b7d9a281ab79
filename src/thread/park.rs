//! A thread's handle, [`Thread`], and its park token.
//!
//! Every context (a green thread, or the root context of an OS thread) has
//! a token, set by [`Thread::unpark`] and taken by [`park`]. A context
//! parks through its hub, which also handles a park on a closing hub (the
//! OS thread exits and unwinds its green threads, and a destructor parks):
//! it blocks the OS thread until an unpark from another one.

use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::current;
use crate::hub::{self, Unparker, Wake};

#[cfg(doc)]
use super::{Builder, JoinHandle, ScopedJoinHandle};

/// A unique identifier for a running thread.
///
/// Every green thread and every root context has one; it is never reused
/// within a process. A green thread's id is the number
/// [`GreenThread::id`](crate::GreenThread::id) and
/// [`current_id`](crate::current_id) report for it.
///
/// # Notes
/// This is green's own type: std's `ThreadId` cannot be constructed, and
/// names OS threads.
///
/// # Examples
/// ```
/// use green::thread;
///
/// let other = thread::spawn(|| thread::current().id());
/// let other_id = other.join().unwrap();
/// assert!(thread::current().id() != other_id);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ThreadId(pub(super) NonZeroU64);

impl ThreadId {
    fn new(id: u64) -> ThreadId {
        ThreadId(NonZeroU64::new(id).expect("green thread ids start at 1"))
    }
}

/// A handle to a thread.
///
/// Get one with [`current`], [`JoinHandle::thread`] or
/// [`ScopedJoinHandle::thread`]. It is `Send + Sync`: [`unpark`](Thread::unpark)
/// works from any OS thread, with or without a hub.
///
/// # Examples
/// ```
/// use green::thread;
///
/// let handle = thread::Builder::new()
///     .name("worker".into())
///     .spawn(|| thread::current().name().map(String::from))?;
/// assert_eq!(handle.thread().name(), Some("worker"));
/// assert_eq!(handle.join().unwrap().as_deref(), Some("worker"));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Thread {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    id: ThreadId,
    /// Shared with the record the watchdog reads (`hub::stall`).
    name: Option<Arc<str>>,
    /// The park token: set by `unpark`, taken by `park`.
    notified: AtomicBool,
    /// Wakes the context's park, or makes its next one return.
    pub(super) unparker: Unparker,
}

impl Thread {
    pub(super) fn new(id: u64, name: Option<Arc<str>>, unparker: Unparker) -> Thread {
        Thread {
            inner: Arc::new(Inner {
                id: ThreadId::new(id),
                name,
                notified: AtomicBool::new(false),
                unparker,
            }),
        }
    }

    /// Atomically makes the handle's token available if it is not already.
    ///
    /// Every thread has a token, initially absent. If the thread is blocked
    /// in [`park`] or [`park_timeout`], it wakes; otherwise its next call to
    /// one of them returns at once, taking the token. Tokens do not add up:
    /// two `unpark` calls before a `park` let one `park` through.
    ///
    /// # Notes
    /// Called from the same hub, it queues the thread to run; from another
    /// OS thread, it reaches the thread's hub through its remote queue (and
    /// a plain OS thread that calls it gets no hub). Once the thread has
    /// finished, `unpark` does nothing.
    ///
    /// # Examples
    /// ```
    /// use green::thread;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    ///
    /// let flag = Arc::new(AtomicBool::new(false));
    /// let flag2 = flag.clone();
    /// let parked = thread::spawn(move || {
    ///     while !flag2.load(Ordering::Acquire) {
    ///         thread::park();
    ///     }
    /// });
    /// flag.store(true, Ordering::Release);
    /// parked.thread().unpark();
    /// parked.join().unwrap();
    /// ```
    pub fn unpark(&self) {
        let inner = &*self.inner;
        // A token already there has been (or is being) announced to the
        // context: it looks at the token after every wakeup.
        if !inner.notified.swap(true, Ordering::SeqCst) {
            inner.unparker.unpark();
        }
    }

    /// Gets the thread's unique identifier.
    ///
    /// # Examples
    /// ```
    /// use green::thread;
    ///
    /// let me = thread::current();
    /// assert_eq!(me.id(), thread::current().id());
    /// ```
    pub fn id(&self) -> ThreadId {
        self.inner.id
    }

    /// Gets the thread's name.
    ///
    /// A thread spawned with [`Builder::name`] has that name; the root
    /// context has its OS thread's name (`"main"` for the main thread);
    /// other green threads have none.
    ///
    /// # Examples
    /// ```
    /// use green::thread;
    ///
    /// let unnamed = thread::spawn(|| thread::current().name().is_none());
    /// assert!(unnamed.join().unwrap());
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// Parks the calling context, whose handle this is, until the token is
    /// available or `deadline` passes. Kills and timeouts unwind from here.
    fn park_until(&self, deadline: Option<Instant>) {
        let inner = &*self.inner;
        if inner.notified.swap(false, Ordering::SeqCst) {
            return;
        }
        loop {
            match crate::wait::park(deadline, hub::Blocker::of(hub::Kind::Park)) {
                Wake::TimedOut => {
                    // An unpark that raced with the deadline is used up.
                    inner.notified.store(false, Ordering::SeqCst);
                    return;
                }
                Wake::Woken | Wake::Closed | Wake::Cancel(_) => {}
            }
            if inner.notified.swap(false, Ordering::SeqCst) {
                return;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return;
            }
        }
    }
}

impl fmt::Debug for Thread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Thread")
            .field("id", &self.id())
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

/// Blocks unless or until the current thread's token is made available.
///
/// Only the current green thread parks; on the root context the hub loop
/// runs in place meanwhile. See [`Thread::unpark`] for the token. As with
/// std's (which may wake spuriously), callers check their condition in a
/// loop.
///
/// # Panics
/// Panics when called from the hub itself (a timer callback).
///
/// # Notes
/// A [`kill`](crate::GreenThread::kill) or [`Timeout`](crate::Timeout)
/// aimed at the caller unwinds from `park`. A destructor that parks while
/// its OS thread exits (and unwinds its green threads) blocks the OS thread
/// until it is unparked from another OS thread.
///
/// # Examples
/// ```
/// use green::thread;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// let ready = Arc::new(AtomicBool::new(false));
/// let me = thread::current();
/// let r = ready.clone();
/// thread::spawn(move || {
///     r.store(true, Ordering::Release);
///     me.unpark();
/// });
/// // The root parks; the hub runs the green thread, which unparks it.
/// while !ready.load(Ordering::Acquire) {
///     thread::park();
/// }
/// ```
pub fn park() {
    current().park_until(None);
}

/// Blocks unless or until the current thread's token is made available or
/// the specified duration has been reached (may wake spuriously).
///
/// # Panics
/// Panics when called from the hub itself (a timer callback).
///
/// # Examples
/// ```
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// green::thread::park_timeout(Duration::from_millis(10));
/// assert!(start.elapsed() >= Duration::from_millis(10));
/// ```
pub fn park_timeout(dur: Duration) {
    let me = current();
    me.park_until(Instant::now().checked_add(dur));
}

/// Uses [`park_timeout`]: blocks unless or until the current thread's
/// token is made available or `ms` milliseconds have passed (may wake
/// spuriously).
///
/// Deprecated as in std, in favour of [`park_timeout`].
///
/// # Panics
/// Panics when called from the hub itself (a timer callback).
///
/// # Examples
/// ```
/// # #![allow(deprecated)]
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// green::thread::park_timeout_ms(10);
/// assert!(start.elapsed() >= Duration::from_millis(10));
/// ```
#[deprecated(since = "1.6.0", note = "replaced by `std::thread::park_timeout`")]
pub fn park_timeout_ms(ms: u32) {
    park_timeout(Duration::from_millis(u64::from(ms)))
}

//! [`Event`]: send a value once, to every waiter (eventlet's `Event`).

use crate::hub::{Blocker, Kind};
use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::wait::watch::{Watched, Watchers};
use crate::wait::{self, Lock, WaitList, Waited};

/// A one-shot value that many contexts can wait for (eventlet's `Event`).
///
/// [`send`](Event::send) stores a value and wakes every waiter, each with its
/// own clone; later waiters get a clone at once, until
/// [`reset`](Event::reset). Cloning an `Event` gives another handle to the
/// same event, so it can be handed to green threads on this hub or on other
/// OS threads. Waiting parks only the current green thread; a plain OS
/// thread simply blocks.
///
/// # Examples
/// ```
/// let evt = green::Event::new();
/// let waiters: Vec<_> = (0..3)
///     .map(|_| {
///         let evt = evt.clone();
///         green::spawn(move || evt.wait() * 2)
///     })
///     .collect();
/// evt.send(21).unwrap();
/// for w in waiters {
///     assert_eq!(w.wait(), 42);
/// }
/// ```
///
/// Like [`Mutex<T>`](std::sync::Mutex), an `Event<T>` is `Send` and `Sync`
/// when `T` is `Send`, and not otherwise:
///
/// ```compile_fail,E0277
/// fn assert_send<T: Send>() {}
/// assert_send::<green::Event<std::rc::Rc<u8>>>();
/// ```
pub struct Event<T = ()> {
    inner: Arc<Lock<State<T>>>,
}

struct State<T> {
    value: Option<T>,
    waiters: WaitList<T>,
    /// Waits on many ([`crate::wait_any`]) that watch for the send.
    watchers: Watchers,
}

impl<T> Clone for Event<T> {
    fn clone(&self) -> Self {
        Event {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Default for Event<T> {
    fn default() -> Self {
        Event::new()
    }
}

impl<T> fmt::Debug for Event<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.inner.lock();
        f.debug_struct("Event")
            .field("ready", &s.value.is_some())
            .field("waiters", &s.waiters.len())
            .field("watching", &s.watchers.len())
            .finish()
    }
}

/// The error of [`Event::send`] on an event that already holds a value; it
/// gives the value back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AlreadySent<T>(pub T);

impl<T> fmt::Debug for AlreadySent<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AlreadySent { .. }")
    }
}

impl<T> fmt::Display for AlreadySent<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the event was already sent; reset it before sending again")
    }
}

impl<T> Error for AlreadySent<T> {}

impl<T> Event<T> {
    /// Creates an event that has not been sent.
    pub fn new() -> Event<T> {
        Event {
            inner: Arc::new(Lock::new(State {
                value: None,
                waiters: WaitList::default(),
                watchers: Watchers::new(),
            })),
        }
    }

    /// Whether the event holds a value (it was sent and not reset).
    pub fn ready(&self) -> bool {
        self.inner.lock().value.is_some()
    }

    /// Clears the value, so that the event can be sent again. Waiters
    /// already woken keep the value they were given.
    ///
    /// # Examples
    /// ```
    /// let evt = green::Event::new();
    /// evt.send(1).unwrap();
    /// evt.reset();
    /// assert!(!evt.ready());
    /// evt.send(2).unwrap();
    /// assert_eq!(evt.wait(), 2);
    /// ```
    pub fn reset(&self) {
        let old = self.inner.lock().value.take();
        drop(old);
    }
}

impl<T: Clone> Event<T> {
    /// Stores `value` and wakes every waiter with a clone of it.
    ///
    /// # Errors
    /// [`AlreadySent`], holding `value`, if the event already holds a
    /// value: sending twice needs a [`reset`](Event::reset) in between
    /// (eventlet raises an `AssertionError` there).
    ///
    /// # Examples
    /// ```
    /// let evt = green::Event::new();
    /// assert!(evt.send("first").is_ok());
    /// assert_eq!(evt.send("second").unwrap_err().0, "second");
    /// assert_eq!(evt.wait(), "first");
    /// ```
    pub fn send(&self, value: T) -> Result<(), AlreadySent<T>> {
        crate::hub::coop_spend();
        let mut s = self.inner.lock();
        if s.value.is_some() {
            return Err(AlreadySent(value));
        }
        s.waiters.notify_all(|slot| *slot = Some(value.clone()));
        s.value = Some(value);
        s.watchers.fire();
        Ok(())
    }

    /// Waits until the event is sent and returns a clone of its value.
    ///
    /// Returns at once if the event already holds a value.
    ///
    /// # Examples
    /// ```
    /// let evt = green::Event::new();
    /// let sender = evt.clone();
    /// std::thread::spawn(move || sender.send("from another thread").unwrap());
    /// assert_eq!(evt.wait(), "from another thread");
    /// ```
    pub fn wait(&self) -> T {
        match self.wait_deadline(None) {
            Some(v) => v,
            None => unreachable!("a wait without deadline does not time out"),
        }
    }

    /// Like [`wait`](Event::wait), but gives up after `timeout`: `None`
    /// if the event was not sent by then.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let evt: green::Event<u8> = green::Event::new();
    /// assert_eq!(evt.wait_timeout(Duration::from_millis(10)), None);
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Option<T> {
        // A deadline past the end of time is no deadline.
        self.wait_deadline(Instant::now().checked_add(timeout))
    }

    /// The value if the event holds one, without waiting.
    ///
    /// # Examples
    /// ```
    /// let evt = green::Event::new();
    /// assert_eq!(evt.try_wait(), None);
    /// evt.send(3).unwrap();
    /// assert_eq!(evt.try_wait(), Some(3));
    /// ```
    pub fn try_wait(&self) -> Option<T> {
        crate::hub::coop_spend();
        self.inner.lock().value.clone()
    }

    /// Waits as [`Event::wait`] does, shown in a dump as a wait on `on`.
    pub(crate) fn wait_as(&self, on: Blocker) -> T {
        self.wait_deadline_as(None, on)
            .expect("an event without a deadline returns its value")
    }

    fn wait_deadline(&self, deadline: Option<Instant>) -> Option<T> {
        self.wait_deadline_as(deadline, Blocker::at(Kind::Event, &*self.inner))
    }

    fn wait_deadline_as(&self, deadline: Option<Instant>, on: Blocker) -> Option<T> {
        crate::hub::coop_spend();
        let s = self.inner.lock();
        if let Some(v) = &s.value {
            return Some(v.clone());
        }
        // A waiter unwound after being handed its clone just drops it.
        match wait::wait(
            &self.inner,
            s,
            |s| &mut s.waiters,
            None,
            deadline,
            |_, _| {},
            on,
        ) {
            Waited::Notified(v) => v,
            Waited::TimedOut(_) => None,
        }
    }
}

/// Ready once sent.
impl<T> Watched for State<T> {
    fn is_ready(&self) -> bool {
        self.value.is_some()
    }

    fn watchers(&mut self) -> &mut Watchers {
        &mut self.watchers
    }
}

impl<T> crate::wait_any::sealed::Sealed for Event<T> {
    fn item(&self) -> crate::wait_any::sealed::Item<'_> {
        crate::wait_any::sealed::Item::Watch(&*self.inner)
    }
}

impl<T> crate::Waitable for Event<T> {}

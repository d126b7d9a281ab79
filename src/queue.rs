//! Queues between green threads, hubs and OS threads (eventlet's `queue`).
//!
//! Four kinds share one API and differ in which item comes out next:
//!
//! | type | order | task tracking ([`task_done`](Queue::task_done), [`join`](Queue::join)) |
//! |---|---|---|
//! | [`Queue`] | first in, first out | yes |
//! | [`LightQueue`] | first in, first out | no |
//! | [`PriorityQueue`] | smallest first | yes |
//! | [`LifoQueue`] | last in, first out | yes |
//!
//! Each kind is made with `new(maxsize)`, `bounded(maxsize)` or
//! `unbounded()`. A `maxsize` of 0 makes a **rendezvous** channel, as in
//! eventlet: it stores nothing, and `put` waits until a `get` takes the
//! item from the putter's hands.
//!
//! A handle is cheap to clone; clones are handles to the same queue, and are
//! `Send` and `Sync` when the items are `Send`. A queue works between green
//! threads of one hub, between hubs on different OS threads, and with plain
//! OS threads: whoever blocks parks (a green thread through its hub, a plain
//! thread with [`std::thread::park`]) and whoever hands over an item wakes
//! it. Items pass straight from putter to getter when one of them waits.
//!
//! Blocked `put`s and `get`s are served first come, first served. A green
//! thread killed (or hit by a [`Timeout`](crate::Timeout)) while it waits
//! leaves the queue as if it had never waited: an item it had already been
//! handed goes to the next getter, or back to the head of the queue. A
//! putter killed before its item was taken takes the item down with it; one
//! killed after it was taken (a rendezvous or a full queue), but before it
//! ran again, unwinds although its item was delivered.
//!
//! # Examples
//! ```
//! use green::queue::Queue;
//!
//! let q = Queue::new(2);
//! let producer = {
//!     let q = q.clone();
//!     green::spawn(move || {
//!         for i in 0..5 {
//!             q.put(i); // waits while two items are queued
//!         }
//!     })
//! };
//! let got: Vec<i32> = (0..5).map(|_| q.get()).collect();
//! assert_eq!(got, [0, 1, 2, 3, 4]);
//! producer.wait();
//! ```

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::wait::chan::{Block, Chan, Fifo, GetFail, Lifo, Prio, PutFail};

/// The error of a `put` that found no room: the queue was full (or, on a
/// rendezvous queue, no getter took the item) and it could not or would no
/// longer wait. It hands the item back.
///
/// Like [`std::sync::mpsc::SendError`], its `Debug` output does not show the
/// item, so it is `Debug` whatever the item is.
///
/// # Examples
/// ```
/// use green::queue::{Full, Queue};
///
/// let q = Queue::new(1);
/// q.put("a");
/// let err: Full<&str> = q.put_nowait("b").unwrap_err();
/// assert_eq!(err.to_string(), "queue is full");
/// assert_eq!(err.into_inner(), "b");
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Full<T>(pub T);

impl<T> Full<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Full").finish_non_exhaustive()
    }
}

impl<T> fmt::Display for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("queue is full")
    }
}

impl<T> Error for Full<T> {}

/// The error of a `get` that found no item and could not or would no longer
/// wait.
///
/// # Examples
/// ```
/// use green::queue::{Empty, Queue};
///
/// let q: Queue<u8> = Queue::unbounded();
/// assert_eq!(q.get_nowait(), Err(Empty));
/// assert_eq!(Empty.to_string(), "queue is empty");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Empty;

impl fmt::Display for Empty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("queue is empty")
    }
}

impl Error for Empty {}

fn full<T>(e: PutFail<T>) -> Full<T> {
    match e {
        PutFail::Full(item) | PutFail::Closed(item) => Full(item),
    }
}

fn empty(e: GetFail) -> Empty {
    match e {
        GetFail::Empty | GetFail::Closed => Empty,
    }
}

/// The methods every queue kind has.
macro_rules! queue_kind {
    (
        $(#[$attr:meta])*
        $name:ident, $store:ident, track: $track:expr, [$($bound:tt)*]
    ) => {
        $(#[$attr])*
        pub struct $name<T> {
            chan: Arc<Chan<T, $store<T>>>,
        }

        impl<T $($bound)*> crate::wait_any::sealed::Sealed for $name<T> {
            fn item(&self) -> crate::wait_any::sealed::Item<'_> {
                crate::wait_any::sealed::Item::Watch(self.chan.watched())
            }
        }

        /// Ready while a `get` would not wait (an item can be taken).
        impl<T $($bound)*> crate::Waitable for $name<T> {}

        impl<T> Clone for $name<T> {
            /// Another handle to the same queue.
            fn clone(&self) -> Self {
                $name {
                    chan: self.chan.clone(),
                }
            }
        }

        impl<T $($bound)*> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("qsize", &self.qsize())
                    .field("maxsize", &self.maxsize())
                    .field("getting", &self.getting())
                    .field("putting", &self.putting())
                    .field("watching", &self.chan.watching())
                    .finish()
            }
        }

        impl<T $($bound)*> Default for $name<T> {
            /// An unbounded queue.
            fn default() -> Self {
                Self::unbounded()
            }
        }

        impl<T $($bound)*> $name<T> {
            /// A queue that holds at most `maxsize` items; `0` makes a
            /// rendezvous channel, where `put` waits until a `get` takes
            /// the item.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let q = green::queue::", stringify!($name), "::new(2);")]
            /// q.put(1);
            /// q.put(2);
            /// assert!(q.full());
            /// assert_eq!(q.maxsize(), Some(2));
            /// ```
            pub fn new(maxsize: usize) -> Self {
                $name {
                    chan: Arc::new(Chan::new(Some(maxsize), $track, false)),
                }
            }

            /// A queue that holds at most `maxsize` items, the same as
            /// [`new`](Self::new): `0` makes a rendezvous channel.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let q = green::queue::", stringify!($name), "::bounded(1);")]
            /// q.put('a');
            /// assert!(q.put_nowait('b').is_err());
            /// ```
            pub fn bounded(maxsize: usize) -> Self {
                Self::new(maxsize)
            }

            /// A queue without a size limit: `put` never waits.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let q = green::queue::", stringify!($name), "::unbounded();")]
            /// for i in 0..1000 {
            ///     q.put(i);
            /// }
            /// assert_eq!(q.qsize(), 1000);
            /// assert_eq!(q.maxsize(), None);
            /// ```
            pub fn unbounded() -> Self {
                $name {
                    chan: Arc::new(Chan::new(None, $track, false)),
                }
            }

            /// Puts `item` into the queue, waiting while it is full. On a
            /// rendezvous queue, returns once a getter has taken the item.
            ///
            /// Waiting putters are served in the order they came. If the
            /// caller is killed (or its [`Timeout`](crate::Timeout) expires)
            /// while it waits, the item is not put and is dropped; if a
            /// getter took it first, it stays delivered.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let q = green::queue::", stringify!($name), "::new(0);")]
            /// let getter = {
            ///     let q = q.clone();
            ///     green::spawn(move || q.get())
            /// };
            /// q.put(7); // returns once the getter has taken the item
            /// assert_eq!(getter.wait(), 7);
            /// ```
            #[inline(always)]
            pub fn put(&self, item: T) {
                if let Err(e) = self.chan.put(item, Block::Forever) {
                    unreachable!("a put that may wait always delivers: {:?}", full(e));
                }
            }

            /// Puts `item` into the queue if that needs no waiting.
            ///
            /// # Errors
            /// [`Full`], holding `item`, if the queue is full; a rendezvous
            /// queue is full unless a getter is waiting.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let q = green::queue::", stringify!($name), "::new(1);")]
            /// assert!(q.put_nowait(1).is_ok());
            /// assert_eq!(q.put_nowait(2).unwrap_err().into_inner(), 2);
            /// ```
            #[inline]
            pub fn put_nowait(&self, item: T) -> Result<(), Full<T>> {
                self.chan.put(item, Block::No).map_err(full)
            }

            /// Puts `item` into the queue, waiting at most `timeout` for room.
            ///
            /// # Errors
            /// [`Full`], holding `item`, if no room came in time (on a
            /// rendezvous queue: no getter took the item in time).
            ///
            /// # Examples
            /// ```
            /// use std::time::Duration;
            #[doc = concat!("let q = green::queue::", stringify!($name), "::new(1);")]
            /// q.put(1);
            /// let err = q.put_timeout(2, Duration::from_millis(10)).unwrap_err();
            /// assert_eq!(err.into_inner(), 2);
            /// ```
            pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), Full<T>> {
                self.chan.put(item, Block::timeout(timeout)).map_err(full)
            }

            /// Removes and returns the next item, waiting until there is one.
            ///
            /// Waiting getters are served in the order they came. If the
            /// caller is killed (or its [`Timeout`](crate::Timeout) expires)
            /// after an item was handed to it but before it ran again, the
            /// item goes to the next waiting getter, or back to the head of
            /// the queue.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let q = green::queue::", stringify!($name), "::unbounded();")]
            /// let q2 = q.clone();
            /// green::spawn(move || q2.put("hello"));
            /// assert_eq!(q.get(), "hello"); // waits; the green thread puts
            /// ```
            #[inline(always)]
            pub fn get(&self) -> T {
                match self.chan.get(Block::Forever) {
                    Ok(item) => item,
                    Err(e) => unreachable!("a get that may wait always receives: {e:?}"),
                }
            }

            /// Removes and returns the next item if there is one now.
            ///
            /// # Errors
            /// [`Empty`] if there is no item; on a rendezvous queue, if no
            /// putter is waiting.
            ///
            /// # Examples
            /// ```
            /// use green::queue::Empty;
            #[doc = concat!("let q = green::queue::", stringify!($name), "::new(1);")]
            /// assert_eq!(q.get_nowait(), Err(Empty));
            /// q.put(5);
            /// assert_eq!(q.get_nowait(), Ok(5));
            /// ```
            #[inline]
            pub fn get_nowait(&self) -> Result<T, Empty> {
                self.chan.get(Block::No).map_err(empty)
            }

            /// Removes and returns the next item, waiting at most `timeout`
            /// for one.
            ///
            /// # Errors
            /// [`Empty`] if no item came in time.
            ///
            /// # Examples
            /// ```
            /// use std::time::Duration;
            /// use green::queue::Empty;
            #[doc = concat!("let q = green::queue::", stringify!($name), "::<u8>::new(1);")]
            /// assert_eq!(q.get_timeout(Duration::from_millis(10)), Err(Empty));
            /// ```
            pub fn get_timeout(&self, timeout: Duration) -> Result<T, Empty> {
                self.chan.get(Block::timeout(timeout)).map_err(empty)
            }

            /// How many items the queue holds. Items that blocked putters
            /// still carry are not counted: on a rendezvous queue this is
            /// usually 0.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let q = green::queue::", stringify!($name), "::unbounded();")]
            /// q.put(1);
            /// q.put(2);
            /// assert_eq!(q.qsize(), 2);
            /// ```
            pub fn qsize(&self) -> usize {
                self.chan.len()
            }

            /// Whether the queue holds no items.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let q = green::queue::", stringify!($name), "::unbounded();")]
            /// assert!(q.empty());
            /// q.put(1);
            /// assert!(!q.empty());
            /// ```
            pub fn empty(&self) -> bool {
                self.qsize() == 0
            }

            /// Whether the queue is full: a `put` now would wait (or, without
            /// waiting, fail) unless a getter is waiting. A rendezvous queue
            /// is always full; an unbounded one never.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let q = green::queue::", stringify!($name), "::new(1);")]
            /// assert!(!q.full());
            /// q.put(1);
            /// assert!(q.full());
            /// ```
            pub fn full(&self) -> bool {
                self.chan.is_full()
            }

            /// The size limit: `None` for an unbounded queue, `Some(0)` for a
            /// rendezvous queue.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let q = green::queue::", stringify!($name), "::<u8>::new(0);")]
            /// assert_eq!(q.maxsize(), Some(0));
            /// ```
            pub fn maxsize(&self) -> Option<usize> {
                self.chan.maxsize()
            }

            /// Changes the size limit (`None`: unbounded).
            ///
            /// Growing it lets waiting putters whose items now fit put them
            /// (in the order they came) and wakes them. Shrinking it drops
            /// nothing: the queue may hold more than the new limit until
            /// gets bring it below.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let q = green::queue::", stringify!($name), "::new(1);")]
            /// q.put(1);
            /// let putter = {
            ///     let q = q.clone();
            ///     green::spawn(move || q.put(2))
            /// };
            /// green::yield_now(); // the putter waits: the queue is full
            /// assert_eq!(q.putting(), 1);
            /// q.resize(Some(2));
            /// assert_eq!(q.putting(), 0);
            /// assert_eq!(q.qsize(), 2);
            /// putter.wait();
            /// ```
            pub fn resize(&self, maxsize: Option<usize>) {
                self.chan.resize(maxsize)
            }

            /// How many contexts are blocked in a `get` (or `get_timeout`).
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let q = green::queue::", stringify!($name), "::unbounded();")]
            /// let getter = {
            ///     let q = q.clone();
            ///     green::spawn(move || q.get())
            /// };
            /// green::yield_now(); // the getter starts and waits
            /// assert_eq!(q.getting(), 1);
            /// q.put(1);
            /// assert_eq!(q.getting(), 0);
            /// assert_eq!(getter.wait(), 1);
            /// ```
            pub fn getting(&self) -> usize {
                self.chan.getting()
            }

            /// How many contexts are blocked in a `put` (or `put_timeout`).
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let q = green::queue::", stringify!($name), "::new(0);")]
            /// let putter = {
            ///     let q = q.clone();
            ///     green::spawn(move || q.put(1))
            /// };
            /// green::yield_now(); // the putter starts and waits for a getter
            /// assert_eq!(q.putting(), 1);
            /// assert_eq!(q.get(), 1);
            /// assert_eq!(q.putting(), 0);
            /// putter.wait();
            /// ```
            pub fn putting(&self) -> usize {
                self.chan.putting()
            }
        }
    };
}

/// `task_done` and `join`, for the kinds that track tasks.
macro_rules! task_tracking {
    ($name:ident, [$($bound:tt)*]) => {
        impl<T $($bound)*> $name<T> {
            /// Marks one item taken from the queue as processed.
            ///
            /// Every item put into the queue counts as an unfinished task
            /// until a `task_done` call marks it done; [`join`](Self::join)
            /// waits until none is left.
            ///
            /// # Panics
            /// Panics with "task_done() called more times than there were
            /// items" if every item put has already been marked done.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let q = green::queue::", stringify!($name), "::unbounded();")]
            /// q.put(1);
            /// q.get();
            /// q.task_done();
            /// q.join(); // returns at once: nothing is unfinished
            /// ```
            pub fn task_done(&self) {
                self.chan.task_done()
            }

            /// Waits until every item put into the queue has been marked
            /// processed with [`task_done`](Self::task_done).
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let q = green::queue::", stringify!($name), "::unbounded();")]
            /// let worker = {
            ///     let q = q.clone();
            ///     green::spawn(move || loop {
            ///         let job: u32 = q.get();
            ///         let _ = job * 2; // process it
            ///         q.task_done();
            ///     })
            /// };
            /// for job in 0..10 {
            ///     q.put(job);
            /// }
            /// q.join(); // the worker has processed all ten
            /// assert!(q.empty());
            /// worker.kill();
            /// ```
            pub fn join(&self) {
                self.chan.join()
            }
        }
    };
}

queue_kind! {
    /// A first-in, first-out queue with task tracking (eventlet's `Queue`).
    ///
    /// See the [module docs](self) for how queues behave. Beyond what every
    /// kind does, it counts unfinished tasks: [`task_done`](Queue::task_done)
    /// marks an item processed and [`join`](Queue::join) waits until all
    /// are. [`LightQueue`] is the same without that bookkeeping.
    ///
    /// # Examples
    /// ```
    /// use green::queue::Queue;
    ///
    /// let q = Queue::unbounded();
    /// q.put('a');
    /// q.put('b');
    /// assert_eq!(q.get(), 'a');
    /// assert_eq!(q.get(), 'b');
    /// ```
    ///
    /// A queue of items that are not `Send` stays on its OS thread:
    ///
    /// ```compile_fail
    /// let q = green::queue::Queue::unbounded();
    /// q.put(std::rc::Rc::new(1));
    /// std::thread::spawn(move || q.get());
    /// ```
    Queue, Fifo, track: true, []
}
task_tracking!(Queue, []);

queue_kind! {
    /// A first-in, first-out queue without task tracking (eventlet's
    /// `LightQueue`).
    ///
    /// See the [module docs](self) for how queues behave.
    ///
    /// # Examples
    /// ```
    /// use green::queue::LightQueue;
    ///
    /// let q = LightQueue::new(4);
    /// q.put(1);
    /// q.put(2);
    /// assert_eq!(q.get(), 1);
    /// ```
    LightQueue, Fifo, track: false, []
}

queue_kind! {
    /// A queue that hands out its smallest item first (eventlet's and
    /// Python's `PriorityQueue`), with task tracking.
    ///
    /// Put `(priority, item)` tuples to order by a priority, or wrap items
    /// in [`std::cmp::Reverse`] to get the largest first. Among blocked
    /// putters of a full queue, order of arrival decides who puts next; the
    /// priority orders only the stored items. The items' `Ord` runs while
    /// the queue's internal lock is held: it must not use the queue.
    ///
    /// See the [module docs](self) for how queues behave.
    ///
    /// # Examples
    /// ```
    /// use green::queue::PriorityQueue;
    ///
    /// let q = PriorityQueue::unbounded();
    /// q.put((2, "later"));
    /// q.put((1, "first"));
    /// q.put((3, "last"));
    /// assert_eq!(q.get(), (1, "first"));
    /// assert_eq!(q.get(), (2, "later"));
    /// assert_eq!(q.get(), (3, "last"));
    /// ```
    PriorityQueue, Prio, track: true, [: Ord]
}
task_tracking!(PriorityQueue, [: Ord]);

queue_kind! {
    /// A last-in, first-out queue (a stack; eventlet's `LifoQueue`), with
    /// task tracking.
    ///
    /// See the [module docs](self) for how queues behave.
    ///
    /// # Examples
    /// ```
    /// use green::queue::LifoQueue;
    ///
    /// let q = LifoQueue::unbounded();
    /// q.put(1);
    /// q.put(2);
    /// q.put(3);
    /// assert_eq!(q.get(), 3);
    /// assert_eq!(q.get(), 2);
    /// ```
    LifoQueue, Lifo, track: true, []
}
task_tracking!(LifoQueue, []);

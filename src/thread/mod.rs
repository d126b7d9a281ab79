//! Threads, as [`std::thread`] has them, where every thread is a green thread.
//!
//! This module has std's names, signatures and bounds, so code written for
//! `std::thread` compiles unchanged against it; only what blocks or starts
//! a thread is different. [`spawn`], [`Builder::spawn`] and [`Scope::spawn`]
//! start a green thread on the calling OS thread's hub, and [`park`],
//! [`sleep`], [`JoinHandle::join`] and [`scope`] park only the current green
//! thread (or, on the root context, run the hub loop in place), so the other
//! green threads of the hub keep running.
//!
//! ```
//! use green::thread;
//! use std::time::Duration;
//!
//! let handles: Vec<_> = (0..100)
//!     .map(|i| {
//!         thread::spawn(move || {
//!             thread::sleep(Duration::from_millis(20));
//!             i
//!         })
//!     })
//!     .collect();
//! // The root parks in `join`; the hub runs all 100 sleepers at once.
//! let sum: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
//! assert_eq!(sum, 4950);
//! ```
//!
//! # Scoped threads
//!
//! [`scope`] lets green threads borrow from the caller's stack. It neither
//! returns nor unwinds before every thread it spawned has finished:
//!
//! ```text
//!  owner (green thread or root)              scoped threads (same hub)
//!  ----------------------------              -------------------------
//!  scope(f)
//!    catch_unwind(|| f(&scope)) ---spawn---> A: run f_A, store its result
//!      (a panic or kill unwinds f here)      B: ...
//!    while a scoped thread is running:       a thread's result is dropped
//!      park; a kill or Timeout arriving         (joined, or at its end)
//!      now is recorded, not unwound         -> running -= 1; the last one
//!                                   <------     unparks the owner
//!    then: deliver the recorded kill or Timeout, or resume f's panic,
//!    or panic "a scoped thread panicked", or return f's value
//! ```
//!
//! # Notes
//!
//! - A thread is a green thread of the OS thread that spawned it, and never
//!   leaves it: as with [`green::spawn`](crate::spawn), it first runs when
//!   the spawner blocks or yields, and a call that blocks the OS thread (a
//!   `std` lock, a blocking syscall) stops every green thread of the hub.
//!   Run one hub per OS thread to use more cores.
//! - The bounds are std's: the closure and its value must be `Send`.
//!   [`green::spawn`](crate::spawn) is the superset, for closures that are
//!   not `Send`, and its [`GreenThread`](crate::GreenThread) handle can also
//!   kill the green thread.
//! - The default stack is [`DEFAULT_STACK_SIZE`] (pooled), not std's
//!   2 MiB; `RUST_MIN_STACK` is not read. Use [`Builder::stack_size`] for
//!   deep recursion.
//! - A name set with [`Builder::name`] is seen by [`Thread::name`]; it is
//!   not given to the OS thread, and the panic message of a green thread
//!   names its OS thread.
//! - Each thread spawned here is a thread of its own to std and crates: its
//!   own thread-locals ([`thread_local!`], [`LocalKey`]), its own
//!   `std::thread::current()` and errno, destroyed when it ends (a TLS block
//!   of its own, where thread identity is supported:
//!   [`patch::thread_identity_supported`](crate::patch::thread_identity_supported)).
//!   Where it is not, and for [`green::spawn`](crate::spawn)'s green
//!   threads without `patch()`, thread-locals are shared by every green
//!   thread of the OS thread. [`current`] is this module's own handle
//!   either way.
//! - A thread still running when its OS thread exits is unwound (see
//!   [`JoinHandle::join`]).
//! - [`current`] and [`park`] work in every context: a green thread (spawned
//!   here or with [`green::spawn`](crate::spawn)), and the root context of
//!   an OS thread, which gets a hub if it has none.

use std::any::Any;
use std::ffi::CString;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::num::NonZeroU64;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use std::thread::{available_parallelism, AccessError, LocalKey, Result};
pub use std::thread_local;

use crate::coro::DEFAULT_STACK_SIZE;
use crate::event::Event;
use crate::hub::stronger;
use crate::hub::{self, hub, Cancel, Hub, Unparker, Wake};
use crate::timeout::Elapsed;
use crate::wait::lock;
use crate::Killed;

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
pub struct ThreadId(NonZeroU64);

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
    inner: Arc<Inner>,
}

struct Inner {
    id: ThreadId,
    name: Option<Box<str>>,
    /// The park token: set by `unpark`, taken by `park`.
    notified: AtomicBool,
    /// The context blocks its OS thread in `park` (its hub is being torn
    /// down and cannot park it) and must also be woken through `os`.
    os_wait: AtomicBool,
    /// Wakes the context's park, or makes its next one return.
    unparker: Unparker,
    /// The OS thread the context lives on.
    os: std::thread::Thread,
}

impl Thread {
    fn new(id: u64, name: Option<String>, unparker: Unparker) -> Thread {
        Thread {
            inner: Arc::new(Inner {
                id: ThreadId::new(id),
                name: name.map(String::into_boxed_str),
                notified: AtomicBool::new(false),
                os_wait: AtomicBool::new(false),
                unparker,
                os: std::thread::current(),
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
            // Pairs with `park_os`: either it sees the token before it
            // blocks, or this sees `os_wait` (both SeqCst).
            if inner.os_wait.load(Ordering::SeqCst) {
                inner.os.unpark();
            }
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
            match hub::park(deadline) {
                Wake::TimedOut => {
                    // An unpark that raced with the deadline is used up.
                    inner.notified.store(false, Ordering::SeqCst);
                    return;
                }
                // The OS thread is exiting and this context is being
                // unwound (a destructor parks): the hub cannot park it.
                Wake::Closed => return inner.park_os(deadline),
                Wake::Woken | Wake::Cancel(_) => {}
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

impl Inner {
    /// Blocks the OS thread until the token is available or `deadline`.
    fn park_os(&self, deadline: Option<Instant>) {
        self.os_wait.store(true, Ordering::SeqCst);
        loop {
            if self.notified.swap(false, Ordering::SeqCst) {
                return;
            }
            match deadline {
                None => std::thread::park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return;
                    }
                    std::thread::park_timeout(d - now);
                }
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

/// Gets a handle to the thread that invokes it.
///
/// In a green thread (spawned here or with [`green::spawn`](crate::spawn))
/// it is that green thread's handle, kept for as long as it runs; in the
/// root context of an OS thread, the root's, named like the OS thread.
///
/// # Panics
/// Panics when called from the hub itself (a timer callback).
///
/// # Examples
/// ```
/// use green::thread;
///
/// let handle = thread::Builder::new()
///     .name("named thread".into())
///     .spawn(|| {
///         let handle = thread::current();
///         assert_eq!(handle.name(), Some("named thread"));
///         handle.id()
///     })?;
/// let id = handle.thread().id();
/// assert_eq!(handle.join().unwrap(), id);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn current() -> Thread {
    hub().current_thread(|unparker, green_id| match green_id {
        Some(id) => Thread::new(id, None, unparker),
        None => {
            let name = std::thread::current().name().map(String::from);
            Thread::new(crate::greenthread::next_id(), name, unparker)
        }
    })
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

/// Puts the current thread to sleep for at least `ms` milliseconds.
///
/// Deprecated as in std, in favour of [`sleep`]; like it, it parks only
/// the current green thread.
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
/// green::thread::sleep_ms(10);
/// assert!(start.elapsed() >= Duration::from_millis(10));
/// ```
#[deprecated(since = "1.6.0", note = "replaced by `std::thread::sleep`")]
pub fn sleep_ms(ms: u32) {
    sleep(Duration::from_millis(u64::from(ms)))
}

/// Puts the current thread to sleep for at least the specified amount of
/// time.
///
/// Only the current green thread sleeps: the others of its hub run
/// meanwhile. This is [`green::sleep`](crate::sleep).
///
/// # Panics
/// Panics when called from the hub itself (a timer callback).
///
/// # Examples
/// ```
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// green::thread::sleep(Duration::from_millis(10));
/// assert!(start.elapsed() >= Duration::from_millis(10));
/// ```
pub fn sleep(dur: Duration) {
    crate::greenthread::sleep(dur);
}

/// Cooperatively gives up a timeslice to the scheduler: every other
/// runnable green thread of the hub runs once, then the caller continues.
///
/// This is [`green::yield_now`](crate::yield_now).
///
/// # Panics
/// Panics when called from the hub itself (a timer callback).
///
/// # Examples
/// ```
/// let other = green::thread::spawn(|| 1);
/// green::thread::yield_now(); // the spawned thread runs to its end
/// assert!(other.is_finished());
/// ```
pub fn yield_now() {
    crate::greenthread::yield_now();
}

/// Determines whether the current thread is unwinding because of panic.
///
/// # Notes
/// This is std's, and std counts panics per OS thread: while a green thread
/// is parked in a destructor during its unwind, the other green threads of
/// its OS thread also see `true`.
///
/// # Examples
/// ```
/// assert!(!green::thread::panicking());
/// ```
pub fn panicking() -> bool {
    std::thread::panicking()
}

/// Spawns a new thread, returning a [`JoinHandle`] for it.
///
/// The thread is a green thread on the calling OS thread's hub: it runs
/// when the caller blocks or yields. The join handle provides a
/// [`join`](JoinHandle::join) method that can be used to join the spawned
/// thread; dropping it detaches the thread, which runs on.
///
/// # Panics
/// Panics if no stack can be mapped for the thread, or if the OS thread is
/// exiting; use [`Builder::spawn`] to recover from such errors.
///
/// # Notes
/// The bounds are std's. [`green::spawn`](crate::spawn) takes closures
/// that are not `Send` as well:
///
/// ```compile_fail
/// let rc = std::rc::Rc::new(5);
/// green::thread::spawn(move || *rc);
/// ```
///
/// # Examples
/// ```
/// use green::thread;
///
/// let computation = thread::spawn(|| 42);
/// assert_eq!(computation.join().unwrap(), 42);
/// ```
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().spawn(f).expect("failed to spawn thread")
}

/// Thread factory, which can be used in order to configure the properties
/// of a new thread.
///
/// # Examples
/// ```
/// use green::thread;
///
/// let handler = thread::Builder::new()
///     .name("worker".into())
///     .stack_size(1 << 20)
///     .spawn(|| thread::current().name().unwrap().len())?;
/// assert_eq!(handler.join().unwrap(), 6);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

// Mirrors std, whose `Builder` has no `Default`.
#[allow(clippy::new_without_default)]
impl Builder {
    /// Generates the base configuration for spawning a thread, from which
    /// configuration methods can be chained.
    ///
    /// # Examples
    /// ```
    /// let handle = green::thread::Builder::new().spawn(|| 1)?;
    /// assert_eq!(handle.join().unwrap(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> Builder {
        Builder {
            name: None,
            stack_size: None,
        }
    }

    /// Names the thread-to-be.
    ///
    /// [`Thread::name`] returns it; it is not given to the OS thread.
    ///
    /// The name must not contain null bytes (`\0`): as with std, spawning
    /// a thread so named panics.
    ///
    /// # Examples
    /// ```
    /// use green::thread;
    ///
    /// let handler = thread::Builder::new()
    ///     .name("foo".into())
    ///     .spawn(|| assert_eq!(thread::current().name(), Some("foo")))?;
    /// handler.join().unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn name(mut self, name: String) -> Builder {
        self.name = Some(name);
        self
    }

    /// Sets the size of the stack (in bytes) for the new thread.
    ///
    /// Rounded up to whole pages, at least 4 KiB. Without it, the thread
    /// gets a pooled stack of [`DEFAULT_STACK_SIZE`].
    ///
    /// # Examples
    /// ```
    /// let handler = green::thread::Builder::new().stack_size(32 * 1024).spawn(|| 2)?;
    /// assert_eq!(handler.join().unwrap(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stack_size(mut self, size: usize) -> Builder {
        self.stack_size = Some(size);
        self
    }

    /// Spawns a new thread by taking ownership of the `Builder`, and
    /// returns an [`io::Result`] to its [`JoinHandle`].
    ///
    /// # Errors
    /// An `OutOfMemory` error naming `vm.max_map_count` when no stack can be
    /// mapped; an `Other` error when the OS thread is exiting (its hub
    /// starts no more green threads).
    ///
    /// # Panics
    /// Panics if a thread name was set and it contains null bytes, as std's
    /// does.
    ///
    /// # Examples
    /// ```
    /// let handler = green::thread::Builder::new().spawn(|| "done")?;
    /// assert_eq!(handler.join().unwrap(), "done");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // SAFETY: `F` and `T` are 'static: they borrow nothing that the
        // thread could outlive.
        unsafe { self.spawn_unchecked(f) }
    }

    /// Spawns a new thread without any lifetime restrictions by taking
    /// ownership of the `Builder`, and returns an [`io::Result`] to its
    /// [`JoinHandle`].
    ///
    /// # Errors
    /// As [`Builder::spawn`].
    ///
    /// # Panics
    /// As [`Builder::spawn`].
    ///
    /// # Safety
    /// The caller has to ensure that the spawned thread does not outlive any
    /// references in the supplied thread closure and its return type: join
    /// it before any referenced data is dropped, or use only `'static`
    /// data. A kill or [`Timeout`](crate::Timeout) that unwinds the caller
    /// past that data before the join is the caller's to rule out too.
    ///
    /// # Examples
    /// ```
    /// let x = 1;
    /// let r = &x;
    /// // SAFETY: the thread is joined while `x` is alive.
    /// let handler = unsafe { green::thread::Builder::new().spawn_unchecked(move || *r + 1)? };
    /// assert_eq!(handler.join().unwrap(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub unsafe fn spawn_unchecked<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        // SAFETY: the caller's contract is the one `spawn_unchecked_` asks for.
        Ok(JoinHandle(unsafe { self.spawn_unchecked_(f, None) }?))
    }

    /// Spawns a new scoped thread using the settings set through this
    /// `Builder`.
    ///
    /// Unlike [`Scope::spawn`], this method yields an [`io::Result`] to
    /// capture any failure to create the thread.
    ///
    /// # Errors
    /// As [`Builder::spawn`].
    ///
    /// # Panics
    /// As [`Builder::spawn`].
    ///
    /// # Examples
    /// ```
    /// use green::thread;
    ///
    /// let a = vec![1, 2, 3];
    /// let sum = thread::scope(|s| {
    ///     thread::Builder::new()
    ///         .name("summer".into())
    ///         .spawn_scoped(s, || a.iter().sum::<i32>())
    ///         .map(|h| h.join().unwrap())
    /// })?;
    /// assert_eq!(sum, 6);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn_scoped<'scope, 'env, F, T>(
        self,
        scope: &'scope Scope<'scope, 'env>,
        f: F,
    ) -> io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        // SAFETY: `scope` neither returns nor unwinds before the thread has
        // finished and its packet is gone (see `scope` and `ScopeData`), so
        // nothing the closure or its value borrows for 'scope is dropped
        // while the thread can use it.
        let inner = unsafe { self.spawn_unchecked_(f, Some(scope.data.clone())) }?;
        Ok(ScopedJoinHandle(inner))
    }

    /// Starts the green thread.
    ///
    /// # Safety
    /// Everything `f` and its value borrow must outlive the thread and its
    /// packet. With `scope` set, the scope's counter is raised here and
    /// lowered when the packet is dropped, after the result; the scope
    /// waits for it.
    unsafe fn spawn_unchecked_<'scope, F, T>(
        self,
        f: F,
        scope: Option<Arc<ScopeData>>,
    ) -> io::Result<JoinInner<'scope, T>>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        if let Some(name) = self.name.as_deref().filter(|n| n.contains('\0')) {
            // std's check and panic message, at the point where std has them.
            CString::new(name).expect("thread name may not contain interior null bytes");
        }
        let h = hub();
        if h.is_closing() {
            return Err(io::Error::other(
                "green::thread: the OS thread is exiting; its hub starts no more threads",
            ));
        }
        let Builder { name, stack_size } = self;
        let packet = Arc::new(Packet {
            scope,
            result: Mutex::new(None),
            done: Event::new(),
            _marker: PhantomData,
        });
        if let Some(s) = &packet.scope {
            s.increment_num_running_threads();
        }
        let main = Main {
            f,
            finish: Finish {
                packet: Some(packet.clone()),
            },
        };
        let body: Box<dyn FnOnce() + '_> = Box::new(move || run(main));
        // SAFETY: the caller guarantees that what `f` and `T` borrow outlives
        // the thread; `body` owns `f` and the packet's only other reference,
        // and touches nothing borrowed once both are gone. If `spawn_raw`
        // fails, it drops `body` before returning, while the borrows live.
        let body = unsafe { erase(body) };
        let stack = stack_size.unwrap_or(DEFAULT_STACK_SIZE);
        // A thread of std's shape is a thread: its own identity wherever
        // that is supported.
        let (key, gen, id) = h.spawn_raw(stack, false, true, None, body)?;
        let thread = Thread::new(id, name, h.unparker_of(key, gen));
        h.set_thread(key, gen, thread.clone());
        Ok(JoinInner {
            thread,
            packet,
            _std_auto_traits: PhantomData,
        })
    }
}

/// Erases the lifetime of a thread's body so that the hub may hold it.
///
/// # Safety
/// The caller must keep everything the body borrows alive until the body
/// has run or been dropped.
unsafe fn erase<'a>(body: Box<dyn FnOnce() + 'a>) -> Box<dyn FnOnce() + 'static> {
    // SAFETY: the two types differ only in the trait object's lifetime
    // bound, so they have the same layout; the caller keeps the borrows
    // alive for as long as the body exists.
    unsafe { std::mem::transmute::<Box<dyn FnOnce() + 'a>, Box<dyn FnOnce() + 'static>>(body) }
}

/// A thread's closure and what it reports to.
///
/// Dropped unrun (the OS thread exits before the thread started), `f` is
/// dropped first, then `finish` (fields drop in declaration order).
struct Main<'scope, F, T> {
    f: F,
    finish: Finish<'scope, T>,
}

/// The body of every thread spawned here.
fn run<F, T>(main: Main<'_, F, T>)
where
    F: FnOnce() -> T,
{
    let Main { f, finish } = main;
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    if hub().is_closing() {
        // The OS thread is exiting and this green thread is being dropped:
        // report it killed, and let the unwind reach the coroutine's root.
        if let Err(p) = result {
            drop(finish);
            panic::resume_unwind(p);
        }
    }
    // The thread's exit (its thread-locals' destructors) comes before its
    // joiner sees the result, as with an OS thread.
    hub().exit_thread();
    finish.finish(result);
}

/// Stores a thread's result and wakes its joiner; dropped unused, it stores
/// `Err(Killed)`, so a joiner never waits for a thread that cannot finish.
struct Finish<'scope, T> {
    packet: Option<Arc<Packet<'scope, T>>>,
}

impl<T> Finish<'_, T> {
    fn finish(mut self, result: Result<T>) {
        if let Some(p) = self.packet.take() {
            p.set(result);
        }
    }
}

impl<T> Drop for Finish<'_, T> {
    fn drop(&mut self) {
        if let Some(p) = self.packet.take() {
            p.set(Err(Box::new(Killed)));
        }
    }
}

/// What a thread and its handle share: the result, and for a scoped thread
/// the scope to report to when it is gone.
struct Packet<'scope, T> {
    scope: Option<Arc<ScopeData>>,
    result: Mutex<Option<Result<T>>>,
    /// Sent once the result is stored.
    done: Event,
    _marker: PhantomData<Option<&'scope ScopeData>>,
}

impl<T> Packet<'_, T> {
    fn set(&self, result: Result<T>) {
        *lock(&self.result) = Some(result);
        // Sent once: each thread finishes once.
        let _ = self.done.send(());
    }
}

impl<T> Drop for Packet<'_, T> {
    fn drop(&mut self) {
        let result = self
            .result
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        // A scoped thread that panicked and was not joined makes the scope
        // panic, as in std.
        let unhandled_panic = matches!(result, Some(Err(_)));
        // The result may borrow from the scope: drop it before the scope
        // learns that the thread is gone. A panic here cannot be reported
        // to anyone (a joiner may be gone), so it aborts, as in std.
        if panic::catch_unwind(AssertUnwindSafe(|| drop(result))).is_err() {
            abort("thread result panicked on drop");
        }
        if let Some(scope) = &self.scope {
            scope.decrement_num_running_threads(unhandled_panic);
        }
    }
}

/// Prints `msg` and aborts the process.
#[cold]
fn abort(msg: &str) -> ! {
    eprintln!("green::thread: {msg}; aborting");
    std::process::abort()
}

/// A thread's handle and its packet.
struct JoinInner<'scope, T> {
    thread: Thread,
    packet: Arc<Packet<'scope, T>>,
    /// Gives the handles std's auto traits: std's are neither `UnwindSafe`
    /// nor `RefUnwindSafe` (its packet holds the result in an
    /// `UnsafeCell`), and code that relied on a trait green's handle had
    /// and std's lacks would not compile against std.
    _std_auto_traits: PhantomData<std::thread::JoinHandle<()>>,
}

impl<T> JoinInner<'_, T> {
    fn join(self) -> Result<T> {
        if crate::current_id() == Some(self.thread.id().0.get()) {
            panic!("attempt to join a thread from itself");
        }
        self.packet.done.wait();
        lock(&self.packet.result)
            .take()
            .expect("a finished thread has stored its result")
    }

    fn is_finished(&self) -> bool {
        self.packet.done.ready()
    }
}

/// An owned permission to join on a thread (block on its termination).
///
/// Dropping it detaches the thread, which runs on. It is `Send` and `Sync`,
/// as std's: a thread may be joined from another green thread, another
/// hub, or a plain OS thread.
///
/// # Examples
/// ```
/// let handle = green::thread::spawn(|| 6 * 7);
/// // Joined from another OS thread, which simply blocks.
/// let (tx, rx) = green::sync::mpsc::channel();
/// std::thread::spawn(move || tx.send(handle.join().unwrap()).unwrap());
/// // The root parks in `recv`, running the hub: the green thread runs.
/// assert_eq!(rx.recv().unwrap(), 42);
/// ```
pub struct JoinHandle<T>(JoinInner<'static, T>);

// SAFETY: as in std. Every way to make a `JoinHandle<T>` requires `T: Send`,
// so sending the handle (and with it the right to take the `T`) to another
// thread is sound; a shared handle only reads the thread and the `done`
// flag, never the `T`.
unsafe impl<T> Send for JoinHandle<T> {}
// SAFETY: see above.
unsafe impl<T> Sync for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    /// Extracts a handle to the underlying thread.
    ///
    /// # Examples
    /// ```
    /// let handle = green::thread::spawn(|| green::thread::current().id());
    /// let id = handle.thread().id();
    /// assert_eq!(handle.join().unwrap(), id);
    /// ```
    pub fn thread(&self) -> &Thread {
        &self.0.thread
    }

    /// Waits for the associated thread to finish.
    ///
    /// Only the calling green thread parks (on the root, the hub runs in
    /// place); a plain OS thread blocks.
    ///
    /// # Errors
    /// If the thread panicked, `Err` holds the panic payload. If it was
    /// unwound because its OS thread exited, or an uncaught
    /// [`Timeout`](crate::Timeout) ended it, `Err` holds a
    /// [`Killed`] or an [`Elapsed`].
    ///
    /// # Panics
    /// Panics if a thread attempts to join itself.
    ///
    /// # Examples
    /// ```
    /// let handle = green::thread::spawn(|| -> u8 { panic!("oops") });
    /// let payload = handle.join().unwrap_err();
    /// assert_eq!(payload.downcast_ref::<&str>(), Some(&"oops"));
    /// ```
    pub fn join(self) -> Result<T> {
        self.0.join()
    }

    /// Checks if the associated thread has finished running its main
    /// function.
    ///
    /// This does not block; once it returns `true`, [`join`](Self::join)
    /// returns at once.
    ///
    /// # Examples
    /// ```
    /// let handle = green::thread::spawn(|| ());
    /// assert!(!handle.is_finished()); // it has not run yet
    /// green::thread::yield_now();
    /// assert!(handle.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").finish_non_exhaustive()
    }
}

/// A scope to spawn scoped threads in.
///
/// See [`scope`] for details.
pub struct Scope<'scope, 'env: 'scope> {
    data: Arc<ScopeData>,
    /// Invariance over 'scope, so that 'scope cannot shrink (as in std):
    ///
    /// ```compile_fail,E0373
    /// green::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         let a = String::from("abcd");
    ///         s.spawn(|| println!("{a:?}")); // might run after `a` is dropped
    ///     });
    /// });
    /// ```
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

/// What a scope and its threads share.
struct ScopeData {
    /// Packets of the scope's threads not yet dropped.
    ///
    /// # Invariant
    /// Raised before a scoped thread is started and lowered only when its
    /// packet is dropped, after its result. While it is not zero, `scope`
    /// neither returns nor unwinds.
    num_running_threads: AtomicUsize,
    a_thread_panicked: AtomicBool,
    main_thread: Thread,
}

impl ScopeData {
    fn increment_num_running_threads(&self) {
        // Far from overflowing to 0, which would be unsound: only leaking
        // handles by the billion comes near.
        if self.num_running_threads.fetch_add(1, Ordering::Relaxed) > usize::MAX / 2 {
            self.decrement_num_running_threads(false);
            panic!("too many running threads in thread scope");
        }
    }

    fn decrement_num_running_threads(&self, panic: bool) {
        if panic {
            self.a_thread_panicked.store(true, Ordering::Relaxed);
        }
        if self.num_running_threads.fetch_sub(1, Ordering::Release) == 1 {
            // The owner's park, not its token: its `thread::park` callers
            // get no wakeup meant for the scope.
            self.main_thread.inner.unparker.unpark();
        }
    }
}

/// Creates a scope for spawning scoped threads.
///
/// The function passed to `scope` will be provided a [`Scope`] object,
/// through which scoped threads can be [spawned](Scope::spawn). Unlike
/// non-scoped threads, scoped threads can borrow non-`'static` data, as
/// the scope guarantees all threads will be joined at the end of the scope.
/// All threads spawned within the scope that haven't been manually joined
/// will be automatically joined before this function returns: only the
/// calling green thread parks meanwhile (the root runs the hub in place).
///
/// # Panics
/// If any of the automatically joined threads panicked, this function will
/// panic ("a scoped thread panicked"), after all of them have finished. If
/// `f` panics, the panic resumes once they have finished.
///
/// # Notes
/// A [`kill`](crate::GreenThread::kill) or [`Timeout`](crate::Timeout)
/// aimed at the caller while it waits for its scoped threads takes effect
/// only when all of them have finished: they may borrow from the frames the
/// unwind would free. The scoped threads are not killed by it; they run to
/// their end. Then the caller unwinds from `scope` (a kill or timeout that
/// arrives while the caller is already unwinding from a panic of `f` is
/// delivered at its next park, as for any unwinding context).
///
/// If the OS thread exits while a green thread waits in `scope`, its
/// scoped threads are unwound before it is.
///
/// A green thread spawned with [`Builder::shared_stack`](crate::Builder::shared_stack)
/// must not lend its locals to scoped threads: its frames move while it
/// waits (that builder's contract).
///
/// # Examples
/// ```
/// use green::thread;
///
/// let mut a = vec![1, 2, 3];
/// let mut x = 0;
///
/// thread::scope(|s| {
///     s.spawn(|| {
///         // We can borrow `a` here.
///         assert_eq!(a.len(), 3);
///     });
///     s.spawn(|| {
///         // We can even mutably borrow `x` here,
///         // because no other threads are using it.
///         x += a[0] + a[2];
///     });
/// });
///
/// // After the scope, we can modify and access our variables again:
/// a.push(4);
/// assert_eq!(x, a.len());
/// ```
#[track_caller]
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let h = hub();
    // Fails from the hub itself before anything is spawned.
    let main_thread = current();
    let scope = Scope {
        data: Arc::new(ScopeData {
            num_running_threads: AtomicUsize::new(0),
            a_thread_panicked: AtomicBool::new(false),
            main_thread,
        }),
        scope: PhantomData,
        env: PhantomData,
    };
    let result = panic::catch_unwind(AssertUnwindSafe(|| f(&scope)));
    let cancel = wait_for_threads(h, &scope.data);
    // Every scoped thread has finished and its packet is gone: from here
    // on, unwinding frees nothing a thread still uses.
    match result {
        Err(e) => match cancel_of(&*e) {
            // `f` was unwound by a kill or timeout: deliver it afresh, so
            // that locks on the way out know it is one (the wait cleared
            // that mark).
            Some(c) => {
                drop(e);
                hub::deliver(stronger(cancel, c))
            }
            None => {
                if let Some(c) = cancel {
                    // Delivered at the caller's next park after this unwind.
                    let t = h.token();
                    h.cancel(t.key, t.gen, c);
                }
                panic::resume_unwind(e)
            }
        },
        Ok(value) => {
            if let Some(c) = cancel {
                drop(value);
                hub::deliver(c);
            }
            if scope.data.a_thread_panicked.load(Ordering::Relaxed) {
                panic!("a scoped thread panicked");
            }
            value
        }
    }
}

/// The cancellation a payload unwinds for, if it is a kill or a timeout.
fn cancel_of(payload: &(dyn Any + Send)) -> Option<Cancel> {
    if payload.is::<Killed>() {
        Some(Cancel::Kill)
    } else {
        payload
            .downcast_ref::<Elapsed>()
            .map(|e| Cancel::Timeout(e.id()))
    }
}

/// Parks until every thread of the scope has finished, and neither returns
/// nor unwinds before that. Returns the kill or timeout that arrived
/// meanwhile (the stronger one, as the hub decides), to be delivered after.
fn wait_for_threads(h: &Hub, data: &ScopeData) -> Option<Cancel> {
    let running = || data.num_running_threads.load(Ordering::Acquire) != 0;
    let mut cancel = None;
    while running() {
        if h.is_closing() {
            // The OS thread exits and tears its green threads down, scoped
            // ones first: a scoped thread still counted can no longer run.
            abort("a scoped thread can no longer finish while its OS thread exits, and may still borrow from its scope");
        }
        // `park_raw` reports kills and timeouts instead of unwinding. It
        // still unwinds if the hub unwinds this green thread at thread
        // exit (its scoped threads were unwound before, being newer), or
        // if the hub loop run by a root fails.
        let wake = panic::catch_unwind(AssertUnwindSafe(|| h.park_raw(None))).unwrap_or_else(|p| {
            if !running() {
                panic::resume_unwind(p);
            }
            abort("the hub failed while a scope waited for threads that may still borrow from it")
        });
        if let Wake::Cancel(c) = wake {
            cancel = Some(stronger(cancel, c));
        }
    }
    cancel
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Spawns a new thread within a scope, returning a [`ScopedJoinHandle`]
    /// for it.
    ///
    /// Unlike non-scoped threads, threads spawned with this function may
    /// borrow non-`'static` data from the outside the scope. See [`scope`]
    /// for details. The thread is a green thread on the hub of the OS thread
    /// that calls `spawn`.
    ///
    /// The join handle provides a [`join`](ScopedJoinHandle::join) method
    /// that can be used to join the spawned thread. If the spawned thread
    /// panics, `join` will return an `Err` containing the panic payload. If
    /// the join handle is dropped, the spawned thread will be implicitly
    /// joined at the end of the scope. In that case, if the spawned thread
    /// panics, [`scope`] will panic after all threads are joined.
    ///
    /// # Panics
    /// Panics if no stack can be mapped for the thread, or if the OS thread
    /// is exiting; use [`Builder::spawn_scoped`] to recover from such errors.
    ///
    /// # Examples
    /// ```
    /// let text = String::from("borrowed");
    /// let len = green::thread::scope(|s| s.spawn(|| text.len()).join().unwrap());
    /// assert_eq!(len, 8);
    /// ```
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        Builder::new()
            .spawn_scoped(self, f)
            .expect("failed to spawn thread")
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field(
                "num_running_threads",
                &self.data.num_running_threads.load(Ordering::Relaxed),
            )
            .field(
                "a_thread_panicked",
                &self.data.a_thread_panicked.load(Ordering::Relaxed),
            )
            .field("main_thread", &self.data.main_thread)
            .finish_non_exhaustive()
    }
}

/// An owned permission to join on a scoped thread (block on its
/// termination).
///
/// See [`Scope::spawn`] for details. As std's, it is `Send` and `Sync` when
/// the thread's value is `Send`, and neither otherwise:
///
/// ```compile_fail,E0277
/// fn assert_send<T: Send>() {}
/// assert_send::<green::thread::ScopedJoinHandle<'static, std::rc::Rc<u8>>>();
/// ```
pub struct ScopedJoinHandle<'scope, T>(JoinInner<'scope, T>);

impl<T> ScopedJoinHandle<'_, T> {
    /// Extracts a handle to the underlying thread.
    ///
    /// # Examples
    /// ```
    /// green::thread::scope(|s| {
    ///     let t = s.spawn(|| green::thread::current().id());
    ///     let id = t.thread().id();
    ///     assert_eq!(t.join().unwrap(), id);
    /// });
    /// ```
    pub fn thread(&self) -> &Thread {
        &self.0.thread
    }

    /// Waits for the associated thread to finish.
    ///
    /// # Errors
    /// If the thread panicked, `Err` holds the panic payload (and the scope
    /// will not panic for it).
    ///
    /// # Panics
    /// Panics if a thread attempts to join itself.
    ///
    /// # Examples
    /// ```
    /// green::thread::scope(|s| {
    ///     let t = s.spawn(|| panic!("oh no"));
    ///     assert!(t.join().is_err());
    /// });
    /// ```
    pub fn join(self) -> Result<T> {
        self.0.join()
    }

    /// Checks if the associated thread has finished running its main
    /// function.
    ///
    /// This does not block; once it returns `true`, [`join`](Self::join)
    /// returns at once.
    ///
    /// # Examples
    /// ```
    /// green::thread::scope(|s| {
    ///     let t = s.spawn(|| ());
    ///     green::thread::yield_now();
    ///     assert!(t.is_finished());
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

impl<T> fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedJoinHandle").finish_non_exhaustive()
    }
}

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

mod builder;
mod join_handle;
mod park;
mod scoped;

use std::time::Duration;

pub use std::thread::{available_parallelism, AccessError, LocalKey, Result};
pub use std::thread_local;

pub use builder::Builder;
pub use join_handle::JoinHandle;
#[allow(deprecated)]
pub use park::{park, park_timeout, park_timeout_ms, Thread, ThreadId};
pub use scoped::{scope, Scope, ScopedJoinHandle};

use crate::coro::DEFAULT_STACK_SIZE;
use crate::hub::hub;

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
            let name = std::thread::current().name().map(std::sync::Arc::from);
            Thread::new(crate::greenthread::next_id(), name, unparker)
        }
    })
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
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().spawn(f).expect("failed to spawn thread")
}

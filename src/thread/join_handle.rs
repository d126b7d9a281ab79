//! [`JoinHandle`], and what a thread shares with its handle: the packet
//! that holds its result until it is joined.

use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use super::scoped::ScopeData;
use super::{Result, Thread};
use crate::event::Event;
use crate::wait::lock;
use crate::Killed;

#[cfg(doc)]
use crate::timeout::Elapsed;

/// Stores a thread's result and wakes its joiner; dropped unused, it stores
/// `Err(Killed)`, so a joiner never waits for a thread that cannot finish.
pub(super) struct Finish<'scope, T> {
    pub(super) packet: Option<Arc<Packet<'scope, T>>>,
}

impl<T> Finish<'_, T> {
    pub(super) fn finish(mut self, result: Result<T>) {
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
pub(super) struct Packet<'scope, T> {
    pub(super) scope: Option<Arc<ScopeData>>,
    pub(super) result: Mutex<Option<Result<T>>>,
    /// Sent once the result is stored.
    pub(super) done: Event,
    pub(super) _marker: PhantomData<Option<&'scope ScopeData>>,
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
pub(super) fn abort(msg: &str) -> ! {
    eprintln!("green::thread: {msg}; aborting");
    std::process::abort()
}

/// A thread's handle and its packet.
pub(super) struct JoinInner<'scope, T> {
    pub(super) thread: Thread,
    pub(super) packet: Arc<Packet<'scope, T>>,
    /// Gives the handles std's auto traits: std's are neither `UnwindSafe`
    /// nor `RefUnwindSafe` (its packet holds the result in an
    /// `UnsafeCell`), and code that relied on a trait green's handle had
    /// and std's lacks would not compile against std.
    pub(super) _std_auto_traits: PhantomData<std::thread::JoinHandle<()>>,
}

impl<T> JoinInner<'_, T> {
    pub(super) fn join(self) -> Result<T> {
        if crate::current_id() == Some(self.thread.id().0.get()) {
            panic!("attempt to join a thread from itself");
        }
        let id = self.thread.id().0.get();
        self.packet
            .done
            .wait_as(crate::hub::Blocker::arg(crate::hub::Kind::Join, id));
        lock(&self.packet.result)
            .take()
            .expect("a finished thread has stored its result")
    }

    pub(super) fn is_finished(&self) -> bool {
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
pub struct JoinHandle<T>(pub(super) JoinInner<'static, T>);

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

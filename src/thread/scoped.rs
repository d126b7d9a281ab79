//! Scoped threads: [`scope`], [`Scope`] and [`ScopedJoinHandle`].
//!
//! A scope neither returns nor unwinds before every thread spawned in it
//! has finished and its packet is gone (see the [module docs](super#scoped-threads)
//! for the picture).

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use super::join_handle::{abort, JoinInner};
use super::{current, Builder, Result, Thread};
use crate::hub::stronger;
use crate::hub::{self, hub, Cancel, Hub, Wake};
use crate::timeout::Elapsed;
use crate::Killed;

/// A scope to spawn scoped threads in.
///
/// See [`scope`] for details.
pub struct Scope<'scope, 'env: 'scope> {
    pub(super) data: Arc<ScopeData>,
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
pub(super) struct ScopeData {
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
    pub(super) fn increment_num_running_threads(&self) {
        // Far from overflowing to 0, which would be unsound: only leaking
        // handles by the billion comes near.
        if self.num_running_threads.fetch_add(1, Ordering::Relaxed) > usize::MAX / 2 {
            self.decrement_num_running_threads(false);
            panic!("too many running threads in thread scope");
        }
    }

    pub(super) fn decrement_num_running_threads(&self, panic: bool) {
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
        let wake = panic::catch_unwind(AssertUnwindSafe(|| {
            h.park_raw(None, crate::hub::Blocker::of(crate::hub::Kind::Scope))
        }))
        .unwrap_or_else(|p| {
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
    #[track_caller]
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
pub struct ScopedJoinHandle<'scope, T>(pub(super) JoinInner<'scope, T>);

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

//! [`Builder`], the thread factory, and the start of every thread spawned
//! here: the body that runs the closure and reports its result.

use std::ffi::CString;
use std::io;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use super::join_handle::{Finish, JoinInner, Packet};
use super::scoped::ScopeData;
use super::{JoinHandle, Scope, ScopedJoinHandle, Thread, DEFAULT_STACK_SIZE};
use crate::event::Event;
use crate::hub::hub;
use crate::hub::stall::Origin;

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
    #[track_caller]
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
    #[track_caller]
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
    #[track_caller]
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
    #[track_caller]
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
        let name: Option<Arc<str>> = name.map(Arc::from);
        let origin = Origin {
            site: Some(std::panic::Location::caller()),
            name: name.clone(),
        };
        let (key, gen, id) = h.spawn_raw(stack, false, true, None, origin, body)?;
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

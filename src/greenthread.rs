//! Spawning green threads, their handles, and sleeping.
//!
//! As in eventlet, a spawned green thread does not run at once: it is queued
//! on the current OS thread's hub and runs when the spawning context blocks
//! or yields. Green threads never leave the OS thread that spawned them, so
//! `spawn` takes closures that are not `Send`.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe, Location};
use std::rc::Rc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::coro::DEFAULT_STACK_SIZE;
use crate::hub::stall::Origin;
use crate::hub::{self, hub, Token, Wake};
use crate::wait::watch::{Signal, Watchable, Watchers};

pub use crate::hub::cancel::Killed;
pub(crate) use crate::hub::next_id;
pub use crate::hub::spawn::current_id;

/// What the spawned closure and the handle share.
struct JoinState<T> {
    result: RefCell<Option<thread::Result<T>>>,
    done: Cell<bool>,
    started: Cell<bool>,
    /// The context waiting in `join`, always on this hub's thread.
    joiner: Cell<Option<Token>>,
    links: RefCell<Vec<Link<T>>>,
}

/// A closure given to [`GreenThread::link`].
type LinkFn<T> = Box<dyn FnOnce(&thread::Result<T>)>;

/// What runs when a green thread finishes, in the order added.
enum Link<T> {
    /// A closure given to [`GreenThread::link`].
    Call(LinkFn<T>),
    /// A wait on many ([`crate::wait_any`]) watching for the end: the
    /// signal and the item's index (kept with the links so that a green
    /// thread carries nothing more for it).
    Watch(Arc<Signal>, usize),
}

impl<T> JoinState<T> {
    /// Runs the links, then publishes the result and wakes the joiner.
    #[inline]
    fn finish(&self, result: thread::Result<T>) {
        if !self.links.borrow().is_empty() {
            self.run_links(&result);
        }
        *self.result.borrow_mut() = Some(result);
        self.done.set(true);
        if let Some(t) = self.joiner.take() {
            hub().wake(t, Wake::Woken);
        }
    }

    /// Runs the links in the order they were added (a link may add more).
    #[cold]
    #[inline(never)]
    fn run_links(&self, result: &thread::Result<T>) {
        loop {
            let next = {
                let mut links = self.links.borrow_mut();
                if links.is_empty() {
                    None
                } else {
                    Some(links.remove(0))
                }
            };
            let link = match next {
                Some(Link::Call(link)) => link,
                Some(Link::Watch(signal, index)) => {
                    // Runs before the result is published, but the waiter
                    // it wakes runs after this green thread has finished.
                    Watchers::one(signal, index).fire();
                    continue;
                }
                None => break,
            };
            // A panicking link has been reported by the panic hook; the
            // other links and the joiner must still be served.
            let _ = panic::catch_unwind(AssertUnwindSafe(|| link(result)));
        }
    }
}

/// What a [`Group`](crate::Group) or a pool keeps of a green thread of its
/// own: enough to kill it, and its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    key: u32,
    gen: u32,
    pub(crate) id: u64,
}

impl Member {
    /// Asks the hub to kill the green thread (see [`GreenThread::kill`]),
    /// without yielding; a finished one is left alone. On the current
    /// OS thread's hub only, as a handle.
    pub(crate) fn kill(self) {
        hub().cancel(self.key, self.gen, hub::Cancel::Kill);
    }
}

/// An owned handle to a green thread: wait for it, link to it, kill it.
///
/// Dropping the handle detaches the green thread, which runs on. The handle
/// is neither `Send` nor `Sync`: a green thread belongs to the OS thread
/// that spawned it.
///
/// ```compile_fail
/// fn assert_send<T: Send>(_: T) {}
/// assert_send(green::spawn(|| ()));
/// ```
pub struct GreenThread<T> {
    state: Rc<JoinState<T>>,
    key: u32,
    gen: u32,
    id: u64,
    _not_send: PhantomData<*const ()>,
}

impl<T> fmt::Debug for GreenThread<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GreenThread")
            .field("id", &self.id)
            .field("started", &self.state.started.get())
            .field("finished", &self.state.done.get())
            .finish()
    }
}

impl<T> GreenThread<T> {
    /// Waits for the green thread to finish and returns its value.
    ///
    /// This is eventlet's `GreenThread.wait()`: a panic in the green thread
    /// resumes in the caller.
    ///
    /// # Panics
    /// Re-raises the green thread's panic; panics with "green thread N was
    /// killed" if it was killed, and if called from the green thread itself.
    ///
    /// # Examples
    /// ```
    /// let gt = green::spawn(|| 6 * 7);
    /// assert_eq!(gt.wait(), 42);
    /// ```
    pub fn wait(self) -> T {
        let id = self.id;
        match self.join() {
            Ok(v) => v,
            Err(p) if p.is::<Killed>() => panic!("green thread {id} was killed"),
            Err(p) => panic::resume_unwind(p),
        }
    }

    /// Waits for the green thread to finish, like [`std::thread::JoinHandle::join`].
    ///
    /// # Errors
    /// `Err` holds the panic payload if the green thread panicked, a
    /// [`Killed`] if it was killed, or an [`Elapsed`](crate::Elapsed) if a
    /// [`Timeout`](crate::Timeout) it started expired and was not caught.
    ///
    /// # Panics
    /// Panics if called from the green thread itself.
    ///
    /// # Examples
    /// ```
    /// let ok = green::spawn(|| 1);
    /// assert_eq!(ok.join().unwrap(), 1);
    /// let bad = green::spawn(|| -> u32 { panic!("oops") });
    /// assert_eq!(*bad.join().unwrap_err().downcast_ref::<&str>().unwrap(), "oops");
    /// ```
    pub fn join(self) -> thread::Result<T> {
        let h = hub();
        if h.is_current(self.key, self.gen) && !self.state.done.get() {
            panic!("attempt to join a green thread from itself");
        }
        while !self.state.done.get() {
            if h.is_closing() {
                // The OS thread is exiting and its green threads are being
                // unwound: this one will never finish.
                return Err(Box::new(Killed));
            }
            self.state.joiner.set(Some(h.local_unparker()));
            crate::wait::park(None, hub::Blocker::arg(hub::Kind::Join, self.id()));
        }
        self.state
            .result
            .borrow_mut()
            .take()
            .expect("a finished green thread has a result")
    }

    /// Runs `f` with the green thread's result when it finishes, on the
    /// finishing green thread, before any `wait` returns; at once if it has
    /// already finished. Links run in the order they were added.
    ///
    /// # Examples
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let seen = Rc::new(Cell::new(0));
    /// let gt = green::spawn(|| 5);
    /// let s = seen.clone();
    /// gt.link(move |r| s.set(*r.as_ref().unwrap()));
    /// gt.wait();
    /// assert_eq!(seen.get(), 5);
    /// ```
    pub fn link<F>(&self, f: F)
    where
        F: FnOnce(&thread::Result<T>) + 'static,
    {
        if self.state.done.get() {
            let r = self.state.result.borrow();
            f(r.as_ref().expect("a finished green thread has a result"));
        } else {
            self.state.links.borrow_mut().push(Link::Call(Box::new(f)));
        }
    }

    /// Kills the green thread: it unwinds from its park point with [`Killed`]
    /// as payload, running its destructors. Killing a finished green thread
    /// does nothing; one that has not started never runs its closure.
    ///
    /// Called from a green thread or the root, `kill` yields so that the
    /// target unwinds before `kill` returns (unless its destructors park).
    /// A green thread that kills itself unwinds at once.
    ///
    /// # Examples
    /// ```
    /// use std::{cell::Cell, rc::Rc, time::Duration};
    /// struct Flag(Rc<Cell<bool>>);
    /// impl Drop for Flag {
    ///     fn drop(&mut self) { self.0.set(true) }
    /// }
    /// let dropped = Rc::new(Cell::new(false));
    /// let flag = Flag(dropped.clone());
    /// let gt = green::spawn(move || {
    ///     let _flag = flag;
    ///     green::sleep(Duration::from_secs(3600));
    /// });
    /// green::yield_now(); // it starts and parks in sleep
    /// gt.kill();
    /// assert!(dropped.get()); // its destructors ran
    /// assert!(gt.is_finished());
    /// ```
    pub fn kill(&self) {
        if self.state.done.get() {
            return;
        }
        let h = hub();
        if h.is_current(self.key, self.gen) {
            hub::deliver(hub::Cancel::Kill);
        }
        h.cancel(self.key, self.gen, hub::Cancel::Kill);
        if !h.in_hub() {
            h.yield_now();
        }
    }

    /// Kills the green thread only if it has not started running yet;
    /// returns whether it did.
    pub fn cancel(&self) -> bool {
        if self.state.started.get() || self.state.done.get() {
            return false;
        }
        self.kill();
        true
    }

    /// Whether the green thread has finished (returned, panicked or was killed).
    pub fn is_finished(&self) -> bool {
        self.state.done.get()
    }

    /// What a group or a pool keeps of it.
    pub(crate) fn member(&self) -> Member {
        Member {
            key: self.key,
            gen: self.gen,
            id: self.id,
        }
    }

    /// The green thread's process-wide unique id.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// Configures a green thread before spawning it, like [`std::thread::Builder`].
///
/// # Examples
/// ```
/// let gt = green::Builder::new().stack_size(1 << 20).spawn(|| 1 + 1)?;
/// assert_eq!(gt.wait(), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    stack_size: usize,
    shared: bool,
    identity: Option<bool>,
    name: Option<Arc<str>>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// A builder with the default stack size, [`DEFAULT_STACK_SIZE`](crate::DEFAULT_STACK_SIZE).
    pub fn new() -> Builder {
        Builder {
            stack_size: DEFAULT_STACK_SIZE,
            shared: false,
            identity: None,
            name: None,
        }
    }

    /// Names the green thread. The name appears in the reports of
    /// [`debug`](crate::debug) (with the file and line of the spawn call,
    /// which every green thread has), so a stall or a dump says which green
    /// thread it is about.
    ///
    /// # Examples
    /// ```
    /// let gt = green::Builder::new().name("poller").spawn(|| 7)?;
    /// assert_eq!(gt.wait(), 7);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(Arc::from(name.into()));
        self
    }

    /// Where the green thread comes from: its name (taken from the
    /// builder, which the spawn consumes) and the spawn call.
    #[track_caller]
    fn origin(&mut self) -> Origin {
        Origin {
            site: Some(Location::caller()),
            name: self.name.take(),
        }
    }

    /// Gives the green thread an identity of its own: its own
    /// `thread_local!`s, `std::thread::current()`, errno, and everything
    /// else std and crates keep per thread, as if it were an OS thread.
    ///
    /// Without this call a green thread has one if [`patch()`](crate::patch())
    /// turned identity on (the default there), and otherwise shares its OS
    /// thread's. Where identity is not supported
    /// ([`patch::thread_identity`](crate::patch::thread_identity) says why),
    /// green threads share it whatever is asked. An identity costs a TLS
    /// block of about 5 KiB and a few hundred nanoseconds per spawn; see
    /// `docs/patching.md`.
    ///
    /// # Examples
    /// ```
    /// use std::cell::Cell;
    /// thread_local!(static COUNT: Cell<u32> = const { Cell::new(0) });
    ///
    /// COUNT.set(7);
    /// let gt = green::Builder::new()
    ///     .thread_identity(true)
    ///     .spawn(|| COUNT.get())?;
    /// let seen = gt.wait();
    /// if green::patch::thread_identity_supported().is_ok() {
    ///     assert_eq!(seen, 0); // its own COUNT, fresh
    /// }
    /// assert_eq!(COUNT.get(), 7);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn thread_identity(mut self, on: bool) -> Builder {
        self.identity = Some(on);
        self
    }

    fn identity(&self) -> bool {
        self.identity.unwrap_or_else(crate::coro::tls::default_on)
    }

    /// Sets the usable stack size in bytes (rounded up to whole pages; at
    /// least 4 KiB). Stacks of the default size are pooled and reused.
    pub fn stack_size(mut self, size: usize) -> Builder {
        self.stack_size = size;
        self
    }

    /// Runs the green thread on a stack shared with other green threads of
    /// its hub, copying its frames to the heap whenever another one needs
    /// the stack (greenlet's technique).
    ///
    /// A shared-stack green thread costs no memory mapping, so there can be
    /// far more of them than `vm.max_map_count` allows guarded stacks, and
    /// a parked one uses only as much memory as its frames really occupy
    /// (typically a few hundred bytes to a few KiB). Switching to it copies
    /// its frames back: the deeper its stack when it parks, the slower.
    /// Its stack is [`DEFAULT_STACK_SIZE`](crate::DEFAULT_STACK_SIZE);
    /// [`Builder::stack_size`] does not apply. A green thread that parks
    /// while running on a stack of its own making (stack-growing crates do
    /// that) has its whole arena copied at each switch.
    ///
    /// # Safety
    /// While the green thread is parked, its stack memory holds another green
    /// thread's frames. The caller guarantees that nothing else reads or
    /// writes the green thread's stack across its park points: no OS thread
    /// borrows its locals (for example `std::thread::scope` threads still
    /// running when it parks, or a pointer to a local handed to C code or the
    /// kernel for asynchronous use).
    ///
    /// # Examples
    /// ```
    /// // SAFETY: the green thread lends no stack data to other threads.
    /// let b = unsafe { green::Builder::new().shared_stack() };
    /// let gt = b.spawn(|| {
    ///     green::sleep(std::time::Duration::from_millis(1));
    ///     "done"
    /// })?;
    /// assert_eq!(gt.wait(), "done");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub unsafe fn shared_stack(mut self) -> Builder {
        self.shared = true;
        self
    }

    /// Spawns a green thread on the current OS thread's hub.
    ///
    /// # Errors
    /// An `OutOfMemory` error naming `vm.max_map_count` when no stack can be
    /// mapped.
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> io::Result<GreenThread<T>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.spawn_at(None, f)
    }

    /// Spawns a green thread that starts once `delay` has passed.
    ///
    /// # Errors
    /// As [`Builder::spawn`].
    #[track_caller]
    pub fn spawn_after<F, T>(self, delay: Duration, f: F) -> io::Result<GreenThread<T>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let at = Instant::now()
            .checked_add(delay)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "delay overflows"))?;
        self.spawn_at(Some(at), f)
    }

    /// Spawns a green thread without a handle; cheaper than `spawn`.
    ///
    /// # Errors
    /// As [`Builder::spawn`].
    #[track_caller]
    pub fn spawn_n<F>(self, f: F) -> io::Result<()>
    where
        F: FnOnce() + 'static,
    {
        self.spawn_n_member(f).map(|_| ())
    }

    /// [`spawn_n`](Builder::spawn_n), saying how to kill the green thread
    /// (for a [`Group`](crate::Group) or a pool).
    #[track_caller]
    pub(crate) fn spawn_n_member<F>(mut self, f: F) -> io::Result<Member>
    where
        F: FnOnce() + 'static,
    {
        let h = hub();
        let identity = self.identity();
        let origin = self.origin();
        h.spawn_raw(
            self.stack_size,
            self.shared,
            identity,
            None,
            origin,
            move || {
                let h = hub();
                if h.take_kill() {
                    return;
                }
                if let Err(p) = panic::catch_unwind(AssertUnwindSafe(f)) {
                    if h.is_closing() {
                        panic::resume_unwind(p);
                    }
                }
            },
        )
        .map(|(key, gen, id)| Member { key, gen, id })
    }

    #[track_caller]
    fn spawn_at<F, T>(mut self, at: Option<Instant>, f: F) -> io::Result<GreenThread<T>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let state = Rc::new(JoinState {
            result: RefCell::new(None),
            done: Cell::new(false),
            started: Cell::new(false),
            joiner: Cell::new(None),
            links: RefCell::new(Vec::new()),
        });
        let st = state.clone();
        let identity = self.identity();
        let origin = self.origin();
        let (key, gen, id) = hub().spawn_raw(
            self.stack_size,
            self.shared,
            identity,
            at,
            origin,
            move || {
                let h = hub();
                st.started.set(true);
                let result = if h.take_kill() {
                    Err(Box::new(Killed) as Box<dyn Any + Send>)
                } else {
                    match panic::catch_unwind(AssertUnwindSafe(f)) {
                        // Killed inside a patched libc call, which returned an
                        // error instead of unwinding, and ended before a park.
                        Ok(_) if h.take_foreign_kill() => {
                            Err(Box::new(Killed) as Box<dyn Any + Send>)
                        }
                        r => r,
                    }
                };
                if h.is_closing() {
                    // The thread is exiting and this green thread is being
                    // dropped: let the unwind reach the coroutine's root.
                    if let Err(p) = result {
                        panic::resume_unwind(p);
                    }
                    return;
                }
                // A thread's exit (its thread-locals' destructors) comes before
                // its joiner sees the result, as with an OS thread.
                hub().exit_thread();
                st.finish(result);
            },
        )?;
        Ok(GreenThread {
            state,
            key,
            gen,
            id,
            _not_send: PhantomData,
        })
    }
}

/// Spawns a green thread running `f` and returns its handle.
///
/// The green thread is queued on the current OS thread's hub and runs when
/// the caller next blocks or yields (eventlet's `spawn`).
///
/// # Panics
/// Panics if no stack can be mapped (the message names the limit); use
/// [`Builder::spawn`] to get an error instead.
///
/// # Examples
/// ```
/// let a = green::spawn(|| "a");
/// let b = green::spawn(|| "b");
/// assert_eq!((a.wait(), b.wait()), ("a", "b"));
/// ```
#[track_caller]
pub fn spawn<F, T>(f: F) -> GreenThread<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    Builder::new()
        .spawn(f)
        .unwrap_or_else(|e| panic!("failed to spawn green thread: {e}"))
}

/// Runs `f` in the current context now and returns a finished handle
/// holding its result (eventlet's `GreenPool.spawn` from a pool thread
/// of a full pool). A kill or timeout aimed at the current context goes
/// on unwinding; any other panic is kept in the handle.
pub(crate) fn run_inline<F, T>(f: F) -> GreenThread<T>
where
    F: FnOnce() -> T,
{
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    if let Err(p) = &result {
        if p.is::<Killed>() || p.is::<crate::Elapsed>() {
            if let Err(p) = result {
                panic::resume_unwind(p);
            }
        }
    }
    GreenThread {
        state: Rc::new(JoinState {
            result: RefCell::new(Some(result)),
            done: Cell::new(true),
            started: Cell::new(true),
            joiner: Cell::new(None),
            links: RefCell::new(Vec::new()),
        }),
        // No slot: the handle is finished, so nothing looks it up.
        key: u32::MAX,
        gen: 0,
        id: current_id().unwrap_or(0),
        _not_send: PhantomData,
    }
}

/// Spawns a green thread with no handle (eventlet's `spawn_n`).
///
/// # Panics
/// As [`spawn`].
///
/// # Examples
/// ```
/// use std::{cell::Cell, rc::Rc};
/// let ran = Rc::new(Cell::new(false));
/// let r = ran.clone();
/// green::spawn_n(move || r.set(true));
/// green::yield_now();
/// assert!(ran.get());
/// ```
#[track_caller]
pub fn spawn_n<F>(f: F)
where
    F: FnOnce() + 'static,
{
    Builder::new()
        .spawn_n(f)
        .unwrap_or_else(|e| panic!("failed to spawn green thread: {e}"))
}

/// Spawns a green thread that starts after `delay` (eventlet's `spawn_after`).
///
/// [`GreenThread::cancel`] before then stops it from ever running.
///
/// # Panics
/// As [`spawn`].
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let later = green::spawn_after(Duration::from_millis(50), || "ran");
/// assert!(later.cancel());
/// assert!(later.join().unwrap_err().is::<green::Killed>());
/// ```
#[track_caller]
pub fn spawn_after<F, T>(delay: Duration, f: F) -> GreenThread<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    Builder::new()
        .spawn_after(delay, f)
        .unwrap_or_else(|e| panic!("failed to spawn green thread: {e}"))
}

/// Puts the current green thread (or the root) to sleep for `dur`, letting
/// the others run. `sleep(Duration::ZERO)` is [`yield_now`].
///
/// # Panics
/// Panics when called from the hub itself (a timer callback).
///
/// # Examples
/// ```
/// let t = std::time::Instant::now();
/// green::sleep(std::time::Duration::from_millis(10));
/// assert!(t.elapsed() >= std::time::Duration::from_millis(10));
/// ```
#[inline]
pub fn sleep(dur: Duration) {
    hub::sleep(dur);
}

/// Sleeps until `deadline`; yields once if it has already passed.
///
/// # Panics
/// Panics when called from the hub itself (a timer callback).
///
/// # Examples
/// ```
/// use std::time::{Duration, Instant};
/// let deadline = Instant::now() + Duration::from_millis(5);
/// green::sleep_until(deadline);
/// assert!(Instant::now() >= deadline);
/// ```
pub fn sleep_until(deadline: Instant) {
    hub::sleep_until(deadline);
}

/// Lets every other runnable green thread run once, then continues
/// (eventlet's `sleep(0)`).
///
/// # Panics
/// Panics when called from the hub itself (a timer callback).
///
/// # Examples
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// let log = Rc::new(RefCell::new(Vec::new()));
/// for name in ["a", "b"] {
///     let log = log.clone();
///     green::spawn_n(move || log.borrow_mut().push(name));
/// }
/// green::yield_now();
/// log.borrow_mut().push("root");
/// assert_eq!(*log.borrow(), ["a", "b", "root"]);
/// ```
#[inline]
pub fn yield_now() {
    hub().yield_now();
}

/// Ready once finished.
impl<T> Watchable for JoinState<T> {
    fn ready(&self) -> bool {
        self.done.get()
    }

    fn watch(&self, signal: &Arc<Signal>, index: usize) -> bool {
        if self.done.get() {
            return true;
        }
        self.links
            .borrow_mut()
            .push(Link::Watch(signal.clone(), index));
        false
    }

    fn unwatch(&self, signal: &Arc<Signal>, index: usize) {
        self.links
            .borrow_mut()
            .retain(|l| !matches!(l, Link::Watch(s, i) if Arc::ptr_eq(s, signal) && *i == index));
    }
}

impl<T> crate::wait_any::sealed::Sealed for GreenThread<T> {
    fn item(&self) -> crate::wait_any::sealed::Item<'_> {
        crate::wait_any::sealed::Item::Watch(&*self.state)
    }
}

/// Ready once the green thread has finished (returned, panicked or been
/// killed). Only on the OS thread that spawned it, as the handle itself.
impl<T> crate::Waitable for GreenThread<T> {}

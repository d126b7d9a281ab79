//! [`Hubs`]: one hub per core — N OS threads, each running the same closure
//! as the root context of its own hub.
//!
//! Green threads never migrate between OS threads, so a program uses more
//! cores by running more hubs. `Hubs` starts the OS threads, hands each its
//! index, and joins them; with [`listen`](crate::listen)'s `SO_REUSEPORT`,
//! every hub can accept on the same port and the kernel spreads the
//! connections among them.
//!
//! # How the threads run
//!
//! ```text
//! caller                             OS thread "green-hub-{i}", i in 0..n
//! ------                             ------------------------------------
//! spawn(f):
//!   start n OS threads   ------->    wait at the start gate
//!   every one started?
//!     yes: open the gate ------->    create this thread's hub
//!                                    f(i), the root context: the green
//!                                      threads it spawns run on this hub
//!                                      whenever f blocks
//!                                    f returns or panics
//!                                    thread exit: the hub unwinds the green
//!                                      threads still alive, then is freed
//!     no: abort the gate ------->    leave without running f
//!         join them, return the error
//!                                    (as f ends: a permit to join())
//! join():
//!   a permit from every thread       (a green wait: only the caller parks,
//!                                     a kill or Timeout ends it)
//!   join every thread, index order   (they only tear their hubs down)
//!   a panic? resume the lowest index's payload
//!   else the values, in index order
//! ```
//!
//! The start gate makes [`Hubs::spawn`] all or nothing: `f` runs on every
//! thread, or on none.

use std::any::Any;
use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::panic;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle, Thread};

use crate::Semaphore;

/// The name prefix of the threads unless [`Hubs::name`] says otherwise:
/// thread `i` is named `green-hub-{i}`.
const DEFAULT_NAME: &str = "green-hub";

/// Starts N OS threads, each with its own hub, running the same closure
/// with its index: one hub per core, as a [`std::thread::Builder`] for a
/// group of threads.
///
/// - **How many.** [`threads`](Hubs::threads), by default
///   [`std::thread::available_parallelism`] (1 if it is unknown).
/// - **Names.** Thread `i` is named `{prefix}-{i}`, the prefix
///   `green-hub` unless [`name`](Hubs::name) gives another.
/// - **The closure** is each thread's root context (as `main` is the
///   process's): it may spawn green threads, and they run on that thread's
///   hub while it blocks or yields. Each thread has its hub before `f`
///   starts, so that under [`patch()`](crate::patch()) a blocking call `f`
///   makes runs its hub too.
/// - **When `f` returns**, its thread exits as any OS thread with a hub
///   does: the green threads of that hub still alive are unwound where they
///   are parked, as if killed (their destructors run), and those not yet
///   started are dropped unrun — before [`HubsHandle::join`] returns. `f`
///   waits for the green threads whose work matters ([`GreenThread::wait`],
///   [`GreenPool::waitall`], [`Server::serve`]).
/// - **Joining.** [`HubsHandle::join`] waits for every thread and returns
///   the values in index order; if any `f` panicked, it resumes the panic
///   of the lowest index once all threads are joined.
///
/// [`GreenThread::wait`]: crate::GreenThread::wait
/// [`GreenPool::waitall`]: crate::GreenPool::waitall
/// [`Server::serve`]: crate::Server::serve
///
/// # Examples
/// A server on every hub, all on one port (`SO_REUSEPORT`), and a client
/// that stops them:
/// ```
/// use std::io::{Read, Write};
///
/// // Reserve a port for the hubs: bound with SO_REUSEPORT, never listening
/// // (it gets no connections).
/// let reserve = green::net::TcpSocket::new_v4()?;
/// reserve.set_reuseport(true)?;
/// reserve.bind("127.0.0.1:0".parse().unwrap())?;
/// let addr = reserve.local_addr()?;
///
/// let (ready, listening) = green::sync::mpsc::channel();
/// let hubs = green::Hubs::new().threads(2).spawn(move |i| -> std::io::Result<()> {
///     let server = green::listen(addr).map(|l| green::Server::new(l, 100));
///     // Whether this hub listens, with the handle that stops it.
///     ready.send(server.as_ref().map(|s| s.handle()).ok()).unwrap();
///     server?.serve(move |mut s, _| s.write_all(format!("hub {i}").as_bytes()))
/// })?;
/// // Every hub listens (or failed to) before the client connects.
/// let stops: Vec<_> = listening.iter().take(2).flatten().collect();
///
/// let mut reply = String::new();
/// green::connect(addr)?.read_to_string(&mut reply)?;
/// assert!(reply.starts_with("hub "));
///
/// stops.iter().for_each(|s| s.stop());
/// for served in hubs.join() {
///     served?;
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Hubs {
    /// `None`: [`std::thread::available_parallelism`], read at spawn time.
    threads: Option<usize>,
    /// `None`: [`DEFAULT_NAME`].
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Hubs {
    /// A configuration with the defaults: one thread per available core,
    /// named `green-hub-{i}`, with std's default stack size.
    ///
    /// # Examples
    /// ```
    /// let indices = green::Hubs::new().run(|i| i)?;
    /// let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    /// assert_eq!(indices, (0..cores).collect::<Vec<_>>());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> Hubs {
        Hubs::default()
    }

    /// Sets how many OS threads (and hubs) to start.
    ///
    /// The default is [`std::thread::available_parallelism`], which counts
    /// the cores this process may run on (its CPU affinity and cgroup
    /// quota), or 1 if it cannot be known. More threads than cores is
    /// allowed.
    ///
    /// A count of 0 is an error, reported by [`spawn`](Hubs::spawn) and
    /// [`run`](Hubs::run) (`InvalidInput`), since a count often comes from
    /// configuration.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(green::Hubs::new().threads(3).run(|i| i * 10)?, [0, 10, 20]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn threads(mut self, n: usize) -> Hubs {
        self.threads = Some(n);
        self
    }

    /// Names the threads `{prefix}-0`, `{prefix}-1`, ... (by default
    /// `green-hub-0`, ...), as [`std::thread::Builder::name`] names one.
    ///
    /// The name is what [`std::thread::Thread::name`] and panic messages
    /// show; the OS sees its first 15 bytes (`/proc`, debuggers).
    ///
    /// # Examples
    /// ```
    /// let names = green::Hubs::new()
    ///     .threads(2)
    ///     .name("web")
    ///     .run(|_| std::thread::current().name().map(String::from))?;
    /// assert_eq!(names, [Some("web-0".into()), Some("web-1".into())]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn name(mut self, prefix: impl Into<String>) -> Hubs {
        self.name = Some(prefix.into());
        self
    }

    /// Sets the stack size of each OS thread, as
    /// [`std::thread::Builder::stack_size`] does; the default is std's.
    ///
    /// This is the stack of the root context: `f` and the hub loop run on
    /// it. Green threads have stacks of their own
    /// ([`DEFAULT_STACK_SIZE`](crate::DEFAULT_STACK_SIZE),
    /// [`Builder::stack_size`](crate::Builder::stack_size)).
    ///
    /// # Examples
    /// ```
    /// let sums = green::Hubs::new()
    ///     .threads(2)
    ///     .stack_size(4 << 20)
    ///     .run(|i| {
    ///         let buf = [i as u8; 1 << 20]; // 1 MiB on the root's stack
    ///         buf.iter().map(|&b| b as usize).sum::<usize>()
    ///     })?;
    /// assert_eq!(sums, [0, 1 << 20]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stack_size(mut self, size: usize) -> Hubs {
        self.stack_size = Some(size);
        self
    }

    /// Starts the threads, each running `f(index)` as the root context of
    /// its own hub, and returns a handle to [`join`](HubsHandle::join)
    /// them.
    ///
    /// All or nothing: every thread waits until all have started before it
    /// calls `f`. If one cannot be started, those already started leave
    /// without calling `f`, are joined, and the error is returned: `f` has
    /// run nowhere and no thread is left behind.
    ///
    /// Dropping the handle without joining detaches the threads, as
    /// dropping a [`std::thread::JoinHandle`] does.
    ///
    /// # Errors
    /// `InvalidInput` if [`threads`](Hubs::threads) was set to 0; the error
    /// of [`std::thread::Builder::spawn`] for a thread the OS would not
    /// start (`WouldBlock` for `EAGAIN` at a thread limit, `OutOfMemory`
    /// for a stack that cannot be mapped, ...).
    ///
    /// # Examples
    /// Green threads spawned by `f` run on that thread's hub:
    /// ```
    /// let hubs = green::Hubs::new().threads(2).spawn(|i| {
    ///     let here = std::thread::current().id();
    ///     let gt = green::spawn(move || (i, std::thread::current().id() == here));
    ///     gt.wait()
    /// })?;
    /// assert_eq!(hubs.join(), [(0, true), (1, true)]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// A count of 0 starts nothing:
    /// ```
    /// let err = green::Hubs::new().threads(0).spawn(|_| ()).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    ///
    /// `f` is shared by the threads, so it must be `Send` and `Sync`:
    /// ```compile_fail,E0277
    /// let rc = std::rc::Rc::new(1);
    /// green::Hubs::new().run(move |_| *rc);
    /// ```
    pub fn spawn<F, T>(self, f: F) -> io::Result<HubsHandle<T>>
    where
        F: Fn(usize) -> T + Send + Sync + 'static,
        T: Send + 'static,
    {
        self.spawn_with(f, |builder, body| builder.spawn(body))
    }

    /// [`spawn`](Hubs::spawn), then [`join`](HubsHandle::join): runs
    /// `f(index)` on every thread and returns the values in index order.
    ///
    /// # Errors
    /// As [`spawn`](Hubs::spawn).
    ///
    /// # Panics
    /// If `f` panicked on any thread, after all are joined, with the
    /// payload of the lowest index that panicked.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// // Each hub runs 100 green threads; the four hubs run at once.
    /// let counts = green::Hubs::new().threads(4).run(|_| {
    ///     let gts: Vec<_> = (0..100)
    ///         .map(|_| green::spawn(|| green::sleep(Duration::from_millis(10))))
    ///         .collect();
    ///     gts.into_iter().map(|gt| gt.wait()).count()
    /// })?;
    /// assert_eq!(counts, [100; 4]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run<F, T>(self, f: F) -> io::Result<Vec<T>>
    where
        F: Fn(usize) -> T + Send + Sync + 'static,
        T: Send + 'static,
    {
        Ok(self.spawn(f)?.join())
    }

    /// How many threads `spawn` starts: the count set, or the cores.
    fn count(&self) -> io::Result<usize> {
        match self.threads {
            Some(0) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "green::Hubs::threads(0): at least one thread is needed to run anything",
            )),
            Some(n) => Ok(n),
            None => Ok(thread::available_parallelism().map_or(1, NonZeroUsize::get)),
        }
    }

    /// The core of [`spawn`](Hubs::spawn), with the thread start as a
    /// parameter so that a failure can be injected in tests.
    fn spawn_with<F, T, S>(self, f: F, mut start: S) -> io::Result<HubsHandle<T>>
    where
        F: Fn(usize) -> T + Send + Sync + 'static,
        T: Send + 'static,
        S: FnMut(thread::Builder, Body<T>) -> io::Result<JoinHandle<Option<T>>>,
    {
        let n = self.count()?;
        let prefix = self.name.as_deref().unwrap_or(DEFAULT_NAME);
        let f = Arc::new(f);
        let finished = Semaphore::new(0);
        let gate = Arc::new(Gate::default());
        let _abort = AbortOnDrop(gate.clone());
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let mut builder = thread::Builder::new().name(format!("{prefix}-{i}"));
            if let Some(size) = self.stack_size {
                builder = builder.stack_size(size);
            }
            let (thread_f, thread_gate) = (f.clone(), gate.clone());
            let finished = Finished(finished.clone());
            let body: Body<T> = Box::new(move || {
                let _finished = finished;
                if !thread_gate.wait() {
                    return None;
                }
                // This thread's hub, before `f`: `f` is its root.
                crate::hub::hub();
                Some(thread_f(i))
            });
            match start(builder, body) {
                Ok(t) => threads.push(t),
                Err(e) => {
                    gate.open(false);
                    // They return at the gate at once; none ran `f`, none
                    // panics.
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(e);
                }
            }
        }
        gate.open(true);
        Ok(HubsHandle { threads, finished })
    }
}

/// What each thread runs: `None` if the start was aborted.
type Body<T> = Box<dyn FnOnce() -> Option<T> + Send + 'static>;

/// Holds the threads of one [`Hubs::spawn`] until all have started.
#[derive(Default)]
struct Gate {
    /// `None` while closed; then whether the threads are to run `f`.
    state: Mutex<Option<bool>>,
    opened: Condvar,
}

impl Gate {
    /// Waits until the gate opens; whether to run `f`.
    fn wait(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(go) = *state {
                return go;
            }
            state = self.opened.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Opens the gate: the threads run `f` if `go`, else they return. The
    /// first call decides; later ones do nothing.
    fn open(&self, go: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.is_none() {
            *state = Some(go);
            self.opened.notify_all();
        }
    }
}

/// Sends the threads home if [`Hubs::spawn`] is left before it opened the
/// gate (a panic while starting them): none waits at the gate forever.
struct AbortOnDrop(Arc<Gate>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.open(false);
    }
}

/// The threads started by [`Hubs::spawn`]: [`join`](HubsHandle::join) them
/// for `f`'s values.
///
/// Dropping it without joining detaches the threads, as dropping a
/// [`std::thread::JoinHandle`] does: they run on, and are not waited for
/// when `main` returns.
///
/// # Examples
/// ```
/// let hubs = green::Hubs::new().threads(2).spawn(|i| i + 1)?;
/// assert_eq!(hubs.len(), 2);
/// assert_eq!(hubs.join(), [1, 2]);
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "dropping a HubsHandle detaches its threads: join it to wait for them"]
pub struct HubsHandle<T> {
    /// # Invariant
    /// Not empty, in index order; each thread returns `Some` (the gate
    /// opened with `true` before this handle was made).
    threads: Vec<JoinHandle<Option<T>>>,
    /// A permit from each thread whose `f` has returned or unwound.
    finished: Semaphore,
}

/// Gives its thread's permit to [`HubsHandle::join`] as `f` ends, however
/// it ends.
struct Finished(Semaphore);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl<T> fmt::Debug for HubsHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubsHandle")
            .field("threads", &self.threads().collect::<Vec<_>>())
            .finish()
    }
}

impl<T> HubsHandle<T> {
    /// How many threads (and hubs) were started; never 0.
    ///
    /// # Examples
    /// ```
    /// let hubs = green::Hubs::new().threads(3).spawn(|_| ())?;
    /// assert_eq!(hubs.len(), 3);
    /// hubs.join();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[allow(clippy::len_without_is_empty)] // never empty: 0 threads is an error
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// The threads, in index order: their names and ids, and
    /// [`unpark`](std::thread::Thread::unpark).
    ///
    /// # Examples
    /// ```
    /// let hubs = green::Hubs::new().threads(2).spawn(|_| std::thread::current().id())?;
    /// let ids: Vec<_> = hubs.threads().map(|t| t.id()).collect();
    /// assert_eq!(hubs.join(), ids);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn threads(&self) -> impl ExactSizeIterator<Item = &Thread> + '_ {
        self.threads.iter().map(JoinHandle::thread)
    }

    /// Waits for every thread to finish and returns `f`'s values in index
    /// order.
    ///
    /// A thread has finished once `f` has returned and its hub has been torn
    /// down (the green threads still alive unwound, see [`Hubs`]): when
    /// `join` returns, nothing of these threads runs any more. The wait for
    /// every `f` to end parks only the caller (a green thread, a root, or
    /// a plain thread), and a kill or [`Timeout`](crate::Timeout) ends it
    /// there (the threads are then detached); the OS threads are then
    /// joined, which blocks the caller's OS thread while they tear their
    /// hubs down.
    ///
    /// # Panics
    /// If `f` panicked on any thread: once every thread has been joined,
    /// the panic of the lowest index that panicked is resumed with its
    /// payload (the others' payloads are dropped; the panic hook has
    /// already reported each).
    ///
    /// # Examples
    /// ```
    /// let hubs = green::Hubs::new().threads(3).spawn(|i| {
    ///     if i == 1 {
    ///         std::panic::panic_any(i);
    ///     }
    ///     i
    /// })?;
    /// let joined = std::panic::AssertUnwindSafe(move || hubs.join());
    /// let payload = std::panic::catch_unwind(joined).unwrap_err();
    /// assert_eq!(payload.downcast_ref::<usize>(), Some(&1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn join(self) -> Vec<T>
    where
        T: Send,
    {
        for _ in 0..self.threads.len() {
            self.finished.acquire().forget();
        }
        let mut values = Vec::with_capacity(self.threads.len());
        let mut first_panic: Option<Box<dyn Any + Send>> = None;
        for result in self.threads.into_iter().map(JoinHandle::join) {
            match result {
                Ok(value) => values.push(value.expect("the gate opened: every thread ran f")),
                Err(payload) => {
                    first_panic.get_or_insert(payload);
                }
            }
        }
        if let Some(payload) = first_panic {
            panic::resume_unwind(payload);
        }
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn hubs_and_handles_cross_threads() {
        assert_send_sync::<Hubs>();
        assert_send_sync::<HubsHandle<u32>>();
    }

    #[test]
    fn a_failed_start_runs_f_nowhere_and_joins_the_started() {
        let ran = Arc::new(AtomicUsize::new(0));
        let counted = ran.clone();
        let mut started = Vec::new();
        let err = Hubs::new()
            .threads(4)
            .spawn_with(
                move |_| {
                    counted.fetch_add(1, Ordering::SeqCst);
                },
                |builder, body| {
                    if started.len() == 2 {
                        return Err(io::Error::from(io::ErrorKind::WouldBlock));
                    }
                    let t = builder.spawn(body)?;
                    started.push(t.thread().clone());
                    Ok(t)
                },
            )
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(ran.load(Ordering::SeqCst), 0, "f ran on a thread");
        // Every clone of `f` (one per started thread) is gone: the started
        // threads have ended.
        assert_eq!(Arc::strong_count(&ran), 1);
    }
}

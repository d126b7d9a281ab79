//! A pool of OS threads for calls that must block an OS thread (eventlet's
//! `tpool`).
//!
//! Some calls cannot be made green: a C library that blocks, a file read
//! (regular files are always "ready" for the poller), a DNS lookup through
//! `getaddrinfo`, a CPU-heavy computation. [`execute`] runs such a call on a
//! pool OS thread while only the calling green thread parks; the hub keeps
//! running the others.
//!
//! ```text
//!  hub thread: green thread A                pool worker "green-tpool-N"
//!  --------------------------                ---------------------------
//!  execute(f)
//!    unparker = A's unparker
//!    queue.push(job) ----------------------> job = queue.pop()
//!    park A; the hub runs other green           r = catch_unwind(f)
//!    threads, sleeps in its poller              result slot = r
//!                                               done = true
//!    <------------------------------------- unparker.unpark()
//!         (the hub's remote queue; the poller is notified only if the
//!          hub sleeps)
//!    take the result: return the value, or resume f's panic
//! ```
//!
//! The pool is global to the process: at most [`num_threads`] workers
//! (default [`DEFAULT_NUM_THREADS`], 20 as in eventlet), started on demand
//! and kept for the life of the process. Jobs wait in one FIFO queue. A
//! worker that runs out of jobs watches the queue for a few microseconds
//! before it sleeps, so that a green thread calling `execute` in a loop
//! rarely has to wake a sleeping worker.
//!
//! Because `execute` does not return before `f` has finished — not even
//! when the caller is killed meanwhile — `f` may borrow from the caller's
//! stack, as with [`std::thread::scope`].

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::hub::{self, stronger, Cancel, Hub, Unparker, Wake};
use crate::wait::{lock, try_lock};

/// How many OS threads the pool runs unless [`set_num_threads`] says
/// otherwise: 20, as in eventlet.
pub const DEFAULT_NUM_THREADS: usize = 20;

/// The process-wide pool.
static POOL: Pool = Pool {
    state: Mutex::new(PoolState {
        queue: VecDeque::new(),
        size: DEFAULT_NUM_THREADS,
        started: false,
        spawned: 0,
        running: 0,
        idle: 0,
        sleeping: 0,
        spinning: 0,
        names: 0,
    }),
    work: Condvar::new(),
    queued: AtomicUsize::new(0),
};

thread_local! {
    /// Set on pool workers: `execute` from a worker runs inline, since
    /// waiting for another worker could exhaust the pool.
    static IN_WORKER: Cell<bool> = const { Cell::new(false) };
}

struct Pool {
    state: Mutex<PoolState>,
    /// Signalled when a job is queued and a worker sleeps.
    work: Condvar,
    /// Jobs in the queue, for spinning workers to watch without the lock.
    queued: AtomicUsize,
}

struct PoolState {
    queue: VecDeque<Job>,
    /// The most workers the pool may run.
    size: usize,
    /// A job has been submitted: the size is fixed from now on.
    started: bool,
    /// Workers started or being started.
    spawned: usize,
    /// Workers whose OS thread was started.
    running: usize,
    /// Workers (started or being started) that run no job.
    idle: usize,
    /// Workers waiting on `work`.
    sleeping: usize,
    /// Workers watching `queued` before they sleep.
    spinning: usize,
    /// Number for the next worker's name.
    names: usize,
}

/// A queued call.
struct Job {
    /// Runs the caller's closure and stores its result; never panics.
    run: Box<dyn FnOnce() + Send + 'static>,
    signal: Arc<Signal>,
}

/// How a worker tells the caller that its job has finished. Holds nothing
/// that borrows from the caller, so the worker may touch it after the
/// caller has returned.
struct Signal {
    done: AtomicBool,
    unparker: Unparker,
}

impl Signal {
    /// Marks the job finished and wakes the caller.
    fn complete(&self) {
        self.done.store(true, Ordering::SeqCst);
        self.unparker.unpark();
    }

    fn is_done(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }
}

impl Pool {
    /// Queues `job`, starting a worker if none is free and the pool is not
    /// full.
    ///
    /// # Panics
    /// If no worker runs and none can be started. The job is then dropped
    /// without running.
    fn submit(&'static self, job: Job) {
        let mut st = lock(&self.state);
        st.started = true;
        if st.queue.len() >= st.idle && st.spawned < st.size {
            st.spawned += 1;
            st.idle += 1;
            let n = st.names;
            st.names += 1;
            drop(st);
            crate::hub::register_helpers(idle_workers);
            // Started without the lock held: it takes tens of microseconds.
            let res = thread::Builder::new()
                .name(format!("green-tpool-{n}"))
                .spawn(move || self.work());
            st = lock(&self.state);
            match res {
                Ok(_) => st.running += 1,
                Err(e) => {
                    st.spawned -= 1;
                    st.idle -= 1;
                    if st.running == 0 {
                        drop(st);
                        panic!("green::tpool: failed to start a worker thread: {e}");
                    }
                }
            }
        }
        st.queue.push_back(job);
        self.queued.store(st.queue.len(), Ordering::SeqCst);
        if st.sleeping > 0 && st.queue.len() > st.spinning {
            self.work.notify_one();
        }
    }

    /// A worker's loop: runs queued jobs, forever.
    fn work(&self) {
        IN_WORKER.with(|w| w.set(true));
        let mut st = lock(&self.state);
        let mut spun = false;
        loop {
            match st.queue.pop_front() {
                Some(job) => {
                    self.queued.store(st.queue.len(), Ordering::SeqCst);
                    st.idle -= 1;
                    drop(st);
                    (job.run)();
                    job.signal.complete();
                    drop(job.signal);
                    st = lock(&self.state);
                    st.idle += 1;
                    spun = false;
                }
                None if !spun => {
                    st.spinning += 1;
                    drop(st);
                    self.spin();
                    st = lock(&self.state);
                    st.spinning -= 1;
                    spun = true;
                }
                None => {
                    st.sleeping += 1;
                    st = self.work.wait(st).unwrap_or_else(|e| e.into_inner());
                    st.sleeping -= 1;
                    spun = false;
                }
            }
        }
    }

    /// Watches for a job for up to [`SPIN`] before the worker sleeps.
    fn spin(&self) {
        let until = Instant::now() + SPIN;
        loop {
            for _ in 0..32 {
                if self.queued.load(Ordering::SeqCst) > 0 {
                    return;
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= until {
                return;
            }
        }
    }
}

/// The number of workers, if none of them runs or is about to run a job
/// (a wait of a hub that only a job could end cannot be proven endless
/// meanwhile: `hub::register_helpers`). Asked by a hub about to sleep: a
/// pool lock held by another thread means no answer rather than a wait.
fn idle_workers() -> Option<usize> {
    let st = try_lock(&POOL.state)?;
    (st.queue.is_empty() && st.idle == st.spawned && st.running == st.spawned).then_some(st.running)
}

/// How long an idle worker watches the queue before it sleeps. A caller
/// that submits again within this time (a loop of calls, or many green
/// threads) finds a worker awake and needs no futex wakeup: it halves the
/// round trip of a short call. Bounded so that an idle pool costs nothing.
const SPIN: Duration = Duration::from_micros(20);

/// Runs `f` on a pool OS thread and returns its value, parking only the
/// calling green thread meanwhile (eventlet's `tpool.execute`).
///
/// Other green threads of the caller's hub keep running while `f` blocks
/// its pool thread. Called from the root context of an OS thread with a hub,
/// the root runs its hub loop while it waits. Called from a plain OS thread
/// (one without a hub: it has not used green yet), or from a pool thread
/// itself, it just runs `f` on the calling thread. The first call that uses
/// the pool fixes its size (see [`set_num_threads`]); workers start as they
/// are needed.
///
/// `f` need not be `'static`: it may borrow from the caller's stack, because
/// `execute` neither returns nor unwinds before `f` has finished.
///
/// # Panics
/// A panic in `f` resumes in the caller with the same payload (the panic
/// hook has already reported it, naming the pool thread). `execute` also
/// panics when called from the hub itself (a timer callback), and when no
/// pool thread can be started.
///
/// # Notes
/// A [`kill`](crate::GreenThread::kill) or [`Timeout`](crate::Timeout)
/// aimed at the caller while `f` runs takes effect when `f` returns: an OS
/// thread's call cannot be interrupted (as in eventlet), and `f` may borrow
/// from the frames the unwind would free. The caller then unwinds from
/// `execute` and `f`'s value is dropped.
///
/// `f` runs on another OS thread: it sees that thread's thread-locals, and
/// green calls made inside it use that thread's own hub. From a green
/// thread spawned with [`Builder::shared_stack`](crate::Builder::shared_stack),
/// `f` must not borrow from the green thread's stack (that builder's
/// contract).
///
/// # Examples
/// ```
/// let path = std::env::temp_dir().join("green-tpool-example.txt");
/// std::fs::write(&path, b"hello")?;
/// let reader = green::spawn(move || {
///     // The read blocks a pool thread, not the hub; `f` borrows `path`,
///     // a local of this green thread.
///     let bytes = green::tpool::execute(|| std::fs::read(&path));
///     std::fs::remove_file(&path)?;
///     bytes
/// });
/// assert_eq!(reader.wait()?, b"hello");
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// `f` and its value cross to another OS thread, so they must be `Send`:
///
/// ```compile_fail
/// let rc = std::rc::Rc::new(1);
/// green::tpool::execute(|| *rc + 1);
/// ```
pub fn execute<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let h = match hub::try_hub() {
        Some(h) if !IN_WORKER.try_with(Cell::get).unwrap_or(false) => h,
        _ => return f(),
    };
    // Taken before anything is queued: from the hub itself it panics here.
    let unparker = h.unparker();
    let slot: Arc<Mutex<Option<thread::Result<T>>>> = Arc::new(Mutex::new(None));
    let out = slot.clone();
    let run: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
        let r = panic::catch_unwind(AssertUnwindSafe(f));
        *lock(&out) = Some(r);
    });
    // SAFETY: the invariant `erase` asks for holds: `execute` does not
    // return or unwind until the job has run and its result has been taken.
    // Once the job is queued, `wait_done` returns or unwinds only after
    // `signal.done` is set, which the worker does after `run` has returned
    // and been dropped; cancellations are reported by `park_raw`, not
    // unwound, and delivered after the result is taken. If `submit` (or
    // anything before it) panics, the job was not queued and is dropped
    // here, on the caller's thread, while its borrows are alive.
    let run = unsafe { erase(run) };
    let signal = Arc::new(Signal {
        done: AtomicBool::new(false),
        unparker,
    });
    POOL.submit(Job {
        run,
        signal: signal.clone(),
    });
    let cancel = wait_done(h, &signal);
    let result = lock(&slot)
        .take()
        .expect("a finished tpool job has stored its result");
    if let Some(c) = cancel {
        drop(result);
        hub::deliver(c);
    }
    match result {
        Ok(v) => v,
        Err(p) => panic::resume_unwind(p),
    }
}

/// Erases the lifetime of a job so that a pool thread may hold it.
///
/// # Safety
/// Invariant: execute does not return or unwind until the job has run and
/// its result has been taken. The caller must not let anything the job
/// borrows go out of scope before the job has run and been dropped.
unsafe fn erase<'a>(run: Box<dyn FnOnce() + Send + 'a>) -> Box<dyn FnOnce() + Send + 'static> {
    // SAFETY: the two types differ only in the trait object's lifetime
    // bound, so they have the same layout; the caller keeps the borrows
    // alive for as long as the job exists.
    unsafe {
        std::mem::transmute::<Box<dyn FnOnce() + Send + 'a>, Box<dyn FnOnce() + Send + 'static>>(
            run,
        )
    }
}

/// Waits until `signal` is done, and unwinds only after that. Returns the
/// cancellation (kill or timeout) that arrived meanwhile, to be delivered
/// once the job has finished.
fn wait_done(h: &Hub, signal: &Signal) -> Option<Cancel> {
    let mut cancel = None;
    while !signal.is_done() {
        // `park_raw` reports cancellations instead of unwinding; it can
        // still unwind when the hub tears down at thread exit and unwinds
        // this green thread from its park point (or if the hub loop run by
        // a root panics). The unwind waits for the job.
        let wake = panic::catch_unwind(AssertUnwindSafe(|| {
            h.park_raw(None, crate::hub::Blocker::of(crate::hub::Kind::Tpool))
        }))
        .unwrap_or_else(|p| {
            h.wait_blocking(|| signal.is_done());
            panic::resume_unwind(p)
        });
        if let Wake::Cancel(c) = wake {
            cancel = Some(stronger(cancel, c));
            if h.is_closing() {
                // Torn down: every park outside an unwind is a kill.
                h.wait_blocking(|| signal.is_done());
            }
        }
    }
    cancel
}

/// Sets how many OS threads the pool may run; only before its first use.
///
/// The default is [`DEFAULT_NUM_THREADS`] (20, as in eventlet). Workers
/// start on demand, up to this many, and then stay for the life of the
/// process. The pool is first used by the first [`execute`] (or
/// [`Proxy::call`]) that is not run inline.
///
/// # Errors
/// `InvalidInput` if `n` is zero; `Other` if the pool has already started
/// (its size can no longer change).
///
/// # Examples
/// ```
/// green::tpool::set_num_threads(4)?;
/// assert_eq!(green::tpool::num_threads(), 4);
/// let answer = green::spawn(|| green::tpool::execute(|| 6 * 7));
/// assert_eq!(answer.wait(), 42);
/// // The pool has started: its size is fixed.
/// assert!(green::tpool::set_num_threads(8).is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn set_num_threads(n: usize) -> io::Result<()> {
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "green::tpool: the pool needs at least one thread",
        ));
    }
    let mut st = lock(&POOL.state);
    if st.started {
        return Err(io::Error::other(format!(
            "green::tpool: the pool already started with {} threads; \
             set_num_threads must be called before the first tpool::execute",
            st.size
        )));
    }
    st.size = n;
    Ok(())
}

/// How many OS threads the pool may run (see [`set_num_threads`]).
///
/// # Examples
/// ```
/// assert_eq!(green::tpool::num_threads(), green::tpool::DEFAULT_NUM_THREADS);
/// ```
pub fn num_threads() -> usize {
    lock(&POOL.state).size
}

/// A value whose every use runs on the pool (eventlet's `tpool.Proxy`).
///
/// Wrap an object whose methods block an OS thread (a database handle from
/// a C library, say); each [`call`](Proxy::call) then runs on a pool
/// thread, as [`execute`] does, while only the calling green thread parks.
/// Calls get exclusive access in turn: a call waits on its pool thread
/// until the previous one has finished.
///
/// `Proxy<T>` is `Send` and `Sync` when `T` is `Send`, so one proxy can be
/// shared by green threads of several hubs (in an `Arc`).
///
/// # Examples
/// ```
/// use std::rc::Rc;
/// let log = Rc::new(green::tpool::Proxy::new(Vec::new()));
/// let writer = green::spawn({
///     let log = log.clone();
///     move || log.call(|v| v.push(std::thread::current().name().map(String::from)))
/// });
/// writer.wait();
/// let names = Rc::into_inner(log).unwrap().into_inner();
/// assert!(names[0].as_deref().unwrap().starts_with("green-tpool-"));
/// ```
///
/// A value that cannot leave its OS thread cannot be proxied:
///
/// ```compile_fail
/// fn assert_send<T: Send>(_: &T) {}
/// let p = green::tpool::Proxy::new(std::rc::Rc::new(1));
/// assert_send(&p);
/// ```
pub struct Proxy<T> {
    value: Mutex<T>,
}

impl<T> Proxy<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Proxy<T> {
        Proxy {
            value: Mutex::new(value),
        }
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.value.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// The value, borrowed mutably; no pool thread is involved, since
    /// `&mut self` proves no call is running.
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T: Send> Proxy<T> {
    /// Runs `f` on the value, on a pool thread, and returns its result;
    /// like [`execute`], only the calling green thread parks.
    ///
    /// Calls take turns: a call waits (on its pool thread) for the one
    /// before it, so concurrent calls each hold a pool thread while they
    /// wait.
    ///
    /// # Panics
    /// A panic in `f` resumes in the caller; the value stays as `f` left it
    /// and later calls go on (the proxy is not poisoned). `f` must not call
    /// the same proxy: the inner call would wait for the outer one forever,
    /// or panic.
    ///
    /// # Notes
    /// A kill or [`Timeout`](crate::Timeout) of the caller takes effect
    /// when `f` returns, as for [`execute`].
    ///
    /// # Examples
    /// ```
    /// let counter = green::tpool::Proxy::new(0u64);
    /// let n = counter.call(|c| {
    ///     *c += 1;
    ///     *c
    /// });
    /// assert_eq!(n, 1);
    /// ```
    pub fn call<F, R>(&self, f: F) -> R
    where
        F: FnOnce(&mut T) -> R + Send,
        R: Send,
    {
        execute(|| f(&mut lock(&self.value)))
    }
}

impl<T> From<T> for Proxy<T> {
    fn from(value: T) -> Proxy<T> {
        Proxy::new(value)
    }
}

impl<T: Default> Default for Proxy<T> {
    fn default() -> Proxy<T> {
        Proxy::new(T::default())
    }
}

impl<T: fmt::Debug> fmt::Debug for Proxy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Proxy");
        match self.value.try_lock() {
            Ok(v) => d.field("value", &&*v),
            Err(std::sync::TryLockError::Poisoned(e)) => d.field("value", &&*e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => d.field("value", &format_args!("<busy>")),
        };
        d.finish()
    }
}

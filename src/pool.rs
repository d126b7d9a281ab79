//! [`GreenPool`] and [`GreenPile`]: bounded concurrency (eventlet's
//! `greenpool` module).

use crate::hub::{Blocker, Kind};
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

use crate::greenthread::{current_id, run_inline, spawn, GreenThread};
use crate::group::{wait_members, HasMembers, Members};
use crate::wait::{self, Lock, WaitList};

/// A pool that runs at most `size` green threads at once (eventlet's
/// `GreenPool`).
///
/// [`spawn`](GreenPool::spawn) waits while the pool is full: that is the
/// back-pressure that keeps a server from taking more work than it can do.
/// A slot is freed when its green thread ends, however it ends (return,
/// panic or kill). The pool spawns on the current OS thread's hub and is
/// neither `Send` nor `Sync`; use one pool per hub.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let pool = green::GreenPool::new(10);
/// let squares: Vec<u64> = pool
///     .imap(|x: u64| {
///         green::sleep(Duration::from_millis(1));
///         x * x
///     }, 0..100)
///     .collect();
/// assert_eq!(squares[7], 49);
/// assert_eq!(squares.len(), 100);
/// ```
///
/// A pool cannot be sent or shared with another OS thread:
///
/// ```compile_fail,E0277
/// fn assert_send<T: Send>() {}
/// assert_send::<green::GreenPool>();
/// ```
///
/// ```compile_fail,E0277
/// fn assert_sync<T: Sync>() {}
/// assert_sync::<green::GreenPool>();
/// ```
pub struct GreenPool {
    inner: Rc<Inner>,
}

struct Inner {
    state: Lock<State>,
}

struct State {
    size: usize,
    running: usize,
    /// The green threads that hold a slot.
    members: Members,
    /// Spawners waiting for a slot; a finishing green thread hands its slot
    /// to the first.
    spawners: WaitList,
    /// Contexts in `waitall`.
    idle: WaitList,
}

impl State {
    /// A slot comes back: to the first waiting spawner if the pool is not
    /// over its size, else it is freed.
    fn free_slot(&mut self) {
        if self.running <= self.size && self.spawners.pop_notify(|_| {}) {
            return;
        }
        self.running -= 1;
        if self.running == 0 {
            self.idle.notify_all(|_| {});
        }
    }
}

impl HasMembers for State {
    fn members(&mut self) -> &mut Members {
        &mut self.members
    }
}

fn spawners(s: &mut State) -> &mut WaitList {
    &mut s.spawners
}

fn idle(s: &mut State) -> &mut WaitList {
    &mut s.idle
}

/// A spawner unwound after it was handed a slot gives the slot back.
fn abandon_slot(s: &mut State, _: Option<()>) {
    s.free_slot();
}

/// Holds a slot; moved into the green thread, it frees the slot and ends
/// the membership when the green thread ends (or when the closure is
/// dropped unrun).
struct Slot {
    pool: Rc<Inner>,
    /// The member's ticket.
    n: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.pool.state.lock();
        s.members.leave(self.n);
        s.free_slot();
    }
}

impl GreenPool {
    /// Creates a pool that runs at most `size` green threads at once.
    ///
    /// A pool of size 0 runs nothing: `spawn` waits until a
    /// [`resize`](GreenPool::resize) makes room.
    pub fn new(size: usize) -> GreenPool {
        GreenPool {
            inner: Rc::new(Inner {
                state: Lock::new(State {
                    size,
                    running: 0,
                    members: Members::new(),
                    spawners: WaitList::default(),
                    idle: WaitList::default(),
                }),
            }),
        }
    }

    /// Takes a slot, waiting while the pool is full; `None` if the caller
    /// is one of the pool's own green threads and the pool is full, where
    /// waiting could deadlock: the caller then runs the function itself.
    fn take_slot(&self) -> Option<Slot> {
        let mut s = self.inner.state.lock();
        let n = s.members.ticket();
        if s.running < s.size {
            s.running += 1;
            drop(s);
        } else if current_id().is_some_and(|id| s.members.has_id(id)) {
            return None;
        } else {
            // A slot handed over stays counted in `running`.
            let on = Blocker::at(Kind::Pool, &self.inner.state);
            wait::wait(&self.inner.state, s, spawners, None, None, abandon_slot, on);
        }
        Some(Slot {
            pool: self.inner.clone(),
            n,
        })
    }

    /// Spawns `f` in a green thread of the pool, first waiting for a free
    /// slot if the pool is full.
    ///
    /// Called from one of the pool's own green threads while the pool is
    /// full, it runs `f` at once in the caller instead, as eventlet does (a
    /// pool whose threads all waited for a slot would never get one), and
    /// returns a finished handle with `f`'s result or panic.
    ///
    /// # Panics
    /// As [`green::spawn`](crate::spawn), if no stack can be made.
    ///
    /// # Examples
    /// ```
    /// let pool = green::GreenPool::new(4);
    /// let gt = pool.spawn(|| 6 * 7);
    /// assert_eq!(gt.wait(), 42);
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> GreenThread<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let Some(slot) = self.take_slot() else {
            return run_inline(f);
        };
        let n = slot.n;
        let gt = spawn(move || {
            let v = f();
            drop(slot);
            v
        });
        // A spawned green thread first runs when the caller parks or yields:
        // it is a member before it can leave.
        self.inner.state.lock().members.add(n, gt.member());
        gt
    }

    /// Like [`spawn`](GreenPool::spawn), with no handle (eventlet's
    /// `spawn_n`).
    ///
    /// # Panics
    /// As [`green::spawn`](crate::spawn), if no stack can be made.
    ///
    /// # Examples
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let pool = green::GreenPool::new(2);
    /// let done = Rc::new(Cell::new(0));
    /// for _ in 0..5 {
    ///     let done = done.clone();
    ///     pool.spawn_n(move || done.set(done.get() + 1));
    /// }
    /// pool.waitall();
    /// assert_eq!(done.get(), 5);
    /// ```
    #[track_caller]
    pub fn spawn_n<F>(&self, f: F)
    where
        F: FnOnce() + 'static,
    {
        let Some(slot) = self.take_slot() else {
            // As in `spawn`; a panic is reported as a green thread's would
            // be, and goes no further.
            drop(run_inline(f));
            return;
        };
        let n = slot.n;
        let m = crate::Builder::new()
            .spawn_n_member(move || {
                f();
                drop(slot);
            })
            .unwrap_or_else(|e| panic!("failed to spawn green thread: {e}"));
        self.inner.state.lock().members.add(n, m);
    }

    /// Waits until every green thread of the pool has finished.
    ///
    /// # Panics
    /// If called from one of the pool's own green threads: it would wait
    /// for itself forever.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let pool = green::GreenPool::new(4);
    /// for ms in [3, 1, 2] {
    ///     pool.spawn_n(move || green::sleep(Duration::from_millis(ms)));
    /// }
    /// assert_eq!(pool.running(), 3);
    /// pool.waitall();
    /// assert_eq!(pool.running(), 0);
    /// ```
    pub fn waitall(&self) {
        let s = self.inner.state.lock();
        if let Some(id) = current_id() {
            if s.members.has_id(id) {
                drop(s);
                panic!(
                    "GreenPool::waitall called from one of the pool's own green threads \
                     (green thread {id}): it would wait for itself forever"
                );
            }
        }
        if s.running == 0 {
            return;
        }
        let on = Blocker::at(Kind::PoolIdle, &self.inner.state);
        wait::wait(&self.inner.state, s, idle, None, None, |_, _| {}, on);
    }

    /// Kills every green thread of the pool and waits until they have
    /// ended (gevent's `Pool.kill`): their slots are free again. Green
    /// threads spawned meanwhile are killed too; spawners waiting for a
    /// slot are not, and get the freed slots. Called from one of the pool's
    /// own green threads, it kills the others and returns; during a panic
    /// (from a destructor) it kills them and returns without waiting, as
    /// [`Group::kill_all`](crate::Group::kill_all) does.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let pool = green::GreenPool::new(4);
    /// for _ in 0..4 {
    ///     pool.spawn_n(|| green::sleep(Duration::from_secs(60)));
    /// }
    /// assert_eq!(pool.free(), 0);
    /// pool.kill_all();
    /// assert_eq!((pool.running(), pool.free()), (0, 4));
    /// ```
    pub fn kill_all(&self) {
        let on = Blocker::at(Kind::Group, &self.inner.state);
        wait_members(&self.inner.state, true, None, on);
    }

    /// Free slots: how many green threads `spawn` could start now without
    /// waiting.
    ///
    /// # Examples
    /// ```
    /// let pool = green::GreenPool::new(3);
    /// let gt = pool.spawn(|| ());
    /// assert_eq!((pool.free(), pool.running(), pool.size()), (2, 1, 3));
    /// gt.wait();
    /// assert_eq!(pool.free(), 3);
    /// ```
    pub fn free(&self) -> usize {
        let s = self.inner.state.lock();
        s.size.saturating_sub(s.running)
    }

    /// Green threads of the pool that hold a slot (spawned, not finished).
    pub fn running(&self) -> usize {
        self.inner.state.lock().running
    }

    /// Spawners waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.inner.state.lock().spawners.len()
    }

    /// The most green threads the pool runs at once.
    pub fn size(&self) -> usize {
        self.inner.state.lock().size
    }

    /// Changes the size. Growing lets waiting spawners in at once;
    /// shrinking kills nothing: the pool runs over its new size until
    /// enough green threads finish.
    ///
    /// # Examples
    /// ```
    /// let pool = green::GreenPool::new(2);
    /// let gts: Vec<_> = (0..2).map(|i| pool.spawn(move || i)).collect();
    /// pool.resize(1);
    /// assert_eq!((pool.running(), pool.free()), (2, 0));
    /// let sum: i32 = gts.into_iter().map(|gt| gt.wait()).sum();
    /// assert_eq!((sum, pool.free()), (1, 1));
    /// ```
    pub fn resize(&self, size: usize) {
        let mut s = self.inner.state.lock();
        s.size = size;
        while s.running < s.size && !s.spawners.is_empty() {
            s.running += 1;
            s.spawners.pop_notify(|_| {});
        }
    }

    /// Runs `f` on each item of `iter` in the pool's green threads and
    /// yields the results in input order (eventlet's `imap`).
    ///
    /// Lazy: items are taken from `iter` as results are consumed, with at
    /// most [`size`](GreenPool::size) of them in flight.
    ///
    /// # Panics
    /// A panic in `f` resumes in the context that takes that result from
    /// the iterator; the iterator's `next` also panics as
    /// [`spawn`](GreenPool::spawn) does.
    pub fn imap<F, I, A, R>(&self, f: F, iter: I) -> Imap<'_, F, I::IntoIter, R>
    where
        F: Fn(A) -> R + 'static,
        I: IntoIterator<Item = A>,
        A: 'static,
        R: 'static,
    {
        Imap {
            pool: self,
            f: Rc::new(f),
            iter: iter.into_iter(),
            in_flight: VecDeque::new(),
        }
    }

    /// Like [`imap`](GreenPool::imap), but yields the results as the green
    /// threads finish, not in input order, with at most
    /// [`size`](GreenPool::size) in flight.
    ///
    /// # Panics
    /// A panic in `f` resumes in the context that takes that result from
    /// the iterator; the iterator's `next` also panics as
    /// [`spawn`](GreenPool::spawn) does.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let pool = green::GreenPool::new(3);
    /// let order: Vec<u64> = pool
    ///     .imap_unordered(|ms: u64| {
    ///         green::sleep(Duration::from_millis(ms));
    ///         ms
    ///     }, [30, 10, 20])
    ///     .collect();
    /// assert_eq!(order, [10, 20, 30]);
    /// ```
    pub fn imap_unordered<F, I, A, R>(&self, f: F, iter: I) -> ImapUnordered<'_, F, I::IntoIter, R>
    where
        F: Fn(A) -> R + 'static,
        I: IntoIterator<Item = A>,
        A: 'static,
        R: 'static,
    {
        ImapUnordered {
            pool: self,
            f: Rc::new(f),
            iter: iter.into_iter(),
            in_flight: Vec::new(),
        }
    }

    /// Like [`imap`](GreenPool::imap) for a function of several arguments,
    /// each item a tuple of them (eventlet's `starmap`).
    ///
    /// # Examples
    /// ```
    /// let pool = green::GreenPool::new(4);
    /// let sums: Vec<i32> = pool.starmap(|a: i32, b: i32| a + b, vec![(1, 2), (3, 4)]).collect();
    /// assert_eq!(sums, [3, 7]);
    /// ```
    pub fn starmap<F, I, A, R>(
        &self,
        f: F,
        iter: I,
    ) -> Imap<'_, impl Fn(A) -> R + 'static, I::IntoIter, R>
    where
        F: Apply<A, Output = R> + 'static,
        I: IntoIterator<Item = A>,
        A: 'static,
        R: 'static,
    {
        self.imap(move |args| f.apply(args), iter)
    }
}

impl Default for GreenPool {
    /// A pool of 1000, eventlet's default size.
    fn default() -> Self {
        GreenPool::new(1000)
    }
}

impl fmt::Debug for GreenPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.inner.state.lock();
        f.debug_struct("GreenPool")
            .field("size", &s.size)
            .field("running", &s.running)
            .field("waiting", &s.spawners.len())
            .finish()
    }
}

/// A function called with the fields of a tuple as its arguments; what
/// [`GreenPool::starmap`] maps with. Implemented for `Fn` of one to four
/// arguments.
pub trait Apply<Args> {
    /// What the function returns.
    type Output;
    /// Calls the function with the tuple's fields.
    fn apply(&self, args: Args) -> Self::Output;
}

macro_rules! apply_impl {
    ($($a:ident),+) => {
        impl<Func, Ret, $($a),+> Apply<($($a,)+)> for Func
        where
            Func: Fn($($a),+) -> Ret,
        {
            type Output = Ret;
            #[allow(non_snake_case)]
            fn apply(&self, ($($a,)+): ($($a,)+)) -> Ret {
                self($($a),+)
            }
        }
    };
}

apply_impl!(A);
apply_impl!(A, B);
apply_impl!(A, B, C);
apply_impl!(A, B, C, D);

/// Spawns `f` on the next items of `iter` in `pool` until `in_flight` and
/// those spawned make the pool's size (at least one).
fn spawn_up_to_size<F, I, A, R>(
    pool: &GreenPool,
    f: &Rc<F>,
    iter: &mut I,
    in_flight: usize,
) -> Vec<GreenThread<R>>
where
    F: Fn(A) -> R + 'static,
    I: Iterator<Item = A>,
    A: 'static,
    R: 'static,
{
    let room = pool.size().max(1).saturating_sub(in_flight);
    iter.take(room)
        .map(|a| {
            let f = f.clone();
            pool.spawn(move || f(a))
        })
        .collect()
}

/// The iterator of [`GreenPool::imap`] and [`GreenPool::starmap`].
///
/// Dropping it leaves the green threads already started to finish on their
/// own.
pub struct Imap<'p, F, I, R> {
    pool: &'p GreenPool,
    f: Rc<F>,
    iter: I,
    in_flight: VecDeque<GreenThread<R>>,
}

impl<F, I, A, R> Iterator for Imap<'_, F, I, R>
where
    F: Fn(A) -> R + 'static,
    I: Iterator<Item = A>,
    A: 'static,
    R: 'static,
{
    type Item = R;

    fn next(&mut self) -> Option<R> {
        let more = spawn_up_to_size(self.pool, &self.f, &mut self.iter, self.in_flight.len());
        self.in_flight.extend(more);
        self.in_flight.pop_front().map(GreenThread::wait)
    }
}

impl<F, I, R> fmt::Debug for Imap<'_, F, I, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap")
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

/// The iterator of [`GreenPool::imap_unordered`]: results as they finish.
///
/// Dropping it leaves the green threads already started to finish on their
/// own.
pub struct ImapUnordered<'p, F, I, R> {
    pool: &'p GreenPool,
    f: Rc<F>,
    iter: I,
    in_flight: Vec<GreenThread<R>>,
}

impl<F, I, A, R> Iterator for ImapUnordered<'_, F, I, R>
where
    F: Fn(A) -> R + 'static,
    I: Iterator<Item = A>,
    A: 'static,
    R: 'static,
{
    type Item = R;

    fn next(&mut self) -> Option<R> {
        let more = spawn_up_to_size(self.pool, &self.f, &mut self.iter, self.in_flight.len());
        self.in_flight.extend(more);
        if self.in_flight.is_empty() {
            return None;
        }
        let items: Vec<&dyn crate::Waitable> = self.in_flight.iter().map(|g| g as _).collect();
        let i =
            crate::wait_any(&items, None).expect("a wait without a timeout ends with a ready item");
        Some(self.in_flight.swap_remove(i).wait())
    }
}

impl<F, I, R> fmt::Debug for ImapUnordered<'_, F, I, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapUnordered")
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

/// Spawns work into a pool and yields the results in spawn order
/// (eventlet's `GreenPile`).
///
/// # Examples
/// ```
/// let mut pile = green::GreenPile::new(3);
/// for word in ["green", "threads", "here"] {
///     pile.spawn(move || word.len());
/// }
/// let lens: Vec<usize> = pile.collect();
/// assert_eq!(lens, [5, 7, 4]);
/// ```
///
/// Like its pool, a pile stays on the OS thread that made it:
///
/// ```compile_fail,E0277
/// fn assert_send<T: Send>() {}
/// assert_send::<green::GreenPile<u32>>();
/// ```
pub struct GreenPile<T> {
    pool: GreenPool,
    pending: VecDeque<GreenThread<T>>,
}

impl<T: 'static> GreenPile<T> {
    /// Creates a pile with its own pool of `size`.
    pub fn new(size: usize) -> GreenPile<T> {
        GreenPile {
            pool: GreenPool::new(size),
            pending: VecDeque::new(),
        }
    }

    /// Creates a pile that spawns into `pool`, sharing its slots with the
    /// pool's other work.
    pub fn with_pool(pool: &GreenPool) -> GreenPile<T> {
        GreenPile {
            pool: GreenPool {
                inner: pool.inner.clone(),
            },
            pending: VecDeque::new(),
        }
    }

    /// Spawns `f` in the pile's pool (waiting for a slot if it is full);
    /// its result comes out of the pile after those spawned before it.
    #[track_caller]
    pub fn spawn<F>(&mut self, f: F)
    where
        F: FnOnce() -> T + 'static,
    {
        self.pending.push_back(self.pool.spawn(f));
    }

    /// Results not yet taken.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether every result has been taken.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

impl<T: 'static> Iterator for GreenPile<T> {
    type Item = T;

    /// The next result in spawn order, waiting for it; a panic of its
    /// green thread resumes here.
    fn next(&mut self) -> Option<T> {
        self.pending.pop_front().map(GreenThread::wait)
    }
}

impl<T> fmt::Debug for GreenPile<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GreenPile")
            .field("pool", &self.pool)
            .field("pending", &self.pending.len())
            .finish()
    }
}

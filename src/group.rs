//! [`Group`]: green threads joined or killed together (gevent's `Group`,
//! `killall`), and the membership it shares with
//! [`GreenPool`](crate::GreenPool).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::greenthread::{current_id, spawn, GreenThread, Member};
use crate::hub::{Blocker, Kind};
use crate::wait::{self, Lock, WaitList, Waited};

/// The green threads of a group or a pool, by a number of their own.
pub(crate) struct Members {
    next: u64,
    live: HashMap<u64, Member>,
    /// The green thread ids of `live`.
    ids: HashSet<u64>,
    /// Members a `kill_all` has killed (each is killed once).
    killed: HashSet<u64>,
    /// Contexts waiting for a member to leave (`join`, `kill_all`).
    changed: WaitList,
}

impl Members {
    pub(crate) fn new() -> Members {
        Members {
            next: 0,
            live: HashMap::new(),
            ids: HashSet::new(),
            killed: HashSet::new(),
            changed: WaitList::new(),
        }
    }

    /// A number for a green thread about to be spawned.
    pub(crate) fn ticket(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Green thread `m`, spawned with ticket `n`, is a member until it
    /// leaves.
    pub(crate) fn add(&mut self, n: u64, m: Member) {
        self.live.insert(n, m);
        self.ids.insert(m.id);
    }

    /// Member `n` has ended (or was never added).
    pub(crate) fn leave(&mut self, n: u64) {
        if let Some(m) = self.live.remove(&n) {
            self.ids.remove(&m.id);
            self.killed.remove(&n);
            self.changed.notify_all(|_| {});
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether green thread `id` is a member.
    pub(crate) fn has_id(&self, id: u64) -> bool {
        self.ids.contains(&id)
    }

    /// Kills the members not killed yet, but green thread `me`; returns
    /// whether a member other than `me` is left.
    fn kill_others(&mut self, me: Option<u64>) -> bool {
        let mut others = false;
        for (&n, m) in &self.live {
            if Some(m.id) == me {
                continue;
            }
            others = true;
            if self.killed.insert(n) {
                m.kill();
            }
        }
        others
    }
}

/// A primitive's state that holds [`Members`].
pub(crate) trait HasMembers {
    fn members(&mut self) -> &mut Members;
}

fn changed<S: HasMembers>(s: &mut S) -> &mut WaitList {
    &mut s.members().changed
}

/// Waits until no member is left (with `kill`: no member but the caller,
/// killing the others, and those that join meanwhile) or `deadline`
/// passes; `false` if it passed first.
///
/// Called while its OS thread unwinds (a destructor during a panic), a
/// kill only kills: the hub holds every other context's cancellation back
/// while one of them parks in an unwind, so the members would never end.
pub(crate) fn wait_members<S: HasMembers>(
    lock: &Lock<S>,
    kill: bool,
    deadline: Option<Instant>,
    on: Blocker,
) -> bool {
    let me = current_id();
    let mut s = lock.lock();
    if kill && std::thread::panicking() {
        s.members().kill_others(me);
        return false;
    }
    loop {
        let m = s.members();
        let left = if kill { m.kill_others(me) } else { m.len() > 0 };
        if !left {
            return true;
        }
        if let Waited::TimedOut(_) =
            wait::wait(lock, s, changed::<S>, None, deadline, |_, _| {}, on)
        {
            let mut s = lock.lock();
            let m = s.members();
            return if kill {
                !m.live.values().any(|m| Some(m.id) != me)
            } else {
                m.len() == 0
            };
        }
        s = lock.lock();
    }
}

/// A set of green threads to wait for or kill together (gevent's `Group`).
///
/// [`spawn`](Group::spawn) and [`spawn_n`](Group::spawn_n) start green
/// threads as members; a member leaves when it ends, however it ends.
/// [`join`](Group::join) waits for every member, [`kill_all`](Group::kill_all)
/// kills them all and waits until they have unwound. Unlike a
/// [`GreenPool`](crate::GreenPool), a group puts no limit on how many run
/// at once. Dropping the group leaves its green threads running.
///
/// A group spawns on the current OS thread's hub and is neither `Send` nor
/// `Sync`, like the green threads it holds; clones share one group.
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let group = green::Group::new();
/// for i in 0..10u64 {
///     group.spawn_n(move || green::sleep(Duration::from_secs(60 + i)));
/// }
/// assert_eq!(group.len(), 10);
/// group.kill_all();
/// assert!(group.is_empty());
/// ```
///
/// ```compile_fail,E0277
/// fn assert_send<T: Send>() {}
/// assert_send::<green::Group>();
/// ```
#[derive(Clone)]
pub struct Group {
    inner: Rc<Lock<GroupState>>,
}

struct GroupState {
    members: Members,
}

impl HasMembers for GroupState {
    fn members(&mut self) -> &mut Members {
        &mut self.members
    }
}

/// Moved into a member's closure: it leaves the group when the closure
/// ends or is dropped unrun (killed before it started).
struct Leave {
    group: Rc<Lock<GroupState>>,
    n: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.group.lock().members.leave(self.n);
    }
}

/// A member's closure and its guard. Dropped unrun (killed before it
/// started), the closure goes first, then the guard (fields drop in
/// declaration order): the closure's captures may park as they drop, and
/// the member must stay a member until they have.
struct Body<F> {
    f: F,
    leave: Leave,
}

impl<F> Body<F> {
    /// Runs the closure; the member leaves after it, however it ends.
    fn run<T>(self) -> T
    where
        F: FnOnce() -> T,
    {
        let Body { f, leave } = self;
        let v = f();
        drop(leave);
        v
    }
}

impl Default for Group {
    fn default() -> Self {
        Group::new()
    }
}

impl Group {
    /// An empty group.
    pub fn new() -> Group {
        Group {
            inner: Rc::new(Lock::new(GroupState {
                members: Members::new(),
            })),
        }
    }

    /// A ticket, and `f` with the guard that gives it back.
    fn enter<F>(&self, f: F) -> (u64, Body<F>) {
        let n = self.inner.lock().members.ticket();
        let leave = Leave {
            group: self.inner.clone(),
            n,
        };
        (n, Body { f, leave })
    }

    /// Spawns `f` in a green thread that is a member until it ends.
    ///
    /// # Panics
    /// As [`green::spawn`](crate::spawn), if no stack can be made.
    ///
    /// # Examples
    /// ```
    /// let group = green::Group::new();
    /// let gt = group.spawn(|| 6 * 7);
    /// assert_eq!(group.len(), 1);
    /// assert_eq!(gt.wait(), 42);
    /// assert!(group.is_empty());
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> GreenThread<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let (n, body) = self.enter(f);
        let gt = spawn(move || body.run());
        // A spawned green thread first runs when the caller parks or yields:
        // it is a member before it can leave.
        self.inner.lock().members.add(n, gt.member());
        gt
    }

    /// Like [`spawn`](Group::spawn), with no handle.
    ///
    /// # Panics
    /// As [`green::spawn`](crate::spawn), if no stack can be made.
    #[track_caller]
    pub fn spawn_n<F>(&self, f: F)
    where
        F: FnOnce() + 'static,
    {
        let (n, body) = self.enter(f);
        let m = crate::Builder::new()
            .spawn_n_member(move || body.run())
            .unwrap_or_else(|e| panic!("failed to spawn green thread: {e}"));
        self.inner.lock().members.add(n, m);
    }

    /// Waits until every member has ended, including those spawned while it
    /// waits.
    ///
    /// # Panics
    /// If called from a member: it would wait for itself forever.
    ///
    /// # Examples
    /// ```
    /// use std::{cell::Cell, rc::Rc, time::Duration};
    ///
    /// let group = green::Group::new();
    /// let done = Rc::new(Cell::new(0));
    /// for ms in [3, 1, 2] {
    ///     let done = done.clone();
    ///     group.spawn_n(move || {
    ///         green::sleep(Duration::from_millis(ms));
    ///         done.set(done.get() + 1);
    ///     });
    /// }
    /// group.join();
    /// assert_eq!(done.get(), 3);
    /// ```
    pub fn join(&self) {
        self.check_not_member("join");
        wait_members(&self.inner, false, None, self.blocker());
    }

    /// Like [`join`](Group::join), giving up after `timeout`; `true` if
    /// every member ended.
    ///
    /// # Panics
    /// If called from a member.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.check_not_member("join_timeout");
        let deadline = Instant::now().checked_add(timeout);
        wait_members(&self.inner, false, deadline, self.blocker())
    }

    /// Kills every member (gevent's `Group.kill`) and waits until they have
    /// ended: their closures have unwound and their destructors have run
    /// (a member's links, and the thread-local destructors of one with a
    /// thread identity of its own, run right after). Members spawned
    /// meanwhile (by a destructor) are killed too. Members that have not
    /// started never run. While one member's destructor parks, the hub
    /// delivers no other kill: destructors that wait run one after another.
    ///
    /// Called from a member, it kills the others and returns with the
    /// caller still a member (the errgroup pattern: one member fails and
    /// cancels the rest). Called during a panic (from a destructor), it
    /// kills them and returns at once without waiting, like a Go context's
    /// `cancel`: the hub holds kills back while a context parks in an
    /// unwind, so a wait there would never end.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let group = green::Group::new();
    /// let sleepers: Vec<_> = (0..3)
    ///     .map(|_| group.spawn(|| green::sleep(Duration::from_secs(60))))
    ///     .collect();
    /// group.kill_all();
    /// assert!(sleepers.into_iter().all(|gt| gt.join().unwrap_err().is::<green::Killed>()));
    /// ```
    pub fn kill_all(&self) {
        wait_members(&self.inner, true, None, self.blocker());
    }

    /// How many members there are (spawned and not ended).
    pub fn len(&self) -> usize {
        self.inner.lock().members.len()
    }

    /// Whether the group has no member.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn blocker(&self) -> Blocker {
        Blocker::at(Kind::Group, &*self.inner)
    }

    fn check_not_member(&self, what: &str) {
        if let Some(id) = current_id() {
            if self.inner.lock().members.has_id(id) {
                panic!(
                    "green::Group::{what} called from a member (green thread {id}): \
                     it would wait for itself forever"
                );
            }
        }
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group").field("len", &self.len()).finish()
    }
}

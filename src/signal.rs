//! Signals as green waits: a green thread parks until `SIGTERM`, `SIGINT`,
//! `SIGHUP`, ... arrives, with no handler function (gevent's
//! `signal_handler`, tokio's `signal::unix`, Go's `signal.Notify`).
//!
//! [`Signals::new`] takes a set of signals; [`Signals::wait`] parks the
//! calling green thread until one of them arrives and returns its number,
//! while the hub runs the other green threads. Called from a root (a plain
//! OS thread included), the wait runs the thread's hub in place, as every
//! green wait does.
//!
//! ```
//! use green::signal::Signals;
//! use libc::{SIGINT, SIGTERM};
//!
//! // First thing in `main`, before other threads start (see "The signal
//! // mask" below).
//! let signals = Signals::new(&[SIGTERM, SIGINT])?;
//! let server = green::spawn(move || -> std::io::Result<i32> {
//!     // ... serve, until told to stop:
//!     let sig = signals.wait()?; // parks only this green thread
//!     Ok(sig)
//! });
//! // What a shell or a supervisor does:
//! let pid = std::process::id().to_string();
//! std::process::Command::new("kill").args(["-TERM", &pid]).status()?;
//! assert_eq!(server.wait()?, SIGTERM);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # How it works
//!
//! A `Signals` is a `signalfd`: the signals are *blocked*, so the kernel
//! does not deliver them to a handler or a default action; it keeps each
//! one pending until it is read from the fd, and the fd is readable while
//! one is pending. The hub waits on that fd like on any socket
//! ([`hub::wait_io`]: registered with its poller
//! once, edge-triggered), so a wait costs no thread and nothing runs in a
//! signal handler: no code is interrupted, no system call fails with
//! `EINTR`.
//!
//! ```text
//!  kill -TERM <pid>
//!     |
//!     v
//!  kernel: SIGTERM is blocked -> pending     the signalfd turns readable
//!     |
//!     v
//!  the hub's epoll_wait: an edge on the fd   the waiting green thread runs:
//!                                            read(signalfd) -> SIGTERM,
//!                                            no longer pending
//! ```
//!
//! # The signal mask
//!
//! A blocked signal is per OS thread, and a signalfd reads only what is
//! pending for the thread that reads it, or for the whole process. So:
//!
//! - **The calling OS thread.** [`Signals::new`] blocks its signals in the
//!   OS thread that calls it (`pthread_sigmask(SIG_BLOCK)`). The mask is
//!   the thread's, shared by the root and every green thread of its hub
//!   (green threads never move to another OS thread). A `Signals` is not
//!   `Send`: it is waited for on the thread whose mask it set.
//! - **Threads started later** from that thread (by `std::thread::spawn`;
//!   green's `tpool` workers and helper threads too, when this thread
//!   starts them) inherit the mask: the signals are blocked there too, and
//!   stay so for the thread's life.
//! - **Threads that already exist** are not touched: no call changes
//!   another thread's mask. A *process-directed* signal (`kill <pid>`,
//!   Ctrl-C in a terminal, a supervisor's `SIGTERM`) goes to a thread that
//!   does not block it, and its disposition runs there: for `SIGTERM`,
//!   `SIGINT` and `SIGHUP` the default ends the process. It stays pending
//!   for a `Signals` only if **every** thread blocks it. So create the
//!   first `Signals` on the main thread before any other thread starts
//!   (or start the process with the signals blocked: the mask survives
//!   `exec`). The kernel also discards at once a process-directed signal
//!   whose disposition ignores it (`SIGCHLD`, `SIGWINCH`, `SIGURG` by
//!   default) unless the main thread blocks it.
//! - **Thread-directed signals** (`pthread_kill`, `tgkill`) are pending
//!   for their thread only: the `Signals` of that thread read them, no
//!   other.
//! - **Several `Signals`** (on one thread or on several hubs) may take the
//!   same signal. Each pending signal is read once, by whichever wait reads
//!   first: a signal is not broadcast to every `Signals` (unlike Go's
//!   `signal.Notify`, which copies it to each channel).
//! - **Drop.** Each OS thread keeps count of its live `Signals` per signal.
//!   When the last one that takes a signal is dropped, the signal is
//!   unblocked again in that thread, if it was not blocked when the first
//!   one blocked it (a signal the program had blocked itself stays
//!   blocked). An instance that arrived and was not read is then delivered
//!   at once: its disposition runs (`SIGTERM`'s default ends the process),
//!   as if no `Signals` had been there. Threads that inherited the mask
//!   keep it. The count is kept by kernel thread id: an entry left by a
//!   leaked `Signals` of a thread that has exited is dropped when a new
//!   thread with the same id finds its signals not blocked; a child made
//!   by `fork` that drops a `Signals` it inherited leaves the signals
//!   blocked. Unblocking also lets this thread take a process-directed
//!   instance another thread's `Signals` waits for: keep the first
//!   `Signals`, made on the main thread, for the whole program.
//! - **Child processes** inherit the mask: std's `Command` (and
//!   [`green::process::Command`](crate::process::Command)) keeps it across
//!   `exec`, so a child started from such a thread begins with the signals
//!   blocked, and `kill -TERM` does not end a child that does not unblock
//!   it. Unblock them in the child (`CommandExt::pre_exec` with
//!   `pthread_sigmask(SIG_UNBLOCK)`), or start children from a thread that
//!   does not block them.
//! - **Handlers.** A handler installed for a signal (by
//!   [`debug::dump_on_signal`](crate::debug::dump_on_signal), by a crate)
//!   does not run for instances a `Signals` reads: while the signal is
//!   blocked, it waits in the kernel for a read instead.
//!
//! # Cancellation
//!
//! A [`GreenThread::kill`](crate::GreenThread::kill) or a
//! [`Timeout`](crate::Timeout) that ends a wait unwinds from it, as from any
//! green wait: the wait leaves the fd's list of waiters and reads nothing,
//! so a signal that arrives later stays pending for the next wait. The fd
//! stays registered with the hub until the `Signals` is dropped, which
//! closes it.
//!
//! # Notes
//! - Standard signals (1 to 31) coalesce: two `SIGHUP`s sent before a
//!   wait reads the first are read as one. Real-time signals
//!   (`SIGRTMIN()` to `SIGRTMAX()`) queue, and are read one by one.
//! - Linux only (`signalfd(2)`).

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;

use libc::c_int;

use crate::hub::{self, Interest};
use crate::sys;
use crate::sys::signal::{sigmask, signalfd};

/// A set of signals that green threads of the current OS thread wait for.
///
/// Creating it blocks the signals in the calling OS thread and opens a
/// `signalfd` for them; dropping it closes the fd and unblocks them again
/// (see the [module docs](self#the-signal-mask) for the exact rules,
/// which decide whether `kill <pid>` reaches it).
///
/// # Notes
/// `Signals` is neither `Send` nor `Sync`: the mask it sets is its OS
/// thread's, and a signalfd reads the signals pending for the thread that
/// reads it. Every green thread of that thread's hub may use it (share it
/// with an `Rc`); another OS thread makes its own.
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<green::signal::Signals>();
/// ```
///
/// # Examples
/// ```
/// use green::signal::Signals;
/// use libc::{SIGHUP, SIGTERM};
///
/// let signals = Signals::new(&[SIGHUP, SIGTERM])?;
/// let pid = std::process::id().to_string();
/// let reloader = green::spawn(move || -> std::io::Result<u32> {
///     let mut reloads = 0;
///     loop {
///         match signals.wait()? {
///             SIGHUP => reloads += 1, // reload the configuration
///             _ => return Ok(reloads), // SIGTERM: stop
///         }
///     }
/// });
/// std::process::Command::new("kill").args(["-HUP", &pid]).status()?;
/// std::process::Command::new("kill").args(["-TERM", &pid]).status()?;
/// assert_eq!(reloader.wait()?, 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Signals {
    /// The signalfd, non-blocking and close-on-exec.
    fd: OwnedFd,
    /// The signals, one bit each (`1 << (sig - 1)`).
    ///
    /// # Invariant
    /// Counted once in this OS thread's entry of [`HELD`] for as long as
    /// the `Signals` lives.
    set: u64,
    /// Not `Send`, not `Sync`: the mask is the OS thread's.
    _thread: PhantomData<*const ()>,
}

impl Signals {
    /// Blocks `signals` in the calling OS thread and opens a signalfd for
    /// them, to wait for them with [`wait`](Signals::wait).
    ///
    /// A signal given twice counts once. From now until a wait reads it, a
    /// signal sent to this thread, or to the process while every thread
    /// blocks it, stays pending: none is lost between two waits (but a
    /// standard signal sent twice before a read is read once).
    ///
    /// # Errors
    /// `InvalidInput`, naming the signal, for an empty set; for a number
    /// that is not a signal; for `SIGKILL` and `SIGSTOP`, which cannot be
    /// blocked; for a fault (`SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`,
    /// `SIGTRAP`, `SIGSYS`: a real fault while it is blocked ends the
    /// process); and for the signals between `SIGSYS` and `SIGRTMIN()`,
    /// which the C library keeps for its threads. The OS error if the
    /// signalfd cannot be made (`EMFILE` when out of fds).
    ///
    /// # Examples
    /// ```
    /// use green::signal::Signals;
    ///
    /// let signals = Signals::new(&[libc::SIGTERM, libc::SIGINT])?;
    /// assert_eq!(signals.try_wait()?, None);
    ///
    /// let e = Signals::new(&[libc::SIGKILL]).unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(signals: &[c_int]) -> io::Result<Signals> {
        let set = set_of(signals)?;
        // The fd first: if it cannot be made, no mask has changed.
        let fd = signalfd(set)?;
        hold(set)?;
        Ok(Signals {
            fd,
            set,
            _thread: PhantomData,
        })
    }

    /// Parks the calling green thread (or the root, running the hub) until
    /// one of the signals arrives, and returns its number.
    ///
    /// A signal already pending is returned at once. Several green threads
    /// of the hub may wait on one `Signals`: each signal is read by one of
    /// them (an arrival wakes them all; the others find nothing and wait
    /// on).
    ///
    /// # Errors
    /// The OS error of reading the signalfd; `ConnectionAborted` if
    /// [`notify_close`](crate::hub::notify_close) is called for its fd
    /// meanwhile.
    ///
    /// # Panics
    /// Panics when called from the hub itself (a timer callback).
    ///
    /// # Examples
    /// ```
    /// use green::signal::Signals;
    ///
    /// let signals = Signals::new(&[libc::SIGUSR1])?;
    /// let pid = std::process::id().to_string();
    /// std::process::Command::new("kill").args(["-USR1", &pid]).status()?;
    /// assert_eq!(signals.wait()?, libc::SIGUSR1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wait(&self) -> io::Result<c_int> {
        hub::wait_io(self.fd.as_raw_fd(), Interest::Read, None, || {
            self.read_one()
        })
    }

    /// [`wait`](Signals::wait) for at most `timeout`: `None` if no signal
    /// arrived by then.
    ///
    /// A signal already pending is returned at once, whatever `timeout`
    /// (`Duration::ZERO` included). A kill or [`Timeout`](crate::Timeout)
    /// meanwhile unwinds from it as from `wait`.
    ///
    /// # Errors
    /// As [`wait`](Signals::wait).
    ///
    /// # Panics
    /// Panics when called from the hub itself (a timer callback).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use green::signal::Signals;
    ///
    /// let signals = Signals::new(&[libc::SIGHUP])?;
    /// assert_eq!(signals.wait_timeout(Duration::from_millis(10))?, None);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> io::Result<Option<c_int>> {
        let fd = self.fd.as_raw_fd();
        match hub::wait_io(fd, Interest::Read, Some(timeout), || self.read_one()) {
            Ok(sig) => Ok(Some(sig)),
            // One last look: a signal that came with the deadline (before
            // the hub polled) is still returned.
            Err(e) if e.kind() == io::ErrorKind::TimedOut => self.try_wait(),
            Err(e) => Err(e),
        }
    }

    /// Returns a pending signal, if one is, without waiting.
    ///
    /// # Errors
    /// The OS error of reading the signalfd.
    ///
    /// # Examples
    /// ```
    /// use green::signal::Signals;
    ///
    /// let signals = Signals::new(&[libc::SIGUSR2])?;
    /// assert_eq!(signals.try_wait()?, None);
    /// let pid = std::process::id().to_string();
    /// std::process::Command::new("kill").args(["-USR2", &pid]).status()?;
    /// // `kill` has returned: the signal is pending.
    /// assert_eq!(signals.try_wait()?, Some(libc::SIGUSR2));
    /// assert_eq!(signals.try_wait()?, None);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn try_wait(&self) -> io::Result<Option<c_int>> {
        match self.read_one() {
            Ok(sig) => Ok(Some(sig)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads one `signalfd_siginfo` (non-blocking) and returns its signal.
    fn read_one(&self) -> io::Result<c_int> {
        let mut info = [0u8; SIGINFO_SIZE];
        let n = sys::io::read(&self.fd, &mut info)?;
        // The kernel writes whole records, `ssi_signo` first.
        debug_assert_eq!(n, SIGINFO_SIZE);
        let mut signo = [0u8; 4];
        signo.copy_from_slice(&info[..4]);
        Ok(u32::from_ne_bytes(signo) as c_int)
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        // Before the fd closes (when the field drops): the hub forgets it.
        hub::notify_close(self.fd.as_raw_fd());
        release(self.set);
    }
}

/// The signalfd, for waits that compose with other fds
/// ([`trampoline`](crate::hub::trampoline), `poll` under
/// [`patch`](crate::patch())): it is readable while one of the signals is
/// pending for this thread or the process. Read it with
/// [`try_wait`](Signals::try_wait).
///
/// # Examples
/// ```
/// use std::os::fd::AsRawFd;
/// use green::hub::{trampoline, Interest};
/// use green::signal::Signals;
///
/// let signals = Signals::new(&[libc::SIGUSR1])?;
/// let pid = std::process::id().to_string();
/// std::process::Command::new("kill").args(["-USR1", &pid]).status()?;
/// trampoline(signals.as_raw_fd(), Interest::Read, None)?;
/// assert_eq!(signals.try_wait()?, Some(libc::SIGUSR1));
/// # Ok::<(), std::io::Error>(())
/// ```
impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The signalfd's number (see the `AsFd` implementation).
impl AsRawFd for Signals {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<Name> = signals_in(self.set).map(Name).collect();
        f.debug_struct("Signals")
            .field("fd", &self.fd.as_raw_fd())
            .field("signals", &names)
            .finish()
    }
}

/// Parks the calling green thread (or the root, running the hub) until
/// one of `signals` arrives, and returns its number: [`Signals::new`],
/// [`Signals::wait`], then the drop.
///
/// The signals are blocked only while the call runs: one that arrives
/// before it, or between two calls, gets its disposition (for `SIGTERM`,
/// the end of the process). To wait more than once, keep a [`Signals`].
///
/// # Errors
/// As [`Signals::new`] and [`Signals::wait`].
///
/// # Panics
/// Panics when called from the hub itself (a timer callback).
///
/// # Examples
/// ```
/// let stopper = green::spawn(|| green::signal::wait(&[libc::SIGTERM, libc::SIGINT]));
/// green::yield_now(); // it blocks the signals and parks
/// let pid = std::process::id().to_string();
/// std::process::Command::new("kill").args(["-INT", &pid]).status()?;
/// assert_eq!(stopper.wait()?, libc::SIGINT);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn wait(signals: &[c_int]) -> io::Result<c_int> {
    Signals::new(signals)?.wait()
}

// ---------------------------------------------------------------------
// The set of signals, checked

/// The size of the kernel's `signalfd_siginfo`.
const SIGINFO_SIZE: usize = std::mem::size_of::<libc::signalfd_siginfo>();

/// The bit of `sig` in a kernel signal set.
fn bit(sig: c_int) -> u64 {
    1 << (sig - 1)
}

/// The signals of `set`, lowest first.
fn signals_in(set: u64) -> impl Iterator<Item = c_int> {
    (1..=64).filter(move |&sig| set & bit(sig) != 0)
}

/// The kernel set of `signals`, or why one cannot be waited for.
fn set_of(signals: &[c_int]) -> io::Result<u64> {
    if signals.is_empty() {
        return Err(invalid(
            "no signals given: name at least one (libc::SIGTERM, ...)".into(),
        ));
    }
    let mut set = 0;
    for &sig in signals {
        check(sig)?;
        set |= bit(sig);
    }
    Ok(set)
}

/// Whether `sig` can be waited for: blocked, and read from a signalfd.
fn check(sig: c_int) -> io::Result<()> {
    // The kernel's sets here are one word: 64 signals.
    let max = libc::SIGRTMAX().min(64);
    if !(1..=max).contains(&sig) {
        return Err(invalid(format!(
            "{sig} is not a signal number (1 to {max})"
        )));
    }
    let name = Name(sig);
    let why = match sig {
        libc::SIGKILL | libc::SIGSTOP => "cannot be caught or blocked",
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP
        | libc::SIGSYS => {
            "is a fault: a real one while it is blocked ends the process, so it cannot be waited for"
        }
        _ if sig > libc::SIGSYS && sig < libc::SIGRTMIN() => {
            "is kept by the C library for its threads (use SIGRTMIN() and up)"
        }
        _ => return Ok(()),
    };
    Err(invalid(format!("{name} {why}")))
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("green::signal: {why}"))
}

/// A signal shown by name and number: `SIGTERM (15)`, `SIGRTMIN+2 (36)`.
struct Name(c_int);

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sig = self.0;
        let name = match sig {
            libc::SIGHUP => "SIGHUP",
            libc::SIGINT => "SIGINT",
            libc::SIGQUIT => "SIGQUIT",
            libc::SIGILL => "SIGILL",
            libc::SIGTRAP => "SIGTRAP",
            libc::SIGABRT => "SIGABRT",
            libc::SIGBUS => "SIGBUS",
            libc::SIGFPE => "SIGFPE",
            libc::SIGKILL => "SIGKILL",
            libc::SIGUSR1 => "SIGUSR1",
            libc::SIGSEGV => "SIGSEGV",
            libc::SIGUSR2 => "SIGUSR2",
            libc::SIGPIPE => "SIGPIPE",
            libc::SIGALRM => "SIGALRM",
            libc::SIGTERM => "SIGTERM",
            libc::SIGSTKFLT => "SIGSTKFLT",
            libc::SIGCHLD => "SIGCHLD",
            libc::SIGCONT => "SIGCONT",
            libc::SIGSTOP => "SIGSTOP",
            libc::SIGTSTP => "SIGTSTP",
            libc::SIGTTIN => "SIGTTIN",
            libc::SIGTTOU => "SIGTTOU",
            libc::SIGURG => "SIGURG",
            libc::SIGXCPU => "SIGXCPU",
            libc::SIGXFSZ => "SIGXFSZ",
            libc::SIGVTALRM => "SIGVTALRM",
            libc::SIGPROF => "SIGPROF",
            libc::SIGWINCH => "SIGWINCH",
            libc::SIGIO => "SIGIO",
            libc::SIGPWR => "SIGPWR",
            libc::SIGSYS => "SIGSYS",
            _ if sig >= libc::SIGRTMIN() && sig <= libc::SIGRTMAX() => {
                return write!(f, "SIGRTMIN+{} ({sig})", sig - libc::SIGRTMIN());
            }
            _ => return write!(f, "signal {sig}"),
        };
        write!(f, "{name} ({sig})")
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

// ---------------------------------------------------------------------
// What each OS thread's mask owes to its `Signals`

/// What live [`Signals`] changed in one OS thread's mask.
struct Held {
    /// The thread, by its kernel id: the mask is the OS thread's, whichever
    /// green thread (with its own thread-locals, under `patch()`) runs.
    tid: libc::pid_t,
    /// How many live `Signals` of the thread take each signal
    /// (`count[sig - 1]`).
    count: [u32; 64],
    /// The signals that were not blocked when a `Signals` blocked them:
    /// unblocked again when their count falls to 0.
    ours: u64,
}

/// One entry per OS thread that has a live [`Signals`]. An entry goes
/// when its thread's last `Signals` is dropped; one leaked with
/// `mem::forget` keeps its signals blocked in its thread, as leaked.
static HELD: Mutex<Vec<Held>> = Mutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<Held>> {
    // Nothing panics with the lock held; the data is whole either way.
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

fn current_tid() -> libc::pid_t {
    sys::thread::gettid().as_raw_nonzero().get()
}

/// Blocks `set` in the calling OS thread and counts it.
fn hold(set: u64) -> io::Result<()> {
    let tid = current_tid();
    let mut held = held();
    let before = sigmask(libc::SIG_BLOCK, set)?;
    let i = match held.iter().position(|h| h.tid == tid) {
        Some(i) => {
            // Counted signals not blocked: the entry is a dead thread's
            // (a leaked `Signals`), whose id the kernel gave this thread.
            let counted = (1..=64)
                .filter(|&sig| held[i].count[sig as usize - 1] > 0)
                .fold(0, |m, sig| m | bit(sig));
            if counted & !before != 0 {
                held[i].count = [0; 64];
                held[i].ours = 0;
            }
            i
        }
        None => {
            held.push(Held {
                tid,
                count: [0; 64],
                ours: 0,
            });
            held.len() - 1
        }
    };
    let h = &mut held[i];
    h.ours |= set & !before;
    for sig in signals_in(set) {
        h.count[sig as usize - 1] += 1;
    }
    Ok(())
}

/// Uncounts `set` in the calling OS thread, and unblocks the signals no
/// live `Signals` of the thread takes any more that [`hold`] blocked.
fn release(set: u64) {
    let tid = current_tid();
    let unblock = {
        let mut held = held();
        let Some(i) = held.iter().position(|h| h.tid == tid) else {
            return;
        };
        let h = &mut held[i];
        let mut free = 0;
        for sig in signals_in(set) {
            let n = &mut h.count[sig as usize - 1];
            *n = n.saturating_sub(1);
            if *n == 0 {
                free |= bit(sig);
            }
        }
        let unblock = free & h.ours;
        h.ours &= !unblock;
        if h.count.iter().all(|&n| n == 0) {
            held.swap_remove(i);
        }
        unblock
    };
    // With the lock released: a pending signal is delivered as the call
    // returns, and its handler (or the end of the process) runs here.
    if unblock != 0 {
        // It cannot fail: the set is valid, and so is `how`.
        let _ = sigmask(libc::SIG_UNBLOCK, unblock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_name_the_signal_and_its_number() {
        assert_eq!(Name(libc::SIGTERM).to_string(), "SIGTERM (15)");
        let rt = libc::SIGRTMIN() + 2;
        assert_eq!(Name(rt).to_string(), format!("SIGRTMIN+2 ({rt})"));
    }

    #[test]
    fn a_set_has_one_bit_per_signal() -> io::Result<()> {
        let set = set_of(&[libc::SIGHUP, libc::SIGTERM, libc::SIGHUP])?;
        assert_eq!(
            signals_in(set).collect::<Vec<_>>(),
            [libc::SIGHUP, libc::SIGTERM]
        );
        assert_eq!(signals_in(bit(64)).collect::<Vec<_>>(), [64]);
        Ok(())
    }
}

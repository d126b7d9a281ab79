//! `patch()`: existing blocking code runs cooperatively, unmodified.
//!
//! After [`patch()`], the blocking libc calls that std and third-party
//! crates make from a green context park only that green thread: the hub
//! runs the others meanwhile. This is eventlet's and gevent's
//! `monkey_patch`, done at the libc boundary:
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! green::patch();
//! let t = Instant::now();
//! let sleepers: Vec<_> = (0..100)
//!     .map(|_| green::spawn(|| std::thread::sleep(Duration::from_millis(100))))
//!     .collect();
//! for s in sleepers {
//!     s.wait();
//! }
//! // 100 std sleeps of 100 ms on one OS thread, at once.
//! assert!(t.elapsed() < Duration::from_secs(5));
//! ```
//!
//! # How
//! The crate defines functions with libc's names (`read`, `connect`,
//! `nanosleep`, `syscall`, ...). An executable's own definition wins over
//! libc's for every call made from inside the executable, and all Rust code
//! (std included) is linked into it. Each of these interposers first asks
//! whether patching is on and the caller is on a green context (a green
//! thread, or the root of an OS thread that has a hub); otherwise it calls
//! the real function ([`original`]). `patch()` refers to every interposer,
//! so none is dropped by the linker.
//!
//! What is hooked, what is not, and how eventlet's and gevent's patching
//! map onto this: `docs/patching.md`.
//!
//! # Cancellation
//! A green thread killed (or whose [`Timeout`](crate::Timeout) expires)
//! while parked inside a hooked call cannot unwind through the C frame of
//! that call. The call returns an error instead (`ECANCELED` for a kill,
//! `ETIMEDOUT` for a timeout; sleeps return early), and the unwind is
//! delivered at the thread's next green park point. A `futex` wait (a std
//! lock) keeps waiting: its caller would otherwise spin.

mod fds;
mod futex;
mod hooks;
pub use crate::sys::original;

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

/// Hook categories (bits of [`STATE`]).
pub(crate) const NET: u32 = 1;
pub(crate) const SLEEP: u32 = 2;
pub(crate) const SYNC: u32 = 4;
pub(crate) const DNS: u32 = 8;
pub(crate) const PROCESS: u32 = 16;
/// Regular-file reads and writes from green contexts go to the tpool.
pub(crate) const FILES: u32 = 32;
/// Sockets green made non-blocking may exist: calls from other threads on
/// them get blocking behaviour emulated. Set with `NET`, cleared last by
/// `unpatch`.
pub(crate) const EMULATE: u32 = 64;
const ALL: u32 = NET | SLEEP | SYNC | DNS | PROCESS;

/// The categories patched now; 0 when not patched. Every interposer loads
/// it first (relaxed).
pub(crate) static STATE: AtomicU32 = AtomicU32::new(0);

/// Makes blocking calls cooperative: every category of [`Builder`].
///
/// Call it first thing in `main`, before other threads start. From then
/// on, blocking calls made on a green context (by your code, std, or the
/// crates you link) park only that green thread. Calls from plain OS
/// threads (without a hub) behave as before. Calling it again is harmless.
///
/// # Panics
/// Panics where interposition is not available: outside Linux on x86-64
/// and AArch64, or in a binary where the interposers are not reached (see
/// [`Builder::apply`] for the error).
///
/// # Examples
/// ```
/// green::patch();
/// assert!(green::is_patched());
/// // 40 std sleeps of 50 ms on green threads overlap: far less than the
/// // 2 s they take one after another.
/// let t = std::time::Instant::now();
/// let sleepers: Vec<_> = (0..40)
///     .map(|_| green::spawn(|| std::thread::sleep(std::time::Duration::from_millis(50))))
///     .collect();
/// for s in sleepers {
///     s.wait();
/// }
/// assert!(t.elapsed() < std::time::Duration::from_millis(1500));
/// green::unpatch();
/// ```
pub fn patch() {
    if let Err(e) = Builder::all().apply() {
        panic!("green::patch: {e}");
    }
}

/// Undoes [`patch()`]: every interposer passes straight through again, and
/// sockets green made non-blocking get their blocking mode back.
///
/// Green threads parked inside a hooked call when this runs finish that
/// call the green way.
///
/// # Examples
/// ```
/// green::patch();
/// green::unpatch();
/// assert!(!green::is_patched());
/// ```
pub fn unpatch() {
    crate::coro::tls::set_default(false);
    // Green paths off first; emulation for the sockets still non-blocking
    // stays on until they are restored.
    STATE.fetch_and(EMULATE, Ordering::SeqCst);
    fds::restore_all();
    STATE.store(0, Ordering::SeqCst);
}

/// Whether [`patch()`] (or a [`Builder`]) is in effect, for any category.
///
/// # Examples
/// ```
/// assert!(!green::is_patched());
/// green::patch();
/// assert!(green::is_patched());
/// green::unpatch();
/// assert!(!green::is_patched());
/// ```
pub fn is_patched() -> bool {
    STATE.load(Ordering::Relaxed) & ALL != 0
}

/// Chooses which categories of blocking calls to patch, like eventlet's
/// `monkey_patch(socket=..., time=...)`.
///
/// | category | calls |
/// |---|---|
/// | `net` | `read`, `write`, `readv`, `writev`, `recv*`, `send*`, `accept`, `accept4`, `connect`, `socket`, `poll`, `ppoll`, `select`, `epoll_wait`, `epoll_pwait`, `sendfile`, `splice`; glibc's `_FORTIFY_SOURCE` variants `__read_chk`, `__recv_chk`, `__recvfrom_chk`, `__poll_chk`, `__ppoll_chk`; `fcntl`, `ioctl(FIONBIO)`, `setsockopt` timeouts, `close`, `dup*` bookkeeping |
/// | `sleep` | `nanosleep`, `clock_nanosleep`, `usleep`, `sleep`, `sched_yield` |
/// | `sync` | `syscall(SYS_futex)`: std's `Mutex`, `Condvar`, `RwLock`, `Once`, `mpsc`, `thread::park` |
/// | `dns` | `getaddrinfo`, run on the tpool |
/// | `process` | `waitpid`, `wait4`, `waitid`, waiting on a pidfd |
///
/// # Examples
/// ```
/// // Only sleeps: sockets keep blocking their OS thread.
/// green::patch::Builder::none().sleep(true).apply()?;
/// assert!(green::is_patched());
/// green::unpatch();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Builder {
    bits: u32,
    identity: bool,
}

impl Builder {
    /// Every category on; regular files pass through; every green thread
    /// gets an identity of its own where supported.
    pub fn all() -> Builder {
        Builder {
            bits: ALL,
            identity: true,
        }
    }

    /// Every category off; turn some on with the methods below. Thread
    /// identity stays on (see [`Builder::thread_identity`]).
    pub fn none() -> Builder {
        Builder {
            bits: 0,
            identity: true,
        }
    }

    /// Whether every green thread gets an identity of its own: its own
    /// `thread_local!`s, `std::thread::current()` and parker, errno, and
    /// what crates keep per thread (on by default).
    ///
    /// With it, code that tells threads apart works per green thread:
    /// std's `mpsc` and `thread::park` between green threads of one OS
    /// thread, crossbeam-channel, parking_lot, tokio's `block_on` inside
    /// a blocking client, rayon. Where it is not supported green threads
    /// share their OS thread's identity ([`thread_identity`] says which
    /// and why). A [`crate::Builder::thread_identity`] of a spawn wins over
    /// this.
    ///
    /// # Examples
    /// ```
    /// green::patch::Builder::all().thread_identity(false).apply()?;
    /// assert!(matches!(
    ///     green::patch::thread_identity(),
    ///     green::patch::IdentityMode::Shared { .. }
    /// ));
    /// green::unpatch();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn thread_identity(mut self, on: bool) -> Builder {
        self.identity = on;
        self
    }

    fn with(mut self, bit: u32, on: bool) -> Builder {
        if on {
            self.bits |= bit;
        } else {
            self.bits &= !bit;
        }
        self
    }

    /// Sockets, pipes, terminals and readiness waits.
    pub fn net(self, on: bool) -> Builder {
        self.with(NET, on)
    }

    /// Sleeps and `sched_yield`.
    pub fn sleep(self, on: bool) -> Builder {
        self.with(SLEEP, on)
    }

    /// `futex` waits: std's locks, condition variables, `Once`, channels
    /// and `thread::park`.
    pub fn sync(self, on: bool) -> Builder {
        self.with(SYNC, on)
    }

    /// `getaddrinfo` on the tpool.
    pub fn dns(self, on: bool) -> Builder {
        self.with(DNS, on)
    }

    /// Waiting for child processes.
    pub fn process(self, on: bool) -> Builder {
        self.with(PROCESS, on)
    }

    /// Reads and writes of regular files from green contexts run on the
    /// tpool (off by default: a page-cache read is faster in place than a
    /// trip to another thread). Needs `net`.
    pub fn files_to_tpool(self, on: bool) -> Builder {
        self.with(FILES, on)
    }

    /// Turns on the chosen categories (and off the others).
    ///
    /// # Errors
    /// `Unsupported` outside Linux on x86-64 or AArch64; `Other` if the
    /// interposers are not reached in this binary (a static binary, or one
    /// linked so that libc's definitions win).
    pub fn apply(self) -> io::Result<()> {
        if !cfg!(all(
            target_os = "linux",
            any(
                all(target_arch = "x86_64", target_pointer_width = "64"),
                target_arch = "aarch64"
            )
        )) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "green::patch supports Linux on x86-64 and AArch64 only",
            ));
        }
        hooks::link_all();
        if !hooks::reached() {
            return Err(io::Error::other(
                "the interposers are not reached: libc's definitions win in this binary \
                 (statically linked?)",
            ));
        }
        hooks::install_fork_handler();
        crate::hub::on_leaked_teardown(forget_closed_waiters);
        let mut bits = self.bits;
        if bits & NET != 0 {
            bits |= EMULATE;
        } else {
            bits &= !FILES;
        }
        crate::coro::tls::set_default(self.identity && crate::coro::tls::layout().is_ok());
        let old = STATE.swap(bits, Ordering::SeqCst);
        if old & EMULATE != 0 && bits & NET == 0 {
            STATE.fetch_or(EMULATE, Ordering::SeqCst);
            fds::restore_all();
            STATE.fetch_and(!EMULATE, Ordering::SeqCst);
        }
        if bits & SYNC != 0 {
            if let IdentityMode::Shared { reason } = thread_identity() {
                // Two green threads of a hub in std's thread::park would
                // spin unseen: report a hub held that long.
                crate::debug::watch_shared_identity(reason);
            }
        }
        Ok(())
    }
}

/// The identity green threads get: a thread of their own, or their OS
/// thread's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityMode {
    /// Each green thread has its own TLS block and thread pointer: its own
    /// `thread_local!`s, `std::thread::current()`, errno.
    PerGreenThread,
    /// Green threads share their OS thread's identity.
    Shared {
        /// Why: turned off, not patched, or not supported here (and why).
        reason: String,
    },
}

/// The identity that green threads spawned now get by default (a
/// [`crate::Builder::thread_identity`] of a spawn wins over it).
///
/// [`patch()`] turns per-green-thread identity on where it is supported:
/// Linux on x86-64 and AArch64 with glibc, whose thread layout green checks
/// at run time.
///
/// # Examples
/// ```
/// green::patch();
/// match green::patch::thread_identity() {
///     green::patch::IdentityMode::PerGreenThread => {}
///     green::patch::IdentityMode::Shared { reason } => eprintln!("shared: {reason}"),
/// }
/// green::unpatch();
/// ```
pub fn thread_identity() -> IdentityMode {
    if crate::coro::tls::default_on() {
        return IdentityMode::PerGreenThread;
    }
    let reason = match crate::coro::tls::layout() {
        Err(e) => format!("not supported here: {e}"),
        Ok(_) if is_patched() => "turned off by patch::Builder::thread_identity(false)".into(),
        Ok(_) => "not patched: patch() turns it on".into(),
    };
    IdentityMode::Shared { reason }
}

/// Whether green threads can have an identity of their own in this
/// process, and if not, why.
///
/// # Errors
/// The reason, where it is not supported: another architecture or C
/// library, or a glibc whose thread layout green does not recognise.
///
/// # Examples
/// ```
/// if let Err(why) = green::patch::thread_identity_supported() {
///     eprintln!("green threads share their OS thread's identity: {why}");
/// }
/// ```
pub fn thread_identity_supported() -> Result<(), String> {
    crate::coro::tls::layout()
        .map(|_| ())
        .map_err(str::to_string)
}

/// The interposers that have taken their green path at least once in this
/// process, by libc name: a way to check that patching is live.
///
/// # Examples
/// ```
/// green::patch();
/// green::spawn(|| std::thread::sleep(std::time::Duration::from_millis(1))).wait();
/// let seen = green::patch::hooks_seen();
/// // std sleeps with clock_nanosleep or nanosleep, depending on its version.
/// assert!(seen.contains(&"clock_nanosleep") || seen.contains(&"nanosleep"));
/// green::unpatch();
/// ```
pub fn hooks_seen() -> Vec<&'static str> {
    hooks::seen()
}

/// Every interposer this crate defines, by libc name.
pub fn hooked_functions() -> &'static [&'static str] {
    hooks::NAMES
}

/// Takes the green contexts of hubs that were torn down out of the futex
/// wait table (they were leaked parked in a futex wait).
pub(crate) fn forget_closed_waiters() {
    futex::forget_closed();
}

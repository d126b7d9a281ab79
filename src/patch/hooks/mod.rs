//! The interposers: functions with libc's names and signatures.
//!
//! # The mechanism
//!
//! An executable's own definition of a libc name wins over libc's for every
//! call made from inside the executable, std's included. Each interposer
//! here is such a definition (`#[no_mangle] extern "C"`), with libc's
//! signature. It asks one question first, the gate: *is this category
//! patched, and is the caller a green context that may park?*
//!
//! ```text
//!   read(fd, buf, n)                          (std, a C library, anyone)
//!     |
//!     +- state() & NET == 0, or the fd's kind   ---> original::read  (a tail
//!     |  says "pass" (fd_passes: two loads and       call: no frame of the
//!     |  a thread-local read)                        interposer stays open)
//!     |
//!     +- otherwise, a function of its own, not inlined:
//!          green context (green_hub)?  -> the green path: mark(H::read),
//!              then hub::io_loop / trampoline / tpool, inside shielded()
//!          plain thread on a socket green made non-blocking?
//!                                      -> blocking emulated (emulate)
//!          else                        -> original::read
//! ```
//!
//! [`STATE`] is loaded first (relaxed); with patching off every interposer
//! jumps to [`original`] at once. The hot ones decide "pass through" before
//! anything else and end in a tail call to libc, keeping no frame of their
//! own open across the system call; the rest of their work is in separate,
//! non-inlined functions.
//!
//! None ever unwinds: a kill or timeout that reaches a green wait inside
//! one is turned into an error return ([`shielded`]) and made pending
//! again for the thread's next park point.
//!
//! The real call is always [`original`]'s (libc's function, found with
//! `dlsym(RTLD_NEXT)`): calling the libc name would come back here. A
//! system call green makes for its own purposes is rustix's (`crate::sys`).
//!
//! # The link trap
//!
//! An object of a static library is linked only if something refers to it.
//! `hook_names!` lists every interposer; [`link_all`], called by
//! `patch()`, refers to each, and the [`H`] index records which took its
//! green path ([`mark`], [`seen`]). A release-mode test
//! (`tests/patch_live.rs`) drives each one and checks it was seen.
//!
//! # The files
//!
//! One family of calls per file, each glibc `_FORTIFY_SOURCE` variant
//! (`__read_chk`, `__poll_chk`, ...) beside its plain function:
//!
//! | file | calls |
//! |---|---|
//! | `data` | `read`, `write`, `readv`, `writev`, `recv*`, `send*`, `__read_chk`, `__recv_chk`, `__recvfrom_chk` |
//! | `socket` | `accept`, `accept4`, `connect`, `socket` |
//! | `copy` | `sendfile`, `sendfile64`, `splice` |
//! | `poll` | `poll`, `ppoll`, `select`, `epoll_wait`, `epoll_pwait`, `__poll_chk`, `__ppoll_chk` |
//! | `sleep` | `nanosleep`, `clock_nanosleep`, `usleep`, `sleep`, `sched_yield` |
//! | `dns` | `getaddrinfo` |
//! | `wait` | `waitpid`, `wait4`, `waitid` |
//! | `syscall` | `syscall`: `SYS_futex`, and `SYS_sendfile`/`SYS_splice` as `copy` |
//! | `bookkeeping` | `fcntl`, `ioctl`, `setsockopt`, `close`, `dup`, `dup2`, `dup3` |
//! | `thread` | `pthread_create`, `thrd_create`, `pthread_join`, `dlopen`, `fork`, `_Fork`, `set*id`, `setgroups` |
//!
//! `emulate` holds the blocking behaviour given to plain OS threads on
//! sockets green made non-blocking.

use std::io;
use std::os::fd::RawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicIsize, AtomicU64, Ordering};
use std::sync::Once;
use std::time::Duration;

use libc::{c_int, timespec};

mod bookkeeping;
mod copy;
mod data;
mod dns;
mod emulate;
mod poll;
mod sleep;
mod socket;
mod syscall;
mod thread;
mod wait;

use super::{fds, futex, EMULATE, FILES, NET, STATE};
use crate::hub::{self, Cancel, Hub, Interest};
use crate::sys::errno::{errno, set_errno};
use crate::sys::original;
use bookkeeping::{close, dup, dup2, dup3, fcntl, ioctl, setsockopt};
use copy::{sendfile, sendfile64, splice};
use data::{
    __read_chk, __recv_chk, __recvfrom_chk, read, readv, recv, recvfrom, recvmsg, send, sendmsg,
    sendto, write, writev,
};
use dns::getaddrinfo;
use poll::{__poll_chk, __ppoll_chk, epoll_pwait, epoll_wait, poll, ppoll, select};
use sleep::{clock_nanosleep, nanosleep, sched_yield, sleep, usleep};
use socket::{accept, accept4, connect, socket};
use syscall::syscall;
use thread::{
    _Fork, dlopen, fork, pthread_create, pthread_join, setegid, seteuid, setgid, setgroups,
    setregid, setresgid, setresuid, setreuid, setuid, thrd_create,
};
use wait::{wait4, waitid, waitpid};

/// A bit of [`STATE`] set only while [`reached`] probes.
const PROBE: u32 = 1 << 16;
/// Set by the `sched_yield` interposer when it sees [`PROBE`].
static PROBED: AtomicBool = AtomicBool::new(false);

/// Which interposers took their green path (bit = index in [`NAMES`]).
static SEEN: AtomicU64 = AtomicU64::new(0);

macro_rules! hook_names {
    ($($name:ident),* $(,)?) => {
        /// Every interposer, by libc name.
        pub(super) const NAMES: &[&str] = &[$(stringify!($name)),*];

        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Clone, Copy)]
        pub(super) enum H { $($name),* }

        /// Refers to every interposer, so that the linker keeps them all
        /// wherever `patch` is linked.
        pub(super) fn link_all() {
            std::hint::black_box([$($name as *const () as usize),*]);
        }
    };
}

hook_names!(
    read,
    write,
    readv,
    writev,
    recv,
    recvfrom,
    recvmsg,
    send,
    sendto,
    sendmsg,
    accept,
    accept4,
    connect,
    socket,
    poll,
    ppoll,
    select,
    epoll_wait,
    epoll_pwait,
    nanosleep,
    clock_nanosleep,
    usleep,
    sleep,
    sched_yield,
    getaddrinfo,
    waitpid,
    wait4,
    waitid,
    syscall,
    fcntl,
    ioctl,
    setsockopt,
    close,
    dup,
    dup2,
    dup3,
    sendfile,
    sendfile64,
    splice,
    __read_chk,
    __recv_chk,
    __recvfrom_chk,
    __poll_chk,
    __ppoll_chk,
    pthread_create,
    thrd_create,
    pthread_join,
    dlopen,
    fork,
    _Fork,
    setuid,
    setgid,
    seteuid,
    setegid,
    setreuid,
    setregid,
    setresuid,
    setresgid,
    setgroups,
);

/// Notes that hook `h` took its green path (a load, and one store ever).
#[inline]
pub(super) fn mark(h: H) {
    let bit = 1u64 << h as u32;
    if SEEN.load(Ordering::Relaxed) & bit == 0 {
        SEEN.fetch_or(bit, Ordering::Relaxed);
    }
}

pub(super) fn seen() -> Vec<&'static str> {
    let s = SEEN.load(Ordering::Relaxed);
    NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| s & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// Whether a libc call made from this crate reaches the interposer.
///
/// The answer is fixed when the binary is linked, so the probe runs once:
/// probes running at once (`patch()` called from several threads) would
/// reset each other's `PROBED` and `PROBE` bit.
pub(super) fn reached() -> bool {
    static REACHED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REACHED.get_or_init(|| {
        PROBED.store(false, Ordering::SeqCst);
        STATE.fetch_or(PROBE, Ordering::SeqCst);
        original::sched_yield_by_name();
        STATE.fetch_and(!PROBE, Ordering::SeqCst);
        PROBED.load(Ordering::SeqCst)
    })
}

/// In a child made by `fork`, the hub and its fds belong to the parent:
/// every interposer passes through there, and the futex wait table is
/// emptied.
pub(super) fn install_fork_handler() {
    static ONCE: Once = Once::new();
    extern "C" fn in_child() {
        // Sockets green made non-blocking keep their emulated blocking
        // mode; the parent's green waiters are not the child's.
        STATE.fetch_and(EMULATE, Ordering::SeqCst);
        futex::forget_all();
    }
    ONCE.call_once(|| {
        // glibc fails only when out of memory; that is not reported.
        // SAFETY: the handler runs in the child only, and does only what
        // is safe where the parent's other threads are gone: it clears
        // bits of an atomic, and `futex::forget_all` stores atomics and
        // abandons the wait table's lists as they are, without taking a
        // bucket lock (one may have been held by a thread that is not
        // there), allocating or freeing.
        let _ = unsafe { crate::sys::pthread::at_fork_child(in_child) };
    });
}

/// The patch state ([`STATE`]): the gate's first load, relaxed.
#[inline(always)]
pub(super) fn state() -> u32 {
    STATE.load(Ordering::Relaxed)
}

/// The gate: the hub to park on, if category `cat` is patched and the
/// caller is a green context that may park.
#[inline]
pub(super) fn green_hub(st: u32, cat: u32) -> Option<&'static Hub> {
    if st & cat == 0 {
        return None;
    }
    let h = hub::try_hub()?;
    // An unwinding context (a destructor, a panic message being written)
    // holds std's per-OS-thread panic state: it does not park.
    // A call made as the OS thread for a green thread with an identity
    // (inside `tls::under_os_tp`) must not park there either.
    (h.can_park_foreign() && !std::thread::panicking() && !crate::coro::tls::in_os_region())
        .then_some(h)
}

/// The errno of a green wait ended by a kill or timeout.
fn cancel_errno(c: Cancel) -> c_int {
    match c {
        Cancel::Kill => libc::ECANCELED,
        Cancel::Timeout(_) => libc::ETIMEDOUT,
    }
}

/// Runs a green wait from inside an interposer. A kill or timeout it
/// unwinds with is caught, made pending again (delivered at the context's
/// next park point, outside any C frame) and returned. Any other panic
/// cannot cross the C frame: it aborts, as it would on its own.
fn shielded<T>(h: &Hub, f: impl FnOnce() -> T) -> Result<T, Cancel> {
    match h.in_foreign(|| panic::catch_unwind(AssertUnwindSafe(f))) {
        Ok(v) => Ok(v),
        Err(p) => {
            let c = if p.is::<crate::Killed>() {
                Cancel::Kill
            } else if let Some(e) = p.downcast_ref::<crate::Elapsed>() {
                Cancel::Timeout(e.id())
            } else {
                let msg = b"green: a panic inside a patched libc call cannot unwind into its C caller; aborting\n";
                // SAFETY: fd 2 is only written to, for the duration of the
                // call; a closed stderr makes the write fail, which changes
                // nothing here.
                let stderr = unsafe { std::os::fd::BorrowedFd::borrow_raw(2) };
                let _ = crate::sys::io::write(stderr, msg);
                std::process::abort();
            };
            hub::end_cancel_unwind();
            h.defer_to_green_park(c);
            Err(c)
        }
    }
}

/// The errno for an error of a green wait or call: the OS error if there
/// is one; else a passed timeout is `EAGAIN` (what `SO_RCVTIMEO` gives),
/// and an fd closed while waited on is `EBADF`.
fn errno_of(e: &io::Error) -> c_int {
    e.raw_os_error().unwrap_or(match e.kind() {
        io::ErrorKind::TimedOut => libc::EAGAIN,
        io::ErrorKind::ConnectionAborted => libc::EBADF,
        _ => libc::EIO,
    })
}

/// The C return value of a shielded green call.
fn finish(r: Result<io::Result<isize>, Cancel>) -> isize {
    match r {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            set_errno(errno_of(&e));
            -1
        }
        Err(c) => {
            set_errno(cancel_errno(c));
            -1
        }
    }
}

/// A C return value as a result: negative is the error in errno.
fn cvt(n: isize) -> io::Result<isize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n)
    }
}

/// The `poll` events of `interest`.
fn poll_events(interest: Interest) -> libc::c_short {
    match interest {
        Interest::Read => libc::POLLIN,
        Interest::Write => libc::POLLOUT,
    }
}

/// Whether a data call on `fd` passes straight through: decided before
/// the call is made, so that the interposer ends in a jump to libc's
/// function and keeps no frame of its own open across the system call.
/// `false` sends the call to [`fd_call_patched`](data::fd_call_patched), which decides in full.
///
/// A plain OS thread pays two loads and a thread-local read; a green one
/// the same on an fd whose kind is known.
#[inline(always)]
fn fd_passes(st: u32, fd: RawFd) -> bool {
    if st & (NET | EMULATE) == 0 {
        return true;
    }
    let b = fds::bits(fd);
    if b & fds::OURS != 0 {
        // A green caller parks on it; another gets blocking emulated.
        return false;
    }
    let green_waits = b == 0 || b & fds::POLL_FIRST != 0 || (b & fds::FILE != 0 && st & FILES != 0);
    !green_waits || !maybe_green(st)
}

/// Whether the caller may be a green context that parks in a net call
/// (the cheap part of [`green_hub`]).
#[inline(always)]
fn maybe_green(st: u32) -> bool {
    st & NET != 0 && hub::try_hub().is_some_and(|h| h.can_park_foreign())
}

/// Runs `f` (a blocking libc call) on the tpool and returns its result,
/// with its errno. A kill or timeout that arrives meanwhile does not throw
/// the result away: `tpool::execute` waits for the call, which has
/// happened, so its result is returned and the cancellation is kept for the
/// next park point.
pub(super) fn tpool_call(hub: &Hub, f: impl FnOnce() -> isize + Send) -> isize {
    let out = AtomicIsize::new(0);
    let err = AtomicI32::new(0);
    let done = AtomicBool::new(false);
    let _ = shielded(hub, || {
        crate::tpool::execute(|| {
            let n = f();
            err.store(errno(), Ordering::Relaxed);
            out.store(n, Ordering::Relaxed);
            done.store(true, Ordering::Release);
        })
    });
    if !done.load(Ordering::Acquire) {
        set_errno(libc::ECANCELED);
        return -1;
    }
    let n = out.load(Ordering::Relaxed);
    if n < 0 {
        set_errno(err.load(Ordering::Relaxed));
    }
    n
}

/// A C `timespec` as a duration; `None` if it is not a valid one.
fn ts_duration(ts: &timespec) -> Option<Duration> {
    (ts.tv_sec >= 0 && (0..1_000_000_000).contains(&ts.tv_nsec))
        .then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// A pointer to a heap copy that a tpool job writes through while its
/// caller waits for it.
pub(super) struct SendPtr<T>(pub(super) *mut T);
// SAFETY: see above: one writer, and the owner waits for it.
unsafe impl<T> Send for SendPtr<T> {}

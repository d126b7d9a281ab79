//! The interposers: functions with libc's names and signatures.
//!
//! Each loads [`STATE`] first; with patching off it jumps to [`original`]
//! at once. Otherwise it takes its green path when the caller is on a
//! green context, and passes through (emulating blocking mode on sockets
//! green made non-blocking) when it is not. The hot ones decide "pass
//! through" before anything else and end in a tail call to libc, keeping no
//! frame of their own open across the system call; the rest of their work
//! is in separate, non-inlined functions. None ever unwinds: a kill or
//! timeout that reaches a green wait inside one is turned into an error
//! return ([`shielded`]) and made pending again for the thread's next park
//! point.

use std::io;
use std::os::fd::RawFd;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicIsize, AtomicU32, AtomicU64, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use libc::{
    addrinfo, c_char, c_int, c_long, c_uint, c_ulong, c_void, clockid_t, epoll_event, fd_set, id_t,
    idtype_t, iovec, loff_t, msghdr, nfds_t, off64_t, off_t, pid_t, pollfd, rusage, siginfo_t,
    sigset_t, size_t, sockaddr, socklen_t, ssize_t, timespec, timeval, useconds_t,
};

mod thread;

use super::{fds, futex, DNS, EMULATE, FILES, NET, PROCESS, SLEEP, STATE, SYNC};
use crate::hub::{self, io_loop, trampoline, Cancel, Hub, Interest};
use crate::sys::original;
use thread::{
    _Fork, dlopen, fork, pthread_create, pthread_join, setegid, seteuid, setgid, setgroups,
    setregid, setresgid, setresuid, setreuid, setuid, thrd_create,
};

/// A bit of [`STATE`] set only while [`reached`] probes.
const PROBE: u32 = 1 << 16;
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
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
        STATE.fetch_and(!PROBE, Ordering::SeqCst);
        PROBED.load(Ordering::SeqCst)
    })
}

/// In a child made by `fork`, the hub and its fds belong to the parent:
/// every interposer passes through there.
pub(super) fn install_fork_handler() {
    static ONCE: Once = Once::new();
    extern "C" fn in_child() {
        // Sockets green made non-blocking keep their emulated blocking
        // mode; the parent's green waiters are not the child's.
        STATE.fetch_and(EMULATE, Ordering::SeqCst);
        futex::forget_all();
    }
    ONCE.call_once(|| {
        // SAFETY: registers a handler that only stores an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
    });
}

#[inline(always)]
pub(super) fn state() -> u32 {
    STATE.load(Ordering::Relaxed)
}

/// The hub to park on, if category `cat` is patched and the caller is a
/// green context that may park.
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

fn errno() -> c_int {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn set_errno(e: c_int) {
    // SAFETY: the calling thread's errno.
    unsafe { *libc::__errno_location() = e };
}

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
                // SAFETY: a write of a static buffer to stderr.
                unsafe { original::write(2, msg.as_ptr().cast(), msg.len()) };
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

fn cvt(n: isize) -> io::Result<isize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n)
    }
}

fn poll_events(interest: Interest) -> libc::c_short {
    match interest {
        Interest::Read => libc::POLLIN,
        Interest::Write => libc::POLLOUT,
    }
}

/// Whether a data call on `fd` passes straight through: decided before
/// the call is made, so that the interposer ends in a jump to libc's
/// function and keeps no frame of its own open across the system call.
/// `false` sends the call to [`fd_call_patched`], which decides in full.
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

/// Defines data interposers. For each, `$call` is the real call with the
/// caller's arguments, where `$max` bounds the byte count (the green path
/// caps writes to a blocking pipe at `PIPE_BUF`). When [`fd_passes`] (or
/// `$pass`, for a call that asked not to block), the interposer makes
/// `$call` as a tail call; otherwise a function of its own hands it to
/// [`fd_call_patched`]. `$len` is the buffer size of a plain read, for the
/// readiness cache; `None` where a short result says nothing (writes,
/// peeks, messages). `waitall`, if given, is tried first off the fast path:
/// `Some` result if it made the whole call (a receive with `MSG_WAITALL`).
///
/// The body lives in a module of the interposer's name, as `call(h, ...)`,
/// `h` being the name its green path is recorded under: glibc's fortified
/// variants make the same call under their own name.
macro_rules! fd_hooks {
    ($(
        fn $name:ident($fd:ident: $fdty:ty $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty {
            $interest:ident, len: $len:expr, pass: $pass:expr, |$max:ident| $call:expr
            $(, waitall: |$h:ident| $waitall:expr)? $(,)?
        }
    )*) => {$(
        #[doc = concat!("# Safety\nlibc's `", stringify!($name), "`.")]
        #[no_mangle]
        pub unsafe extern "C" fn $name($fd: $fdty $(, $arg: $ty)*) -> $ret {
            // SAFETY: the caller's arguments.
            unsafe { $name::call(H::$name, $fd $(, $arg)*) }
        }

        #[doc = concat!("The body of the `", stringify!($name), "` interposer.")]
        mod $name {
            use super::*;

            /// The call, its green path recorded as `h`'s.
            ///
            /// # Safety
            #[doc = concat!("libc's `", stringify!($name), "`.")]
            #[inline(always)]
            pub(super) unsafe fn call(h: H, $fd: $fdty $(, $arg: $ty)*) -> $ret {
                if $pass || fd_passes(state(), $fd) {
                    let $max = usize::MAX;
                    // SAFETY: the caller's arguments, unchanged.
                    return unsafe { $call };
                }
                // SAFETY: the caller's arguments.
                unsafe { patched(h, $fd $(, $arg)*) }
            }

            /// The call when it does not pass straight through.
            ///
            /// # Safety
            #[doc = concat!("libc's `", stringify!($name), "`.")]
            #[inline(never)]
            unsafe fn patched(h: H, $fd: $fdty $(, $arg: $ty)*) -> $ret {
                $(
                    let $h = h;
                    // SAFETY: the caller's arguments.
                    if let Some(n) = unsafe { $waitall } {
                        return n as $ret;
                    }
                )?
                // SAFETY: the caller's arguments; `$max` only shortens a
                // buffer.
                let mut op = |$max: usize| unsafe { $call } as isize;
                let (interest, len) = (Interest::$interest, $len);
                fd_call_patched(state(), h, $fd, interest, len, &mut op) as $ret
            }
        }
    )*};
}

/// A data call on `fd` that does not simply pass through (`op` makes the
/// real call, given a cap on its byte count).
#[inline(never)]
fn fd_call_patched(
    st: u32,
    h: H,
    fd: RawFd,
    interest: Interest,
    len: Option<usize>,
    op: &mut dyn FnMut(usize) -> isize,
) -> isize {
    let Some(hub) = green_hub(st, NET) else {
        if st & EMULATE != 0 {
            let b = fds::bits(fd);
            if b & fds::OURS != 0 {
                return emulate(fd, interest, unsignalled(b, interest), &mut || {
                    op(usize::MAX)
                });
            }
        }
        return op(usize::MAX);
    };
    if interest == Interest::Write && (fd == 1 || fd == 2) {
        // std writes stdout and stderr holding a lock owned by the OS
        // thread: a green thread parked there would let the others of its
        // hub into that lock as its owner.
        return op(usize::MAX);
    }
    let b = fds::classify(fd);
    if b & fds::OURS != 0 {
        mark(h);
        let timeout = fds::timeout(fd, interest);
        if unsignalled(b, interest) {
            return finish(shielded(hub, || {
                hub::io_loop_unsignalled(fd, interest, timeout, || cvt(op(usize::MAX)))
            }));
        }
        let tcp = b & fds::TCP != 0;
        let drained =
            |n: &isize| tcp && len.is_some_and(|l| crate::io::fdio::short_read(*n as usize, l));
        return finish(shielded(hub, || {
            io_loop(fd, interest, timeout, || cvt(op(usize::MAX)), drained)
        }));
    }
    if b & fds::POLL_FIRST != 0 {
        mark(h);
        // Ready by the time the call is made: another reader of the pipe
        // may have taken what woke this one.
        let events = poll_events(interest);
        let wait = || -> io::Result<()> {
            loop {
                trampoline(fd, interest, None)?;
                if hub::poll_now(fd, events)? != 0 {
                    return Ok(());
                }
            }
        };
        match shielded(hub, wait) {
            Err(c) => {
                set_errno(cancel_errno(c));
                return -1;
            }
            Ok(Err(e))
                if e.raw_os_error() == Some(libc::EPERM)
                    || e.kind() == io::ErrorKind::InvalidInput =>
            {
                // Not pollable (/dev/null and the like): never waits,
                // and takes the whole buffer.
                fds::set(fd, fds::KNOWN | fds::FILE, (0, 0));
                return op(usize::MAX);
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionAborted => {
                set_errno(libc::EBADF);
                return -1;
            }
            Ok(_) => {}
        }
        // A writable pipe takes PIPE_BUF bytes without blocking.
        return op(match interest {
            Interest::Write => libc::PIPE_BUF,
            Interest::Read => usize::MAX,
        });
    }
    if b & fds::FILE != 0 && st & FILES != 0 {
        mark(h);
        return on_tpool(hub, &mut || op(usize::MAX));
    }
    op(usize::MAX)
}

/// Whether an `EAGAIN` of a call for `interest` on a socket with bits `b`
/// may come with no readiness edge to follow: a send on a Unix datagram
/// socket, refused because the *receiver's* queue is full. Nothing on the
/// sender announces room there (an unconnected sender even stays
/// writable), so the wait between tries is a growing delay
/// ([`hub::io_loop_unsignalled`]).
fn unsignalled(b: u32, interest: Interest) -> bool {
    interest == Interest::Write && b & fds::UNIX_DGRAM != 0
}

/// Runs a file call on the tpool, carrying its errno back; in place on a
/// shared stack, whose buffers cannot be lent to another thread.
fn on_tpool(hub: &Hub, op: &mut dyn FnMut() -> isize) -> isize {
    if hub.on_shared_stack() {
        return op();
    }
    struct Job<'a>(&'a mut dyn FnMut() -> isize);
    // SAFETY: the call's pointers stay valid and in place: `tpool::execute`
    // returns (or unwinds) only after the job has run, and the caller's
    // stack is its own (not shared).
    unsafe impl Send for Job<'_> {}
    let job = Job(op);
    tpool_call(hub, move || {
        let job = job;
        (job.0)()
    })
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

/// Blocking behaviour for a caller that is not green, on a socket green
/// made non-blocking: retry after a real `poll`, honouring the socket's
/// timeout as the kernel would. `unsignalled`: the `EAGAIN` has no
/// readiness edge to follow ([`unsignalled`]), so the tries are spaced by
/// the growing delay of [`hub::io_loop_unsignalled`].
fn emulate(
    fd: RawFd,
    interest: Interest,
    unsignalled: bool,
    op: &mut dyn FnMut() -> isize,
) -> isize {
    let deadline = fds::deadline(fd, interest);
    emulate_until(fd, interest, unsignalled, deadline, op)
}

/// [`emulate`] with the deadline given.
fn emulate_until(
    fd: RawFd,
    interest: Interest,
    unsignalled: bool,
    deadline: Option<Instant>,
    op: &mut dyn FnMut() -> isize,
) -> isize {
    let events = poll_events(interest);
    let mut backoff = unsignalled.then(hub::Backoff::new);
    loop {
        let n = op();
        if n >= 0 || errno() != libc::EAGAIN {
            return n;
        }
        let more = match &mut backoff {
            None => os_wait(fd, events, deadline),
            Some(b) => os_pause(fd, events, b.next_delay(), deadline),
        };
        if !more {
            set_errno(libc::EAGAIN);
            return -1;
        }
    }
}

/// Blocks the OS thread for `delay` at most (less if `deadline` comes
/// first): in a real `poll` if `fd` lacks `events` now, else in a sleep,
/// since a ready fd raises nothing to wait for. False if `deadline` has
/// passed.
fn os_pause(fd: RawFd, events: libc::c_short, delay: Duration, deadline: Option<Instant>) -> bool {
    let mut wait = delay;
    if let Some(d) = deadline {
        let left = d.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        wait = wait.min(left);
    }
    let mut p = pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    if unsafe { original::poll(&mut p, 1, 0) } == 0 {
        let ms = poll_ms(wait);
        // SAFETY: as above; an error is left for the retried call to report.
        unsafe { original::poll(&mut p, 1, ms) };
    } else {
        let ts = timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as c_long,
        };
        // SAFETY: a valid timespec; no remainder is asked for.
        unsafe { original::nanosleep(&ts, std::ptr::null_mut()) };
    }
    true
}

/// `d` as a `poll` timeout: milliseconds, rounded up.
fn poll_ms(d: Duration) -> c_int {
    d.as_nanos().div_ceil(1_000_000).min(c_int::MAX as u128) as c_int
}

/// Blocks the OS thread in a real `poll` until `fd` has `events` or
/// `deadline` passes (false).
fn os_wait(fd: RawFd, events: libc::c_short, deadline: Option<Instant>) -> bool {
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                poll_ms(left)
            }
        };
        let mut p = pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { original::poll(&mut p, 1, ms) };
        if rc > 0 {
            return true;
        }
        if rc < 0 && errno() != libc::EINTR {
            // The call itself will report the fd's error.
            return true;
        }
    }
}

/// The summed length of an iovec array (for the readiness cache), or
/// `None` if it cannot be trusted.
///
/// # Safety
/// `iov` points to `cnt` iovecs.
unsafe fn iov_total(iov: *const iovec, cnt: c_int) -> Option<usize> {
    if iov.is_null() || !(0..=libc::UIO_MAXIOV).contains(&cnt) {
        return None;
    }
    // SAFETY: the caller's contract.
    let v = unsafe { std::slice::from_raw_parts(iov, cnt as usize) };
    Some(v.iter().map(|i| i.iov_len).sum())
}

// ---- sockets, pipes and other fds ---------------------------------------

/// A call with `MSG_DONTWAIT` asked not to block: it passes through.
#[inline(always)]
fn dontwait(flags: c_int) -> bool {
    // An error-queue read never blocks either.
    flags & (libc::MSG_DONTWAIT | libc::MSG_ERRQUEUE) != 0
}

/// The buffer length of a receive for the readiness cache, if a short
/// result means the socket was drained.
fn recv_len(len: size_t, flags: c_int) -> Option<usize> {
    (flags & (libc::MSG_PEEK | libc::MSG_OOB | libc::MSG_WAITALL) == 0).then_some(len)
}

fd_hooks! {
    fn read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t {
        Read, len: Some(count), pass: false, |_max| original::read(fd, buf, count)
    }
    fn write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t {
        Write, len: None, pass: false, |max| original::write(fd, buf, count.min(max))
    }
    fn readv(fd: c_int, iov: *const iovec, iovcnt: c_int) -> ssize_t {
        // SAFETY (the length): the caller's iovecs.
        Read, len: unsafe { iov_total(iov, iovcnt) }, pass: false,
        |_max| original::readv(fd, iov, iovcnt)
    }
    fn writev(fd: c_int, iov: *const iovec, iovcnt: c_int) -> ssize_t {
        Write, len: None, pass: false, |_max| original::writev(fd, iov, iovcnt)
    }
    fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t {
        Read, len: recv_len(len, flags), pass: dontwait(flags),
        |_max| original::recv(fd, buf, len, flags),
        waitall: |h| recvfrom_waitall(h, fd, buf, len, flags, null_mut(), null_mut())
    }
    fn recvfrom(
        fd: c_int,
        buf: *mut c_void,
        len: size_t,
        flags: c_int,
        addr: *mut sockaddr,
        addrlen: *mut socklen_t,
    ) -> ssize_t {
        Read, len: recv_len(len, flags), pass: dontwait(flags),
        |_max| original::recvfrom(fd, buf, len, flags, addr, addrlen),
        waitall: |h| recvfrom_waitall(h, fd, buf, len, flags, addr, addrlen)
    }
    fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
        Read, len: None, pass: dontwait(flags), |_max| original::recvmsg(fd, msg, flags),
        waitall: |h| recvmsg_waitall(h, fd, msg, flags)
    }
    fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t {
        Write, len: None, pass: dontwait(flags), |_max| original::send(fd, buf, len, flags)
    }
    fn sendto(
        fd: c_int,
        buf: *const c_void,
        len: size_t,
        flags: c_int,
        addr: *const sockaddr,
        addrlen: socklen_t,
    ) -> ssize_t {
        Write, len: None, pass: dontwait(flags),
        |_max| original::sendto(fd, buf, len, flags, addr, addrlen)
    }
    fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
        Write, len: None, pass: dontwait(flags), |_max| original::sendmsg(fd, msg, flags)
    }
}

/// One real receive of a `MSG_WAITALL` loop: given the bytes received so
/// far, it receives into the rest of the buffer and returns the count, and
/// whether the loop ends with it (ancillary data came).
type Part<'a> = &'a mut dyn FnMut(usize) -> (isize, bool);

/// A receive with `MSG_WAITALL` on a stream socket green made non-blocking,
/// where each real call returns only what is there: the call is made again
/// for the rest (`part`) until `want` bytes have come, the peer shuts down,
/// an error comes, or the socket's `SO_RCVTIMEO` passes (one deadline for
/// the whole call, as the kernel keeps it). Bytes received before an error,
/// the timeout or a kill are returned, as the kernel returns them. A green
/// caller parks between the calls; another blocks as in [`emulate`].
///
/// `None` where the call is made as usual: no `MSG_WAITALL`, a peek or
/// urgent data (each call would return the same bytes), an empty buffer, a
/// caller that is neither green nor emulated, or an fd that is not a stream
/// socket green made non-blocking (datagram sockets ignore the flag).
fn waitall_call(h: H, fd: RawFd, flags: c_int, want: usize, part: Part<'_>) -> Option<isize> {
    if flags & (libc::MSG_WAITALL | libc::MSG_PEEK | libc::MSG_OOB) != libc::MSG_WAITALL
        || want == 0
    {
        return None;
    }
    let st = state();
    let hub = green_hub(st, NET);
    let b = match hub {
        Some(_) => fds::classify(fd),
        None if st & EMULATE != 0 => fds::bits(fd),
        None => 0,
    };
    if b & fds::OURS == 0 || b & fds::STREAM == 0 {
        return None;
    }
    let deadline = fds::deadline(fd, Interest::Read);
    let mut done = 0usize;
    let Some(hub) = hub else {
        while done < want {
            let mut last = false;
            let n = emulate_until(fd, Interest::Read, false, deadline, &mut || {
                let (n, l) = part(done);
                last = l;
                n
            });
            if n <= 0 {
                return Some(if done > 0 { done as isize } else { n });
            }
            done += n as usize;
            if last {
                break;
            }
        }
        return Some(done as isize);
    };
    mark(h);
    let r = shielded(hub, || -> io::Result<()> {
        while done < want {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let op = || {
                let (n, last) = part(done);
                cvt(n).map(|n| (n as usize, last))
            };
            let (n, last) = io_loop(fd, Interest::Read, left, op, |_| false)?;
            done += n;
            if n == 0 || last {
                break;
            }
        }
        Ok(())
    });
    Some(if done > 0 {
        done as isize
    } else {
        finish(r.map(|r| r.map(|()| 0)))
    })
}

/// [`waitall_call`] for `recv` and `recvfrom`. The sender's address is
/// asked for until the first bytes come: it is theirs, as the kernel
/// reports it.
///
/// # Safety
/// The arguments of a `recvfrom` call.
unsafe fn recvfrom_waitall(
    h: H,
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> Option<isize> {
    waitall_call(h, fd, flags, len, &mut |done| {
        let (a, al) = if done == 0 {
            (addr, addrlen)
        } else {
            (null_mut(), null_mut())
        };
        // SAFETY: the caller's buffer past the `done` < `len` bytes filled.
        let n = unsafe {
            original::recvfrom(
                fd,
                buf.cast::<u8>().add(done).cast(),
                len - done,
                flags,
                a,
                al,
            )
        };
        (n, false)
    })
}

/// [`waitall_call`] for `recvmsg`. The first call gets the caller's
/// `msghdr`; the next ones a copy whose iovecs start past the bytes
/// received, without the name (that of the first bytes' sender is kept),
/// and with the caller's control buffer. The caller's header changes only
/// where `recvmsg` itself writes it: `msg_namelen` (first call),
/// `msg_controllen` (the call that brings ancillary data, which ends the
/// loop, since what comes after may be another sender's) and `msg_flags`
/// (those of every call).
///
/// # Safety
/// The arguments of a `recvmsg` call.
unsafe fn recvmsg_waitall(h: H, fd: c_int, msg: *mut msghdr, flags: c_int) -> Option<isize> {
    if msg.is_null() || flags & libc::MSG_WAITALL == 0 {
        return None;
    }
    // SAFETY: the caller's header, copied.
    let hdr = unsafe { std::ptr::read(msg) };
    let cnt = c_int::try_from(hdr.msg_iovlen).ok()?;
    // SAFETY: the caller's iovecs.
    let want = unsafe { iov_total(hdr.msg_iov, cnt) }?;
    let iovs: &[iovec] = if cnt == 0 {
        &[]
    } else {
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts(hdr.msg_iov, cnt as usize) }
    };
    let mut rest: Vec<iovec> = Vec::with_capacity(iovs.len());
    let ancillary = |m: &msghdr| m.msg_controllen > 0 || m.msg_flags & libc::MSG_CTRUNC != 0;
    waitall_call(h, fd, flags, want, &mut |done| {
        if done == 0 {
            // SAFETY: the caller's arguments.
            let n = unsafe { original::recvmsg(fd, msg, flags) };
            // SAFETY: the caller's header, written by the call.
            return (n, n > 0 && ancillary(unsafe { &*msg }));
        }
        rest.clear();
        let mut skip = done;
        for v in iovs {
            if skip >= v.iov_len {
                skip -= v.iov_len;
                continue;
            }
            rest.push(iovec {
                iov_base: v.iov_base.cast::<u8>().wrapping_add(skip).cast(),
                iov_len: v.iov_len - skip,
            });
            skip = 0;
        }
        // SAFETY: all-zero bytes are a valid msghdr (no name, no iovecs).
        let mut m: msghdr = unsafe { std::mem::zeroed() };
        m.msg_iov = rest.as_mut_ptr();
        m.msg_iovlen = rest.len() as _;
        m.msg_control = hdr.msg_control;
        m.msg_controllen = hdr.msg_controllen;
        // SAFETY: the caller's buffers past the bytes received, and its
        // control buffer.
        let n = unsafe { original::recvmsg(fd, &mut m, flags) };
        if n < 0 {
            return (n, false);
        }
        let last = ancillary(&m);
        // SAFETY: the caller's header.
        unsafe {
            if last {
                (*msg).msg_controllen = m.msg_controllen;
            }
            (*msg).msg_flags |= m.msg_flags;
        }
        (n, last)
    })
}

/// `accept` and `accept4`: a green caller on a socket green manages parks
/// until a connection arrives; the new socket is made non-blocking
/// underneath and remembered in the mode the caller asked for.
fn accept_call(h: H, fd: RawFd, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int {
    // SAFETY: the caller's arguments; only the flags may gain SOCK_NONBLOCK.
    let real4 = |f: c_int| unsafe { original::accept4(fd, addr, len, f) };
    let st = state();
    if let Some(hub) = green_hub(st, NET) {
        let b = fds::classify(fd);
        if b & fds::OURS != 0 {
            mark(h);
            let timeout = fds::timeout(fd, Interest::Read);
            let op = || cvt(real4(flags | libc::SOCK_NONBLOCK) as isize);
            let n = finish(shielded(hub, || {
                io_loop(fd, Interest::Read, timeout, op, |_| false)
            })) as c_int;
            if n >= 0 {
                let mode = if flags & libc::SOCK_NONBLOCK != 0 {
                    fds::USER_NB
                } else {
                    fds::OURS
                };
                fds::set(n, fds::KNOWN | mode | (b & fds::KIND), fds::timeouts(fd));
            }
            return n;
        }
    } else if st & EMULATE != 0 && fds::bits(fd) & fds::OURS != 0 {
        let mut op = || real4(flags) as isize;
        let n = emulate(fd, Interest::Read, false, &mut op) as c_int;
        if n >= 0 {
            fds::forget(n);
        }
        return n;
    }
    let n = if matches!(h, H::accept) {
        // SAFETY: the caller's arguments.
        unsafe { original::accept(fd, addr, len) }
    } else {
        real4(flags)
    };
    if n >= 0 && st != 0 {
        fds::forget(n);
    }
    n
}

/// # Safety
/// libc's `accept`.
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    accept_call(H::accept, fd, addr, len, 0)
}

/// # Safety
/// libc's `accept4`.
#[no_mangle]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    accept_call(H::accept4, fd, addr, len, flags)
}

/// Returns 0, or -1 with errno set to the socket's pending error.
fn connect_result(fd: RawFd) -> c_int {
    let err = crate::net::sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR)
        .unwrap_or_else(|e| e.raw_os_error().unwrap_or(libc::EIO));
    match err {
        0 => 0,
        e => {
            set_errno(e);
            -1
        }
    }
}

/// Whether `addr` is an `AF_UNIX` address.
///
/// # Safety
/// `addr` is null or points to `len` readable bytes.
unsafe fn is_unix(addr: *const sockaddr, len: socklen_t) -> bool {
    !addr.is_null()
        && len as usize >= std::mem::size_of::<libc::sa_family_t>()
        // SAFETY: the caller's contract; the family comes first.
        && unsafe { std::ptr::read_unaligned(addr.cast::<libc::sa_family_t>()) }
            == libc::AF_UNIX as libc::sa_family_t
}

/// A Unix stream `connect` that found the listener's backlog full: the
/// kernel gives a non-blocking socket `EAGAIN` and announces no room, so
/// the call is made again after a growing delay
/// ([`hub::io_loop_unsignalled`]) until it connects, fails otherwise, or
/// `SO_SNDTIMEO` passes (`EAGAIN`, as the kernel's blocking connect
/// reports it).
fn connect_unix_green(hub: &Hub, fd: RawFd, op: &dyn Fn() -> c_int) -> c_int {
    let timeout = fds::timeout(fd, Interest::Write);
    let retry = || loop {
        if op() == 0 {
            return Ok(0);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    };
    finish(shielded(hub, || {
        hub::io_loop_unsignalled(fd, Interest::Write, timeout, retry)
    })) as c_int
}

/// # Safety
/// libc's `connect`.
#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: the caller's arguments, unchanged.
    let op = || unsafe { original::connect(fd, addr, len) };
    let st = state();
    if st == 0 {
        return op();
    }
    if let Some(hub) = green_hub(st, NET) {
        if fds::classify(fd) & fds::OURS != 0 {
            mark(H::connect);
            if op() == 0 {
                return 0;
            }
            match errno() {
                libc::EINPROGRESS => {}
                // SAFETY: the caller's address.
                libc::EAGAIN if unsafe { is_unix(addr, len) } => {
                    return connect_unix_green(hub, fd, &op);
                }
                _ => return -1,
            }
            let timeout = fds::timeout(fd, Interest::Write);
            return match shielded(hub, || trampoline(fd, Interest::Write, timeout)) {
                Ok(Ok(())) => connect_result(fd),
                Ok(Err(e)) => {
                    // A passed SO_SNDTIMEO leaves the connect in progress,
                    // as the kernel's blocking connect reports it.
                    let e = if e.raw_os_error().is_none() && e.kind() == io::ErrorKind::TimedOut {
                        libc::EINPROGRESS
                    } else {
                        errno_of(&e)
                    };
                    set_errno(e);
                    -1
                }
                Err(c) => {
                    set_errno(cancel_errno(c));
                    -1
                }
            };
        }
    } else if st & EMULATE != 0 && fds::bits(fd) & fds::OURS != 0 {
        if op() == 0 {
            return 0;
        }
        match errno() {
            libc::EINPROGRESS => {}
            // SAFETY: the caller's address.
            libc::EAGAIN if unsafe { is_unix(addr, len) } => {
                // As the green path's, with the OS thread asleep between.
                return emulate(fd, Interest::Write, true, &mut || op() as isize) as c_int;
            }
            _ => return -1,
        }
        let deadline = fds::deadline(fd, Interest::Write);
        if !os_wait(fd, libc::POLLOUT, deadline) {
            set_errno(libc::EINPROGRESS);
            return -1;
        }
        return connect_result(fd);
    }
    op()
}

/// # Safety
/// libc's `socket`.
#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    let st = state();
    if st == 0 {
        // SAFETY: the caller's arguments.
        return unsafe { original::socket(domain, ty, protocol) };
    }
    if green_hub(st, NET).is_some() && ty & libc::SOCK_NONBLOCK == 0 {
        mark(H::socket);
        // SAFETY: the caller's arguments plus SOCK_NONBLOCK.
        let fd = unsafe { original::socket(domain, ty | libc::SOCK_NONBLOCK, protocol) };
        if fd >= 0 {
            fds::set(
                fd,
                fds::KNOWN | fds::OURS | fds::kind_of(domain, ty),
                (0, 0),
            );
        }
        return fd;
    }
    // SAFETY: the caller's arguments.
    let fd = unsafe { original::socket(domain, ty, protocol) };
    if fd >= 0 {
        fds::forget(fd);
    }
    fd
}

// ---- copies between fds ----------------------------------------------------

/// A copy made in the kernel, from one fd to another.
#[derive(Clone, Copy)]
enum Bulk {
    /// `sendfile`: from a file to any fd.
    Sendfile,
    /// `splice`: to or from a pipe.
    Splice,
}

/// The fd a copy from `fd_in` to `fd_out` waits on, and for what: a
/// `sendfile` waits like a write to `fd_out`; a `splice` like a write to
/// `fd_out` if that is a socket green manages, else like a read from
/// `fd_in`.
#[inline(always)]
fn copy_wait(bulk: Bulk, fd_in: RawFd, fd_out: RawFd) -> (RawFd, Interest) {
    match bulk {
        Bulk::Splice if fds::bits(fd_out) & fds::OURS == 0 => (fd_in, Interest::Read),
        _ => (fd_out, Interest::Write),
    }
}

/// A copy that does not simply pass through (`real` makes it): it waits
/// as [`copy_wait`] says, as a data call on that fd would.
#[inline(never)]
fn copy_call(
    st: u32,
    h: H,
    bulk: Bulk,
    fd_in: RawFd,
    fd_out: RawFd,
    real: &mut dyn FnMut() -> isize,
) -> isize {
    if matches!(bulk, Bulk::Splice) && green_hub(st, NET).is_some() {
        // A socket no green call has touched yet is classified (made one
        // green manages) now, rather than written to blocking after a wait
        // on the pipe.
        fds::classify(fd_out);
    }
    let (fd, interest) = copy_wait(bulk, fd_in, fd_out);
    fd_call_patched(st, h, fd, interest, None, &mut |_| real())
}

/// Defines the interposers of the named copy functions: each passes
/// through when [`fd_passes`] for the fd [`copy_wait`] names (a tail call
/// to libc's function), and otherwise hands the call to [`copy_call`].
macro_rules! copy_hooks {
    ($(
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> ssize_t {
            $bulk:ident, in: $in:ident, out: $out:ident
        }
    )*) => {$(
        #[doc = concat!("# Safety\nlibc's `", stringify!($name), "`.")]
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> ssize_t {
            /// The call when it does not pass straight through.
            #[inline(never)]
            unsafe extern "C" fn patched($($arg: $ty),*) -> ssize_t {
                // SAFETY: the caller's arguments, unchanged.
                let mut op = || unsafe { original::$name($($arg),*) } as isize;
                copy_call(state(), H::$name, Bulk::$bulk, $in, $out, &mut op) as ssize_t
            }
            if fd_passes(state(), copy_wait(Bulk::$bulk, $in, $out).0) {
                // SAFETY: the caller's arguments, unchanged.
                return unsafe { original::$name($($arg),*) };
            }
            // SAFETY: the caller's arguments.
            unsafe { patched($($arg),*) }
        }
    )*};
}

copy_hooks! {
    fn sendfile(out_fd: c_int, in_fd: c_int, offset: *mut off_t, count: size_t) -> ssize_t {
        Sendfile, in: in_fd, out: out_fd
    }
    fn sendfile64(out_fd: c_int, in_fd: c_int, offset: *mut off64_t, count: size_t) -> ssize_t {
        Sendfile, in: in_fd, out: out_fd
    }
    fn splice(
        fd_in: c_int,
        off_in: *mut loff_t,
        fd_out: c_int,
        off_out: *mut loff_t,
        len: size_t,
        flags: c_uint,
    ) -> ssize_t {
        Splice, in: fd_in, out: fd_out
    }
}

// ---- readiness waits ------------------------------------------------------

/// The deadline of a wait of `ms` milliseconds (negative: none).
fn ms_deadline(ms: c_int) -> Option<Instant> {
    (ms >= 0).then(|| Instant::now() + Duration::from_millis(ms as u64))
}

fn ts_duration(ts: &timespec) -> Option<Duration> {
    (ts.tv_sec >= 0 && (0..1_000_000_000).contains(&ts.tv_nsec))
        .then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// `poll` for a green context: a zero-timeout poll, and between tries a
/// green wait until one of the fds may be ready or `deadline` passes.
///
/// # Safety
/// `fds` points to `nfds` pollfds.
unsafe fn green_poll(
    hub: &Hub,
    fds: *mut pollfd,
    nfds: nfds_t,
    deadline: Option<Instant>,
) -> c_int {
    loop {
        // SAFETY: the caller's contract.
        let n = unsafe { original::poll(fds, nfds, 0) };
        if n != 0 {
            return n;
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left == Some(Duration::ZERO) {
            return 0;
        }
        let set: &[pollfd] = if nfds == 0 {
            &[]
        } else {
            // SAFETY: the caller's contract.
            unsafe { std::slice::from_raw_parts(fds, nfds as usize) }
        };
        if let Err(c) = shielded(hub, || wait_any(set, left)) {
            set_errno(cancel_errno(c));
            return -1;
        }
    }
}

/// Parks until one of `set` may be ready or `left` passes. Errors are
/// left for the next `poll` to report.
fn wait_any(set: &[pollfd], left: Option<Duration>) {
    let active: Vec<&pollfd> = set.iter().filter(|p| p.fd >= 0).collect();
    let interest = |e: libc::c_short| match e & !(libc::POLLRDHUP | libc::POLLERR | libc::POLLHUP) {
        libc::POLLIN => Some(Interest::Read),
        libc::POLLOUT => Some(Interest::Write),
        _ => None,
    };
    match active.as_slice() {
        [] => crate::sleep(left.unwrap_or(Duration::from_secs(u32::MAX as u64))),
        [p] if interest(p.events).is_some() => {
            let _ = trampoline(p.fd, interest(p.events).expect("checked"), left);
        }
        _ => {
            // Several fds (or unusual events): one temporary epoll set,
            // which is itself readable when any of them is ready.
            // SAFETY: plain syscalls on fds the caller named.
            let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if ep < 0 {
                crate::sleep(Duration::from_millis(1).min(left.unwrap_or(Duration::MAX)));
                return;
            }
            // An fd listed more than once waits for all its entries' events.
            let mut wanted: Vec<(RawFd, u32)> = active
                .iter()
                .map(|p| (p.fd, p.events as u16 as u32))
                .collect();
            wanted.sort_unstable_by_key(|&(fd, _)| fd);
            wanted.dedup_by(|next, kept| {
                let same = next.0 == kept.0;
                if same {
                    kept.1 |= next.1;
                }
                same
            });
            for (fd, events) in wanted {
                let mut ev = epoll_event { events, u64: 0 };
                // SAFETY: as above; a failure (an fd that cannot be
                // polled) leaves it to the next real poll to report.
                unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) };
            }
            struct CloseEp(RawFd);
            impl Drop for CloseEp {
                fn drop(&mut self) {
                    hub::notify_close(self.0);
                    // SAFETY: closes the epoll fd made above.
                    unsafe { original::close(self.0) };
                    fds::forget(self.0);
                }
            }
            let _close = CloseEp(ep);
            let _ = trampoline(ep, Interest::Read, left);
        }
    }
}

/// # Safety
/// libc's `poll`.
#[no_mangle]
pub unsafe extern "C" fn poll(fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int {
    // SAFETY: the caller's arguments.
    unsafe { poll_as(H::poll, fds, nfds, timeout) }
}

/// `poll`, its green path recorded as `h`'s: a call that may wait goes to
/// [`poll_patched`], any other to libc (a tail call).
///
/// # Safety
/// libc's `poll`.
#[inline(always)]
unsafe fn poll_as(h: H, fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int {
    if state() & NET != 0 && timeout != 0 {
        // SAFETY: the caller's arguments.
        return unsafe { poll_patched(h, fds, nfds, timeout) };
    }
    // SAFETY: the caller's arguments, unchanged.
    unsafe { original::poll(fds, nfds, timeout) }
}

/// A `poll` that may wait.
///
/// # Safety
/// libc's `poll`.
#[inline(never)]
unsafe fn poll_patched(h: H, fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int {
    if let Some(hub) = green_hub(state(), NET) {
        mark(h);
        // SAFETY: the caller's arguments.
        return unsafe { green_poll(hub, fds, nfds, ms_deadline(timeout)) };
    }
    // SAFETY: the caller's arguments, unchanged.
    unsafe { original::poll(fds, nfds, timeout) }
}

/// # Safety
/// libc's `ppoll`.
#[no_mangle]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: *const timespec,
    sigmask: *const sigset_t,
) -> c_int {
    // SAFETY: the caller's arguments.
    unsafe { ppoll_as(H::ppoll, fds, nfds, timeout, sigmask) }
}

/// `ppoll`, its green path recorded as `h`'s: a call without a signal mask
/// goes to [`ppoll_patched`], any other to libc (a tail call). A signal
/// mask must be swapped atomically with the wait.
///
/// # Safety
/// libc's `ppoll`.
#[inline(always)]
unsafe fn ppoll_as(
    h: H,
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: *const timespec,
    sigmask: *const sigset_t,
) -> c_int {
    if state() & NET != 0 && sigmask.is_null() {
        // SAFETY: the caller's arguments.
        return unsafe { ppoll_patched(h, fds, nfds, timeout) };
    }
    // SAFETY: the caller's arguments, unchanged.
    unsafe { original::ppoll(fds, nfds, timeout, sigmask) }
}

/// A `ppoll` without a signal mask.
///
/// # Safety
/// libc's `ppoll`, with a null signal mask.
#[inline(never)]
unsafe fn ppoll_patched(h: H, fds: *mut pollfd, nfds: nfds_t, timeout: *const timespec) -> c_int {
    if let Some(hub) = green_hub(state(), NET) {
        // SAFETY: the caller's timespec, if any.
        let dur = (!timeout.is_null()).then(|| unsafe { ts_duration(&*timeout) });
        match dur {
            Some(None) => {
                set_errno(libc::EINVAL);
                return -1;
            }
            Some(Some(Duration::ZERO)) => {}
            d => {
                mark(h);
                let deadline = d.flatten().and_then(|d| Instant::now().checked_add(d));
                // SAFETY: the caller's arguments.
                return unsafe { green_poll(hub, fds, nfds, deadline) };
            }
        }
    }
    // SAFETY: the caller's arguments, unchanged.
    unsafe { original::ppoll(fds, nfds, timeout, std::ptr::null()) }
}

/// # Safety
/// libc's `select`.
#[no_mangle]
pub unsafe extern "C" fn select(
    nfds: c_int,
    readfds: *mut fd_set,
    writefds: *mut fd_set,
    exceptfds: *mut fd_set,
    timeout: *mut timeval,
) -> c_int {
    let st = state();
    // SAFETY: the caller's timeval, if any.
    let dur = (!timeout.is_null()).then(|| unsafe { &*timeout });
    let zero = dur.is_some_and(|t| t.tv_sec == 0 && t.tv_usec == 0);
    let valid = dur.is_none_or(|t| t.tv_sec >= 0 && (0..1_000_000).contains(&t.tv_usec));
    if st != 0 && !zero && valid && (0..=libc::FD_SETSIZE as c_int).contains(&nfds) {
        if let Some(hub) = green_hub(st, NET) {
            mark(H::select);
            let deadline = dur.map(|t| Instant::now() + Duration::from_nanos(fds::tv_nanos(t)));
            // SAFETY: the caller's sets, each null or valid.
            return unsafe {
                green_select(hub, nfds, [readfds, writefds, exceptfds], timeout, deadline)
            };
        }
    }
    // SAFETY: the caller's arguments.
    unsafe { original::select(nfds, readfds, writefds, exceptfds, timeout) }
}

/// `select` by way of [`green_poll`].
///
/// # Safety
/// Each set is null or valid; `timeout` is null or valid.
unsafe fn green_select(
    hub: &Hub,
    nfds: c_int,
    sets: [*mut fd_set; 3],
    timeout: *mut timeval,
    deadline: Option<Instant>,
) -> c_int {
    const EVENTS: [libc::c_short; 3] = [libc::POLLIN, libc::POLLOUT, libc::POLLPRI];
    // SAFETY (set accesses): the caller's contract.
    let is_set = |k: usize, fd: c_int| !sets[k].is_null() && unsafe { libc::FD_ISSET(fd, sets[k]) };
    let mut pfds: Vec<pollfd> = (0..nfds)
        .filter_map(|fd| {
            let events = (0..3)
                .filter(|&k| is_set(k, fd))
                .fold(0, |e, k| e | EVENTS[k]);
            (events != 0).then_some(pollfd {
                fd,
                events,
                revents: 0,
            })
        })
        .collect();
    // SAFETY: a valid pollfd array.
    let n = unsafe { green_poll(hub, pfds.as_mut_ptr(), pfds.len() as nfds_t, deadline) };
    if n < 0 {
        return n;
    }
    if pfds.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
        set_errno(libc::EBADF);
        return -1;
    }
    for s in sets.iter().filter(|s| !s.is_null()) {
        // SAFETY: non-null, valid.
        unsafe { libc::FD_ZERO(*s) };
    }
    let mut count = 0;
    let ready = [
        libc::POLLIN | libc::POLLHUP | libc::POLLERR,
        libc::POLLOUT | libc::POLLERR,
        libc::POLLPRI,
    ];
    for p in &pfds {
        for k in 0..3 {
            if !sets[k].is_null() && p.events & EVENTS[k] != 0 && p.revents & ready[k] != 0 {
                // SAFETY: non-null, valid; fd < nfds <= FD_SETSIZE.
                unsafe { libc::FD_SET(p.fd, sets[k]) };
                count += 1;
            }
        }
    }
    if !timeout.is_null() {
        // Linux reports the time left.
        let left = deadline.map_or(Duration::ZERO, |d| {
            d.saturating_duration_since(Instant::now())
        });
        // SAFETY: non-null, valid.
        unsafe {
            (*timeout).tv_sec = left.as_secs() as libc::time_t;
            (*timeout).tv_usec = left.subsec_micros() as libc::suseconds_t;
        }
    }
    count
}

/// `epoll_wait` for a green context: the epoll fd is itself readable when
/// any of its fds is ready, so the green thread parks on it.
fn green_epoll_wait(
    hub: &Hub,
    epfd: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout: c_int,
) -> c_int {
    let timeout = (timeout > 0).then(|| Duration::from_millis(timeout as u64));
    // Nothing ready is the epoll fd's `EAGAIN`: the one I/O loop waits for
    // it to become readable.
    let op = || {
        // SAFETY: the caller's arguments, with a zero timeout.
        let n = unsafe { original::epoll_wait(epfd, events, max, 0) };
        if n == 0 {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            cvt(n as isize)
        }
    };
    match shielded(hub, || {
        io_loop(epfd, Interest::Read, timeout, op, |_| false)
    }) {
        // The wait's own timeout: nothing became ready in time.
        Ok(Err(e)) if e.raw_os_error().is_none() && e.kind() == io::ErrorKind::TimedOut => 0,
        r => finish(r) as c_int,
    }
}

/// # Safety
/// libc's `epoll_wait`.
#[no_mangle]
pub unsafe extern "C" fn epoll_wait(
    epfd: c_int,
    events: *mut epoll_event,
    maxevents: c_int,
    timeout: c_int,
) -> c_int {
    if state() & NET != 0 && timeout != 0 && maxevents > 0 {
        // SAFETY: the caller's arguments.
        return unsafe { epoll_wait_patched(epfd, events, maxevents, timeout) };
    }
    // SAFETY: the caller's arguments, unchanged.
    unsafe { original::epoll_wait(epfd, events, maxevents, timeout) }
}

/// An `epoll_wait` that may wait.
///
/// # Safety
/// libc's `epoll_wait`.
#[inline(never)]
unsafe extern "C" fn epoll_wait_patched(
    epfd: c_int,
    events: *mut epoll_event,
    maxevents: c_int,
    timeout: c_int,
) -> c_int {
    if let Some(hub) = green_hub(state(), NET) {
        mark(H::epoll_wait);
        return green_epoll_wait(hub, epfd, events, maxevents, timeout);
    }
    // SAFETY: the caller's arguments, unchanged.
    unsafe { original::epoll_wait(epfd, events, maxevents, timeout) }
}

/// # Safety
/// libc's `epoll_pwait`.
#[no_mangle]
pub unsafe extern "C" fn epoll_pwait(
    epfd: c_int,
    events: *mut epoll_event,
    maxevents: c_int,
    timeout: c_int,
    sigmask: *const sigset_t,
) -> c_int {
    if state() & NET != 0 && timeout != 0 && maxevents > 0 && sigmask.is_null() {
        // SAFETY: the caller's arguments.
        return unsafe { epoll_pwait_patched(epfd, events, maxevents, timeout, sigmask) };
    }
    // SAFETY: the caller's arguments, unchanged.
    unsafe { original::epoll_pwait(epfd, events, maxevents, timeout, sigmask) }
}

/// An `epoll_pwait` without a signal mask that may wait.
///
/// # Safety
/// libc's `epoll_pwait`.
#[inline(never)]
unsafe extern "C" fn epoll_pwait_patched(
    epfd: c_int,
    events: *mut epoll_event,
    maxevents: c_int,
    timeout: c_int,
    sigmask: *const sigset_t,
) -> c_int {
    if let Some(hub) = green_hub(state(), NET) {
        mark(H::epoll_pwait);
        return green_epoll_wait(hub, epfd, events, maxevents, timeout);
    }
    // SAFETY: the caller's arguments, unchanged.
    unsafe { original::epoll_pwait(epfd, events, maxevents, timeout, sigmask) }
}

// ---- fortified variants ----------------------------------------------------

// C code built with `_FORTIFY_SOURCE` calls glibc's checked variants of
// `read`, `recv`, `recvfrom`, `poll` and `ppoll` wherever the compiler knows
// the size of the buffer. glibc checks the size, calls `__chk_fail` (which
// reports the overflow and aborts) if the call could write past the end,
// and otherwise makes the plain call. Here a failed check goes to glibc's
// function, which reports it exactly as without green; a call that passes
// it is made as the plain function's interposer makes it, its green path
// recorded under the variant's name.

/// Whether `fdslen` bytes hold `nfds` pollfds (glibc's check).
#[inline(always)]
fn pollfds_fit(nfds: nfds_t, fdslen: size_t) -> bool {
    (fdslen / std::mem::size_of::<pollfd>()) as nfds_t >= nfds
}

/// # Safety
/// glibc's `__read_chk`.
#[no_mangle]
pub unsafe extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    nbytes: size_t,
    buflen: size_t,
) -> ssize_t {
    if nbytes > buflen {
        // SAFETY: the caller's arguments: glibc reports the overflow.
        return unsafe { original::__read_chk(fd, buf, nbytes, buflen) };
    }
    // SAFETY: the caller's arguments, checked: `nbytes` fits in the buffer.
    unsafe { read::call(H::__read_chk, fd, buf, nbytes) }
}

/// # Safety
/// glibc's `__recv_chk`.
#[no_mangle]
pub unsafe extern "C" fn __recv_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    buflen: size_t,
    flags: c_int,
) -> ssize_t {
    if len > buflen {
        // SAFETY: the caller's arguments: glibc reports the overflow.
        return unsafe { original::__recv_chk(fd, buf, len, buflen, flags) };
    }
    // SAFETY: the caller's arguments, checked: `len` fits in the buffer.
    unsafe { recv::call(H::__recv_chk, fd, buf, len, flags) }
}

/// # Safety
/// glibc's `__recvfrom_chk`.
#[no_mangle]
pub unsafe extern "C" fn __recvfrom_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    buflen: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> ssize_t {
    if len > buflen {
        // SAFETY: the caller's arguments: glibc reports the overflow.
        return unsafe { original::__recvfrom_chk(fd, buf, len, buflen, flags, addr, addrlen) };
    }
    // SAFETY: the caller's arguments, checked: `len` fits in the buffer.
    unsafe { recvfrom::call(H::__recvfrom_chk, fd, buf, len, flags, addr, addrlen) }
}

/// # Safety
/// glibc's `__poll_chk`.
#[no_mangle]
pub unsafe extern "C" fn __poll_chk(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: c_int,
    fdslen: size_t,
) -> c_int {
    if !pollfds_fit(nfds, fdslen) {
        // SAFETY: the caller's arguments: glibc reports the overflow.
        return unsafe { original::__poll_chk(fds, nfds, timeout, fdslen) };
    }
    // SAFETY: the caller's arguments, checked: the array holds `nfds`.
    unsafe { poll_as(H::__poll_chk, fds, nfds, timeout) }
}

/// # Safety
/// glibc's `__ppoll_chk`.
#[no_mangle]
pub unsafe extern "C" fn __ppoll_chk(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: *const timespec,
    sigmask: *const sigset_t,
    fdslen: size_t,
) -> c_int {
    if !pollfds_fit(nfds, fdslen) {
        // SAFETY: the caller's arguments: glibc reports the overflow.
        return unsafe { original::__ppoll_chk(fds, nfds, timeout, sigmask, fdslen) };
    }
    // SAFETY: the caller's arguments, checked: the array holds `nfds`.
    unsafe { ppoll_as(H::__ppoll_chk, fds, nfds, timeout, sigmask) }
}

// ---- sleeping and yielding ------------------------------------------------

/// Sleeps green for `d`. A kill or timeout ends the sleep early (its
/// unwind comes at the next park point).
fn green_sleep(hub: &Hub, d: Duration) {
    let _ = shielded(hub, || crate::sleep(d));
}

/// # Safety
/// libc's `nanosleep`.
#[no_mangle]
pub unsafe extern "C" fn nanosleep(req: *const timespec, rem: *mut timespec) -> c_int {
    if let Some(hub) = green_hub(state(), SLEEP) {
        // SAFETY: the caller's timespec.
        if let Some(d) = (!req.is_null())
            .then(|| unsafe { ts_duration(&*req) })
            .flatten()
        {
            mark(H::nanosleep);
            green_sleep(hub, d);
            return 0;
        }
    }
    // SAFETY: the caller's arguments.
    unsafe { original::nanosleep(req, rem) }
}

/// The time of `clock` now.
fn clock_now(clock: clockid_t) -> Option<Duration> {
    let mut ts = timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec.
    (unsafe { libc::clock_gettime(clock, &mut ts) } == 0)
        .then(|| ts_duration(&ts))
        .flatten()
}

/// # Safety
/// libc's `clock_nanosleep`.
#[no_mangle]
pub unsafe extern "C" fn clock_nanosleep(
    clock: clockid_t,
    flags: c_int,
    req: *const timespec,
    rem: *mut timespec,
) -> c_int {
    let known = matches!(
        clock,
        libc::CLOCK_REALTIME | libc::CLOCK_MONOTONIC | libc::CLOCK_BOOTTIME
    );
    if let Some(hub) = green_hub(state(), SLEEP).filter(|_| known) {
        // SAFETY: the caller's timespec.
        if let Some(t) = (!req.is_null())
            .then(|| unsafe { ts_duration(&*req) })
            .flatten()
        {
            let d = if flags & libc::TIMER_ABSTIME != 0 {
                clock_now(clock).map(|now| t.saturating_sub(now))
            } else {
                Some(t)
            };
            if let Some(d) = d {
                mark(H::clock_nanosleep);
                green_sleep(hub, d);
                return 0;
            }
        }
    }
    // SAFETY: the caller's arguments.
    unsafe { original::clock_nanosleep(clock, flags, req, rem) }
}

/// # Safety
/// libc's `usleep`.
#[no_mangle]
pub unsafe extern "C" fn usleep(usec: useconds_t) -> c_int {
    if let Some(hub) = green_hub(state(), SLEEP) {
        mark(H::usleep);
        green_sleep(hub, Duration::from_micros(usec as u64));
        return 0;
    }
    // SAFETY: no pointers.
    unsafe { original::usleep(usec) }
}

/// # Safety
/// libc's `sleep`.
#[no_mangle]
pub unsafe extern "C" fn sleep(secs: c_uint) -> c_uint {
    if let Some(hub) = green_hub(state(), SLEEP) {
        mark(H::sleep);
        green_sleep(hub, Duration::from_secs(secs as u64));
        return 0;
    }
    // SAFETY: no pointers.
    unsafe { original::sleep(secs) }
}

/// # Safety
/// libc's `sched_yield`.
#[no_mangle]
pub unsafe extern "C" fn sched_yield() -> c_int {
    if state() & (SLEEP | PROBE) != 0 {
        // SAFETY: no arguments.
        return unsafe { sched_yield_patched() };
    }
    // SAFETY: no pointers.
    unsafe { original::sched_yield() }
}

/// A `sched_yield` while sleeps are patched (or the link is probed).
///
/// # Safety
/// libc's `sched_yield`.
#[inline(never)]
unsafe extern "C" fn sched_yield_patched() -> c_int {
    let st = state();
    if st & PROBE != 0 {
        PROBED.store(true, Ordering::SeqCst);
    }
    if let Some(hub) = green_hub(st, SLEEP) {
        mark(H::sched_yield);
        let _ = shielded(hub, crate::yield_now);
        return 0;
    }
    // SAFETY: no pointers.
    unsafe { original::sched_yield() }
}

// ---- name resolution ------------------------------------------------------

/// A run of futex waits by one context on one word that all found the word
/// changed: the caller re-checks and waits again at once, without parking.
#[derive(Clone, Copy)]
struct Spin {
    addr: usize,
    who: u64,
    count: u32,
    since: Option<Instant>,
}

impl Spin {
    const NONE: Spin = Spin {
        addr: 0,
        who: 0,
        count: 0,
        since: None,
    };
}

thread_local! {
    /// The current run of mismatched futex waits (per context where green
    /// threads have identities of their own, else per OS thread).
    static SPIN: std::cell::Cell<Spin> = const { std::cell::Cell::new(Spin::NONE) };
}

/// Mismatched waits in a row after which the waiter yields to the others.
const SPIN_YIELD: u32 = 64;
/// How long a run of mismatched waits may last on a shared identity before
/// it is reported as the known freeze.
const SPIN_LIMIT: Duration = Duration::from_secs(10);

/// Notes a futex wait that returned at once because its word had changed.
///
/// Loops such as std's `thread::park` wait again at once. Where green
/// threads share their OS thread's identity, two of them parked in std's
/// `thread::park` share one parker word that never again holds the value
/// they wait for: each wait returns at once, and the loop would hold the
/// hub for ever. So after a run of such waits the waiter yields, letting
/// the others run; a run that lasts [`SPIN_LIMIT`] on a shared identity
/// panics with the cause and the fix.
#[cold]
fn futex_mismatch(hub: &Hub, addr: usize) {
    let who = hub.current_green_id().unwrap_or(0);
    let mut s = SPIN.get();
    if s.addr != addr || s.who != who {
        s = Spin {
            addr,
            who,
            count: 0,
            since: None,
        };
    }
    s.count = s.count.saturating_add(1);
    if s.count >= SPIN_YIELD {
        let since = *s.since.get_or_insert_with(Instant::now);
        if !crate::coro::tls::on_own_block() && since.elapsed() > SPIN_LIMIT {
            SPIN.set(Spin::NONE);
            panic!(
                "green: a green thread has retried a futex wait on {addr:#x} for {SPIN_LIMIT:?} \
                 without the word ever holding the value it waits for: green threads of this OS \
                 thread share one identity (one std::thread::park parker, one set of \
                 thread-locals), and two of them wait on the same per-thread word. Turn on \
                 per-green-thread identity (green::patch() does where supported; see \
                 green::patch::thread_identity() for why it is off), or use green::sync and \
                 green::thread::park, which park per green thread"
            );
        }
        SPIN.set(s);
        let _ = shielded(hub, crate::yield_now);
        return;
    }
    SPIN.set(s);
}

/// # Safety
/// libc's `getaddrinfo`.
#[no_mangle]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    let Some(hub) = green_hub(state(), DNS) else {
        // SAFETY: the caller's arguments.
        return unsafe { original::getaddrinfo(node, service, hints, res) };
    };
    mark(H::getaddrinfo);
    // The pool thread gets copies on the heap: the caller's frames may sit
    // on a shared stack, which moves while it is parked.
    // SAFETY: the caller passes NUL-terminated strings or null, and a
    // valid `addrinfo` or null.
    let (node, service, hints) = unsafe {
        (
            (!node.is_null()).then(|| std::ffi::CStr::from_ptr(node).to_owned()),
            (!service.is_null()).then(|| std::ffi::CStr::from_ptr(service).to_owned()),
            (!hints.is_null()).then(|| Box::new(std::ptr::read(hints))),
        )
    };
    struct List(*mut addrinfo);
    // SAFETY: a list getaddrinfo made, owned by whoever holds it.
    unsafe impl Send for List {}
    struct Hints(Option<Box<addrinfo>>);
    // SAFETY: a copy of the caller's hints; its pointers are only read.
    unsafe impl Send for Hints {}
    let hints = Hints(hints);
    let list = std::sync::Mutex::new(List(std::ptr::null_mut()));
    let n = tpool_call(hub, || {
        let hints = hints;
        let mut out = std::ptr::null_mut();
        let p = |s: &Option<std::ffi::CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
        let h = hints
            .0
            .as_deref()
            .map_or(std::ptr::null(), |h| h as *const addrinfo);
        // SAFETY: valid strings or null, hints or null, an out pointer.
        let n = unsafe { original::getaddrinfo(p(&node), p(&service), h, &mut out) };
        list.lock().unwrap_or_else(|e| e.into_inner()).0 = out;
        n as isize
    }) as c_int;
    if n == 0 {
        // SAFETY: the caller's out pointer.
        unsafe { *res = list.into_inner().unwrap_or_else(|e| e.into_inner()).0 };
    } else if n == -1 && errno() == libc::ECANCELED {
        return libc::EAI_SYSTEM;
    }
    n
}

// ---- child processes ------------------------------------------------------

/// Whether `pid` is a child of this process that has not been reaped.
fn is_child(pid: pid_t) -> bool {
    // SAFETY: siginfo_t is plain data; all-zero is valid.
    let mut info: siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: a valid siginfo_t; WNOHANG and WNOWAIT: neither blocks nor reaps.
    (unsafe { original::waitid(libc::P_PID, pid as id_t, &mut info, flags) }) == 0
}

/// Waits green for child `pid` to exit: parks on a pidfd, which becomes
/// readable when the child exits. Returns `Err` if no pidfd can be had.
fn park_on_pidfd(hub: &Hub, pid: pid_t) -> Result<Result<(), Cancel>, ()> {
    // SAFETY: pidfd_open takes a pid and flags.
    let fd = unsafe { original::syscall(libc::SYS_pidfd_open, pid as c_long, 0, 0, 0, 0, 0) };
    if fd < 0 {
        return Err(());
    }
    let fd = fd as RawFd;
    let r = shielded(hub, || trampoline(fd, Interest::Read, None)).map(drop);
    hub::notify_close(fd);
    // SAFETY: closes the pidfd made above.
    unsafe { original::close(fd) };
    fds::forget(fd);
    Ok(r)
}

/// A pointer to a heap copy that a tpool job writes through while its
/// caller waits for it.
pub(super) struct SendPtr<T>(pub(super) *mut T);
// SAFETY: see above: one writer, and the owner waits for it.
unsafe impl<T> Send for SendPtr<T> {}

fn green_wait4(
    hub: &Hub,
    pid: pid_t,
    status: *mut c_int,
    options: c_int,
    rusage: *mut rusage,
) -> pid_t {
    if pid > 0 && options & (libc::WUNTRACED | libc::WCONTINUED) == 0 {
        if !is_child(pid) {
            // Not a child (or reaped already): the real call says so.
            // SAFETY: the caller's arguments; it returns at once.
            return unsafe { original::wait4(pid, status, options | libc::WNOHANG, rusage) };
        }
        match park_on_pidfd(hub, pid) {
            // The child has exited: the real wait returns at once.
            // SAFETY: the caller's arguments.
            Ok(Ok(())) => return unsafe { original::wait4(pid, status, options, rusage) },
            Ok(Err(c)) => {
                set_errno(cancel_errno(c));
                return -1;
            }
            Err(()) => {}
        }
    }
    // Heap copies for the pool thread; copied back after (the caller's
    // frames may sit on a shared stack).
    let mut out: Box<(c_int, rusage)> = Box::new((0, unsafe_zeroed_rusage()));
    let p = SendPtr(&mut *out);
    let n = tpool_call(hub, move || {
        let p = p;
        // SAFETY: the heap copy, alive until tpool_call returns.
        let (st, ru) = unsafe { (&mut (*p.0).0 as *mut c_int, &mut (*p.0).1 as *mut rusage) };
        // SAFETY: valid out pointers.
        (unsafe { original::wait4(pid, st, options, ru) }) as isize
    }) as pid_t;
    if n > 0 {
        // SAFETY: the caller's out pointers, each null or valid.
        unsafe {
            if !status.is_null() {
                *status = out.0;
            }
            if !rusage.is_null() {
                *rusage = out.1;
            }
        }
    }
    n
}

fn unsafe_zeroed_rusage() -> rusage {
    // SAFETY: rusage is plain integers; all-zero is valid.
    unsafe { std::mem::zeroed() }
}

/// # Safety
/// libc's `waitpid`.
#[no_mangle]
pub unsafe extern "C" fn waitpid(pid: pid_t, status: *mut c_int, options: c_int) -> pid_t {
    match green_hub(state(), PROCESS) {
        Some(hub) if options & libc::WNOHANG == 0 => {
            mark(H::waitpid);
            green_wait4(hub, pid, status, options, std::ptr::null_mut())
        }
        // SAFETY: the caller's arguments.
        _ => unsafe { original::waitpid(pid, status, options) },
    }
}

/// # Safety
/// libc's `wait4`.
#[no_mangle]
pub unsafe extern "C" fn wait4(
    pid: pid_t,
    status: *mut c_int,
    options: c_int,
    rusage: *mut rusage,
) -> pid_t {
    match green_hub(state(), PROCESS) {
        Some(hub) if options & libc::WNOHANG == 0 => {
            mark(H::wait4);
            green_wait4(hub, pid, status, options, rusage)
        }
        // SAFETY: the caller's arguments.
        _ => unsafe { original::wait4(pid, status, options, rusage) },
    }
}

/// # Safety
/// libc's `waitid`.
#[no_mangle]
pub unsafe extern "C" fn waitid(
    idtype: idtype_t,
    id: id_t,
    infop: *mut siginfo_t,
    options: c_int,
) -> c_int {
    const P_PIDFD: idtype_t = 3;
    let Some(hub) = green_hub(state(), PROCESS).filter(|_| options & libc::WNOHANG == 0) else {
        // SAFETY: the caller's arguments.
        return unsafe { original::waitid(idtype, id, infop, options) };
    };
    mark(H::waitid);
    let exits_only = options & (libc::WSTOPPED | libc::WCONTINUED) == 0;
    let parked = match idtype {
        libc::P_PID if exits_only && id > 0 && is_child(id as pid_t) => {
            park_on_pidfd(hub, id as pid_t).ok()
        }
        P_PIDFD if exits_only => {
            Some(shielded(hub, || trampoline(id as RawFd, Interest::Read, None)).map(drop))
        }
        _ => None,
    };
    match parked {
        // SAFETY: the caller's arguments.
        Some(Ok(())) => unsafe { original::waitid(idtype, id, infop, options) },
        Some(Err(c)) => {
            set_errno(cancel_errno(c));
            -1
        }
        None => {
            // SAFETY: siginfo_t is plain data; all-zero is valid.
            let mut out: Box<siginfo_t> = Box::new(unsafe { std::mem::zeroed() });
            let p = SendPtr(&mut *out);
            let n = tpool_call(hub, move || {
                let p = p;
                // SAFETY: the heap copy, alive until tpool_call returns.
                (unsafe { original::waitid(idtype, id, p.0, options) }) as isize
            }) as c_int;
            if n == 0 && !infop.is_null() {
                // SAFETY: the caller's out pointer.
                unsafe { *infop = *out };
            }
            n
        }
    }
}

// ---- futex ------------------------------------------------------------------

/// `syscall`, declared with six fixed arguments after the number.
///
/// libc's `syscall` is variadic. On the supported targets (x86-64 System V
/// and AArch64 Linux) a variadic caller passes integer and pointer
/// arguments exactly where a non-variadic callee reads them, and a seventh
/// argument slot that the caller did not fill is only read, never used:
/// the real `syscall` is called with the same registers.
///
/// On x86-64 the first decision is made in assembly: a call green takes no
/// part in, and a futex wake while no green context waits, jump to libc's
/// `syscall` with the stack untouched (the seventh argument lives on it,
/// and compiled code would copy it into a frame of its own to make the
/// call). The rest goes to [`syscall_hooked`].
///
/// # Safety
/// libc's `syscall`.
#[cfg(all(target_arch = "x86_64", target_pointer_width = "64"))]
#[no_mangle]
#[unsafe(naked)]
pub unsafe extern "C" fn syscall(
    num: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    // rdi: the number; edx: the futex operation; r11, a scratch register
    // that carries no argument (rax, which may carry a variadic call's
    // vector-register count, is left alone). Labels made only of the digits
    // 0 and 1 would read as binary numbers in Intel syntax.
    std::arch::naked_asm!(
        "cmp rdi, {futex}",
        "je 2f",
        "cmp rdi, {sendfile}",
        "je 4f",
        "cmp rdi, {splice}",
        "je 4f",
        "5:",
        "jmp {real}",
        "2:",
        // The command, without the private and clock flags.
        "mov r11d, edx",
        "and r11d, {cmd_mask}",
        "cmp r11d, {wake}",
        "je 3f",
        "cmp r11d, {wake_bitset}",
        "jne 4f",
        "3:",
        // A wake: a full barrier after the caller's store to the futex
        // word (a locked no-op on the return address), then the count of
        // green waiters (see futex::waiting_after_store).
        "lock or dword ptr [rsp], 0",
        "cmp qword ptr [rip + {waiting}], 0",
        "je 5b",
        "4:",
        "jmp {hooked}",
        futex = const libc::SYS_futex,
        sendfile = const libc::SYS_sendfile,
        splice = const libc::SYS_splice,
        cmd_mask = const !(libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME),
        wake = const libc::FUTEX_WAKE,
        wake_bitset = const libc::FUTEX_WAKE_BITSET,
        waiting = sym futex::WAITING,
        real = sym original::syscall,
        hooked = sym syscall_hooked,
    )
}

/// Elsewhere the interposer is [`syscall_hooked`] itself.
#[cfg(not(all(target_arch = "x86_64", target_pointer_width = "64")))]
use syscall_hooked as syscall;

/// The `syscall` interposer's decision, in full (on targets other than
/// x86-64, the interposer itself).
///
/// # Safety
/// libc's `syscall`.
#[cfg_attr(
    not(all(target_arch = "x86_64", target_pointer_width = "64")),
    export_name = "syscall"
)]
unsafe extern "C" fn syscall_hooked(
    num: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    let st = state();
    let hooked = if num == libc::SYS_futex {
        futex_hooked(st, a2)
    } else {
        // Bulk copies: not worth deciding here.
        (num == libc::SYS_sendfile || num == libc::SYS_splice) && st & (NET | EMULATE) != 0
    };
    if !hooked {
        // SAFETY: the caller's arguments, unchanged.
        return unsafe { original::syscall(num, a1, a2, a3, a4, a5, a6) };
    }
    // SAFETY: the caller's arguments.
    unsafe { syscall_patched(num, a1, a2, a3, a4, a5, a6) }
}

/// Whether a futex call with operation `op` may concern the green wait
/// table: a private wait with `SYNC` patched, or a wake while a green
/// context waits (whatever the state: waiters left by `unpatch` are woken
/// too). The check of the waiter count is ordered after the caller's change
/// of the futex word, as in [`futex::wake`].
#[inline(always)]
fn futex_hooked(st: u32, op: c_long) -> bool {
    const WAKES: u32 = 1 << libc::FUTEX_WAKE | 1 << libc::FUTEX_WAKE_BITSET;
    const WAITS: u32 = 1 << libc::FUTEX_WAIT | 1 << libc::FUTEX_WAIT_BITSET;
    let op = op as c_int;
    // The command, as a bit: operations past 31 are none of these.
    let cmd = 1u32
        .checked_shl((op & !(libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME)) as u32)
        .unwrap_or(0);
    if cmd & WAKES != 0 {
        return futex::waiting_after_store();
    }
    cmd & WAITS != 0 && st & SYNC != 0 && op & libc::FUTEX_PRIVATE_FLAG != 0
}

/// The `syscall`s green takes part in: futex, and `sendfile`/`splice`.
///
/// # Safety
/// The arguments of a `syscall(num, ...)` call.
#[inline(never)]
unsafe extern "C" fn syscall_patched(
    num: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    let st = state();
    let a = [a1, a2, a3, a4, a5, a6];
    // SAFETY (each call): the caller's arguments, unchanged.
    let real = || unsafe { original::syscall(num, a1, a2, a3, a4, a5, a6) };
    if num == libc::SYS_futex {
        // SAFETY: the caller's futex arguments.
        return unsafe { futex_call(st, a[0], a[1], a[2], a[3], a[5]) }.unwrap_or_else(real);
    }
    // std copies between a socket and a file or pipe with these (in
    // `io::copy`), as the named functions do.
    let (bulk, fd_in, fd_out) = if num == libc::SYS_sendfile {
        (Bulk::Sendfile, a[1], a[0])
    } else {
        (Bulk::Splice, a[0], a[2])
    };
    let mut op = || real() as isize;
    copy_call(
        st,
        H::syscall,
        bulk,
        fd_in as RawFd,
        fd_out as RawFd,
        &mut op,
    ) as c_long
}

/// The green part of a futex call, or `None` to make the real call.
///
/// # Safety
/// The arguments of a `futex` call.
unsafe fn futex_call(
    st: u32,
    uaddr: c_long,
    op: c_long,
    val: c_long,
    timeout: c_long,
    val3: c_long,
) -> Option<c_long> {
    let op = op as c_int;
    let cmd = op & !(libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME);
    match cmd {
        // A shared futex may be woken from another process, which the
        // process-local table never hears of.
        libc::FUTEX_WAIT | libc::FUTEX_WAIT_BITSET if op & libc::FUTEX_PRIVATE_FLAG != 0 => {
            let hub = green_hub(st, SYNC)?;
            let bitset = if cmd == libc::FUTEX_WAIT {
                u32::MAX
            } else {
                val3 as u32
            };
            if bitset == 0 {
                return None;
            }
            let ts = timeout as *const timespec;
            let deadline = if ts.is_null() {
                None
            } else {
                // SAFETY: the caller's timespec.
                let t = ts_duration(unsafe { &*ts })?;
                let left = if cmd == libc::FUTEX_WAIT {
                    t
                } else {
                    // FUTEX_WAIT_BITSET takes an absolute time.
                    let clock = if op & libc::FUTEX_CLOCK_REALTIME != 0 {
                        libc::CLOCK_REALTIME
                    } else {
                        libc::CLOCK_MONOTONIC
                    };
                    t.saturating_sub(clock_now(clock)?)
                };
                Some(Instant::now().checked_add(left)?)
            };
            mark(H::syscall);
            let word = uaddr as *const AtomicU32;
            match futex::wait(hub, word, val as u32, bitset, deadline) {
                libc::EAGAIN => {
                    futex_mismatch(hub, uaddr as usize);
                    set_errno(libc::EAGAIN);
                    Some(-1)
                }
                e => {
                    SPIN.set(Spin::NONE);
                    if e == 0 {
                        Some(0)
                    } else {
                        set_errno(e);
                        Some(-1)
                    }
                }
            }
        }
        libc::FUTEX_WAKE | libc::FUTEX_WAKE_BITSET => {
            let bitset = if cmd == libc::FUTEX_WAKE {
                u32::MAX
            } else {
                val3 as u32
            };
            let n = (val as c_int).max(0);
            let woken = futex::wake(uaddr as usize, n, bitset);
            if woken == 0 {
                return None;
            }
            if woken >= n {
                return Some(woken as c_long);
            }
            // SAFETY: the caller's call, for the waiters left.
            let r = unsafe {
                original::syscall(
                    libc::SYS_futex,
                    uaddr,
                    op as c_long,
                    (n - woken) as c_long,
                    timeout,
                    0,
                    val3,
                )
            };
            Some(if r < 0 {
                woken as c_long
            } else {
                r + woken as c_long
            })
        }
        _ => None,
    }
}

// ---- bookkeeping ----------------------------------------------------------

/// Whether fd bookkeeping is on.
#[inline(always)]
fn keeping(st: u32) -> bool {
    st & (NET | EMULATE) != 0
}

/// Notes bookkeeping hook `h` as seen when a green context called it.
fn mark_if_green(st: u32, h: H) {
    if green_hub(st, NET).is_some() {
        mark(h);
    }
}

/// `fcntl`, declared with one fixed argument after the command (see
/// [`syscall`] for why that receives a variadic call correctly).
///
/// # Safety
/// libc's `fcntl`.
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    let st = state();
    let tracked = keeping(st)
        && match cmd {
            libc::F_GETFL => fds::bits(fd) & fds::OURS != 0,
            libc::F_SETFL | libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => true,
            _ => false,
        };
    if !tracked {
        // SAFETY: the caller's arguments, unchanged.
        return unsafe { original::fcntl(fd, cmd, arg) };
    }
    // SAFETY: the caller's arguments, of a command that takes an integer.
    unsafe { fcntl_patched(fd, cmd, arg) }
}

/// The `fcntl` commands fd bookkeeping follows.
///
/// # Safety
/// `cmd` is `F_GETFL`, `F_SETFL`, `F_DUPFD` or `F_DUPFD_CLOEXEC` (which
/// take an integer argument, or none).
#[inline(never)]
unsafe extern "C" fn fcntl_patched(fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    let st = state();
    // SAFETY: the caller's arguments, with O_NONBLOCK kept on a socket
    // green manages.
    let real = |arg: c_long| unsafe { original::fcntl(fd, cmd, arg) };
    match cmd {
        libc::F_GETFL => {
            let r = real(arg);
            if r >= 0 && fds::bits(fd) & fds::OURS != 0 {
                mark_if_green(st, H::fcntl);
                r & !libc::O_NONBLOCK
            } else {
                r
            }
        }
        libc::F_SETFL => {
            let on = arg & libc::O_NONBLOCK as c_long != 0;
            if fds::set_user_nonblocking(fd, on) {
                mark_if_green(st, H::fcntl);
                real(arg | libc::O_NONBLOCK as c_long)
            } else {
                real(arg)
            }
        }
        _ => {
            // F_DUPFD, F_DUPFD_CLOEXEC
            let r = real(arg);
            if r >= 0 {
                fds::copy(fd, r);
            }
            r
        }
    }
}

/// `ioctl`, declared with one fixed argument after the request.
///
/// # Safety
/// libc's `ioctl`.
#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    let st = state();
    // SAFETY: FIONBIO takes a pointer to an int.
    if keeping(st)
        && request == libc::FIONBIO as c_ulong
        && !arg.is_null()
        && fionbio_kept(st, fd, unsafe { *(arg as *const c_int) } != 0)
    {
        // The owner asked for blocking mode: green keeps the socket
        // non-blocking underneath and blocks for it.
        return 0;
    }
    // SAFETY: the caller's arguments, unchanged.
    unsafe { original::ioctl(fd, request, arg) }
}

/// Records a `FIONBIO`; true if the call must not reach the kernel.
#[inline(never)]
fn fionbio_kept(st: u32, fd: c_int, on: bool) -> bool {
    let kept = fds::set_user_nonblocking(fd, on);
    if kept {
        mark_if_green(st, H::ioctl);
    }
    kept
}

/// # Safety
/// libc's `setsockopt`.
#[no_mangle]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    let st = state();
    let timeout =
        level == libc::SOL_SOCKET && matches!(name, libc::SO_RCVTIMEO | libc::SO_SNDTIMEO);
    if !(timeout && keeping(st)) {
        // SAFETY: the caller's arguments, unchanged.
        return unsafe { original::setsockopt(fd, level, name, value, len) };
    }
    // SAFETY: the caller's arguments.
    unsafe { set_timeout_option(st, fd, name, value, len) }
}

/// `SO_RCVTIMEO`/`SO_SNDTIMEO`, which green also keeps as a deadline.
///
/// # Safety
/// The arguments of a `setsockopt(fd, SOL_SOCKET, name, ...)` call.
#[inline(never)]
unsafe fn set_timeout_option(
    st: u32,
    fd: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    // SAFETY: the caller's arguments.
    let r = unsafe { original::setsockopt(fd, libc::SOL_SOCKET, name, value, len) };
    if r == 0 && len as usize >= std::mem::size_of::<timeval>() {
        mark_if_green(st, H::setsockopt);
        // SAFETY: the kernel accepted it as a timeval.
        let ns = fds::tv_nanos(unsafe { &*(value as *const timeval) });
        let interest = if name == libc::SO_RCVTIMEO {
            Interest::Read
        } else {
            Interest::Write
        };
        fds::set_timeout(fd, interest, ns);
    }
    r
}

/// # Safety
/// libc's `close`.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    let st = state();
    if keeping(st) {
        forget_closing(st, fd);
    }
    // SAFETY: the caller's fd.
    unsafe { original::close(fd) }
}

/// Drops what green knows of `fd`, about to be closed, and wakes its
/// waiters.
#[inline(never)]
fn forget_closing(st: u32, fd: c_int) {
    mark_if_green(st, H::close);
    fds::forget(fd);
    hub::notify_close(fd);
}

/// # Safety
/// libc's `dup`.
#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    // SAFETY: the caller's fd.
    let r = unsafe { original::dup(fd) };
    let st = state();
    if r >= 0 && keeping(st) {
        mark_if_green(st, H::dup);
        fds::copy(fd, r);
    }
    r
}

/// After a `dup2`/`dup3` onto `new`: the file `new` named was closed, and
/// `new` now shares `old`'s.
fn after_dup_onto(old: c_int, new: c_int) {
    let st = state();
    if old != new && keeping(st) {
        hub::notify_close(new);
        fds::copy(old, new);
    }
}

/// # Safety
/// libc's `dup2`.
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    // SAFETY: the caller's fds.
    let r = unsafe { original::dup2(old, new) };
    if r >= 0 {
        mark_if_green(state(), H::dup2);
        after_dup_onto(old, new);
    }
    r
}

/// # Safety
/// libc's `dup3`.
#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    // SAFETY: the caller's fds.
    let r = unsafe { original::dup3(old, new, flags) };
    if r >= 0 {
        mark_if_green(state(), H::dup3);
        after_dup_onto(old, new);
    }
    r
}

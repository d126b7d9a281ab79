//! What the interposers know about each fd: its kind, the non-blocking mode
//! its owner asked for, and its socket timeouts. Process-wide, lock-free.

use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::hub::fdmap::FdMap;
use crate::hub::Interest;
use crate::sys::fs::{fcntl_getfl, fcntl_setfl, fstat, OFlags};

/// Classified (the other bits are meaningful).
pub(super) const KNOWN: u32 = 1;
/// A socket that green made `O_NONBLOCK` while its owner wants it
/// blocking: green calls park on `EAGAIN`; other callers get blocking
/// behaviour emulated.
pub(super) const OURS: u32 = 2;
/// Its owner made it non-blocking: every call passes straight through.
pub(super) const USER_NB: u32 = 4;
/// A blocking pipe, FIFO, terminal or other pollable file green leaves
/// blocking: green calls wait for readiness first, then make the call.
pub(super) const POLL_FIRST: u32 = 8;
/// A regular file, directory or block device: never waits on readiness.
pub(super) const FILE: u32 = 16;
/// A TCP stream: a read shorter than its buffer drained it.
pub(super) const TCP: u32 = 32;
/// A byte-stream socket (TCP, Unix stream): `MSG_WAITALL` waits for the
/// full length.
pub(super) const STREAM: u32 = 64;
/// A Unix datagram socket: a send to a receiver whose queue is full gets
/// `EAGAIN` with no readiness edge to follow.
pub(super) const UNIX_DGRAM: u32 = 128;
/// The bits that say what kind of socket an fd is.
pub(super) const KIND: u32 = TCP | STREAM | UNIX_DGRAM;

#[derive(Default)]
pub(super) struct FdState {
    bits: AtomicU32,
    /// `SO_RCVTIMEO` and `SO_SNDTIMEO` in nanoseconds; 0 means none.
    rcv: AtomicU64,
    snd: AtomicU64,
    /// The open socket this fd names: fds made by a dup share it (and the
    /// kernel's socket options with it). 0 until the fd is first dup'd.
    socket: AtomicU64,
}

/// Identifies open sockets that more than one fd names.
static SOCKETS: AtomicU64 = AtomicU64::new(1);

static FDS: FdMap<FdState> = FdMap::new();

/// The bits of `fd`, or 0 if it is not known.
#[inline]
pub(super) fn bits(fd: RawFd) -> u32 {
    FDS.get(fd).map_or(0, |s| s.bits.load(Ordering::Acquire))
}

/// The bits of `fd`, classifying it first if it is not known. 0 if it
/// cannot be classified (not open): the call is made as it is.
pub(super) fn classify(fd: RawFd) -> u32 {
    let b = bits(fd);
    if b != 0 {
        return b;
    }
    let Some(file) = borrow(fd) else { return 0 };
    let Ok(st) = fstat(file) else { return 0 };
    let Ok(fl) = fcntl_getfl(file) else { return 0 };
    let nonblocking = fl.contains(OFlags::NONBLOCK);
    let (b, timeouts) = match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK if nonblocking => (KNOWN | USER_NB, None),
        libc::S_IFSOCK => {
            if fcntl_setfl(file, fl | OFlags::NONBLOCK).is_err() {
                return 0;
            }
            (
                KNOWN | OURS | sock_kind(fd),
                Some((
                    sock_timeout(fd, libc::SO_RCVTIMEO),
                    sock_timeout(fd, libc::SO_SNDTIMEO),
                )),
            )
        }
        libc::S_IFREG | libc::S_IFDIR | libc::S_IFBLK => (KNOWN | FILE, None),
        _ if nonblocking => (KNOWN | USER_NB, None),
        _ => (KNOWN | POLL_FIRST, None),
    };
    set(fd, b, timeouts.unwrap_or((0, 0)));
    b
}

/// `fd` borrowed for a call green makes on it for itself (`None` if it
/// is negative: no file).
fn borrow(fd: RawFd) -> Option<BorrowedFd<'static>> {
    // SAFETY: a number the caller's call names, used only for calls that
    // inspect or set its flags while that call is made; one closed
    // meanwhile makes them fail with `EBADF`, as libc's would.
    (fd >= 0).then(|| unsafe { BorrowedFd::borrow_raw(fd) })
}

/// The [`KIND`] bits of socket `fd`, asked of the kernel.
fn sock_kind(fd: RawFd) -> u32 {
    let opt = |name| crate::sys::socket::getsockopt_int(fd, libc::SOL_SOCKET, name).ok();
    match opt(libc::SO_TYPE) {
        Some(ty @ (libc::SOCK_STREAM | libc::SOCK_DGRAM)) => {
            kind_of(opt(libc::SO_DOMAIN).unwrap_or(libc::AF_UNSPEC), ty)
        }
        _ => 0,
    }
}

/// The [`KIND`] bits of a socket of `domain` and type `ty` (its
/// `SOCK_*` flags ignored).
pub(super) fn kind_of(domain: libc::c_int, ty: libc::c_int) -> u32 {
    let inet = matches!(domain, libc::AF_INET | libc::AF_INET6);
    match ty & 0xf {
        libc::SOCK_STREAM if inet => TCP | STREAM,
        libc::SOCK_STREAM => STREAM,
        libc::SOCK_DGRAM if domain == libc::AF_UNIX => UNIX_DGRAM,
        _ => 0,
    }
}

/// The socket timeout option `name` of `fd`, in nanoseconds (0: none).
fn sock_timeout(fd: RawFd, name: libc::c_int) -> u64 {
    match crate::sys::socket::getsockopt_timeout(fd, name) {
        Ok(Some(d)) => d.as_nanos().min(u64::MAX as u128) as u64,
        _ => 0,
    }
}

/// A `timeval` in nanoseconds (saturating; a negative part counts as 0).
pub(super) fn tv_nanos(tv: &libc::timeval) -> u64 {
    (tv.tv_sec.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(tv.tv_usec.max(0) as u64 * 1000)
}

/// Records `fd` as classified with `bits` and the timeouts (ns), naming
/// a file no other fd names.
pub(super) fn set(fd: RawFd, bits: u32, timeouts: (u64, u64)) {
    set_shared(fd, bits, timeouts, 0);
}

fn set_shared(fd: RawFd, bits: u32, (rcv, snd): (u64, u64), socket: u64) {
    if let Some(s) = FDS.get_or_make(fd) {
        s.rcv.store(rcv, Ordering::Relaxed);
        s.snd.store(snd, Ordering::Relaxed);
        s.socket.store(socket, Ordering::Relaxed);
        s.bits.store(bits, Ordering::Release);
    }
}

/// Forgets `fd` (it was closed, or is about to name another file).
pub(super) fn forget(fd: RawFd) {
    if let Some(s) = FDS.get(fd) {
        s.bits.store(0, Ordering::Release);
    }
}

/// `new` shares `old`'s open file description (a dup): it shares its state.
pub(super) fn copy(old: RawFd, new: RawFd) {
    match FDS.get(old) {
        Some(s) if s.bits.load(Ordering::Acquire) != 0 => {
            let b = s.bits.load(Ordering::Acquire);
            let mut socket = s.socket.load(Ordering::Relaxed);
            if socket == 0 {
                socket = SOCKETS.fetch_add(1, Ordering::Relaxed);
                s.socket.store(socket, Ordering::Relaxed);
            }
            set_shared(new, b, timeouts(old), socket);
        }
        _ => forget(new),
    }
}

/// The timeouts (ns) of `fd`.
pub(super) fn timeouts(fd: RawFd) -> (u64, u64) {
    FDS.get(fd).map_or((0, 0), |s| {
        (s.rcv.load(Ordering::Relaxed), s.snd.load(Ordering::Relaxed))
    })
}

/// The timeout of `fd` for `interest`, as its owner set it.
pub(super) fn timeout(fd: RawFd, interest: Interest) -> Option<Duration> {
    let (rcv, snd) = timeouts(fd);
    let ns = match interest {
        Interest::Read => rcv,
        Interest::Write => snd,
    };
    (ns != 0).then(|| Duration::from_nanos(ns))
}

/// When a blocking call for `interest` on `fd` that starts now times out,
/// by the socket's timeout.
pub(super) fn deadline(fd: RawFd, interest: Interest) -> Option<Instant> {
    timeout(fd, interest).and_then(|t| Instant::now().checked_add(t))
}

/// Records a timeout its owner set with `setsockopt`, for every fd that
/// names the same socket (the kernel keeps it per socket).
pub(super) fn set_timeout(fd: RawFd, interest: Interest, ns: u64) {
    let store = |s: &FdState| match interest {
        Interest::Read => s.rcv.store(ns, Ordering::Relaxed),
        Interest::Write => s.snd.store(ns, Ordering::Relaxed),
    };
    let Some(s) = FDS.get(fd) else { return };
    store(s);
    for_dups(s, store);
}

/// Calls `f` with the state of every other known fd that names the same
/// socket as `s` (a walk of the table, for calls made rarely).
fn for_dups(s: &FdState, f: impl Fn(&FdState)) {
    let socket = s.socket.load(Ordering::Relaxed);
    if socket == 0 {
        return;
    }
    FDS.for_each(|_, other| {
        if !std::ptr::eq(other, s)
            && other.socket.load(Ordering::Relaxed) == socket
            && other.bits.load(Ordering::Acquire) != 0
        {
            f(other);
        }
    });
}

/// Records the non-blocking mode its owner asked for on a known fd.
/// Returns whether green keeps the fd non-blocking underneath (the call
/// that asked for blocking mode must then not reach the kernel).
pub(super) fn set_user_nonblocking(fd: RawFd, on: bool) -> bool {
    let Some(s) = FDS.get(fd) else { return false };
    let b = s.bits.load(Ordering::Acquire);
    if b == 0 || b & FILE != 0 {
        return false;
    }
    let socket = b & (OURS | KIND) != 0 || (b & USER_NB != 0 && is_socket(fd));
    // A socket classified while its owner had it non-blocking was not
    // asked its kind; green waits on it from now on.
    let kind = if socket && b & KIND == 0 && b & OURS == 0 && !on {
        sock_kind(fd)
    } else {
        b & KIND
    };
    let new = if on {
        KNOWN | USER_NB | kind
    } else if socket {
        KNOWN | OURS | kind
    } else {
        KNOWN | POLL_FIRST
    };
    s.bits.store(new, Ordering::Release);
    // The flag belongs to the open file, which its dups share.
    for_dups(s, |other| other.bits.store(new, Ordering::Release));
    !on && socket
}

/// Whether `fd` is a socket.
fn is_socket(fd: RawFd) -> bool {
    borrow(fd)
        .and_then(|file| fstat(file).ok())
        .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
}

/// Gives every socket green made non-blocking back its blocking mode, and
/// forgets every fd (for `unpatch`).
pub(super) fn restore_all() {
    FDS.for_each(|fd, s| {
        let b = s.bits.swap(0, Ordering::AcqRel);
        if b & OURS != 0 {
            // A closed number fails; nothing to restore then.
            if let Some(file) = borrow(fd) {
                if let Ok(fl) = fcntl_getfl(file) {
                    let _ = fcntl_setfl(file, fl - OFlags::NONBLOCK);
                }
            }
        }
    });
}

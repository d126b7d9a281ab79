//! The data calls: `read`, `write`, `readv`, `writev`, `recv`,
//! `recvfrom`, `recvmsg`, `send`, `sendto`, `sendmsg`, and glibc's
//! fortified `__read_chk`, `__recv_chk`, `__recvfrom_chk`.
//!
//! Each interposer decides "pass through" with [`fd_passes`] before
//! anything else and then tail-calls libc. Otherwise [`fd_call_patched`]
//! decides by the fd's kind ([`fds`]): a socket green made non-blocking
//! goes through the hub's one I/O loop (`hub::io_loop`); a blocking pipe
//! or terminal waits for readiness first, then makes the call; a regular
//! file may go to the tpool; a plain thread gets blocking emulated.

use std::io;
use std::os::fd::RawFd;
use std::ptr::null_mut;
use std::time::Instant;

use libc::{c_int, c_void, iovec, msghdr, size_t, sockaddr, socklen_t, ssize_t};

use super::emulate::{emulate, emulate_until};
use super::{
    cancel_errno, cvt, fd_passes, fds, finish, green_hub, mark, poll_events, set_errno, shielded,
    state, tpool_call, H,
};
use crate::hub::{self, io_loop, trampoline, Hub, Interest};
use crate::patch::{EMULATE, FILES, NET};
use crate::sys::original;

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
pub(super) fn fd_call_patched(
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
pub(super) fn unsignalled(b: u32, interest: Interest) -> bool {
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

/// The summed length of an iovec array (for the readiness cache), or
/// `None` if it cannot be trusted.
///
/// # Safety
/// `iov` points to `cnt` iovecs.
pub(super) unsafe fn iov_total(iov: *const iovec, cnt: c_int) -> Option<usize> {
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
        Read, len: {
            // SAFETY: the caller's iovecs.
            unsafe { iov_total(iov, iovcnt) }
        }, pass: false,
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

//! Readiness waits: `poll`, `ppoll`, `select`, `epoll_wait`,
//! `epoll_pwait`, and glibc's fortified `__poll_chk`, `__ppoll_chk`.
//!
//! A green context's `poll` is a zero-timeout real `poll` of the caller's
//! set, and between tries one green wait on every fd of the set at once
//! ([`Hub::wait_any`]: one park, woken by the first readiness edge on any
//! of them). `select` is `poll` over the fds of its sets. An epoll fd is
//! itself readable when one of its fds is ready: `epoll_wait` parks on it
//! through the one I/O loop.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use libc::{c_int, epoll_event, fd_set, nfds_t, pollfd, sigset_t, size_t, timespec, timeval};

use super::{
    cancel_errno, cvt, fds, finish, green_hub, mark, set_errno, shielded, state, ts_duration, H,
};
use crate::hub::{io_loop, Hub, Interest};
use crate::patch::NET;
use crate::sys::original;

/// The deadline of a wait of `ms` milliseconds (negative: none).
fn ms_deadline(ms: c_int) -> Option<Instant> {
    (ms >= 0).then(|| Instant::now() + Duration::from_millis(ms as u64))
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
        if let Err(c) = shielded(hub, || wait_any(hub, set, deadline)) {
            set_errno(cancel_errno(c));
            return -1;
        }
    }
}

/// Parks until one of `set` may be ready or `deadline` passes: one green
/// wait on every fd of the set at once ([`Hub::wait_any`]). Errors are
/// left for the next `poll` to report.
fn wait_any(hub: &Hub, set: &[pollfd], deadline: Option<Instant>) {
    let mut waits: Vec<(RawFd, Interest)> = set
        .iter()
        .filter(|p| p.fd >= 0)
        .flat_map(|p| interests(p.events).map(|i| (p.fd, i)))
        .collect();
    let left = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
    if waits.is_empty() {
        crate::sleep(left().unwrap_or(Duration::from_secs(u32::MAX as u64)));
        return;
    }
    // An fd listed more than once waits for all its entries' events, once.
    waits.sort_unstable_by_key(|&(fd, i)| (fd, i == Interest::Write));
    waits.dedup();
    match hub.wait_any(&waits, deadline) {
        Err(e)
            if !matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::ConnectionAborted
            ) =>
        {
            // The hub's poller refuses every fd of the set: look again
            // after a short sleep.
            crate::sleep(Duration::from_millis(1).min(left().unwrap_or(Duration::MAX)));
        }
        _ => {}
    }
}

/// The directions a `poll` entry for `events` waits in: reading for
/// input, priority data or a peer's hang-up; writing for output; and
/// reading for an entry that asks for neither, which still reports errors
/// and hang-ups (the hub sees those in both directions).
fn interests(events: libc::c_short) -> impl Iterator<Item = Interest> {
    const READ: libc::c_short =
        libc::POLLIN | libc::POLLPRI | libc::POLLRDNORM | libc::POLLRDBAND | libc::POLLRDHUP;
    const WRITE: libc::c_short = libc::POLLOUT | libc::POLLWRNORM | libc::POLLWRBAND;
    let (read, write) = (events & READ != 0, events & WRITE != 0);
    [
        (read || !write).then_some(Interest::Read),
        write.then_some(Interest::Write),
    ]
    .into_iter()
    .flatten()
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
    let is_set = |k: usize, fd: c_int| {
        // SAFETY: a set the caller passed, checked non-null; `fd` is below
        // `nfds`, within the set.
        !sets[k].is_null() && unsafe { libc::FD_ISSET(fd, sets[k]) }
    };
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

#[inline(always)]
fn pollfds_fit(nfds: nfds_t, fdslen: size_t) -> bool {
    (fdslen / std::mem::size_of::<pollfd>()) as nfds_t >= nfds
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

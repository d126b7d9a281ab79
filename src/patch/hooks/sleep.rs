//! Sleeping and yielding: `nanosleep`, `clock_nanosleep`, `usleep`,
//! `sleep`, `sched_yield`.
//!
//! A green context sleeps on the hub's timers; `sched_yield` yields to the
//! hub's other green threads. `sched_yield` also answers the link probe
//! ([`super::reached`]).

use std::sync::atomic::Ordering;
use std::time::Duration;

use libc::{c_int, c_uint, clockid_t, timespec, useconds_t};

use super::{green_hub, mark, shielded, state, ts_duration, H, PROBE, PROBED};
use crate::hub::Hub;
use crate::patch::SLEEP;
use crate::sys::original;
use crate::sys::time::{clock_gettime, ClockId};

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
        if let Some(d) = (!req.is_null())
            .then(|| {
                // SAFETY: the caller's timespec, checked non-null.
                unsafe { ts_duration(&*req) }
            })
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

/// The time of `clock` now (`CLOCK_REALTIME`, `CLOCK_MONOTONIC` or
/// `CLOCK_BOOTTIME`; `None` for another).
pub(super) fn clock_now(clock: clockid_t) -> Option<Duration> {
    let id = ClockId::try_from(clock).ok()?;
    Duration::try_from(clock_gettime(id)).ok()
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
        if let Some(t) = (!req.is_null())
            .then(|| {
                // SAFETY: the caller's timespec, checked non-null.
                unsafe { ts_duration(&*req) }
            })
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

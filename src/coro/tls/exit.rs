//! A green thread's exit, under its own thread pointer.
//!
//! What glibc runs when a thread ends, in its order: the `thread_local!`
//! destructors (`__call_tls_dtors`), the pthread-key destructors (as
//! `__nptl_deallocate_tsd` does, from `__pthread_keys`), then libc's
//! per-thread buffers and resolver sockets are freed. Malloc's cache and
//! arena are left alone: they are the OS thread's, shared.

use std::ffi::c_void;

use super::layout::{KeyData, DESTRUCTOR_ROUNDS, KEYS_2ND, KEYS_MAX};
use super::{current_tp, layout, on_own_block, rd, wr, Layout};

/// Runs a thread's exit under the current green thread's own block: its
/// `thread_local!` destructors, its pthread-key destructors, and libc's
/// per-thread state (message buffers, resolver sockets, `dlerror`'s
/// message). Does nothing elsewhere. It may run again, later in the green
/// thread's end, for what code after the first run set up.
pub(crate) fn run_exit() {
    if !on_own_block() {
        return;
    }
    let Ok(l) = layout() else { return };
    let tcb = current_tp();
    let pd = l.pd(tcb);
    // SAFETY: under the block's own thread pointer, as at a thread's exit;
    // the offsets were validated by `Layout::discover`.
    unsafe {
        (l.call_tls_dtors)();
        run_key_destructors(l, pd);
        if let Some(ts) = l.tls_state {
            for off in [ts, ts + 8] {
                crate::sys::tls::free(rd::<*mut c_void>(pd, off as isize));
                wr(pd, off as isize, std::ptr::null_mut::<c_void>());
            }
        }
        if let Some((res, _)) = l.res {
            // `options & RES_INIT`: set up by a resolver call (which sets
            // its socket fields too; a zeroed state has socket 0).
            if rd::<libc::c_ulong>(pd, res as isize + 8) & 1 != 0 {
                crate::sys::tls::res_nclose((pd + res) as *mut c_void);
            }
        }
        // dlerror's message, if any: taken, then freed by the next call.
        crate::sys::tls::dlerror_clear();
        // Malloc's cache and arena stay: they are the OS thread's, shared,
        // and code after this may still allocate.
    }
}

/// What glibc's `__nptl_deallocate_tsd` does at a thread's exit.
///
/// # Safety
/// `pd` is the running block's `struct pthread`; `l` its validated layout.
unsafe fn run_key_destructors(l: &Layout, pd: usize) {
    // SAFETY: `specific_used` is a bool of the running struct pthread.
    if unsafe { rd::<u8>(pd, l.specific_used as isize) } == 0 {
        return;
    }
    for _ in 0..DESTRUCTOR_ROUNDS {
        let mut again = false;
        for idx in 0..KEYS_MAX {
            // SAFETY: `specific[idx / 32]` is null or a block of 32 key
            // values of this thread.
            let level2 =
                unsafe { rd::<*mut KeyData>(pd, (l.specific + 8 * (idx / KEYS_2ND)) as isize) };
            if level2.is_null() {
                continue;
            }
            // SAFETY: as above; `__pthread_keys` has KEYS_MAX entries.
            let (kd, key) = unsafe { (&mut *level2.add(idx % KEYS_2ND), &*l.keys.add(idx)) };
            let data = std::mem::replace(&mut kd.data, std::ptr::null_mut());
            if data.is_null() {
                continue;
            }
            // In use (odd sequence) and set under the current sequence.
            if key.seq & 1 == 1 && kd.seq == key.seq {
                if let Some(destr) = key.destr {
                    // SAFETY: the key's destructor, called as glibc would.
                    unsafe { destr(data) };
                    again = true;
                }
            }
        }
        if !again {
            break;
        }
    }
    for i in 1..32 {
        // SAFETY: second-level blocks past the first are malloc'd by
        // pthread_setspecific and owned by the thread.
        unsafe {
            let p = rd::<*mut c_void>(pd, (l.specific + 8 * i) as isize);
            if !p.is_null() {
                crate::sys::tls::free(p);
                wr(
                    pd,
                    (l.specific + 8 * i) as isize,
                    std::ptr::null_mut::<c_void>(),
                );
            }
        }
    }
    // SAFETY: as at the top.
    unsafe { wr(pd, l.specific_used as isize, 0u8) };
}

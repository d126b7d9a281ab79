//! The interposers that thread identity needs: calls that must see the OS
//! thread as themselves, and `pthread_join`, which must not hold the hub.
//!
//! A green thread with an identity of its own runs with its own TCB as
//! glibc's "current thread". Creating a thread, forking, and changing
//! credentials (glibc's `set*id` signals every thread it knows and waits
//! for each) must be done as the OS thread: these interposers switch to the
//! OS thread's thread pointer around the real call. They do so whether or
//! not `patch()` is in effect, since identity can be asked for without it;
//! elsewhere they call libc at once.
//!
//! `dlopen` gives the blocks of green threads what glibc gives the threads
//! it knows: a newly loaded library's initial-exec TLS, initialised.
//!
//! `pthread_join` on a green context (patched, `sync`) waits for the thread
//! on the tpool, so that joining an OS thread (`std::thread::JoinHandle`,
//! `thread::scope`) parks only the green thread.

use libc::{c_char, c_int, c_void, gid_t, pid_t, pthread_attr_t, pthread_t, size_t, uid_t};

use super::{green_hub, mark, state, tpool_call, SendPtr, H};
use crate::coro::tls::under_os_tp;
use crate::patch::SYNC;
use crate::sys::original;

/// # Safety
/// libc's `pthread_create`.
#[no_mangle]
pub unsafe extern "C" fn pthread_create(
    thread: *mut pthread_t,
    attr: *const pthread_attr_t,
    start: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> c_int {
    if crate::coro::tls::on_own_block() {
        mark(H::pthread_create);
    }
    // SAFETY: the caller's arguments, passed on unchanged.
    under_os_tp(false, || unsafe {
        original::pthread_create(thread, attr, start, arg)
    })
}

/// # Safety
/// libc's `thrd_create` (C11 threads: glibc starts them without going
/// through `pthread_create`).
#[no_mangle]
pub unsafe extern "C" fn thrd_create(
    thread: *mut libc::c_ulong,
    start: extern "C" fn(*mut c_void) -> c_int,
    arg: *mut c_void,
) -> c_int {
    if crate::coro::tls::on_own_block() {
        mark(H::thrd_create);
    }
    // SAFETY: the caller's arguments, passed on unchanged.
    under_os_tp(false, || unsafe {
        original::thrd_create(thread, start, arg)
    })
}

/// # Safety
/// libc's `pthread_join`.
#[no_mangle]
pub unsafe extern "C" fn pthread_join(thread: pthread_t, retval: *mut *mut c_void) -> c_int {
    let Some(hub) = green_hub(state(), SYNC) else {
        // SAFETY: the caller's arguments.
        return unsafe { original::pthread_join(thread, retval) };
    };
    mark(H::pthread_join);
    // A thread that has ended is joined at once.
    // SAFETY: the caller's arguments; it never blocks.
    let rc = unsafe { crate::sys::pthread::try_join(thread, retval) };
    if rc != libc::EBUSY {
        return rc;
    }
    // The result comes through a heap copy: the caller's frame may sit on
    // a shared stack while the pool thread writes.
    let mut out: Box<*mut c_void> = Box::new(std::ptr::null_mut());
    let p = SendPtr(&mut *out);
    let t = thread as usize;
    let rc = tpool_call(hub, move || {
        let p = p;
        // SAFETY: joining the caller's thread; `p` is the heap copy, alive
        // until tpool_call returns.
        (unsafe { original::pthread_join(t as pthread_t, p.0) }) as isize
    });
    if rc < 0 {
        return libc::ECANCELED;
    }
    if rc == 0 && !retval.is_null() {
        // SAFETY: the caller's out pointer.
        unsafe { *retval = *out };
    }
    rc as c_int
}

/// # Safety
/// libc's `dlopen`.
#[no_mangle]
pub unsafe extern "C" fn dlopen(file: *const c_char, mode: c_int) -> *mut c_void {
    let before = crate::coro::tls::tls_modules();
    // SAFETY: the caller's arguments.
    let handle = unsafe { original::dlopen(file, mode) };
    // Where no block was ever made, glibc initialised every thread there is.
    if let (false, Some(layout)) = (handle.is_null(), crate::coro::tls::layout_found()) {
        mark(H::dlopen);
        let now = crate::coro::tls::tls_modules();
        crate::coro::tls::init_new_static_tls(layout, &before, &now);
    }
    handle
}

/// # Safety
/// libc's `fork`.
#[no_mangle]
pub unsafe extern "C" fn fork() -> pid_t {
    if crate::coro::tls::on_own_block() {
        mark(H::fork);
    }
    // SAFETY: fork has no arguments; the child carries on as the caller.
    under_os_tp(true, || unsafe { original::fork() })
}

/// # Safety
/// libc's `_Fork`.
#[no_mangle]
pub unsafe extern "C" fn _Fork() -> pid_t {
    if crate::coro::tls::on_own_block() {
        mark(H::_Fork);
    }
    // SAFETY: as `fork`.
    under_os_tp(true, || unsafe { original::_Fork() })
}

/// Interposers that make their real call as the OS thread.
macro_rules! as_os_thread {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            /// # Safety
            #[doc = concat!("libc's `", stringify!($name), "`.")]
            #[no_mangle]
            pub unsafe extern "C" fn $name($($arg: $ty),*) -> c_int {
                if crate::coro::tls::on_own_block() {
                    mark(H::$name);
                }
                // SAFETY: the caller's arguments, passed on unchanged.
                under_os_tp(false, || unsafe { original::$name($($arg),*) })
            }
        )*
    };
}

as_os_thread! {
    setuid(uid: uid_t);
    setgid(gid: gid_t);
    seteuid(uid: uid_t);
    setegid(gid: gid_t);
    setreuid(ruid: uid_t, euid: uid_t);
    setregid(rgid: gid_t, egid: gid_t);
    setresuid(ruid: uid_t, euid: uid_t, suid: uid_t);
    setresgid(rgid: gid_t, egid: gid_t, sgid: gid_t);
    setgroups(size: size_t, list: *const gid_t);
}

//! The calling thread's `errno`, read and set.
//!
//! rustix reports errors as values and never touches `errno`; the
//! interposers, which answer C callers, must set it as libc would. The
//! variable is libc's (a thread-local behind `__errno_location`): under
//! per-green-thread identity each green thread has its own.

/// The calling thread's `errno`.
#[inline]
pub(crate) fn errno() -> libc::c_int {
    // SAFETY: `__errno_location` returns the calling thread's errno
    // variable, valid for as long as the thread (or the green thread whose
    // identity it runs under) lives.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's `errno` to `e`.
#[inline]
pub(crate) fn set_errno(e: libc::c_int) {
    // SAFETY: as in `errno`: the calling thread's own variable.
    unsafe { *libc::__errno_location() = e };
}

//! The POSIX thread library's own calls that green makes for itself: a
//! fork handler, and a join that does not wait.
//!
//! These are libc's behaviour, not system calls: glibc runs fork handlers
//! and keeps the table of threads that `pthread_tryjoin_np` consults.

/// Registers `child` to run in the child of every later `fork`, right
/// after it (glibc's `pthread_atfork` with only a child handler).
///
/// # Errors
/// `ENOMEM` if glibc cannot record the handler.
///
/// # Safety
/// `child` runs in the child of a process that may have had other
/// threads: only this thread exists there, and a lock another thread held
/// at the fork stays held for ever. It must do only what is safe then
/// (atomic operations; no allocation, no lock, no libc call that takes
/// one).
pub(crate) unsafe fn at_fork_child(child: extern "C" fn()) -> std::io::Result<()> {
    // SAFETY: registers a handler; the caller vouches for what it does in
    // the child.
    match unsafe { libc::pthread_atfork(None, None, Some(child)) } {
        0 => Ok(()),
        e => Err(std::io::Error::from_raw_os_error(e)),
    }
}

/// Joins `thread` if it has ended: its result is written to `retval` (if
/// not null) and 0 returned; `EBUSY` if it is still running, or the error
/// of the join (glibc's `pthread_tryjoin_np`). Never blocks.
///
/// # Safety
/// `thread` is a joinable thread not yet joined or detached; `retval` is
/// null or valid for a write.
pub(crate) unsafe fn try_join(
    thread: libc::pthread_t,
    retval: *mut *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: the caller's contract.
    unsafe { libc::pthread_tryjoin_np(thread, retval) }
}

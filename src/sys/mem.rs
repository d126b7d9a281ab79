//! What green's stacks need of memory management beyond rustix's `mm`.
//!
//! Mapping, protecting and unmapping go through [`crate::sys::mm`]
//! (rustix). Here: the page size, and guard pages installed with `madvise`
//! advice newer than rustix's `Advice` knows.

use rustix::io::Errno;

/// The size of a page, as libc reports it (`sysconf(_SC_PAGESIZE)`).
///
/// Not cached: callers keep it.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// `madvise` advice that turns pages into guard pages without splitting
/// the mapping (Linux 6.13 and later).
const MADV_GUARD_INSTALL: usize = 102;

/// Makes `[addr, addr + len)` guard pages: any access to them faults.
///
/// Fails with `EINVAL` (or `ENOSYS`) where the kernel has no such advice.
///
/// # Safety
/// The range must be whole pages of a private anonymous mapping the
/// caller owns, none of it in use: its contents are discarded.
pub(crate) unsafe fn guard_install(addr: *mut libc::c_void, len: usize) -> Result<(), Errno> {
    // SAFETY: madvise on the caller's range (its contract).
    unsafe {
        super::raw::syscall(
            libc::SYS_madvise,
            addr as usize,
            len,
            MADV_GUARD_INSTALL,
            0,
            0,
            0,
        )
    }
    .map(drop)
}

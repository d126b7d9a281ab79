//! Copies made in the kernel between fds: `sendfile`, `sendfile64`,
//! `splice` (and the same calls made with `syscall`, which std's
//! `io::copy` uses).
//!
//! A copy waits as a data call on one of its fds would ([`copy_wait`]),
//! then is made by [`super::data`]'s machinery.

use std::os::fd::RawFd;

use libc::{c_int, c_uint, loff_t, off64_t, off_t, size_t, ssize_t};

use super::data::fd_call_patched;
use super::{fd_passes, fds, green_hub, state, H};
use crate::hub::Interest;
use crate::patch::NET;
use crate::sys::original;

/// A copy made in the kernel, from one fd to another.
#[derive(Clone, Copy)]
pub(super) enum Bulk {
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
pub(super) fn copy_call(
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

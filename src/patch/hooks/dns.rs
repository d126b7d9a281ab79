//! Name resolution: `getaddrinfo`, run on the tpool for a green context
//! (glibc's resolver blocks, and its own behaviour is what callers want).

use libc::{addrinfo, c_char, c_int};

use super::{errno, green_hub, mark, state, tpool_call, H};
use crate::patch::DNS;
use crate::sys::original;

/// # Safety
/// libc's `getaddrinfo`.
#[no_mangle]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    let Some(hub) = green_hub(state(), DNS) else {
        // SAFETY: the caller's arguments.
        return unsafe { original::getaddrinfo(node, service, hints, res) };
    };
    mark(H::getaddrinfo);
    // The pool thread gets copies on the heap: the caller's frames may sit
    // on a shared stack, which moves while it is parked.
    // SAFETY: the caller passes NUL-terminated strings or null, and a
    // valid `addrinfo` or null.
    let (node, service, hints) = unsafe {
        (
            (!node.is_null()).then(|| std::ffi::CStr::from_ptr(node).to_owned()),
            (!service.is_null()).then(|| std::ffi::CStr::from_ptr(service).to_owned()),
            (!hints.is_null()).then(|| Box::new(std::ptr::read(hints))),
        )
    };
    struct List(*mut addrinfo);
    // SAFETY: a list getaddrinfo made, owned by whoever holds it.
    unsafe impl Send for List {}
    struct Hints(Option<Box<addrinfo>>);
    // SAFETY: a copy of the caller's hints; its pointers are only read.
    unsafe impl Send for Hints {}
    let hints = Hints(hints);
    let list = std::sync::Mutex::new(List(std::ptr::null_mut()));
    let n = tpool_call(hub, || {
        let hints = hints;
        let mut out = std::ptr::null_mut();
        let p = |s: &Option<std::ffi::CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
        let h = hints
            .0
            .as_deref()
            .map_or(std::ptr::null(), |h| h as *const addrinfo);
        // SAFETY: valid strings or null, hints or null, an out pointer.
        let n = unsafe { original::getaddrinfo(p(&node), p(&service), h, &mut out) };
        list.lock().unwrap_or_else(|e| e.into_inner()).0 = out;
        n as isize
    }) as c_int;
    if n == 0 {
        // SAFETY: the caller's out pointer.
        unsafe { *res = list.into_inner().unwrap_or_else(|e| e.into_inner()).0 };
    } else if n == -1 && errno() == libc::ECANCELED {
        return libc::EAI_SYSTEM;
    }
    n
}

//! Every live [`Block`](super::Block) of the process, and what `dlopen`
//! needs of them.
//!
//! glibc initialises a library's *initial-exec* TLS (static TLS, taken from
//! the surplus it keeps for `dlopen`) in every thread it knows when the
//! library is loaded. It does not know green threads' blocks, so the
//! `dlopen` interposer calls [`init_new_static_tls`], which copies each
//! newly loaded module's init image into every live block. The blocks are
//! kept in a list threaded through their TCB's own `list` node (which glibc
//! uses the same way for the threads it knows), under one lock.

use std::cell::UnsafeCell;
use std::ffi::{c_int, c_void};
use std::sync::Mutex;

use super::{current_tp, Layout};

/// The list head: `[next, prev]` node addresses; zero until first used.
struct Head(UnsafeCell<[usize; 2]>);

// SAFETY: only touched with `LOCK` held.
unsafe impl Sync for Head {}

static HEAD: Head = Head(UnsafeCell::new([0, 0]));
static LOCK: Mutex<()> = Mutex::new(());

/// The list node of block `tcb`, at offset `list` of its TCB.
fn node(list: usize, tcb: usize) -> *mut [usize; 2] {
    (tcb + list) as *mut [usize; 2]
}

/// The head, self-linked on first use. `LOCK` must be held.
fn head() -> *mut [usize; 2] {
    let h = HEAD.0.get();
    // SAFETY: the caller holds LOCK.
    unsafe {
        if (*h)[0] == 0 {
            *h = [h as usize, h as usize];
        }
    }
    h
}

/// Adds a new block to the list.
///
/// # Safety
/// `tcb` is a block made with layout `l`, not yet on the list.
pub(super) unsafe fn link(l: &Layout, tcb: usize) {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let h = head();
    let n = node(l.list, tcb);
    // SAFETY: `n` is the block's list node; `h` and its neighbours are
    // live nodes (the head or blocks on the list), all under LOCK.
    unsafe {
        let next = (*h)[0] as *mut [usize; 2];
        *n = [next as usize, h as usize];
        (*next)[1] = n as usize;
        (*h)[0] = n as usize;
    }
}

/// Takes a block off the list.
///
/// # Safety
/// `tcb` is on the list (linked by [`link`] with a layout whose list node
/// lies at `list`).
pub(super) unsafe fn unlink(list: usize, tcb: usize) {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let n = node(list, tcb);
    // SAFETY: `n` is on the list, so its neighbours are live nodes.
    unsafe {
        let [next, prev] = *n;
        (*(prev as *mut [usize; 2]))[0] = next;
        (*(next as *mut [usize; 2]))[1] = prev;
        *n = [n as usize, n as usize];
    }
}

/// A loaded module with TLS, and its init image.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct TlsModule {
    modid: usize,
    base: usize,
    image: usize,
    filesz: usize,
    memsz: usize,
}

/// The loaded modules that have TLS.
pub(crate) fn tls_modules() -> Vec<TlsModule> {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: dl_iterate_phdr passes a valid info and our `data`.
        let (info, out) = unsafe { (&*info, &mut *(data as *mut Vec<TlsModule>)) };
        if info.dlpi_tls_modid == 0 {
            return 0;
        }
        // SAFETY: `dlpi_phnum` headers at `dlpi_phdr`.
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        if let Some(h) = phdrs.iter().find(|h| h.p_type == libc::PT_TLS) {
            out.push(TlsModule {
                modid: info.dlpi_tls_modid,
                base: info.dlpi_addr as usize,
                image: info.dlpi_addr as usize + h.p_vaddr as usize,
                filesz: h.p_filesz as usize,
                memsz: h.p_memsz as usize,
            });
        }
        0
    }
    let mut out: Vec<TlsModule> = Vec::new();
    // SAFETY: the callback only reads what it is given.
    unsafe { libc::dl_iterate_phdr(Some(each), &mut out as *mut Vec<TlsModule> as *mut c_void) };
    out
}

extern "C" {
    fn _dl_get_tls_static_info(size: *mut usize, align: *mut usize);
    fn __tls_get_addr(index: *const [usize; 2]) -> *mut c_void;
}

/// Copies the init image of every module in `now` but not in `before`
/// whose TLS is static into every live block: what glibc does for the
/// threads it knows.
pub(crate) fn init_new_static_tls(l: &Layout, before: &[TlsModule], now: &[TlsModule]) {
    let tp = current_tp();
    let mut size = 0usize;
    let mut align = 0usize;
    // SAFETY: writes the two sizes.
    unsafe { _dl_get_tls_static_info(&mut size, &mut align) };
    let lo = tp.saturating_sub(size);
    // Where each new module's TLS lies in the calling thread's block:
    // `__tls_get_addr` brings this thread's DTV up to date and answers with
    // the module's static area (below the thread pointer) if it has one.
    let new: Vec<(isize, &TlsModule)> = now
        .iter()
        .filter(|m| !before.contains(m))
        .filter_map(|m| {
            // SAFETY: a `tls_index` of a loaded module, offset 0.
            let at = unsafe { __tls_get_addr(&[m.modid, 0]) } as usize;
            (at >= lo && at < tp).then_some((at as isize - tp as isize, m))
        })
        .collect();
    if new.is_empty() {
        return;
    }
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let h = head();
    // SAFETY: every node on the list is a live block's (under LOCK); each
    // module's area lies in the static TLS of every block, as in the
    // calling thread's, and its image is `filesz` bytes of the module.
    unsafe {
        let mut n = (*h)[0];
        while n != h as usize {
            let tcb = n - l.list;
            for (offset, m) in &new {
                let dst = (tcb as isize + offset) as *mut u8;
                std::ptr::copy_nonoverlapping(m.image as *const u8, dst, m.filesz);
                std::ptr::write_bytes(dst.add(m.filesz), 0, m.memsz - m.filesz);
            }
            n = (*(n as *const [usize; 2]))[0];
        }
    }
}

//! Where glibc keeps a thread's fields: found once per process, checked.
//!
//! The offsets of `struct pthread`'s fields beyond the fixed header differ
//! between glibc versions and architectures. Instead of a table of
//! versions, [`Layout::discover`] starts a probe thread that reports what
//! glibc itself says of it (its tid, its robust list head from the kernel,
//! a pthread key's value, its resolver state and message buffers,
//! `pthread_getattr_np`'s stack), finds each value in a copy of its
//! `struct pthread`, and checks that the fields around each lie where
//! glibc's struct puts them. Then it finds malloc's per-thread slots in
//! libc's TLS: the words a first `malloc` changes in a fresh block. If
//! anything does not match, identity is not supported here, and why.

use std::ffi::{c_void, CStr};
use std::sync::OnceLock;

use rustix::io::Errno;

use super::switch::fsgsbase;
use super::{current_tp, fork, live, os_tp, rd, set_tp, Block};

/// The running thread's kernel thread id.
fn gettid() -> i32 {
    crate::sys::thread::gettid().as_raw_nonzero().get()
}

/// What [`Layout::discover`] needs of the dynamic linker and libc.
pub(super) type AllocTls = unsafe extern "C" fn(*mut c_void) -> *mut c_void;
pub(super) type DeallocTls = unsafe extern "C" fn(*mut c_void, bool);
pub(super) type VoidFn = unsafe extern "C" fn();

/// glibc's `struct pthread_key_struct`: one per key in `__pthread_keys`.
#[repr(C)]
pub(super) struct KeyStruct {
    pub(super) seq: usize,
    pub(super) destr: Option<unsafe extern "C" fn(*mut c_void)>,
}

/// glibc's `struct pthread_key_data`: a key's value in one thread.
#[repr(C)]
pub(super) struct KeyData {
    pub(super) seq: usize,
    pub(super) data: *mut c_void,
}

/// `PTHREAD_KEYS_MAX`, and keys per second-level block.
pub(super) const KEYS_MAX: usize = 1024;
pub(super) const KEYS_2ND: usize = 32;
/// `PTHREAD_DESTRUCTOR_ITERATIONS`.
pub(super) const DESTRUCTOR_ROUNDS: usize = 4;

/// The fixed part of x86-64's `tcbhead_t`.
#[cfg(target_arch = "x86_64")]
pub(super) mod head {
    pub(in crate::coro::tls) const TCB: usize = 0x00;
    pub(in crate::coro::tls) const SELF: usize = 0x10;
    pub(in crate::coro::tls) const MULTIPLE_THREADS: usize = 0x18;
    pub(in crate::coro::tls) const SYSINFO: usize = 0x20;
    pub(in crate::coro::tls) const STACK_GUARD: usize = 0x28;
    pub(in crate::coro::tls) const POINTER_GUARD: usize = 0x30;
    pub(in crate::coro::tls) const FEATURE_1: usize = 0x48;
    /// Offsets below this are `tcbhead_t`'s; glibc's own fields follow.
    pub(in crate::coro::tls) const END: usize = 0x50;
}

/// The fixed part of AArch64's `struct pthread`: its `header`, which glibc
/// pads to 24 words (its fields follow that; zeros before them). The
/// `tcbhead_t` at the thread pointer (`dtv`, `private`) is filled in by
/// `_dl_allocate_tls`; the stack and pointer guards are globals.
#[cfg(target_arch = "aarch64")]
pub(super) mod head {
    /// `header.multiple_threads` (then `header.gscope_flag`).
    pub(in crate::coro::tls) const MULTIPLE_THREADS: usize = 0x00;
    /// Offsets below this are the header's; glibc's own fields follow.
    pub(in crate::coro::tls) const END: usize = 0x08;
}

/// Where glibc keeps each per-thread field this module fills in, found by
/// [`Layout::discover`]: offsets from the thread's `struct pthread`, which
/// begins at the thread pointer on x86-64 and lies below it on AArch64
/// (see `pd`), except those marked TP-relative.
#[derive(Debug)]
pub(crate) struct Layout {
    pub(super) alloc: AllocTls,
    pub(super) dealloc: DeallocTls,
    pub(super) call_tls_dtors: VoidFn,
    pub(super) ctype_init: VoidFn,
    pub(super) keys: *const KeyStruct,
    /// `wrfsbase` is allowed (`HWCAP2_FSGSBASE`; x86-64 only).
    pub(super) fsgsbase: bool,
    /// Where `struct pthread` begins, from the thread pointer: 0 on x86-64,
    /// minus its size on AArch64.
    pub(super) pd: isize,
    /// `pid_t tid`; the `list_t list` node lies just before it.
    pub(super) tid: usize,
    pub(super) list: usize,
    /// `struct robust_list_head robust_head`.
    pub(super) robust: usize,
    /// `specific_1stblock`, then `specific[32]`, then `bool specific_used`,
    /// and two bools later `bool user_stack`.
    pub(super) specific_1st: usize,
    pub(super) specific: usize,
    pub(super) specific_used: usize,
    pub(super) user_stack: usize,
    /// `stackblock`, `stackblock_size`, `guardsize`, `reported_guardsize`.
    pub(super) stack: usize,
    /// `struct __res_state res`, and libc's TLS `__resp` (TP-relative).
    pub(super) res: Option<(usize, isize)>,
    /// `tls_state.strsignal_buf` (`strerror_l_buf` follows).
    pub(super) tls_state: Option<usize>,
    /// The rseq area (TP-relative), where glibc has one (registered with
    /// the kernel or not).
    pub(super) rseq: Option<isize>,
    /// libc's `tcache` and `thread_arena` TLS slots (TP-relative).
    pub(super) malloc_slots: Vec<isize>,
}

// SAFETY: the raw pointer is `__pthread_keys`, a static of libc that is
// only read.
unsafe impl Send for Layout {}
// SAFETY: as above.
unsafe impl Sync for Layout {}

static LAYOUT: OnceLock<Result<Layout, String>> = OnceLock::new();

/// The layout, if identity is supported and validated here; otherwise why
/// not.
pub(crate) fn layout() -> Result<&'static Layout, &'static str> {
    match LAYOUT.get_or_init(Layout::discover) {
        Ok(l) => Ok(l),
        Err(e) => Err(e.as_str()),
    }
}

/// The layout, if it was found already (never starts the search).
pub(crate) fn layout_found() -> Option<&'static Layout> {
    LAYOUT.get().and_then(|r| r.as_ref().ok())
}

/// A symbol of glibc's, versioned (`GLIBC_PRIVATE`) or not.
fn sym(name: &CStr, version: Option<&CStr>) -> Option<usize> {
    crate::sys::tls::symbol(name, version)
}

/// What the probe thread saw of itself.
struct Probe {
    key: libc::pthread_key_t,
    tp: usize,
    /// `pthread_self()`: its `struct pthread`.
    pd: usize,
    tid: i32,
    /// `&robust_head`, from the kernel (0 where it keeps no robust list).
    robust: usize,
    res: usize,
    resp: usize,
    strsignal: usize,
    strerror: usize,
    stack_top: usize,
    stack_size: usize,
    guard: usize,
    /// `list.next->prev == &list`, for each candidate offset tested.
    list_ok: bool,
    list_off: usize,
    /// The first bytes of its `struct pthread`.
    tcb: Vec<u8>,
}

const MAGIC: usize = 0x6772_6565_6e5f_6b79;

/// The word at `addr`, read through the kernel so that an address that is
/// not mapped gives `None` instead of a fault (where the kernel refuses
/// the call, it is read directly).
fn read_word(addr: usize) -> Option<usize> {
    match crate::sys::tls::read_own_word(addr) {
        Ok(v) => Some(v),
        // SAFETY: the caller found `addr` in a thread's list node, which
        // glibc keeps pointing at another live node.
        Err(e) if e == Errno::NOSYS || e == Errno::PERM => Some(unsafe { *(addr as *const usize) }),
        Err(_) => None,
    }
}

extern "C" fn probe_main(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the `Probe` the creator owns until it joins.
    let p = unsafe { &mut *(arg as *mut Probe) };
    p.list_ok = false;
    p.tp = current_tp();
    p.pd = crate::sys::tls::pthread_self();
    p.tid = gettid();
    if let Ok(head) = crate::sys::tls::robust_list_head() {
        p.robust = head;
    }
    crate::sys::tls::pthread_setspecific(p.key, MAGIC as *const c_void);
    p.res = crate::sys::tls::res_state();
    if let Some(r) = sym(c"__resp", None) {
        p.resp = r;
    }
    p.strsignal = crate::sys::tls::strsignal_buf(1234);
    p.strerror = crate::sys::tls::strerror_buf(99_999);
    if let Some((addr, size, guard)) = crate::sys::tls::own_stack() {
        p.guard = guard;
        p.stack_top = addr + size;
        p.stack_size = size;
    }
    // The TCB lies at the top of the thread's stack block: read no
    // further than that.
    let len = scan_len(p);
    // SAFETY: `len` bytes of this thread's own struct pthread (see
    // `scan_len`), only read.
    p.tcb = unsafe { std::slice::from_raw_parts(p.pd as *const u8, len) }.to_vec();
    let tid_off = find_i32(&p.tcb, p.tid, head::END);
    if let Some(t) = tid_off.filter(|&t| t >= 16 + head::END) {
        let list = p.pd + t - 16;
        // SAFETY: the `list` node of this thread's struct pthread, inside
        // the bytes just read.
        let next = unsafe { *(list as *const usize) };
        p.list_off = t - 16;
        p.list_ok = next != 0 && read_word(next + 8) == Some(list);
    }
    std::ptr::null_mut()
}

/// What x86-64's layout must satisfy beyond the checks all targets share:
/// `struct pthread` begins at the thread pointer (its header's fields are
/// at fixed offsets).
#[cfg(target_arch = "x86_64")]
fn check_arch(_p: &Probe, pd: isize, _rseq: Option<isize>) -> Result<(), &'static str> {
    if pd != 0 {
        return Err("struct pthread at the thread pointer");
    }
    Ok(())
}

/// What AArch64's layout must satisfy beyond the checks all targets
/// share: `struct pthread` ends at the thread pointer (every field found
/// lies in it: the scan reads no further), its header says the probe is
/// one of several threads (as `pthread_create` sets it), and the rseq
/// area is in it.
#[cfg(target_arch = "aarch64")]
fn check_arch(p: &Probe, pd: isize, rseq: Option<isize>) -> Result<(), &'static str> {
    let size = pd.unsigned_abs();
    if pd >= 0 || size <= head::END || p.tcb.len() != size {
        return Err("struct pthread below the thread pointer");
    }
    let at = head::MULTIPLE_THREADS;
    if i32::from_ne_bytes(p.tcb[at..at + 4].try_into().expect("4 bytes")) != 1 {
        return Err("header.multiple_threads");
    }
    if rseq.is_some_and(|r| r < pd || r + 32 > 0) {
        return Err("rseq area");
    }
    Ok(())
}

/// How many bytes of the probe's `struct pthread` to read: x86-64's
/// begins at the thread pointer and ends below the top of the stack
/// block.
#[cfg(target_arch = "x86_64")]
fn scan_len(p: &Probe) -> usize {
    p.stack_top.saturating_sub(p.tp).min(4096)
}

/// How many bytes of the probe's `struct pthread` to read: AArch64's lies
/// between `pthread_self()` and the thread pointer, below the TCB and
/// static TLS at the top of the stack block. Nothing if they are not so.
#[cfg(target_arch = "aarch64")]
fn scan_len(p: &Probe) -> usize {
    if p.pd < p.tp && p.tp < p.stack_top {
        (p.tp - p.pd).min(4096)
    } else {
        0
    }
}

/// The only 4-aligned offset at or past `from` where `bytes` hold `v`.
fn find_i32(bytes: &[u8], v: i32, from: usize) -> Option<usize> {
    let mut found = None;
    for off in (from..bytes.len().saturating_sub(3)).step_by(4) {
        if i32::from_ne_bytes(bytes[off..off + 4].try_into().ok()?) == v {
            if found.is_some() {
                return None;
            }
            found = Some(off);
        }
    }
    found
}

/// The 8-aligned offsets at or past `from` where `bytes` hold `v`.
fn find_word(bytes: &[u8], v: usize, from: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(7))
        .step_by(8)
        .find(|&off| word(bytes, off) == v)
}

fn word(bytes: &[u8], off: usize) -> usize {
    usize::from_ne_bytes(bytes[off..off + 8].try_into().expect("8 bytes"))
}

impl Layout {
    /// Where `struct pthread` begins in the block whose thread pointer is
    /// `tp`.
    #[inline]
    pub(super) fn pd(&self, tp: usize) -> usize {
        tp.wrapping_add_signed(self.pd)
    }

    /// Where a block's `list` node lies from its thread pointer.
    pub(super) fn list_node(&self) -> isize {
        self.pd + self.list as isize
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn discover() -> Result<Layout, String> {
        Err("per-green-thread identity is implemented for x86-64 and AArch64 only".into())
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn discover() -> Result<Layout, String> {
        if !cfg!(target_env = "gnu") {
            return Err("per-green-thread identity needs glibc".into());
        }
        let need = |name: &CStr, private: bool| {
            sym(name, private.then_some(c"GLIBC_PRIVATE"))
                .ok_or_else(|| format!("glibc does not export {name:?}"))
        };
        let alloc = need(c"_dl_allocate_tls", true)?;
        let dealloc = need(c"_dl_deallocate_tls", true)?;
        let call_tls_dtors = need(c"__call_tls_dtors", true)?;
        let ctype_init = need(c"__ctype_init", true)?;
        let keys = need(c"__pthread_keys", true)?;
        let fsgsbase = fsgsbase();

        // A probe thread reports where glibc keeps its fields.
        let mut probe = Probe {
            key: 0,
            tp: 0,
            pd: 0,
            tid: 0,
            robust: 0,
            res: 0,
            resp: 0,
            strsignal: 0,
            strerror: 0,
            stack_top: 0,
            stack_size: 0,
            guard: 0,
            list_ok: false,
            list_off: 0,
            tcb: Vec::new(),
        };
        // A key with no destructor, deleted below.
        let Some(key) = crate::sys::tls::pthread_key_create() else {
            return Err("pthread_key_create failed".into());
        };
        probe.key = key;
        // A probe thread's tid may also appear elsewhere in its TCB (the
        // upper half of a pointer, say): another probe has another tid.
        let mut ran = Ok(());
        for _ in 0..3 {
            ran = run_probe(&mut probe);
            if ran.is_err() || find_i32(&probe.tcb, probe.tid, head::END + 16).is_some() {
                break;
            }
        }
        // The key made above; the probe threads have exited.
        crate::sys::tls::pthread_key_delete(probe.key);
        ran?;
        let p = &probe;
        let fail = |what: &str| Err(format!("glibc's thread layout not recognised: {what}"));
        let tid = match find_i32(&p.tcb, p.tid, head::END + 16) {
            Some(t) if p.list_ok && p.list_off + 16 == t => t,
            _ => return fail("tid and thread list"),
        };
        let robust = if p.robust != 0 {
            p.robust.wrapping_sub(p.pd)
        } else {
            // The kernel keeps no robust list (qemu-user answers ENOSYS):
            // glibc still links the head to itself and `robust_prev` to it.
            (tid + 8..p.tcb.len().saturating_sub(7))
                .step_by(8)
                .find(|&o| word(&p.tcb, o) == p.pd + o && word(&p.tcb, o - 8) == p.pd + o)
                .unwrap_or(usize::MAX)
        };
        if robust + 8 > p.tcb.len() || word(&p.tcb, robust) != p.pd + robust {
            return fail("robust list head");
        }
        let key = p.key as usize;
        let specific_1st = match find_word(&p.tcb, MAGIC, head::END) {
            Some(off) if key < KEYS_2ND && off >= 8 + 16 * key => off - 8 - 16 * key,
            _ => return fail("pthread key block"),
        };
        let specific = specific_1st + KEYS_2ND * std::mem::size_of::<KeyData>();
        let specific_used = specific + 32 * 8;
        let user_stack = specific_used + 2;
        if user_stack >= p.tcb.len()
            || word(&p.tcb, specific) != p.pd + specific_1st
            || p.tcb[specific_used] != 1
            || p.tcb[user_stack] != 0
        {
            return fail("pthread key table");
        }
        let stack = (head::END..p.tcb.len().saturating_sub(31))
            .step_by(8)
            .find(|&o| {
                let (block, size, guard, reported) = (
                    word(&p.tcb, o),
                    word(&p.tcb, o + 8),
                    word(&p.tcb, o + 16),
                    word(&p.tcb, o + 24),
                );
                block != 0
                    && block.wrapping_add(size) == p.stack_top
                    && size.wrapping_sub(guard) == p.stack_size
                    && reported == p.guard
            });
        let Some(stack) = stack else {
            return fail("stack fields");
        };
        let res = {
            let off = p.res.wrapping_sub(p.pd);
            (off < p.tcb.len() && p.resp != 0).then(|| (off, p.resp as isize - p.tp as isize))
        };
        let tls_state = find_word(&p.tcb, p.strsignal, head::END)
            .filter(|&o| o + 16 <= p.tcb.len() && word(&p.tcb, o + 8) == p.strerror);
        // Set whether or not the kernel took the registration (`__rseq_size`
        // is 0 where it did not, or where a tunable turned it off): glibc
        // then marks each thread's `cpu_id` unregistered, and
        // `sched_getcpu` reads it all the same.
        let rseq = sym(c"__rseq_offset", None)
            // SAFETY: `__rseq_offset` is glibc's `const ptrdiff_t`.
            .map(|a| unsafe { *(a as *const isize) })
            .filter(|&off| off != 0);
        let pd = p.pd as isize - p.tp as isize;
        if let Err(what) = check_arch(p, pd, rseq) {
            return fail(what);
        }
        let mut layout = Layout {
            // SAFETY: each is glibc's function of this signature
            // (`_dl_deallocate_tls(void *, bool)`, and so on).
            alloc: unsafe { std::mem::transmute::<usize, AllocTls>(alloc) },
            // SAFETY: as above.
            dealloc: unsafe { std::mem::transmute::<usize, DeallocTls>(dealloc) },
            // SAFETY: as above.
            call_tls_dtors: unsafe { std::mem::transmute::<usize, VoidFn>(call_tls_dtors) },
            // SAFETY: as above.
            ctype_init: unsafe { std::mem::transmute::<usize, VoidFn>(ctype_init) },
            keys: keys as *const KeyStruct,
            fsgsbase,
            pd,
            tid,
            list: tid - 16,
            robust,
            specific_1st,
            specific,
            specific_used,
            user_stack,
            stack,
            res,
            tls_state,
            rseq,
            malloc_slots: Vec::new(),
        };
        // The OS thread's TCB must agree with the probe's layout.
        let os = os_tp();
        // SAFETY: `tid` lies inside struct pthread (found on the probe).
        if unsafe { rd::<i32>(layout.pd(os), tid as isize) } != gettid() {
            return fail("this thread's tid");
        }
        layout.malloc_slots = layout.find_malloc_slots(os)?;
        fork::wrap_setxid_handler();
        fork::install_fork_handlers();
        live::note_loaded_modules();
        Ok(layout)
    }

    /// Finds libc's `tcache` and `thread_arena` slots: the words of libc's
    /// TLS that a first `malloc` changes in a fresh block.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn find_malloc_slots(&self, os: usize) -> Result<Vec<isize>, String> {
        let (off, len) = libc_tls(os).ok_or("libc's TLS block not found")?;
        // Malloc's slots of this OS thread must be set before they are
        // shared (a first malloc sets them).
        // SAFETY: malloc and free of a small block.
        unsafe { crate::sys::tls::malloc_once() };
        let block = Block::new(self, os, (0, 0, 0), &|| {})
            .map_err(|e| format!("cannot allocate a TLS block: {e}"))?;
        let base = block.tp() as isize + off;
        // SAFETY: libc's TLS block in `block`, `len` bytes.
        let before = unsafe { std::slice::from_raw_parts(base as *const u8, len) }.to_vec();
        // SAFETY: the block is live and made on this OS thread; only libc
        // runs until the thread pointer is set back.
        unsafe {
            let prev = current_tp();
            set_tp(self.fsgsbase, block.tp());
            crate::sys::tls::malloc_once();
            set_tp(self.fsgsbase, prev);
        }
        // SAFETY: as above.
        let after = unsafe { std::slice::from_raw_parts(base as *const u8, len) };
        let changed: Vec<isize> = (0..len.saturating_sub(7))
            .step_by(8)
            .filter(|&o| word(&before, o) != word(after, o))
            .map(|o| off + o as isize)
            // SAFETY: inside libc's TLS block of this OS thread.
            .filter(|&o| unsafe { rd::<usize>(os, o) } != 0)
            .collect();
        // The probe block's own cache stays allocated (once per process).
        drop(block);
        if changed.len() != 2 {
            return Err(format!(
                "malloc's per-thread slots not recognised ({} changed)",
                changed.len()
            ));
        }
        Ok(changed)
    }
}

/// Runs [`probe_main`] on a new OS thread and waits for it.
fn run_probe(p: &mut Probe) -> Result<(), String> {
    // SAFETY: the thread gets a pointer to `p`, which outlives it (joined
    // before returning).
    unsafe { crate::sys::tls::run_thread(256 * 1024, probe_main, p as *mut Probe as *mut c_void) }
        .map_err(|rc| format!("cannot start a probe thread (error {rc})"))
}

/// libc's static TLS block, as (offset from the thread pointer, length).
fn libc_tls(tp: usize) -> Option<(isize, usize)> {
    let mut out = None;
    crate::sys::tls::each_module(|info| {
        if info.dlpi_tls_data.is_null() {
            return false;
        }
        let Some(name) = crate::sys::tls::module_name(info) else {
            return false;
        };
        if !name.to_bytes().windows(7).any(|w| w == b"libc.so") {
            return false;
        }
        let phdrs = crate::sys::tls::phdrs(info);
        if let Some(tls) = phdrs.iter().find(|h| h.p_type == libc::PT_TLS) {
            out = Some((
                info.dlpi_tls_data as isize - tp as isize,
                tls.p_memsz as usize,
            ));
            return true;
        }
        false
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_found_on_this_glibc() {
        if cfg!(all(
            any(target_arch = "x86_64", target_arch = "aarch64"),
            target_env = "gnu"
        )) {
            let l = layout().unwrap();
            assert_eq!(l.list + 16, l.tid);
            assert_eq!(l.malloc_slots.len(), 2);
            let pd = crate::sys::tls::pthread_self();
            assert_eq!(l.pd(current_tp()), pd);
        }
    }
}

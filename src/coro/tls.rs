//! A thread pointer per green context: its own static TLS block and TCB.
//!
//! std and every crate tell threads apart by what the thread pointer
//! reaches: `thread_local!`s, `std::thread::current()` (and so std's parker
//! word), errno, parking_lot's queue node, the thread id that std's and
//! crossbeam's channel wakers compare, tokio's runtime context. A green
//! thread that has a [`Block`] of its own runs with the thread pointer set
//! to that block, so all of those are its own: to everything above libc it
//! is a thread.
//!
//! ```text
//!   x86-64 (TLS variant II): static TLS lies below the thread pointer
//!
//!   OS thread's block                    a green thread's Block
//!   +----------------------+             +----------------------+
//!   | executable's TLS     |             | executable's TLS     |  init image
//!   | libc's TLS (errno,   |             | libc's TLS           |  copied by
//!   |  tcache, ctype ...)  |             |  (tcache, arena: the |  _dl_allocate_tls
//!   | other modules        |             |   OS thread's)       |
//!   +----------------------+ <- FS base  +----------------------+ <- FS base while
//!   | struct pthread (TCB) |   on the    | struct pthread (TCB) |    it runs
//!   |  self, guards, tid,  |   OS stack  |  fixed up: self, the |
//!   |  robust list, keys,  |   and hub   |  OS thread's guards  |
//!   |  res, rseq ...       |             |  and tid, own lists  |
//!   +----------------------+             +----------------------+
//!
//!   AArch64 (TLS variant I): static TLS lies above the thread pointer,
//!   struct pthread below it
//!
//!   +----------------------+
//!   | executable's TLS,    |
//!   | libc's TLS, others   |
//!   +----------------------+ <- TP + 16
//!   | tcbhead_t: dtv, -    |
//!   +----------------------+ <- TPIDR_EL0
//!   | struct pthread       |
//!   +----------------------+ <- pthread_self()
//! ```
//!
//! The hub sets the thread pointer when it resumes such a green thread and
//! sets it back to the OS thread's when the green thread suspends
//! ([`set_tp`]: on x86-64 `wrfsbase` where the kernel allows it, else
//! `arch_prctl`; on AArch64 `msr tpidr_el0`). Nothing else on the switch
//! path changes.
//!
//! A block is made the way `pthread_create` makes one: `_dl_allocate_tls`
//! from the dynamic linker, which initialises every static TLS module from
//! its init image and gives the block its own DTV. The parts of
//! `struct pthread` that glibc fills in at thread start are then filled in
//! from the OS thread's (the stack and pointer guards on x86-64, the tid)
//! or as a new thread's would be (self pointers, empty robust and key
//! lists, the rseq area marked unregistered, ctype tables, resolver
//! state). Their offsets differ between glibc versions and architectures:
//! [`Layout`] derives each one once per process from values glibc itself
//! reports on a probe thread, and checks them; if anything does not match,
//! identity is not supported and green threads share their OS thread's
//! identity as before.
//!
//! When a green thread with a block ends (returns, is killed, or is unwound
//! at thread exit), [`run_exit`] runs under its own thread pointer what a
//! thread's exit runs: the `thread_local!` destructors (`__call_tls_dtors`),
//! then the pthread-key destructors, and frees libc's per-thread buffers.
//! The block is freed with `_dl_deallocate_tls` once the green thread's
//! coroutine is done.
//!
//! Malloc's per-thread cache and arena are the OS thread's, shared by its
//! green threads (they never run at the same time): a green thread's own
//! cache would be leaked at its end, since glibc frees it only at a real
//! thread's exit.

mod live;

pub(crate) use live::{init_new_static_tls, tls_modules};

use std::cell::Cell;
use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// What [`Layout::discover`] needs of the dynamic linker and libc.
type AllocTls = unsafe extern "C" fn(*mut c_void) -> *mut c_void;
type DeallocTls = unsafe extern "C" fn(*mut c_void, bool);
type VoidFn = unsafe extern "C" fn();

/// glibc's `struct pthread_key_struct`: one per key in `__pthread_keys`.
#[repr(C)]
struct KeyStruct {
    seq: usize,
    destr: Option<unsafe extern "C" fn(*mut c_void)>,
}

/// glibc's `struct pthread_key_data`: a key's value in one thread.
#[repr(C)]
struct KeyData {
    seq: usize,
    data: *mut c_void,
}

/// `PTHREAD_KEYS_MAX`, and keys per second-level block.
const KEYS_MAX: usize = 1024;
const KEYS_2ND: usize = 32;
/// `PTHREAD_DESTRUCTOR_ITERATIONS`.
const DESTRUCTOR_ROUNDS: usize = 4;

/// The fixed part of x86-64's `tcbhead_t`.
#[cfg(target_arch = "x86_64")]
mod head {
    pub(super) const TCB: usize = 0x00;
    pub(super) const SELF: usize = 0x10;
    pub(super) const MULTIPLE_THREADS: usize = 0x18;
    pub(super) const SYSINFO: usize = 0x20;
    pub(super) const STACK_GUARD: usize = 0x28;
    pub(super) const POINTER_GUARD: usize = 0x30;
    pub(super) const FEATURE_1: usize = 0x48;
    /// Offsets below this are `tcbhead_t`'s; glibc's own fields follow.
    pub(super) const END: usize = 0x50;
}

/// The fixed part of AArch64's `struct pthread`: its `header`, which glibc
/// pads to 24 words (its fields follow that; zeros before them). The
/// `tcbhead_t` at the thread pointer (`dtv`, `private`) is filled in by
/// `_dl_allocate_tls`; the stack and pointer guards are globals.
#[cfg(target_arch = "aarch64")]
mod head {
    /// `header.multiple_threads` (then `header.gscope_flag`).
    pub(super) const MULTIPLE_THREADS: usize = 0x00;
    /// Offsets below this are the header's; glibc's own fields follow.
    pub(super) const END: usize = 0x08;
}

/// Where glibc keeps each per-thread field this module fills in, found by
/// [`Layout::discover`]: offsets from the thread's `struct pthread`, which
/// begins at the thread pointer on x86-64 and lies below it on AArch64
/// (see `pd`), except those marked TP-relative.
#[derive(Debug)]
pub(crate) struct Layout {
    alloc: AllocTls,
    dealloc: DeallocTls,
    call_tls_dtors: VoidFn,
    ctype_init: VoidFn,
    keys: *const KeyStruct,
    /// `wrfsbase` is allowed (`HWCAP2_FSGSBASE`; x86-64 only).
    fsgsbase: bool,
    /// Where `struct pthread` begins, from the thread pointer: 0 on x86-64,
    /// minus its size on AArch64.
    pd: isize,
    /// `pid_t tid`; the `list_t list` node lies just before it.
    tid: usize,
    list: usize,
    /// `struct robust_list_head robust_head`.
    robust: usize,
    /// `specific_1stblock`, then `specific[32]`, then `bool specific_used`,
    /// and two bools later `bool user_stack`.
    specific_1st: usize,
    specific: usize,
    specific_used: usize,
    user_stack: usize,
    /// `stackblock`, `stackblock_size`, `guardsize`, `reported_guardsize`.
    stack: usize,
    /// `struct __res_state res`, and libc's TLS `__resp` (TP-relative).
    res: Option<(usize, isize)>,
    /// `tls_state.strsignal_buf` (`strerror_l_buf` follows).
    tls_state: Option<usize>,
    /// The rseq area (TP-relative), where glibc has one (registered with
    /// the kernel or not).
    rseq: Option<isize>,
    /// libc's `tcache` and `thread_arena` TLS slots (TP-relative).
    malloc_slots: Vec<isize>,
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

thread_local! {
    /// In a green thread's own block: the OS thread's thread pointer. In an
    /// OS thread's block: its own, once asked (0 before).
    static OS_TP: Cell<usize> = const { Cell::new(0) };
    /// Whether the running code is on a green thread's own block.
    static OWN: Cell<bool> = const { Cell::new(false) };
    /// In an OS thread's block: the code running is inside
    /// [`under_os_tp`] (or a fork under the OS thread's pointer) on behalf
    /// of a green thread, and must not park.
    static IN_OS_REGION: Cell<bool> = const { Cell::new(false) };
    /// In an OS thread's block: the block a fork's preparation switched
    /// away from, to switch back to after the fork (0: none).
    static FORK_SAVED: Cell<usize> = const { Cell::new(0) };
}

/// Whether the running code makes a call as the OS thread on behalf of a
/// green thread ([`under_os_tp`]): it must not park there, since the hub
/// would resume it under the green thread's pointer.
#[inline]
pub(crate) fn in_os_region() -> bool {
    IN_OS_REGION.get()
}

/// Enters or leaves an OS-thread region ([`in_os_region`]). Not inlined:
/// its thread-local access must be made under the thread pointer current
/// at the call, not one a caller computed before switching it.
#[inline(never)]
fn set_os_region(on: bool) {
    IN_OS_REGION.set(on);
}

/// Whether the kernel lets user code set the FS base (`wrfsbase`).
pub(crate) fn fsgsbase() -> bool {
    static FSGSBASE: OnceLock<bool> = OnceLock::new();
    // SAFETY: getauxval has no preconditions.
    *FSGSBASE.get_or_init(|| {
        cfg!(target_arch = "x86_64") && unsafe { libc::getauxval(libc::AT_HWCAP2) } & 2 != 0
    })
}

/// Whether green threads get an identity of their own unless their
/// builder says otherwise: set by `patch()`.
static DEFAULT: AtomicBool = AtomicBool::new(false);

/// Whether green threads get an identity of their own by default.
#[inline]
pub(crate) fn default_on() -> bool {
    DEFAULT.load(Ordering::Relaxed)
}

/// Sets [`default_on`].
pub(crate) fn set_default(on: bool) {
    DEFAULT.store(on, Ordering::Relaxed);
}

/// The thread pointer of the running code.
#[inline(always)]
pub(crate) fn current_tp() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let tp: usize;
        // SAFETY: `fs:0` is `tcbhead_t::tcb`, the thread pointer itself, in
        // every thread glibc or this module set up.
        unsafe {
            std::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp,
                options(nostack, readonly, preserves_flags));
        }
        tp
    }
    #[cfg(target_arch = "aarch64")]
    {
        let tp: usize;
        // SAFETY: reads TPIDR_EL0, the thread pointer; not `pure`, so that
        // it is never merged with a read from before a `set_tp`.
        unsafe {
            std::arch::asm!("mrs {}, tpidr_el0", out(reg) tp,
                options(nomem, nostack, preserves_flags));
        }
        tp
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        0
    }
}

/// The OS thread's own thread pointer, from any context on it.
pub(crate) fn os_tp() -> usize {
    let tp = OS_TP.get();
    if tp != 0 {
        return tp;
    }
    // Not on a green block (those are seeded): the current one is the OS's.
    let tp = current_tp();
    OS_TP.set(tp);
    tp
}

/// Whether the running code is a green thread with a block of its own.
#[inline]
pub(crate) fn on_own_block() -> bool {
    OWN.get()
}

/// Runs `f` under the OS thread's own thread pointer when the caller is a
/// green thread with a block of its own (else just runs it): for the libc
/// calls that must see the OS thread as themselves (`pthread_create`,
/// `set*id`, `fork`). `f` must touch no thread-local (see [`set_tp`]) or
/// unwind; it cannot park (the hooks pass through inside it, see
/// [`in_os_region`]). The errno `f` leaves is the caller's.
///
/// In a child made by `fork` under it (`f` returns 0 where `forked`), every
/// live block takes the child's tid, so that the child carries on as the
/// same green thread with its own thread-locals.
pub(crate) fn under_os_tp<T: PartialEq + Default>(forked: bool, f: impl FnOnce() -> T) -> T {
    if !on_own_block() {
        return f();
    }
    let Ok(l) = layout() else { return f() };
    let own = current_tp();
    let os = OS_TP.get();
    // SAFETY: `os` is this OS thread's own thread pointer (seeded into the
    // block) and `own` the live block the caller runs on; `f` holds no
    // thread-local reference (the caller's contract), and every
    // thread-local access below is made by a call, under the pointer
    // current then.
    unsafe {
        set_tp(l.fsgsbase, os);
        set_os_region(true);
        let r = f();
        let errno = *libc::__errno_location();
        set_os_region(false);
        if forked && r == T::default() {
            // glibc set the child's tid in the OS thread's TCB.
            live::set_tids(l, rd::<i32>(l.pd(os), l.tid as isize));
        }
        set_tp(l.fsgsbase, own);
        *libc::__errno_location() = errno;
        r
    }
}

/// Makes every way into glibc's `fork` run as the OS thread: `forkpty`,
/// `daemon` and others call glibc's own fork, not the interposed one. The
/// preparation step (which glibc runs after the handlers registered later)
/// switches to the OS thread's pointer and holds the live-block list; the
/// parent and child steps (run before the handlers registered later)
/// switch back, and in the child give every block the child's tid.
fn install_fork_handlers() {
    extern "C" fn prepare() {
        if let Some(l) = layout_found().filter(|_| on_own_block()) {
            let own = current_tp();
            let os = OS_TP.get();
            // SAFETY: as in `under_os_tp`; the thread-locals below are set
            // by a call made under the OS thread's pointer.
            unsafe { set_tp(l.fsgsbase, os) };
            note_fork(own);
        }
        // Held across the fork: a child never finds it held by a thread it
        // does not have.
        live::lock_for_fork();
    }
    extern "C" fn parent() {
        live::unlock_after_fork();
        back_from_fork(false);
    }
    extern "C" fn child() {
        live::unlock_after_fork();
        back_from_fork(true);
    }
    // SAFETY: registers three handlers that only switch the thread pointer
    // and take or release a lock.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

#[inline(never)]
fn note_fork(own: usize) {
    FORK_SAVED.set(own);
    IN_OS_REGION.set(true);
}

/// After a fork: back to the block the preparation switched away from.
#[inline(never)]
fn back_from_fork(child: bool) {
    let own = FORK_SAVED.replace(0);
    let Some(l) = layout_found() else { return };
    if child {
        // SAFETY: `tid` lies in every TCB; glibc set the child's in this,
        // the OS thread's.
        live::set_tids(l, unsafe { rd::<i32>(l.pd(current_tp()), l.tid as isize) });
    }
    if own != 0 {
        IN_OS_REGION.set(false);
        // SAFETY: the live block the preparation switched away from.
        unsafe { set_tp(l.fsgsbase, own) };
    }
}

/// Sets the thread pointer.
///
/// The compiler takes the thread pointer for a constant within a function:
/// it may keep a thread-local's address, computed before this call, and
/// use it after (on AArch64 it reads `TPIDR_EL0` once and keeps it; x86-64
/// reaches thread-locals through `fs`, whose accesses follow the switch).
/// Code that runs between a `set_tp` and the one that sets it back, in the
/// same function after inlining, must therefore touch no thread-local;
/// whatever must see the new thread pointer's thread-locals runs in a
/// function that is not inlined.
///
/// # Safety
/// `tp` must be the thread pointer of this OS thread or of a live [`Block`]
/// made on it, and the code that runs until it is set back must not
/// depend on the previous one (no reference to a thread-local of it may
/// be live).
#[inline(always)]
pub(crate) unsafe fn set_tp(fsgsbase: bool, tp: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if fsgsbase {
            // SAFETY: the kernel enabled FSGSBASE (HWCAP2); the caller
            // vouches for `tp`.
            unsafe {
                std::arch::asm!("wrfsbase {}", in(reg) tp, options(nostack, preserves_flags));
            }
        } else {
            const ARCH_SET_FS: usize = 0x1002;
            let _rc: usize;
            // SAFETY: arch_prctl(ARCH_SET_FS) as a raw system call; the
            // kernel clobbers rcx and r11.
            unsafe {
                std::arch::asm!("syscall",
                    inlateout("rax") libc::SYS_arch_prctl as usize => _rc,
                    in("rdi") ARCH_SET_FS, in("rsi") tp,
                    lateout("rcx") _, lateout("r11") _, options(nostack));
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        let _ = fsgsbase;
        // SAFETY: TPIDR_EL0 is writable at EL0; the caller vouches for
        // `tp`. Not `nomem`: no memory access moves across it.
        unsafe {
            std::arch::asm!("msr tpidr_el0, {}", in(reg) tp, options(nostack, preserves_flags));
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (fsgsbase, tp);
        unreachable!("thread identity is supported on x86-64 and AArch64 only");
    }
}

/// Reads a value at `base + off`.
///
/// # Safety
/// The address must be readable and hold a `T`.
unsafe fn rd<T: Copy>(base: usize, off: isize) -> T {
    // SAFETY: the caller's.
    unsafe { ((base as isize + off) as *const T).read_unaligned() }
}

/// Writes a value at `base + off`.
///
/// # Safety
/// The address must be writable memory that holds a `T`.
unsafe fn wr<T>(base: usize, off: isize, v: T) {
    // SAFETY: the caller's.
    unsafe { ((base as isize + off) as *mut T).write_unaligned(v) }
}

/// A symbol of glibc's, versioned (`GLIBC_PRIVATE`) or not.
fn sym(name: &CStr, version: Option<&CStr>) -> Option<usize> {
    // SAFETY: dlsym/dlvsym with valid C strings only look the name up.
    let p = unsafe {
        match version {
            Some(v) => libc::dlvsym(libc::RTLD_DEFAULT, name.as_ptr(), v.as_ptr()),
            None => libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()),
        }
    };
    (!p.is_null()).then_some(p as usize)
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
    let mut v = 0usize;
    let local = libc::iovec {
        iov_base: (&mut v as *mut usize).cast(),
        iov_len: 8,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut c_void,
        iov_len: 8,
    };
    // SAFETY: reads 8 bytes of this process into `v`; the kernel checks
    // the source address.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n == 8 {
        return Some(v);
    }
    match std::io::Error::last_os_error().raw_os_error() {
        // SAFETY: the caller found `addr` in a thread's list node, which
        // glibc keeps pointing at another live node.
        Some(libc::ENOSYS) | Some(libc::EPERM) => Some(unsafe { *(addr as *const usize) }),
        _ => None,
    }
}

extern "C" fn probe_main(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the `Probe` the creator owns until it joins.
    let p = unsafe { &mut *(arg as *mut Probe) };
    p.list_ok = false;
    p.tp = current_tp();
    // SAFETY: no preconditions.
    p.pd = unsafe { libc::pthread_self() } as usize;
    // SAFETY: plain calls with valid out pointers; each only reads or
    // writes this thread's own state.
    unsafe {
        p.tid = libc::gettid();
        let mut head: *mut c_void = std::ptr::null_mut();
        let mut len: libc::size_t = 0;
        if libc::syscall(libc::SYS_get_robust_list, 0, &mut head, &mut len) == 0 {
            p.robust = head as usize;
        }
        libc::pthread_setspecific(p.key, MAGIC as *const c_void);
        p.res = __res_state() as usize;
        if let Some(r) = sym(c"__resp", None) {
            p.resp = r;
        }
        p.strsignal = libc::strsignal(1234) as usize;
        p.strerror = libc::strerror(99_999) as usize;
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) == 0 {
            let mut addr: *mut c_void = std::ptr::null_mut();
            let mut size = 0;
            libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
            libc::pthread_attr_getguardsize(&attr, &mut p.guard);
            p.stack_top = addr as usize + size;
            p.stack_size = size;
            libc::pthread_attr_destroy(&mut attr);
        }
        // The TCB lies at the top of the thread's stack block: read no
        // further than that.
        let len = scan_len(p);
        p.tcb = std::slice::from_raw_parts(p.pd as *const u8, len).to_vec();
        let tid_off = find_i32(&p.tcb, p.tid, head::END);
        if let Some(t) = tid_off.filter(|&t| t >= 16 + head::END) {
            let list = p.pd + t - 16;
            let next = *(list as *const usize);
            p.list_off = t - 16;
            p.list_ok = next != 0 && read_word(next + 8) == Some(list);
        }
    }
    std::ptr::null_mut()
}

extern "C" {
    fn __res_state() -> *mut c_void;
    fn __res_nclose(state: *mut c_void);
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
    fn pd(&self, tp: usize) -> usize {
        tp.wrapping_add_signed(self.pd)
    }

    /// Where a block's `list` node lies from its thread pointer.
    fn list_node(&self) -> isize {
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
        // SAFETY: a key with no destructor, deleted below.
        if unsafe { libc::pthread_key_create(&mut probe.key, None) } != 0 {
            return Err("pthread_key_create failed".into());
        }
        // A probe thread's tid may also appear elsewhere in its TCB (the
        // upper half of a pointer, say): another probe has another tid.
        let mut ran = Ok(());
        for _ in 0..3 {
            ran = run_probe(&mut probe);
            if ran.is_err() || find_i32(&probe.tcb, probe.tid, head::END + 16).is_some() {
                break;
            }
        }
        // SAFETY: the key made above; the probe threads have exited.
        unsafe { libc::pthread_key_delete(probe.key) };
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
        if unsafe { rd::<i32>(layout.pd(os), tid as isize) } != unsafe { libc::gettid() } {
            return fail("this thread's tid");
        }
        layout.malloc_slots = layout.find_malloc_slots(os)?;
        wrap_setxid_handler();
        install_fork_handlers();
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
        unsafe { malloc_once() };
        let block = Block::new(self, os, (0, 0, 0), &|| {})
            .map_err(|e| format!("cannot allocate a TLS block: {e}"))?;
        let base = block.tcb as isize + off;
        // SAFETY: libc's TLS block in `block`, `len` bytes.
        let before = unsafe { std::slice::from_raw_parts(base as *const u8, len) }.to_vec();
        // SAFETY: the block is live and made on this OS thread; only libc
        // runs until the thread pointer is set back.
        unsafe {
            let prev = current_tp();
            set_tp(self.fsgsbase, block.tcb);
            malloc_once();
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

/// A malloc and free that the optimiser keeps (it may drop an unused
/// pair).
///
/// # Safety
/// Only libc runs: callable under any valid thread pointer.
#[inline(never)]
unsafe fn malloc_once() {
    // SAFETY: a small allocation, freed at once.
    unsafe {
        let p = std::hint::black_box(libc::malloc(40));
        libc::free(std::hint::black_box(p));
    }
}

/// glibc's internal signal for `set*id` (`__SIGRTMIN + 1`).
const SIGSETXID: c_int = 33;

/// glibc's own `SIGSETXID` handler, which [`setxid_handler`] calls.
static GLIBC_SETXID: AtomicUsize = AtomicUsize::new(0);

/// The kernel's `struct sigaction` on x86-64 and AArch64 (`rt_sigaction`).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Puts [`setxid_handler`] in front of glibc's `SIGSETXID` handler.
///
/// When one OS thread calls `setuid` (or another `set*id`), glibc signals
/// every other thread and waits for each to change its credentials and
/// report on a word in its TCB. The handler reports through the current
/// thread pointer's TCB: run on a green thread's block it would report
/// where nobody waits, and the caller would wait for ever. The wrapper
/// runs it as the OS thread. glibc refuses `sigaction` for its internal
/// signals, so this uses the system call.
fn wrap_setxid_handler() {
    let ksize = std::mem::size_of::<u64>();
    let mut old = KernelSigaction {
        handler: 0,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: reads the current action into `old`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            SIGSETXID,
            std::ptr::null::<KernelSigaction>(),
            &mut old,
            ksize,
        )
    };
    // No handler of glibc's (or ours already): nothing to wrap.
    if rc != 0 || old.handler <= 1 || old.handler == setxid_handler as *const () as usize {
        return;
    }
    GLIBC_SETXID.store(old.handler, Ordering::SeqCst);
    let new = KernelSigaction {
        handler: setxid_handler as *const () as usize,
        ..old
    };
    // SAFETY: the same action with our handler, which calls glibc's.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            SIGSETXID,
            &new,
            std::ptr::null_mut::<KernelSigaction>(),
            ksize,
        )
    };
}

/// Runs glibc's `SIGSETXID` handler as the OS thread (see
/// [`wrap_setxid_handler`]).
extern "C" fn setxid_handler(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let h = GLIBC_SETXID.load(Ordering::Relaxed);
    // SAFETY: glibc's SA_SIGINFO handler, stored before ours was installed.
    let glibc: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
        unsafe { std::mem::transmute(h) };
    // Async-signal-safe: a const thread-local read, a thread-pointer
    // switch around the call, and glibc's handler.
    under_os_tp(false, || {
        glibc(sig, info, ctx);
        0
    });
}

/// Runs [`probe_main`] on a new OS thread and waits for it.
fn run_probe(p: &mut Probe) -> Result<(), String> {
    // SAFETY: a default attribute object, destroyed below; the thread gets
    // a pointer to `p`, which outlives it (joined before returning).
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setstacksize(&mut attr, 256 * 1024);
        let mut t: libc::pthread_t = 0;
        let rc = crate::sys::original::pthread_create(
            &mut t,
            &attr,
            probe_main,
            p as *mut Probe as *mut c_void,
        );
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 {
            return Err(format!("cannot start a probe thread (error {rc})"));
        }
        crate::sys::original::pthread_join(t, std::ptr::null_mut());
    }
    Ok(())
}

/// libc's static TLS block, as (offset from the thread pointer, length).
fn libc_tls(tp: usize) -> Option<(isize, usize)> {
    struct Found {
        tp: usize,
        out: Option<(isize, usize)>,
    }
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: dl_iterate_phdr passes a valid info and our `data`.
        let (info, found) = unsafe { (&*info, &mut *(data as *mut Found)) };
        if info.dlpi_name.is_null() || info.dlpi_tls_data.is_null() {
            return 0;
        }
        // SAFETY: a NUL-terminated name.
        let name = unsafe { CStr::from_ptr(info.dlpi_name) }.to_bytes();
        if !name.windows(7).any(|w| w == b"libc.so") {
            return 0;
        }
        // SAFETY: `dlpi_phnum` headers at `dlpi_phdr`.
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        if let Some(tls) = phdrs.iter().find(|h| h.p_type == libc::PT_TLS) {
            found.out = Some((
                info.dlpi_tls_data as isize - found.tp as isize,
                tls.p_memsz as usize,
            ));
            return 1;
        }
        0
    }
    let mut found = Found { tp, out: None };
    // SAFETY: the callback only reads what it is given.
    unsafe { libc::dl_iterate_phdr(Some(each), &mut found as *mut Found as *mut c_void) };
    found.out
}

/// A green thread's own static TLS block and TCB.
///
/// # Invariant
/// `tcb` came from `_dl_allocate_tls` and is freed only by `drop`, which
/// must not run while the thread pointer is `tcb`.
#[derive(Debug)]
pub(crate) struct Block {
    tcb: usize,
    dealloc: DeallocTls,
    /// Where its list node lies from its thread pointer (see `live`).
    list: isize,
}

impl Block {
    /// Allocates and fills in a block for a green thread of the OS thread
    /// whose thread pointer is `os`, running on the stack `(lowest address,
    /// length, guard length)`. `seed` runs once under the new block's
    /// thread pointer, to give the runtime's own thread-locals their values
    /// there.
    pub(crate) fn new(
        layout: &Layout,
        os: usize,
        stack: (usize, usize, usize),
        seed: &dyn Fn(),
    ) -> std::io::Result<Block> {
        let l = layout;
        // Allocated and put on the live list under the list's lock, so
        // that a `dlopen` between the two cannot miss it.
        let live = live::lock();
        // SAFETY: `_dl_allocate_tls(NULL)` allocates a block as
        // pthread_create does, with a zeroed TCB.
        let tcb = unsafe { (l.alloc)(std::ptr::null_mut()) } as usize;
        if tcb == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::OutOfMemory,
                "cannot allocate a green thread's TLS block",
            ));
        }
        let block = Block {
            tcb,
            dealloc: l.dealloc,
            list: l.list_node(),
        };
        let (pd, os_pd) = (l.pd(tcb), l.pd(os));
        // SAFETY: every offset lies inside `struct pthread` or the static
        // TLS next to it (Layout::discover found each on a live thread), in
        // the new block and in the OS thread's.
        unsafe {
            fill_header(tcb, os, pd, os_pd);
            wr(pd, l.tid as isize, rd::<i32>(os_pd, l.tid as isize));
            // The list node links the block into the list of live blocks.
            live.link(l, tcb);
            drop(live);
            let robust = pd + l.robust;
            wr(pd, l.robust as isize, robust);
            wr(
                pd,
                l.robust as isize + 8,
                rd::<isize>(os_pd, l.robust as isize + 8),
            );
            wr(pd, l.specific as isize, pd + l.specific_1st);
            wr(pd, l.user_stack as isize, 1u8);
            if stack.1 != 0 {
                wr(pd, l.stack as isize, stack.0);
                wr(pd, l.stack as isize + 8, stack.1);
                wr(pd, l.stack as isize + 16, stack.2);
                wr(pd, l.stack as isize + 24, stack.2);
            }
            if let Some((res, resp)) = l.res {
                wr(tcb, resp, pd + res);
            }
            if let Some(rseq) = l.rseq {
                // cpu_id: RSEQ_CPU_ID_REGISTRATION_FAILED, so that
                // sched_getcpu asks the kernel.
                wr::<i32>(tcb, rseq + 4, -2);
            }
            for &slot in &l.malloc_slots {
                wr(tcb, slot, rd::<usize>(os, slot));
            }
            let prev = current_tp();
            set_tp(l.fsgsbase, tcb);
            seed_block(l, os, seed);
            set_tp(l.fsgsbase, prev);
        }
        Ok(block)
    }

    /// The block's thread pointer.
    #[inline]
    pub(crate) fn tp(&self) -> usize {
        self.tcb
    }
}

/// What a new block needs under its own thread pointer: libc's ctype
/// tables, and the runtime's thread-locals. Not inlined: its thread-local
/// accesses must be made under the new pointer, not one its caller
/// computed before switching.
#[inline(never)]
fn seed_block(l: &Layout, os: usize, seed: &dyn Fn()) {
    // SAFETY: glibc's per-thread ctype set-up, as at a thread's start.
    unsafe { (l.ctype_init)() };
    OS_TP.set(os);
    OWN.set(true);
    seed();
}

/// Fills in the fixed header of a new block's TCB, x86-64's `tcbhead_t`:
/// its self pointers, and the OS thread's guards, vDSO entry and CET
/// state.
///
/// # Safety
/// `tcb` is a new block's thread pointer, `os` this OS thread's, and
/// `pd`, `os_pd` their `struct pthread`s.
#[cfg(target_arch = "x86_64")]
unsafe fn fill_header(tcb: usize, os: usize, _pd: usize, _os_pd: usize) {
    // SAFETY: the header lies at the thread pointer in every TCB.
    unsafe {
        wr(tcb, head::TCB as isize, tcb);
        wr(tcb, head::SELF as isize, tcb);
        wr::<i32>(tcb, head::MULTIPLE_THREADS as isize, 1);
        // Without this on the OS thread too, glibc's atomics in malloc
        // drop their lock prefix while it believes itself alone.
        wr::<i32>(os, head::MULTIPLE_THREADS as isize, 1);
        for off in [head::SYSINFO, head::STACK_GUARD, head::POINTER_GUARD] {
            wr(tcb, off as isize, rd::<usize>(os, off as isize));
        }
        wr(
            tcb,
            head::FEATURE_1 as isize,
            rd::<u32>(os, head::FEATURE_1 as isize),
        );
    }
}

/// Fills in the fixed header of a new block's `struct pthread` on AArch64:
/// `multiple_threads`, as `pthread_create` sets it in the new thread and
/// its creator (glibc's libc tests a global; the dynamic linker tests
/// this). The `tcbhead_t` needs nothing: `_dl_allocate_tls` installed the
/// DTV, and the guards are globals.
///
/// # Safety
/// As for x86-64's.
#[cfg(target_arch = "aarch64")]
unsafe fn fill_header(_tcb: usize, _os: usize, pd: usize, os_pd: usize) {
    // SAFETY: the header begins every struct pthread.
    unsafe {
        wr::<i32>(pd, head::MULTIPLE_THREADS as isize, 1);
        wr::<i32>(os_pd, head::MULTIPLE_THREADS as isize, 1);
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        debug_assert_ne!(current_tp(), self.tcb, "a TLS block freed while in use");
        // SAFETY: allocated by `_dl_allocate_tls` (Invariant) and linked
        // by `new`, not in use; `true` frees the TCB with it.
        unsafe {
            live::unlink(self.list, self.tcb);
            (self.dealloc)(self.tcb as *mut c_void, true);
        }
    }
}

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
                libc::free(rd::<*mut c_void>(pd, off as isize));
                wr(pd, off as isize, std::ptr::null_mut::<c_void>());
            }
        }
        if let Some((res, _)) = l.res {
            // `options & RES_INIT`: set up by a resolver call (which sets
            // its socket fields too; a zeroed state has socket 0).
            if rd::<libc::c_ulong>(pd, res as isize + 8) & 1 != 0 {
                __res_nclose((pd + res) as *mut c_void);
            }
        }
        // dlerror's message, if any: taken, then freed by the next call.
        if !libc::dlerror().is_null() {
            libc::dlerror();
        }
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
                libc::free(p);
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
            // SAFETY: no preconditions.
            let pd = unsafe { libc::pthread_self() } as usize;
            assert_eq!(l.pd(current_tp()), pd);
        }
    }

    #[test]
    fn a_block_has_its_own_thread_locals() {
        let Ok(l) = layout() else { return };
        thread_local!(static X: Cell<u32> = const { Cell::new(1) });
        /// What the thread sees under the block (not inlined: see
        /// `set_tp`), and its exit.
        #[inline(never)]
        fn inside() -> (u32, i32, usize, bool) {
            // SAFETY (both): no preconditions; only addresses are kept.
            let seen = (
                X.get(),
                unsafe { libc::gettid() },
                unsafe { libc::__errno_location() as usize },
                on_own_block(),
            );
            run_exit();
            seen
        }
        X.set(5);
        let os = os_tp();
        let block = Block::new(l, os, (0, 0, 0), &|| X.set(9)).unwrap();
        assert_eq!(X.get(), 5);
        // SAFETY: the block is live and made on this thread; no reference
        // to a thread-local is held across the switch.
        unsafe { set_tp(l.fsgsbase, block.tp()) };
        let (x, tid, errno_addr, own) = inside();
        // SAFETY: back to the OS thread's own.
        unsafe { set_tp(l.fsgsbase, os) };
        assert_eq!(x, 9);
        assert!(own && !on_own_block());
        // SAFETY (both): no preconditions; only the address is compared.
        assert_eq!(tid, unsafe { libc::gettid() });
        assert_ne!(errno_addr, unsafe { libc::__errno_location() as usize });
        assert_eq!(X.get(), 5);
    }

    #[test]
    fn a_block_has_an_unregistered_rseq_area() {
        let Ok(l) = layout() else { return };
        let Some(rseq) = l.rseq else { return };
        let block = Block::new(l, os_tp(), (0, 0, 0), &|| {}).unwrap();
        // SAFETY: the rseq area lies in the block's struct pthread.
        let cpu_id = unsafe { rd::<i32>(block.tp(), rseq + 4) };
        assert_eq!(cpu_id, -2, "RSEQ_CPU_ID_REGISTRATION_FAILED");
    }
}

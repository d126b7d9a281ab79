//! What a green thread's own identity (its TLS block and TCB, see
//! `coro::tls`) asks of libc and the dynamic linker.
//!
//! Here libc's own behaviour is the point: the layout probe asks glibc
//! where it keeps a thread's fields (`pthread_getattr_np`, a pthread key's
//! value, the resolver state, the message buffers, malloc's per-thread
//! slots, libc's TLS segment), a thread's exit frees what glibc allocated
//! for it (`free`, `dlerror`, `__res_nclose`), and `dlopen` support asks
//! the dynamic linker where a module's TLS lies. Each function is a thin
//! wrapper, named after what it calls; none makes a system call of its
//! own that rustix would give (those are [`crate::sys::thread`] and
//! [`crate::sys::process`]), except the two rustix lacks, made raw.
//!
//! Several are called under a green thread's thread pointer: each libc
//! call reaches its thread-locals (errno, the resolver state) through the
//! thread pointer current at the call.

use std::ffi::{c_char, c_int, c_void, CStr};

use rustix::io::Errno;

/// `getauxval(AT_HWCAP2)`: the second word of the CPU's capability bits
/// (x86-64: bit 1 is `HWCAP2_FSGSBASE`, the kernel lets user code set the
/// FS base).
pub(crate) fn hwcap2() -> u64 {
    // SAFETY: getauxval has no preconditions.
    unsafe { libc::getauxval(libc::AT_HWCAP2) as u64 }
}

/// The address of errno under the current thread pointer
/// (`__errno_location`).
#[inline]
pub(crate) fn errno_location() -> *mut c_int {
    // SAFETY: no preconditions; it answers for the current thread pointer.
    unsafe { libc::__errno_location() }
}

/// errno under the current thread pointer.
#[inline]
pub(crate) fn errno() -> c_int {
    // SAFETY: the running thread's errno, always valid.
    unsafe { *errno_location() }
}

/// Sets errno under the current thread pointer.
#[inline]
pub(crate) fn set_errno(v: c_int) {
    // SAFETY: the running thread's errno, always valid.
    unsafe { *errno_location() = v };
}

/// `pthread_self()`: the running thread's `struct pthread`, as an address.
pub(crate) fn pthread_self() -> usize {
    // SAFETY: no preconditions.
    unsafe { libc::pthread_self() as usize }
}

/// `pthread_atfork(prepare, parent, child)`.
///
/// # Safety
/// Each handler runs inside every later `fork` of the process: it must be
/// sound there (async-signal-safe, in the child).
pub(crate) unsafe fn pthread_atfork(
    prepare: extern "C" fn(),
    parent: extern "C" fn(),
    child: extern "C" fn(),
) -> c_int {
    // SAFETY: the caller's.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) }
}

/// A symbol of the process (`dlsym(RTLD_DEFAULT)`), or of the given
/// version (`dlvsym`, e.g. `GLIBC_PRIVATE`), as an address.
pub(crate) fn symbol(name: &CStr, version: Option<&CStr>) -> Option<usize> {
    // SAFETY: dlsym/dlvsym with valid C strings only look the name up.
    let p = unsafe {
        match version {
            Some(v) => libc::dlvsym(libc::RTLD_DEFAULT, name.as_ptr(), v.as_ptr()),
            None => libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()),
        }
    };
    (!p.is_null()).then_some(p as usize)
}

/// `pthread_key_create(key, NULL)`: a new key with no destructor.
pub(crate) fn pthread_key_create() -> Option<libc::pthread_key_t> {
    let mut key = 0;
    // SAFETY: writes the key; no destructor.
    (unsafe { libc::pthread_key_create(&mut key, None) } == 0).then_some(key)
}

/// `pthread_key_delete(key)`.
pub(crate) fn pthread_key_delete(key: libc::pthread_key_t) {
    // SAFETY: deleting a key frees no value; a bad key is refused.
    unsafe { libc::pthread_key_delete(key) };
}

/// `pthread_setspecific(key, value)` in the running thread.
pub(crate) fn pthread_setspecific(key: libc::pthread_key_t, value: *const c_void) {
    // SAFETY: stores the pointer; it is never dereferenced by libc.
    unsafe { libc::pthread_setspecific(key, value) };
}

/// The running thread's stack as glibc describes it
/// (`pthread_getattr_np`): `(lowest address, size, guard size)`.
pub(crate) fn own_stack() -> Option<(usize, usize, usize)> {
    // SAFETY: an attribute object filled in by glibc, read, then destroyed.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut c_void = std::ptr::null_mut();
        let mut size = 0;
        let mut guard = 0;
        libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_getguardsize(&attr, &mut guard);
        libc::pthread_attr_destroy(&mut attr);
        Some((addr as usize, size, guard))
    }
}

/// Runs `start(arg)` on a new OS thread with a stack of `stack_size`
/// bytes and waits for it to end (glibc's `pthread_create` and
/// `pthread_join`, past green's interposers). The error is
/// `pthread_create`'s.
///
/// # Safety
/// `start` must be sound to run with `arg` on another thread, and `arg`
/// valid until it ends.
pub(crate) unsafe fn run_thread(
    stack_size: usize,
    start: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> Result<(), c_int> {
    // SAFETY: a default attribute object, destroyed below; the caller
    // vouches for `start` and `arg`.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setstacksize(&mut attr, stack_size);
        let mut t: libc::pthread_t = 0;
        let rc = super::original::pthread_create(&mut t, &attr, start, arg);
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 {
            return Err(rc);
        }
        super::original::pthread_join(t, std::ptr::null_mut());
    }
    Ok(())
}

/// The address of the running thread's `strsignal` buffer, filled in for
/// an unknown signal `sig`.
pub(crate) fn strsignal_buf(sig: c_int) -> usize {
    // SAFETY: no preconditions; only the address is kept.
    unsafe { libc::strsignal(sig) as usize }
}

/// The address of the running thread's `strerror` buffer, filled in for
/// an unknown error `n`.
pub(crate) fn strerror_buf(n: c_int) -> usize {
    // SAFETY: no preconditions; only the address is kept.
    unsafe { libc::strerror(n) as usize }
}

extern "C" {
    fn __res_state() -> *mut c_void;
    fn __res_nclose(state: *mut c_void);
    fn _dl_get_tls_static_info(size: *mut usize, align: *mut usize);
    fn __tls_get_addr(index: *const [usize; 2]) -> *mut c_void;
}

/// The running thread's resolver state (`__res_state()`, which `_res`
/// names).
pub(crate) fn res_state() -> usize {
    // SAFETY: no preconditions; only the address is kept.
    unsafe { __res_state() as usize }
}

/// `__res_nclose(state)`: closes a resolver state's sockets.
///
/// # Safety
/// `state` is a thread's `struct __res_state`, set up by the resolver.
pub(crate) unsafe fn res_nclose(state: *mut c_void) {
    // SAFETY: the caller's.
    unsafe { __res_nclose(state) }
}

/// Takes and frees the running thread's `dlerror` message, if it has one.
pub(crate) fn dlerror_clear() {
    // SAFETY: dlerror has no preconditions; the second call frees the
    // message the first returned.
    unsafe {
        if !libc::dlerror().is_null() {
            libc::dlerror();
        }
    }
}

/// libc's `free`.
///
/// # Safety
/// `p` is null or a live block of libc's `malloc`, not used again.
pub(crate) unsafe fn free(p: *mut c_void) {
    // SAFETY: the caller's.
    unsafe { libc::free(p) }
}

/// A malloc and free that the optimiser keeps (it may drop an unused
/// pair): sets up malloc's per-thread state under the current thread
/// pointer.
///
/// # Safety
/// Only libc runs: callable under any valid thread pointer.
#[inline(never)]
pub(crate) unsafe fn malloc_once() {
    // SAFETY: a small allocation, freed at once.
    unsafe {
        let p = std::hint::black_box(libc::malloc(40));
        libc::free(std::hint::black_box(p));
    }
}

/// What [`each_module`] hands to its callback, through a thin pointer.
type EachModule<'a> = &'a mut dyn FnMut(&libc::dl_phdr_info) -> bool;

/// Calls `f` with each loaded module's program headers
/// (`dl_iterate_phdr`) until it returns `true`. `f` must not panic (a
/// panic cannot unwind through the dynamic linker: it aborts).
pub(crate) fn each_module(mut f: impl FnMut(&libc::dl_phdr_info) -> bool) {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: dl_iterate_phdr passes a valid info and our `data`, an
        // `EachModule` that outlives the iteration.
        let (info, f) = unsafe { (&*info, &mut *(data as *mut EachModule<'_>)) };
        c_int::from(f(info))
    }
    let mut f: EachModule<'_> = &mut f;
    // SAFETY: the callback only passes on what it is given, to `f`.
    unsafe { libc::dl_iterate_phdr(Some(each), (&mut f as *mut EachModule<'_>).cast()) };
}

/// The program headers of a loaded module (`dl_phdr_info`).
pub(crate) fn phdrs(info: &libc::dl_phdr_info) -> &[libc::Elf64_Phdr] {
    // SAFETY: `dlpi_phnum` headers at `dlpi_phdr`, as dl_iterate_phdr
    // gives them.
    unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) }
}

/// A loaded module's name, or `None` for the unnamed ones.
pub(crate) fn module_name(info: &libc::dl_phdr_info) -> Option<&CStr> {
    // SAFETY: a NUL-terminated name, as dl_iterate_phdr gives it.
    (!info.dlpi_name.is_null()).then(|| unsafe { CStr::from_ptr(info.dlpi_name as *const c_char) })
}

/// The size and alignment of the static TLS each thread's block has
/// (`_dl_get_tls_static_info`).
pub(crate) fn tls_static_info() -> (usize, usize) {
    let (mut size, mut align) = (0, 0);
    // SAFETY: writes the two sizes.
    unsafe { _dl_get_tls_static_info(&mut size, &mut align) };
    (size, align)
}

/// Where module `modid`'s TLS lies in the running thread's block
/// (`__tls_get_addr`), bringing the thread's DTV up to date.
///
/// # Safety
/// `modid` is the TLS module id of a loaded module.
pub(crate) unsafe fn tls_get_addr(modid: usize) -> usize {
    // SAFETY: a `tls_index` of a loaded module, offset 0.
    unsafe { __tls_get_addr(&[modid, 0]) as usize }
}

/// `get_robust_list(0)`: where the kernel has this thread's robust-futex
/// list head (a raw system call: rustix has none).
pub(crate) fn robust_list_head() -> Result<usize, Errno> {
    let mut head: usize = 0;
    let mut len: usize = 0;
    // SAFETY: writes the two words given.
    unsafe {
        super::raw::syscall(
            libc::SYS_get_robust_list,
            0,
            &mut head as *mut usize as usize,
            &mut len as *mut usize as usize,
            0,
            0,
            0,
        )
    }?;
    Ok(head)
}

/// The word at `addr` of this process, read through the kernel
/// (`process_vm_readv`, a raw system call: rustix has none), so that an
/// address that is not mapped gives an error (`EFAULT`) instead of a
/// fault.
pub(crate) fn read_own_word(addr: usize) -> Result<usize, Errno> {
    let mut v = 0usize;
    let local = libc::iovec {
        iov_base: (&mut v as *mut usize).cast(),
        iov_len: 8,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut c_void,
        iov_len: 8,
    };
    let pid = super::process::getpid().as_raw_nonzero().get();
    // SAFETY: reads 8 bytes of this process into `v`; the kernel checks
    // the source address.
    let n = unsafe {
        super::raw::syscall(
            libc::SYS_process_vm_readv,
            pid as usize,
            &local as *const libc::iovec as usize,
            1,
            &remote as *const libc::iovec as usize,
            1,
            0,
        )
    }?;
    if n == 8 {
        Ok(v)
    } else {
        Err(Errno::FAULT)
    }
}

//! The real libc functions behind the interposers.
//!
//! Each function here has the signature of the libc function of the same
//! name and calls the definition that the dynamic linker finds *after* this
//! executable (`dlsym(RTLD_NEXT, name)`), which is libc's. Calling the libc
//! name itself from inside the executable would reach the interposer again.
//! Use these to make a call that must block its OS thread, or to measure a
//! call without the interposer. They work whether or not
//! [`patch`](crate::patch()) was called.
//!
//! The lookup happens once per function, on first use, and is cached.
//!
//! # Safety
//! Each function is exactly as unsafe as its libc namesake: pointers must
//! be valid for what libc reads and writes through them.
//!
//! # Examples
//! ```
//! // Sleeps the OS thread itself, even on a green thread under patch().
//! let ts = libc::timespec { tv_sec: 0, tv_nsec: 1_000_000 };
//! let rc = unsafe { green::patch::original::nanosleep(&ts, std::ptr::null_mut()) };
//! assert_eq!(rc, 0);
//! ```
#![allow(clippy::missing_safety_doc, non_snake_case)]

use libc::{
    addrinfo, c_char, c_int, c_long, c_uint, c_ulong, c_void, clockid_t, epoll_event, fd_set, id_t,
    idtype_t, iovec, loff_t, msghdr, nfds_t, off64_t, off_t, pid_t, pollfd, rusage, siginfo_t,
    sigset_t, size_t, sockaddr, socklen_t, ssize_t, timespec, timeval, useconds_t,
};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The address of libc's `name` (NUL-terminated), cached in `slot`.
#[cold]
fn resolve(name: &'static str, slot: &AtomicUsize) -> usize {
    // SAFETY: `name` is NUL-terminated; RTLD_NEXT is a valid handle.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) } as usize;
    if p == 0 {
        // Nothing else can be done: the caller needs the real function.
        // No libc call that could be interposed is made on the way out:
        // the write is rustix's system call.
        let msg = b"green: dlsym(RTLD_NEXT) cannot find a libc function the patch needs\n";
        // SAFETY: fd 2 is only written to, for the duration of the call; a
        // closed stderr makes the write fail, which changes nothing here.
        let stderr = unsafe { std::os::fd::BorrowedFd::borrow_raw(2) };
        let _ = super::io::write(stderr, msg);
        std::process::abort();
    }
    slot.store(p, Ordering::Relaxed);
    p
}

macro_rules! originals {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty; )*) => {
        $(
            #[doc = concat!("libc's `", stringify!($name), "`, bypassing green's interposer.")]
            $(#[$doc])*
            #[inline]
            pub unsafe fn $name($($arg: $ty),*) -> $ret {
                static SLOT: AtomicUsize = AtomicUsize::new(0);
                /// The first call: looks the function up, then calls it.
                #[cold]
                #[inline(never)]
                unsafe extern "C" fn first($($arg: $ty),*) -> $ret {
                    let p = resolve(concat!(stringify!($name), "\0"), &SLOT);
                    // SAFETY: `p` is libc's function of this name and signature.
                    let f: unsafe extern "C" fn($($ty),*) -> $ret = unsafe { std::mem::transmute(p) };
                    // SAFETY: the caller upholds libc's contract for it.
                    unsafe { f($($arg),*) }
                }
                let p = SLOT.load(Ordering::Relaxed);
                if p == 0 {
                    // SAFETY: the caller upholds libc's contract for it.
                    return unsafe { first($($arg),*) };
                }
                // SAFETY: `p` is libc's function of this name and signature.
                let f: unsafe extern "C" fn($($ty),*) -> $ret = unsafe { std::mem::transmute(p) };
                // SAFETY: the caller upholds libc's contract for it.
                unsafe { f($($arg),*) }
            }
        )*
    };
}

macro_rules! variadic_originals {
    ($( fn $name:ident($($fixed:ident: $fty:ty),*; $($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
        $(
            #[doc = concat!("libc's variadic `", stringify!($name), "`, bypassing green's interposer.")]
            #[inline]
            pub unsafe fn $name($($fixed: $fty,)* $($arg: $ty),*) -> $ret {
                static SLOT: AtomicUsize = AtomicUsize::new(0);
                /// The first call: looks the function up, then calls it.
                #[cold]
                #[inline(never)]
                unsafe extern "C" fn first($($fixed: $fty,)* $($arg: $ty),*) -> $ret {
                    let p = resolve(concat!(stringify!($name), "\0"), &SLOT);
                    // SAFETY: `p` is libc's variadic function of this name.
                    let f: unsafe extern "C" fn($($fty,)* ...) -> $ret = unsafe { std::mem::transmute(p) };
                    // SAFETY: the caller upholds libc's contract for it.
                    unsafe { f($($fixed,)* $($arg),*) }
                }
                let p = SLOT.load(Ordering::Relaxed);
                if p == 0 {
                    // SAFETY: the caller upholds libc's contract for it.
                    return unsafe { first($($fixed,)* $($arg),*) };
                }
                // SAFETY: `p` is libc's variadic function of this name.
                let f: unsafe extern "C" fn($($fty,)* ...) -> $ret = unsafe { std::mem::transmute(p) };
                // SAFETY: the caller upholds libc's contract for it.
                unsafe { f($($fixed,)* $($arg),*) }
            }
        )*
    };
}

originals! {
    fn read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t;
    fn write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t;
    fn readv(fd: c_int, iov: *const iovec, iovcnt: c_int) -> ssize_t;
    fn writev(fd: c_int, iov: *const iovec, iovcnt: c_int) -> ssize_t;
    fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t;
    fn recvfrom(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int, addr: *mut sockaddr, addrlen: *mut socklen_t) -> ssize_t;
    fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t;
    fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t;
    fn sendto(fd: c_int, buf: *const c_void, len: size_t, flags: c_int, addr: *const sockaddr, addrlen: socklen_t) -> ssize_t;
    fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t;
    fn accept(fd: c_int, addr: *mut sockaddr, addrlen: *mut socklen_t) -> c_int;
    fn accept4(fd: c_int, addr: *mut sockaddr, addrlen: *mut socklen_t, flags: c_int) -> c_int;
    fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
    fn poll(fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int;
    fn ppoll(fds: *mut pollfd, nfds: nfds_t, timeout: *const timespec, sigmask: *const sigset_t) -> c_int;
    fn select(nfds: c_int, readfds: *mut fd_set, writefds: *mut fd_set, exceptfds: *mut fd_set, timeout: *mut timeval) -> c_int;
    fn epoll_wait(epfd: c_int, events: *mut epoll_event, maxevents: c_int, timeout: c_int) -> c_int;
    fn epoll_pwait(epfd: c_int, events: *mut epoll_event, maxevents: c_int, timeout: c_int, sigmask: *const sigset_t) -> c_int;
    fn nanosleep(req: *const timespec, rem: *mut timespec) -> c_int;
    fn clock_nanosleep(clock: clockid_t, flags: c_int, req: *const timespec, rem: *mut timespec) -> c_int;
    fn usleep(usec: useconds_t) -> c_int;
    fn sleep(secs: c_uint) -> c_uint;
    fn sched_yield() -> c_int;
    fn getaddrinfo(node: *const c_char, service: *const c_char, hints: *const addrinfo, res: *mut *mut addrinfo) -> c_int;
    fn waitpid(pid: pid_t, status: *mut c_int, options: c_int) -> pid_t;
    fn wait4(pid: pid_t, status: *mut c_int, options: c_int, rusage: *mut rusage) -> pid_t;
    fn waitid(idtype: idtype_t, id: id_t, infop: *mut siginfo_t, options: c_int) -> c_int;
    fn setsockopt(fd: c_int, level: c_int, name: c_int, value: *const c_void, len: socklen_t) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn dup(fd: c_int) -> c_int;
    fn dup2(old: c_int, new: c_int) -> c_int;
    fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int;
    fn sendfile(out_fd: c_int, in_fd: c_int, offset: *mut off_t, count: size_t) -> ssize_t;
    fn sendfile64(out_fd: c_int, in_fd: c_int, offset: *mut off64_t, count: size_t) -> ssize_t;
    fn splice(fd_in: c_int, off_in: *mut loff_t, fd_out: c_int, off_out: *mut loff_t, len: size_t, flags: c_uint) -> ssize_t;
    ///
    /// glibc's checked `read` (C code built with `_FORTIFY_SOURCE`): it
    /// aborts if `nbytes` exceeds `buflen`.
    fn __read_chk(fd: c_int, buf: *mut c_void, nbytes: size_t, buflen: size_t) -> ssize_t;
    ///
    /// glibc's checked `recv`: it aborts if `len` exceeds `buflen`.
    fn __recv_chk(fd: c_int, buf: *mut c_void, len: size_t, buflen: size_t, flags: c_int) -> ssize_t;
    ///
    /// glibc's checked `recvfrom`: it aborts if `len` exceeds `buflen`.
    fn __recvfrom_chk(fd: c_int, buf: *mut c_void, len: size_t, buflen: size_t, flags: c_int, addr: *mut sockaddr, addrlen: *mut socklen_t) -> ssize_t;
    ///
    /// glibc's checked `poll`: it aborts if `fdslen` bytes hold fewer than
    /// `nfds` pollfds.
    fn __poll_chk(fds: *mut pollfd, nfds: nfds_t, timeout: c_int, fdslen: size_t) -> c_int;
    ///
    /// glibc's checked `ppoll`: it aborts if `fdslen` bytes hold fewer than
    /// `nfds` pollfds.
    fn __ppoll_chk(fds: *mut pollfd, nfds: nfds_t, timeout: *const timespec, sigmask: *const sigset_t, fdslen: size_t) -> c_int;
}

/// The address of libc's `syscall`, once looked up.
#[cfg(all(target_arch = "x86_64", target_pointer_width = "64"))]
static SYSCALL: AtomicUsize = AtomicUsize::new(0);

/// libc's `syscall`, bypassing green's interposer.
///
/// libc's `syscall` is variadic, and this calls it with fixed arguments:
/// the number and six more, as the kernel takes them. On x86-64 System V
/// a variadic callee finds integer arguments exactly where a
/// fixed-argument caller puts them, and glibc's `syscall` reads no other
/// register (not `%al` either, a variadic call's count of vector
/// registers, which the jump leaves as the caller set it).
///
/// It is a jump to libc's function, with every register and the stack as
/// the caller left them: an interposer that passes a call through ends in
/// a jump to it rather than holding a frame across the system call (the
/// seventh argument is on the stack, and the compiler would copy it into
/// a frame of its own to call through a pointer).
#[cfg(all(target_arch = "x86_64", target_pointer_width = "64"))]
#[unsafe(naked)]
pub unsafe extern "C" fn syscall(
    num: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    std::arch::naked_asm!(
        // r11: scratch, no argument; rax is left as the caller set it.
        "mov r11, qword ptr [rip + {slot}]",
        "test r11, r11",
        "jz {first}",
        "jmp r11",
        slot = sym SYSCALL,
        first = sym syscall_first,
    )
}

/// The first call of [`syscall`]: looks it up, then calls it.
#[cfg(all(target_arch = "x86_64", target_pointer_width = "64"))]
#[cold]
unsafe extern "C" fn syscall_first(
    num: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    let p = resolve("syscall\0", &SYSCALL);
    // SAFETY: `p` is libc's variadic `syscall`.
    let f: unsafe extern "C" fn(c_long, ...) -> c_long = unsafe { std::mem::transmute(p) };
    // SAFETY: the caller upholds libc's contract for it.
    unsafe { f(num, a1, a2, a3, a4, a5, a6) }
}

#[cfg(not(all(target_arch = "x86_64", target_pointer_width = "64")))]
variadic_originals! {
    fn syscall(num: c_long; a1: c_long, a2: c_long, a3: c_long, a4: c_long, a5: c_long, a6: c_long) -> c_long;
}

originals! {
    fn pthread_create(thread: *mut libc::pthread_t, attr: *const libc::pthread_attr_t, start: extern "C" fn(*mut c_void) -> *mut c_void, arg: *mut c_void) -> c_int;
    fn pthread_join(thread: libc::pthread_t, retval: *mut *mut c_void) -> c_int;
    fn dlopen(file: *const c_char, mode: c_int) -> *mut c_void;
    fn thrd_create(thread: *mut libc::c_ulong, start: extern "C" fn(*mut c_void) -> c_int, arg: *mut c_void) -> c_int;
    fn fork() -> pid_t;
    fn _Fork() -> pid_t;
    fn setuid(uid: libc::uid_t) -> c_int;
    fn setgid(gid: libc::gid_t) -> c_int;
    fn seteuid(uid: libc::uid_t) -> c_int;
    fn setegid(gid: libc::gid_t) -> c_int;
    fn setreuid(ruid: libc::uid_t, euid: libc::uid_t) -> c_int;
    fn setregid(rgid: libc::gid_t, egid: libc::gid_t) -> c_int;
    fn setresuid(ruid: libc::uid_t, euid: libc::uid_t, suid: libc::uid_t) -> c_int;
    fn setresgid(rgid: libc::gid_t, egid: libc::gid_t, sgid: libc::gid_t) -> c_int;
    fn setgroups(size: size_t, list: *const libc::gid_t) -> c_int;
}

variadic_originals! {
    fn fcntl(fd: c_int, cmd: c_int; arg: c_long) -> c_int;
    fn ioctl(fd: c_int, request: c_ulong; arg: *mut c_void) -> c_int;
}

/// libc's `sched_yield` called by its name, as any other code in the
/// executable calls it. Unlike the functions above, it reaches green's
/// interposer of that name wherever the executable holds one: `patch()`
/// calls it to learn whether the interposers are reached at all (the link
/// probe).
pub(crate) fn sched_yield_by_name() {
    // SAFETY: sched_yield has no preconditions.
    unsafe { libc::sched_yield() };
}

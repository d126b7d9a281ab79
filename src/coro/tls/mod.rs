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
//!
//! The parts, one per file: `layout` (the probe that finds and checks
//! glibc's offsets), `block` (making, filling in and freeing a block),
//! `switch` (the thread-pointer switch, and running as the OS thread),
//! `exit` (a thread's exit under its own pointer), `fork` (fork and
//! `set*id` from a green block), `live` (every live block, for `dlopen`).

mod block;
mod exit;
mod fork;
mod layout;
mod live;
mod switch;

pub(crate) use block::Block;
pub(crate) use exit::run_exit;
pub(crate) use layout::{layout, layout_found, Layout};
pub(crate) use live::{init_new_static_tls, tls_modules};
pub(crate) use switch::{
    current_tp, fsgsbase, in_os_region, on_own_block, os_tp, set_tp, under_os_tp,
};

use std::sync::atomic::{AtomicBool, Ordering};

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

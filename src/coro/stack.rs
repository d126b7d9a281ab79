//! Green threads' stacks: guarded mappings and the per-hub pool.
//!
//! Each stack is one anonymous mapping whose lowest page is a guard page
//! (see the picture in [`crate::coro`]). Default-size stacks are carved 64
//! at a time from one mapping, each guard page installed with
//! `madvise(MADV_GUARD_INSTALL)` (Linux 6.13+), which does not split the
//! mapping: a stack costs no kernel VMA of its own, so `vm.max_map_count`
//! does not bound how many there are. On older kernels, and for stacks of
//! other sizes, each stack is a mapping of its own whose guard page is
//! `PROT_NONE`: two VMAs per stack. Finished green threads give their
//! stack back to a per-hub pool so the next spawn reuses it without a
//! system call.

use std::io;
use std::ptr;

use corosensei::stack::{Stack, StackPointer};

use crate::sys::mm::{self, MapFlags, MprotectFlags, ProtFlags};

/// Default usable size of a green thread's stack: 256 KiB.
///
/// Only the pages a green thread touches use memory; the rest is address
/// space. Change it per green thread with
/// [`Builder::stack_size`](crate::Builder::stack_size).
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// How many free stacks of the default size one hub keeps ready, pages and
/// all, however long they stay free.
const POOL_CAP: usize = 1024;

/// How long more than [`POOL_CAP`] stacks must stay free before the
/// surplus gives its memory back ([`StackPool::trim`]).
pub(crate) const TRIM_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Default-size stacks carved from one mapping at a time.
const CHUNK_STACKS: usize = 64;

/// The page size, asked once.
#[inline]
pub(super) fn page_size() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // 0 until asked; every thread that asks first gets the same answer.
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    match PAGE.load(Ordering::Relaxed) {
        0 => {
            let page = crate::sys::mem::page_size();
            PAGE.store(page, Ordering::Relaxed);
            page
        }
        page => page,
    }
}

/// A green thread's stack: one mapping with a guard page at its low end.
///
/// # Invariant
/// `limit..limit + len` is memory owned by this value whose first page
/// faults on access and whose rest is readable and writable. Unless
/// its `mapping` is `Carved`, it is a mapping of its own (unmapped on drop); a carved stack
/// lies in a chunk owned by a [`StackPool`], which unmaps the chunk.
#[derive(Debug)]
pub(crate) struct GuardedStack {
    pub(super) limit: usize,
    pub(super) len: usize,
    /// A word, not a `bool`: a stack is moved on every spawn and reap, and
    /// a struct of three words moves as words (a `bool` and its padding
    /// moved as odd-sized pieces and read back whole stall the CPU's store
    /// forwarding).
    mapping: Mapping,
}

/// Whether a [`GuardedStack`] is a mapping of its own or carved from a
/// pool's chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
enum Mapping {
    Own,
    Carved,
}

impl GuardedStack {
    /// Maps a stack with at least `size` usable bytes.
    pub(crate) fn new(size: usize) -> io::Result<GuardedStack> {
        let page = page_size();
        let size = size.max(corosensei::stack::MIN_STACK_SIZE);
        let usable = size
            .checked_add(page - 1)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "stack size overflows"))?
            & !(page - 1);
        let len = usable + page;
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choosing touches no existing memory.
        let addr = unsafe {
            mm::mmap_anonymous(
                ptr::null_mut(),
                len,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }
        .map_err(|e| map_error(e.into()))?;
        let stack = GuardedStack {
            limit: addr as usize,
            len,
            mapping: Mapping::Own,
        };
        // SAFETY: the range lies inside the mapping just made (Invariant);
        // if this fails, dropping `stack` unmaps it.
        unsafe {
            mm::mprotect(
                (stack.limit + page) as *mut libc::c_void,
                usable,
                MprotectFlags::READ | MprotectFlags::WRITE,
            )
        }
        .map_err(|e| map_error(e.into()))?;
        Ok(stack)
    }

    /// Usable bytes (without the guard page).
    pub(crate) fn usable(&self) -> usize {
        self.len - page_size()
    }

    /// The address just above the stack.
    pub(crate) fn top(&self) -> usize {
        self.limit + self.len
    }

    /// The guard page's address range.
    pub(crate) fn guard(&self) -> (usize, usize) {
        (self.limit, self.limit + page_size())
    }

    /// The whole mapping as `(lowest address, length, guard length)`, as
    /// glibc describes a thread's stack.
    pub(crate) fn span(&self) -> (usize, usize, usize) {
        (self.limit, self.len, page_size())
    }
}

impl Drop for GuardedStack {
    fn drop(&mut self) {
        if self.mapping == Mapping::Carved {
            // The chunk it lies in is unmapped by its pool.
            return;
        }
        // SAFETY: the mapping is owned by `self` (Invariant) and no coroutine
        // runs on it any more: corosensei hands a stack back only when done.
        let _ = unsafe { mm::munmap(self.limit as *mut libc::c_void, self.len) };
    }
}

// SAFETY: `base` and `limit` bound the mapping; the guard page catches
// overflow and the usable part is at least MIN_STACK_SIZE (see `new`).
unsafe impl Stack for GuardedStack {
    fn base(&self) -> StackPointer {
        StackPointer::new(self.limit + self.len).expect("stack mapping at address zero")
    }

    fn limit(&self) -> StackPointer {
        StackPointer::new(self.limit).expect("stack mapping at address zero")
    }
}

/// Turns an `mmap`/`mprotect` failure into an error that names the limit.
fn map_error(err: io::Error) -> io::Error {
    if err.raw_os_error() == Some(libc::ENOMEM) {
        let limit = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!(
                "cannot map a green thread stack: out of memory, or out of memory mappings \
                 (vm.max_map_count = {limit}; a stack of a non-default size, or any stack on \
                 kernels before 6.13, uses 2); raise the limit with \
                 `sysctl -w vm.max_map_count=N`, or run fewer green threads at once"
            ),
        )
    } else {
        err
    }
}

/// The stack a coroutine runs on: its own guarded stack, or a shared arena.
#[derive(Debug)]
pub(crate) enum GreenStack {
    /// A stack owned by one green thread.
    Own(GuardedStack),
    /// The bounds of a shared arena (owned by the hub's
    /// [`Arena`](super::Arena)).
    Shared { base: usize, limit: usize },
}

// SAFETY: `Own` is a guarded stack (see its impl); `Shared` names the bounds
// of an arena, itself a `GuardedStack` that outlives every coroutine on it
// (the hub drops arenas last) and whose guard page catches overflow.
unsafe impl Stack for GreenStack {
    fn base(&self) -> StackPointer {
        match self {
            GreenStack::Own(s) => s.base(),
            GreenStack::Shared { base, .. } => StackPointer::new(*base).expect("null arena"),
        }
    }

    fn limit(&self) -> StackPointer {
        match self {
            GreenStack::Own(s) => s.limit(),
            GreenStack::Shared { limit, .. } => StackPointer::new(*limit).expect("null arena"),
        }
    }
}

/// Free stacks of the default size, kept by one hub for reuse.
///
/// Where the kernel supports guard pages installed with `madvise`
/// (`MADV_GUARD_INSTALL`), default-size stacks are carved from chunks of
/// [`CHUNK_STACKS`] stacks: one mapping per chunk, a guard page per stack,
/// and no kernel VMA per stack, so `vm.max_map_count` no longer bounds the
/// number of green threads. Carved stacks are never unmapped while the hub
/// lives. Elsewhere each stack is a mapping of its own with a `PROT_NONE`
/// guard page.
///
/// A finished green thread's stack always goes back to the pool with its
/// pages: giving memory back costs a system call and a TLB flush per
/// stack, and the next spawn would fault the page in again. Only when more
/// than [`POOL_CAP`] stacks have stayed free for [`TRIM_AFTER`] does the
/// loop, about to sleep, give the surplus back ([`StackPool::trim`]):
/// carved stacks keep their place (and guard page) with their memory
/// returned by `MADV_DONTNEED`, own mappings are unmapped.
#[derive(Debug, Default)]
pub(crate) struct StackPool {
    /// Free stacks whose pages may still be resident.
    hot: Vec<GuardedStack>,
    /// Free carved stacks whose memory was given back (or never touched).
    cold: Vec<GuardedStack>,
    /// Chunk mappings `(address, length)`, unmapped when the pool drops.
    chunks: Vec<(usize, usize)>,
    /// `MADV_GUARD_INSTALL` was refused: use one mapping per stack.
    no_guard_advice: bool,
    /// Since when `hot` has held more than [`POOL_CAP`] stacks, as the
    /// loop last saw it.
    over_since: Option<std::time::Instant>,
}

impl StackPool {
    /// A stack with at least `size` usable bytes, reused when possible.
    #[inline]
    pub(crate) fn get(&mut self, size: usize) -> io::Result<GuardedStack> {
        if size == DEFAULT_STACK_SIZE {
            if let Some(stack) = self.hot.pop().or_else(|| self.cold.pop()) {
                return Ok(stack);
            }
            if !self.no_guard_advice && self.carve_chunk()? {
                return Ok(self.cold.pop().expect("a chunk was just carved"));
            }
        }
        GuardedStack::new(size)
    }

    /// Maps a chunk and carves it into guarded default-size stacks, put on
    /// the cold list. Returns `false` if the kernel has no guard advice.
    fn carve_chunk(&mut self) -> io::Result<bool> {
        let page = page_size();
        let stack_len = DEFAULT_STACK_SIZE + page;
        let len = stack_len * CHUNK_STACKS;
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choosing touches no existing memory.
        let addr = unsafe {
            mm::mmap_anonymous(
                ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }
        .map_err(|e| map_error(e.into()))?;
        let base = addr as usize;
        for i in 0..CHUNK_STACKS {
            let limit = base + i * stack_len;
            // SAFETY: the page lies inside the chunk just mapped, unused.
            let rc = unsafe { crate::sys::mem::guard_install(limit as *mut libc::c_void, page) };
            if let Err(err) = rc {
                // SAFETY: the chunk was mapped above and nothing uses it yet.
                let _ = unsafe { mm::munmap(addr, len) };
                self.cold.truncate(self.cold.len() - i);
                return match err.raw_os_error() {
                    libc::EINVAL | libc::ENOSYS => {
                        self.no_guard_advice = true;
                        Ok(false)
                    }
                    _ => Err(map_error(err.into())),
                };
            }
            self.cold.push(GuardedStack {
                limit,
                len: stack_len,
                mapping: Mapping::Carved,
            });
        }
        self.chunks.push((base, len));
        Ok(true)
    }

    /// Returns a finished green thread's stack. Default-size stacks are kept
    /// with their pages (see [`StackPool::trim`]); others are unmapped.
    /// Arena bounds are ignored.
    pub(crate) fn put(&mut self, stack: GreenStack) {
        let GreenStack::Own(stack) = stack else {
            return;
        };
        if stack.usable() == DEFAULT_STACK_SIZE {
            self.hot.push(stack);
        }
    }

    /// Gives back the memory of the free stacks beyond [`POOL_CAP`] once
    /// there have been more than that for [`TRIM_AFTER`]; called by the
    /// loop when it is about to sleep. Returns when to call again (the
    /// loop wakes up by then), or `None` if there is no surplus.
    pub(crate) fn trim(&mut self, now: std::time::Instant) -> Option<std::time::Instant> {
        if self.hot.len() <= POOL_CAP {
            self.over_since = None;
            return None;
        }
        let since = *self.over_since.get_or_insert(now);
        if now < since + TRIM_AFTER {
            return Some(since + TRIM_AFTER);
        }
        self.over_since = None;
        // The oldest free stacks go: the newest are the likeliest in cache.
        let page = page_size();
        for stack in self.hot.drain(..self.hot.len() - POOL_CAP) {
            if stack.mapping == Mapping::Carved {
                // SAFETY: the stack's usable part lies in a chunk this pool
                // owns and no coroutine runs on it; its contents are not
                // needed.
                let _ = unsafe {
                    mm::madvise(
                        (stack.limit + page) as *mut libc::c_void,
                        stack.len - page,
                        mm::Advice::LinuxDontNeed,
                    )
                };
                self.cold.push(stack);
            }
            // An own mapping is unmapped as it drops.
        }
        None
    }

    /// Free stacks ready for reuse.
    pub(crate) fn len(&self) -> usize {
        self.hot.len() + self.cold.len()
    }
}

impl Drop for StackPool {
    fn drop(&mut self) {
        self.hot.clear();
        self.cold.clear();
        for &(addr, len) in &self.chunks {
            // SAFETY: the chunk was mapped by `carve_chunk`; every green
            // thread of the hub is gone, so no stack in it is in use.
            let _ = unsafe { mm::munmap(addr as *mut libc::c_void, len) };
        }
    }
}

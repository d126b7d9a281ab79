//! Stacks for green threads, and the stack-overflow report.
//!
//! This is the only module that knows how a green thread's stack is laid out.
//! Each stack is one anonymous mapping whose lowest page is a guard page:
//!
//! ```text
//!   high addresses
//!   +---------------------------+  <- base (corosensei starts here, grows down)
//!   |                           |
//!   |  usable stack, PROT_RW    |  `size` bytes, touched lazily by the kernel
//!   |                           |
//!   +---------------------------+  <- limit + page
//!   |  guard page, PROT_NONE    |  a write here faults: stack overflow
//!   +---------------------------+  <- limit (start of the mapping)
//!   low addresses
//! ```
//!
//! Default-size stacks are carved 64 at a time from one mapping, each guard
//! page installed with `madvise(MADV_GUARD_INSTALL)` (Linux 6.13+), which
//! does not split the mapping: a stack costs no kernel VMA of its own, so
//! `vm.max_map_count` does not bound how many there are. On older kernels,
//! and for stacks of other sizes, each stack is a mapping of its own whose
//! guard page is `PROT_NONE`: two VMAs per stack. Finished green threads give
//! their stack back to a per-hub pool so the next spawn reuses it without a
//! syscall.
//!
//! A fault in a guard page is caught by a `SIGSEGV`/`SIGBUS` handler running
//! on the thread's alternate signal stack: if the faulting address lies in the
//! guard page of the green thread that is running, it prints which green thread
//! overflowed and aborts, like std's "has overflowed its stack". Any other
//! fault is handed to the handler that was installed before ours.

pub(crate) mod tls;

use std::cell::Cell;
use std::io;
use std::ptr;
use std::sync::Once;

use corosensei::stack::{Stack, StackPointer};

/// Default usable size of a green thread's stack: 256 KiB.
///
/// Only the pages a green thread touches use memory; the rest is address
/// space. Change it per green thread with
/// [`Builder::stack_size`](crate::Builder::stack_size).
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// How many free stacks of the default size one hub keeps ready, pages and
/// all, for reuse.
const POOL_CAP: usize = 1024;

fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize)
}

/// A green thread's stack: one mapping with a guard page at its low end.
///
/// # Invariant
/// `limit..limit + len` is memory owned by this value whose first page
/// faults on access and whose rest is readable and writable. Unless
/// `carved`, it is a mapping of its own (unmapped on drop); a carved stack
/// lies in a chunk owned by a [`StackPool`], which unmaps the chunk.
#[derive(Debug)]
pub(crate) struct GuardedStack {
    limit: usize,
    len: usize,
    carved: bool,
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
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(map_error(io::Error::last_os_error()));
        }
        let stack = GuardedStack {
            limit: addr as usize,
            len,
            carved: false,
        };
        // SAFETY: the range lies inside the mapping just made (Invariant);
        // if this fails, dropping `stack` unmaps it.
        let rc = unsafe {
            libc::mprotect(
                (stack.limit + page) as *mut libc::c_void,
                usable,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if rc != 0 {
            return Err(map_error(io::Error::last_os_error()));
        }
        Ok(stack)
    }

    /// Usable bytes (without the guard page).
    pub(crate) fn usable(&self) -> usize {
        self.len - page_size()
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
        if self.carved {
            // The chunk it lies in is unmapped by its pool.
            return;
        }
        // SAFETY: the mapping is owned by `self` (Invariant) and no coroutine
        // runs on it any more: corosensei hands a stack back only when done.
        unsafe {
            libc::munmap(self.limit as *mut libc::c_void, self.len);
        }
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

/// `madvise` advice that turns pages into guard pages without splitting the
/// mapping (Linux 6.13 and later).
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// Default-size stacks carved from one mapping at a time.
const CHUNK_STACKS: usize = 64;

/// Free stacks of the default size, kept by one hub for reuse.
///
/// Where the kernel supports guard pages installed with `madvise`
/// (`MADV_GUARD_INSTALL`), default-size stacks are carved from chunks of
/// [`CHUNK_STACKS`] stacks: one mapping per chunk, a guard page per stack,
/// and no kernel VMA per stack, so `vm.max_map_count` no longer bounds the
/// number of green threads. Carved stacks are never unmapped while the hub
/// lives: beyond the first [`POOL_CAP`] free ones, a freed stack gives its
/// memory back with `MADV_DONTNEED` and stays in the pool. Elsewhere each
/// stack is a mapping of its own with a `PROT_NONE` guard page.
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
}

impl StackPool {
    /// A stack with at least `size` usable bytes, reused when possible.
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
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(map_error(io::Error::last_os_error()));
        }
        let base = addr as usize;
        for i in 0..CHUNK_STACKS {
            let limit = base + i * stack_len;
            // SAFETY: the page lies inside the chunk just mapped.
            let rc = unsafe { libc::madvise(limit as *mut libc::c_void, page, MADV_GUARD_INSTALL) };
            if rc != 0 {
                let err = io::Error::last_os_error();
                // SAFETY: the chunk was mapped above and nothing uses it yet.
                unsafe { libc::munmap(addr, len) };
                self.cold.truncate(self.cold.len() - i);
                return match err.raw_os_error() {
                    Some(libc::EINVAL) | Some(libc::ENOSYS) => {
                        self.no_guard_advice = true;
                        Ok(false)
                    }
                    _ => Err(map_error(err)),
                };
            }
            self.cold.push(GuardedStack {
                limit,
                len: stack_len,
                carved: true,
            });
        }
        self.chunks.push((base, len));
        Ok(true)
    }

    /// Returns a finished green thread's stack. Default-size stacks are kept
    /// (own mappings only up to [`POOL_CAP`]); others are unmapped. Arena
    /// bounds are ignored.
    pub(crate) fn put(&mut self, stack: GreenStack) {
        let GreenStack::Own(stack) = stack else {
            return;
        };
        if stack.usable() != DEFAULT_STACK_SIZE {
            return;
        }
        if self.hot.len() < POOL_CAP {
            self.hot.push(stack);
        } else if stack.carved {
            let page = page_size();
            // SAFETY: the stack's usable part lies in a chunk this pool owns
            // and no coroutine runs on it; its contents are not needed.
            unsafe {
                libc::madvise(
                    (stack.limit + page) as *mut libc::c_void,
                    stack.len - page,
                    libc::MADV_DONTNEED,
                );
            }
            self.cold.push(stack);
        }
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
            unsafe { libc::munmap(addr as *mut libc::c_void, len) };
        }
    }
}

/// What the overflow handler needs to know about the running green thread.
#[derive(Clone, Copy)]
pub(crate) struct RunningInfo {
    pub(crate) guard_lo: usize,
    pub(crate) guard_hi: usize,
    pub(crate) id: u64,
}

thread_local! {
    /// The guard page of the green thread running on this OS thread, if any.
    /// Read from the signal handler: a `const` thread-local with no destructor
    /// is safe to read there.
    static RUNNING: Cell<RunningInfo> = const {
        Cell::new(RunningInfo { guard_lo: 0, guard_hi: 0, id: 0 })
    };
}

/// Records which green thread runs now (`None`: the root or the hub).
#[inline]
pub(crate) fn set_running(info: Option<RunningInfo>) {
    let info = info.unwrap_or(RunningInfo {
        guard_lo: 0,
        guard_hi: 0,
        id: 0,
    });
    RUNNING.with(|r| r.set(info));
}

static INSTALL: Once = Once::new();
static mut PREV_SEGV: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();
static mut PREV_BUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();

/// Installs the overflow handler once per process, and makes sure this OS
/// thread has an alternate signal stack to run it on.
///
/// Returns the alternate stack this call allocated, if it had to (the caller
/// frees it with [`free_altstack`] when the thread's hub goes away).
pub(crate) fn install_overflow_handler() -> Option<(usize, usize)> {
    INSTALL.call_once(|| {
        // SAFETY: `sigaction` with a zeroed struct and our handler is the
        // documented way to install a handler; the previous actions are saved
        // once, before any fault can consult them.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = overflow_handler as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(
                libc::SIGSEGV,
                &act,
                (*ptr::addr_of_mut!(PREV_SEGV)).as_mut_ptr(),
            );
            libc::sigaction(
                libc::SIGBUS,
                &act,
                (*ptr::addr_of_mut!(PREV_BUS)).as_mut_ptr(),
            );
        }
    });
    // SAFETY: querying the current alternate stack writes only `old`.
    unsafe {
        let mut old: libc::stack_t = std::mem::zeroed();
        libc::sigaltstack(ptr::null(), &mut old);
        if old.ss_flags & libc::SS_DISABLE == 0 {
            return None;
        }
        let size = libc::SIGSTKSZ.max(64 * 1024);
        let mem = libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if mem == libc::MAP_FAILED {
            return None;
        }
        let st = libc::stack_t {
            ss_sp: mem,
            ss_flags: 0,
            ss_size: size,
        };
        libc::sigaltstack(&st, ptr::null_mut());
        Some((mem as usize, size))
    }
}

/// Disables and unmaps an alternate signal stack made by
/// [`install_overflow_handler`].
pub(crate) fn free_altstack(stack: (usize, usize)) {
    // SAFETY: the stack was mapped by `install_overflow_handler` on this
    // thread; it is disabled before it is unmapped.
    unsafe {
        let st = libc::stack_t {
            ss_sp: ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        libc::sigaltstack(&st, ptr::null_mut());
        libc::munmap(stack.0 as *mut libc::c_void, stack.1);
    }
}

fn write_stderr(bytes: &[u8]) {
    // SAFETY: write(2) on fd 2 with a valid buffer is async-signal-safe.
    unsafe {
        libc::write(2, bytes.as_ptr().cast(), bytes.len());
    }
}

fn write_decimal(mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    write_stderr(&buf[i..]);
}

extern "C" fn overflow_handler(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let running = RUNNING.with(|r| r.get());
    if running.guard_hi != 0 && addr >= running.guard_lo && addr < running.guard_hi {
        write_stderr(b"\ngreen thread ");
        write_decimal(running.id);
        write_stderr(b" has overflowed its stack\nfatal runtime error: stack overflow, aborting\n");
        // SAFETY: abort is async-signal-safe.
        unsafe { libc::abort() };
    }
    // Not ours: hand over to whoever handled this signal before.
    // SAFETY: PREV_* were written once by `sigaction` before the handler was
    // installed, and are only read here.
    unsafe {
        let prev = if sig == libc::SIGBUS {
            (*ptr::addr_of!(PREV_BUS)).assume_init_ref()
        } else {
            (*ptr::addr_of!(PREV_SEGV)).assume_init_ref()
        };
        if prev.sa_sigaction == libc::SIG_DFL || prev.sa_sigaction == libc::SIG_IGN {
            // Restore the default action and return: the faulting instruction
            // runs again and the default action (a core dump) happens.
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, ptr::null_mut());
        } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(prev.sa_sigaction);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev.sa_sigaction);
            f(sig);
        }
    }
}

/// The yielder a green thread suspends through.
pub(crate) type Yielder = corosensei::Yielder<(), ()>;

/// The stack a coroutine runs on: its own guarded stack, or a shared arena.
#[derive(Debug)]
pub(crate) enum GreenStack {
    /// A stack owned by one green thread.
    Own(GuardedStack),
    /// The bounds of a shared arena (owned by the hub's [`Arena`]).
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

/// A green thread's coroutine.
pub(crate) struct Coro {
    inner: corosensei::Coroutine<(), (), (), GreenStack>,
}

impl Coro {
    /// Makes a coroutine that will run `f` on `stack` when first resumed.
    ///
    /// For a shared stack this writes the initial frame at the arena's top:
    /// the arena must be free (its occupant saved) when this is called.
    pub(crate) fn new<F>(stack: GreenStack, f: F) -> Coro
    where
        F: FnOnce(&Yielder) + 'static,
    {
        Coro {
            inner: corosensei::Coroutine::with_stack(stack, move |y: &Yielder, ()| f(y)),
        }
    }

    /// Runs the coroutine until it suspends (`false`) or returns (`true`).
    #[inline]
    pub(crate) fn resume(&mut self) -> bool {
        match self.inner.resume(()) {
            corosensei::CoroutineResult::Yield(()) => false,
            corosensei::CoroutineResult::Return(()) => true,
        }
    }

    /// Takes the stack back from a finished coroutine.
    pub(crate) fn into_stack(self) -> GreenStack {
        self.inner.into_stack()
    }

    /// Whether the coroutine has finished.
    pub(crate) fn done(&self) -> bool {
        self.inner.done()
    }
}

impl std::fmt::Debug for Coro {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coro")
            .field("started", &self.inner.started())
            .field("done", &self.inner.done())
            .finish()
    }
}

/// Suspends the running coroutine back to the hub that resumed it, and
/// records in `sp` the stack pointer at the moment of suspending.
///
/// Every green thread suspends through this one function, so the bytes that
/// corosensei's switch (and `Yielder::suspend`, where it is not inlined)
/// leaves below the recorded stack pointer are the same for all of them;
/// [`suspend_margin`] measures them once.
///
/// # Safety
/// `y` must be the yielder of the coroutine that is running on this OS thread.
#[inline(never)]
pub(crate) unsafe fn suspend(y: *const Yielder, sp: &Cell<usize>) {
    sp.set(stack_pointer());
    // SAFETY: the caller guarantees `y` belongs to the running coroutine, so
    // it lives on that coroutine's stack for as long as it runs.
    unsafe { (*y).suspend(()) }
}

/// How many bytes below the stack pointer recorded by [`suspend`] a
/// suspended coroutine may still use, measured once per process.
///
/// A probe coroutine runs on a stack filled with a canary byte and suspends
/// through [`suspend`]; the lowest byte it changed, below the recorded stack
/// pointer, bounds what the switch keeps there. A safety allowance of 64
/// bytes is added.
pub(crate) fn suspend_margin() -> usize {
    static MARGIN: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MARGIN.get_or_init(|| {
        const CANARY: u8 = 0xA5;
        let stack = GuardedStack::new(64 * 1024).expect("cannot map a probe stack");
        let (lo, hi) = (stack.limit + page_size(), stack.limit + stack.len);
        // SAFETY: `[lo, hi)` is the probe stack's writable part, not in use.
        unsafe { ptr::write_bytes(lo as *mut u8, CANARY, hi - lo) };
        let sp = std::rc::Rc::new(Cell::new(0usize));
        let sp2 = sp.clone();
        let mut probe =
            corosensei::Coroutine::with_stack(GreenStack::Own(stack), move |y: &Yielder, ()| {
                // SAFETY: `y` is this coroutine's own yielder.
                unsafe { suspend(y, &sp2) };
            });
        assert!(matches!(
            probe.resume(()),
            corosensei::CoroutineResult::Yield(())
        ));
        // SAFETY: the probe is suspended; its stack is only read.
        let lowest = (lo..hi)
            .find(|&a| unsafe { *(a as *const u8) } != CANARY)
            .unwrap_or(hi);
        probe.resume(());
        sp.get().saturating_sub(lowest) + 64
    })
}

/// The current stack pointer.
#[inline(always)]
fn stack_pointer() -> usize {
    let sp: usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads a register; no memory access, no stack use.
    unsafe {
        std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: reads a register; no memory access, no stack use.
    unsafe {
        std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        // The address of a local is above the stack pointer by at most this
        // frame's size; the page below it covers that on these targets.
        let marker = 0u8;
        sp = (std::hint::black_box(&marker) as *const u8 as usize).saturating_sub(4096);
    }
    sp
}

/// A shared stack: many green threads run on it one at a time, and the
/// used part of a suspended one is copied to the heap when another needs the
/// arena (greenlet's technique).
///
/// ```text
///   arena base ─┬──────────────────────┐
///               │ occupant's frames    │ live while it runs; left in place
///               │ (in use)             │ when it suspends, until evicted
///   sp - margin ┼──────────────────────┤
///               │ free                 │
///   guard ──────┴──────────────────────┘
///
///   evict(occupant):  copy [sp - margin, base) -> occupant's Vec<u8> on the heap
///   enter(thread):    copy its Vec<u8>        -> [base - len, base)
/// ```
///
/// A thread's frames always return to the same addresses, so pointers into
/// its own stack stay valid for the thread itself. Memory used per suspended
/// thread is what its frames really use, not a whole stack.
#[derive(Debug)]
pub(crate) struct Arena {
    stack: GuardedStack,
    /// The slot whose frames are in the arena memory now.
    pub(crate) occupant: Option<u32>,
}

impl Arena {
    pub(crate) fn new() -> io::Result<Arena> {
        // Measure the switch's footprint before any green thread needs it.
        suspend_margin();
        Ok(Arena {
            stack: GuardedStack::new(DEFAULT_STACK_SIZE)?,
            occupant: None,
        })
    }

    /// The arena's bounds, as a coroutine stack.
    pub(crate) fn bounds(&self) -> GreenStack {
        GreenStack::Shared {
            base: self.stack.base().get(),
            limit: self.stack.limit().get(),
        }
    }

    pub(crate) fn guard(&self) -> (usize, usize) {
        self.stack.guard()
    }

    /// The arena's mapping, as [`GuardedStack::span`].
    pub(crate) fn span(&self) -> (usize, usize, usize) {
        self.stack.span()
    }

    /// Copies the frames of a suspended occupant into `saved`: the arena from
    /// `sp` (recorded by its last [`suspend`]) less [`suspend_margin`] up to
    /// the base. If that is not inside the arena (the occupant suspended
    /// while running on another stack), the whole arena is saved.
    ///
    /// # Safety
    /// The occupant must be suspended and nothing may run on the arena.
    pub(crate) unsafe fn save(&self, sp: usize, saved: &mut Vec<u8>) {
        let base = self.stack.base().get();
        // The guard page is never live: saving stops above it.
        let floor = self.stack.limit().get() + page_size();
        let low = sp.saturating_sub(suspend_margin());
        let low = if (floor..=base).contains(&low) {
            low
        } else {
            floor
        };
        saved.clear();
        // SAFETY: `[low, base)` is readable arena memory (`floor <= low`).
        saved
            .extend_from_slice(unsafe { std::slice::from_raw_parts(low as *const u8, base - low) });
    }

    /// Copies saved frames back to `[base - saved.len(), base)`.
    ///
    /// # Safety
    /// No coroutine may be running on the arena, and `saved` must come from
    /// [`Arena::save`] on this arena.
    pub(crate) unsafe fn restore(&self, saved: &[u8]) {
        let base = self.stack.base().get();
        // SAFETY: the range lies in the arena's writable part (save took it
        // from there) and nothing runs on the arena.
        unsafe {
            ptr::copy_nonoverlapping(saved.as_ptr(), (base - saved.len()) as *mut u8, saved.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspend_margin_covers_the_switch() {
        // The switch pushes at least three words below the recorded stack
        // pointer; 64 bytes of allowance come on top.
        let m = suspend_margin();
        assert!((64 + 24..4096).contains(&m), "margin {m}");
    }

    #[test]
    fn save_never_reads_the_guard_page() {
        let arena = Arena::new().unwrap();
        let base = arena.stack.base().get();
        let floor = arena.stack.limit().get() + page_size();
        let mut saved = Vec::new();
        // A thread parked just above the guard page.
        // SAFETY: no coroutine runs on the arena; `save` only reads it.
        unsafe { arena.save(floor + 8, &mut saved) };
        assert_eq!(saved.len(), base - floor);
        // A thread parked while running on another stack.
        // SAFETY: as above.
        unsafe { arena.save(base + (1 << 20), &mut saved) };
        assert_eq!(saved.len(), base - floor);
        // SAFETY: as above.
        unsafe { arena.save(base - 1000, &mut saved) };
        assert_eq!(saved.len(), 1000 + suspend_margin());
    }
}

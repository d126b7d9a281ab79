//! Where a green thread runs: its stack, its coroutine, its thread pointer.
//!
//! This is the bottom of green: it knows no scheduler. The hub asks it for
//! a stack, makes a [`Coro`] on it, resumes it, and reads back whether it
//! suspended or finished; a suspended coroutine's registers sit on its own
//! stack, below its stack pointer (which [`suspend_recording`] records for
//! a green thread on a shared stack).
//!
//! ```text
//!   high addresses
//!   +---------------------------+  <- base (corosensei starts here, grows down)
//!   | green thread's frames     |
//!   |   ... f() ... suspend     |
//!   | saved registers           |  <- sp (recorded on a shared stack)
//!   |  (the switch's footprint) |  <- sp - suspend_margin()
//!   |                           |
//!   |  usable stack, PROT_RW    |  `size` bytes, touched lazily by the kernel
//!   |                           |
//!   +---------------------------+  <- limit + page
//!   |  guard page, PROT_NONE    |  a write here faults: stack overflow
//!   +---------------------------+  <- limit (start of the mapping)
//!   low addresses
//!
//!   a pooled chunk (Linux 6.13+): one mapping, 64 default-size stacks
//!   +-------+--------------+-------+--------------+-- ... --+--------------+
//!   | guard | stack 0      | guard | stack 1      |         | stack 63     |
//!   +-------+--------------+-------+--------------+-- ... --+--------------+
//!     madvise(MADV_GUARD_INSTALL): no kernel VMA per stack
//! ```
//!
//! The parts, one per file:
//! - `stack`: [`GuardedStack`](stack::GuardedStack) (one mapping with its guard page), the
//!   per-hub [`StackPool`] that carves and reuses them, and
//!   [`GreenStack`], what a coroutine runs on (its own stack or an arena).
//! - `overflow`: the `SIGSEGV`/`SIGBUS` handler, on an alternate signal
//!   stack, that reports which green thread hit its guard page and aborts.
//! - `coroutine`: [`Coro`] and [`Yielder`], the only use of corosensei;
//!   [`suspend`] and [`suspend_recording`], the two ways a green thread
//!   suspends (on its own stack, and on a shared one).
//! - `arena`: the shared stack ([`Arena`]) many green threads take turns
//!   on, each one's frames copied to the heap while another runs there.
//! - [`tls`]: a green thread's own TLS block and TCB, and the switch of
//!   the thread pointer that makes it a thread to everything above libc.
//!
//! Every system call here goes through [`crate::sys`].

mod arena;
mod coroutine;
mod overflow;
mod stack;
pub(crate) mod tls;

pub(crate) use arena::Arena;
pub(crate) use coroutine::{
    prefetch_stack, stack_pointer, suspend, suspend_recording, Coro, Yielder,
};
pub(crate) use overflow::{free_altstack, install_overflow_handler, set_running, RunningInfo};
pub use stack::DEFAULT_STACK_SIZE;
pub(crate) use stack::{GreenStack, StackPool};

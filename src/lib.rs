//! Green threads for Rust, in the eventlet model.
//!
//! `green` runs many cheap, stackful green threads on each OS thread. Each OS
//! thread that uses green gets a **hub**: a run queue, a timer heap and an fd
//! poller. Green threads run one at a time on their OS thread and switch only
//! when they block — sleep, wait for an fd, wait for another green thread —
//! so code reads like ordinary blocking code while thousands of green threads
//! make progress together.
//!
//! As in eventlet, a spawned green thread runs when the spawning context
//! blocks or yields:
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! let start = Instant::now();
//! let workers: Vec<_> = (0..1000)
//!     .map(|i| green::spawn(move || {
//!         green::sleep(Duration::from_millis(50));
//!         i * 2
//!     }))
//!     .collect();
//! let total: u64 = workers.into_iter().map(|gt| gt.wait()).sum();
//! assert_eq!(total, 999 * 1000);
//! // 1000 sleeps of 50 ms overlap: far less than 50 s.
//! assert!(start.elapsed() < Duration::from_secs(10));
//! ```
//!
//! There are three ways in. Use green's mirrors of std explicitly
//! ([`net::TcpStream`] for `std::net::TcpStream`, [`sync::Mutex`],
//! [`process::Command`], ...); or rename the `green-std` facade to `std` in
//! `Cargo.toml`, so that every `std::` path of a crate turns green; or call
//! [`patch()`] once, first thing in `main`, after which the blocking libc
//! calls that std, third-party crates and C libraries make on a green thread
//! park only that green thread (the [`patch`](mod@patch) module,
//! `docs/patching.md`).
//!
//! Cancellation ([`GreenThread::kill`], [`Timeout`], [`with_timeout`]) is
//! delivered where the target parks, by unwinding: destructors run and
//! nothing is leaked. When an OS thread exits, its parked green threads are
//! unwound the same way. This needs `panic = "unwind"` (the default): with
//! `panic = "abort"`, a kill or an expiring `Timeout` aborts the process,
//! and green threads still parked at thread exit are leaked, not unwound:
//! their stacks stay mapped, and a wait they were in keeps its place, so a
//! lock, permit or item later handed to one of them is lost.
//! See `docs/architecture.md` for how the hub works.
//!
//! eventlet's and gevent's toolbox around that: [`wait_any`] and [`iwait`]
//! (several items at once, Go's `select`), [`Group`] (spawn, join and
//! [`kill_all`](Group::kill_all) together), [`shield`], [`signal`] (a green
//! wait for SIGTERM and friends), [`hub::call_later`], [`Hubs`] (one hub per
//! core).
//!
//! A green thread that never parks holds its hub, and every other green
//! thread of its OS thread waits. [`debug::hub_blocking_detection`] names it,
//! with the call that spawned it and the system call it is stuck in.
//! [`debug::dump`] lists every green thread with what it waits on (also on
//! a signal, [`debug::dump_on_signal`], and from a console,
//! [`debug::serve_backdoor`]); a root's wait that provably can never end
//! panics with "would block forever" (`docs/debugging.md`).
#![deny(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]
// Every unsafe block says why it is sound; libc is called only in `sys`.
#![deny(clippy::undocumented_unsafe_blocks, clippy::disallowed_methods)]
#![doc(test(attr(deny(warnings))))]

mod block_on;
mod coro;
pub mod debug;
mod event;
mod greenthread;
mod group;
pub mod hub;
mod hubs;
pub mod io;
pub mod net;
pub mod os;
pub mod patch;
mod pool;
pub mod process;
pub mod queue;
mod semaphore;
mod shield;
pub mod signal;
pub mod sync;
mod sys;
pub mod thread;
pub mod time;
mod timeout;
pub mod tpool;
mod wait;
mod wait_any;

pub use block_on::block_on;
pub use coro::DEFAULT_STACK_SIZE;
pub use event::{AlreadySent, Event};
pub use greenthread::{
    current_id, sleep, sleep_until, spawn, spawn_after, spawn_n, yield_now, Builder, GreenThread,
    Killed,
};
pub use group::Group;
pub use hubs::{Hubs, HubsHandle};
pub use net::serve::{connect, listen, serve, Server, ServerHandle, StopServe};
pub use patch::{is_patched, patch, unpatch};
pub use pool::{Apply, GreenPile, GreenPool, Imap, ImapUnordered};
pub use semaphore::{BoundedSemaphore, CappedSemaphore, ReleaseError, Semaphore, SemaphoreGuard};
pub use shield::shield;
pub use timeout::{with_timeout, Elapsed, Timeout};
pub use wait_any::{iwait, wait_any, Iwait, WaitFd, Waitable};

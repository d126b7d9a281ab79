//! Green processes: std's [`std::process`], with every wait parking only the
//! calling green thread.
//!
//! Change `use std::process` to `use green::process` and nothing else:
//! [`Command`], [`Child`] and the pipe handles have std's names, methods and
//! trait impls; everything that does not block ([`Stdio`], [`ExitStatus`],
//! [`Output`], [`exit`], ...) is std's own, re-exported.
//!
//! # How a child is waited for
//!
//! [`Child::wait`] never blocks the OS thread. It asks the kernel for a
//! *pidfd*, an fd that becomes readable when the process exits, and parks
//! on it through the hub's [`trampoline`](crate::hub::trampoline), like any
//! other green I/O. No signal handler, no polling timer:
//!
//! ```text
//!  green thread                                   kernel
//!  ------------                                   ------
//!  child.wait()
//!    try_wait()  (waitpid WNOHANG): still running
//!    pidfd_open(pid) ---------------------------> pidfd
//!    trampoline(pidfd, Read): park; the hub
//!    runs other green threads, sleeps in epoll
//!                                                 the child exits:
//!    <------------------------------------------- pidfd readable
//!    try_wait() reaps the child; std keeps the
//!    status, so a later wait returns it again
//!    notify_close(pidfd), close(pidfd)
//! ```
//!
//! Where `pidfd_open` is missing (Linux before 5.3) or refused (a seccomp
//! filter), or the pidfd cannot be watched, `wait` falls back to a blocking
//! wait on a [`tpool`](crate::tpool) thread: still only the green thread
//! parks, but a kill or [`Timeout`](crate::Timeout) then takes effect only
//! once the child has exited.
//!
//! The pipes of a child ([`ChildStdin`], [`ChildStdout`], [`ChildStderr`])
//! are non-blocking underneath and go through the hub's one I/O path, as
//! [`green::net`](crate::net) sockets do. [`Child::wait_with_output`] and
//! [`Command::output`] read stdout and stderr at the same time (the second
//! on a helper green thread), so a child that fills both pipes never
//! deadlocks.
//!
//! # Cancellation
//!
//! A green thread killed, or whose [`Timeout`](crate::Timeout) expires,
//! while it waits for a child unwinds from its park point; the pidfd is
//! closed on the way out.
//!
//! - [`Child::wait`] and [`Child::try_wait`] borrow the child: after the
//!   unwind, the caller still owns it and may wait again, or kill it.
//!   Dropping a [`Child`] never waits and never kills, as with std: a child
//!   dropped unwaited stays a zombie after it exits, until this process
//!   exits.
//! - [`Command::output`], [`Command::status`] and
//!   [`Child::wait_with_output`] hold the only handle to their child. When
//!   one of them unwinds, the child is killed (`SIGKILL`) and reaped on a
//!   background thread, as Python's `subprocess.run` does on a timeout: no
//!   process is left running or as a zombie that nobody can wait for.
//!
//! # Examples
//! ```
//! use std::time::{Duration, Instant};
//! use green::process::Command;
//!
//! let start = Instant::now();
//! // Ten children run at once, each waited for by its own green thread.
//! let waiters: Vec<_> = (0..10)
//!     .map(|i| green::spawn(move || {
//!         Command::new("sh").arg("-c").arg(format!("sleep 0.1; echo {i}")).output()
//!     }))
//!     .collect();
//! for (i, w) in waiters.into_iter().enumerate() {
//!     let out = w.wait()?;
//!     assert!(out.status.success());
//!     assert_eq!(out.stdout, format!("{i}\n").as_bytes());
//! }
//! // The sleeps overlapped: far less than the 1 s they take back to back.
//! assert!(start.elapsed() < Duration::from_secs(10));
//! # Ok::<(), std::io::Error>(())
//! ```

mod child;
mod command;
pub(crate) mod ext;
mod pipes;

pub use crate::process::ext::CommandExt;
pub use child::Child;
pub use command::Command;
pub use pipes::{ChildStderr, ChildStdin, ChildStdout};
pub use std::process::{
    abort, exit, id, CommandArgs, CommandEnvs, ExitCode, ExitStatus, Output, Stdio, Termination,
};

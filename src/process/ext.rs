//! Unix extensions to the green [`Command`]: std's
//! [`std::os::unix::process::CommandExt`], implemented for it.

use std::ffi::OsStr;
use std::io;
use std::os::unix::process::CommandExt as StdCommandExt;

use crate::process::Command;

mod sealed {
    /// Only `green`'s `Command` implements [`CommandExt`](super::CommandExt).
    pub trait Sealed {}
}

impl sealed::Sealed for Command {}

/// Unix-specific extensions to the [`Command`] builder.
///
/// This is std's [`std::os::unix::process::CommandExt`] for the green
/// [`Command`], with its stable methods (`groups`, `chroot` and `setsid`
/// are unstable in std; the deprecated `before_exec` is left out). Each
/// method sets the same option on the std command underneath.
///
/// This trait is sealed: it cannot be implemented outside `green`, so that
/// methods can be added to it.
///
/// # Examples
/// ```
/// use green::process::{Command, CommandExt};
///
/// let out = Command::new("sh").arg0("greeter").arg("-c").arg("echo $0").output()?;
/// assert_eq!(out.stdout, b"greeter\n");
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait CommandExt: sealed::Sealed {
    /// Sets the child process's user ID. This translates to a `setuid` call
    /// in the child process. Failure in the `setuid` call will cause the
    /// spawn to fail.
    ///
    /// # Notes
    /// As with std, when the parent runs as root and no supplementary groups
    /// are set, the child drops the parent's supplementary groups.
    fn uid(&mut self, id: u32) -> &mut Command;

    /// Similar to `uid`, but sets the group ID of the child process. This
    /// has the same semantics as the `uid` field.
    fn gid(&mut self, id: u32) -> &mut Command;

    /// Schedules a closure to be run just before the `exec` function is
    /// invoked.
    ///
    /// The closure is allowed to return an I/O error whose OS error code
    /// will be communicated back to the parent and returned as an error
    /// from when the spawn was requested.
    ///
    /// Multiple closures can be registered and they will be called in order
    /// of their registration. If a closure returns `Err` then no further
    /// closures will be called and the spawn operation will immediately
    /// return with a failure.
    ///
    /// # Safety
    /// As for std's [`pre_exec`](std::os::unix::process::CommandExt::pre_exec):
    /// the closure runs in the child after `fork`, where only
    /// async-signal-safe work is sound: no allocation, no locks (green or
    /// std), no green operations. The closure must not duplicate resources
    /// whose uniqueness the program relies on.
    ///
    /// # Examples
    /// ```
    /// use green::process::{Command, CommandExt};
    ///
    /// let mut cmd = Command::new("true");
    /// // SAFETY: the closure only builds an error value, which allocates
    /// // nothing for an OS error code.
    /// unsafe { cmd.pre_exec(|| Err(std::io::Error::from_raw_os_error(libc::EPERM))) };
    /// let err = cmd.spawn().unwrap_err();
    /// assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    /// ```
    unsafe fn pre_exec<F>(&mut self, f: F) -> &mut Command
    where
        F: FnMut() -> io::Result<()> + Send + Sync + 'static;

    /// Performs all the required setup by this `Command`, followed by
    /// calling the `execvp` syscall.
    ///
    /// On success this function will not return, and otherwise it will
    /// return an error indicating why the exec (or another part of the setup
    /// of the `Command`) failed. Streams not configured are inherited.
    ///
    /// # Examples
    /// ```
    /// use green::process::{Command, CommandExt};
    /// let err = Command::new("/nonexistent/program").exec();
    /// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    /// ```
    fn exec(&mut self) -> io::Error;

    /// Set executable argument
    ///
    /// Set the first process argument, `argv[0]`, to something other than
    /// the default executable path.
    fn arg0<S>(&mut self, arg: S) -> &mut Command
    where
        S: AsRef<OsStr>;

    /// Sets the process group ID (PGID) of the child process. Equivalent to
    /// a `setpgid` call in the child process, but may be more efficient.
    ///
    /// Process groups determine which processes receive signals. A
    /// `pgroup` of 0 puts the child in a new group whose ID is its own PID.
    fn process_group(&mut self, pgroup: i32) -> &mut Command;
}

impl CommandExt for Command {
    fn uid(&mut self, id: u32) -> &mut Command {
        StdCommandExt::uid(self.as_std_mut(), id);
        self
    }

    fn gid(&mut self, id: u32) -> &mut Command {
        StdCommandExt::gid(self.as_std_mut(), id);
        self
    }

    unsafe fn pre_exec<F>(&mut self, f: F) -> &mut Command
    where
        F: FnMut() -> io::Result<()> + Send + Sync + 'static,
    {
        // SAFETY: the caller upholds std's `pre_exec` contract, which this
        // method's contract repeats.
        unsafe { StdCommandExt::pre_exec(self.as_std_mut(), f) };
        self
    }

    fn exec(&mut self) -> io::Error {
        StdCommandExt::exec(self.as_std_mut())
    }

    fn arg0<S>(&mut self, arg: S) -> &mut Command
    where
        S: AsRef<OsStr>,
    {
        StdCommandExt::arg0(self.as_std_mut(), arg);
        self
    }

    fn process_group(&mut self, pgroup: i32) -> &mut Command {
        StdCommandExt::process_group(self.as_std_mut(), pgroup);
        self
    }
}

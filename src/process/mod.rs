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

pub(crate) mod ext;

use std::ffi::OsStr;
use std::fmt;
use std::io::{self, IoSliceMut, PipeReader, PipeWriter, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, OnceLock};
use std::thread;

use crate::hub::{self, Interest};
use crate::io::fdio::{set_nonblocking_fd, GreenFd};
use crate::GreenThread;

pub use crate::process::ext::CommandExt;
pub use std::process::{
    abort, exit, id, CommandArgs, CommandEnvs, ExitCode, ExitStatus, Output, Stdio, Termination,
};

/// Which standard streams were configured through a [`Command`].
#[derive(Clone, Copy, Debug, Default)]
struct Configured {
    stdin: bool,
    stdout: bool,
    stderr: bool,
}

/// A process builder, providing fine-grained control over how a new process
/// should be spawned.
///
/// This is std's [`std::process::Command`] with the same methods; the ones
/// that wait for the child ([`output`](Command::output),
/// [`status`](Command::status)) park only the calling green thread, and
/// [`spawn`](Command::spawn) returns a green [`Child`]. Unix-only methods
/// (`uid`, `gid`, `pre_exec`, `exec`, `arg0`, `process_group`) come with
/// [`CommandExt`].
///
/// # Notes
/// - Starting the child (`fork`/`exec`, or `posix_spawn`) runs on the
///   calling OS thread, as in eventlet: it takes a fraction of a
///   millisecond, during which the hub runs nothing else.
/// - [`output`](Command::output) and [`status`](Command::status) kill and
///   reap their child if the calling green thread is killed or times out
///   (see the [module docs](self#cancellation)).
///
/// # Examples
/// ```
/// use green::process::Command;
///
/// let output = Command::new("echo").arg("Hello world").output()?;
/// assert_eq!(b"Hello world\n", output.stdout.as_slice());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Command {
    inner: std::process::Command,
    /// The streams set with `stdin`/`stdout`/`stderr`: `output` gives the
    /// others its own defaults (null, piped, piped), as std's does.
    configured: Configured,
}

impl Command {
    /// Constructs a new `Command` for launching the program at path
    /// `program`, with the following default configuration:
    ///
    /// - no arguments to the program;
    /// - inherit the current process's environment;
    /// - inherit the current process's working directory;
    /// - inherit stdin/stdout/stderr for [`spawn`](Command::spawn) or
    ///   [`status`](Command::status), but create pipes for
    ///   [`output`](Command::output).
    ///
    /// A `program` without a `/` is looked up in the `PATH`.
    ///
    /// # Examples
    /// ```
    /// let status = green::process::Command::new("true").status()?;
    /// assert!(status.success());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new<S: AsRef<OsStr>>(program: S) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// Adds an argument to pass to the program.
    ///
    /// Only one argument can be passed per use; see [`args`](Command::args)
    /// for several.
    ///
    /// # Examples
    /// ```
    /// let out = green::process::Command::new("echo").arg("-n").arg("hi").output()?;
    /// assert_eq!(out.stdout, b"hi");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn arg<S: AsRef<OsStr>>(&mut self, arg: S) -> &mut Command {
        self.inner.arg(arg);
        self
    }

    /// Adds multiple arguments to pass to the program.
    ///
    /// # Examples
    /// ```
    /// let out = green::process::Command::new("echo").args(["a", "b"]).output()?;
    /// assert_eq!(out.stdout, b"a b\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    /// Inserts or updates an explicit environment variable mapping.
    ///
    /// # Examples
    /// ```
    /// use green::process::Command;
    /// let out = Command::new("sh").arg("-c").arg("echo $GREETING").env("GREETING", "hi").output()?;
    /// assert_eq!(out.stdout, b"hi\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn env<K, V>(&mut self, key: K, val: V) -> &mut Command
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.inner.env(key, val);
        self
    }

    /// Inserts or updates multiple explicit environment variable mappings.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.inner.envs(vars);
        self
    }

    /// Removes an explicitly set environment variable and prevents
    /// inheriting it from a parent process.
    pub fn env_remove<K: AsRef<OsStr>>(&mut self, key: K) -> &mut Command {
        self.inner.env_remove(key);
        self
    }

    /// Clears all explicitly set environment variables and prevents
    /// inheriting any parent process environment variables.
    pub fn env_clear(&mut self) -> &mut Command {
        self.inner.env_clear();
        self
    }

    /// Sets the working directory for the child process.
    ///
    /// # Examples
    /// ```
    /// let out = green::process::Command::new("pwd").current_dir("/").output()?;
    /// assert_eq!(out.stdout, b"/\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn current_dir<P: AsRef<Path>>(&mut self, dir: P) -> &mut Command {
        self.inner.current_dir(dir);
        self
    }

    /// Configuration for the child process's standard input (stdin) handle.
    ///
    /// Defaults to [`inherit`](Stdio::inherit) for
    /// [`spawn`](Command::spawn) and [`status`](Command::status), and to
    /// [`null`](Stdio::null) for [`output`](Command::output). A green
    /// [`ChildStdout`] or [`ChildStderr`] of another child can be given
    /// here to connect the two.
    pub fn stdin<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stdin(cfg);
        self.configured.stdin = true;
        self
    }

    /// Configuration for the child process's standard output (stdout) handle.
    ///
    /// Defaults to [`inherit`](Stdio::inherit) for
    /// [`spawn`](Command::spawn) and [`status`](Command::status), and to
    /// [`piped`](Stdio::piped) for [`output`](Command::output).
    pub fn stdout<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stdout(cfg);
        self.configured.stdout = true;
        self
    }

    /// Configuration for the child process's standard error (stderr) handle.
    ///
    /// Defaults to [`inherit`](Stdio::inherit) for
    /// [`spawn`](Command::spawn) and [`status`](Command::status), and to
    /// [`piped`](Stdio::piped) for [`output`](Command::output).
    pub fn stderr<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stderr(cfg);
        self.configured.stderr = true;
        self
    }

    /// Executes the command as a child process, returning a handle to it.
    ///
    /// By default, stdin, stdout and stderr are inherited from the parent.
    /// The pipes of the returned [`Child`] are green.
    ///
    /// # Errors
    /// As std's: `NotFound` for a missing program, `PermissionDenied` for
    /// one that is not executable, the error a
    /// [`pre_exec`](CommandExt::pre_exec) closure returned, ...
    ///
    /// # Examples
    /// ```
    /// let mut child = green::process::Command::new("true").spawn()?;
    /// assert!(child.wait()?.success());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn(&mut self) -> io::Result<Child> {
        Child::from_std(self.inner.spawn()?)
    }

    /// Executes the command as a child process, waiting for it to finish
    /// and collecting all of its output.
    ///
    /// By default, stdout and stderr are captured (and used to provide the
    /// resulting output), and stdin is [`null`](Stdio::null). Only the
    /// calling green thread waits; stdout and stderr are read at the same
    /// time.
    ///
    /// # Errors
    /// The errors of [`spawn`](Command::spawn); a read error on a pipe; the
    /// wait's error.
    ///
    /// # Panics
    /// Panics when called from the hub itself (a timer callback).
    ///
    /// # Examples
    /// ```
    /// use green::process::Command;
    /// let output = Command::new("sh").arg("-c").arg("echo out; echo err >&2; exit 3").output()?;
    /// assert_eq!(output.status.code(), Some(3));
    /// assert_eq!(output.stdout, b"out\n");
    /// assert_eq!(output.stderr, b"err\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn output(&mut self) -> io::Result<Output> {
        let c = self.configured;
        if !c.stdin {
            self.inner.stdin(Stdio::null());
        }
        if !c.stdout {
            self.inner.stdout(Stdio::piped());
        }
        if !c.stderr {
            self.inner.stderr(Stdio::piped());
        }
        let spawned = self.inner.spawn();
        // Back to the defaults of `spawn` and `status`.
        if !c.stdin {
            self.inner.stdin(Stdio::inherit());
        }
        if !c.stdout {
            self.inner.stdout(Stdio::inherit());
        }
        if !c.stderr {
            self.inner.stderr(Stdio::inherit());
        }
        Child::from_std(spawned?)?.wait_with_output()
    }

    /// Executes a command as a child process, waiting for it to finish and
    /// collecting its status.
    ///
    /// By default, stdin, stdout and stderr are inherited from the parent.
    /// Only the calling green thread waits.
    ///
    /// # Errors
    /// The errors of [`spawn`](Command::spawn) and of [`Child::wait`].
    ///
    /// # Panics
    /// Panics when called from the hub itself (a timer callback).
    ///
    /// # Examples
    /// ```
    /// let status = green::process::Command::new("false").status()?;
    /// assert_eq!(status.code(), Some(1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn status(&mut self) -> io::Result<ExitStatus> {
        let mut only = OnlyHandle(Some(self.spawn()?));
        only.child().wait()
    }

    /// Returns the path to the program that was given to [`Command::new`].
    pub fn get_program(&self) -> &OsStr {
        self.inner.get_program()
    }

    /// Returns an iterator of the arguments that will be passed to the
    /// program.
    ///
    /// This does not include the path to the program as the first argument.
    pub fn get_args(&self) -> CommandArgs<'_> {
        self.inner.get_args()
    }

    /// Returns an iterator of the environment variables explicitly set for
    /// the child process: `(key, Some(value))` for a set variable,
    /// `(key, None)` for one removed with [`env_remove`](Command::env_remove).
    pub fn get_envs(&self) -> CommandEnvs<'_> {
        self.inner.get_envs()
    }

    /// Returns the working directory for the child process, if one was set
    /// with [`current_dir`](Command::current_dir).
    pub fn get_current_dir(&self) -> Option<&Path> {
        self.inner.get_current_dir()
    }

    /// The std command underneath.
    pub fn as_std(&self) -> &std::process::Command {
        &self.inner
    }

    /// The std command underneath, to use a std method `green` does not
    /// mirror.
    ///
    /// # Notes
    /// std cannot tell whether a stream was configured: a stdin, stdout or
    /// stderr set through this reference is replaced by
    /// [`output`](Command::output)'s default (null or piped) and then by
    /// `inherit`. Set them through this `Command` instead.
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.inner
    }

    /// Unwraps the std command.
    pub fn into_std(self) -> std::process::Command {
        self.inner
    }
}

impl From<std::process::Command> for Command {
    /// Wraps a std command.
    ///
    /// std cannot tell whether the command's stdin, stdout or stderr were
    /// configured, so [`Command::output`] treats them as not configured
    /// (as [`Command::as_std_mut`] explains); [`Command::spawn`] and
    /// [`Command::status`] keep them.
    fn from(inner: std::process::Command) -> Command {
        Command {
            inner,
            configured: Configured::default(),
        }
    }
}

impl fmt::Debug for Command {
    /// Formats the program and arguments as std's does; `{:#?}` shows every
    /// setting.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

/// Representation of a running or exited child process.
///
/// This is std's [`std::process::Child`]: created by [`Command::spawn`],
/// with green pipes in its public fields; [`wait`](Child::wait) and
/// [`wait_with_output`](Child::wait_with_output) park only the calling
/// green thread.
///
/// There is no implementation of [`Drop`] for child processes, so if you do
/// not ensure the `Child` has exited then it will continue to run, even
/// after the `Child` handle to the child process has gone out of scope; one
/// that exits unwaited stays a zombie until this process exits.
///
/// # Notes
/// - A `Child` may move to another OS thread and be waited for there, by a
///   green thread of that thread's hub or by a plain thread.
/// - See the [module docs](self#cancellation) for what a kill or
///   [`Timeout`](crate::Timeout) during a wait does.
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use green::process::{Command, Stdio};
///
/// let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
/// let mut stdin = child.stdin.take().unwrap();
/// let writer = green::spawn(move || stdin.write_all(b"green"));
/// let mut echoed = String::new();
/// child.stdout.take().unwrap().read_to_string(&mut echoed)?;
/// writer.wait()?;
/// assert_eq!(echoed, "green");
/// assert!(child.wait()?.success());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Child {
    handle: std::process::Child,
    /// The handle for writing to the child's standard input (stdin), if it
    /// has been captured. Take it (`child.stdin.take()`) to write from
    /// another green thread while this one reads or waits.
    pub stdin: Option<ChildStdin>,
    /// The handle for reading from the child's standard output (stdout), if
    /// it has been captured.
    pub stdout: Option<ChildStdout>,
    /// The handle for reading from the child's standard error (stderr), if
    /// it has been captured.
    pub stderr: Option<ChildStderr>,
}

/// Whether `pidfd_open` is known to be missing (`ENOSYS`).
static NO_PIDFD: AtomicBool = AtomicBool::new(false);

impl Child {
    /// Forces the child process to exit. If the child has already exited,
    /// `Ok(())` is returned.
    ///
    /// This is `SIGKILL` on Unix. It does not wait: call
    /// [`wait`](Child::wait) to reap the child.
    ///
    /// # Errors
    /// The OS error from `kill(2)`.
    ///
    /// # Examples
    /// ```
    /// use std::os::unix::process::ExitStatusExt;
    /// let mut child = green::process::Command::new("sleep").arg("10").spawn()?;
    /// child.kill()?;
    /// assert_eq!(child.wait()?.signal(), Some(libc::SIGKILL));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn kill(&mut self) -> io::Result<()> {
        self.handle.kill()
    }

    /// Returns the OS-assigned process identifier associated with this
    /// child.
    pub fn id(&self) -> u32 {
        self.handle.id()
    }

    /// Waits for the child to exit completely, returning the status that it
    /// exited with. This function will continue to have the same return
    /// value after it has been called at least once.
    ///
    /// The stdin handle to the child process, if any, will be closed before
    /// waiting, so that a child reading its input sees end of file.
    ///
    /// Only the calling green thread parks, on a pidfd of the child (see
    /// the [module docs](self)); the hub runs other green threads
    /// meanwhile.
    ///
    /// # Errors
    /// The OS error from `waitpid` (`ECHILD` if the child was reaped
    /// elsewhere, by a `SIGCHLD` set to `SIG_IGN` say).
    ///
    /// # Panics
    /// Panics when called from the hub itself (a timer callback).
    ///
    /// # Examples
    /// ```
    /// let mut child = green::process::Command::new("sh").arg("-c").arg("exit 7").spawn()?;
    /// assert_eq!(child.wait()?.code(), Some(7));
    /// assert_eq!(child.wait()?.code(), Some(7)); // the same status again
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        if let Some(status) = self.handle.try_wait()? {
            return Ok(status);
        }
        if let Some(pidfd) = PidFd::open(self.handle.id()) {
            let exited = hub::trampoline(pidfd.raw(), Interest::Read, None).is_ok();
            drop(pidfd);
            if exited {
                if let Some(status) = self.handle.try_wait()? {
                    return Ok(status);
                }
            }
        }
        self.wait_on_pool()
    }

    /// Waits with a blocking `waitpid` on a [`tpool`](crate::tpool) thread:
    /// the fallback when the child cannot be watched through a pidfd.
    fn wait_on_pool(&mut self) -> io::Result<ExitStatus> {
        let handle = &mut self.handle;
        crate::tpool::execute(move || handle.wait())
    }

    /// Attempts to collect the exit status of the child if it has already
    /// exited.
    ///
    /// This function never blocks: `Ok(None)` means the child is still
    /// running. Once it returned a status, [`wait`](Child::wait) and
    /// `try_wait` return that status again.
    ///
    /// # Errors
    /// The OS error from `waitpid`.
    ///
    /// # Examples
    /// ```
    /// use green::process::{Command, Stdio};
    /// let mut child = Command::new("cat").stdin(Stdio::piped()).spawn()?;
    /// assert_eq!(child.try_wait()?, None); // cat waits for its input
    /// drop(child.stdin.take());
    /// let status = child.wait()?;
    /// assert_eq!(child.try_wait()?, Some(status));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.handle.try_wait()
    }

    /// Simultaneously waits for the child to exit and collect all remaining
    /// output on the stdout/stderr handles, returning an `Output` instance.
    ///
    /// The stdin handle to the child process, if any, will be closed before
    /// waiting. stdout and stderr are read at the same time, stderr on a
    /// helper green thread, so a child that fills both pipes does not
    /// deadlock. Only the calling green thread parks.
    ///
    /// If the caller unwinds (killed, timed out), the child is killed and
    /// reaped in the background, since no handle to it is left.
    ///
    /// # Errors
    /// A read error on a pipe; the wait's error.
    ///
    /// # Panics
    /// Panics when called from the hub itself (a timer callback).
    ///
    /// # Examples
    /// ```
    /// use green::process::{Command, Stdio};
    /// let child = Command::new("echo").arg("hi").stdout(Stdio::piped()).spawn()?;
    /// let output = child.wait_with_output()?;
    /// assert_eq!(output.stdout, b"hi\n");
    /// assert!(output.status.success());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wait_with_output(self) -> io::Result<Output> {
        let mut only = OnlyHandle(Some(self));
        let child = only.child();
        drop(child.stdin.take());
        let (stdout, stderr) = read2(child.stdout.take(), child.stderr.take())?;
        let status = child.wait()?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Wraps a std child; its pipes are switched to non-blocking mode.
    ///
    /// # Errors
    /// The OS error from switching a pipe's mode; the child is then dropped
    /// (neither killed nor waited for).
    pub fn from_std(mut child: std::process::Child) -> io::Result<Child> {
        let stdin = child.stdin.take().map(ChildStdin::from_std).transpose()?;
        let stdout = child.stdout.take().map(ChildStdout::from_std).transpose()?;
        let stderr = child.stderr.take().map(ChildStderr::from_std).transpose()?;
        Ok(Child {
            handle: child,
            stdin,
            stdout,
            stderr,
        })
    }

    /// Unwraps the std child, its pipes back in blocking mode. A status
    /// already collected stays with it.
    ///
    /// # Errors
    /// The OS error from switching a pipe's mode.
    pub fn into_std(self) -> io::Result<std::process::Child> {
        let mut child = self.handle;
        child.stdin = self.stdin.map(ChildStdin::into_std).transpose()?;
        child.stdout = self.stdout.map(ChildStdout::into_std).transpose()?;
        child.stderr = self.stderr.map(ChildStderr::into_std).transpose()?;
        Ok(child)
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish_non_exhaustive()
    }
}

/// A child whose only handle is in this frame (`output`, `status`,
/// `wait_with_output`): if the frame unwinds, nobody could ever wait for
/// the child, so it is killed and reaped in the background.
struct OnlyHandle(Option<Child>);

impl OnlyHandle {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("the child is taken only on drop")
    }
}

impl Drop for OnlyHandle {
    fn drop(&mut self) {
        if thread::panicking() {
            if let Some(child) = self.0.take() {
                kill_and_reap(child.handle);
            }
        }
    }
}

/// Kills `child` and makes sure it is reaped: at once if it is already
/// gone, else on the `green-reaper` thread, which waits for such children
/// one after another (a killed child exits promptly).
fn kill_and_reap(mut child: std::process::Child) {
    let _ = child.kill();
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    static REAPER: OnceLock<Option<mpsc::Sender<std::process::Child>>> = OnceLock::new();
    let reaper = REAPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<std::process::Child>();
        thread::Builder::new()
            .name("green-reaper".into())
            .spawn(move || {
                for mut child in rx {
                    let _ = child.wait();
                }
            })
            .ok()
            .map(|_| tx)
    });
    // Without a reaper thread (none could be started), the child stays a
    // zombie, as a dropped std child does.
    if let Some(tx) = reaper {
        let _ = tx.send(child);
    }
}

/// Reads `out` and `err` to their ends at the same time: `err` on a helper
/// green thread, `out` here.
fn read2(out: Option<ChildStdout>, err: Option<ChildStderr>) -> io::Result<(Vec<u8>, Vec<u8>)> {
    fn read_all(mut r: impl Read) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        Ok(v)
    }
    match (out, err) {
        (None, None) => Ok((Vec::new(), Vec::new())),
        (Some(out), None) => Ok((read_all(out)?, Vec::new())),
        (None, Some(err)) => Ok((Vec::new(), read_all(err)?)),
        (Some(out), Some(err)) => {
            let helper = Helper(Some(crate::spawn(move || read_all(err))));
            let out = read_all(out)?;
            let err = helper.wait()?;
            Ok((out, err))
        }
    }
}

/// A helper green thread that is killed if its caller leaves early (an
/// error or an unwind); its pipe closes as it unwinds.
struct Helper<T>(Option<GreenThread<T>>);

impl<T> Helper<T> {
    fn wait(mut self) -> T {
        self.0.take().expect("waited for once").wait()
    }
}

impl<T> Drop for Helper<T> {
    fn drop(&mut self) {
        if let Some(gt) = self.0.take() {
            gt.kill();
        }
    }
}

/// A pidfd: readable once its process has exited.
struct PidFd(OwnedFd);

impl PidFd {
    /// Opens a pidfd for `pid`; `None` where the kernel has no
    /// `pidfd_open` (Linux before 5.3), refuses it (`EPERM` from a seccomp
    /// filter) or is out of fds.
    fn open(pid: u32) -> Option<PidFd> {
        if NO_PIDFD.load(Ordering::Relaxed) {
            return None;
        }
        let pid = libc::pid_t::try_from(pid).ok()?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1;
        // it touches no memory of ours.
        let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if r < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                NO_PIDFD.store(true, Ordering::Relaxed);
            }
            return None;
        }
        let fd = RawFd::try_from(r).ok()?;
        // SAFETY: `fd` is a new fd (close-on-exec) that nothing else owns.
        Some(PidFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Drop for PidFd {
    fn drop(&mut self) {
        // Before the fd closes: the hub forgets it.
        hub::notify_close(self.raw());
    }
}

/// Gives back the pipe underneath, in blocking mode: the open file
/// description is shared with whoever gets the fd next (another child, as
/// its stdin or stdout), which expects blocking I/O.
fn into_blocking<S: AsFd>(fd: GreenFd<S>) -> S {
    let pipe = fd.into_inner_raw();
    // Cannot fail on an open fd; if it did, the fd would stay non-blocking.
    let _ = set_nonblocking_fd(pipe.as_fd().as_raw_fd(), false);
    pipe
}

/// A handle to a child process's standard input (stdin).
///
/// This is std's [`std::process::ChildStdin`], found in the
/// [`stdin`](Child::stdin) field of a [`Child`]; a write that would block
/// parks only the calling green thread.
///
/// When an instance of `ChildStdin` is dropped, the `ChildStdin`'s
/// underlying file handle will be closed. If the child process was blocked
/// on input prior to being dropped, it will become unblocked after
/// dropping.
///
/// # Notes
/// The pipe is non-blocking underneath. Every way of giving it up —
/// [`into_std`](ChildStdin::into_std), `Into<Stdio>`, `Into<OwnedFd>`,
/// [`into_raw_fd`](IntoRawFd::into_raw_fd) — puts it back in blocking mode,
/// since a process it is handed to expects that.
///
/// # Examples
/// ```
/// use std::io::Write;
/// use green::process::{Command, Stdio};
///
/// let mut child = Command::new("wc").arg("-c").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
/// child.stdin.take().unwrap().write_all(b"four")?;
/// let output = child.wait_with_output()?;
/// assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "4");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ChildStdin {
    fd: GreenFd<PipeWriter>,
}

impl ChildStdin {
    /// Wraps a std handle; its pipe is switched to non-blocking mode.
    ///
    /// # Errors
    /// The OS error from switching the mode.
    pub fn from_std(stdin: std::process::ChildStdin) -> io::Result<ChildStdin> {
        Ok(ChildStdin {
            fd: GreenFd::new(PipeWriter::from(OwnedFd::from(stdin)))?,
        })
    }

    /// Unwraps the std handle, its pipe back in blocking mode.
    ///
    /// # Errors
    /// The OS error from switching the mode.
    pub fn into_std(self) -> io::Result<std::process::ChildStdin> {
        let pipe = self.fd.into_inner()?;
        Ok(std::process::ChildStdin::from(OwnedFd::from(pipe)))
    }
}

crate::io::fdio::green_write!(ChildStdin);

impl fmt::Debug for ChildStdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildStdin").finish_non_exhaustive()
    }
}

/// Reads through a green pipe reader. No short-read hint: a pipe made from
/// a foreign fd (`From<OwnedFd>`) may be in packet mode, where a short read
/// leaves more to read.
fn read_pipe(fd: &GreenFd<PipeReader>, buf: &mut [u8]) -> io::Result<usize> {
    fd.read_with(|mut r| r.read(buf), |_| false)
}

fn read_pipe_vectored(fd: &GreenFd<PipeReader>, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
    fd.read_with(|mut r| r.read_vectored(bufs), |_| false)
}

/// A handle to a child process's standard output (stdout).
///
/// This is std's [`std::process::ChildStdout`], found in the
/// [`stdout`](Child::stdout) field of a [`Child`]; a read that would block
/// parks only the calling green thread.
///
/// When an instance of `ChildStdout` is dropped, the `ChildStdout`'s
/// underlying file handle will be closed.
///
/// # Notes
/// The pipe is non-blocking underneath; giving it up puts it back in
/// blocking mode, as for [`ChildStdin`]. So the stdout of one child can be
/// the stdin of the next:
///
/// ```
/// use green::process::{Command, Stdio};
///
/// let mut echo = Command::new("echo").arg("shout").stdout(Stdio::piped()).spawn()?;
/// let upper = Command::new("tr").arg("a-z").arg("A-Z")
///     .stdin(echo.stdout.take().unwrap())
///     .output()?;
/// assert_eq!(upper.stdout, b"SHOUT\n");
/// echo.wait()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ChildStdout {
    fd: GreenFd<PipeReader>,
}

/// A handle to a child process's stderr.
///
/// This is std's [`std::process::ChildStderr`], found in the
/// [`stderr`](Child::stderr) field of a [`Child`]; a read that would block
/// parks only the calling green thread.
///
/// When an instance of `ChildStderr` is dropped, the `ChildStderr`'s
/// underlying file handle will be closed.
///
/// # Notes
/// The pipe is non-blocking underneath; giving it up puts it back in
/// blocking mode, as for [`ChildStdin`].
///
/// # Examples
/// ```
/// use std::io::Read;
/// use green::process::{Command, Stdio};
///
/// let mut child = Command::new("sh").arg("-c").arg("echo oops >&2").stderr(Stdio::piped()).spawn()?;
/// let mut err = String::new();
/// child.stderr.take().unwrap().read_to_string(&mut err)?;
/// assert_eq!(err, "oops\n");
/// child.wait()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ChildStderr {
    fd: GreenFd<PipeReader>,
}

macro_rules! reader {
    ($t:ident, $std:ty) => {
        impl $t {
            /// Wraps a std handle; its pipe is switched to non-blocking mode.
            ///
            /// # Errors
            /// The OS error from switching the mode.
            pub fn from_std(pipe: $std) -> io::Result<$t> {
                Ok($t {
                    fd: GreenFd::new(PipeReader::from(OwnedFd::from(pipe)))?,
                })
            }

            /// Unwraps the std handle, its pipe back in blocking mode.
            ///
            /// # Errors
            /// The OS error from switching the mode.
            pub fn into_std(self) -> io::Result<$std> {
                let pipe = self.fd.into_inner()?;
                Ok(<$std>::from(OwnedFd::from(pipe)))
            }
        }

        impl Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                read_pipe(&self.fd, buf)
            }

            fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
                read_pipe_vectored(&self.fd, bufs)
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t)).finish_non_exhaustive()
            }
        }
    };
}

reader!(ChildStdout, std::process::ChildStdout);
reader!(ChildStderr, std::process::ChildStderr);

/// The fd traits std implements for its pipe handles (no `FromRawFd`, as
/// std), and `Into<Stdio>`.
macro_rules! pipe_fd_traits {
    ($t:ident, $pipe:ty) => {
        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.fd.get_ref().as_fd()
            }
        }

        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.fd.fd()
            }
        }

        impl IntoRawFd for $t {
            /// Gives up the fd, back in blocking mode.
            fn into_raw_fd(self) -> RawFd {
                OwnedFd::from(self).into_raw_fd()
            }
        }

        impl From<OwnedFd> for $t {
            /// Takes ownership of a pipe fd and switches it to non-blocking
            /// mode.
            fn from(fd: OwnedFd) -> $t {
                $t {
                    fd: GreenFd::new_infallible(<$pipe>::from(fd)),
                }
            }
        }

        impl From<$t> for OwnedFd {
            /// Gives up the fd, back in blocking mode.
            fn from(pipe: $t) -> OwnedFd {
                into_blocking(pipe.fd).into()
            }
        }

        impl From<$t> for Stdio {
            /// Hands the pipe to a child process, back in blocking mode.
            fn from(pipe: $t) -> Stdio {
                Stdio::from(OwnedFd::from(pipe))
            }
        }
    };
}

pipe_fd_traits!(ChildStdin, PipeWriter);
pipe_fd_traits!(ChildStdout, PipeReader);
pipe_fd_traits!(ChildStderr, PipeReader);

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn wait_on_pool_parks_only_the_green_thread() {
        let mut child = Command::new("cat").stdin(Stdio::piped()).spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        // cat exits only once this green thread has run and closed its input.
        crate::spawn_n(move || {
            crate::yield_now();
            r.set(true);
            drop(stdin);
        });
        let status = child.wait_on_pool().unwrap();
        assert!(ran.get());
        assert!(status.success());
        assert_eq!(child.try_wait().unwrap(), Some(status));
    }
}

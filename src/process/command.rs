//! [`Command`]: std's process builder, whose waits park only the calling
//! green thread and whose [`spawn`](Command::spawn) returns a green
//! [`Child`].

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::Path;

use super::child::OnlyHandle;
use super::{Child, CommandArgs, CommandEnvs, ExitStatus, Output, Stdio};
#[cfg(doc)]
use super::{ChildStderr, ChildStdout};

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
/// [`CommandExt`](super::CommandExt).
///
/// # Notes
/// - Starting the child (`fork`/`exec`, or `posix_spawn`) runs on the
///   calling OS thread, as in eventlet: it takes a fraction of a
///   millisecond, during which the hub runs nothing else.
/// - [`output`](Command::output) and [`status`](Command::status) kill and
///   reap their child if the calling green thread is killed or times out
///   (see the [module docs](crate::process#cancellation)).
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
    /// [`pre_exec`](super::CommandExt::pre_exec) closure returned, ...
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

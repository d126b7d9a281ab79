//! [`Child`], a running or exited child process, and how it is waited
//! for: on a pidfd through the hub, or on a [`tpool`](crate::tpool)
//! thread where no pidfd can be had (see the [module docs](super)).

use std::fmt;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, OnceLock};
use std::thread;

use super::{ChildStderr, ChildStdin, ChildStdout, ExitStatus, Output};
use crate::hub::{self, Interest};
use crate::sys;
use crate::GreenThread;

#[cfg(doc)]
use super::Command;

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
/// - See the [module docs](crate::process#cancellation) for what a kill or
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
    /// the [module docs](crate::process)); the hub runs other green threads
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
            let on = hub::Blocker::arg(hub::Kind::Child, u64::from(self.handle.id()));
            let exited = hub::trampoline_as(pidfd.raw(), Interest::Read, None, Some(on)).is_ok();
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
pub(super) struct OnlyHandle(pub(super) Option<Child>);

impl OnlyHandle {
    pub(super) fn child(&mut self) -> &mut Child {
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
        /// Set by the reaper's thread once it runs (it never ends).
        static RUNNING: AtomicBool = AtomicBool::new(false);
        // It only reaps: it wakes no hub.
        crate::hub::register_helpers(|| Some(usize::from(RUNNING.load(Ordering::SeqCst))));
        let (tx, rx) = mpsc::channel::<std::process::Child>();
        thread::Builder::new()
            .name("green-reaper".into())
            .spawn(move || {
                RUNNING.store(true, Ordering::SeqCst);
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
        // Pid 0 has no process: the kernel would refuse it (EINVAL) too.
        let pid = sys::process::Pid::from_raw(pid)?;
        match sys::process::pidfd_open(pid, sys::process::PidfdFlags::empty()) {
            // The kernel makes every pidfd close-on-exec.
            Ok(fd) => Some(PidFd(fd)),
            Err(e) => {
                if e == sys::io::Errno::NOSYS {
                    NO_PIDFD.store(true, Ordering::Relaxed);
                }
                None
            }
        }
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
#[cfg(test)]
mod tests {
    use crate::process::{Command, Stdio};
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

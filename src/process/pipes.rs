//! The pipes to a child's standard streams: [`ChildStdin`],
//! [`ChildStdout`] and [`ChildStderr`], non-blocking underneath and served
//! by the hub's one I/O path; each gives its pipe back in blocking mode.

use std::fmt;
use std::io::{self, IoSliceMut, PipeReader, PipeWriter, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};

#[cfg(doc)]
use super::Child;
use super::Stdio;
use crate::io::fdio::{set_nonblocking_fd, GreenFd};

/// Gives back the pipe underneath, in blocking mode: the open file
/// description is shared with whoever gets the fd next (another child, as
/// its stdin or stdout), which expects blocking I/O.
fn into_blocking<S: AsFd>(fd: GreenFd<S>) -> S {
    let pipe = fd.into_inner_raw();
    // Cannot fail on an open fd; if it did, the fd would stay non-blocking.
    let _ = set_nonblocking_fd(pipe.as_fd(), false);
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

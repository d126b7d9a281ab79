//! `std::os::linux::net`, with a [`TcpStreamExt`] for green's
//! [`TcpStream`].
//!
//! std's `TcpStreamExt` is sealed to std's stream; this is the same trait
//! for green's, so code written against std's compiles unchanged against
//! this module (and through the `green-std` facade).
//!
//! # Examples
//! ```
//! use green::net::{TcpListener, TcpStream};
//! use green::os::linux::net::TcpStreamExt;
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let stream = TcpStream::connect(listener.local_addr()?)?;
//! stream.set_quickack(true)?;
//! assert!(stream.quickack()?);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;

pub use std::os::linux::net::*;

use crate::net::TcpStream;
use crate::sys::net::sockopt;

mod sealed {
    /// Only `green`'s `TcpStream` implements
    /// [`TcpStreamExt`](super::TcpStreamExt).
    pub trait Sealed {}
}

impl sealed::Sealed for TcpStream {}

/// Os-specific extensions for [`TcpStream`].
///
/// The mirror of [`std::os::linux::net::TcpStreamExt`], with its stable
/// methods (std's `set_deferaccept` and `deferaccept` are unstable).
///
/// This trait is sealed: it cannot be implemented outside `green`, as std's
/// cannot outside std.
pub trait TcpStreamExt: sealed::Sealed {
    /// Enable or disable `TCP_QUICKACK`.
    ///
    /// This flag causes Linux to eagerly send ACKs rather than delaying
    /// them. Linux may reset this flag after further operations on the
    /// socket.
    ///
    /// See [`man 7 tcp`](https://man7.org/linux/man-pages/man7/tcp.7.html).
    ///
    /// # Errors
    /// The OS error from `setsockopt`.
    ///
    /// # Examples
    /// ```
    /// use green::net::{TcpListener, TcpStream};
    /// use green::os::linux::net::TcpStreamExt;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let stream = TcpStream::connect(listener.local_addr()?)?;
    /// stream.set_quickack(true)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn set_quickack(&self, quickack: bool) -> io::Result<()>;

    /// Gets the value of the `TCP_QUICKACK` option on this socket.
    ///
    /// For more information about this option, see
    /// [`TcpStreamExt::set_quickack`].
    ///
    /// # Errors
    /// The OS error from `getsockopt`.
    ///
    /// # Examples
    /// ```
    /// use green::net::{TcpListener, TcpStream};
    /// use green::os::linux::net::TcpStreamExt;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let stream = TcpStream::connect(listener.local_addr()?)?;
    /// stream.set_quickack(false)?;
    /// assert!(!stream.quickack()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn quickack(&self) -> io::Result<bool>;
}

impl TcpStreamExt for TcpStream {
    fn set_quickack(&self, quickack: bool) -> io::Result<()> {
        Ok(sockopt::set_tcp_quickack(self, quickack)?)
    }

    fn quickack(&self) -> io::Result<bool> {
        Ok(sockopt::tcp_quickack(self)?)
    }
}

//! Unix-specific networking functionality: std's [`std::os::unix::net`],
//! with every wait parking only the calling green thread.
//!
//! Change `use std::os::unix::net` to `use green::os::unix::net` and nothing
//! else: the types have std's names, methods and trait impls, and
//! [`SocketAddr`] is std's own (abstract names through
//! [`std::os::linux::net::SocketAddrExt`] included). Differences are listed
//! under `# Notes` on each type.
//!
//! Every operation goes through one path: the syscall is tried on the
//! non-blocking fd; if it would block, the green thread parks in the hub
//! until the fd is ready, then tries again. Two waits have no readiness
//! event to park on, because what they wait for is the *peer's* queue:
//! [`UnixStream::connect`] to a listener whose backlog is full, and
//! [`UnixDatagram::send_to`] to a socket whose receive queue is full. Those
//! retry after a short, growing sleep (1 ms doubling to 64 ms), which parks
//! only the calling green thread.
//!
//! # Examples
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use green::os::unix::net::{UnixListener, UnixStream};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("echo.sock");
//! let listener = UnixListener::bind(&path)?;
//! // A green echo server: one green thread per connection.
//! green::spawn_n(move || {
//!     for stream in listener.incoming() {
//!         let mut stream = stream.unwrap();
//!         green::spawn_n(move || {
//!             let mut r = BufReader::new(stream.try_clone().unwrap());
//!             let mut line = String::new();
//!             while r.read_line(&mut line).unwrap() > 0 {
//!                 stream.write_all(line.as_bytes()).unwrap();
//!                 line.clear();
//!             }
//!         });
//!     }
//! });
//! let clients: Vec<_> = (0..10)
//!     .map(|i| {
//!         let path = path.clone();
//!         green::spawn(move || -> std::io::Result<String> {
//!             let mut s = UnixStream::connect(path)?;
//!             writeln!(s, "hello {i}")?;
//!             let mut line = String::new();
//!             BufReader::new(s).read_line(&mut line)?;
//!             Ok(line)
//!         })
//!     })
//!     .collect();
//! for (i, c) in clients.into_iter().enumerate() {
//!     assert_eq!(c.wait()?, format!("hello {i}\n"));
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::mem;
use std::os::fd::OwnedFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;

mod datagram;
mod listener;
mod stream;

pub use datagram::UnixDatagram;
pub use listener::{Incoming, UnixListener};
pub use std::os::unix::net::SocketAddr;
pub use stream::UnixStream;

/// A new non-blocking, close-on-exec `AF_UNIX` socket of type `ty`.
fn socket(ty: libc::c_int) -> io::Result<OwnedFd> {
    crate::net::sys::socket_in(libc::AF_UNIX, ty)
}

/// `addr` as a `sockaddr_un` and the length in use.
///
/// std's `SocketAddr` has no raw accessor, but it tells everything a
/// `sockaddr_un` holds: a pathname, an abstract name, or neither (unnamed,
/// which the kernel refuses to connect to, as it does for std).
fn sockaddr_un(addr: &SocketAddr) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: all-zero bytes are a valid sockaddr_un.
    let mut raw: libc::sockaddr_un = unsafe { mem::zeroed() };
    raw.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let offset = mem::offset_of!(libc::sockaddr_un, sun_path);
    let (name, start, nul): (&[u8], usize, usize) = if let Some(p) = addr.as_pathname() {
        (p.as_os_str().as_bytes(), 0, 1)
    } else if let Some(n) = addr.as_abstract_name() {
        (n, 1, 0)
    } else {
        (&[], 0, 0)
    };
    let end = start + name.len();
    if end > raw.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path must be shorter than SUN_LEN",
        ));
    }
    for (dst, &b) in raw.sun_path[start..end].iter_mut().zip(name) {
        *dst = b as libc::c_char;
    }
    // A pathname is counted with its terminating NUL when there is room.
    let len = (offset + end + nul).min(mem::size_of::<libc::sockaddr_un>());
    Ok((raw, len as libc::socklen_t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_un_of_pathname_counts_the_nul() {
        let addr = SocketAddr::from_pathname("/tmp/x.sock").unwrap();
        let (raw, len) = sockaddr_un(&addr).unwrap();
        let offset = mem::offset_of!(libc::sockaddr_un, sun_path);
        assert_eq!(len as usize, offset + "/tmp/x.sock".len() + 1);
        assert_eq!(raw.sun_path[0], b'/' as libc::c_char);
        assert_eq!(raw.sun_path["/tmp/x.sock".len()], 0);
    }

    #[test]
    fn sockaddr_un_of_abstract_name_starts_with_nul() {
        let addr = SocketAddr::from_abstract_name(b"green\0x").unwrap();
        let (raw, len) = sockaddr_un(&addr).unwrap();
        let offset = mem::offset_of!(libc::sockaddr_un, sun_path);
        assert_eq!(len as usize, offset + 1 + 7);
        assert_eq!(raw.sun_path[0], 0);
        assert_eq!(raw.sun_path[1], b'g' as libc::c_char);
        assert_eq!(raw.sun_path[6], 0);
    }
}

//! Helpers shared by the `patch_*` test binaries.
// Not every test binary uses every helper.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::RawFd;

/// Whether `fd` is `O_NONBLOCK` in the kernel, past green's interposer.
pub fn kernel_nonblocking(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_GETFL on an open fd.
    let fl = unsafe { green::patch::original::fcntl(fd, libc::F_GETFL, 0) };
    if fl < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fl & libc::O_NONBLOCK != 0)
}

/// A connected pair that a green thread made and exchanged a byte on each
/// way, so that (when patched) green manages both sockets.
pub fn green_used_pair() -> io::Result<(TcpStream, TcpStream)> {
    green::spawn(|| -> io::Result<_> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let mut client = TcpStream::connect(listener.local_addr()?)?;
        let (mut server, _) = listener.accept()?;
        client.write_all(b"x")?;
        server.read_exact(&mut [0])?;
        server.write_all(b"y")?;
        client.read_exact(&mut [0])?;
        Ok((client, server))
    })
    .wait()
}

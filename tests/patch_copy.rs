//! The named copy functions under `patch()`: `sendfile` and `splice` into a
//! socket green manages park only their green thread while the socket is
//! full, as `write` does, and the hub runs the others meanwhile.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::rc::Rc;
use std::time::Duration;

// Calls to these bind to the executable's own definitions, green's
// interposers, as a C caller's do.
use libc::{sendfile, splice};

/// The OS thread running the caller: under `patch()` every green thread is
/// a thread of its own to std (`thread::current()` differs), so the OS
/// thread is told by its kernel id.
fn os_thread() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// What is copied: more than the sockets below can buffer.
const LEN: usize = 256 << 10;

fn cvt(n: isize) -> io::Result<usize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn payload() -> Vec<u8> {
    (0..LEN).map(|i| (i % 251) as u8).collect()
}

fn set_buffer(fd: RawFd, name: libc::c_int, bytes: libc::c_int) -> io::Result<()> {
    // SAFETY: an int option from a live int.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    cvt(rc as isize).map(drop)
}

/// A TCP pair made on a green thread, so that green manages both ends,
/// with small buffers: the client's send buffer and the server's receive
/// buffer (set on the listener, so that the window is small from the
/// start).
fn small_tcp_pair() -> io::Result<(TcpStream, TcpStream)> {
    green::spawn(|| {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        set_buffer(listener.as_raw_fd(), libc::SO_RCVBUF, 16 << 10)?;
        let client = TcpStream::connect(listener.local_addr()?)?;
        set_buffer(client.as_raw_fd(), libc::SO_SNDBUF, 16 << 10)?;
        let (server, _) = listener.accept()?;
        Ok((client, server))
    })
    .wait()
}

/// Copies [`LEN`] bytes into `client` with `copy` (given the destination
/// fd and how many bytes are left, it copies some and returns how many) on
/// one green thread, while a second drains `server` slowly and a third
/// counts the times it ran while the first was inside `copy`. Returns
/// what the drainer read and that count.
fn copy_while_others_run(
    client: TcpStream,
    server: TcpStream,
    mut copy: impl FnMut(RawFd, usize) -> isize + 'static,
) -> io::Result<(Vec<u8>, usize)> {
    let os = os_thread();
    let in_copy = Rc::new(Cell::new(false));
    let done = Rc::new(Cell::new(false));
    let copier = {
        let (in_copy, done) = (in_copy.clone(), done.clone());
        green::spawn(move || {
            let mut sent = 0;
            let r = loop {
                if sent == LEN {
                    break Ok(());
                }
                in_copy.set(true);
                let n = copy(client.as_raw_fd(), LEN - sent);
                in_copy.set(false);
                match cvt(n) {
                    Ok(n) => sent += n,
                    Err(e) => break Err(e),
                }
            };
            done.set(true);
            (r, os_thread())
        })
    };
    let drainer = green::spawn(move || {
        let mut got = Vec::with_capacity(LEN);
        let mut chunk = vec![0u8; 8 << 10];
        let r = loop {
            if got.len() == LEN {
                break Ok(got);
            }
            match (&server).read(&mut chunk) {
                Ok(0) => break Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) => break Err(e),
            }
            // A slow reader.
            green::sleep(Duration::from_millis(1));
        };
        (r, os_thread())
    });
    let counter = green::spawn(move || {
        let mut ran_during_copy = 0;
        while !done.get() {
            if in_copy.get() {
                ran_during_copy += 1;
            }
            green::yield_now();
        }
        (ran_during_copy, os_thread())
    });
    let (copied, copier_os) = copier.wait();
    let (got, drainer_os) = drainer.wait();
    let (ran_during_copy, counter_os) = counter.wait();
    assert_eq!(
        [copier_os, drainer_os, counter_os],
        [os; 3],
        "one OS thread"
    );
    copied?;
    Ok((got?, ran_during_copy))
}

#[test]
fn sendfile_into_a_slowly_drained_socket_lets_other_green_threads_run() -> io::Result<()> {
    green::patch();
    let (client, server) = small_tcp_pair()?;
    // SAFETY: a NUL-terminated name and flags.
    let fd =
        cvt(unsafe { libc::memfd_create(c"patch_copy".as_ptr(), libc::MFD_CLOEXEC) } as isize)?;
    // SAFETY: memfd_create just returned it.
    let mut file = unsafe { File::from_raw_fd(fd as RawFd) };
    file.write_all(&payload())?;
    let mut offset: libc::off_t = 0;
    let (got, ran_during_copy) = copy_while_others_run(client, server, move |out, left| {
        // SAFETY: open fds and a live offset.
        unsafe { sendfile(out, file.as_raw_fd(), &mut offset, left) }
    })?;
    assert!(got == payload(), "the bytes arrive in order");
    assert!(ran_during_copy > 0, "no green thread ran during sendfile");
    assert!(green::patch::hooks_seen().contains(&"sendfile"));
    Ok(())
}

#[test]
fn splice_into_a_slowly_drained_socket_lets_other_green_threads_run() -> io::Result<()> {
    green::patch();
    let (client, server) = small_tcp_pair()?;
    let mut fds = [0; 2];
    // SAFETY: room for the two fds pipe2 returns.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } as isize)?;
    // SAFETY: pipe2 just opened both fds; nothing else owns them.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // Room for the whole payload in the pipe, so that filling it here
    // does not block.
    // SAFETY: F_SETPIPE_SZ on a pipe.
    let size = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, LEN as libc::c_int) };
    assert!(cvt(size as isize)? >= LEN);
    File::from(w).write_all(&payload())?;
    let (got, ran_during_copy) = copy_while_others_run(client, server, move |out, left| {
        // SAFETY: open fds; no offsets (a pipe and a socket).
        unsafe {
            splice(
                r.as_raw_fd(),
                ptr::null_mut(),
                out,
                ptr::null_mut(),
                left,
                0,
            )
        }
    })?;
    assert!(got == payload(), "the bytes arrive in order");
    assert!(ran_during_copy > 0, "no green thread ran during splice");
    assert!(green::patch::hooks_seen().contains(&"splice"));
    Ok(())
}

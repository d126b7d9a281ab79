//! Every interposer of `green::patch()` is live: each is triggered from a
//! green thread, through the std API that calls it where std calls it,
//! through `libc::name(...)` directly for the others, and through
//! declarations of this file's own for glibc's fortified variants and the
//! named copy functions, and must then appear in
//! `green::patch::hooks_seen()`.
//!
//! Run in release mode too (`cargo test --release --test patch_live`): an
//! optimised build must reach the interposers just the same.
//!
//! Where a call can wait, the test makes it wait: the green thread that
//! makes it must still be parked after the others ran once, and another
//! green thread of the same OS thread supplies what it waits for.

use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem;
use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::ptr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

type Trigger = fn() -> io::Result<()>;

/// Each interposer, and how this test makes a green thread call it.
const TRIGGERS: &[(&str, Trigger)] = &[
    ("read", pipe_read),
    ("write", full_pipe_write),
    ("readv", tcp_read_vectored),
    ("writev", tcp_write_vectored),
    ("recv", tcp_read),
    ("recvfrom", udp_recv_from),
    ("recvmsg", udp_recvmsg),
    ("send", tcp_write),
    ("sendto", udp_send_to),
    ("sendmsg", udp_sendmsg),
    ("accept", plain_accept),
    ("accept4", tcp_accept),
    ("connect", tcp_connect),
    ("socket", tcp_connect),
    ("poll", pipe_poll),
    ("ppoll", pipe_ppoll),
    ("select", pipe_select),
    ("epoll_wait", pipe_epoll_wait),
    ("epoll_pwait", pipe_epoll_pwait),
    ("nanosleep", nanosleep),
    ("clock_nanosleep", clock_nanosleep),
    ("usleep", usleep),
    ("sleep", sleep),
    ("sched_yield", std_yield_now),
    ("getaddrinfo", resolve_localhost),
    ("waitpid", child_wait),
    ("wait4", child_wait4),
    ("waitid", child_waitid),
    ("syscall", mutex_contention),
    ("fcntl", fcntl_getfl),
    ("ioctl", set_nonblocking),
    ("setsockopt", set_read_timeout),
    ("close", drop_socket),
    ("dup", dup),
    ("dup2", dup2),
    ("dup3", dup3),
    ("sendfile", file_sendfile),
    ("sendfile64", file_sendfile64),
    ("splice", pipe_splice),
    ("__read_chk", pipe_read_chk),
    ("__recv_chk", tcp_recv_chk),
    ("__recvfrom_chk", udp_recvfrom_chk),
    ("__poll_chk", pipe_poll_chk),
    ("__ppoll_chk", pipe_ppoll_chk),
    ("pthread_create", os_thread_spawn),
    ("thrd_create", c11_thread),
    ("pthread_join", os_thread_join),
    ("dlopen", dlopen_libc),
    ("fork", raw_fork),
    ("_Fork", raw_underscore_fork),
    ("setuid", same_uid),
    ("setgid", same_gid),
    ("seteuid", same_euid),
    ("setegid", same_egid),
    ("setreuid", same_reuid),
    ("setregid", same_regid),
    ("setresuid", same_resuid),
    ("setresgid", same_resgid),
    ("setgroups", same_groups),
];

#[path = "common/fortified.rs"]
mod fortified;
use fortified::{__poll_chk, __ppoll_chk, __read_chk, __recv_chk, __recvfrom_chk};
// Calls to these bind to the executable's own definitions, green's
// interposers, as a C caller's do.
use libc::{sendfile, sendfile64, splice};

/// The OS thread running the caller: under `patch()` every green thread is
/// a thread of its own to std (`thread::current()` differs), so the OS
/// thread is told by its kernel id.
fn os_thread() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

#[test]
fn every_interposer_takes_its_green_path() {
    green::patch();
    let hooked = green::patch::hooked_functions();
    let untriggered: Vec<_> = hooked
        .iter()
        .filter(|h| !TRIGGERS.iter().any(|(name, _)| name == *h))
        .collect();
    assert!(untriggered.is_empty(), "no trigger for {untriggered:?}");

    let mut missing = Vec::new();
    for (name, trigger) in TRIGGERS {
        if let Err(e) = trigger() {
            panic!("the trigger of {name} failed: {e}");
        }
        if !green::patch::hooks_seen().contains(name) {
            missing.push(*name);
        }
    }
    assert!(
        missing.is_empty(),
        "interposers that did not take their green path: {missing:?}"
    );
    let seen = green::patch::hooks_seen();
    let unseen: Vec<_> = hooked.iter().filter(|h| !seen.contains(h)).collect();
    assert!(unseen.is_empty(), "never seen: {unseen:?}");
}

/// Thread identity is found and validated in this build too (an optimised
/// build must not defeat the probes that find glibc's layout).
#[test]
fn thread_identity_is_per_green_thread() {
    green::patch();
    if cfg!(all(
        any(target_arch = "x86_64", target_arch = "aarch64"),
        target_env = "gnu"
    )) {
        assert_eq!(
            green::patch::thread_identity(),
            green::patch::IdentityMode::PerGreenThread
        );
        thread_local!(static X: std::cell::Cell<u32> = const { std::cell::Cell::new(0) });
        X.set(1);
        assert_eq!(green::spawn(|| X.get()).wait(), 0, "a fresh thread-local");
    }
}

// ---- helpers ----------------------------------------------------------------

fn me() -> libc::pid_t {
    os_thread()
}

fn cvt(n: isize) -> io::Result<usize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Runs `f` on a green thread of this OS thread and returns its result.
fn on_green<T: 'static>(f: impl FnOnce() -> io::Result<T> + 'static) -> io::Result<T> {
    let os = me();
    let (r, id) = green::spawn(move || (f(), me())).wait();
    assert_eq!(id, os, "the green thread ran on another OS thread");
    r
}

/// Runs `call` on a green thread and checks that it parks there (it is
/// still unfinished once every other context has run once); then runs
/// `supply` on another green thread to give it what it waits for.
fn parks_until<T: 'static>(
    call: impl FnOnce() -> io::Result<T> + 'static,
    supply: impl FnOnce() -> io::Result<()> + 'static,
) -> io::Result<T> {
    let os = me();
    let waiter = green::spawn(move || (call(), me()));
    green::yield_now();
    assert!(!waiter.is_finished(), "the call did not wait");
    let supplier = green::spawn(move || (supply(), me()));
    let (supplied, sid) = supplier.wait();
    let (r, wid) = waiter.wait();
    assert_eq!(sid, os, "the supplier ran on another OS thread");
    assert_eq!(wid, os, "the waiter ran on another OS thread");
    supplied?;
    r
}

/// [`parks_until`] for a call that ends by itself.
fn parks<T: 'static>(call: impl FnOnce() -> io::Result<T> + 'static) -> io::Result<T> {
    parks_until(call, || Ok(()))
}

/// A blocking pipe: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: room for the two fds pipe2 returns.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } as isize)?;
    // SAFETY: pipe2 just opened both fds; nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Writes all of `bytes` to `fd` with `libc::write`.
fn put(fd: &OwnedFd, bytes: &[u8]) -> io::Result<()> {
    // SAFETY: a write from a live buffer of that length.
    let n = cvt(unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) })?;
    assert_eq!(n, bytes.len(), "a short write to a pipe");
    Ok(())
}

/// Reads from `fd` with `libc::read` into a buffer of `len` bytes.
fn take(fd: RawFd, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    // SAFETY: a read into a live buffer of that length.
    let n = cvt(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), len) })?;
    buf.truncate(n);
    Ok(buf)
}

/// A TCP pair made on a green thread, so that green manages it.
fn tcp_pair() -> io::Result<(TcpStream, TcpStream)> {
    on_green(|| {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let client = TcpStream::connect(listener.local_addr()?)?;
        let (server, _) = listener.accept()?;
        Ok((client, server))
    })
}

/// Two UDP sockets made on a green thread, `b` connected to `a`.
fn udp_pair() -> io::Result<(UdpSocket, UdpSocket)> {
    on_green(|| {
        let a = UdpSocket::bind("127.0.0.1:0")?;
        let b = UdpSocket::bind("127.0.0.1:0")?;
        b.connect(a.local_addr()?)?;
        Ok((a, b))
    })
}

/// Waits with `wait` (given the pipe's read end) until another green
/// thread writes to the pipe; returns what `wait` returned.
fn pipe_readiness(wait: fn(RawFd) -> io::Result<usize>) -> io::Result<usize> {
    let (r, w) = pipe()?;
    let n = parks_until(move || wait(r.as_raw_fd()), move || put(&w, b"ready"))?;
    Ok(n)
}

// ---- sockets, pipes and other fds ------------------------------------------

fn pipe_read() -> io::Result<()> {
    let (r, w) = pipe()?;
    let got = parks_until(move || take(r.as_raw_fd(), 16), move || put(&w, b"data"))?;
    assert_eq!(got, b"data");
    Ok(())
}

fn full_pipe_write() -> io::Result<()> {
    let (r, w) = pipe()?;
    // Shrink the pipe to one page and fill it, past green's interposer.
    // SAFETY: F_SETPIPE_SZ on a pipe.
    let size = cvt(unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) } as isize)?;
    let fill = vec![7u8; size];
    // SAFETY: a write from a live buffer; it fits in the empty pipe.
    let n = unsafe { green::patch::original::write(w.as_raw_fd(), fill.as_ptr().cast(), size) };
    assert_eq!(n, size as isize, "the pipe holds {size} bytes");
    let rfd = r.as_raw_fd();
    parks_until(
        move || put(&w, b"more"),
        move || {
            let mut drained = 0;
            while drained < size {
                drained += take(rfd, size - drained)?.len();
            }
            Ok(())
        },
    )?;
    assert_eq!(take(r.as_raw_fd(), 16)?, b"more");
    Ok(())
}

fn tcp_read_vectored() -> io::Result<()> {
    let (client, mut server) = tcp_pair()?;
    let got = parks_until(
        move || {
            let (mut a, mut b) = ([0u8; 2], [0u8; 2]);
            let n =
                (&client).read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)])?;
            assert_eq!(n, 4, "one segment of four bytes");
            Ok([a, b].concat())
        },
        move || server.write_all(b"abcd"),
    )?;
    assert_eq!(got, b"abcd");
    Ok(())
}

fn tcp_write_vectored() -> io::Result<()> {
    let (client, server) = tcp_pair()?;
    let got = parks_until(
        move || {
            let mut buf = [0u8; 4];
            (&server).read_exact(&mut buf)?;
            Ok(buf)
        },
        move || {
            let n = (&client).write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cd")])?;
            assert_eq!(n, 4);
            Ok(())
        },
    )?;
    assert_eq!(&got, b"abcd");
    Ok(())
}

fn tcp_read() -> io::Result<()> {
    let (client, server) = tcp_pair()?;
    let got = parks_until(
        move || {
            let mut buf = [0u8; 8];
            let n = (&client).read(&mut buf)?;
            Ok(buf[..n].to_vec())
        },
        move || (&server).write_all(b"recv"),
    )?;
    assert_eq!(got, b"recv");
    Ok(())
}

fn tcp_write() -> io::Result<()> {
    let (client, server) = tcp_pair()?;
    let got = parks_until(
        move || {
            let mut buf = [0u8; 4];
            (&server).read_exact(&mut buf)?;
            Ok(buf)
        },
        move || (&client).write_all(b"send"),
    )?;
    assert_eq!(&got, b"send");
    Ok(())
}

fn udp_recv_from() -> io::Result<()> {
    let (a, b) = udp_pair()?;
    let from = b.local_addr()?;
    let (got, peer) = parks_until(
        move || {
            let mut buf = [0u8; 16];
            let (n, peer) = a.recv_from(&mut buf)?;
            Ok((buf[..n].to_vec(), peer))
        },
        move || b.send(b"recvfrom").map(drop),
    )?;
    assert_eq!(got, b"recvfrom");
    assert_eq!(peer, from);
    Ok(())
}

fn udp_send_to() -> io::Result<()> {
    let (a, b) = udp_pair()?;
    let to = a.local_addr()?;
    let got = parks_until(
        move || {
            let mut buf = [0u8; 16];
            let n = a.recv(&mut buf)?;
            Ok(buf[..n].to_vec())
        },
        move || b.send_to(b"sendto", to).map(drop),
    )?;
    assert_eq!(got, b"sendto");
    Ok(())
}

fn udp_recvmsg() -> io::Result<()> {
    let (a, b) = udp_pair()?;
    let got = parks_until(
        move || {
            let mut buf = [0u8; 16];
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: an all-zero msghdr is a valid empty one.
            let mut msg: libc::msghdr = unsafe { mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            // SAFETY: msg names one live buffer.
            let n = cvt(unsafe { libc::recvmsg(a.as_raw_fd(), &mut msg, 0) })?;
            Ok(buf[..n].to_vec())
        },
        move || b.send(b"recvmsg").map(drop),
    )?;
    assert_eq!(got, b"recvmsg");
    Ok(())
}

fn udp_sendmsg() -> io::Result<()> {
    let (a, b) = udp_pair()?;
    let got = parks_until(
        move || {
            let mut buf = [0u8; 16];
            let n = a.recv(&mut buf)?;
            Ok(buf[..n].to_vec())
        },
        move || {
            let data = b"sendmsg";
            let mut iov = libc::iovec {
                iov_base: data.as_ptr() as *mut libc::c_void,
                iov_len: data.len(),
            };
            // SAFETY: an all-zero msghdr is a valid empty one.
            let mut msg: libc::msghdr = unsafe { mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            // SAFETY: msg names one live buffer; sendmsg only reads it.
            cvt(unsafe { libc::sendmsg(b.as_raw_fd(), &msg, 0) }).map(drop)
        },
    )?;
    assert_eq!(got, b"sendmsg");
    Ok(())
}

fn plain_accept() -> io::Result<()> {
    let listener = on_green(|| TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let accepted = parks_until(
        move || {
            // SAFETY: accept on a listening socket; no address wanted.
            let fd =
                unsafe { libc::accept(listener.as_raw_fd(), ptr::null_mut(), ptr::null_mut()) };
            cvt(fd as isize)?;
            // SAFETY: accept just returned this new fd.
            Ok(TcpStream::from(unsafe { OwnedFd::from_raw_fd(fd) }))
        },
        move || TcpStream::connect(addr).map(drop),
    )?;
    assert_eq!(accepted.local_addr()?, addr);
    Ok(())
}

fn tcp_accept() -> io::Result<()> {
    let listener = on_green(|| TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let (accepted, _) = parks_until(
        move || listener.accept(),
        move || TcpStream::connect(addr).map(drop),
    )?;
    assert_eq!(accepted.local_addr()?, addr);
    Ok(())
}

fn tcp_connect() -> io::Result<()> {
    let listener = on_green(|| TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let server = parks_until(
        move || listener.accept().map(|(s, _)| s),
        move || TcpStream::connect(addr)?.write_all(b"c"),
    )?;
    let mut buf = [0u8; 1];
    (&server).read_exact(&mut buf)?;
    assert_eq!(&buf, b"c");
    Ok(())
}

fn pipe_poll() -> io::Result<()> {
    let n = pipe_readiness(|fd| {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        let n = cvt(unsafe { libc::poll(&mut p, 1, -1) } as isize)?;
        assert!(p.revents & libc::POLLIN != 0);
        Ok(n)
    })?;
    assert_eq!(n, 1);
    Ok(())
}

fn pipe_ppoll() -> io::Result<()> {
    let n = pipe_readiness(|fd| {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd; no timeout, no signal mask.
        let n = cvt(unsafe { libc::ppoll(&mut p, 1, ptr::null(), ptr::null()) } as isize)?;
        assert!(p.revents & libc::POLLIN != 0);
        Ok(n)
    })?;
    assert_eq!(n, 1);
    Ok(())
}

fn pipe_select() -> io::Result<()> {
    let n = pipe_readiness(|fd| {
        assert!((fd as usize) < libc::FD_SETSIZE);
        // SAFETY: an fd_set is plain data; fd is below FD_SETSIZE.
        let mut set: libc::fd_set = unsafe { mem::zeroed() };
        // SAFETY: as above.
        unsafe {
            libc::FD_ZERO(&mut set);
            libc::FD_SET(fd, &mut set);
        }
        // SAFETY: one live read set; no timeout.
        let n = unsafe {
            libc::select(
                fd + 1,
                &mut set,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        let n = cvt(n as isize)?;
        // SAFETY: a live fd_set.
        assert!(unsafe { libc::FD_ISSET(fd, &set) });
        Ok(n)
    })?;
    assert_eq!(n, 1);
    Ok(())
}

/// An epoll instance watching `fd` for reading.
fn epoll_on(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: epoll_create1 takes flags.
    let ep = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) } as isize)? as RawFd;
    // SAFETY: epoll_create1 just returned it.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: 7,
    };
    // SAFETY: a live event for an open fd.
    cvt(unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } as isize)?;
    Ok(ep)
}

fn pipe_epoll_wait() -> io::Result<()> {
    let n = pipe_readiness(|fd| {
        let ep = epoll_on(fd)?;
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: room for one event; no timeout.
        let n = cvt(unsafe { libc::epoll_wait(ep.as_raw_fd(), &mut ev, 1, -1) } as isize)?;
        assert_eq!({ ev.u64 }, 7);
        Ok(n)
    })?;
    assert_eq!(n, 1);
    Ok(())
}

fn pipe_epoll_pwait() -> io::Result<()> {
    let n = pipe_readiness(|fd| {
        let ep = epoll_on(fd)?;
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: room for one event; no timeout, no signal mask.
        let n = unsafe { libc::epoll_pwait(ep.as_raw_fd(), &mut ev, 1, -1, ptr::null()) };
        let n = cvt(n as isize)?;
        assert_eq!({ ev.u64 }, 7);
        Ok(n)
    })?;
    assert_eq!(n, 1);
    Ok(())
}

// ---- copies between fds -----------------------------------------------------

/// A file in memory holding `bytes`.
fn memfile(bytes: &[u8]) -> io::Result<File> {
    // SAFETY: a NUL-terminated name and flags.
    let fd =
        cvt(unsafe { libc::memfd_create(c"patch_live".as_ptr(), libc::MFD_CLOEXEC) } as isize)?;
    // SAFETY: memfd_create just returned it.
    let mut f = unsafe { File::from_raw_fd(fd as RawFd) };
    f.write_all(bytes)?;
    Ok(f)
}

/// Runs `copy` (given the destination fd, it copies b"copy" there) on a
/// green thread, into a Unix socket green manages that is full: it must
/// park until another green thread drains the peer.
fn copy_parks(copy: impl FnOnce(RawFd) -> isize + 'static) -> io::Result<()> {
    let (a, b) = on_green(|| {
        let (mut a, mut b) = UnixStream::pair()?;
        a.write_all(b"x")?;
        b.read_exact(&mut [0])?;
        Ok((a, b))
    })?;
    let chunk = [0u8; 4096];
    let mut filled = 0;
    loop {
        // SAFETY: a send from a live buffer, past green's interposer.
        let n = unsafe {
            green::patch::original::send(
                a.as_raw_fd(),
                chunk.as_ptr().cast(),
                chunk.len(),
                libc::MSG_DONTWAIT,
            )
        };
        match cvt(n) {
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    let n = parks_until(
        move || cvt(copy(a.as_raw_fd())),
        move || {
            let mut all = vec![0u8; filled + 4];
            (&b).read_exact(&mut all)?;
            assert_eq!(&all[filled..], b"copy");
            Ok(())
        },
    )?;
    assert_eq!(n, 4);
    Ok(())
}

fn file_sendfile() -> io::Result<()> {
    let file = memfile(b"copy")?;
    copy_parks(move |out| {
        let mut offset = 0;
        // SAFETY: open fds and a live offset.
        unsafe { sendfile(out, file.as_raw_fd(), &mut offset, 4) }
    })
}

fn file_sendfile64() -> io::Result<()> {
    let file = memfile(b"copy")?;
    copy_parks(move |out| {
        let mut offset = 0;
        // SAFETY: open fds and a live offset.
        unsafe { sendfile64(out, file.as_raw_fd(), &mut offset, 4) }
    })
}

fn pipe_splice() -> io::Result<()> {
    let (r, w) = pipe()?;
    put(&w, b"copy")?;
    copy_parks(move |out| {
        // SAFETY: open fds; no offsets (a pipe and a socket).
        unsafe { splice(r.as_raw_fd(), ptr::null_mut(), out, ptr::null_mut(), 4, 0) }
    })
}

// ---- fortified variants -------------------------------------------------------

fn pipe_read_chk() -> io::Result<()> {
    let (r, w) = pipe()?;
    let got = parks_until(
        move || {
            let mut buf = [0u8; 16];
            let (p, len) = (buf.as_mut_ptr().cast(), buf.len());
            // SAFETY: a read into a live buffer of that length.
            let n = cvt(unsafe { __read_chk(r.as_raw_fd(), p, len, len) })?;
            Ok(buf[..n].to_vec())
        },
        move || put(&w, b"read_chk"),
    )?;
    assert_eq!(got, b"read_chk");
    Ok(())
}

fn tcp_recv_chk() -> io::Result<()> {
    let (client, server) = tcp_pair()?;
    let got = parks_until(
        move || {
            let mut buf = [0u8; 16];
            let (p, len) = (buf.as_mut_ptr().cast(), buf.len());
            // SAFETY: a receive into a live buffer of that length.
            let n = cvt(unsafe { __recv_chk(client.as_raw_fd(), p, len, len, 0) })?;
            Ok(buf[..n].to_vec())
        },
        move || (&server).write_all(b"recv_chk"),
    )?;
    assert_eq!(got, b"recv_chk");
    Ok(())
}

fn udp_recvfrom_chk() -> io::Result<()> {
    let (a, b) = udp_pair()?;
    let from = b.local_addr()?;
    let (got, port) = parks_until(
        move || {
            let mut buf = [0u8; 16];
            let (p, len) = (buf.as_mut_ptr().cast(), buf.len());
            // SAFETY: an all-zero sockaddr_in is valid.
            let mut addr: libc::sockaddr_in = unsafe { mem::zeroed() };
            let mut addrlen = mem::size_of_val(&addr) as libc::socklen_t;
            let sa = (&mut addr as *mut libc::sockaddr_in).cast();
            // SAFETY: live buffers of the lengths given.
            let n = unsafe { __recvfrom_chk(a.as_raw_fd(), p, len, len, 0, sa, &mut addrlen) };
            let n = cvt(n)?;
            Ok((buf[..n].to_vec(), u16::from_be(addr.sin_port)))
        },
        move || b.send(b"recvfrom_chk").map(drop),
    )?;
    assert_eq!(got, b"recvfrom_chk");
    assert_eq!(port, from.port());
    Ok(())
}

fn pipe_poll_chk() -> io::Result<()> {
    let n = pipe_readiness(|fd| {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd, of that size.
        let n = unsafe { __poll_chk(&mut p, 1, -1, mem::size_of_val(&p)) };
        let n = cvt(n as isize)?;
        assert!(p.revents & libc::POLLIN != 0);
        Ok(n)
    })?;
    assert_eq!(n, 1);
    Ok(())
}

fn pipe_ppoll_chk() -> io::Result<()> {
    let n = pipe_readiness(|fd| {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let size = mem::size_of_val(&p);
        // SAFETY: one live pollfd, of that size; no timeout, no mask.
        let n = unsafe { __ppoll_chk(&mut p, 1, ptr::null(), ptr::null(), size) };
        let n = cvt(n as isize)?;
        assert!(p.revents & libc::POLLIN != 0);
        Ok(n)
    })?;
    assert_eq!(n, 1);
    Ok(())
}

// ---- sleeping and yielding ------------------------------------------------

const NAP: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 20_000_000,
};

fn nanosleep() -> io::Result<()> {
    parks(|| {
        // SAFETY: a valid timespec; no remainder wanted.
        cvt(unsafe { libc::nanosleep(&NAP, ptr::null_mut()) } as isize).map(drop)
    })
}

fn clock_nanosleep() -> io::Result<()> {
    parks(|| {
        // SAFETY: a valid timespec; no remainder wanted.
        let rc = unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, 0, &NAP, ptr::null_mut()) };
        // It returns the error number rather than setting errno.
        match rc {
            0 => Ok(()),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    })
}

fn usleep() -> io::Result<()> {
    // SAFETY: no pointers.
    parks(|| cvt(unsafe { libc::usleep(20_000) } as isize).map(drop))
}

fn sleep() -> io::Result<()> {
    // SAFETY: no pointers.
    let left = parks(|| Ok(unsafe { libc::sleep(1) }))?;
    assert_eq!(left, 0, "slept the whole second");
    Ok(())
}

fn std_yield_now() -> io::Result<()> {
    parks(|| {
        thread::yield_now();
        Ok(())
    })
}

// ---- name resolution and child processes -----------------------------------

fn resolve_localhost() -> io::Result<()> {
    let addrs = parks(|| Ok(("localhost", 80).to_socket_addrs()?.collect::<Vec<_>>()))?;
    assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
    assert!(!addrs.is_empty());
    Ok(())
}

/// A child that exits 3 after a short sleep, spawned on a green thread.
fn short_child() -> io::Result<std::process::Child> {
    on_green(|| {
        Command::new("sh")
            .arg("-c")
            .arg("sleep 0.05; exit 3")
            .spawn()
    })
}

fn child_wait() -> io::Result<()> {
    let mut child = short_child()?;
    let status = parks(move || child.wait())?;
    assert_eq!(status.code(), Some(3));
    Ok(())
}

fn child_wait4() -> io::Result<()> {
    let child = short_child()?;
    let pid = child.id() as libc::pid_t;
    let status = parks(move || {
        let _child = child;
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid.
        let mut usage: libc::rusage = unsafe { mem::zeroed() };
        // SAFETY: live out-parameters.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(cvt(r as isize)?, pid as usize);
        Ok(status)
    })?;
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 3);
    Ok(())
}

fn child_waitid() -> io::Result<()> {
    let child = short_child()?;
    let pid = child.id();
    let code = parks(move || {
        let _child = child;
        // SAFETY: an all-zero siginfo_t is valid.
        let mut info: libc::siginfo_t = unsafe { mem::zeroed() };
        // SAFETY: a live out-parameter.
        let r = unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED) };
        cvt(r as isize)?;
        // SAFETY: waitid filled in a child's exit.
        Ok(unsafe { info.si_status() })
    })?;
    assert_eq!(code, 3);
    Ok(())
}

// ---- futex --------------------------------------------------------------------

fn mutex_contention() -> io::Result<()> {
    let m = Arc::new(Mutex::new(0));
    let holder = {
        let m = m.clone();
        green::spawn(move || {
            let mut g = m.lock().expect("not poisoned");
            thread::sleep(Duration::from_millis(20));
            *g += 1;
        })
    };
    // The holder locks and sleeps holding the lock.
    green::yield_now();
    let seen = {
        let m = m.clone();
        parks(move || Ok(*m.lock().expect("not poisoned")))?
    };
    holder.wait();
    assert_eq!(seen, 1, "the contender waited for the holder");
    Ok(())
}

// ---- bookkeeping ----------------------------------------------------------

fn fcntl_getfl() -> io::Result<()> {
    let (client, _server) = tcp_pair()?;
    let (fl, clone) = on_green(move || {
        // SAFETY: F_GETFL on an open fd.
        let fl = cvt(unsafe { libc::fcntl(client.as_raw_fd(), libc::F_GETFL) } as isize)?;
        // try_clone: fcntl(F_DUPFD_CLOEXEC).
        Ok((fl as libc::c_int, client.try_clone()?))
    })?;
    assert_eq!(fl & libc::O_NONBLOCK, 0, "green's O_NONBLOCK is hidden");
    assert!(clone.peer_addr().is_ok());
    Ok(())
}

fn set_nonblocking() -> io::Result<()> {
    let (client, _server) = tcp_pair()?;
    on_green(move || {
        client.set_nonblocking(true)?;
        client.set_nonblocking(false)
    })
}

fn set_read_timeout() -> io::Result<()> {
    let (client, _server) = tcp_pair()?;
    let timeout = Duration::from_millis(30);
    let r = on_green(move || {
        client.set_read_timeout(Some(timeout))?;
        Ok((&client).read(&mut [0u8; 8]).map_err(|e| e.kind()))
    })?;
    assert_eq!(r.map(drop), Err(io::ErrorKind::WouldBlock));
    Ok(())
}

fn drop_socket() -> io::Result<()> {
    let (client, mut server) = tcp_pair()?;
    on_green(move || {
        drop(client);
        Ok(())
    })?;
    assert_eq!(server.read(&mut [0u8; 8])?, 0, "the peer sees the close");
    Ok(())
}

/// `libc::dup` of `fd`, owned.
fn dup_of(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: dup of an open fd.
    let new = cvt(unsafe { libc::dup(fd) } as isize)? as RawFd;
    // SAFETY: dup just returned it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

fn dup() -> io::Result<()> {
    let (client, _server) = tcp_pair()?;
    let copy = on_green(move || dup_of(client.as_raw_fd()))?;
    assert!(TcpStream::from(copy).peer_addr().is_ok());
    Ok(())
}

fn dup2() -> io::Result<()> {
    let (client, _server) = tcp_pair()?;
    let (a, _b) = tcp_pair()?;
    let peer = client.peer_addr()?;
    let onto = on_green(move || {
        // `onto` names a's socket until dup2 makes it name client's.
        let onto = dup_of(a.as_raw_fd())?;
        // SAFETY: both fds are open; `onto` stays owned.
        cvt(unsafe { libc::dup2(client.as_raw_fd(), onto.as_raw_fd()) } as isize)?;
        Ok(onto)
    })?;
    assert_eq!(TcpStream::from(onto).peer_addr()?, peer);
    Ok(())
}

fn dup3() -> io::Result<()> {
    let (client, _server) = tcp_pair()?;
    let (a, _b) = tcp_pair()?;
    let peer = client.peer_addr()?;
    let onto = on_green(move || {
        let onto = dup_of(a.as_raw_fd())?;
        // SAFETY: both fds are open; `onto` stays owned.
        let r = unsafe { libc::dup3(client.as_raw_fd(), onto.as_raw_fd(), libc::O_CLOEXEC) };
        cvt(r as isize)?;
        Ok(onto)
    })?;
    assert_eq!(TcpStream::from(onto).peer_addr()?, peer);
    Ok(())
}

// ---- thread identity: calls made as the OS thread, and pthread_join ------

fn os_thread_spawn() -> io::Result<()> {
    let tid = on_green(|| {
        let t = thread::spawn(os_thread);
        Ok(t.join().expect("the OS thread panicked"))
    })?;
    assert_ne!(tid, os_thread(), "a thread of its own");
    Ok(())
}

fn os_thread_join() -> io::Result<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let t = thread::spawn(move || rx.recv().is_ok());
    // The join parks (the thread waits for the supplier's message).
    let joined = parks_until(
        move || Ok(t.join().expect("the OS thread panicked")),
        move || {
            tx.send(()).expect("the OS thread is waiting");
            Ok(())
        },
    )?;
    assert!(joined);
    Ok(())
}

/// Forks with `fork_fn`; the child exits with 5, which the parent sees.
fn fork_with(fork_fn: unsafe extern "C" fn() -> libc::pid_t) -> io::Result<()> {
    on_green(move || {
        // SAFETY: the child only calls async-signal-safe `_exit`.
        let pid = unsafe { fork_fn() };
        if pid == 0 {
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(5) };
        }
        cvt(pid as isize)?;
        let mut status = 0;
        // SAFETY: a live out-parameter.
        cvt(unsafe { libc::waitpid(pid, &mut status, 0) } as isize)?;
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 5);
        Ok(())
    })
}

extern "C" {
    fn _Fork() -> libc::pid_t;
    fn thrd_create(
        thread: *mut libc::c_ulong,
        start: extern "C" fn(*mut libc::c_void) -> libc::c_int,
        arg: *mut libc::c_void,
    ) -> libc::c_int;
    fn thrd_join(thread: libc::c_ulong, result: *mut libc::c_int) -> libc::c_int;
}

extern "C" fn c11_body(_: *mut libc::c_void) -> libc::c_int {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

fn c11_thread() -> io::Result<()> {
    let tid = on_green(|| {
        let mut t = 0;
        let mut tid = 0;
        // SAFETY: a C11 thread running `c11_body`, joined at once.
        unsafe {
            assert_eq!(thrd_create(&mut t, c11_body, ptr::null_mut()), 0);
            assert_eq!(thrd_join(t, &mut tid), 0);
        }
        Ok(tid)
    })?;
    assert_ne!(tid, os_thread(), "a thread of its own");
    Ok(())
}

fn dlopen_libc() -> io::Result<()> {
    on_green(|| {
        // SAFETY: libc is loaded already; NOLOAD only takes a reference.
        let h = unsafe { libc::dlopen(c"libc.so.6".as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
        assert!(!h.is_null(), "libc.so.6 is loaded");
        // SAFETY: the reference just taken.
        unsafe { libc::dlclose(h) };
        Ok(())
    })
}

fn raw_fork() -> io::Result<()> {
    fork_with(libc::fork)
}

fn raw_underscore_fork() -> io::Result<()> {
    fork_with(_Fork)
}

/// Makes a credential call that changes nothing, on a green thread.
fn same_ids(call: fn() -> libc::c_int) -> io::Result<()> {
    on_green(move || {
        // An unprivileged caller may be refused (setgroups): what matters
        // is that the call completes, as the OS thread.
        let rc = call();
        if rc != 0 {
            let e = io::Error::last_os_error();
            assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
        }
        Ok(())
    })
}

// SAFETY (all below): each sets the ids the process already has.
fn same_uid() -> io::Result<()> {
    same_ids(|| unsafe { libc::setuid(libc::getuid()) })
}
fn same_gid() -> io::Result<()> {
    same_ids(|| unsafe { libc::setgid(libc::getgid()) })
}
fn same_euid() -> io::Result<()> {
    same_ids(|| unsafe { libc::seteuid(libc::geteuid()) })
}
fn same_egid() -> io::Result<()> {
    same_ids(|| unsafe { libc::setegid(libc::getegid()) })
}
fn same_reuid() -> io::Result<()> {
    same_ids(|| unsafe { libc::setreuid(u32::MAX, u32::MAX) })
}
fn same_regid() -> io::Result<()> {
    same_ids(|| unsafe { libc::setregid(u32::MAX, u32::MAX) })
}
fn same_resuid() -> io::Result<()> {
    same_ids(|| unsafe { libc::setresuid(u32::MAX, u32::MAX, u32::MAX) })
}
fn same_resgid() -> io::Result<()> {
    same_ids(|| unsafe { libc::setresgid(u32::MAX, u32::MAX, u32::MAX) })
}
fn same_groups() -> io::Result<()> {
    same_ids(|| {
        let mut groups = [0 as libc::gid_t; 256];
        // SAFETY: room for 256 groups.
        let n = unsafe { libc::getgroups(256, groups.as_mut_ptr()) };
        assert!(n >= 0, "getgroups: {}", io::Error::last_os_error());
        // SAFETY: the `n` groups just read.
        unsafe { libc::setgroups(n as usize, groups.as_ptr()) }
    })
}

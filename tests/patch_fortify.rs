//! glibc's fortified variants under `patch()`: C code built with
//! `_FORTIFY_SOURCE` calls `__read_chk`, `__recv_chk`, `__recvfrom_chk`,
//! `__poll_chk` and `__ppoll_chk` instead of the plain functions. A call
//! whose size check passes parks only its green thread, as the plain call
//! does; one whose check fails is reported by glibc and aborts the process,
//! as without green.

use std::cell::RefCell;
use std::io::{self, Write};
use std::mem;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::ptr;
use std::rc::Rc;

#[path = "common/fortified.rs"]
mod fortified;
use fortified::{__poll_chk, __ppoll_chk, __read_chk, __recv_chk, __recvfrom_chk};

/// The OS thread running the caller: under `patch()` every green thread is
/// a thread of its own to std (`thread::current()` differs), so the OS
/// thread is told by its kernel id.
fn os_thread() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

fn cvt(n: isize) -> io::Result<usize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A TCP pair made on a green thread, so that green manages both ends.
fn tcp_pair() -> io::Result<(TcpStream, TcpStream)> {
    green::spawn(|| {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let client = TcpStream::connect(listener.local_addr()?)?;
        let (server, _) = listener.accept()?;
        Ok((client, server))
    })
    .wait()
}

/// Runs `call` (a fortified call that waits for `fd` to become readable)
/// on a green thread, and checks that it parks only that green thread:
/// another green thread of the same OS thread runs while it waits, and
/// then writes what it waits for with `supply`. Returns what `call`
/// returned.
fn parks_only_its_green_thread<T: 'static>(
    fd: RawFd,
    call: impl FnOnce(RawFd) -> io::Result<T> + 'static,
    supply: impl FnOnce() -> io::Result<()> + 'static,
) -> io::Result<T> {
    green::patch();
    let os = os_thread();
    let log = Rc::new(RefCell::new(Vec::new()));
    let waiter = {
        let log = log.clone();
        green::spawn(move || {
            log.borrow_mut().push("call");
            let r = call(fd);
            log.borrow_mut().push("returned");
            (r, os_thread())
        })
    };
    green::yield_now();
    assert!(!waiter.is_finished(), "the call did not wait");
    let other = {
        let log = log.clone();
        green::spawn(move || {
            log.borrow_mut().push("other ran");
            (supply(), os_thread())
        })
    };
    let (supplied, other_os) = other.wait();
    let (r, waiter_os) = waiter.wait();
    supplied?;
    assert_eq!((waiter_os, other_os), (os, os), "one OS thread");
    assert_eq!(*log.borrow(), ["call", "other ran", "returned"]);
    r
}

/// [`parks_only_its_green_thread`] on the client end of a TCP pair, to
/// which the server end writes `bytes`.
fn tcp_parks_only_its_green_thread<T: 'static>(
    bytes: &'static [u8],
    call: impl FnOnce(RawFd) -> io::Result<T> + 'static,
) -> io::Result<T> {
    green::patch();
    let (client, server) = tcp_pair()?;
    let fd = client.as_raw_fd();
    let r = parks_only_its_green_thread(fd, call, move || (&server).write_all(bytes));
    drop(client);
    r
}

#[test]
fn a_green_thread_in_read_chk_parks_while_another_runs() -> io::Result<()> {
    let got = tcp_parks_only_its_green_thread(b"read_chk", |fd| {
        let mut buf = [0u8; 16];
        let (p, len) = (buf.as_mut_ptr().cast(), buf.len());
        // SAFETY: a read into a live buffer of that length.
        let n = cvt(unsafe { __read_chk(fd, p, len, len) })?;
        Ok(buf[..n].to_vec())
    })?;
    assert_eq!(got, b"read_chk");
    assert!(green::patch::hooks_seen().contains(&"__read_chk"));
    Ok(())
}

#[test]
fn a_green_thread_in_recv_chk_parks_while_another_runs() -> io::Result<()> {
    let got = tcp_parks_only_its_green_thread(b"recv_chk", |fd| {
        let mut buf = [0u8; 16];
        let (p, len) = (buf.as_mut_ptr().cast(), buf.len());
        // SAFETY: a receive into a live buffer of that length.
        let n = cvt(unsafe { __recv_chk(fd, p, len, len, 0) })?;
        Ok(buf[..n].to_vec())
    })?;
    assert_eq!(got, b"recv_chk");
    assert!(green::patch::hooks_seen().contains(&"__recv_chk"));
    Ok(())
}

#[test]
fn a_green_thread_in_recvfrom_chk_parks_while_another_runs() -> io::Result<()> {
    green::patch();
    let (a, b) = green::spawn(|| -> io::Result<_> {
        let a = UdpSocket::bind("127.0.0.1:0")?;
        let b = UdpSocket::bind("127.0.0.1:0")?;
        b.connect(a.local_addr()?)?;
        Ok((a, b))
    })
    .wait()?;
    let from = b.local_addr()?;
    let fd = a.as_raw_fd();
    let (got, port) = parks_only_its_green_thread(
        fd,
        |fd| {
            let mut buf = [0u8; 16];
            let (p, len) = (buf.as_mut_ptr().cast(), buf.len());
            // SAFETY: an all-zero sockaddr_in is valid.
            let mut addr: libc::sockaddr_in = unsafe { mem::zeroed() };
            let mut addrlen = mem::size_of_val(&addr) as libc::socklen_t;
            let sa = (&mut addr as *mut libc::sockaddr_in).cast();
            // SAFETY: live buffers of the lengths given.
            let n = cvt(unsafe { __recvfrom_chk(fd, p, len, len, 0, sa, &mut addrlen) })?;
            Ok((buf[..n].to_vec(), u16::from_be(addr.sin_port)))
        },
        move || b.send(b"recvfrom_chk").map(drop),
    )?;
    drop(a);
    assert_eq!(got, b"recvfrom_chk");
    assert_eq!(port, from.port());
    Ok(())
}

/// One pollfd waiting for `fd` to become readable.
fn pollin(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

#[test]
fn a_green_thread_in_poll_chk_parks_while_another_runs() -> io::Result<()> {
    let revents = tcp_parks_only_its_green_thread(b"poll_chk", |fd| {
        let mut p = pollin(fd);
        // SAFETY: one live pollfd, of that size; no timeout.
        let n = unsafe { __poll_chk(&mut p, 1, -1, mem::size_of_val(&p)) };
        assert_eq!(cvt(n as isize)?, 1);
        Ok(p.revents)
    })?;
    assert!(revents & libc::POLLIN != 0);
    Ok(())
}

#[test]
fn a_green_thread_in_ppoll_chk_parks_while_another_runs() -> io::Result<()> {
    let revents = tcp_parks_only_its_green_thread(b"ppoll_chk", |fd| {
        let mut p = pollin(fd);
        let size = mem::size_of_val(&p);
        // SAFETY: one live pollfd, of that size; no timeout, no mask.
        let n = unsafe { __ppoll_chk(&mut p, 1, ptr::null(), ptr::null(), size) };
        assert_eq!(cvt(n as isize)?, 1);
        Ok(p.revents)
    })?;
    assert!(revents & libc::POLLIN != 0);
    Ok(())
}

// ---- failed checks ---------------------------------------------------------

/// Set in a child process to the name of the test it is to run.
const CHILD: &str = "GREEN_PATCH_FORTIFY_CHILD";

/// Runs test `name` in a child process (this test binary, with
/// [`CHILD`] set), where it makes the call `overflow` on a green thread
/// under `patch()`; checks that glibc reported the overflow and the child
/// died of `SIGABRT`. In that child, this runs `overflow` instead.
fn aborts_in_a_child(name: &str, overflow: impl FnOnce() + 'static) {
    if std::env::var_os(CHILD).is_some_and(|v| v == name) {
        green::patch();
        green::spawn(overflow).wait();
        // Only if the call returned: the parent sees a normal exit.
        std::process::exit(0);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .output()
        .expect("the child test runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "the child ended with {:?}; its stderr: {stderr}",
        out.status
    );
    assert!(
        stderr.contains("buffer overflow detected"),
        "glibc's report is missing from the child's stderr: {stderr}"
    );
}

/// A pipe holding a few bytes: a read or poll of its read end that went
/// through would return at once. (read end, write end)
fn ready_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: room for the two fds pipe2 returns.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 just opened both fds; nothing else owns them.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: a write from a live buffer of that length.
    assert_eq!(
        unsafe { libc::write(w.as_raw_fd(), b"data".as_ptr().cast(), 4) },
        4
    );
    (r, w)
}

#[test]
fn read_chk_past_its_buffer_aborts_as_in_glibc() {
    aborts_in_a_child("read_chk_past_its_buffer_aborts_as_in_glibc", || {
        let (r, _w) = ready_pipe();
        let mut buf = [0u8; 16];
        // The buffer has room for 16 bytes but is declared to hold 8.
        // SAFETY: a read of at most 16 bytes into 16.
        let n = unsafe { __read_chk(r.as_raw_fd(), buf.as_mut_ptr().cast(), 16, 8) };
        println!("__read_chk returned {n}");
    });
}

#[test]
fn recv_chk_past_its_buffer_aborts_as_in_glibc() {
    aborts_in_a_child("recv_chk_past_its_buffer_aborts_as_in_glibc", || {
        let (client, mut server) = tcp_pair().expect("a TCP pair");
        server.write_all(b"data").expect("a write");
        let mut buf = [0u8; 16];
        // SAFETY: a receive of at most 16 bytes into 16.
        let n = unsafe { __recv_chk(client.as_raw_fd(), buf.as_mut_ptr().cast(), 16, 8, 0) };
        println!("__recv_chk returned {n}");
    });
}

#[test]
fn recvfrom_chk_past_its_buffer_aborts_as_in_glibc() {
    aborts_in_a_child("recvfrom_chk_past_its_buffer_aborts_as_in_glibc", || {
        let (client, mut server) = tcp_pair().expect("a TCP pair");
        server.write_all(b"data").expect("a write");
        let mut buf = [0u8; 16];
        let (fd, p) = (client.as_raw_fd(), buf.as_mut_ptr().cast());
        let (addr, len) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: a receive of at most 16 bytes into 16; no address.
        let n = unsafe { __recvfrom_chk(fd, p, 16, 8, 0, addr, len) };
        println!("__recvfrom_chk returned {n}");
    });
}

#[test]
fn poll_chk_with_fdslen_short_of_nfds_aborts_as_in_glibc() {
    aborts_in_a_child(
        "poll_chk_with_fdslen_short_of_nfds_aborts_as_in_glibc",
        || {
            let (r, _w) = ready_pipe();
            let mut fds = [pollin(r.as_raw_fd()), pollin(-1)];
            // Two pollfds, declared to take the room of one.
            let one = mem::size_of::<libc::pollfd>();
            // SAFETY: two live pollfds.
            let n = unsafe { __poll_chk(fds.as_mut_ptr(), 2, -1, one) };
            println!("__poll_chk returned {n}");
        },
    );
}

#[test]
fn ppoll_chk_with_fdslen_short_of_nfds_aborts_as_in_glibc() {
    aborts_in_a_child(
        "ppoll_chk_with_fdslen_short_of_nfds_aborts_as_in_glibc",
        || {
            let (r, _w) = ready_pipe();
            let mut fds = [pollin(r.as_raw_fd()), pollin(-1)];
            let one = mem::size_of::<libc::pollfd>();
            // SAFETY: two live pollfds; no timeout, no mask.
            let n = unsafe { __ppoll_chk(fds.as_mut_ptr(), 2, ptr::null(), ptr::null(), one) };
            println!("__ppoll_chk returned {n}");
        },
    );
}

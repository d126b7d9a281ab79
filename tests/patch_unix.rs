//! Under `patch()`, the blocking Unix socket calls whose `EAGAIN` has no
//! readiness edge to follow (a datagram send to a full receiver, a stream
//! connect to a full backlog) wait green until the receiver drains or the
//! listener accepts, and a receive with `MSG_WAITALL` waits for its full
//! length, while the other green threads of the OS thread keep running.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::mem;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

mod common;
#[path = "common/patched.rs"]
mod patched;
use patched::kernel_nonblocking;

/// Gives the test's OS thread its hub: its root is a green context from
/// here on, and a socket it makes is one green manages from the start.
fn start_hub() {
    green::yield_now();
}

/// A green thread that counts, one tick per millisecond, while others
/// wait; it stops when dropped.
struct Ticker {
    ticks: Rc<Cell<u64>>,
    stop: Rc<Cell<bool>>,
    thread: Option<green::GreenThread<()>>,
}

impl Ticker {
    fn start() -> Ticker {
        let ticks = Rc::new(Cell::new(0));
        let stop = Rc::new(Cell::new(false));
        let (t, s) = (ticks.clone(), stop.clone());
        let thread = green::spawn(move || {
            while !s.get() {
                t.set(t.get() + 1);
                green::sleep(Duration::from_millis(1));
            }
        });
        Ticker {
            ticks,
            stop,
            thread: Some(thread),
        }
    }

    /// Parks the caller until the ticker has counted `n` more ticks.
    fn wait_ticks(&self, n: u64) {
        let target = self.ticks.get() + n;
        while self.ticks.get() < target {
            green::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.set(true);
        if let Some(t) = self.thread.take() {
            t.wait();
        }
    }
}

/// Sends datagrams from `sender` to `path` without blocking until the
/// receiver's queue is full; returns how many went. `sender` is left in
/// blocking mode.
fn fill_receiver(sender: &UnixDatagram, path: &Path) -> io::Result<usize> {
    sender.set_nonblocking(true)?;
    let mut sent = 0;
    loop {
        match sender.send_to(b"fill", path) {
            Ok(_) => sent += 1,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    sender.set_nonblocking(false)?;
    assert!(sent > 0, "the receiver took no datagram at all");
    Ok(sent)
}

/// Receives `n` queued datagrams, each `fill`.
fn drain(receiver: &UnixDatagram, n: usize) -> io::Result<()> {
    for _ in 0..n {
        let mut buf = [0; 8];
        let len = receiver.recv(&mut buf)?;
        assert_eq!(&buf[..len], b"fill");
    }
    Ok(())
}

/// `path`, bound with a datagram receiver, and an unbound sender.
fn datagram_sockets(dir: &Path) -> io::Result<(UnixDatagram, UnixDatagram)> {
    let receiver = UnixDatagram::bind(dir.join("receiver.sock"))?;
    Ok((receiver, UnixDatagram::unbound()?))
}

#[test]
fn send_to_a_full_unix_datagram_receiver_waits_green_until_it_drains() -> io::Result<()> {
    green::patch();
    let dir = tempfile::tempdir()?;
    let (receiver, filler) = datagram_sockets(dir.path())?;
    let path = dir.path().join("receiver.sock");
    // Another socket's datagrams fill the queue: draining it raises no
    // edge at all on the sender below.
    let queued = fill_receiver(&filler, &path)?;
    let sender = UnixDatagram::unbound()?;
    let p = path.clone();
    assert_send_waits_until_drained(move || sender.send_to(b"last", &p), &receiver, queued)
}

#[test]
fn send_on_a_connected_unix_datagram_socket_waits_green_until_the_receiver_drains() -> io::Result<()>
{
    green::patch();
    let dir = tempfile::tempdir()?;
    let (receiver, sender) = datagram_sockets(dir.path())?;
    let path = dir.path().join("receiver.sock");
    sender.connect(&path)?;
    let queued = fill_receiver(&sender, &path)?;
    assert_send_waits_until_drained(move || sender.send(b"last"), &receiver, queued)
}

/// Runs `send` (of `b"last"`) on a green thread while `receiver` holds
/// `queued` datagrams: it waits, while other green threads run and without
/// spinning, until the receiver is drained, and then is sent.
fn assert_send_waits_until_drained(
    send: impl FnOnce() -> io::Result<usize> + 'static,
    receiver: &UnixDatagram,
    queued: usize,
) -> io::Result<()> {
    let ticker = Ticker::start();
    let sent = Rc::new(Cell::new(false));
    let s = sent.clone();
    let send = green::spawn(move || {
        let r = send();
        s.set(true);
        r
    });
    ticker.wait_ticks(20);
    assert!(!sent.get(), "the send did not wait for room");
    assert_waits_without_spinning();
    assert!(!sent.get(), "the send did not wait for room");
    drain(receiver, queued)?;
    assert_eq!(send.wait()?, 4);
    let mut buf = [0; 8];
    let n = receiver.recv(&mut buf)?;
    assert_eq!(&buf[..n], b"last");
    Ok(())
}

#[test]
fn send_to_a_full_unix_datagram_receiver_gives_would_block_when_so_sndtimeo_passes(
) -> io::Result<()> {
    green::patch();
    let dir = tempfile::tempdir()?;
    let (_receiver, sender) = datagram_sockets(dir.path())?;
    let path = dir.path().join("receiver.sock");
    fill_receiver(&sender, &path)?;
    let timeout = Duration::from_millis(100);
    sender.set_write_timeout(Some(timeout))?;
    let ticker = Ticker::start();
    let start = Instant::now();
    let e = sender.send_to(b"last", &path).unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.raw_os_error(), Some(libc::EAGAIN), "{e}");
    // Margin: at least the timeout, and far less than 5 s.
    assert!(took >= timeout && took < Duration::from_secs(5), "{took:?}");
    assert!(ticker.ticks.get() > 0, "no other green thread ran");
    Ok(())
}

#[test]
fn kill_during_a_send_to_a_full_receiver_fails_it_with_ecanceled() -> io::Result<()> {
    green::patch();
    let dir = tempfile::tempdir()?;
    let (_receiver, sender) = datagram_sockets(dir.path())?;
    let path = dir.path().join("receiver.sock");
    fill_receiver(&sender, &path)?;
    let outcome = Rc::new(Cell::new(None));
    let o = outcome.clone();
    let send = green::spawn(move || {
        let r = sender.send_to(b"last", &path);
        o.set(Some(r.map_err(|e| e.raw_os_error())));
        green::sleep(Duration::from_secs(3600));
    });
    green::yield_now();
    assert!(outcome.get().is_none(), "the send did not wait");
    send.kill();
    let payload = send.join().expect_err("the green thread was killed");
    assert!(payload.is::<green::Killed>());
    assert_eq!(outcome.get(), Some(Err(Some(libc::ECANCELED))));
    Ok(())
}

/// Sleeps green for 300 ms while a green thread of this OS thread waits,
/// and checks that the wait is not a busy loop. A waiter that retried at
/// every (useless) write edge kept the OS thread busy for about 100 ms of
/// those 300; one that parks between tries uses under 10 ms.
fn assert_waits_without_spinning() {
    let cpu = thread_cpu_time();
    green::sleep(Duration::from_millis(300));
    let cpu = thread_cpu_time() - cpu;
    assert!(cpu < Duration::from_millis(50), "{cpu:?} of CPU");
}

/// CPU time the calling OS thread has used.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) },
        0
    );
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[test]
fn plain_thread_send_to_a_full_receiver_sleeps_between_tries() -> io::Result<()> {
    green::patch();
    start_hub();
    let dir = tempfile::tempdir()?;
    let (receiver, sender) = datagram_sockets(dir.path())?;
    let path = dir.path().join("receiver.sock");
    let queued = fill_receiver(&sender, &path)?;
    // Made on a green context: green keeps it non-blocking underneath, and
    // the plain thread below gets blocking mode emulated.
    assert!(kernel_nonblocking(sender.as_raw_fd())?);
    let (tid_tx, tid_rx) = mpsc::channel();
    let plain = thread::spawn(move || {
        tid_tx.send(common::tid()).unwrap();
        let cpu = thread_cpu_time();
        let r = sender.send_to(b"last", &path);
        (r, thread_cpu_time() - cpu)
    });
    common::wait_until_sleeping(tid_rx.recv().unwrap());
    // The plain thread waits this long.
    green::sleep(Duration::from_millis(300));
    drain(&receiver, queued)?;
    let (r, cpu) = plain.join().unwrap();
    assert_eq!(r?, 4);
    // A thread that retried without pause would have used most of the
    // 300 ms; one that sleeps between tries uses next to nothing.
    assert!(cpu < Duration::from_millis(50), "{cpu:?} of CPU");
    Ok(())
}

/// A Unix stream listener at `dir/listener.sock` whose backlog (one
/// connection past `listen(1)`) is full of connections nobody accepted;
/// returns the connecting sockets, which must stay open.
fn full_listener(dir: &Path) -> io::Result<(UnixListener, Vec<OwnedFd>)> {
    let path = dir.join("listener.sock");
    let listener = UnixListener::bind(&path)?;
    // SAFETY: listen again, with a backlog of one, on a listening socket.
    if unsafe { libc::listen(listener.as_raw_fd(), 1) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (addr, len) = sockaddr_un(&path);
    let mut pending = Vec::new();
    loop {
        let fd = unix_stream_socket(libc::SOCK_NONBLOCK)?;
        // SAFETY: a valid sockaddr_un of `len` bytes.
        let rc = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            assert_eq!(e.raw_os_error(), Some(libc::EAGAIN), "{e}");
            break;
        }
        pending.push(fd);
    }
    assert!(
        !pending.is_empty(),
        "the listener took no connection at all"
    );
    Ok((listener, pending))
}

/// A new `AF_UNIX` stream socket with extra type `flags`.
fn unix_stream_socket(flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | flags,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd, owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `path` as a `sockaddr_un` and its length.
fn sockaddr_un(path: &Path) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: all-zero bytes are a valid sockaddr_un.
    let mut addr: libc::sockaddr_un = unsafe { mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    assert!(bytes.len() < addr.sun_path.len(), "path too long");
    for (d, &b) in addr.sun_path.iter_mut().zip(bytes) {
        *d = b as libc::c_char;
    }
    let len = mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1;
    (addr, len as libc::socklen_t)
}

#[test]
fn connect_to_a_full_unix_backlog_waits_green_until_the_listener_accepts() -> io::Result<()> {
    green::patch();
    let dir = tempfile::tempdir()?;
    let (listener, _pending) = full_listener(dir.path())?;
    let path = dir.path().join("listener.sock");
    let ticker = Ticker::start();
    let connected = Rc::new(Cell::new(false));
    let (c, p) = (connected.clone(), path.clone());
    let connect = green::spawn(move || {
        let r = UnixStream::connect(&p);
        c.set(true);
        r
    });
    ticker.wait_ticks(20);
    assert!(!connected.get(), "the connect did not wait for room");
    let _first = listener.accept()?;
    let stream = connect.wait()?;
    assert_eq!(stream.peer_addr()?.as_pathname(), Some(path.as_path()));
    Ok(())
}

#[test]
fn connect_to_a_full_unix_backlog_gives_eagain_when_so_sndtimeo_passes() -> io::Result<()> {
    green::patch();
    start_hub();
    let dir = tempfile::tempdir()?;
    let (_listener, _pending) = full_listener(dir.path())?;
    // Blocking for its owner; green makes it non-blocking underneath.
    let fd = unix_stream_socket(0)?;
    let timeout = Duration::from_millis(100);
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: timeout.as_micros() as libc::suseconds_t,
    };
    // SAFETY: a timeval option of its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    let ticker = Ticker::start();
    let (addr, len) = sockaddr_un(&dir.path().join("listener.sock"));
    let start = Instant::now();
    // SAFETY: a valid sockaddr_un of `len` bytes.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    let e = io::Error::last_os_error();
    let took = start.elapsed();
    assert_eq!(rc, -1);
    assert_eq!(e.raw_os_error(), Some(libc::EAGAIN), "{e}");
    // Margin: at least the timeout, and far less than 5 s.
    assert!(took >= timeout && took < Duration::from_secs(5), "{took:?}");
    assert!(ticker.ticks.get() > 0, "no other green thread ran");
    Ok(())
}

/// `recv(fd, buf, MSG_WAITALL)` as a `Result`.
fn recv_waitall(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: a valid buffer of its length.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_WAITALL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Spawns a green thread that writes `abcd`, waits until the receiver
/// (`reader`, the other end's fd) has taken it, then writes `efgh`: the
/// receive gets the halves in two calls.
fn write_in_halves(
    mut w: impl Write + 'static,
    reader: RawFd,
) -> green::GreenThread<io::Result<()>> {
    green::spawn(move || {
        w.write_all(b"abcd")?;
        until_received(reader)?;
        w.write_all(b"efgh")
    })
}

/// Parks (in 1 ms steps, 10 s at most) until nothing is left unread on
/// `fd`: its receiver has taken what was sent.
fn until_received(fd: RawFd) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut unread: libc::c_int = 0;
        // SAFETY: FIONREAD into an int.
        if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut unread) } < 0 {
            return Err(io::Error::last_os_error());
        }
        if unread == 0 {
            return Ok(());
        }
        assert!(
            Instant::now() < deadline,
            "the receiver did not take the bytes"
        );
        green::sleep(Duration::from_millis(1));
    }
}

#[test]
fn recv_with_msg_waitall_on_a_unix_stream_waits_for_the_full_length() -> io::Result<()> {
    green::patch();
    let (a, b) = UnixStream::pair()?;
    let fd = b.as_raw_fd();
    let reader = green::spawn(move || {
        let mut buf = [0; 8];
        recv_waitall(b.as_raw_fd(), &mut buf).map(|n| (n, buf))
    });
    let writer = write_in_halves(a, fd);
    let (n, buf) = reader.wait()?;
    writer.wait()?;
    assert_eq!(n, 8);
    assert_eq!(&buf, b"abcdefgh");
    Ok(())
}

#[test]
fn recv_with_msg_waitall_on_a_tcp_stream_waits_for_the_full_length() -> io::Result<()> {
    green::patch();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    let fd = server.as_raw_fd();
    let reader = green::spawn(move || {
        let mut buf = [0; 8];
        recv_waitall(server.as_raw_fd(), &mut buf).map(|n| (n, buf))
    });
    let writer = write_in_halves(client, fd);
    let (n, buf) = reader.wait()?;
    writer.wait()?;
    assert_eq!(n, 8);
    assert_eq!(&buf, b"abcdefgh");
    Ok(())
}

#[test]
fn recvmsg_with_msg_waitall_fills_every_iovec() -> io::Result<()> {
    green::patch();
    let (a, b) = UnixStream::pair()?;
    let fd = b.as_raw_fd();
    let reader = green::spawn(move || -> io::Result<_> {
        let (mut x, mut y) = ([0u8; 3], [0u8; 5]);
        let mut iov = [
            libc::iovec {
                iov_base: x.as_mut_ptr().cast(),
                iov_len: x.len(),
            },
            libc::iovec {
                iov_base: y.as_mut_ptr().cast(),
                iov_len: y.len(),
            },
        ];
        // SAFETY: all-zero bytes are a valid msghdr.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len() as _;
        // SAFETY: a msghdr with two valid iovecs.
        let n = unsafe { libc::recvmsg(b.as_raw_fd(), &mut msg, libc::MSG_WAITALL) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        // The caller's header still names its own iovecs.
        assert_eq!(msg.msg_iov, iov.as_mut_ptr());
        assert_eq!(msg.msg_iovlen as usize, 2);
        assert_eq!((msg.msg_controllen, msg.msg_flags), (0, 0));
        Ok((n as usize, x, y))
    });
    let writer = write_in_halves(a, fd);
    let (n, x, y) = reader.wait()?;
    writer.wait()?;
    assert_eq!(n, 8);
    assert_eq!((&x, &y), (b"abc", b"defgh"));
    Ok(())
}

#[test]
fn recv_with_msg_waitall_returns_what_came_before_the_peer_shut_down() -> io::Result<()> {
    green::patch();
    let (mut a, b) = UnixStream::pair()?;
    let fd = b.as_raw_fd();
    let reader = green::spawn(move || {
        let mut buf = [0; 8];
        recv_waitall(b.as_raw_fd(), &mut buf).map(|n| (n, buf))
    });
    let writer = green::spawn(move || -> io::Result<()> {
        a.write_all(b"abcd")?;
        until_received(fd)?;
        a.shutdown(Shutdown::Write)
    });
    let (n, buf) = reader.wait()?;
    writer.wait()?;
    assert_eq!(n, 4);
    assert_eq!(&buf[..4], b"abcd");
    Ok(())
}

#[test]
fn recv_with_msg_waitall_gives_eagain_when_so_rcvtimeo_passes_with_nothing() -> io::Result<()> {
    green::patch();
    let (_a, b) = UnixStream::pair()?;
    let timeout = Duration::from_millis(100);
    b.set_read_timeout(Some(timeout))?;
    let ticker = Ticker::start();
    let start = Instant::now();
    let e = recv_waitall(b.as_raw_fd(), &mut [0; 8]).unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.raw_os_error(), Some(libc::EAGAIN), "{e}");
    // Margin: at least the timeout, and far less than 5 s.
    assert!(took >= timeout && took < Duration::from_secs(5), "{took:?}");
    assert!(ticker.ticks.get() > 0, "no other green thread ran");
    Ok(())
}

#[test]
fn recv_with_msg_waitall_returns_what_came_when_so_rcvtimeo_passes() -> io::Result<()> {
    green::patch();
    let (mut a, b) = UnixStream::pair()?;
    let timeout = Duration::from_millis(100);
    b.set_read_timeout(Some(timeout))?;
    a.write_all(b"abcd")?;
    let start = Instant::now();
    let mut buf = [0; 8];
    let n = recv_waitall(b.as_raw_fd(), &mut buf)?;
    let took = start.elapsed();
    assert_eq!(n, 4);
    assert_eq!(&buf[..4], b"abcd");
    // Margin: at least the timeout, and far less than 5 s.
    assert!(took >= timeout && took < Duration::from_secs(5), "{took:?}");
    Ok(())
}

/// Bytes queued for reading on `fd`.
fn queued(fd: RawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes an int.
    assert_eq!(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) }, 0);
    n as usize
}

#[test]
fn kill_during_recv_with_msg_waitall_returns_what_came() -> io::Result<()> {
    green::patch();
    let (mut a, b) = UnixStream::pair()?;
    let fd = b.as_raw_fd();
    let outcome = Rc::new(Cell::new(None));
    let o = outcome.clone();
    let reader = green::spawn(move || {
        let mut buf = [0; 8];
        o.set(Some(
            recv_waitall(b.as_raw_fd(), &mut buf).map_err(|e| e.kind()),
        ));
        green::sleep(Duration::from_secs(3600));
    });
    green::yield_now();
    a.write_all(b"abcd")?;
    // The reader takes the four bytes and parks for the rest.
    while queued(fd) > 0 {
        green::sleep(Duration::from_millis(1));
    }
    assert!(
        outcome.get().is_none(),
        "the receive did not wait for the rest"
    );
    reader.kill();
    let payload = reader.join().expect_err("the green thread was killed");
    assert!(payload.is::<green::Killed>());
    assert_eq!(outcome.get(), Some(Ok(4)));
    Ok(())
}

#[test]
fn recv_with_msg_waitall_on_a_plain_thread_waits_for_the_full_length() -> io::Result<()> {
    green::patch();
    start_hub();
    let (mut a, mut b) = UnixStream::pair()?;
    // A read on this green context makes green manage `b`.
    a.write_all(b"x")?;
    b.read_exact(&mut [0])?;
    assert!(kernel_nonblocking(b.as_raw_fd())?);
    let fd = b.as_raw_fd();
    let (tid_tx, tid_rx) = mpsc::channel();
    let plain = thread::spawn(move || {
        tid_tx.send(common::tid()).unwrap();
        let mut buf = [0; 8];
        recv_waitall(b.as_raw_fd(), &mut buf).map(|n| (n, buf))
    });
    // It waits in the receive.
    common::wait_until_sleeping(tid_rx.recv().unwrap());
    write_in_halves(a, fd).wait()?;
    let (n, buf) = plain.join().unwrap()?;
    assert_eq!(n, 8);
    assert_eq!(&buf, b"abcdefgh");
    Ok(())
}

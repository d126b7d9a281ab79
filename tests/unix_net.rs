//! `green::os::unix::net`: std's Unix sockets, parking only the calling
//! green thread. Each behaviour is checked against std's on the same
//! operation where std can run it without blocking forever.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::ManuallyDrop;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use green::os::unix::net::{SocketAddr, UnixDatagram, UnixListener, UnixStream};

const MARGIN: Duration = Duration::from_secs(5);

fn kind<T>(r: io::Result<T>) -> io::ErrorKind {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.kind(),
    }
}

/// A fresh abstract name, unique in this process and across runs.
fn abstract_addr(tag: &str) -> io::Result<SocketAddr> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = format!("green-test-{}-{tag}-{n}", std::process::id());
    SocketAddr::from_abstract_name(name.as_bytes())
}

/// Whether `fd`'s open file description has `O_NONBLOCK` set.
fn fd_nonblocking(fd: &impl AsRawFd) -> bool {
    // SAFETY: F_GETFL on an open fd takes no argument.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0, "fcntl: {}", io::Error::last_os_error());
    flags & libc::O_NONBLOCK != 0
}

/// One non-blocking connect to `path` with libc, so that a full backlog
/// gives `WouldBlock` here instead of blocking the test.
fn raw_connect_nonblocking(path: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: a plain syscall; the fd is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and nobody else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero bytes are a valid sockaddr_un.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    assert!(bytes.len() < addr.sun_path.len());
    for (d, &b) in addr.sun_path.iter_mut().zip(bytes) {
        *d = b as libc::c_char;
    }
    // SAFETY: `addr` is a valid sockaddr_un of the size passed.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// A listener at `path` with the smallest backlog, filled: the next connect
/// gets `EAGAIN` until one connection is accepted. Returns the fillers,
/// which must stay open.
fn full_listener(path: &Path) -> io::Result<(UnixListener, Vec<OwnedFd>)> {
    let listener = UnixListener::bind(path)?;
    // Listening again only changes the backlog: 0 lets one connection wait.
    // SAFETY: a plain syscall on a socket we own.
    if unsafe { libc::listen(listener.as_raw_fd(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fillers = Vec::new();
    loop {
        match raw_connect_nonblocking(path) {
            Ok(fd) => fillers.push(fd),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
        assert!(fillers.len() < 100, "the backlog never filled");
    }
    Ok((listener, fillers))
}

/// CPU time used by the calling OS thread, where its hub runs.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `f`, which waits about 300 ms, and asserts that the wait parked
/// instead of spinning: a spinning retry loop burns most of the wall time
/// even on a loaded machine, a parked one a few hundred microseconds.
fn assert_parks<T>(f: impl FnOnce() -> T) -> T {
    let (cpu, wall) = (thread_cpu_time(), Instant::now());
    let r = f();
    let (cpu, wall) = (thread_cpu_time() - cpu, wall.elapsed());
    assert!(
        cpu < Duration::from_millis(30),
        "used {cpu:?} of CPU in {wall:?}: the wait spins"
    );
    r
}

// Types are send and sync: checked when this file compiles.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<UnixStream>();
    assert_send_sync::<UnixListener>();
    assert_send_sync::<UnixDatagram>();
    assert_send_sync::<green::os::unix::net::Incoming<'_>>();
};

#[test]
fn std_unix_items_are_reexported_next_to_green_net() {
    // The glob re-export of std::os::unix and the green `net` coexist.
    use green::os::unix::fs::PermissionsExt;
    use green::os::unix::process::ExitStatusExt;
    let mode = std::fs::Permissions::from_mode(0o640).mode();
    assert_eq!(mode & 0o777, 0o640);
    assert_eq!(std::process::ExitStatus::from_raw(0).code(), Some(0));
    let _: fn() -> io::Result<(UnixStream, UnixStream)> = green::os::unix::net::UnixStream::pair;
    let _: Option<green::os::fd::RawFd> = None;
}

// ---- UnixStream ----

#[test]
fn pair_round_trip() -> io::Result<()> {
    let (mut a, mut b) = UnixStream::pair()?;
    a.write_all(b"ping")?;
    let mut buf = [0; 4];
    b.read_exact(&mut buf)?;
    assert_eq!(&buf, b"ping");
    b.write_all(b"pong")?;
    a.read_exact(&mut buf)?;
    assert_eq!(&buf, b"pong");
    Ok(())
}

#[test]
fn read_parks_until_peer_writes() -> io::Result<()> {
    let (mut a, b) = UnixStream::pair()?;
    let reader = green::spawn(move || -> io::Result<Vec<u8>> {
        let mut buf = [0; 5];
        (&b).read_exact(&mut buf)?;
        Ok(buf.to_vec())
    });
    green::yield_now();
    assert!(
        !reader.is_finished(),
        "the reader parks on the empty socket"
    );
    a.write_all(b"hello")?;
    assert_eq!(reader.wait()?, b"hello");
    Ok(())
}

#[test]
fn full_duplex_read_and_write_on_one_socket() -> io::Result<()> {
    // Each side writes 1 MiB while reading 1 MiB: neither fits the socket
    // buffers, so both directions park and resume many times.
    const N: usize = 1 << 20;
    let (a, b) = UnixStream::pair()?;
    let (a2, b2) = (a.try_clone()?, b.try_clone()?);
    let w1 = green::spawn(move || (&a).write_all(&vec![1u8; N]));
    let w2 = green::spawn(move || (&b).write_all(&vec![2u8; N]));
    let r1 = green::spawn(move || -> io::Result<Vec<u8>> {
        let mut v = vec![0; N];
        (&a2).read_exact(&mut v)?;
        Ok(v)
    });
    let r2 = green::spawn(move || -> io::Result<Vec<u8>> {
        let mut v = vec![0; N];
        (&b2).read_exact(&mut v)?;
        Ok(v)
    });
    w1.wait()?;
    w2.wait()?;
    assert!(r1.wait()?.iter().all(|&x| x == 2));
    assert!(r2.wait()?.iter().all(|&x| x == 1));
    Ok(())
}

#[test]
fn vectored_read_and_write() -> io::Result<()> {
    let (mut a, mut b) = UnixStream::pair()?;
    let n = a.write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cde")])?;
    assert_eq!(n, 5);
    let (mut x, mut y) = ([0; 2], [0; 3]);
    let n = b.read_vectored(&mut [IoSliceMut::new(&mut x), IoSliceMut::new(&mut y)])?;
    assert_eq!(n, 5);
    assert_eq!((&x, &y), (b"ab", b"cde"));
    Ok(())
}

#[test]
fn connect_and_accept_report_addresses_like_std() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sock");
    let listener = UnixListener::bind(&path)?;
    assert_eq!(listener.local_addr()?.as_pathname(), Some(path.as_path()));
    let client = UnixStream::connect(&path)?;
    let (server, from) = listener.accept()?;
    assert!(from.is_unnamed());
    assert_eq!(client.peer_addr()?.as_pathname(), Some(path.as_path()));
    assert!(client.local_addr()?.is_unnamed());
    assert_eq!(server.local_addr()?.as_pathname(), Some(path.as_path()));
    assert!(server.peer_addr()?.is_unnamed());
    // A std client and a std listener see the same.
    let std_client = std::os::unix::net::UnixStream::connect(&path)?;
    let (_server2, from2) = listener.accept()?;
    assert!(from2.is_unnamed());
    assert_eq!(std_client.peer_addr()?.as_pathname(), Some(path.as_path()));
    assert!(std_client.local_addr()?.is_unnamed());
    let std_path = dir.path().join("std");
    let std_listener = std::os::unix::net::UnixListener::bind(&std_path)?;
    let _c = UnixStream::connect(&std_path)?;
    let (std_server, std_from) = std_listener.accept()?;
    assert!(std_from.is_unnamed());
    assert_eq!(
        std_server.local_addr()?.as_pathname(),
        Some(std_path.as_path())
    );
    Ok(())
}

#[test]
fn accepted_stream_is_green_and_nonblocking_underneath() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sock");
    let listener = UnixListener::bind(&path)?;
    let _client = UnixStream::connect(&path)?;
    let (server, _) = listener.accept()?;
    assert!(fd_nonblocking(&server));
    server.set_read_timeout(Some(Duration::from_millis(50)))?;
    assert_eq!(kind((&server).read(&mut [0; 4])), io::ErrorKind::WouldBlock);
    Ok(())
}

#[test]
fn connect_missing_path_is_not_found_like_std() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("nobody");
    assert_eq!(kind(UnixStream::connect(&path)), io::ErrorKind::NotFound);
    assert_eq!(
        kind(std::os::unix::net::UnixStream::connect(&path)),
        io::ErrorKind::NotFound
    );
    Ok(())
}

#[test]
fn connect_without_listener_is_refused_like_std() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sock");
    drop(UnixListener::bind(&path)?); // the socket file stays
    assert_eq!(
        kind(UnixStream::connect(&path)),
        io::ErrorKind::ConnectionRefused
    );
    assert_eq!(
        kind(std::os::unix::net::UnixStream::connect(&path)),
        io::ErrorKind::ConnectionRefused
    );
    Ok(())
}

#[test]
fn connect_bad_paths_are_invalid_input_like_std() {
    let long = PathBuf::from("/tmp/".to_string() + &"x".repeat(200));
    let nul = Path::new("/tmp/a\0b");
    for p in [long.as_path(), nul] {
        assert_eq!(kind(UnixStream::connect(p)), io::ErrorKind::InvalidInput);
        assert_eq!(
            kind(std::os::unix::net::UnixStream::connect(p)),
            io::ErrorKind::InvalidInput
        );
    }
}

#[test]
fn connect_addr_unnamed_is_invalid_input_like_std() -> io::Result<()> {
    let unnamed = std::os::unix::net::UnixDatagram::unbound()?.local_addr()?;
    assert!(unnamed.is_unnamed());
    assert_eq!(
        kind(UnixStream::connect_addr(&unnamed)),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(std::os::unix::net::UnixStream::connect_addr(&unnamed)),
        io::ErrorKind::InvalidInput
    );
    Ok(())
}

#[test]
fn bind_existing_path_is_addr_in_use_like_std() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sock");
    let _l = UnixListener::bind(&path)?;
    assert_eq!(kind(UnixListener::bind(&path)), io::ErrorKind::AddrInUse);
    assert_eq!(
        kind(std::os::unix::net::UnixListener::bind(&path)),
        io::ErrorKind::AddrInUse
    );
    Ok(())
}

#[test]
fn abstract_address_connect_and_accept() -> io::Result<()> {
    let addr = abstract_addr("stream")?;
    let listener = UnixListener::bind_addr(&addr)?;
    let name = addr.as_abstract_name().unwrap();
    assert_eq!(listener.local_addr()?.as_abstract_name(), Some(name));
    let server = green::spawn(move || -> io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.write_all(b"abstract")
    });
    let mut c = UnixStream::connect_addr(&addr)?;
    assert_eq!(c.peer_addr()?.as_abstract_name(), Some(name));
    let mut got = String::new();
    c.read_to_string(&mut got)?;
    assert_eq!(got, "abstract");
    server.wait()
}

#[test]
fn connect_addr_with_pathname_address() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let addr = SocketAddr::from_pathname(dir.path().join("sock"))?;
    let listener = UnixListener::bind_addr(&addr)?;
    let c = UnixStream::connect_addr(&listener.local_addr()?)?;
    assert_eq!(c.peer_addr()?.as_pathname(), addr.as_pathname());
    Ok(())
}

#[test]
fn read_timeout_gives_would_block_like_std() -> io::Result<()> {
    let t = Duration::from_millis(50);
    let (a, _b) = UnixStream::pair()?;
    a.set_read_timeout(Some(t))?;
    assert_eq!(a.read_timeout()?, Some(t));
    let start = Instant::now();
    assert_eq!(kind((&a).read(&mut [0; 8])), io::ErrorKind::WouldBlock);
    let waited = start.elapsed();
    assert!(waited >= t && waited < MARGIN, "waited {waited:?}");

    let (s, _t) = std::os::unix::net::UnixStream::pair()?;
    s.set_read_timeout(Some(t))?;
    assert_eq!(kind((&s).read(&mut [0; 8])), io::ErrorKind::WouldBlock);
    Ok(())
}

#[test]
fn write_timeout_on_full_socket_gives_would_block() -> io::Result<()> {
    let t = Duration::from_millis(50);
    let (a, _b) = UnixStream::pair()?;
    a.set_write_timeout(Some(t))?;
    assert_eq!(a.write_timeout()?, Some(t));
    let chunk = vec![0u8; 64 * 1024];
    let start = Instant::now();
    let err = loop {
        if let Err(e) = (&a).write_all(&chunk) {
            break e;
        }
    };
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    let waited = start.elapsed();
    assert!(waited >= t && waited < MARGIN, "waited {waited:?}");

    let (s, _t) = std::os::unix::net::UnixStream::pair()?;
    s.set_write_timeout(Some(t))?;
    let err = loop {
        if let Err(e) = (&s).write_all(&chunk) {
            break e;
        }
    };
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    Ok(())
}

#[test]
fn zero_timeout_is_invalid_input_like_std() -> io::Result<()> {
    let (a, _b) = UnixStream::pair()?;
    let (s, _t) = std::os::unix::net::UnixStream::pair()?;
    let z = Some(Duration::ZERO);
    assert_eq!(kind(a.set_read_timeout(z)), io::ErrorKind::InvalidInput);
    assert_eq!(kind(a.set_write_timeout(z)), io::ErrorKind::InvalidInput);
    assert_eq!(kind(s.set_read_timeout(z)), io::ErrorKind::InvalidInput);
    assert_eq!(kind(s.set_write_timeout(z)), io::ErrorKind::InvalidInput);
    Ok(())
}

#[test]
fn set_nonblocking_read_gives_would_block_like_std() -> io::Result<()> {
    let (a, _b) = UnixStream::pair()?;
    a.set_nonblocking(true)?;
    assert_eq!(kind((&a).read(&mut [0; 8])), io::ErrorKind::WouldBlock);
    a.set_nonblocking(false)?;
    a.set_read_timeout(Some(Duration::from_millis(20)))?;
    assert_eq!(kind((&a).read(&mut [0; 8])), io::ErrorKind::WouldBlock);

    let (s, _t) = std::os::unix::net::UnixStream::pair()?;
    s.set_nonblocking(true)?;
    assert_eq!(kind((&s).read(&mut [0; 8])), io::ErrorKind::WouldBlock);
    Ok(())
}

#[test]
fn nonblocking_accept_gives_would_block_like_std() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let listener = UnixListener::bind(dir.path().join("green"))?;
    listener.set_nonblocking(true)?;
    assert_eq!(kind(listener.accept()), io::ErrorKind::WouldBlock);
    let std_listener = std::os::unix::net::UnixListener::bind(dir.path().join("std"))?;
    std_listener.set_nonblocking(true)?;
    assert_eq!(kind(std_listener.accept()), io::ErrorKind::WouldBlock);
    Ok(())
}

#[test]
fn eof_after_peer_drops() -> io::Result<()> {
    let (a, mut b) = UnixStream::pair()?;
    let reader = green::spawn(move || {
        let mut v = Vec::new();
        b.read_to_end(&mut v).map(|_| v)
    });
    green::yield_now();
    (&a).write_all(b"last")?;
    drop(a);
    assert_eq!(reader.wait()?, b"last");
    Ok(())
}

#[test]
fn write_after_peer_drops_is_broken_pipe_like_std() -> io::Result<()> {
    let (a, b) = UnixStream::pair()?;
    drop(b);
    assert_eq!(kind((&a).write(b"x")), io::ErrorKind::BrokenPipe);
    let (s, t) = std::os::unix::net::UnixStream::pair()?;
    drop(t);
    assert_eq!(kind((&s).write(b"x")), io::ErrorKind::BrokenPipe);
    Ok(())
}

#[test]
fn shutdown_read_wakes_parked_reader_with_eof() -> io::Result<()> {
    let (a, _b) = UnixStream::pair()?;
    let a2 = a.try_clone()?;
    let reader = green::spawn(move || (&a2).read(&mut [0; 8]));
    green::yield_now();
    assert!(!reader.is_finished());
    a.shutdown(Shutdown::Read)?;
    assert_eq!(reader.wait()?, 0);
    Ok(())
}

#[test]
fn shutdown_write_then_write_is_broken_pipe_like_std() -> io::Result<()> {
    let (a, _b) = UnixStream::pair()?;
    a.shutdown(Shutdown::Write)?;
    assert_eq!(kind((&a).write(b"x")), io::ErrorKind::BrokenPipe);
    let (s, _t) = std::os::unix::net::UnixStream::pair()?;
    s.shutdown(Shutdown::Write)?;
    assert_eq!(kind((&s).write(b"x")), io::ErrorKind::BrokenPipe);
    Ok(())
}

#[test]
fn close_while_reading_wakes_reader_with_error() -> io::Result<()> {
    let (a, _b) = UnixStream::pair()?;
    let fd = a.as_raw_fd();
    let reader = green::spawn(move || {
        // `a` must not close the fd: the alias below does.
        let a = ManuallyDrop::new(a);
        (&*a).read(&mut [0; 8])
    });
    green::yield_now(); // the reader parks on fd
    assert!(!reader.is_finished());
    // SAFETY: `a` above never closes `fd`; the alias owns it from here.
    drop(unsafe { UnixStream::from_raw_fd(fd) });
    assert_eq!(kind(reader.wait()), io::ErrorKind::ConnectionAborted);
    Ok(())
}

#[test]
fn close_while_accepting_wakes_acceptor_with_error() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let listener = UnixListener::bind(dir.path().join("sock"))?;
    let fd = listener.as_raw_fd();
    let acceptor = green::spawn(move || {
        let l = ManuallyDrop::new(listener);
        l.accept().map(|_| ())
    });
    green::yield_now();
    assert!(!acceptor.is_finished());
    // SAFETY: the listener above never closes `fd`; the alias owns it.
    drop(unsafe { UnixListener::from_raw_fd(fd) });
    assert_eq!(kind(acceptor.wait()), io::ErrorKind::ConnectionAborted);
    Ok(())
}

#[test]
fn try_clone_shares_socket_but_not_timeouts() -> io::Result<()> {
    let (a, mut b) = UnixStream::pair()?;
    a.set_read_timeout(Some(Duration::from_secs(7)))?;
    let c = a.try_clone()?;
    assert_eq!(c.read_timeout()?, Some(Duration::from_secs(7)));
    c.set_read_timeout(None)?;
    assert_eq!(a.read_timeout()?, Some(Duration::from_secs(7)));
    b.write_all(b"xy")?;
    let mut one = [0; 1];
    (&a).read_exact(&mut one)?;
    (&c).read_exact(&mut one)?;
    assert_eq!(&one, b"y");
    Ok(())
}

#[test]
fn green_to_green_across_hubs() -> io::Result<()> {
    let (a, b) = UnixStream::pair()?;
    let other = std::thread::spawn(move || -> io::Result<()> {
        let echo = green::spawn(move || -> io::Result<()> {
            let mut buf = [0; 5];
            (&b).read_exact(&mut buf)?;
            (&b).write_all(&buf)
        });
        echo.wait()
    });
    let client = green::spawn(move || -> io::Result<Vec<u8>> {
        (&a).write_all(b"hubs!")?;
        let mut buf = [0; 5];
        (&a).read_exact(&mut buf)?;
        Ok(buf.to_vec())
    });
    assert_eq!(client.wait()?, b"hubs!");
    other.join().unwrap()
}

#[test]
fn green_to_plain_os_thread() -> io::Result<()> {
    let (a, b) = UnixStream::pair()?;
    let b = b.into_std()?; // blocking again, for a plain thread
    let plain = std::thread::spawn(move || -> io::Result<()> {
        let mut buf = [0; 4];
        (&b).read_exact(&mut buf)?;
        (&b).write_all(&buf)
    });
    let client = green::spawn(move || -> io::Result<Vec<u8>> {
        (&a).write_all(b"ping")?;
        let mut buf = [0; 4];
        (&a).read_exact(&mut buf)?;
        Ok(buf.to_vec())
    });
    assert_eq!(client.wait()?, b"ping");
    plain.join().unwrap()
}

#[test]
fn from_std_and_into_std_keep_timeouts_and_restore_blocking_mode() -> io::Result<()> {
    let (s, _t) = std::os::unix::net::UnixStream::pair()?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    let g = UnixStream::from_std(s)?;
    assert!(fd_nonblocking(&g));
    assert_eq!(g.read_timeout()?, Some(Duration::from_secs(3)));
    g.set_write_timeout(Some(Duration::from_secs(4)))?;
    let s = g.into_std()?;
    assert!(!fd_nonblocking(&s));
    assert_eq!(s.read_timeout()?, Some(Duration::from_secs(3)));
    assert_eq!(s.write_timeout()?, Some(Duration::from_secs(4)));

    let g = UnixStream::from_std(s)?;
    g.set_nonblocking(true)?;
    assert!(
        fd_nonblocking(&g.into_std()?),
        "the user asked for non-blocking"
    );
    Ok(())
}

#[test]
fn fd_conversions_round_trip() -> io::Result<()> {
    let (a, mut b) = UnixStream::pair()?;
    let fd: OwnedFd = a.into();
    let a = UnixStream::from(fd);
    let raw = a.into_raw_fd();
    // SAFETY: `raw` came from into_raw_fd and is owned by nobody else.
    let mut a = unsafe { UnixStream::from_raw_fd(raw) };
    a.write_all(b"ok")?;
    let mut buf = [0; 2];
    b.read_exact(&mut buf)?;
    assert_eq!(&buf, b"ok");
    Ok(())
}

#[test]
fn debug_is_std_debug() -> io::Result<()> {
    let (a, _b) = UnixStream::pair()?;
    let d = format!("{a:?}");
    assert!(d.starts_with("UnixStream"), "{d}");
    assert!(d.contains(&a.as_raw_fd().to_string()), "{d}");
    let l = UnixListener::bind_addr(&abstract_addr("debug")?)?;
    assert!(format!("{l:?}").starts_with("UnixListener"));
    let u = UnixDatagram::unbound()?;
    assert!(format!("{u:?}").starts_with("UnixDatagram"));
    Ok(())
}

// ---- UnixListener ----

#[test]
fn incoming_yields_each_connection() -> io::Result<()> {
    let addr = abstract_addr("incoming")?;
    let listener = UnixListener::bind_addr(&addr)?;
    let clients: Vec<_> = (0..3u8)
        .map(|i| {
            let addr = addr.clone();
            green::spawn(move || -> io::Result<()> {
                let mut s = UnixStream::connect_addr(&addr)?;
                s.write_all(&[i])
            })
        })
        .collect();
    let mut got = Vec::new();
    for s in listener.incoming().take(3) {
        let mut b = [0; 1];
        s?.read_exact(&mut b)?;
        got.push(b[0]);
    }
    for c in clients {
        c.wait()?;
    }
    got.sort();
    assert_eq!(got, [0, 1, 2]);
    // `&UnixListener` is iterable as std's is.
    let _c = UnixStream::connect_addr(&addr)?;
    assert!((&listener).into_iter().next().unwrap().is_ok());
    Ok(())
}

#[test]
fn several_acceptors_are_served_in_turn() -> io::Result<()> {
    let addr = abstract_addr("acceptors")?;
    let listener = std::rc::Rc::new(UnixListener::bind_addr(&addr)?);
    let acceptors: Vec<_> = (0..3)
        .map(|_| {
            let l = listener.clone();
            green::spawn(move || l.accept().map(|_| ()))
        })
        .collect();
    green::yield_now(); // all three park
    let _clients: Vec<_> = (0..3)
        .map(|_| UnixStream::connect_addr(&addr))
        .collect::<io::Result<_>>()?;
    for a in acceptors {
        a.wait()?;
    }
    Ok(())
}

#[test]
fn listener_try_clone_accepts_on_same_socket() -> io::Result<()> {
    let addr = abstract_addr("clone")?;
    let listener = UnixListener::bind_addr(&addr)?;
    let clone = listener.try_clone()?;
    let _c = UnixStream::connect_addr(&addr)?;
    clone.accept()?;
    assert!(listener.take_error()?.is_none());
    Ok(())
}

#[test]
fn listener_into_std_restores_blocking_mode() -> io::Result<()> {
    let listener = UnixListener::bind_addr(&abstract_addr("std")?)?;
    assert!(fd_nonblocking(&listener));
    let std_listener = listener.into_std()?;
    assert!(!fd_nonblocking(&std_listener));
    let listener = UnixListener::from_std(std_listener)?;
    assert!(fd_nonblocking(&listener));
    Ok(())
}

#[test]
fn connect_to_full_backlog_does_not_block_the_hub() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sock");
    let (listener, fillers) = full_listener(&path)?;
    let p = path.clone();
    let connecting = green::spawn(move || UnixStream::connect(p));
    // The hub keeps running other green threads while the connect waits.
    let ticks = green::spawn(|| {
        for _ in 0..5 {
            green::sleep(Duration::from_millis(5));
        }
    });
    ticks.wait();
    assert!(!connecting.is_finished(), "the backlog is still full");
    // Accepting one queued connection makes room.
    let (_first, _) = listener.accept()?;
    let start = Instant::now();
    let s = connecting.wait()?;
    assert!(start.elapsed() < MARGIN);
    assert_eq!(s.peer_addr()?.as_pathname(), Some(path.as_path()));
    drop(fillers);
    Ok(())
}

#[test]
fn connect_to_full_backlog_is_cut_by_timeout() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sock");
    let (_listener, _fillers) = full_listener(&path)?;
    let t = Duration::from_millis(50);
    let start = Instant::now();
    let r = green::with_timeout(t, || UnixStream::connect(&path));
    let waited = start.elapsed();
    assert!(r.is_err(), "the connect cannot complete");
    assert!(waited >= t && waited < MARGIN, "waited {waited:?}");
    Ok(())
}

#[test]
fn connect_to_full_backlog_parks_between_tries() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sock");
    let (_listener, _fillers) = full_listener(&path)?;
    let r = assert_parks(|| {
        green::with_timeout(Duration::from_millis(300), || UnixStream::connect(&path))
    });
    assert!(r.is_err(), "the connect cannot complete");
    Ok(())
}

// ---- UnixDatagram ----

#[test]
fn datagram_pair_send_and_recv() -> io::Result<()> {
    let (a, b) = UnixDatagram::pair()?;
    assert_eq!(a.send(b"one")?, 3);
    assert_eq!(a.send(b"two")?, 3);
    let mut buf = [0; 8];
    let n = b.recv(&mut buf)?;
    assert_eq!(&buf[..n], b"one");
    let (n, from) = b.recv_from(&mut buf)?;
    assert_eq!(&buf[..n], b"two");
    assert!(from.is_unnamed());
    Ok(())
}

#[test]
fn datagram_recv_parks_until_sent() -> io::Result<()> {
    let (a, b) = UnixDatagram::pair()?;
    let receiver = green::spawn(move || -> io::Result<Vec<u8>> {
        let mut buf = [0; 16];
        let n = b.recv(&mut buf)?;
        Ok(buf[..n].to_vec())
    });
    green::yield_now();
    assert!(!receiver.is_finished());
    a.send(b"wake")?;
    assert_eq!(receiver.wait()?, b"wake");
    Ok(())
}

#[test]
fn datagram_send_to_and_recv_from_pathnames() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let (sp, cp) = (dir.path().join("server"), dir.path().join("client"));
    let server = UnixDatagram::bind(&sp)?;
    let client = UnixDatagram::bind(&cp)?;
    assert_eq!(client.send_to(b"hi", &sp)?, 2);
    let mut buf = [0; 8];
    let (n, from) = server.recv_from(&mut buf)?;
    assert_eq!(&buf[..n], b"hi");
    assert_eq!(from.as_pathname(), Some(cp.as_path()));
    server.send_to_addr(b"back", &from)?;
    let n = client.recv(&mut buf)?;
    assert_eq!(&buf[..n], b"back");
    Ok(())
}

#[test]
fn datagram_connect_send_and_peer_addr() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let sp = dir.path().join("server");
    let server = UnixDatagram::bind(&sp)?;
    let client = UnixDatagram::unbound()?;
    assert_eq!(kind(client.peer_addr()), io::ErrorKind::NotConnected);
    client.connect(&sp)?;
    assert_eq!(client.peer_addr()?.as_pathname(), Some(sp.as_path()));
    client.send(b"c")?;
    let mut buf = [0; 1];
    assert_eq!(server.recv(&mut buf)?, 1);
    Ok(())
}

#[test]
fn datagram_abstract_addresses() -> io::Result<()> {
    let (sa, ca) = (abstract_addr("dgram-s")?, abstract_addr("dgram-c")?);
    let server = UnixDatagram::bind_addr(&sa)?;
    let client = UnixDatagram::bind_addr(&ca)?;
    client.send_to_addr(b"abs", &sa)?;
    let mut buf = [0; 8];
    let (n, from) = server.recv_from(&mut buf)?;
    assert_eq!(&buf[..n], b"abs");
    assert_eq!(from.as_abstract_name(), ca.as_abstract_name());
    let c2 = UnixDatagram::unbound()?;
    c2.connect_addr(&sa)?;
    assert_eq!(c2.peer_addr()?.as_abstract_name(), sa.as_abstract_name());
    Ok(())
}

#[test]
fn datagram_send_errors_like_std() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("nobody");
    let g = UnixDatagram::unbound()?;
    let s = std::os::unix::net::UnixDatagram::unbound()?;
    assert_eq!(kind(g.send(b"x")), kind(s.send(b"x")));
    assert_eq!(kind(g.send(b"x")), io::ErrorKind::NotConnected);
    assert_eq!(kind(g.send_to(b"x", &missing)), io::ErrorKind::NotFound);
    assert_eq!(kind(s.send_to(b"x", &missing)), io::ErrorKind::NotFound);
    drop(UnixDatagram::bind(dir.path().join("gone"))?);
    let gone = dir.path().join("gone");
    assert_eq!(kind(g.send_to(b"x", &gone)), kind(s.send_to(b"x", &gone)));
    assert_eq!(
        kind(g.send_to(b"x", "/tmp/a\0b")),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(kind(g.connect(&missing)), kind(s.connect(&missing)));
    Ok(())
}

#[test]
fn datagram_read_timeout_gives_would_block_like_std() -> io::Result<()> {
    let t = Duration::from_millis(50);
    let g = UnixDatagram::unbound()?;
    g.set_read_timeout(Some(t))?;
    assert_eq!(g.read_timeout()?, Some(t));
    let start = Instant::now();
    assert_eq!(kind(g.recv(&mut [0; 8])), io::ErrorKind::WouldBlock);
    let waited = start.elapsed();
    assert!(waited >= t && waited < MARGIN, "waited {waited:?}");
    let s = std::os::unix::net::UnixDatagram::unbound()?;
    s.set_read_timeout(Some(t))?;
    assert_eq!(kind(s.recv(&mut [0; 8])), io::ErrorKind::WouldBlock);
    assert_eq!(
        kind(g.set_write_timeout(Some(Duration::ZERO))),
        kind(s.set_write_timeout(Some(Duration::ZERO)))
    );
    Ok(())
}

#[test]
fn datagram_set_nonblocking_recv_gives_would_block_like_std() -> io::Result<()> {
    let g = UnixDatagram::unbound()?;
    g.set_nonblocking(true)?;
    assert_eq!(kind(g.recv_from(&mut [0; 8])), io::ErrorKind::WouldBlock);
    let s = std::os::unix::net::UnixDatagram::unbound()?;
    s.set_nonblocking(true)?;
    assert_eq!(kind(s.recv_from(&mut [0; 8])), io::ErrorKind::WouldBlock);
    Ok(())
}

#[test]
fn datagram_shutdown_read_wakes_parked_receiver() -> io::Result<()> {
    let (a, _b) = UnixDatagram::pair()?;
    let a2 = a.try_clone()?;
    let receiver = green::spawn(move || a2.recv(&mut [0; 8]));
    green::yield_now();
    assert!(!receiver.is_finished());
    a.shutdown(Shutdown::Read)?;
    assert_eq!(receiver.wait()?, 0);
    assert!(a.take_error()?.is_none());
    Ok(())
}

#[test]
fn datagram_recv_after_shutdown_read_is_eof_like_std() -> io::Result<()> {
    let (g, _g2) = UnixDatagram::pair()?;
    let (s, _s2) = std::os::unix::net::UnixDatagram::pair()?;
    g.shutdown(Shutdown::Read)?;
    s.shutdown(Shutdown::Read)?;
    let mut buf = [0; 8];
    assert_eq!(g.recv(&mut buf)?, s.recv(&mut buf)?);
    let (gn, gfrom) = g.recv_from(&mut buf)?;
    let (sn, sfrom) = s.recv_from(&mut buf)?;
    assert_eq!((gn, gfrom.is_unnamed()), (sn, sfrom.is_unnamed()));
    assert_eq!((gn, gfrom.is_unnamed()), (0, true));
    // Non-blocking, both give WouldBlock.
    g.set_nonblocking(true)?;
    s.set_nonblocking(true)?;
    assert_eq!(kind(g.recv(&mut buf)), io::ErrorKind::WouldBlock);
    assert_eq!(kind(s.recv(&mut buf)), io::ErrorKind::WouldBlock);
    Ok(())
}

/// A datagram socket at `path` whose receive queue is full, filled by
/// another sender, so that the next `send_to` gets `EAGAIN`.
fn full_receiver(path: &Path) -> io::Result<(UnixDatagram, std::os::unix::net::UnixDatagram)> {
    let receiver = UnixDatagram::bind(path)?;
    let filler = std::os::unix::net::UnixDatagram::unbound()?;
    filler.set_nonblocking(true)?;
    let mut sent = 0;
    loop {
        match filler.send_to(b"f", path) {
            Ok(_) => sent += 1,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
        assert!(sent < 100_000, "the queue never filled");
    }
    Ok((receiver, filler))
}

#[test]
fn datagram_send_to_full_receiver_waits_without_blocking_the_hub() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sink");
    let (receiver, _filler) = full_receiver(&path)?;
    let p = path.clone();
    let sender = green::spawn(move || -> io::Result<usize> {
        let s = UnixDatagram::unbound()?;
        // Guards against a hang only: room comes within the backoff.
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        s.send_to(b"late", p)
    });
    let ticks = green::spawn(|| {
        for _ in 0..5 {
            green::sleep(Duration::from_millis(5));
        }
    });
    ticks.wait();
    assert!(!sender.is_finished(), "the receiver's queue is still full");
    // Draining one of the filler's datagrams makes room; nothing wakes the
    // sender's own socket.
    let mut buf = [0; 8];
    receiver.recv(&mut buf)?;
    assert_eq!(sender.wait()?, 4);
    Ok(())
}

#[test]
fn datagram_send_to_full_receiver_write_timeout_gives_would_block() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sink");
    let (_receiver, _filler) = full_receiver(&path)?;
    let t = Duration::from_millis(50);
    let s = UnixDatagram::unbound()?;
    s.set_write_timeout(Some(t))?;
    let start = Instant::now();
    assert_eq!(kind(s.send_to(b"x", &path)), io::ErrorKind::WouldBlock);
    let waited = start.elapsed();
    assert!(waited >= t && waited < MARGIN, "waited {waited:?}");
    s.set_nonblocking(true)?;
    assert_eq!(kind(s.send_to(b"x", &path)), io::ErrorKind::WouldBlock);
    Ok(())
}

#[test]
fn datagram_send_to_full_receiver_parks_between_tries() -> io::Result<()> {
    // Each failed send raises a write edge on the sender's own socket:
    // waiting for edges would spin.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sink");
    let (_receiver, _filler) = full_receiver(&path)?;
    let s = UnixDatagram::unbound()?;
    s.set_write_timeout(Some(Duration::from_millis(300)))?;
    let r = assert_parks(|| s.send_to(b"x", &path));
    assert_eq!(kind(r), io::ErrorKind::WouldBlock);
    Ok(())
}

#[test]
fn datagram_connected_send_to_full_receiver_parks() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sink");
    let (_receiver, _filler) = full_receiver(&path)?;
    let s = UnixDatagram::unbound()?;
    s.connect(&path)?;
    s.set_write_timeout(Some(Duration::from_millis(300)))?;
    let r = assert_parks(|| s.send(b"x"));
    assert_eq!(kind(r), io::ErrorKind::WouldBlock);
    Ok(())
}

#[test]
fn datagram_connected_send_to_full_receiver_wakes_when_drained() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sink");
    let (receiver, _filler) = full_receiver(&path)?;
    let s = UnixDatagram::unbound()?;
    s.connect(&path)?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let sender = green::spawn(move || s.send(b"conn"));
    green::yield_now();
    assert!(!sender.is_finished());
    let mut buf = [0; 8];
    receiver.recv(&mut buf)?;
    assert_eq!(sender.wait()?, 4);
    Ok(())
}

#[test]
fn datagram_across_hubs() -> io::Result<()> {
    let (a, b) = UnixDatagram::pair()?;
    let (tx, rx) = mpsc::channel();
    let other = std::thread::spawn(move || -> io::Result<()> {
        let echo = green::spawn(move || -> io::Result<()> {
            let mut buf = [0; 16];
            let n = b.recv(&mut buf)?;
            b.send(&buf[..n])?;
            Ok(())
        });
        tx.send(()).unwrap();
        echo.wait()
    });
    rx.recv().unwrap();
    let client = green::spawn(move || -> io::Result<Vec<u8>> {
        a.send(b"across")?;
        let mut buf = [0; 16];
        let n = a.recv(&mut buf)?;
        Ok(buf[..n].to_vec())
    });
    assert_eq!(client.wait()?, b"across");
    other.join().unwrap()
}

#[test]
fn datagram_std_conversions() -> io::Result<()> {
    let s = std::os::unix::net::UnixDatagram::unbound()?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    let g = UnixDatagram::from_std(s)?;
    assert_eq!(g.write_timeout()?, Some(Duration::from_secs(2)));
    assert!(fd_nonblocking(&g));
    let c = g.try_clone()?;
    assert_eq!(c.write_timeout()?, Some(Duration::from_secs(2)));
    let s = g.into_std()?;
    assert!(!fd_nonblocking(&s));
    assert_eq!(s.write_timeout()?, Some(Duration::from_secs(2)));
    let owned: OwnedFd = c.into();
    let _g = UnixDatagram::from(owned);
    Ok(())
}

/// Sends `data` with one fd attached (`SCM_RIGHTS`) on `sock`.
fn send_with_fd(sock: &UnixStream, data: &[u8], fd: &impl AsRawFd) -> io::Result<()> {
    let mut space = [0u64; 8]; // aligned room for one cmsg with an int
    let iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: all-zero bytes are a valid msghdr.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &iov as *const libc::iovec as *mut libc::iovec;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    msg.msg_controllen =
        unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as _;
    // SAFETY: `msg` has a control buffer large enough for one cmsg with an
    // int, so CMSG_FIRSTHDR is not null and its data has room for the fd.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        libc::CMSG_DATA(c)
            .cast::<libc::c_int>()
            .write_unaligned(fd.as_raw_fd());
    }
    // SAFETY: `msg` points to valid buffers for the duration of the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    assert_eq!(n as usize, data.len());
    Ok(())
}

/// Regression: a stream read stops after a message that carried fds, short,
/// with the next message still queued and no new edge to come; the next
/// read must still get it.
#[test]
fn short_read_at_passed_fd_does_not_hide_the_rest() -> io::Result<()> {
    let (mut a, b) = UnixStream::pair()?;
    // Fails with WouldBlock instead of hanging if the data stays hidden.
    a.set_read_timeout(Some(MARGIN))?;
    let reader = green::spawn(move || -> io::Result<(Vec<u8>, Vec<u8>)> {
        let mut buf = [0u8; 64];
        let n = a.read(&mut buf)?; // parks first: registers the fd
        let first = buf[..n].to_vec();
        let m = a.read(&mut buf)?;
        Ok((first, buf[..m].to_vec()))
    });
    green::yield_now(); // the reader parks on an empty socket
    let passed = std::fs::File::open("/dev/null")?;
    send_with_fd(&b, b"fd", &passed)?;
    (&b).write_all(b"after")?;
    let (first, rest) = reader.wait()?;
    assert_eq!(first, b"fd");
    assert_eq!(rest, b"after");
    Ok(())
}

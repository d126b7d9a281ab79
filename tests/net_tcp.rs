//! `green::net::{TcpStream, TcpListener, TcpSocket}`: std's behaviour and
//! error kinds, timeouts, non-blocking mode, several green threads on one
//! socket, close and reset, conversions, other hubs, name resolution.

mod common;

use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use green::hub::{trampoline, Interest};
use green::net::{SocketAddr, TcpListener, TcpSocket, TcpStream, ToSocketAddrs};

/// A connected pair on loopback: (client, server side).
fn pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    Ok((client, server))
}

/// A connected std pair on loopback: (client, server side).
fn std_pair() -> io::Result<(std::net::TcpStream, std::net::TcpStream)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let client = std::net::TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    Ok((client, server))
}

/// Closes `fd`'s owner with `SO_LINGER` 0: the peer gets an RST.
fn reset<T: AsRawFd>(s: T) -> io::Result<()> {
    set_linger_zero(s.as_raw_fd())?;
    drop(s);
    Ok(())
}

fn set_linger_zero(fd: RawFd) -> io::Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid `linger` and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn is_nonblocking_fd(fd: RawFd) -> bool {
    // SAFETY: F_GETFL on an open fd.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    flags & libc::O_NONBLOCK != 0
}

/// The lowest free fd number: the one the next socket gets.
fn next_fd() -> io::Result<RawFd> {
    let probe = std::fs::File::open("/dev/null")?;
    Ok(probe.as_raw_fd())
}

/// A port nothing listens on (bound, then closed).
fn closed_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn kind<T>(r: io::Result<T>) -> ErrorKind {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.kind(),
    }
}

const fn assert_send_sync<T: Send + Sync>() {}

// Types are send and sync like std: checked when this file compiles.
const _: () = {
    assert_send_sync::<TcpStream>();
    assert_send_sync::<TcpListener>();
    assert_send_sync::<TcpSocket>();
};

#[test]
fn local_and_peer_addrs_match() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let client = TcpStream::connect(addr)?;
    let (server, from) = listener.accept()?;
    assert_eq!(client.peer_addr()?, addr);
    assert_eq!(server.local_addr()?, addr);
    assert_eq!(from, client.local_addr()?);
    assert_eq!(server.peer_addr()?, client.local_addr()?);
    Ok(())
}

#[test]
fn std_client_reaches_green_listener() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let std_client = std::net::TcpStream::connect(addr)?;
    let (_server, from) = listener.accept()?;
    assert_eq!(from, std_client.local_addr()?);
    Ok(())
}

#[test]
fn bad_address_strings_give_std_error_kinds() {
    for bad in [
        "127.0.0.1",
        "127.0.0.1:99999",
        "localhost:port",
        "[::1]:x",
        "",
    ] {
        let green = kind(TcpStream::connect(bad));
        let std = kind(std::net::TcpStream::connect(bad));
        assert_eq!(green, std, "connect({bad:?})");
        assert_eq!(green, ErrorKind::InvalidInput, "connect({bad:?})");
        assert_eq!(kind(TcpListener::bind(bad)), ErrorKind::InvalidInput);
    }
}

#[test]
fn no_address_is_invalid_input() {
    let none: &[SocketAddr] = &[];
    assert_eq!(kind(TcpStream::connect(none)), ErrorKind::InvalidInput);
    assert_eq!(
        kind(std::net::TcpStream::connect(none)),
        ErrorKind::InvalidInput
    );
    assert_eq!(kind(TcpListener::bind(none)), ErrorKind::InvalidInput);
}

#[test]
fn connect_to_closed_port_is_refused_like_std() -> io::Result<()> {
    let port = closed_port()?;
    let green = kind(TcpStream::connect(("127.0.0.1", port)));
    let std = kind(std::net::TcpStream::connect(("127.0.0.1", port)));
    assert_eq!(green, std);
    assert_eq!(green, ErrorKind::ConnectionRefused);
    Ok(())
}

#[test]
fn bind_to_port_in_use_is_addr_in_use_like_std() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    assert_eq!(kind(TcpListener::bind(addr)), ErrorKind::AddrInUse);
    assert_eq!(
        kind(std::net::TcpListener::bind(addr)),
        ErrorKind::AddrInUse
    );
    Ok(())
}

/// Makes a connect fail with `fail`, then checks that a new connection
/// that gets the failed socket's fd number still wakes its reader. Returns
/// how many of the `rounds` got that number (other tests may take it).
fn failed_connect_then_reuse(rounds: usize, fail: impl Fn()) -> io::Result<usize> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut reused = 0;
    for _ in 0..rounds {
        let n = next_fd()?;
        fail();
        // Bounded: without the fix this connect waited forever.
        let mut client = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        let (mut server, _) = listener.accept()?;
        if client.as_raw_fd() != n {
            continue; // another test took the number meanwhile
        }
        reused += 1;
        client.set_read_timeout(Some(Duration::from_secs(5)))?;
        let writer = green::spawn(move || server.write_all(b"x"));
        let mut buf = [0; 1];
        client.read_exact(&mut buf)?; // parks first: the writer runs after
        writer.wait()?;
    }
    Ok(reused)
}

/// Regression: a socket whose connect failed after the hub registered it
/// was closed without the hub forgetting it; the next socket with the same
/// fd number was taken for it and its waiters never woke.
#[test]
fn refused_connect_forgets_fd() -> io::Result<()> {
    let reused = failed_connect_then_reuse(20, || {
        let port = closed_port().unwrap();
        let err = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    })?;
    assert!(reused > 0, "no connection reused the failed socket's fd");
    Ok(())
}

/// The same, for a connect cut short by its own timeout and by a
/// `green::Timeout` unwinding out of it.
#[test]
fn timed_out_and_cancelled_connects_forget_fd() -> io::Result<()> {
    let (_full, full_addr, _held) = full_listener()?;
    let t = Duration::from_millis(20);
    let reused = failed_connect_then_reuse(5, || {
        let err = TcpStream::connect_timeout(&full_addr, t).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
    })?;
    assert!(reused > 0, "no connection reused the timed-out socket's fd");
    let reused = failed_connect_then_reuse(5, || {
        let r = green::with_timeout(t, || TcpSocket::new_v4()?.connect(full_addr));
        assert!(r.is_err(), "the connect to a full backlog finished");
    })?;
    assert!(reused > 0, "no connection reused the cancelled socket's fd");
    Ok(())
}

/// Writes one byte at a time until an error, giving the peer's RST time
/// to arrive between writes.
fn write_until_error(mut w: impl Write, pause: impl Fn()) -> ErrorKind {
    for _ in 0..10_000 {
        if let Err(e) = w.write(b"x") {
            return e.kind();
        }
        pause();
    }
    panic!("writes to a closed peer kept succeeding");
}

#[test]
fn write_to_closed_peer_is_broken_pipe_like_std() -> io::Result<()> {
    let (client, server) = pair()?;
    drop(server);
    let green = write_until_error(&client, green::yield_now);
    let (std_client, std_server) = std_pair()?;
    drop(std_server);
    let std = write_until_error(&std_client, std::thread::yield_now);
    assert_eq!(green, std);
    assert_eq!(green, ErrorKind::BrokenPipe);
    Ok(())
}

/// The results of two reads, as error kinds or byte counts.
fn two_reads(mut r: impl Read) -> [Result<usize, ErrorKind>; 2] {
    let mut buf = [0; 8];
    let first = r.read(&mut buf).map_err(|e| e.kind());
    let second = r.read(&mut buf).map_err(|e| e.kind());
    [first, second]
}

#[test]
fn read_after_reset_is_connection_reset_then_eof_like_std() -> io::Result<()> {
    let (client, server) = pair()?;
    reset(server)?;
    // The RST is in: the socket reports it.
    trampoline(client.as_raw_fd(), Interest::Read, None)?;
    let green = two_reads(&client);
    let (std_client, std_server) = std_pair()?;
    reset(std_server)?;
    let std = two_reads(&std_client);
    assert_eq!(green, std);
    assert_eq!(green, [Err(ErrorKind::ConnectionReset), Ok(0)]);
    Ok(())
}

#[test]
fn reset_during_blocked_read_is_connection_reset_like_std() -> io::Result<()> {
    let (client, server) = pair()?;
    let reader = green::spawn(move || (&client).read(&mut [0; 8]).map_err(|e| e.kind()));
    green::yield_now(); // the reader parks
    reset(server)?;
    let green = reader.wait();

    let (mut std_client, std_server) = std_pair()?;
    let (tid_tx, tid_rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        tid_tx.send(common::tid()).unwrap();
        std_client.read(&mut [0; 8]).map_err(|e| e.kind())
    });
    common::wait_until_sleeping(tid_rx.recv().unwrap());
    reset(std_server)?;
    let std = t.join().unwrap();
    assert_eq!(green, std);
    assert_eq!(green, Err(ErrorKind::ConnectionReset));
    Ok(())
}

#[test]
fn reset_during_blocked_write_gives_std_error_kind() -> io::Result<()> {
    let big = vec![0u8; 64 << 20];
    let (client, server) = pair()?;
    let data = big.clone();
    let writer = green::spawn(move || (&client).write_all(&data).map_err(|e| e.kind()));
    green::yield_now(); // the writer fills the buffers and parks
    reset(server)?;
    let green = writer.wait();

    let (mut std_client, std_server) = std_pair()?;
    let (tid_tx, tid_rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        tid_tx.send(common::tid()).unwrap();
        std_client.write_all(&big).map_err(|e| e.kind())
    });
    common::wait_until_sleeping(tid_rx.recv().unwrap());
    reset(std_server)?;
    let std = t.join().unwrap();
    assert_eq!(green, std);
    assert!(
        matches!(
            green,
            Err(ErrorKind::ConnectionReset | ErrorKind::BrokenPipe)
        ),
        "{green:?}"
    );
    Ok(())
}

#[test]
fn unconnected_stream_is_not_connected_like_std() -> io::Result<()> {
    let green = TcpStream::from(OwnedFd::from(TcpSocket::new_v4()?));
    let std = std::net::TcpStream::from(OwnedFd::from(TcpSocket::new_v4()?));
    assert_eq!(kind(green.peer_addr()), ErrorKind::NotConnected);
    assert_eq!(kind(std.peer_addr()), ErrorKind::NotConnected);
    assert_eq!(
        kind(green.shutdown(Shutdown::Both)),
        kind(std.shutdown(Shutdown::Both))
    );
    assert_eq!(
        kind(green.shutdown(Shutdown::Both)),
        ErrorKind::NotConnected
    );
    Ok(())
}

#[test]
fn zero_timeouts_are_invalid_input_like_std() -> io::Result<()> {
    let (client, _server) = pair()?;
    let (std_client, _std_server) = std_pair()?;
    let zero = Some(Duration::ZERO);
    assert_eq!(kind(client.set_read_timeout(zero)), ErrorKind::InvalidInput);
    assert_eq!(
        kind(client.set_write_timeout(zero)),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(std_client.set_read_timeout(zero)),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(std_client.set_write_timeout(zero)),
        ErrorKind::InvalidInput
    );
    let addr = client.peer_addr()?;
    assert_eq!(
        kind(TcpStream::connect_timeout(&addr, Duration::ZERO)),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(std::net::TcpStream::connect_timeout(&addr, Duration::ZERO)),
        ErrorKind::InvalidInput
    );
    assert_eq!(client.read_timeout()?, None);
    Ok(())
}

#[test]
fn read_timeout_expires_with_would_block() -> io::Result<()> {
    let (client, _server) = pair()?;
    let t = Duration::from_millis(50);
    client.set_read_timeout(Some(t))?;
    assert_eq!(client.read_timeout()?, Some(t));
    let start = Instant::now();
    assert_eq!(kind((&client).read(&mut [0; 8])), ErrorKind::WouldBlock);
    // Margin: at least the timeout, and far less than 5 s.
    let took = start.elapsed();
    assert!(took >= t && took < Duration::from_secs(5), "{took:?}");
    Ok(())
}

#[test]
fn write_timeout_expires_with_would_block() -> io::Result<()> {
    let (client, _server) = pair()?;
    let t = Duration::from_millis(50);
    client.set_write_timeout(Some(t))?;
    let start = Instant::now();
    // The peer never reads: the buffers fill and the write waits.
    let err = (&client).write_all(&vec![0; 64 << 20]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    let took = start.elapsed();
    assert!(took >= t && took < Duration::from_secs(5), "{took:?}");
    Ok(())
}

/// A listener whose accept queue is full: a new connect gets no answer.
fn full_listener() -> io::Result<(TcpListener, SocketAddr, Vec<TcpStream>)> {
    let socket = TcpSocket::new_v4()?;
    socket.bind("127.0.0.1:0".parse().unwrap())?;
    let listener = socket.listen(0)?;
    let addr = listener.local_addr()?;
    let mut held = Vec::new();
    // A backlog of 0 holds one connection; fill it with a few to be sure.
    for _ in 0..3 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => held.push(s),
            Err(e) if e.kind() == ErrorKind::TimedOut => break,
            Err(e) => return Err(e),
        }
    }
    Ok((listener, addr, held))
}

#[test]
fn connect_timeout_expires_when_backlog_is_full_like_std() -> io::Result<()> {
    let (_listener, addr, _held) = full_listener()?;
    let t = Duration::from_millis(100);
    let start = Instant::now();
    assert_eq!(
        kind(TcpStream::connect_timeout(&addr, t)),
        ErrorKind::TimedOut
    );
    let took = start.elapsed();
    assert!(took >= t && took < Duration::from_secs(5), "{took:?}");
    assert_eq!(
        kind(std::net::TcpStream::connect_timeout(&addr, t)),
        ErrorKind::TimedOut
    );
    Ok(())
}

#[test]
fn nonblocking_read_and_accept_would_block() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    assert_eq!(kind(listener.accept()), ErrorKind::WouldBlock);
    let client = TcpStream::connect(listener.local_addr()?)?;
    client.set_nonblocking(true)?;
    assert_eq!(kind((&client).read(&mut [0; 8])), ErrorKind::WouldBlock);
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(Duration::from_millis(10)))?;
    assert_eq!(kind((&client).read(&mut [0; 8])), ErrorKind::WouldBlock);
    Ok(())
}

#[test]
fn full_duplex_reader_and_writer_on_one_socket() -> io::Result<()> {
    const LEN: usize = 8 << 20; // far more than the socket buffers hold
    let (client, server) = pair()?;
    let echo = green::spawn(move || io::copy(&mut &server, &mut &server));
    let client = Rc::new(client);
    let c = client.clone();
    let writer = green::spawn(move || -> io::Result<()> {
        (&*c).write_all(&vec![7u8; LEN])?;
        c.shutdown(Shutdown::Write)
    });
    let c = client.clone();
    let reader = green::spawn(move || -> io::Result<usize> {
        let mut got = Vec::new();
        (&*c).read_to_end(&mut got)?;
        assert!(got.iter().all(|&b| b == 7));
        Ok(got.len())
    });
    let n = green::with_timeout(Duration::from_secs(30), move || {
        writer.wait()?;
        reader.wait()
    })
    .expect("full duplex stalled")?;
    assert_eq!(n, LEN);
    assert_eq!(echo.wait()?, LEN as u64);
    Ok(())
}

#[test]
fn two_readers_are_served_in_arrival_order() -> io::Result<()> {
    let (client, mut server) = pair()?;
    let client = Rc::new(client);
    let order = Rc::new(RefCell::new(Vec::new()));
    let readers: Vec<_> = (0..2)
        .map(|i| {
            let (c, order) = (client.clone(), order.clone());
            let gt = green::spawn(move || -> io::Result<()> {
                let mut b = [0; 1];
                (&*c).read_exact(&mut b)?;
                order.borrow_mut().push((i, b[0]));
                Ok(())
            });
            green::yield_now(); // reader i parks before the next starts
            gt
        })
        .collect();
    server.write_all(b"a")?;
    while order.borrow().is_empty() {
        green::yield_now();
    }
    server.write_all(b"b")?;
    for r in readers {
        r.wait()?;
    }
    assert_eq!(*order.borrow(), [(0, b'a'), (1, b'b')]);
    Ok(())
}

#[test]
fn dropping_socket_wakes_fd_waiter_with_error() -> io::Result<()> {
    let (client, _server) = pair()?;
    let fd = client.as_raw_fd();
    let waiter = green::spawn(move || trampoline(fd, Interest::Read, None));
    green::yield_now(); // the waiter parks on the fd
    drop(client);
    assert_eq!(kind(waiter.wait()), ErrorKind::ConnectionAborted);
    Ok(())
}

#[test]
fn shutdown_write_half_closes() -> io::Result<()> {
    let (mut client, mut server) = pair()?;
    client.write_all(b"last")?;
    client.shutdown(Shutdown::Write)?;
    let mut got = String::new();
    server.read_to_string(&mut got)?; // ends: the client sent FIN
    assert_eq!(got, "last");
    // The other direction still works.
    server.write_all(b"reply")?;
    let mut buf = [0; 5];
    client.read_exact(&mut buf)?;
    assert_eq!(&buf, b"reply");
    // Writing after shutdown(Write) is a broken pipe, as with std.
    assert_eq!(kind(client.write(b"x")), ErrorKind::BrokenPipe);
    let (mut std_client, _std_server) = std_pair()?;
    std_client.shutdown(Shutdown::Write)?;
    assert_eq!(kind(std_client.write(b"x")), ErrorKind::BrokenPipe);
    Ok(())
}

#[test]
fn shutdown_read_wakes_parked_reader_with_eof() -> io::Result<()> {
    let (client, _server) = pair()?;
    let client = Rc::new(client);
    let c = client.clone();
    let reader = green::spawn(move || (&*c).read(&mut [0; 8]));
    green::yield_now(); // the reader parks
    client.shutdown(Shutdown::Read)?;
    assert_eq!(reader.wait()?, 0);
    Ok(())
}

#[test]
fn peek_leaves_data_in_place() -> io::Result<()> {
    let (mut client, mut server) = pair()?;
    let peeker = green::spawn(move || -> io::Result<Vec<u8>> {
        let mut buf = [0; 3];
        let n = server.peek(&mut buf)?; // parks until data arrives
        let mut all = [0; 3];
        server.read_exact(&mut all)?;
        assert_eq!(&buf[..n], &all[..n]);
        Ok(all.to_vec())
    });
    green::yield_now();
    client.write_all(b"abc")?;
    assert_eq!(peeker.wait()?, b"abc");
    Ok(())
}

#[test]
fn vectored_read_and_write() -> io::Result<()> {
    let (mut client, mut server) = pair()?;
    let n = client.write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cd")])?;
    assert_eq!(n, 4);
    let (mut a, mut b) = ([0; 1], [0; 3]);
    // On loopback the data is queued by the time the write returns.
    let n = server.read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)])?;
    assert_eq!(n, 4);
    assert_eq!((&a, &b), (b"a", b"bcd"));
    Ok(())
}

#[test]
fn incoming_yields_accepted_streams() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let server = listener.incoming().next().expect("incoming never ends")?;
    assert_eq!(server.peer_addr()?, client.local_addr()?);
    Ok(())
}

#[test]
fn try_clone_shares_the_connection_and_copies_settings() -> io::Result<()> {
    let (client, mut server) = pair()?;
    client.set_read_timeout(Some(Duration::from_secs(7)))?;
    let mut clone = client.try_clone()?;
    assert_eq!(clone.read_timeout()?, Some(Duration::from_secs(7)));
    clone.write_all(b"via clone")?;
    let mut buf = [0; 9];
    server.read_exact(&mut buf)?;
    assert_eq!(&buf, b"via clone");
    // Settings belong to each handle.
    clone.set_read_timeout(None)?;
    assert_eq!(client.read_timeout()?, Some(Duration::from_secs(7)));
    drop(client);
    server.write_all(b"!")?;
    let mut b = [0; 1];
    clone.read_exact(&mut b)?;
    assert_eq!(&b, b"!");
    Ok(())
}

#[test]
fn into_std_and_from_std_round_trip() -> io::Result<()> {
    let (client, mut server) = pair()?;
    client.set_read_timeout(Some(Duration::from_secs(3)))?;
    let std_client = client.into_std()?;
    assert!(!is_nonblocking_fd(std_client.as_raw_fd()));
    assert_eq!(std_client.read_timeout()?, Some(Duration::from_secs(3)));
    server.write_all(b"1")?;
    let mut b = [0; 1];
    (&std_client).read_exact(&mut b)?; // data already there: no wait
    std_client.set_write_timeout(Some(Duration::from_secs(4)))?;
    let mut client = TcpStream::from_std(std_client)?;
    assert!(is_nonblocking_fd(client.as_raw_fd()));
    assert_eq!(client.write_timeout()?, Some(Duration::from_secs(4)));
    let writer = green::spawn(move || server.write_all(b"2"));
    client.read_exact(&mut b)?;
    assert_eq!(&b, b"2");
    writer.wait()?;
    // Non-blocking mode survives the trip out.
    client.set_nonblocking(true)?;
    assert!(is_nonblocking_fd(client.into_std()?.as_raw_fd()));
    Ok(())
}

#[test]
fn listener_into_std_and_from_std_round_trip() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let std_listener = listener.into_std()?;
    assert!(!is_nonblocking_fd(std_listener.as_raw_fd()));
    let listener = TcpListener::from_std(std_listener)?;
    let _c = TcpStream::connect(addr)?;
    listener.accept()?;
    Ok(())
}

#[test]
fn raw_fd_round_trip_keeps_the_connection() -> io::Result<()> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let (client, mut server) = pair()?;
    let fd = client.into_raw_fd();
    // SAFETY: `fd` came from `into_raw_fd` and nothing else owns it.
    let mut client = unsafe { TcpStream::from_raw_fd(fd) };
    let writer = green::spawn(move || server.write_all(b"raw"));
    let mut buf = [0; 3];
    client.read_exact(&mut buf)?;
    assert_eq!(&buf, b"raw");
    writer.wait()
}

#[test]
fn stream_moves_to_another_hub() -> io::Result<()> {
    let (client, mut server) = pair()?;
    // Use the stream here first, so this hub registers it.
    server.write_all(b"here")?;
    let mut buf = [0; 4];
    (&client).read_exact(&mut buf)?;
    let other = std::thread::spawn(move || -> io::Result<Vec<u8>> {
        // A reader and a writer green thread on the other thread's hub.
        let client = Rc::new(client);
        let c = client.clone();
        let writer = green::spawn(move || (&*c).write_all(b"from there"));
        let mut got = vec![0; 5];
        (&*client).read_exact(&mut got)?;
        writer.wait()?;
        Ok(got)
    });
    let mut got = [0; 10];
    server.read_exact(&mut got)?;
    assert_eq!(&got, b"from there");
    server.write_all(b"there")?;
    assert_eq!(other.join().unwrap()?, b"there");
    Ok(())
}

#[test]
fn green_client_talks_to_plain_thread_server() -> io::Result<()> {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = std_listener.local_addr()?;
    let server = std::thread::spawn(move || -> io::Result<()> {
        let (mut s, _) = std_listener.accept()?;
        let mut buf = [0; 4];
        s.read_exact(&mut buf)?;
        s.write_all(&buf)
    });
    // A green ticker runs while the root waits on the socket.
    let ticks = Rc::new(Cell::new(0));
    let t = ticks.clone();
    let ticker = green::spawn(move || loop {
        t.set(t.get() + 1);
        green::sleep(Duration::from_millis(1));
    });
    let mut c = TcpStream::connect(addr)?;
    c.write_all(b"ping")?;
    let mut buf = [0; 4];
    c.read_exact(&mut buf)?;
    ticker.kill();
    assert_eq!(&buf, b"ping");
    assert!(ticks.get() > 0);
    server.join().unwrap()
}

#[test]
fn localhost_resolves_in_100_green_threads_without_blocking_the_hub() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let in_flight = Rc::new(Cell::new(0usize));
    let seen_in_flight = Rc::new(Cell::new(0usize));
    let done = Rc::new(Cell::new(false));
    // The ticker records how many resolutions it saw pending: if resolving
    // blocked the hub, each would start and finish in one run slice and the
    // ticker would never see one pending.
    let ticker = {
        let (in_flight, seen, done) = (in_flight.clone(), seen_in_flight.clone(), done.clone());
        green::spawn(move || {
            while !done.get() {
                seen.set(seen.get().max(in_flight.get()));
                green::yield_now();
            }
        })
    };
    let resolvers: Vec<_> = (0..100)
        .map(|_| {
            let in_flight = in_flight.clone();
            green::spawn(move || -> io::Result<Vec<SocketAddr>> {
                in_flight.set(in_flight.get() + 1);
                let r = ("localhost", port).to_socket_addrs();
                in_flight.set(in_flight.get() - 1);
                Ok(r?.collect())
            })
        })
        .collect();
    for r in resolvers {
        let addrs = r.wait()?;
        assert!(!addrs.is_empty());
        assert!(addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == port));
    }
    done.set(true);
    ticker.wait();
    assert!(
        seen_in_flight.get() > 0,
        "the hub was blocked while resolving"
    );
    // And a connect by name reaches the listener (each address is tried).
    let c = TcpStream::connect(("localhost", port))?;
    assert_eq!(c.peer_addr()?.port(), port);
    Ok(())
}

#[test]
fn tcp_socket_options_round_trip() -> io::Result<()> {
    let s = TcpSocket::new_v4()?;
    s.set_reuseaddr(true)?;
    assert!(s.reuseaddr()?);
    s.set_reuseport(true)?;
    assert!(s.reuseport()?);
    s.set_nodelay(true)?;
    assert!(s.nodelay()?);
    s.set_keepalive(true)?;
    assert!(s.keepalive()?);
    s.set_linger(Some(Duration::from_secs(2)))?;
    assert_eq!(s.linger()?, Some(Duration::from_secs(2)));
    s.set_linger(None)?;
    assert_eq!(s.linger()?, None);
    s.set_send_buffer_size(64 << 10)?;
    assert!(s.send_buffer_size()? >= 64 << 10); // the kernel doubles it
    s.set_recv_buffer_size(64 << 10)?;
    assert!(s.recv_buffer_size()? >= 64 << 10);
    assert_eq!(s.take_error()?.map(|e| e.kind()), None);
    Ok(())
}

#[test]
fn tcp_socket_listens_and_connects() -> io::Result<()> {
    let s = TcpSocket::new_v4()?;
    s.bind("127.0.0.1:0".parse().unwrap())?;
    let addr = s.local_addr()?;
    let listener = s.listen(16)?;
    assert_eq!(listener.local_addr()?, addr);
    let c = TcpSocket::new_v4()?;
    c.set_nodelay(true)?;
    let mut client = c.connect(addr)?;
    assert!(client.nodelay()?);
    let (mut server, _) = listener.accept()?;
    client.write_all(b"ok")?;
    let mut buf = [0; 2];
    server.read_exact(&mut buf)?;
    assert_eq!(&buf, b"ok");
    Ok(())
}

#[test]
fn tcp_socket_connect_refused() -> io::Result<()> {
    let port = closed_port()?;
    let err = TcpSocket::new_v4()?
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    Ok(())
}

#[test]
fn tcp_socket_without_reuseport_cannot_share_a_port() -> io::Result<()> {
    let first = TcpSocket::new_v4()?;
    first.set_reuseport(true)?;
    first.bind("127.0.0.1:0".parse().unwrap())?;
    let addr = first.local_addr()?;
    let _l1 = first.listen(16)?;
    let second = TcpSocket::new_v4()?;
    assert_eq!(kind(second.bind(addr)), ErrorKind::AddrInUse);
    let third = TcpSocket::new_v4()?;
    third.set_reuseport(true)?;
    third.bind(addr)?;
    let _l3 = third.listen(16)?;
    Ok(())
}

/// std's view of `l`'s socket, borrowed.
fn as_std_listener(l: &TcpListener) -> std::mem::ManuallyDrop<std::net::TcpListener> {
    use std::os::fd::FromRawFd;
    // SAFETY: `l` owns the fd and outlives the borrow; `ManuallyDrop`
    // keeps it from being closed twice.
    std::mem::ManuallyDrop::new(unsafe { std::net::TcpListener::from_raw_fd(l.as_raw_fd()) })
}

#[test]
#[allow(deprecated)]
fn tcp_listener_set_only_v6_fails_once_bound_as_in_std() -> io::Result<()> {
    // IPv6 loopback, as `tcp_socket_v6_on_loopback` uses it.
    let l = TcpListener::bind("[::1]:0")?;
    let green_err = l.set_only_v6(true).unwrap_err();
    let std_err = as_std_listener(&l).set_only_v6(true).unwrap_err();
    assert_eq!(green_err.kind(), ErrorKind::InvalidInput);
    assert_eq!(green_err.raw_os_error(), std_err.raw_os_error());
    // On an IPv4 listener the option does not exist.
    let l4 = TcpListener::bind("127.0.0.1:0")?;
    let green_err = l4.set_only_v6(false).unwrap_err();
    let std_err = as_std_listener(&l4).set_only_v6(false).unwrap_err();
    assert_eq!(green_err.raw_os_error(), std_err.raw_os_error());
    Ok(())
}

#[test]
#[allow(deprecated)]
fn tcp_listener_only_v6_reads_the_option_as_std() -> io::Result<()> {
    let l = TcpListener::bind("[::1]:0")?;
    assert_eq!(l.only_v6()?, as_std_listener(&l).only_v6()?);
    let l4 = TcpListener::bind("127.0.0.1:0")?;
    let green_err = l4.only_v6().unwrap_err();
    let std_err = as_std_listener(&l4).only_v6().unwrap_err();
    assert_eq!(green_err.raw_os_error(), std_err.raw_os_error());
    Ok(())
}

#[test]
fn tcp_socket_v6_on_loopback() -> io::Result<()> {
    let s = TcpSocket::new_v6()?;
    s.bind("[::1]:0".parse().unwrap())?;
    let listener = s.listen(16)?;
    let addr = listener.local_addr()?;
    assert!(addr.is_ipv6());
    let c = TcpStream::connect(addr)?;
    assert_eq!(c.peer_addr()?, addr);
    Ok(())
}

#[test]
fn tcp_stream_quickack_is_set_and_read_like_std() -> io::Result<()> {
    use green::os::linux::net::TcpStreamExt;
    use std::os::linux::net::TcpStreamExt as _;
    let (a, _b) = pair()?;
    // SAFETY: `a` owns the fd and outlives the borrow; `ManuallyDrop`
    // keeps it from being closed twice.
    let std_view = std::mem::ManuallyDrop::new(unsafe {
        <std::net::TcpStream as std::os::fd::FromRawFd>::from_raw_fd(a.as_raw_fd())
    });
    a.set_quickack(false)?;
    assert!(!a.quickack()?);
    assert!(!std_view.quickack()?);
    a.set_quickack(true)?;
    assert!(a.quickack()?);
    assert!(std_view.quickack()?);
    Ok(())
}

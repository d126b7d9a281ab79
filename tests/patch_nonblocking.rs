//! Code that manages its sockets' blocking mode itself keeps the semantics
//! it asked for under `green::patch()`: a socket it made non-blocking gives
//! `WouldBlock`, and one it made blocking again reads as blocking
//! (`fcntl(F_GETFL)` shows no `O_NONBLOCK`) while green keeps it
//! non-blocking underneath, so a wait on it parks only its green thread.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

/// The OS thread running the caller: under `patch()` every green thread is
/// a thread of its own to std (`thread::current()` differs), so the OS
/// thread is told by its kernel id.
fn os_thread() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

fn me() -> libc::pid_t {
    os_thread()
}

/// Whether `fd`'s flags, read through the (patched) `fcntl` that user code
/// reaches, show `O_NONBLOCK`.
fn shows_nonblocking(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_GETFL on an open fd.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if fl < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fl & libc::O_NONBLOCK != 0)
}

/// Whether `fd` is `O_NONBLOCK` in the kernel, past green's interposer.
fn kernel_nonblocking(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_GETFL on an open fd.
    let fl = unsafe { green::patch::original::fcntl(fd, libc::F_GETFL, 0) };
    if fl < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fl & libc::O_NONBLOCK != 0)
}

/// A connected pair made on the current green context.
fn tcp_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    Ok((client, server))
}

/// Runs `f` on a green thread and checks it ran on this OS thread.
fn on_green<T: 'static>(f: impl FnOnce() -> T + 'static) -> T {
    let os = me();
    let (v, id) = green::spawn(move || (f(), me())).wait();
    assert_eq!(id, os, "the green thread ran on another OS thread");
    v
}

/// `reader` (a green thread about to block on a read) must park green: a
/// green thread spawned after it supplies the data with `supply`. If the
/// read blocked the OS thread, `supply` would never run.
fn read_parks_green<T: 'static>(
    read: impl FnOnce() -> io::Result<T> + 'static,
    supply: impl FnOnce() -> io::Result<()> + 'static,
) -> T {
    let os = me();
    let waited = Rc::new(Cell::new(false));
    let reader = {
        let waited = waited.clone();
        green::spawn(move || {
            let v = read().expect("the read succeeds");
            (v, waited.get(), me())
        })
    };
    // The reader runs and parks in its read.
    green::yield_now();
    let supplier = green::spawn(move || {
        waited.set(true);
        supply().expect("supply data");
        me()
    });
    let (v, supplied_first, id) = reader.wait();
    assert_eq!(supplier.wait(), os);
    assert_eq!(id, os);
    assert!(supplied_first, "the read returned before its data was sent");
    v
}

#[test]
fn tcp_read_on_a_socket_set_nonblocking_gives_would_block() -> io::Result<()> {
    green::patch();
    let (r, still_nonblocking) = on_green(|| {
        let (client, _server) = tcp_pair().expect("pair");
        client.set_nonblocking(true).expect("set_nonblocking");
        let r = (&client).read(&mut [0; 8]).map_err(|e| e.kind());
        (r, shows_nonblocking(client.as_raw_fd()).expect("fcntl"))
    });
    assert_eq!(r, Err(io::ErrorKind::WouldBlock));
    assert!(still_nonblocking, "F_GETFL shows the O_NONBLOCK it set");
    Ok(())
}

#[test]
fn set_nonblocking_false_reads_as_blocking_and_the_socket_parks_green() -> io::Result<()> {
    green::patch();
    let (client, mut server) = on_green(|| {
        let (client, server) = tcp_pair().expect("pair");
        client.set_nonblocking(true).expect("set_nonblocking(true)");
        client
            .set_nonblocking(false)
            .expect("set_nonblocking(false)");
        (client, server)
    });
    let fd = client.as_raw_fd();
    assert!(!shows_nonblocking(fd)?, "F_GETFL shows blocking mode");
    assert!(kernel_nonblocking(fd)?, "green keeps it non-blocking below");
    let got = read_parks_green(
        move || {
            let mut buf = [0; 5];
            (&client).read_exact(&mut buf)?;
            Ok(buf)
        },
        move || server.write_all(b"hello"),
    );
    assert_eq!(&got, b"hello");
    Ok(())
}

#[test]
fn udp_recv_on_a_socket_set_nonblocking_gives_would_block() -> io::Result<()> {
    green::patch();
    let r = on_green(|| {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.set_nonblocking(true).expect("set_nonblocking");
        s.recv_from(&mut [0; 8]).map(drop).map_err(|e| e.kind())
    });
    assert_eq!(r, Err(io::ErrorKind::WouldBlock));
    Ok(())
}

#[test]
fn udp_set_nonblocking_false_reads_as_blocking_and_recv_parks_green() -> io::Result<()> {
    green::patch();
    let (receiver, sender) = on_green(|| {
        let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
        receiver
            .set_nonblocking(true)
            .expect("set_nonblocking(true)");
        assert_eq!(
            receiver.recv_from(&mut [0; 8]).map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::WouldBlock)
        );
        receiver
            .set_nonblocking(false)
            .expect("set_nonblocking(false)");
        (receiver, sender)
    });
    assert!(!shows_nonblocking(receiver.as_raw_fd())?);
    assert!(kernel_nonblocking(receiver.as_raw_fd())?);
    let to = receiver.local_addr()?;
    let from = sender.local_addr()?;
    let (n, buf, peer) = read_parks_green(
        move || {
            let mut buf = [0; 16];
            let (n, peer) = receiver.recv_from(&mut buf)?;
            Ok((n, buf, peer))
        },
        move || sender.send_to(b"datagram", to).map(drop),
    );
    assert_eq!(&buf[..n], b"datagram");
    assert_eq!(peer, from);
    Ok(())
}

#[test]
fn nonblocking_listener_accept_gives_would_block_when_none_is_pending() -> io::Result<()> {
    green::patch();
    let r = on_green(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("set_nonblocking");
        listener.accept().map(drop).map_err(|e| e.kind())
    });
    assert_eq!(r, Err(io::ErrorKind::WouldBlock));
    Ok(())
}

#[test]
fn a_socket_accepted_from_a_nonblocking_listener_is_blocking_and_parks_green() -> io::Result<()> {
    green::patch();
    let (accepted, mut client) = on_green(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("set_nonblocking");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        // The connection is queued once connect returns; a non-blocking
        // accept may still see the handshake unfinished: yield and retry.
        let accepted = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => green::yield_now(),
                Err(e) => panic!("accept: {e}"),
            }
        };
        (accepted, client)
    });
    // Like std (Linux's accept does not pass O_NONBLOCK on), the accepted
    // socket is in blocking mode.
    assert!(!shows_nonblocking(accepted.as_raw_fd())?);
    let (got, accepted) = read_parks_green(
        move || {
            let mut buf = [0; 4];
            (&accepted).read_exact(&mut buf)?;
            Ok((buf, accepted))
        },
        move || client.write_all(b"ping"),
    );
    assert_eq!(&got, b"ping");
    assert!(!shows_nonblocking(accepted.as_raw_fd())?);
    assert!(kernel_nonblocking(accepted.as_raw_fd())?);
    Ok(())
}

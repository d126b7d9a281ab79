//! `green::net::UdpSocket`: std's behaviour and error kinds, datagram
//! receives that park, connected sockets, options, multicast on loopback,
//! conversions, and other hubs and OS threads.

mod common;

use std::cell::RefCell;
use std::io::{self, ErrorKind};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use green::hub::{trampoline, Interest};
use green::net::{SocketAddr, UdpSocket};

fn kind<T>(r: io::Result<T>) -> ErrorKind {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.kind(),
    }
}

fn local() -> io::Result<UdpSocket> {
    UdpSocket::bind("127.0.0.1:0")
}

fn std_local() -> io::Result<std::net::UdpSocket> {
    std::net::UdpSocket::bind("127.0.0.1:0")
}

fn is_nonblocking_fd(fd: RawFd) -> bool {
    // SAFETY: F_GETFL on an open fd.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    flags & libc::O_NONBLOCK != 0
}

// Udp socket is send and sync like std: checked when this file compiles.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<UdpSocket>();
};

#[test]
fn bind_gives_a_loopback_port() -> io::Result<()> {
    let s = local()?;
    let addr = s.local_addr()?;
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0);
    assert_eq!(kind(UdpSocket::bind(addr)), ErrorKind::AddrInUse);
    assert_eq!(kind(std::net::UdpSocket::bind(addr)), ErrorKind::AddrInUse);
    Ok(())
}

#[test]
fn bad_addresses_give_std_error_kinds() -> io::Result<()> {
    let (s, std) = (local()?, std_local()?);
    for bad in ["127.0.0.1", "127.0.0.1:99999", "localhost:port", ""] {
        assert_eq!(
            kind(UdpSocket::bind(bad)),
            kind(std::net::UdpSocket::bind(bad))
        );
        assert_eq!(kind(s.send_to(b"x", bad)), kind(std.send_to(b"x", bad)));
        assert_eq!(kind(s.connect(bad)), kind(std.connect(bad)));
        assert_eq!(kind(s.send_to(b"x", bad)), ErrorKind::InvalidInput);
    }
    Ok(())
}

#[test]
fn send_to_no_address_is_invalid_input_like_std() -> io::Result<()> {
    let none: &[SocketAddr] = &[];
    let green = local()?.send_to(b"x", none).unwrap_err();
    let std = std_local()?.send_to(b"x", none).unwrap_err();
    assert_eq!(green.kind(), ErrorKind::InvalidInput);
    assert_eq!(green.kind(), std.kind());
    assert_eq!(green.to_string(), std.to_string());
    assert_eq!(green.to_string(), "no addresses to send data to");
    assert_eq!(kind(local()?.connect(none)), ErrorKind::InvalidInput);
    Ok(())
}

#[test]
fn recv_from_parks_until_a_datagram_arrives() -> io::Result<()> {
    let (a, b) = (local()?, local()?);
    let (a_addr, b_addr) = (a.local_addr()?, b.local_addr()?);
    let receiver = green::spawn(move || -> io::Result<(Vec<u8>, SocketAddr)> {
        let mut buf = [0; 64];
        let (n, from) = b.recv_from(&mut buf)?;
        Ok((buf[..n].to_vec(), from))
    });
    green::yield_now(); // the receiver parks
    assert!(!receiver.is_finished());
    assert_eq!(a.send_to(b"hello", b_addr)?, 5);
    assert_eq!(receiver.wait()?, (b"hello".to_vec(), a_addr));
    Ok(())
}

#[test]
fn send_to_a_name_resolves_it() -> io::Result<()> {
    let (a, b) = (
        UdpSocket::bind("127.0.0.1:0")?,
        UdpSocket::bind("127.0.0.1:0")?,
    );
    let port = b.local_addr()?.port();
    // "localhost" may resolve to ::1 first, which an IPv4 socket cannot
    // reach; the address std's send_to would pick is the first one.
    let first = std::net::ToSocketAddrs::to_socket_addrs(&("localhost", port))?
        .next()
        .expect("localhost resolves");
    if first.is_ipv4() {
        a.send_to(b"by name", ("localhost", port))?;
        let mut buf = [0; 16];
        let (n, _) = b.recv_from(&mut buf)?;
        assert_eq!(&buf[..n], b"by name");
    } else {
        assert_eq!(
            kind(a.send_to(b"by name", ("localhost", port))),
            kind(std_local()?.send_to(b"by name", ("localhost", port)))
        );
    }
    Ok(())
}

#[test]
fn peek_from_leaves_the_datagram_queued() -> io::Result<()> {
    let (a, b) = (local()?, local()?);
    a.send_to(b"peek me", b.local_addr()?)?;
    let mut buf = [0; 16];
    let (n, from) = b.peek_from(&mut buf)?;
    assert_eq!((&buf[..n], from), (&b"peek me"[..], a.local_addr()?));
    let (n2, _) = b.recv_from(&mut buf)?;
    assert_eq!(&buf[..n2], b"peek me");
    Ok(())
}

#[test]
fn long_datagram_is_truncated_like_std() -> io::Result<()> {
    let (a, b) = (local()?, local()?);
    a.send_to(b"0123456789", b.local_addr()?)?;
    a.send_to(b"next", b.local_addr()?)?;
    let mut small = [0; 4];
    assert_eq!(b.recv_from(&mut small)?.0, 4);
    assert_eq!(&small, b"0123");
    // The rest of the first datagram is gone.
    assert_eq!(b.recv_from(&mut small)?.0, 4);
    assert_eq!(&small, b"next");

    let (sa, sb) = (std_local()?, std_local()?);
    sa.send_to(b"0123456789", sb.local_addr()?)?;
    assert_eq!(sb.recv_from(&mut small)?.0, 4);
    Ok(())
}

/// A short read of one datagram says nothing about the next: both queued
/// datagrams are received without waiting for a new readiness edge.
#[test]
fn second_queued_datagram_is_received_after_a_short_read() -> io::Result<()> {
    let (a, b) = (local()?, local()?);
    b.set_read_timeout(Some(Duration::from_secs(5)))?;
    let to = b.local_addr()?;
    a.send_to(b"one", to)?;
    a.send_to(b"two", to)?;
    let mut buf = [0; 1500];
    let (n, _) = b.recv_from(&mut buf)?;
    assert_eq!(&buf[..n], b"one");
    let (n, _) = b.recv_from(&mut buf)?;
    assert_eq!(&buf[..n], b"two");
    Ok(())
}

#[test]
fn connect_send_recv_and_peek() -> io::Result<()> {
    let (a, b) = (local()?, local()?);
    a.connect(b.local_addr()?)?;
    b.connect(a.local_addr()?)?;
    assert_eq!(a.peer_addr()?, b.local_addr()?);
    let receiver = green::spawn(move || -> io::Result<Vec<u8>> {
        let mut buf = [0; 16];
        let n = b.peek(&mut buf)?; // parks until the datagram arrives
        let mut again = [0; 16];
        let m = b.recv(&mut again)?;
        assert_eq!(&buf[..n], &again[..m]);
        Ok(again[..m].to_vec())
    });
    green::yield_now();
    assert_eq!(a.send(b"connected")?, 9);
    assert_eq!(receiver.wait()?, b"connected");
    Ok(())
}

#[test]
fn connected_socket_ignores_other_senders() -> io::Result<()> {
    let (a, b, stranger) = (local()?, local()?, local()?);
    b.connect(a.local_addr()?)?;
    stranger.send_to(b"stranger", b.local_addr()?)?;
    a.send_to(b"peer", b.local_addr()?)?;
    let mut buf = [0; 16];
    let n = b.recv(&mut buf)?;
    assert_eq!(&buf[..n], b"peer");
    Ok(())
}

#[test]
fn unconnected_socket_is_not_connected_like_std() -> io::Result<()> {
    let (s, std) = (local()?, std_local()?);
    assert_eq!(kind(s.peer_addr()), ErrorKind::NotConnected);
    assert_eq!(kind(std.peer_addr()), ErrorKind::NotConnected);
    assert_eq!(kind(s.send(b"x")), kind(std.send(b"x")));
    Ok(())
}

#[test]
fn refused_datagram_gives_connection_refused_like_std() -> io::Result<()> {
    let closed = local()?.local_addr()?; // bound, then closed
    let s = local()?;
    s.connect(closed)?;
    s.send(b"anyone?")?;
    let green = kind(s.recv(&mut [0; 8])); // parks until the ICMP error
    let std = std_local()?;
    std.connect(closed)?;
    std.send(b"anyone?")?;
    assert_eq!(green, kind(std.recv(&mut [0; 8])));
    assert_eq!(green, ErrorKind::ConnectionRefused);
    Ok(())
}

#[test]
fn read_timeout_expires_with_would_block() -> io::Result<()> {
    let s = local()?;
    let t = Duration::from_millis(50);
    s.set_read_timeout(Some(t))?;
    assert_eq!(s.read_timeout()?, Some(t));
    let start = Instant::now();
    assert_eq!(kind(s.recv_from(&mut [0; 8])), ErrorKind::WouldBlock);
    // Margin: at least the timeout, and far less than 5 s.
    let took = start.elapsed();
    assert!(took >= t && took < Duration::from_secs(5), "{took:?}");
    Ok(())
}

#[test]
fn write_timeout_is_kept() -> io::Result<()> {
    let s = local()?;
    assert_eq!(s.write_timeout()?, None);
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    assert_eq!(s.write_timeout()?, Some(Duration::from_secs(2)));
    Ok(())
}

#[test]
fn zero_timeouts_are_invalid_input_like_std() -> io::Result<()> {
    let (s, std) = (local()?, std_local()?);
    let zero = Some(Duration::ZERO);
    assert_eq!(kind(s.set_read_timeout(zero)), ErrorKind::InvalidInput);
    assert_eq!(kind(s.set_write_timeout(zero)), ErrorKind::InvalidInput);
    assert_eq!(kind(std.set_read_timeout(zero)), ErrorKind::InvalidInput);
    assert_eq!(kind(std.set_write_timeout(zero)), ErrorKind::InvalidInput);
    Ok(())
}

#[test]
fn nonblocking_recv_would_block() -> io::Result<()> {
    let s = local()?;
    s.set_nonblocking(true)?;
    assert_eq!(kind(s.recv_from(&mut [0; 8])), ErrorKind::WouldBlock);
    assert_eq!(kind(s.peek_from(&mut [0; 8])), ErrorKind::WouldBlock);
    Ok(())
}

#[test]
fn options_round_trip_like_std() -> io::Result<()> {
    let (s, std) = (local()?, std_local()?);
    for on in [true, false] {
        s.set_broadcast(on)?;
        std.set_broadcast(on)?;
        assert_eq!(s.broadcast()?, std.broadcast()?);
        assert_eq!(s.broadcast()?, on);
        s.set_multicast_loop_v4(on)?;
        std.set_multicast_loop_v4(on)?;
        assert_eq!(s.multicast_loop_v4()?, std.multicast_loop_v4()?);
        assert_eq!(s.multicast_loop_v4()?, on);
    }
    s.set_multicast_ttl_v4(7)?;
    std.set_multicast_ttl_v4(7)?;
    assert_eq!(s.multicast_ttl_v4()?, std.multicast_ttl_v4()?);
    s.set_ttl(42)?;
    std.set_ttl(42)?;
    assert_eq!((s.ttl()?, std.ttl()?), (42, 42));
    // IPV6_MULTICAST_LOOP on an IPv4 socket: the same error as std.
    assert_eq!(
        kind(s.set_multicast_loop_v6(true)),
        kind(std.set_multicast_loop_v6(true))
    );
    assert_eq!(s.take_error()?.map(|e| e.kind()), None);
    Ok(())
}

#[test]
fn ipv6_multicast_loop_round_trips_like_std() -> io::Result<()> {
    let s = UdpSocket::bind("[::1]:0")?;
    let std = std::net::UdpSocket::bind("[::1]:0")?;
    for on in [false, true] {
        s.set_multicast_loop_v6(on)?;
        std.set_multicast_loop_v6(on)?;
        assert_eq!(s.multicast_loop_v6()?, std.multicast_loop_v6()?);
        assert_eq!(s.multicast_loop_v6()?, on);
    }
    Ok(())
}

/// Sends multicast out of the loopback interface (`IP_MULTICAST_IF`, which
/// std does not expose): without it a host with no default route has no
/// route to a group.
fn multicast_out_of_loopback(s: &UdpSocket) -> io::Result<()> {
    let addr = libc::in_addr {
        s_addr: u32::from_ne_bytes(Ipv4Addr::LOCALHOST.octets()),
    };
    // SAFETY: a valid in_addr and its size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&addr as *const libc::in_addr).cast(),
            std::mem::size_of::<libc::in_addr>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[test]
fn multicast_on_loopback_join_receive_leave() -> io::Result<()> {
    let group = Ipv4Addr::new(239, 255, 42, 99);
    let receiver = UdpSocket::bind("0.0.0.0:0")?;
    let port = receiver.local_addr()?.port();
    receiver.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST)?;
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    multicast_out_of_loopback(&sender)?;
    sender.set_multicast_loop_v4(true)?;
    sender.set_multicast_ttl_v4(1)?;
    let r = green::spawn(move || -> io::Result<(Vec<u8>, UdpSocket)> {
        let mut buf = [0; 16];
        let (n, _) = receiver.recv_from(&mut buf)?;
        Ok((buf[..n].to_vec(), receiver))
    });
    green::yield_now(); // the receiver parks
    sender.send_to(b"to the group", (group, port))?;
    let (got, receiver) = r.wait()?;
    assert_eq!(got, b"to the group");
    receiver.leave_multicast_v4(&group, &Ipv4Addr::LOCALHOST)?;
    // Leaving a group not joined: the same error as std.
    let std = std::net::UdpSocket::bind("0.0.0.0:0")?;
    assert_eq!(
        kind(receiver.leave_multicast_v4(&group, &Ipv4Addr::LOCALHOST)),
        kind(std.leave_multicast_v4(&group, &Ipv4Addr::LOCALHOST))
    );
    Ok(())
}

#[test]
fn ipv6_multicast_join_and_leave_like_std() -> io::Result<()> {
    let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 3);
    let s = UdpSocket::bind("[::]:0")?;
    let std = std::net::UdpSocket::bind("[::]:0")?;
    // Interface 1 is loopback.
    let green_join = s.join_multicast_v6(&group, 1).map_err(|e| e.kind());
    let std_join = std.join_multicast_v6(&group, 1).map_err(|e| e.kind());
    assert_eq!(green_join, std_join);
    let green_leave = s.leave_multicast_v6(&group, 1).map_err(|e| e.kind());
    let std_leave = std.leave_multicast_v6(&group, 1).map_err(|e| e.kind());
    assert_eq!(green_leave, std_leave);
    Ok(())
}

#[test]
fn try_clone_shares_the_socket_and_copies_settings() -> io::Result<()> {
    let (a, b) = (local()?, local()?);
    b.set_read_timeout(Some(Duration::from_secs(5)))?;
    let clone = b.try_clone()?;
    assert_eq!(clone.local_addr()?, b.local_addr()?);
    assert_eq!(clone.read_timeout()?, Some(Duration::from_secs(5)));
    a.send_to(b"via original addr", b.local_addr()?)?;
    let mut buf = [0; 32];
    let (n, _) = clone.recv_from(&mut buf)?;
    assert_eq!(&buf[..n], b"via original addr");
    clone.set_read_timeout(None)?;
    assert_eq!(b.read_timeout()?, Some(Duration::from_secs(5)));
    Ok(())
}

#[test]
fn into_std_and_from_std_round_trip() -> io::Result<()> {
    let (a, b) = (local()?, local()?);
    b.set_read_timeout(Some(Duration::from_secs(3)))?;
    let std_b = b.into_std()?;
    assert!(!is_nonblocking_fd(std_b.as_raw_fd()));
    assert_eq!(std_b.read_timeout()?, Some(Duration::from_secs(3)));
    a.send_to(b"1", std_b.local_addr()?)?;
    let mut buf = [0; 4];
    assert_eq!(std_b.recv(&mut buf)?, 1); // already queued: no wait
    std_b.set_write_timeout(Some(Duration::from_secs(4)))?;
    let b = UdpSocket::from_std(std_b)?;
    assert!(is_nonblocking_fd(b.as_raw_fd()));
    assert_eq!(b.write_timeout()?, Some(Duration::from_secs(4)));
    let to = b.local_addr()?;
    let receiver = green::spawn(move || b.recv(&mut [0; 4]));
    green::yield_now();
    a.send_to(b"22", to)?;
    assert_eq!(receiver.wait()?, 2);
    Ok(())
}

#[test]
fn dropping_socket_wakes_fd_waiter_with_error() -> io::Result<()> {
    let s = local()?;
    let fd = s.as_raw_fd();
    let waiter = green::spawn(move || trampoline(fd, Interest::Read, None));
    green::yield_now(); // the waiter parks on the fd
    drop(s);
    assert_eq!(kind(waiter.wait()), ErrorKind::ConnectionAborted);
    Ok(())
}

#[test]
fn two_receivers_are_served_in_arrival_order() -> io::Result<()> {
    let (a, b) = (local()?, local()?);
    let to = b.local_addr()?;
    let b = Rc::new(b);
    let got = Rc::new(RefCell::new(Vec::new()));
    let receivers: Vec<_> = (0..2)
        .map(|i| {
            let (b, got) = (b.clone(), got.clone());
            let gt = green::spawn(move || -> io::Result<()> {
                let mut buf = [0; 1];
                b.recv_from(&mut buf)?;
                got.borrow_mut().push((i, buf[0]));
                Ok(())
            });
            green::yield_now(); // receiver i parks before the next starts
            gt
        })
        .collect();
    a.send_to(b"a", to)?;
    while got.borrow().is_empty() {
        green::yield_now();
    }
    a.send_to(b"b", to)?;
    for r in receivers {
        r.wait()?;
    }
    assert_eq!(*got.borrow(), [(0, b'a'), (1, b'b')]);
    Ok(())
}

#[test]
fn plain_os_thread_sender_wakes_sleeping_hub() -> io::Result<()> {
    let b = local()?;
    let to = b.local_addr()?;
    let me = common::tid();
    let sender = std::thread::spawn(move || -> io::Result<()> {
        common::wait_until_asleep_in_poller(me);
        std_local()?.send_to(b"from a plain thread", to)?;
        Ok(())
    });
    let mut buf = [0; 32];
    let (n, _) = b.recv_from(&mut buf)?; // the root runs the hub and sleeps
    assert_eq!(&buf[..n], b"from a plain thread");
    sender.join().unwrap()
}

#[test]
fn socket_moves_to_another_hub() -> io::Result<()> {
    let (a, b) = (local()?, local()?);
    let (a_addr, b_addr) = (a.local_addr()?, b.local_addr()?);
    // Use `b` here first, so this hub registers it.
    a.send_to(b"here", b_addr)?;
    b.recv_from(&mut [0; 8])?;
    let other = std::thread::spawn(move || -> io::Result<Vec<u8>> {
        // An echo on the other thread's hub, in a green thread.
        green::spawn(move || -> io::Result<Vec<u8>> {
            let mut buf = [0; 16];
            let (n, from) = b.recv_from(&mut buf)?;
            b.send_to(&buf[..n], from)?;
            Ok(buf[..n].to_vec())
        })
        .wait()
    });
    a.send_to(b"there", b_addr)?;
    let mut buf = [0; 16];
    let (n, from) = a.recv_from(&mut buf)?;
    assert_eq!((&buf[..n], from), (&b"there"[..], b_addr));
    assert_eq!(other.join().unwrap()?, b"there");
    assert_eq!(a.local_addr()?, a_addr);
    Ok(())
}

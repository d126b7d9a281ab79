//! `green::listen`, `green::connect`, `green::serve` and `Server`: socket
//! options, handlers in a bounded pool, back-pressure, stopping from a
//! handler, another green thread or another OS thread, accept errors, and
//! `SO_REUSEPORT` listeners on several hubs.

mod common;

use std::cell::Cell;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::Command;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use green::net::{TcpListener, TcpSocket, TcpStream};
use green::{Event, Server, ServerHandle, StopServe};

fn getsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid c_int and its size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v)
}

/// Connections waiting in the accept queue of listening socket `fd`.
fn accept_queue_len(fd: RawFd) -> io::Result<u32> {
    // SAFETY: all-zero bytes are a valid tcp_info.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` has room for `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // For a listening socket the kernel reports its accept queue here.
    Ok(info.tcpi_unacked)
}

/// Connects to `addr` and reads until the server closes the connection.
fn connect_and_read_all(addr: std::net::SocketAddr) -> io::Result<Vec<u8>> {
    let mut s = green::connect(addr)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

// Server types are send and sync: checked when this file compiles.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Server>();
    assert_send_sync::<ServerHandle>();
    assert_send_sync::<StopServe>();
};

#[test]
fn listen_on_port_zero_sets_reuseaddr_only() -> io::Result<()> {
    let l = green::listen("127.0.0.1:0")?;
    let fd = l.as_raw_fd();
    assert_eq!(getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR)?, 1);
    assert_eq!(getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT)?, 0);
    Ok(())
}

#[test]
fn listen_on_a_port_sets_reuseport() -> io::Result<()> {
    let first = TcpSocket::new_v4()?;
    first.set_reuseport(true)?;
    first.bind("127.0.0.1:0".parse().unwrap())?;
    let addr = first.local_addr()?;
    let _first = first.listen(16)?;
    // Binding the same port works only with SO_REUSEPORT on both.
    let second = green::listen(addr)?;
    let fd = second.as_raw_fd();
    assert_eq!(getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT)?, 1);
    assert_eq!(getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR)?, 1);
    Ok(())
}

#[test]
fn listen_and_connect_bad_addresses_are_invalid_input() {
    assert_eq!(
        green::listen("nonsense").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        green::connect("nonsense").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

#[test]
fn connect_reaches_listener() -> io::Result<()> {
    let l = green::listen("127.0.0.1:0")?;
    let c = green::connect(l.local_addr()?)?;
    let (_s, from) = l.accept()?;
    assert_eq!(from, c.local_addr()?);
    Ok(())
}

#[test]
#[should_panic(expected = "concurrency of at least 1")]
fn concurrency_zero_panics() {
    let l = green::listen("127.0.0.1:0").unwrap();
    let _ = Server::new(l, 0);
}

#[test]
fn handler_gets_each_connection_and_stop_handle_ends_serve() -> io::Result<()> {
    let server = Server::new(green::listen("127.0.0.1:0")?, 10);
    let addr = server.local_addr()?;
    let handle = server.handle();
    let srv = green::spawn(move || {
        server.serve(|mut s, peer| {
            assert_eq!(s.peer_addr()?, peer);
            let mut b = [0];
            s.read_exact(&mut b)?;
            s.write_all(&[b[0] * 2])
        })
    });
    for i in 0..20u8 {
        let mut c = green::connect(addr)?;
        c.write_all(&[i])?;
        let mut b = [0];
        c.read_exact(&mut b)?;
        assert_eq!(b[0], i * 2);
    }
    assert!(!handle.is_stopped());
    handle.stop();
    assert!(handle.is_stopped());
    srv.wait()
}

#[test]
fn handler_returning_stop_serve_ends_serve() -> io::Result<()> {
    let listener = green::listen("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let served = Rc::new(Cell::new(0));
    let s = served.clone();
    let srv = green::spawn(move || {
        green::serve(
            listener,
            move |mut c, _| {
                s.set(s.get() + 1);
                let mut b = [0];
                c.read_exact(&mut b)?;
                if b[0] == b'q' {
                    return Err(StopServe.into());
                }
                Ok(())
            },
            10,
        )
    });
    green::connect(addr)?.write_all(b"a")?;
    green::connect(addr)?.write_all(b"q")?;
    srv.wait()?;
    assert_eq!(served.get(), 2);
    Ok(())
}

#[test]
fn stop_from_plain_os_thread_wakes_sleeping_serve() -> io::Result<()> {
    let server = Server::new(green::listen("127.0.0.1:0")?, 10);
    let handle = server.handle();
    let me = common::tid();
    let stopper = std::thread::spawn(move || {
        common::wait_until_asleep_in_poller(me);
        handle.stop();
    });
    server.serve(|_, _| Ok(()))?; // the root runs the hub and sleeps
    stopper.join().unwrap();
    Ok(())
}

#[test]
fn stop_from_another_hub() -> io::Result<()> {
    let server = Server::new(green::listen("127.0.0.1:0")?, 10);
    let addr = server.local_addr()?;
    let handle = server.handle();
    let other = std::thread::spawn(move || -> io::Result<()> {
        // A green client on this thread's hub, then the stop.
        green::spawn(move || -> io::Result<()> {
            assert_eq!(connect_and_read_all(addr)?, b"hi");
            handle.stop();
            Ok(())
        })
        .wait()
    });
    server.serve(|mut s, _| s.write_all(b"hi"))?;
    other.join().unwrap()
}

#[test]
fn stop_before_serve_returns_at_once() -> io::Result<()> {
    let server = Server::new(green::listen("127.0.0.1:0")?, 10);
    let handle = server.handle();
    handle.stop();
    handle.stop(); // a second stop does nothing more
    server.serve(|_, _| panic!("no connection was made"))
}

#[test]
fn serve_returns_after_in_flight_handlers_finish() -> io::Result<()> {
    let server = Server::new(green::listen("127.0.0.1:0")?, 10);
    let addr = server.local_addr()?;
    let handle = server.handle();
    let (started, release) = (Event::new(), Event::new());
    let finished = Rc::new(Cell::new(false));
    let (st, rel, fin) = (started.clone(), release.clone(), finished.clone());
    let srv = green::spawn(move || {
        server.serve(move |_s, _| {
            st.send(()).unwrap();
            rel.wait();
            fin.set(true);
            Ok(())
        })
    });
    let _client = green::connect(addr)?;
    started.wait();
    handle.stop();
    // Stopped, with a handler still running: new connections are refused
    // once the listener closes, and serve has not returned.
    let mut refused = false;
    for _ in 0..100 {
        green::yield_now();
        match green::connect(addr) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                refused = true;
                break;
            }
            _ => {}
        }
    }
    assert!(refused, "the listener stayed open after stop");
    assert!(!srv.is_finished());
    release.send(()).unwrap();
    srv.wait()?;
    assert!(finished.get());
    Ok(())
}

#[test]
fn full_pool_leaves_connections_in_the_listen_queue() -> io::Result<()> {
    const CONCURRENCY: usize = 3;
    let listener = green::listen("127.0.0.1:0")?;
    let listener_fd = listener.as_raw_fd();
    let server = Server::new(listener, CONCURRENCY);
    let addr = server.local_addr()?;
    let handle = server.handle();
    let (all_busy, gate, all_served) = (Event::new(), Event::new(), Event::new());
    let active = Rc::new(Cell::new(0));
    let most = Rc::new(Cell::new(0));
    let served = Rc::new(Cell::new(0));
    let srv = {
        let (all_busy, gate, all_served) = (all_busy.clone(), gate.clone(), all_served.clone());
        let (active, most, served) = (active.clone(), most.clone(), served.clone());
        green::spawn(move || {
            server.serve(move |_s, _| {
                active.set(active.get() + 1);
                most.set(most.get().max(active.get()));
                if active.get() == CONCURRENCY {
                    let _ = all_busy.send(());
                }
                gate.wait();
                active.set(active.get() - 1);
                served.set(served.get() + 1);
                if served.get() == CONCURRENCY + 1 {
                    all_served.send(()).unwrap();
                }
                Ok(())
            })
        })
    };
    let _clients = (0..CONCURRENCY)
        .map(|_| green::connect(addr))
        .collect::<io::Result<Vec<TcpStream>>>()?;
    all_busy.wait();
    // The pool is full. One more connection completes its handshake in the
    // kernel; while the root sleeps the hub polls, so a server that could
    // accept it would.
    let _extra = green::connect(addr)?;
    green::sleep(Duration::from_millis(50));
    assert_eq!(
        accept_queue_len(listener_fd)?,
        1,
        "the extra connection was accepted"
    );
    assert_eq!(active.get(), CONCURRENCY);
    gate.send(()).unwrap();
    all_served.wait();
    assert_eq!(most.get(), CONCURRENCY);
    assert_eq!(accept_queue_len(listener_fd)?, 0);
    handle.stop();
    srv.wait()
}

#[test]
fn handler_errors_and_panics_do_not_stop_the_server() -> io::Result<()> {
    let server = Server::new(green::listen("127.0.0.1:0")?, 10);
    let addr = server.local_addr()?;
    let handle = server.handle();
    let srv = green::spawn(move || {
        server.serve(|mut s, _| {
            let mut b = [0];
            s.read_exact(&mut b)?;
            match b[0] {
                b'e' => Err(io::Error::other("this connection failed")),
                b'p' => panic!("handler panics on purpose"),
                _ => s.write_all(b"ok"),
            }
        })
    });
    for first in [b'e', b'p', b'x'] {
        let mut c = green::connect(addr)?;
        c.write_all(&[first])?;
        let mut out = Vec::new();
        c.read_to_end(&mut out)?;
        assert_eq!(out, if first == b'x' { &b"ok"[..] } else { &b""[..] });
    }
    assert!(!handle.is_stopped());
    handle.stop();
    srv.wait()
}

#[test]
fn listener_that_is_not_listening_ends_serve_with_its_error() -> io::Result<()> {
    // A TCP socket that never listened: accept fails with EINVAL.
    let not_listening = TcpListener::from(OwnedFd::from(TcpSocket::new_v4()?));
    let server = Server::new(not_listening, 10);
    let handle = server.handle();
    let err = server.serve(|_, _| Ok(())).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    assert!(handle.is_stopped());
    Ok(())
}

#[test]
fn timeout_around_serve_stops_accepting_and_closes_listener() -> io::Result<()> {
    let server = Server::new(green::listen("127.0.0.1:0")?, 10);
    let addr = server.local_addr()?;
    let r = green::with_timeout(Duration::from_millis(20), move || {
        server.serve(|_, _| Ok(()))
    });
    assert!(r.is_err(), "serve returned before its timeout");
    green::yield_now(); // the hub runs: the acceptor is killed
    assert_eq!(
        green::connect(addr).unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );
    Ok(())
}

#[test]
fn reuseport_listeners_on_two_hubs_both_accept() -> io::Result<()> {
    let first = TcpSocket::new_v4()?;
    first.set_reuseaddr(true)?;
    first.set_reuseport(true)?;
    first.bind("127.0.0.1:0".parse().unwrap())?;
    let first = first.listen(1024)?;
    let addr = first.local_addr()?;
    let second = green::listen(addr)?;
    let hits = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let servers: Vec<_> = [first, second]
        .into_iter()
        .enumerate()
        .map(|(i, listener)| {
            let server = Server::new(listener, 100);
            let handle = server.handle();
            let hits = hits.clone();
            // Each OS thread serves on its own hub.
            let t = std::thread::spawn(move || {
                server.serve(move |mut s, _| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                    s.write_all(&[i as u8])
                })
            });
            (t, handle)
        })
        .collect();
    // The kernel spreads connections by a hash of their addresses: connect
    // until both listeners have served one.
    let mut tries = 0;
    while hits.iter().any(|h| h.load(Ordering::Relaxed) == 0) {
        tries += 1;
        assert!(tries < 2000, "one listener never got a connection");
        let got = connect_and_read_all(addr)?;
        assert_eq!(got.len(), 1);
    }
    for (t, handle) in servers {
        handle.stop();
        t.join().unwrap()?;
    }
    Ok(())
}

/// CPU time this process has used, user plus system.
fn cpu_time() -> Duration {
    // SAFETY: all-zero bytes are a valid rusage; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid rusage pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

const EMFILE_CHILD: &str = "GREEN_TEST_SERVE_EMFILE_CHILD";

/// Runs in a child process: it lowers its own fd limit.
fn out_of_fds_scenario() -> io::Result<()> {
    let server = Server::new(green::listen("127.0.0.1:0")?, 10);
    let addr = server.local_addr()?;
    let handle = server.handle();
    let served = Event::new();
    let s = served.clone();
    let srv = green::spawn(move || {
        server.serve(move |_, _| {
            let _ = s.send(());
            Ok(())
        })
    });
    let client = TcpSocket::new_v4()?; // its fd exists before the limit bites
                                       // Use up every fd.
    let limit = libc::rlimit {
        rlim_cur: 256,
        rlim_max: 256,
    };
    // SAFETY: a valid rlimit pointer.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let mut fillers = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => fillers.push(f),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => return Err(e),
        }
    }
    // The handshake completes in the kernel; accept fails with EMFILE.
    let _client = client.connect(addr)?;
    let (cpu, wall) = (cpu_time(), Duration::from_millis(200));
    green::sleep(wall);
    let used = cpu_time() - cpu;
    assert!(!served.ready(), "a connection was served without a free fd");
    // A spinning accept loop would use most of the wall time.
    assert!(
        used < wall / 2,
        "accept spun on EMFILE: {used:?} of CPU in {wall:?}"
    );
    drop(fillers);
    // Within the longest back-off (1 s) the server accepts again.
    assert_eq!(served.wait_timeout(Duration::from_secs(10)), Some(()));
    handle.stop();
    srv.wait()?;
    println!("out-of-fds scenario passed");
    Ok(())
}

#[test]
fn accept_out_of_fds_backs_off_and_recovers() -> io::Result<()> {
    if std::env::var_os(EMFILE_CHILD).is_some() {
        return out_of_fds_scenario();
    }
    // The scenario lowers the process's fd limit: run it in a child.
    let out = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "accept_out_of_fds_backs_off_and_recovers",
            "--nocapture",
        ])
        .env(EMFILE_CHILD, "1")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("out-of-fds scenario passed"), "{stdout}");
    Ok(())
}

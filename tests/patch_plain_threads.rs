//! Plain OS threads (no hub) in a patched process behave as without
//! `green::patch()`: their accepts, reads, writes, sleeps and locks block
//! their own thread, also on sockets that green made non-blocking
//! underneath for a green thread that used them first.

mod common;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[path = "common/patched.rs"]
mod patched;
use patched::{green_used_pair, kernel_nonblocking};

/// A connected pair green manages (non-blocking in the kernel).
fn green_managed_pair() -> io::Result<(TcpStream, TcpStream)> {
    let (client, server) = green_used_pair()?;
    assert!(kernel_nonblocking(client.as_raw_fd())?);
    assert!(kernel_nonblocking(server.as_raw_fd())?);
    Ok((client, server))
}

#[test]
fn plain_threads_block_in_accept_read_and_write() -> io::Result<()> {
    green::patch();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (tid_tx, tid_rx) = mpsc::channel();
    let server = thread::spawn(move || -> io::Result<bool> {
        tid_tx.send(common::tid()).expect("the test listens");
        let (mut s, _) = listener.accept()?;
        let mut buf = [0; 4];
        s.read_exact(&mut buf)?;
        s.write_all(&buf)?;
        kernel_nonblocking(s.as_raw_fd())
    });
    let client = thread::spawn(move || -> io::Result<([u8; 4], bool)> {
        // Connect only once the server blocks in accept.
        common::wait_until_sleeping(tid_rx.recv().expect("the server's tid"));
        let mut s = TcpStream::connect(addr)?;
        s.write_all(b"ping")?;
        let mut buf = [0; 4];
        s.read_exact(&mut buf)?;
        Ok((buf, kernel_nonblocking(s.as_raw_fd())?))
    });
    let server_nonblocking = server.join().expect("server thread")?;
    let (echo, client_nonblocking) = client.join().expect("client thread")?;
    assert_eq!(&echo, b"ping");
    assert!(
        !server_nonblocking,
        "green left the plain thread's socket alone"
    );
    assert!(
        !client_nonblocking,
        "green left the plain thread's socket alone"
    );
    Ok(())
}

#[test]
fn plain_thread_sleep_blocks_for_its_duration() {
    green::patch();
    let d = Duration::from_millis(100);
    let elapsed = thread::spawn(move || {
        let t = Instant::now();
        thread::sleep(d);
        t.elapsed()
    })
    .join()
    .expect("sleeper thread");
    assert!(elapsed >= d, "slept {elapsed:?}");
}

#[test]
fn plain_threads_contend_for_a_mutex_held_across_a_sleep() {
    green::patch();
    let m = Arc::new(Mutex::new(0));
    let (locked_tx, locked_rx) = mpsc::channel();
    let holder = {
        let m = m.clone();
        thread::spawn(move || {
            let mut g = m.lock().expect("not poisoned");
            locked_tx.send(()).expect("the waiter listens");
            thread::sleep(Duration::from_millis(100));
            *g = 1;
            Instant::now()
        })
    };
    let waiter = {
        let m = m.clone();
        thread::spawn(move || {
            locked_rx.recv().expect("the holder locked");
            let g = m.lock().expect("not poisoned");
            (*g, Instant::now())
        })
    };
    let released = holder.join().expect("holder thread");
    let (seen, acquired) = waiter.join().expect("waiter thread");
    assert_eq!(seen, 1, "the waiter saw the holder's write");
    assert!(acquired >= released, "the waiter waited for the holder");
}

#[test]
fn plain_thread_read_waits_on_a_socket_green_made_nonblocking() -> io::Result<()> {
    green::patch();
    let (client, mut server) = green_managed_pair()?;
    let (tid_tx, tid_rx) = mpsc::channel();
    let reader = thread::spawn(move || -> io::Result<[u8; 5]> {
        tid_tx.send(common::tid()).expect("the test listens");
        let mut s = client;
        let mut buf = [0; 5];
        s.read_exact(&mut buf)?;
        s.write_all(b"world")?;
        Ok(buf)
    });
    // Send only once the reader sleeps in its read: a read that gave
    // WouldBlock instead of waiting would fail the reader.
    common::wait_until_sleeping(tid_rx.recv().expect("the reader's tid"));
    server.write_all(b"hello")?;
    let got = reader.join().expect("reader thread")?;
    assert_eq!(&got, b"hello");
    let mut reply = [0; 5];
    server.read_exact(&mut reply)?;
    assert_eq!(&reply, b"world");
    Ok(())
}

#[test]
fn plain_thread_read_timeout_expires_with_would_block_on_a_green_socket() -> io::Result<()> {
    green::patch();
    let (client, _server) = green_managed_pair()?;
    let timeout = Duration::from_millis(100);
    let (r, elapsed) = thread::spawn(move || {
        client.set_read_timeout(Some(timeout)).expect("set");
        let t = Instant::now();
        let r = (&client).read(&mut [0; 8]).map_err(|e| e.kind());
        (r.map(drop), t.elapsed())
    })
    .join()
    .expect("reader thread");
    assert_eq!(r, Err(io::ErrorKind::WouldBlock));
    assert!(elapsed >= timeout, "gave up after {elapsed:?}");
    // A margin of 50x for a loaded machine.
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    Ok(())
}

#[test]
fn plain_thread_accept_waits_on_a_listener_green_made_nonblocking() -> io::Result<()> {
    green::patch();
    // Bound on this OS thread's root context, which has a hub: green
    // manages the listener.
    let listener = green::spawn(|| TcpListener::bind("127.0.0.1:0")).wait()?;
    let addr = listener.local_addr()?;
    assert!(kernel_nonblocking(listener.as_raw_fd())?);
    let (tid_tx, tid_rx) = mpsc::channel();
    let acceptor = thread::spawn(move || -> io::Result<[u8; 2]> {
        tid_tx.send(common::tid()).expect("the test listens");
        let (mut s, _) = listener.accept()?;
        let mut buf = [0; 2];
        s.read_exact(&mut buf)?;
        Ok(buf)
    });
    // Connect only once the acceptor sleeps in accept.
    common::wait_until_sleeping(tid_rx.recv().expect("the acceptor's tid"));
    let mut client = TcpStream::connect(addr)?;
    client.write_all(b"ok")?;
    assert_eq!(&acceptor.join().expect("acceptor thread")?, b"ok");
    Ok(())
}

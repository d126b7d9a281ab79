//! `echo`: a TCP echo server on loopback, 64-byte messages, closed loop, at
//! 100, 1 000 and 10 000 connections, served by green and its peers and
//! driven by one and the same client.
//!
//! Servers (each accepts on one listener made the same way: `SO_REUSEADDR`,
//! backlog 4096, one task / green thread / OS thread per connection, which
//! reads into a 1 KiB buffer and writes back what it read):
//! - `green`: green threads on one hub (the main thread), `green::net`;
//! - `std-patched`: a server written against std only (`std::net`'s
//!   `TcpListener::accept` and `TcpStream` read and `write_all`, the code
//!   of the `std` server below) under `green::patch()`, with `green::spawn`
//!   in place of `std::thread::spawn`: green threads on one hub, whose
//!   blocking std calls green's interposers make cooperative;
//! - `green-per-core`: one OS thread per core, each with its own hub and its
//!   own `SO_REUSEPORT` listener on the same port (the kernel spreads the
//!   connections over them);
//! - `tokio-ct`: tokio tasks on a current-thread runtime;
//! - `tokio-mt`: tokio tasks on a multi-thread runtime, one worker per core;
//! - `may`: may coroutines, one worker per core (may's default);
//! - `std`: one OS thread per connection, 64 KiB stacks, blocking I/O.
//!
//! The client is a separate process (this binary re-executed with
//! `--client`), written with raw epoll (level-triggered) and no runtime, on
//! one OS thread by default. It connects every connection (at most 256
//! connects in flight), sends one message on each and waits for every echo
//! (so that the server has accepted and served them all), then runs closed
//! loops: each connection sends 64 bytes, waits for their echo (checking it
//! byte for byte), and sends again. After a warm-up it counts the round
//! trips completed in a fixed window and records each one's latency (send to
//! last byte of the echo) in a log-linear histogram (32 buckets per power of
//! two: at most 3 % off).
//!
//! The client also reads the server's CPU time (user + system, all threads,
//! from `/proc/PID/stat`) at the start and the end of the window: the table
//! gives it per round trip, a figure that depends much less than the rate on
//! what else runs on the machine.
//!
//! The server runs in its own child process too, so that each process holds
//! at most one side of the connections (10 000 fds each, under the usual
//! `ulimit -n` of 20 000). A server exits when its standard input closes.
//!
//! On a 2-core machine the client and the server share the cores: the
//! figures measure the whole loopback system, client included, and a
//! server with more OS threads than free cores competes with the client.
//!
//! Settings (environment variables):
//! - `ECHO_SECS`: measuring window per case in seconds (default 2);
//! - `ECHO_WARMUP_SECS`: warm-up per case in seconds (default 0.5);
//! - `ECHO_CONNS`: connection counts, comma-separated (default
//!   `100,1000,10000`);
//! - `ECHO_SERVERS`: servers, comma-separated (default: all of them);
//! - `ECHO_CLIENT_THREADS`: client OS threads (default 1);
//! - `ECHO_REPS`: runs per case (default 3); the cases run in rounds (each
//!   round runs every case once) and the table shows the run with the
//!   median rate.
//!
//! When the run has both `green` and `std-patched`, a last table compares
//! them at each connection count, against the target of at least 0.9x
//! `green`'s rate for std under `green::patch()`. The two run one after the
//! other in each round, so the ratio is taken per round (a slow spell of the
//! machine falls on both) and the table gives the median of the rounds'
//! ratios, of rates and of server CPU per round trip.
//!
//! Syscall count: `cargo bench --bench echo -- --syscalls` runs each server
//! (default `green,tokio-ct`; `ECHO_SERVERS` chooses) under `strace -f -c`,
//! twice, with 100 connections doing 500 and then 2 500 round trips each
//! (`ECHO_SYSCALL_CONNS`, `ECHO_SYSCALL_TRIPS=500,2500`), and prints the
//! server's system calls per echoed message from the difference of the two
//! runs, so that start-up and connection set-up cancel out. Under strace
//! each call is slowed down, so more events gather per `epoll_wait` than at
//! full speed; `ECHO_SYSCALL_TOOL=perf` counts with `perf stat` on the
//! syscall tracepoints instead, at full speed (no failed-call counts).
//!
//! Run: `cargo bench --bench echo` in `benches/`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use green_benches::{banner, check, fmt_ns, fmt_ratio, median, Table};

/// Bytes per message.
const MSG: usize = 64;
/// The servers' read buffer.
const SERVER_BUF: usize = 1024;
/// Listen backlog of every server (the kernel caps it at somaxconn).
const BACKLOG: libc::c_int = 4096;
/// Connects in flight at once in the client.
const CONNECTING: usize = 256;
/// Stack of each thread of the thread-per-connection server.
const STD_STACK: usize = 64 * 1024;
/// How long the client waits for any progress before it gives up.
const STALL: Duration = Duration::from_secs(60);

/// Least rate of std under `green::patch()`, as a share of `green::net`'s
/// on one hub.
const PATCHED_TARGET: f64 = 0.9;

/// Server keys and the names the table gives them.
const SERVERS: [(&str, &str); 7] = [
    ("green", "green, one hub"),
    ("std-patched", "std::net under green::patch(), one hub"),
    ("green-per-core", "green, one hub per core (SO_REUSEPORT)"),
    ("tokio-ct", "tokio current-thread"),
    ("tokio-mt", "tokio multi-thread"),
    ("may", "may"),
    ("std", "std, thread per connection"),
];

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: T) -> io::Result<()> {
    // SAFETY: `value` is a valid T for the duration of the call and its size
    // is passed along.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// A new TCP socket; non-blocking if asked.
fn tcp_socket(nonblocking: bool) -> io::Result<OwnedFd> {
    let mut ty = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    if nonblocking {
        ty |= libc::SOCK_NONBLOCK;
    }
    // SAFETY: plain syscall; the fd is owned at once.
    Ok(unsafe { OwnedFd::from_raw_fd(cvt(libc::socket(libc::AF_INET, ty, 0))?) })
}

/// A listener on 127.0.0.1:`port` (0: any free port), blocking, with
/// `SO_REUSEADDR`, and `SO_REUSEPORT` if asked.
fn listener(port: u16, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let fd = tcp_socket(false)?;
    let raw = fd.as_raw_fd();
    setsockopt(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1 as libc::c_int)?;
    if reuse_port {
        setsockopt(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1 as libc::c_int)?;
    }
    let sa = sockaddr(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    // SAFETY: `sa` is a valid sockaddr_in of the size passed.
    cvt(unsafe {
        libc::bind(
            raw,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })?;
    // SAFETY: plain syscall on our socket.
    cvt(unsafe { libc::listen(raw, BACKLOG) })?;
    Ok(std::net::TcpListener::from(fd))
}

// ---------------------------------------------------------------- servers

/// Exits the process when standard input closes (the parent is done, or
/// gone).
fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let _ = io::copy(&mut io::stdin(), &mut io::sink());
        std::process::exit(0);
    });
}

fn announce(port: u16) {
    println!("port {port}");
    let _ = io::stdout().flush();
}

/// Echoes until end of file or an error (the client resets its
/// connections when it is done).
fn echo_blocking<S: Read + Write>(mut s: S) {
    let mut buf = [0u8; SERVER_BUF];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

fn green_accept_loop(l: std::net::TcpListener) -> io::Result<()> {
    let l = green::net::TcpListener::from_std(l)?;
    loop {
        match l.accept() {
            Ok((s, _)) => green::spawn_n(move || echo_blocking(s)),
            Err(e) => eprintln!("green server: accept: {e}"),
        }
    }
}

fn serve_green() -> io::Result<()> {
    let l = listener(0, false)?;
    announce(l.local_addr()?.port());
    green_accept_loop(l)
}

fn serve_green_per_core() -> io::Result<()> {
    let first = listener(0, true)?;
    let port = first.local_addr()?.port();
    let mut all = vec![first];
    for _ in 1..cores() {
        all.push(listener(port, true)?);
    }
    announce(port);
    let threads: Vec<_> = all
        .into_iter()
        .map(|l| std::thread::spawn(move || green_accept_loop(l)))
        .collect();
    for t in threads {
        t.join().expect("green server thread")?;
    }
    Ok(())
}

async fn echo_tokio(mut s: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; SERVER_BUF];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The `std` server's code (std's accept loop, [`echo_blocking`] on a
/// `std::net::TcpStream`) under `green::patch()`, each connection on a
/// green thread of one hub.
fn serve_std_patched() -> io::Result<()> {
    green::patch();
    let l = listener(0, false)?;
    announce(l.local_addr()?.port());
    let acceptor = green::spawn(move || loop {
        match l.accept() {
            Ok((s, _)) => drop(green::spawn(move || echo_blocking(s))),
            Err(e) => eprintln!("std-patched server: accept: {e}"),
        }
    });
    acceptor
        .join()
        .map_err(|_| io::Error::other("the std-patched acceptor panicked"))
}

fn serve_tokio(rt: tokio::runtime::Runtime) -> io::Result<()> {
    let l = listener(0, false)?;
    l.set_nonblocking(true)?;
    let port = l.local_addr()?.port();
    rt.block_on(async move {
        let l = tokio::net::TcpListener::from_std(l)?;
        announce(port);
        loop {
            match l.accept().await {
                Ok((s, _)) => {
                    tokio::spawn(echo_tokio(s));
                }
                Err(e) => eprintln!("tokio server: accept: {e}"),
            }
        }
    })
}

fn serve_may() -> io::Result<()> {
    may::config().set_workers(cores());
    let l = listener(0, false)?;
    let port = l.local_addr()?.port();
    // SAFETY: the fd comes from a listener we own and give up here.
    let l = unsafe { may::net::TcpListener::from_raw_fd(l.into_raw_fd()) };
    announce(port);
    let acceptor = may::go!(move || loop {
        match l.accept() {
            Ok((s, _)) => {
                may::go!(move || echo_blocking(s));
            }
            Err(e) => eprintln!("may server: accept: {e}"),
        }
    });
    acceptor
        .join()
        .map_err(|_| io::Error::other("the may acceptor panicked"))
}

fn serve_std() -> io::Result<()> {
    let l = listener(0, false)?;
    announce(l.local_addr()?.port());
    loop {
        match l.accept() {
            Ok((s, _)) => {
                let spawned = std::thread::Builder::new()
                    .stack_size(STD_STACK)
                    .spawn(move || echo_blocking(s));
                if let Err(e) = spawned {
                    eprintln!("std server: cannot spawn a thread: {e}");
                }
            }
            Err(e) => eprintln!("std server: accept: {e}"),
        }
    }
}

fn server_main(kind: &str) -> io::Result<()> {
    exit_when_stdin_closes();
    let runtime = |mt: bool| {
        let mut b = if mt {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(cores());
            b
        } else {
            tokio::runtime::Builder::new_current_thread()
        };
        b.enable_io().build()
    };
    match kind {
        "green" => serve_green(),
        "green-per-core" => serve_green_per_core(),
        "std-patched" => serve_std_patched(),
        "tokio-ct" => serve_tokio(runtime(false)?),
        "tokio-mt" => serve_tokio(runtime(true)?),
        "may" => serve_may(),
        "std" => serve_std(),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unknown server {other:?}"),
        )),
    }
}

// ---------------------------------------------------------------- client

/// Round-trip latencies in nanoseconds, in log-linear buckets: exact below
/// 32 ns, then 32 buckets per power of two.
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            counts: vec![0; (64 - SUB_BITS as usize + 1) * SUB as usize],
            total: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let e = 63 - v.leading_zeros();
        let shift = e - SUB_BITS;
        (u64::from(shift + 1) * SUB + (v >> shift) - SUB) as usize
    }

    /// The middle of bucket `i`.
    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            return i;
        }
        let shift = i / SUB - 1;
        ((i % SUB + SUB) << shift) + ((1u64 << shift) >> 1)
    }

    fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Histogram::index(ns)] += 1;
        self.total += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    /// The latency below which a fraction `p` of the round trips fall.
    fn percentile(&self, p: f64) -> u64 {
        let rank = ((p * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Histogram::value(i);
            }
        }
        0
    }
}

/// What the client runs after the first round trip on every connection.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Closed loops for a warm-up, then a measuring window.
    Timed { warmup: Duration, window: Duration },
    /// Exactly this many round trips per connection, then close.
    Count(u64),
}

impl Mode {
    fn to_arg(self) -> String {
        match self {
            Mode::Timed { warmup, window } => {
                format!("timed:{}:{}", warmup.as_nanos(), window.as_nanos())
            }
            Mode::Count(n) => format!("count:{n}"),
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        let mut it = s.split(':');
        match (it.next()?, it.next(), it.next()) {
            ("timed", Some(w), Some(m)) => Some(Mode::Timed {
                warmup: Duration::from_nanos(w.parse().ok()?),
                window: Duration::from_nanos(m.parse().ok()?),
            }),
            ("count", Some(n), None) => Some(Mode::Count(n.parse().ok()?)),
            _ => None,
        }
    }
}

/// One client connection.
struct Conn {
    fd: OwnedFd,
    /// Messages sent so far; the one in flight is number `seq - 1`.
    seq: u64,
    sent_at: Instant,
    got: usize,
    buf: [u8; MSG],
}

/// The message number `seq` of connection `id`.
fn message(id: u64, seq: u64) -> [u8; MSG] {
    let mut m = [(id ^ seq) as u8; MSG];
    m[..8].copy_from_slice(&id.to_le_bytes());
    m[8..16].copy_from_slice(&seq.to_le_bytes());
    m
}

fn last_err(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl Conn {
    /// Sends the next message (one `write` of 64 bytes).
    fn send(&mut self, id: u64, now: Instant) -> io::Result<()> {
        let m = message(id, self.seq);
        // SAFETY: writes MSG bytes from a valid buffer to our socket.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), m.as_ptr().cast(), MSG) };
        if n != MSG as isize {
            return Err(if n < 0 {
                last_err("client write")
            } else {
                io::Error::other(format!("client write: short write of {n} bytes"))
            });
        }
        self.seq += 1;
        self.sent_at = now;
        Ok(())
    }

    /// Reads what has arrived; returns whether the whole echo is in (and
    /// checked).
    fn receive(&mut self, id: u64) -> io::Result<bool> {
        let want = MSG - self.got;
        // SAFETY: reads at most `want` bytes into the rest of our buffer.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                self.buf[self.got..].as_mut_ptr().cast(),
                want,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                return Ok(false);
            }
            return Err(io::Error::new(e.kind(), format!("client read: {e}")));
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed a connection",
            ));
        }
        self.got += n as usize;
        if self.got < MSG {
            return Ok(false);
        }
        self.got = 0;
        if self.buf != message(id, self.seq - 1) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "connection {id}: the echo differs from message {}",
                    self.seq - 1
                ),
            ));
        }
        Ok(true)
    }
}

struct Epoll(OwnedFd);

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall; the fd is owned at once.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just returned to us.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: libc::c_int, key: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: events as u32,
            u64: key,
        };
        // SAFETY: `ev` is valid for the call.
        cvt(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, &mut ev) })?;
        Ok(())
    }

    /// Waits at most `timeout`; returns the keys of the ready fds.
    fn wait<'a>(
        &self,
        events: &'a mut [libc::epoll_event],
        timeout: Duration,
    ) -> io::Result<impl Iterator<Item = u64> + 'a> {
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: `events` has room for the count passed.
        let n = unsafe {
            libc::epoll_wait(
                self.0.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                ms,
            )
        };
        let n = if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
            0
        } else {
            n as usize
        };
        Ok(events[..n].iter().map(|e| e.u64))
    }
}

fn stalled(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("{what}: no progress for {} s", STALL.as_secs()),
    )
}

/// Opens `n` connections to `addr`, at most [`CONNECTING`] at a time.
fn connect_all(addr: SocketAddrV4, n: usize) -> io::Result<Vec<OwnedFd>> {
    let ep = Epoll::new()?;
    let sa = sockaddr(addr);
    let mut slots: Vec<Option<OwnedFd>> = (0..n).map(|_| None).collect();
    let mut connected = vec![false; n];
    let (mut next, mut pending, mut done) = (0, 0, 0);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; CONNECTING];
    while done < n {
        while pending < CONNECTING && next < n {
            let fd = tcp_socket(true)?;
            // SAFETY: `sa` is a valid sockaddr_in of the size passed.
            let rc = unsafe {
                libc::connect(
                    fd.as_raw_fd(),
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                connected[next] = true;
                done += 1;
            } else {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EINPROGRESS) {
                    return Err(io::Error::new(e.kind(), format!("connect: {e}")));
                }
                ep.ctl(
                    libc::EPOLL_CTL_ADD,
                    fd.as_raw_fd(),
                    libc::EPOLLOUT,
                    next as u64,
                )?;
                pending += 1;
            }
            slots[next] = Some(fd);
            next += 1;
        }
        if pending == 0 {
            continue;
        }
        let mut any = false;
        for key in ep.wait(&mut events, STALL)? {
            any = true;
            let i = key as usize;
            let fd = slots[i].as_ref().expect("a pending connect").as_raw_fd();
            let mut err: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: `err` and `len` are valid for the call.
            cvt(unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    (&mut err as *mut libc::c_int).cast(),
                    &mut len,
                )
            })?;
            if err != 0 {
                let e = io::Error::from_raw_os_error(err);
                return Err(io::Error::new(e.kind(), format!("connect: {e}")));
            }
            ep.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)?;
            connected[i] = true;
            pending -= 1;
            done += 1;
        }
        if !any {
            return Err(stalled("connecting"));
        }
    }
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let fds: Vec<OwnedFd> = slots.into_iter().map(|s| s.expect("connected")).collect();
    for fd in &fds {
        let raw = fd.as_raw_fd();
        setsockopt(raw, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1 as libc::c_int)?;
        // Close with a reset: no TIME_WAIT pile-up over the runs.
        setsockopt(raw, libc::SOL_SOCKET, libc::SO_LINGER, linger)?;
    }
    Ok(fds)
}

/// One client thread's share: `conns[i]` has id `first + i`.
struct Share {
    first: u64,
    conns: Vec<Conn>,
}

/// What one client thread measured.
struct Measured {
    trips: u64,
    hist: Histogram,
}

/// Runs the closed loops of one share, level-triggered, until `end` (timed)
/// or until every connection has done its round trips (count).
fn run_share(share: &mut Share, mode: Mode, t0: Instant) -> io::Result<Measured> {
    let ep = Epoll::new()?;
    let now = Instant::now();
    for (i, c) in share.conns.iter_mut().enumerate() {
        ep.ctl(
            libc::EPOLL_CTL_ADD,
            c.fd.as_raw_fd(),
            libc::EPOLLIN,
            i as u64,
        )?;
        c.send(share.first + i as u64, now)?;
    }
    let (measure_from, end) = match mode {
        Mode::Timed { warmup, window } => (t0 + warmup, Some(t0 + warmup + window)),
        Mode::Count(_) => (t0, None),
    };
    let target = match mode {
        Mode::Count(n) => n + 1,
        Mode::Timed { .. } => u64::MAX,
    };
    let mut open = share.conns.len();
    let mut hist = Histogram::new();
    let mut trips = 0u64;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut last_progress = Instant::now();
    while open > 0 {
        let timeout = match end {
            Some(end) => end.saturating_duration_since(Instant::now()),
            None => STALL,
        };
        let mut any = false;
        for key in ep.wait(&mut events, timeout)? {
            any = true;
            let i = key as usize;
            let id = share.first + key;
            let c = &mut share.conns[i];
            if !c.receive(id)? {
                continue;
            }
            let now = Instant::now();
            if now >= measure_from && end.is_none_or(|e| now < e) {
                hist.record(now - c.sent_at);
                trips += 1;
            }
            if c.seq >= target {
                ep.ctl(libc::EPOLL_CTL_DEL, c.fd.as_raw_fd(), 0, 0)?;
                open -= 1;
            } else {
                c.send(id, now)?;
            }
        }
        let now = Instant::now();
        if end.is_some_and(|e| now >= e) {
            break;
        }
        if any {
            last_progress = now;
        } else if now - last_progress >= STALL {
            return Err(stalled("echoing"));
        }
    }
    Ok(Measured { trips, hist })
}

/// Sends one message on every connection and waits for every echo.
fn prime(conns: &mut [Conn]) -> io::Result<()> {
    let ep = Epoll::new()?;
    let now = Instant::now();
    for (i, c) in conns.iter_mut().enumerate() {
        ep.ctl(
            libc::EPOLL_CTL_ADD,
            c.fd.as_raw_fd(),
            libc::EPOLLIN,
            i as u64,
        )?;
        c.send(i as u64, now)?;
    }
    let mut left = conns.len();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    while left > 0 {
        let mut any = false;
        for key in ep.wait(&mut events, STALL)? {
            any = true;
            let c = &mut conns[key as usize];
            if c.receive(key)? {
                ep.ctl(libc::EPOLL_CTL_DEL, c.fd.as_raw_fd(), 0, 0)?;
                left -= 1;
            }
        }
        if !any {
            return Err(stalled("first round trips"));
        }
    }
    Ok(())
}

/// CPU time (user + system) that process `pid` has used so far, all its
/// threads together; `None` if `/proc` cannot tell.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses: the
    // state is field 3 of stat(5), utime and stime are fields 14 and 15.
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| Duration::from_secs_f64(ticks as f64 / hz as f64))
}

/// Sleeps until `t` (the client's main thread, while its workers run).
fn sleep_until(t: Instant) {
    std::thread::sleep(t.saturating_duration_since(Instant::now()));
}

fn client_main(port: u16, n: usize, threads: usize, mode: Mode, server_pid: u32) -> io::Result<()> {
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let fds = connect_all(addr, n)?;
    let now = Instant::now();
    let mut conns: Vec<Conn> = fds
        .into_iter()
        .map(|fd| Conn {
            fd,
            seq: 0,
            sent_at: now,
            got: 0,
            buf: [0; MSG],
        })
        .collect();
    prime(&mut conns)?;
    let threads = threads.clamp(1, n);
    let per = n.div_ceil(threads);
    let mut shares = Vec::new();
    let mut first = 0;
    while !conns.is_empty() {
        let rest = conns.split_off(per.min(conns.len()));
        shares.push(Share {
            first,
            conns: std::mem::replace(&mut conns, rest),
        });
        first += per as u64;
    }
    let t0 = Instant::now();
    // CPU time of the server and of this client over the window.
    let mut cpu = None;
    let results: Vec<io::Result<Measured>> = std::thread::scope(|s| {
        let handles: Vec<_> = shares
            .iter_mut()
            .map(|share| s.spawn(move || run_share(share, mode, t0)))
            .collect();
        if let Mode::Timed { warmup, window } = mode {
            sleep_until(t0 + warmup);
            let before = (cpu_time(server_pid), cpu_time(std::process::id()));
            sleep_until(t0 + warmup + window);
            let after = (cpu_time(server_pid), cpu_time(std::process::id()));
            if let ((Some(s0), Some(c0)), (Some(s1), Some(c1))) = (before, after) {
                cpu = Some((s1.saturating_sub(s0), c1.saturating_sub(c0)));
            }
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let mut hist = Histogram::new();
    let mut trips = 0;
    for r in results {
        let m = r?;
        trips += m.trips;
        hist.merge(&m.hist);
    }
    match mode {
        Mode::Timed { window, .. } => {
            if trips == 0 {
                return Err(io::Error::other("no round trip completed in the window"));
            }
            // -1: the CPU times could not be read.
            let (server_cpu, client_cpu) = cpu.map_or((-1, -1), |(s, c)| {
                (s.as_nanos() as i128, c.as_nanos() as i128)
            });
            println!(
                "result {trips} {} {} {} {server_cpu} {client_cpu}",
                window.as_nanos(),
                hist.percentile(0.50),
                hist.percentile(0.99)
            );
        }
        Mode::Count(k) => println!("done {}", n as u64 * (k + 1)),
    }
    Ok(())
}

// ---------------------------------------------------------------- parent

/// A server child process, stopped (its standard input closed) on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(mut cmd: Command, what: &str) -> Result<Server, String> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the {what} server: {e}"))?;
        let mut line = String::new();
        let out = child.stdout.take().expect("piped stdout");
        let read = BufReader::new(out).read_line(&mut line);
        let port = match read {
            Ok(_) => line
                .trim()
                .strip_prefix("port ")
                .and_then(|p| p.parse().ok()),
            Err(_) => None,
        };
        match port {
            Some(port) => Ok(Server { child, port }),
            None => {
                drop(child.stdin.take());
                let status = child.wait();
                Err(format!(
                    "the {what} server printed no port ({line:?}; {status:?})"
                ))
            }
        }
    }

    /// Closes its standard input and waits for it to exit.
    fn stop(mut self) -> io::Result<std::process::ExitStatus> {
        drop(self.child.stdin.take());
        self.child.wait()
    }
}

/// Runs the client child against `port`; returns the line it printed
/// after `prefix`.
fn run_client(
    server: &Server,
    n: usize,
    threads: usize,
    mode: Mode,
    prefix: &str,
) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = Command::new(exe)
        .args([
            "--client",
            &server.port.to_string(),
            &n.to_string(),
            &threads.to_string(),
            &mode.to_arg(),
            &server.child.id().to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the client: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("client failed ({}): {}", out.status, stderr.trim()));
    }
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(str::to_string)
        .ok_or_else(|| format!("the client printed no {prefix:?} line"))
}

/// One timed case's result.
#[derive(Clone, Copy)]
struct Figures {
    rate: f64,
    p50_ns: f64,
    p99_ns: f64,
    /// Server CPU time (all threads, user + system) per round trip.
    server_cpu_ns: Option<f64>,
    /// Client CPU time per round trip.
    client_cpu_ns: Option<f64>,
}

fn run_case(kind: &str, n: usize, threads: usize, mode: Mode) -> Result<Figures, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["--server", kind]);
    let server = Server::start(cmd, kind)?;
    let res = run_client(&server, n, threads, mode, "result ");
    let status = server.stop();
    let line = res?;
    match status {
        Ok(s) if s.success() => {}
        other => return Err(format!("the {kind} server ended badly: {other:?}")),
    }
    let f: Vec<f64> = line
        .split_whitespace()
        .map(|x| x.parse().map_err(|e| format!("bad result {line:?}: {e}")))
        .collect::<Result<_, _>>()?;
    match f[..] {
        [trips, window_ns, p50_ns, p99_ns, server_cpu_ns, client_cpu_ns] => Ok(Figures {
            rate: trips / (window_ns / 1e9),
            p50_ns,
            p99_ns,
            server_cpu_ns: (server_cpu_ns >= 0.0).then(|| server_cpu_ns / trips),
            client_cpu_ns: (client_cpu_ns >= 0.0).then(|| client_cpu_ns / trips),
        }),
        _ => Err(format!("bad result {line:?}")),
    }
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn env_secs(name: &str, default: f64) -> Duration {
    let s = std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(default);
    Duration::from_secs_f64(s.max(0.01))
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn servers_chosen(default: &str) -> Result<Vec<(&'static str, &'static str)>, String> {
    env_list("ECHO_SERVERS", default)
        .iter()
        .map(|k| {
            SERVERS
                .iter()
                .find(|(key, _)| key == k)
                .copied()
                .ok_or_else(|| {
                    let keys: Vec<_> = SERVERS.iter().map(|(k, _)| *k).collect();
                    format!(
                        "unknown server {k:?} in ECHO_SERVERS (known: {})",
                        keys.join(",")
                    )
                })
        })
        .collect()
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else {
        format!("{:.0} k", r / 1e3)
    }
}

fn fmt_cpu(ns: Option<f64>) -> String {
    ns.map_or("?".into(), fmt_ns)
}

fn timed_main() -> Result<(), String> {
    let all: Vec<&str> = SERVERS.iter().map(|(k, _)| *k).collect();
    let servers = servers_chosen(&all.join(","))?;
    let counts: Vec<usize> = env_list("ECHO_CONNS", "100,1000,10000")
        .iter()
        .map(|c| c.parse().map_err(|e| format!("ECHO_CONNS: {c:?}: {e}")))
        .collect::<Result<_, _>>()?;
    let window = env_secs("ECHO_SECS", 2.0);
    let warmup = env_secs("ECHO_WARMUP_SECS", 0.5);
    let threads = env_usize("ECHO_CLIENT_THREADS", 1).max(1);
    let reps = env_usize("ECHO_REPS", 3).max(1);
    let cores = cores();
    println!(
        "64-byte messages, closed loop; client: raw epoll, {threads} OS thread(s), own process; \
         each server in its own process; warm-up {:.1} s, window {:.1} s per case",
        warmup.as_secs_f64(),
        window.as_secs_f64()
    );
    println!(
        "multi-threaded servers use {cores} OS threads (one per core); with {cores} cores, \
         client and server share the CPU, so these are whole-system figures"
    );
    let mode = Mode::Timed { warmup, window };
    // Every case of one round before the next round, so that a slow spell
    // of the machine falls on all servers alike.
    let mut runs: Vec<(usize, &str, Vec<Figures>, Option<String>)> = counts
        .iter()
        .flat_map(|&n| {
            servers
                .iter()
                .map(move |&(kind, _)| (n, kind, Vec::new(), None))
        })
        .collect();
    for round in 1..=reps {
        println!("round {round} of {reps}:");
        for (n, kind, figures, failed) in runs.iter_mut() {
            if failed.is_some() {
                continue;
            }
            match run_case(kind, *n, threads, mode) {
                Ok(f) => {
                    println!(
                        "  {kind:>14} {n:>6} conns: {:>8} rt/s, p50 {}, p99 {}, \
                         CPU per round trip: server {}, client {}",
                        fmt_rate(f.rate),
                        fmt_ns(f.p50_ns),
                        fmt_ns(f.p99_ns),
                        fmt_cpu(f.server_cpu_ns),
                        fmt_cpu(f.client_cpu_ns)
                    );
                    figures.push(f);
                }
                Err(e) => {
                    println!("  {kind:>14} {n:>6} conns: FAILED: {e}");
                    *failed = Some(e);
                }
            }
        }
    }
    // The run with the median rate stands for its case.
    let median_run = |figures: &[Figures]| {
        let mut v = figures.to_vec();
        v.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        v[(v.len() - 1) / 2]
    };
    let rate_of = |n: usize, key: &str| {
        runs.iter()
            .find(|(m, k, f, failed)| *m == n && *k == key && failed.is_none() && !f.is_empty())
            .map(|(_, _, f, _)| median_run(f).rate)
    };
    let mut t = Table::new(
        &format!(
            "TCP echo, 64-byte messages, closed loop, {} s window; median of {reps} runs \
             (p50 and p99 from that run); ratio = this rt/s / that rt/s",
            window.as_secs_f64()
        ),
        &[
            "server",
            "conns",
            "rt/s",
            "p50",
            "p99",
            "vs tokio-ct",
            "vs tokio-mt",
            "server CPU / rt",
            "rt/s, all runs",
        ],
    );
    let ratio = |rate: f64, base: Option<f64>| base.map_or("-".into(), |b| fmt_ratio(rate / b));
    for (n, kind, figures, failed) in &runs {
        let name = SERVERS
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(*kind, |(_, name)| *name);
        let name = match *kind {
            "tokio-mt" | "may" | "green-per-core" => format!("{name}, {cores} threads"),
            "std" => format!("{name}, {} KiB stacks", STD_STACK / 1024),
            _ => name.to_string(),
        };
        if failed.is_some() || figures.is_empty() {
            t.row(vec![name, n.to_string(), "failed".into()]);
            continue;
        }
        let f = median_run(figures);
        let (lo, hi) = figures.iter().fold((f64::MAX, 0.0f64), |(lo, hi), f| {
            (lo.min(f.rate), hi.max(f.rate))
        });
        t.row(vec![
            name,
            n.to_string(),
            fmt_rate(f.rate),
            fmt_ns(f.p50_ns),
            fmt_ns(f.p99_ns),
            ratio(f.rate, rate_of(*n, "tokio-ct")),
            ratio(f.rate, rate_of(*n, "tokio-mt")),
            fmt_cpu(f.server_cpu_ns),
            format!("{}–{}", fmt_rate(lo), fmt_rate(hi)),
        ]);
    }
    t.print();
    let figures_of = |n: usize, key: &str| {
        runs.iter()
            .find(|(m, k, f, failed)| *m == n && *k == key && failed.is_none() && !f.is_empty())
            .map(|(_, _, f, _)| f.as_slice())
    };
    let cpu_median = |figures: &[Figures]| {
        let v: Vec<f64> = figures.iter().filter_map(|f| f.server_cpu_ns).collect();
        (!v.is_empty()).then(|| median(v))
    };
    let mut cmp = Table::new(
        &format!(
            "std::net under green::patch() vs green::net, one hub each; ratios: median of the \
             {reps} rounds' ratios (the two run one after the other in each round), with their \
             range; rt/s and CPU / rt: medians of the {reps} runs"
        ),
        &[
            "conns",
            "std-patched rt/s",
            "green rt/s",
            "rt/s ratio",
            "rt/s ratio, all rounds",
            "std-patched CPU / rt",
            "green CPU / rt",
            "CPU ratio (green / std-patched)",
        ],
    );
    let mut verdicts = Vec::new();
    for &n in &counts {
        let (Some(p), Some(g)) = (figures_of(n, "std-patched"), figures_of(n, "green")) else {
            continue;
        };
        let rate_ratios: Vec<f64> = p.iter().zip(g).map(|(p, g)| p.rate / g.rate).collect();
        let cpu_ratios: Vec<f64> = p
            .iter()
            .zip(g)
            .filter_map(|(p, g)| Some(g.server_cpu_ns? / p.server_cpu_ns?))
            .collect();
        let (lo, hi) = rate_ratios
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        let rate_ratio = median(rate_ratios);
        let cpu_ratio = (!cpu_ratios.is_empty()).then(|| median(cpu_ratios));
        let rates = |f: &[Figures]| median(f.iter().map(|f| f.rate).collect());
        cmp.row(vec![
            n.to_string(),
            fmt_rate(rates(p)),
            fmt_rate(rates(g)),
            fmt_ratio(rate_ratio),
            format!("{}–{}", fmt_ratio(lo), fmt_ratio(hi)),
            fmt_cpu(cpu_median(p)),
            fmt_cpu(cpu_median(g)),
            cpu_ratio.map_or("?".into(), fmt_ratio),
        ]);
        verdicts.push((n, rate_ratio, cpu_ratio));
    }
    if !verdicts.is_empty() {
        cmp.print();
        println!();
        for (n, rate_ratio, cpu_ratio) in verdicts {
            check(
                &format!("std under green::patch() / green::net, {n} conns, rt/s"),
                &fmt_ratio(rate_ratio),
                &format!(">= {PATCHED_TARGET}x"),
                rate_ratio >= PATCHED_TARGET,
            );
            if let Some(c) = cpu_ratio {
                check(
                    &format!(
                        "std under green::patch() / green::net, {n} conns, \
                         round trips per server CPU second"
                    ),
                    &fmt_ratio(c),
                    &format!(">= {PATCHED_TARGET}x"),
                    c >= PATCHED_TARGET,
                );
            }
        }
    }
    if runs.iter().any(|r| r.3.is_some()) {
        return Err("some cases failed (see above)".into());
    }
    Ok(())
}

/// One line of a `strace -c` summary (counts), or of the difference of
/// two per echoed message.
#[derive(Clone, Debug)]
struct Calls<T> {
    syscall: String,
    calls: T,
    failed: T,
}

/// The lines of a `strace -c` summary, without the total.
fn parse_strace(text: &str) -> Vec<Calls<u64>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || f[0].parse::<f64>().is_err() {
            continue;
        }
        let syscall = f[f.len() - 1];
        if syscall == "total" {
            continue;
        }
        let Ok(calls) = f[3].parse::<u64>() else {
            continue;
        };
        // The errors column is empty when no call failed.
        let failed = if f.len() >= 6 {
            f[4].parse().unwrap_or(0)
        } else {
            0
        };
        out.push(Calls {
            syscall: syscall.to_string(),
            calls,
            failed,
        });
    }
    out
}

/// Most server syscalls per echoed message for green on one hub (and for
/// std under `green::patch()`): one read, one write, and a small share of
/// an `epoll_pwait2`.
const SYSCALL_TARGET: f64 = 2.1;

/// Syscalls that the `perf` counter names one by one (the rest count as
/// `other`), where the kernel has a tracepoint for them.
const PERF_SYSCALLS: [&str; 16] = [
    "read",
    "write",
    "recvfrom",
    "sendto",
    "readv",
    "writev",
    "recvmsg",
    "sendmsg",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_ctl",
    "futex",
    "sched_yield",
    "accept4",
    "close",
];

/// How the server's syscalls are counted.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Counter {
    /// `strace -f -c`: every call and whether it failed, but each call is
    /// slowed down by the tracer.
    Strace,
    /// `perf stat` on the syscall tracepoints: counts at full speed, no
    /// failures.
    Perf,
}

/// The lines of a `perf stat -x ,` report on syscall tracepoints, with
/// the calls not named one by one as `other`.
fn parse_perf(text: &str) -> Vec<Calls<u64>> {
    let mut total = None;
    let mut out: Vec<Calls<u64>> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        let (Some(count), Some(event)) = (f.first(), f.get(2)) else {
            continue;
        };
        let Ok(calls) = count.trim().parse::<u64>() else {
            continue;
        };
        if *event == "raw_syscalls:sys_enter" {
            total = Some(calls);
        } else if let Some(name) = event.strip_prefix("syscalls:sys_enter_") {
            out.push(Calls {
                syscall: name.to_string(),
                calls,
                failed: 0,
            });
        }
    }
    if let Some(total) = total {
        let named: u64 = out.iter().map(|c| c.calls).sum();
        out.push(Calls {
            syscall: "other".into(),
            calls: total.saturating_sub(named),
            failed: 0,
        });
    }
    out.retain(|c| c.calls > 0);
    out
}

/// Runs `kind` under `counter` for `n` connections doing `trips` round
/// trips each; returns the counts and the messages echoed.
fn counted_run(
    counter: Counter,
    kind: &str,
    n: usize,
    trips: u64,
) -> Result<(Vec<Calls<u64>>, u64), String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = std::env::temp_dir().join(format!(
        "green-echo-{counter:?}-{}-{kind}-{trips}.txt",
        std::process::id()
    ));
    let mut cmd = match counter {
        Counter::Strace => {
            let mut c = Command::new("strace");
            c.args(["-f", "-c", "-o"]).arg(&out);
            c
        }
        Counter::Perf => {
            let mut c = Command::new("perf");
            c.args(["stat", "-x", ",", "-o"])
                .arg(&out)
                .args(["-e", "raw_syscalls:sys_enter"]);
            for name in PERF_SYSCALLS {
                let tracepoint = format!("/sys/kernel/tracing/events/syscalls/sys_enter_{name}");
                if std::path::Path::new(&tracepoint).exists() {
                    c.args(["-e", &format!("syscalls:sys_enter_{name}")]);
                }
            }
            c
        }
    };
    cmd.arg("--").arg(exe).args(["--server", kind]);
    let server = Server::start(cmd, kind)?;
    let res = run_client(&server, n, 1, Mode::Count(trips), "done ");
    let status = server.stop();
    let msgs: u64 = res?
        .trim()
        .parse()
        .map_err(|e| format!("bad client count: {e}"))?;
    match status {
        Ok(s) if s.success() => {}
        other => {
            return Err(format!(
                "{counter:?} of the {kind} server ended badly: {other:?}"
            ))
        }
    }
    let text =
        std::fs::read_to_string(&out).map_err(|e| format!("cannot read {}: {e}", out.display()))?;
    let _ = std::fs::remove_file(&out);
    let calls = match counter {
        Counter::Strace => parse_strace(&text),
        Counter::Perf => parse_perf(&text),
    };
    if calls.is_empty() {
        return Err(format!("{counter:?} counted nothing: {text}"));
    }
    Ok((calls, msgs))
}

fn syscalls_main() -> Result<(), String> {
    let servers = servers_chosen("green,tokio-ct")?;
    let counter = match std::env::var("ECHO_SYSCALL_TOOL").as_deref() {
        Ok("perf") => Counter::Perf,
        Ok("strace") | Err(_) => Counter::Strace,
        Ok(other) => {
            return Err(format!(
                "ECHO_SYSCALL_TOOL: {other:?} is not strace or perf"
            ))
        }
    };
    let n = env_usize("ECHO_SYSCALL_CONNS", 100).max(1);
    let trips: Vec<u64> = env_list("ECHO_SYSCALL_TRIPS", "500,2500")
        .iter()
        .map(|c| {
            c.parse()
                .map_err(|e| format!("ECHO_SYSCALL_TRIPS: {c:?}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let [small, large] = trips[..] else {
        return Err("ECHO_SYSCALL_TRIPS needs two counts, such as 500,2500".into());
    };
    if large <= small {
        return Err("ECHO_SYSCALL_TRIPS: the second count must be larger".into());
    }
    let how = match counter {
        Counter::Strace => "strace -f -c",
        Counter::Perf => "perf stat -e raw_syscalls:sys_enter,syscalls:sys_enter_*",
    };
    println!(
        "server syscalls counted by `{how}`: {n} connections x {small} and x {large} round \
         trips; per message = difference of the two runs / difference of messages echoed"
    );
    let mut per: Vec<Vec<Calls<f64>>> = Vec::new();
    for &(kind, _) in &servers {
        let (a, ma) = counted_run(counter, kind, n, small)?;
        let (b, mb) = counted_run(counter, kind, n, large)?;
        let msgs = mb.saturating_sub(ma) as f64;
        let rows: Vec<Calls<f64>> = b
            .iter()
            .map(|l| {
                let before = a.iter().find(|m| m.syscall == l.syscall);
                let (c0, f0) = before.map_or((0, 0), |m| (m.calls, m.failed));
                Calls {
                    syscall: l.syscall.clone(),
                    calls: l.calls.saturating_sub(c0) as f64 / msgs,
                    failed: l.failed.saturating_sub(f0) as f64 / msgs,
                }
            })
            .collect();
        let total: f64 = rows.iter().map(|r| r.calls).sum();
        println!("  {kind}: {total:.3} syscalls per echoed message ({ma} and {mb} messages)");
        per.push(rows);
    }
    let mut names: Vec<&str> = Vec::new();
    for r in per.iter().flatten() {
        if r.calls >= 0.001 && !names.contains(&r.syscall.as_str()) {
            names.push(&r.syscall);
        }
    }
    let cols: Vec<String> = servers.iter().map(|(k, _)| k.to_string()).collect();
    let mut header = vec!["syscall"];
    header.extend(cols.iter().map(String::as_str));
    let title = match counter {
        Counter::Strace => {
            "server syscalls per echoed 64-byte message, strace (failed calls in parentheses)"
        }
        Counter::Perf => "server syscalls per echoed 64-byte message, perf",
    };
    let mut t = Table::new(title, &header);
    let cell = |calls: f64, failed: f64| {
        if failed >= 0.001 {
            format!("{calls:.3} ({failed:.3})")
        } else {
            format!("{calls:.3}")
        }
    };
    for name in &names {
        let mut row = vec![name.to_string()];
        row.extend(per.iter().map(|rows| {
            rows.iter()
                .find(|r| r.syscall == *name)
                .map_or("0".into(), |r| cell(r.calls, r.failed))
        }));
        t.row(row);
    }
    let mut row = vec!["total".to_string()];
    row.extend(per.iter().map(|rows| {
        let c: f64 = rows.iter().map(|r| r.calls).sum();
        let f: f64 = rows.iter().map(|r| r.failed).sum();
        cell(c, f)
    }));
    t.row(row);
    t.print();
    println!();
    for (&(kind, name), rows) in servers.iter().zip(&per) {
        if kind == "green" || kind == "std-patched" {
            let total: f64 = rows.iter().map(|r| r.calls).sum();
            check(
                &format!("{name}: server syscalls per echoed message"),
                &format!("{total:.3}"),
                &format!("<= {SYSCALL_TARGET}"),
                total <= SYSCALL_TARGET,
            );
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--server") {
        let kind = args.get(i + 1).map_or("", String::as_str);
        if let Err(e) = server_main(kind) {
            eprintln!("{kind} server: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--client") {
        let arg = |k: usize| args.get(i + k).map_or("", String::as_str);
        let (Ok(port), Ok(n), Ok(threads), Some(mode), Ok(pid)) = (
            arg(1).parse::<u16>(),
            arg(2).parse::<usize>(),
            arg(3).parse::<usize>(),
            Mode::parse(arg(4)),
            arg(5).parse::<u32>(),
        ) else {
            eprintln!(
                "usage: --client PORT CONNS THREADS timed:WARMUP_NS:WINDOW_NS|count:N SERVER_PID"
            );
            std::process::exit(2);
        };
        if let Err(e) = client_main(port, n, threads, mode, pid) {
            eprintln!("client: {e}");
            std::process::exit(1);
        }
        return;
    }
    let syscalls = args.iter().any(|a| a == "--syscalls");
    banner(
        "echo",
        if syscalls {
            "system calls per echoed message"
        } else {
            "TCP echo round trips: green vs tokio, may and std threads"
        },
    );
    let res = if syscalls {
        syscalls_main()
    } else {
        timed_main()
    };
    if let Err(e) = res {
        println!("{e}");
        std::process::exit(1);
    }
}

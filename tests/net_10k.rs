//! Ten thousand concurrent loopback TCP connections through `green::net`:
//! every byte arrives, once, in order, in both directions.
//!
//! The two sides run in two processes, since 10 000 connections take 10 000
//! fds on each side and one process holding both would pass the usual
//! `ulimit -n` of 20 000. The test re-executes its own binary
//! (`--exact <this test> --nocapture`) with `GREEN_NET_10K_ROLE=server` to
//! run the server, which prints its port on stdout.
//!
//! - Server (child): one hub; accepts 10 000 connections, one green thread
//!   each, and starts echoing only once all of them are in (so that all are
//!   served at once). Each connection reads into a buffer of 512 B to 16 KiB
//!   (by accept order), checks the frames it reads (connection id,
//!   consecutive sequence numbers, length, header checksum, and the payload
//!   byte for byte) and writes back what it read. It stops when every
//!   connection has closed, or as soon as its standard input closes (the
//!   parent is gone).
//! - Client (this process): 10 000 green threads on this thread's hub. Each
//!   connects (at most 512 connects in flight), waits until all are
//!   connected, then sends 100 frames of 16 to about 8 200 bytes, with at
//!   most 4 in flight (sent, echo not yet read), checks the echoes byte for
//!   byte against what it sent, then shuts down its write half and expects
//!   end of file with no extra byte.
//!
//! A frame is a 16-byte header (connection id, sequence number, payload
//! length, FNV-1a checksum of those three) and a payload cut from a fixed
//! pseudo-random table at an offset that depends on id and sequence number,
//! so that both sides can check every payload byte exactly: a byte lost,
//! repeated or moved, within a frame or between frames, is caught.
//!
//! Both sides set 60 s read and write timeouts, so that a lost byte fails
//! the test instead of hanging it.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use green::net::{TcpListener, TcpStream};

const CONNS: usize = 10_000;
const MESSAGES: u32 = 100;
const ROLE_VAR: &str = "GREEN_NET_10K_ROLE";
const TEST_NAME: &str = "ten_thousand_connections_echo_every_byte_in_order";
const PORT_LINE: &str = "net_10k server port ";
const SUMMARY_LINE: &str = "net_10k server summary ";
/// Connection id, sequence number, payload length, checksum: u32 each.
const HEADER: usize = 16;
/// Largest payload a frame carries.
const MAX_PAYLOAD: usize = 8192;
/// How long either side waits for a byte before it fails.
const STALL: Duration = Duration::from_secs(60);
/// Frames a client connection sends before it waits for the oldest echo.
const IN_FLIGHT: usize = 4;
/// Connects in flight at once, so that the listen backlog never overflows
/// (a dropped SYN costs a one-second retransmission).
const CONNECTING: usize = 512;
/// The server's read buffer sizes, by accept order.
const SERVER_BUFS: [usize; 4] = [512, 2048, 8192, 16384];

/// A 64-bit mix (splitmix64's finaliser).
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Payload length of frame `seq` of connection `id`: mostly under 300
/// bytes, one in 32 up to 8 KiB.
fn payload_len(id: u32, seq: u32) -> usize {
    let h = mix((u64::from(id) << 32) | u64::from(seq));
    if h.is_multiple_of(32) {
        300 + (h >> 8) as usize % (MAX_PAYLOAD - 299)
    } else {
        (h >> 8) as usize % 300
    }
}

/// Pseudo-random bytes that payloads are cut from: twice the largest
/// payload, so that every start below `MAX_PAYLOAD` leaves room for one.
fn noise() -> &'static [u8] {
    static NOISE: OnceLock<Vec<u8>> = OnceLock::new();
    NOISE.get_or_init(|| {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..2 * MAX_PAYLOAD)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    })
}

/// The payload of frame `seq` of connection `id`: a slice of [`noise`] at
/// an offset of its own, so that a byte moved within or between frames
/// differs from the byte expected there.
fn payload(id: u32, seq: u32) -> &'static [u8] {
    let start = mix((u64::from(seq) << 32) | u64::from(id) | 1 << 63) as usize % MAX_PAYLOAD;
    &noise()[start..start + payload_len(id, seq)]
}

/// FNV-1a of the first 12 header bytes (id, sequence number, length).
fn checksum(head: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in &head[..12] {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}

/// Frame `seq` of connection `id`: header, then payload.
fn frame(id: u32, seq: u32) -> Vec<u8> {
    let payload = payload(id, seq);
    let mut f = Vec::with_capacity(HEADER + payload.len());
    f.extend_from_slice(&id.to_le_bytes());
    f.extend_from_slice(&seq.to_le_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let sum = checksum(&f);
    f.extend_from_slice(&sum.to_le_bytes());
    f.extend_from_slice(payload);
    f
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// The number of memory mappings of this process.
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count())
}

fn max_map_count() -> String {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .map_or_else(|_| "?".into(), |s| s.trim().to_string())
}

/// Raises this process's soft fd limit to `need` if it is lower.
fn raise_fd_limit(need: usize) -> io::Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let need = need as libc::rlim_t;
    if lim.rlim_cur >= need {
        return Ok(());
    }
    if lim.rlim_max < need {
        return Err(io::Error::other(format!(
            "this test needs {need} fds per process; the hard limit is {}",
            lim.rlim_max
        )));
    }
    lim.rlim_cur = need;
    // SAFETY: `lim` is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

// ------------------------------------------------------------------ server

/// Checks the frames of one connection as they stream in.
struct FrameChecker {
    id: Option<u32>,
    next_seq: u32,
    pending: Vec<u8>,
}

impl FrameChecker {
    fn feed(&mut self, data: &[u8]) -> Result<(), String> {
        self.pending.extend_from_slice(data);
        let mut at = 0;
        while self.pending.len() - at >= HEADER {
            let f = &self.pending[at..];
            let (id, seq, len, sum) = (u32_at(f, 0), u32_at(f, 4), u32_at(f, 8), u32_at(f, 12));
            let len = len as usize;
            if len > MAX_PAYLOAD {
                return Err(format!("frame of {len} bytes: the stream is corrupt"));
            }
            if f.len() < HEADER + len {
                break;
            }
            if *self.id.get_or_insert(id) != id {
                return Err(format!(
                    "frame of connection {id} on connection {:?}",
                    self.id
                ));
            }
            if seq != self.next_seq {
                return Err(format!(
                    "connection {id}: frame {seq} where {} was due",
                    self.next_seq
                ));
            }
            if checksum(f) != sum {
                return Err(format!("connection {id}: frame {seq}: bad header checksum"));
            }
            if len != payload_len(id, seq) || f[HEADER..HEADER + len] != *payload(id, seq) {
                return Err(format!("connection {id}: frame {seq}: wrong payload"));
            }
            self.next_seq += 1;
            at += HEADER + len;
        }
        self.pending.drain(..at);
        Ok(())
    }
}

#[derive(Default)]
struct ServerStats {
    live: Cell<usize>,
    peak: Cell<usize>,
    frames: Cell<u64>,
    bytes: Cell<u64>,
}

fn serve_conn(
    s: TcpStream,
    buf_len: usize,
    all_in: green::Event<()>,
    stats: Rc<ServerStats>,
) -> Result<(), String> {
    stats.live.set(stats.live.get() + 1);
    stats.peak.set(stats.peak.get().max(stats.live.get()));
    all_in.wait();
    let fail = |what: &str, e: io::Error| format!("server {what}: {e}");
    s.set_read_timeout(Some(STALL))
        .map_err(|e| fail("timeout", e))?;
    s.set_write_timeout(Some(STALL))
        .map_err(|e| fail("timeout", e))?;
    let mut buf = vec![0u8; buf_len];
    let mut check = FrameChecker {
        id: None,
        next_seq: 0,
        pending: Vec::new(),
    };
    loop {
        let n = (&s).read(&mut buf).map_err(|e| fail("read", e))?;
        if n == 0 {
            break;
        }
        check.feed(&buf[..n])?;
        (&s).write_all(&buf[..n]).map_err(|e| fail("write", e))?;
        stats.bytes.set(stats.bytes.get() + n as u64);
    }
    if !check.pending.is_empty() {
        return Err(format!(
            "connection {:?}: {} bytes of a partial frame at end of file",
            check.id,
            check.pending.len()
        ));
    }
    if check.next_seq != MESSAGES {
        return Err(format!(
            "connection {:?}: {} frames, {MESSAGES} expected",
            check.id, check.next_seq
        ));
    }
    stats
        .frames
        .set(stats.frames.get() + u64::from(check.next_seq));
    stats.live.set(stats.live.get() - 1);
    Ok(())
}

fn serve() -> io::Result<()> {
    // Exit as soon as the parent closes our stdin or goes away.
    std::thread::spawn(|| {
        let _ = io::copy(&mut io::stdin(), &mut io::sink());
        eprintln!("net_10k server: the parent closed stdin; exiting");
        std::process::exit(3);
    });
    raise_fd_limit(CONNS + 100)?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("{PORT_LINE}{}", listener.local_addr()?.port());
    io::stdout().flush()?;
    let stats = Rc::new(ServerStats::default());
    let all_in = green::Event::new();
    let mut conns = Vec::with_capacity(CONNS);
    for i in 0..CONNS {
        let (s, _) = listener.accept()?;
        let (all_in, stats) = (all_in.clone(), stats.clone());
        let buf_len = SERVER_BUFS[i % SERVER_BUFS.len()];
        conns.push(green::spawn(move || serve_conn(s, buf_len, all_in, stats)));
    }
    drop(listener);
    println!(
        "net_10k server: {CONNS} connections accepted; {} memory mappings \
         (vm.max_map_count {})",
        mappings(),
        max_map_count()
    );
    all_in.send(()).expect("sent once");
    let errors: Vec<String> = conns.into_iter().filter_map(|c| c.wait().err()).collect();
    for e in errors.iter().take(10) {
        println!("net_10k server error: {e}");
    }
    println!(
        "{SUMMARY_LINE}errors {} frames {} bytes {} peak {}",
        errors.len(),
        stats.frames.get(),
        stats.bytes.get(),
        stats.peak.get()
    );
    io::stdout().flush()?;
    Ok(())
}

// ------------------------------------------------------------------ client

/// The frames a client connection has sent and not yet seen echoed, and
/// the echoed bytes read past the last whole frame.
struct Echoes {
    id: u32,
    in_flight: VecDeque<(u32, Vec<u8>)>,
    rx: Vec<u8>,
}

impl Echoes {
    /// Reads once and checks every frame now complete against what was
    /// sent, byte for byte.
    fn read_some(&mut self, s: &TcpStream) -> Result<(), String> {
        let id = self.id;
        let mut buf = [0u8; 16 * 1024];
        let n = match (&*s).read(&mut buf) {
            Ok(0) => return Err(format!("client {id}: end of file before every echo")),
            Ok(n) => n,
            Err(e) => return Err(format!("client {id} read: {e}")),
        };
        self.rx.extend_from_slice(&buf[..n]);
        let mut at = 0;
        while let Some((seq, f)) = self.in_flight.front() {
            let got = &self.rx[at..];
            let common = got.len().min(f.len());
            if got[..common] != f[..common] {
                let off = got.iter().zip(f).position(|(a, b)| a != b).unwrap_or(0);
                return Err(format!(
                    "client {id}: the echo of frame {seq} ({} bytes) differs from byte {off}",
                    f.len()
                ));
            }
            if common < f.len() {
                break;
            }
            at += f.len();
            self.in_flight.pop_front();
        }
        if self.in_flight.is_empty() && at < self.rx.len() {
            return Err(format!(
                "client {id}: {} bytes past the last echo",
                self.rx.len() - at
            ));
        }
        self.rx.drain(..at);
        Ok(())
    }
}

/// One client connection's whole life; returns the bytes it sent.
fn client_conn(
    id: u32,
    addr: SocketAddr,
    connecting: Rc<green::Semaphore>,
    all_connected: Rc<green::sync::Barrier>,
) -> Result<u64, String> {
    let fail = |what: &str, e: io::Error| format!("client {id} {what}: {e}");
    let s = {
        let _permit = connecting.acquire();
        TcpStream::connect(addr).map_err(|e| fail("connect", e))?
    };
    s.set_read_timeout(Some(STALL))
        .map_err(|e| fail("timeout", e))?;
    s.set_write_timeout(Some(STALL))
        .map_err(|e| fail("timeout", e))?;
    if all_connected.wait().is_leader() {
        println!(
            "net_10k client: {CONNS} connections open; {} memory mappings \
             (vm.max_map_count {})",
            mappings(),
            max_map_count()
        );
    }
    let mut sent = 0;
    let mut echoes = Echoes {
        id,
        in_flight: VecDeque::new(),
        rx: Vec::new(),
    };
    for seq in 0..MESSAGES {
        let f = frame(id, seq);
        (&s).write_all(&f).map_err(|e| fail("write", e))?;
        sent += f.len() as u64;
        echoes.in_flight.push_back((seq, f));
        while echoes.in_flight.len() >= IN_FLIGHT {
            echoes.read_some(&s)?;
        }
    }
    while !echoes.in_flight.is_empty() {
        echoes.read_some(&s)?;
    }
    s.shutdown(Shutdown::Write)
        .map_err(|e| fail("shutdown", e))?;
    let mut extra = [0u8; 64];
    match (&s).read(&mut extra) {
        Ok(0) => Ok(sent),
        Ok(n) => Err(format!("client {id}: {n} extra bytes after the last echo")),
        Err(e) => Err(fail("read at end", e)),
    }
}

/// The server child: killed by its closed stdin if the test fails early.
struct ServerChild {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl ServerChild {
    /// The text after `prefix` on the next line that starts with it.
    fn line_after(&mut self, prefix: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.expect("server stdout");
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_string();
            }
            println!("{line}");
        }
        panic!(
            "the server ended without printing {prefix:?} ({:?})",
            self.child.wait()
        );
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        // Closing its stdin stops the server if it still runs.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

#[test]
fn ten_thousand_connections_echo_every_byte_in_order() -> io::Result<()> {
    if std::env::var(ROLE_VAR).as_deref() == Ok("server") {
        return serve();
    }
    let start = Instant::now();
    raise_fd_limit(CONNS + 100)?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--exact", TEST_NAME, "--nocapture"])
        .env(ROLE_VAR, "server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("piped stdout");
    let mut server = ServerChild {
        child,
        stdin,
        lines: BufReader::new(stdout).lines(),
    };
    let port: u16 = server.line_after(PORT_LINE).parse().expect("a port");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    let connecting = Rc::new(green::Semaphore::new(CONNECTING));
    let all_connected = Rc::new(green::sync::Barrier::new(CONNS));
    let clients: Vec<_> = (0..CONNS as u32)
        .map(|id| {
            let (c, b) = (connecting.clone(), all_connected.clone());
            green::spawn(move || client_conn(id, addr, c, b))
        })
        .collect();
    let results: Vec<Result<u64, String>> = clients.into_iter().map(|c| c.wait()).collect();
    // Every client connection is closed now, so the server finishes too;
    // its summary (and the errors it saw, printed before it) comes first.
    let summary = server.line_after(SUMMARY_LINE);
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        errors.is_empty(),
        "{} of {CONNS} connections failed; the first: {:?}; server: {summary}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    let sent: u64 = results.iter().map(|r| *r.as_ref().expect("checked")).sum();
    let status = server.child.wait()?;
    assert!(status.success(), "the server failed: {status}");
    let field = |name: &str| -> u64 {
        let mut it = summary.split_whitespace();
        while let Some(k) = it.next() {
            if k == name {
                return it.next().and_then(|v| v.parse().ok()).expect("a number");
            }
        }
        panic!("no {name} in the server summary {summary:?}");
    };
    assert_eq!(field("errors"), 0, "server: {summary}");
    assert_eq!(
        field("frames"),
        CONNS as u64 * u64::from(MESSAGES),
        "server: {summary}"
    );
    assert_eq!(field("bytes"), sent, "server: {summary}");
    assert_eq!(field("peak"), CONNS as u64, "server: {summary}");
    println!(
        "net_10k: {CONNS} connections x {MESSAGES} frames, {sent} bytes each way, in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

//! A loopback port scanner: thousands of `connect_timeout`s from a
//! `GreenPool`, all on one OS thread.
//!
//! The example opens a few listeners of its own inside the scanned range,
//! so that some ports are open, then scans the range and prints which
//! ports answered, which of those it opened itself, and how long it took.
//!
//! ```text
//! cargo run --release --example port_scan
//! cargo run --release --example port_scan -- --ports 10000 --concurrency 1000
//! ```

use std::collections::BTreeSet;
use std::io::{self, ErrorKind};
use std::time::{Duration, Instant};

use green::net::{SocketAddr, TcpListener, TcpStream};

struct Args {
    first: u16,
    ports: u16,
    concurrency: usize,
    timeout: Duration,
}

fn parse_args() -> Args {
    let mut args = Args {
        first: 20_000,
        ports: 2_000,
        concurrency: 500,
        timeout: Duration::from_millis(500),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value: u64 = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| usage(&flag));
        match flag.as_str() {
            "--first" => args.first = u16::try_from(value).unwrap_or_else(|_| usage(&flag)),
            "--ports" => args.ports = u16::try_from(value).unwrap_or_else(|_| usage(&flag)),
            "--concurrency" => args.concurrency = value.max(1) as usize,
            "--timeout-ms" => args.timeout = Duration::from_millis(value.max(1)),
            _ => usage(&flag),
        }
    }
    if u32::from(args.first) + u32::from(args.ports) > 65_536 {
        usage("--ports");
    }
    args
}

fn usage(flag: &str) -> ! {
    eprintln!(
        "bad argument {flag:?}\n\
         usage: port_scan [--first PORT] [--ports N] [--concurrency C] [--timeout-ms T]"
    );
    std::process::exit(2);
}

/// What one connect found.
enum Port {
    Open,
    Closed,
    TimedOut,
    Error(io::Error),
}

fn probe(addr: SocketAddr, timeout: Duration) -> Port {
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(_) => Port::Open,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Port::Closed,
        Err(e) if e.kind() == ErrorKind::TimedOut => Port::TimedOut,
        Err(e) => Port::Error(e),
    }
}

fn main() -> io::Result<()> {
    let args = parse_args();
    let range = args.first..args.first + args.ports;

    // Open some ports in the range: every 97th that is free.
    let mut ours = BTreeSet::new();
    let mut listeners: Vec<TcpListener> = Vec::new();
    for port in range.clone().step_by(97) {
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            ours.insert(port);
            listeners.push(l);
        }
    }
    println!(
        "listening on {} ports of {}..{}; scanning {} ports, {} at a time, {} ms timeout",
        ours.len(),
        range.start,
        range.end,
        args.ports,
        args.concurrency,
        args.timeout.as_millis()
    );

    let start = Instant::now();
    let pool = green::GreenPool::new(args.concurrency);
    let timeout = args.timeout;
    let results = pool.imap(
        move |port: u16| {
            (
                port,
                probe(SocketAddr::from(([127, 0, 0, 1], port)), timeout),
            )
        },
        range.clone(),
    );
    let (mut open, mut closed, mut timed_out, mut errors) = (Vec::new(), 0, 0, Vec::new());
    for (port, result) in results {
        match result {
            Port::Open => open.push(port),
            Port::Closed => closed += 1,
            Port::TimedOut => timed_out += 1,
            Port::Error(e) => errors.push((port, e)),
        }
    }
    let elapsed = start.elapsed();

    for &port in &open {
        let whose = if ours.contains(&port) {
            "ours"
        } else {
            "another process's"
        };
        println!("  {port:>5} open ({whose})");
    }
    for (port, e) in &errors {
        println!("  {port:>5} error: {e}");
    }
    let missed: Vec<_> = ours.iter().filter(|p| !open.contains(p)).collect();
    println!(
        "{} ports in {:.1} ms: {} open, {closed} closed, {timed_out} timed out, {} errors",
        args.ports,
        elapsed.as_secs_f64() * 1e3,
        open.len(),
        errors.len()
    );
    if missed.is_empty() {
        println!("every port we opened was found open");
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ports we opened were not found: {missed:?}"
        )))
    }
}

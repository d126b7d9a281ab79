//! An echo server on `green::serve`, bounded by a `GreenPool`, driven by its
//! own green clients on the same OS thread.
//!
//! Each client connects, sends `--messages` lines one at a time and checks
//! each echo; when every client is done the server is stopped through its
//! `ServerHandle`, and the example prints the throughput.
//!
//! ```text
//! cargo run --release --example echo_server                 # short self-test
//! cargo run --release --example echo_server -- --clients 500 --messages 1000
//! cargo run --release --example echo_server -- --concurrency 10  # back-pressure
//! ```

use std::io::{self, BufRead, BufReader, Write};
use std::time::Instant;

struct Args {
    clients: usize,
    messages: usize,
    concurrency: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        clients: 50,
        messages: 200,
        concurrency: 1000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse().ok());
        let slot = match flag.as_str() {
            "--clients" => &mut args.clients,
            "--messages" => &mut args.messages,
            "--concurrency" => &mut args.concurrency,
            _ => usage(&flag),
        };
        *slot = value.unwrap_or_else(|| usage(&flag));
    }
    if args.concurrency == 0 {
        usage("--concurrency");
    }
    args
}

fn usage(flag: &str) -> ! {
    eprintln!(
        "bad argument {flag:?}\n\
         usage: echo_server [--clients N] [--messages M] [--concurrency C]"
    );
    std::process::exit(2);
}

/// The handler: echo every byte until the client closes.
fn echo(stream: green::net::TcpStream, _peer: green::net::SocketAddr) -> io::Result<()> {
    stream.set_nodelay(true)?;
    io::copy(&mut &stream, &mut &stream)?;
    Ok(())
}

/// One client: `messages` lines, each echo checked. Returns bytes echoed.
fn client(addr: green::net::SocketAddr, id: usize, messages: usize) -> io::Result<usize> {
    let stream = green::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    let mut bytes = 0;
    for m in 0..messages {
        let msg = format!("client {id} message {m}\n");
        (&stream).write_all(msg.as_bytes())?;
        line.clear();
        reader.read_line(&mut line)?;
        if line != msg {
            return Err(io::Error::other(format!("sent {msg:?}, got back {line:?}")));
        }
        bytes += msg.len();
    }
    Ok(bytes)
}

fn main() -> io::Result<()> {
    let args = parse_args();
    let server = green::Server::new(green::listen("127.0.0.1:0")?, args.concurrency);
    let addr = server.local_addr()?;
    let handle = server.handle();
    println!(
        "echo server on {addr}, at most {} connections at once",
        args.concurrency
    );
    let serving = green::spawn(move || server.serve(echo));

    let start = Instant::now();
    let clients: Vec<_> = (0..args.clients)
        .map(|id| {
            let messages = args.messages;
            green::spawn(move || client(addr, id, messages))
        })
        .collect();
    let mut bytes = 0;
    for c in clients {
        bytes += c.wait()?;
    }
    let elapsed = start.elapsed();

    handle.stop();
    serving.wait()?;

    let round_trips = args.clients * args.messages;
    println!(
        "{} clients x {} messages: {round_trips} round trips, {bytes} bytes echoed in {:.1} ms \
         ({:.0} round trips/s) on one OS thread",
        args.clients,
        args.messages,
        elapsed.as_secs_f64() * 1e3,
        round_trips as f64 / elapsed.as_secs_f64()
    );
    println!("server stopped");
    Ok(())
}

//! One server on every core: `green::Hubs` starts one OS thread per core,
//! each with its own hub, and each hub serves the same port through
//! `green::listen` (`SO_REUSEPORT`: the kernel spreads the connections among
//! the listeners).
//!
//! Green clients on the main thread's hub make `--connections` requests,
//! `--clients` at a time; each reply names the hub that served it. When all
//! are answered the servers are stopped, the hubs joined, and the example
//! prints how many connections each hub served.
//!
//! ```text
//! cargo run --release --example hubs_server                     # one hub per core
//! cargo run --release --example hubs_server -- --hubs 4 --connections 20000
//! ```

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::rc::Rc;
use std::time::Instant;

use green::net::{SocketAddr, TcpStream};

struct Args {
    /// 0: one per core (the `Hubs` default).
    hubs: usize,
    connections: usize,
    clients: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        hubs: 0,
        connections: 4000,
        clients: 50,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse().ok());
        let slot = match flag.as_str() {
            "--hubs" => &mut args.hubs,
            "--connections" => &mut args.connections,
            "--clients" => &mut args.clients,
            _ => usage(&flag),
        };
        *slot = value.unwrap_or_else(|| usage(&flag));
    }
    if args.clients == 0 {
        usage("--clients");
    }
    args
}

fn usage(flag: &str) -> ! {
    eprintln!(
        "bad argument {flag:?}\n\
         usage: hubs_server [--hubs N] [--connections M] [--clients C]"
    );
    std::process::exit(2);
}

/// The handler of hub `hub`: one request line in, one reply line out
/// (`{hub} {line}`), then the connection closes.
fn handle(hub: usize, stream: TcpStream) -> io::Result<()> {
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    (&stream).write_all(format!("{hub} {line}").as_bytes())
}

/// One client: `n` connections, one request each; counts replies per hub.
fn client(addr: SocketAddr, id: usize, n: usize, hubs: usize) -> io::Result<Vec<usize>> {
    let mut by_hub = vec![0; hubs];
    for k in 0..n {
        let mut stream = green::connect(addr)?;
        let request = format!("client {id} request {k}\n");
        stream.write_all(request.as_bytes())?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        let bad = || io::Error::other(format!("sent {request:?}, got back {reply:?}"));
        let (hub, echoed) = reply.split_once(' ').ok_or_else(bad)?;
        let hub: usize = hub.parse().map_err(|_| bad())?;
        if echoed != request || hub >= hubs {
            return Err(bad());
        }
        by_hub[hub] += 1;
    }
    Ok(by_hub)
}

fn main() -> io::Result<()> {
    let args = parse_args();
    let mut hubs = green::Hubs::new().name("server");
    if args.hubs > 0 {
        hubs = hubs.threads(args.hubs);
    }

    // `listen` sets SO_REUSEPORT unless the port is 0 (port 0 would give
    // each hub a different port): reserve a port with a socket that
    // is bound with SO_REUSEPORT and never listens, so it takes no
    // connections.
    let reserve = green::net::TcpSocket::new_v4()?;
    reserve.set_reuseport(true)?;
    reserve.bind("127.0.0.1:0".parse().expect("a valid address"))?;
    let addr = reserve.local_addr()?;

    // Each hub says whether it listens, with the handle that stops it.
    let (ready, listening) = green::sync::mpsc::channel();
    let servers = hubs.spawn(move |i| -> io::Result<usize> {
        let server = green::listen(addr).map(|l| green::Server::new(l, 1000));
        // Cannot fail: main waits for one message from each hub.
        let _ = ready.send(server.as_ref().map(|s| s.handle()).ok());
        let served = Rc::new(Cell::new(0));
        let count = served.clone();
        server?.serve(move |stream, _| {
            count.set(count.get() + 1);
            handle(i, stream)
        })?;
        Ok(served.get())
    })?;
    let n = servers.len();
    let names: Vec<String> = servers
        .threads()
        .map(|t| t.name().unwrap_or("?").to_owned())
        .collect();
    // Every hub listens before the first client connects.
    let stops: Vec<_> = listening.iter().take(n).flatten().collect();
    if stops.len() < n {
        stops.iter().for_each(|s| s.stop());
        for served in servers.join() {
            served?; // the hub's listen error
        }
        return Err(io::Error::other("a hub did not listen"));
    }
    println!(
        "{n} hubs ({}) listen on {addr} with SO_REUSEPORT",
        names.join(", ")
    );

    let start = Instant::now();
    let clients: Vec<_> = (0..args.clients)
        .map(|id| {
            // Spread the connections evenly over the clients.
            let share =
                args.connections / args.clients + usize::from(id < args.connections % args.clients);
            green::spawn(move || client(addr, id, share, n))
        })
        .collect();
    let mut seen = vec![0; n];
    let mut failed = None;
    for c in clients {
        match c.wait() {
            Ok(by_hub) => seen.iter_mut().zip(by_hub).for_each(|(s, b)| *s += b),
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    let elapsed = start.elapsed();

    for stop in &stops {
        stop.stop();
    }
    // From the main thread's root: it parks while the hubs end.
    let served = servers.join();
    drop(reserve);
    if let Some(e) = failed {
        return Err(e);
    }

    println!(
        "{} connections from {} green clients in {:.1} ms ({:.0} connections/s)",
        args.connections,
        args.clients,
        elapsed.as_secs_f64() * 1e3,
        args.connections as f64 / elapsed.as_secs_f64()
    );
    let mut total = 0;
    for ((name, served), seen) in names.iter().zip(served).zip(&seen) {
        let served = served?;
        total += served;
        println!("  {name}: served {served:>6} connections (clients got {seen} replies from it)");
        if served != *seen {
            return Err(io::Error::other(format!(
                "{name} served {served} connections, its clients counted {seen}"
            )));
        }
    }
    let busy = seen.iter().filter(|&&s| s > 0).count();
    println!("{busy} of {n} hubs served connections; {total} served in all");
    Ok(())
}

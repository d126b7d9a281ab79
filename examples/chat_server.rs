//! eventlet's classic chat server: every line a client sends goes to every
//! other client.
//!
//! By default the example drives itself: a few green clients join, each
//! says a few lines, each checks that it heard every line of every other
//! client, then they leave and the server stops.
//!
//! ```text
//! cargo run --example chat_server                      # self-driving
//! cargo run --example chat_server -- --clients 8 --lines 20
//! cargo run --example chat_server -- --serve 127.0.0.1:7000   # then: nc 127.0.0.1 7000
//! ```
//!
//! With `--serve` it runs until a participant sends the line `/shutdown`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::rc::Rc;
use std::time::Instant;

use green::net::{SocketAddr, TcpStream};
use green::StopServe;

/// Who is in the chat: an id per connection, and the stream to write to.
#[derive(Default)]
struct Room {
    next_id: Cell<u64>,
    participants: RefCell<BTreeMap<u64, Rc<TcpStream>>>,
    lines_relayed: Cell<u64>,
}

impl Room {
    fn join(&self, stream: Rc<TcpStream>) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.participants.borrow_mut().insert(id, stream);
        id
    }

    fn leave(&self, id: u64) {
        self.participants.borrow_mut().remove(&id);
    }

    /// Sends `line` to everyone but `from`. The list is copied first: a
    /// write may park, and other handlers join and leave meanwhile.
    fn broadcast(&self, from: u64, line: &str) {
        let others: Vec<(u64, Rc<TcpStream>)> = self
            .participants
            .borrow()
            .iter()
            .filter(|(&id, _)| id != from)
            .map(|(&id, s)| (id, s.clone()))
            .collect();
        for (id, s) in others {
            if (&*s).write_all(line.as_bytes()).is_err() {
                self.leave(id); // gone: its own handler ends at its next read
            }
        }
        self.lines_relayed.set(self.lines_relayed.get() + 1);
    }
}

/// One participant's connection: greet, then relay each line it sends.
fn chat(room: &Room, stream: TcpStream, peer: SocketAddr) -> io::Result<()> {
    // Lines are small: send each at once rather than wait to coalesce.
    stream.set_nodelay(true)?;
    let stream = Rc::new(stream);
    let id = room.join(stream.clone());
    (&*stream).write_all(format!("welcome, {peer} (#{id})\n").as_bytes())?;
    let mut reader = BufReader::new(&*stream);
    let mut line = String::new();
    let result = loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break Ok(()),
            Ok(_) if line.trim_end() == "/shutdown" => break Err(StopServe.into()),
            Ok(_) => room.broadcast(id, &line),
            Err(e) => break Err(e),
        }
    };
    room.leave(id);
    result
}

struct Args {
    clients: usize,
    lines: usize,
    serve: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        clients: 4,
        lines: 5,
        serve: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage(&flag));
        match flag.as_str() {
            "--clients" => args.clients = value.parse().unwrap_or_else(|_| usage(&flag)),
            "--lines" => args.lines = value.parse().unwrap_or_else(|_| usage(&flag)),
            "--serve" => args.serve = Some(value),
            _ => usage(&flag),
        }
    }
    args
}

fn usage(flag: &str) -> ! {
    eprintln!(
        "bad argument {flag:?}\n\
         usage: chat_server [--clients N] [--lines K] | --serve ADDR"
    );
    std::process::exit(2);
}

/// A self-driving participant: waits for its welcome and for everyone
/// else's, says its lines, and counts what it hears until it has every
/// other participant's lines.
fn participant(
    addr: SocketAddr,
    me: usize,
    clients: usize,
    lines: usize,
    all_here: Rc<green::sync::Barrier>,
) -> io::Result<usize> {
    let stream = green::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    assert!(line.starts_with("welcome"), "{line:?}");
    // Everyone has joined the room: no line is said before all can hear it.
    all_here.wait();
    let talker = {
        let stream = stream.try_clone()?;
        green::spawn(move || -> io::Result<()> {
            for k in 0..lines {
                (&stream).write_all(format!("client {me} says line {k}\n").as_bytes())?;
            }
            Ok(())
        })
    };
    let expected = (clients - 1) * lines;
    let mut heard = vec![0; clients];
    for _ in 0..expected {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let from: usize = line
            .split_whitespace()
            .nth(1)
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| io::Error::other(format!("unexpected line {line:?}")))?;
        assert_ne!(from, me, "a participant heard its own line");
        heard[from] += 1;
    }
    talker.wait()?;
    assert!(heard
        .iter()
        .enumerate()
        .all(|(i, &n)| n == if i == me { 0 } else { lines }));
    Ok(expected)
}

fn main() -> io::Result<()> {
    let args = parse_args();
    let room = Rc::new(Room::default());
    if let Some(addr) = args.serve {
        let listener = green::listen(addr.as_str())?;
        println!(
            "chat server on {}; send /shutdown to stop it",
            listener.local_addr()?
        );
        let r = room.clone();
        green::serve(listener, move |s, peer| chat(&r, s, peer), 1000)?;
        println!("relayed {} lines", room.lines_relayed.get());
        return Ok(());
    }

    let server = green::Server::new(green::listen("127.0.0.1:0")?, 100);
    let addr = server.local_addr()?;
    let handle = server.handle();
    let r = room.clone();
    let serving = green::spawn(move || server.serve(move |s, peer| chat(&r, s, peer)));

    let start = Instant::now();
    let all_here = Rc::new(green::sync::Barrier::new(args.clients));
    let participants: Vec<_> = (0..args.clients)
        .map(|me| {
            let all_here = all_here.clone();
            let (clients, lines) = (args.clients, args.lines);
            green::spawn(move || participant(addr, me, clients, lines, all_here))
        })
        .collect();
    let mut heard = Vec::new();
    for p in participants {
        heard.push(p.wait()?);
    }
    handle.stop();
    serving.wait()?;
    let expected = (args.clients - 1) * args.lines;
    assert!(heard.iter().all(|&n| n == expected));
    println!(
        "{} participants said {} lines each; the server relayed {} lines, and each \
         participant heard the {expected} lines of the others, in {:.1} ms",
        args.clients,
        args.lines,
        room.lines_relayed.get(),
        start.elapsed().as_secs_f64() * 1e3
    );
    println!("everyone left; server stopped");
    Ok(())
}

//! The backdoor console (`green::debug::serve_backdoor`), used as an
//! operator uses it: a plain client connects, writes a command per line and
//! reads the reply up to the next prompt.
//!
//! The clients are std's blocking sockets, called from the test's root:
//! they block the test's OS thread, and with it its hub, while the
//! backdoor answers from its own OS thread — the case it is made for. The
//! test's green threads are parked meanwhile, so a dump still sees them,
//! and a kill reaches them when the test's hub runs again (in `join`).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use green::debug::{serve_backdoor, Backdoor, BackdoorAddr};

/// Far longer than any reply takes: only a lost reply waits this long.
const HANG: Duration = Duration::from_secs(30);
const PROMPT: &str = "green> ";

/// A console client: writes commands, reads replies up to the prompt.
struct Client {
    reader: BufReader<Box<dyn Read>>,
    writer: Box<dyn Write>,
}

impl Client {
    fn tcp(backdoor: &Backdoor) -> io::Result<Client> {
        let &BackdoorAddr::Tcp(addr) = backdoor.local_addr() else {
            panic!("not a TCP backdoor: {backdoor:?}");
        };
        let s = std::net::TcpStream::connect(addr)?;
        s.set_read_timeout(Some(HANG))?;
        Client::start(Box::new(s.try_clone()?), Box::new(s))
    }

    fn unix(path: &Path) -> io::Result<Client> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(HANG))?;
        Client::start(Box::new(s.try_clone()?), Box::new(s))
    }

    /// Reads the banner and the first prompt.
    fn start(r: Box<dyn Read>, writer: Box<dyn Write>) -> io::Result<Client> {
        let mut c = Client {
            reader: BufReader::new(r),
            writer,
        };
        let banner = c.reply()?;
        assert!(banner.starts_with("green backdoor"), "banner: {banner:?}");
        Ok(c)
    }

    /// Sends `line` (with `\n`) and returns the reply, without the prompt.
    fn run(&mut self, line: &str) -> io::Result<String> {
        self.writer.write_all(format!("{line}\n").as_bytes())?;
        self.reply()
    }

    /// Reads up to the next prompt; an error at the end of the stream.
    fn reply(&mut self) -> io::Result<String> {
        let mut buf = Vec::new();
        while !buf.ends_with(PROMPT.as_bytes()) {
            if self.reader.read_until(b' ', &mut buf)? == 0 {
                let got = String::from_utf8_lossy(&buf).into_owned();
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, got));
            }
        }
        buf.truncate(buf.len() - PROMPT.len());
        String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Whether the backdoor closed the connection (nothing more to read).
    fn at_eof(&mut self) -> io::Result<bool> {
        Ok(self.reader.fill_buf()?.is_empty())
    }
}

fn loopback() -> io::Result<Backdoor> {
    serve_backdoor(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// A green thread named "worker" of the test's hub, parked in a sleep.
fn worker() -> io::Result<green::GreenThread<()>> {
    let w = green::Builder::new()
        .name("worker")
        .spawn(|| green::sleep(Duration::from_secs(60)))?;
    green::yield_now(); // it starts and parks in its sleep
    Ok(w)
}

#[test]
fn help_lists_the_commands() -> io::Result<()> {
    let backdoor = loopback()?;
    let help = Client::tcp(&backdoor)?.run("help")?;
    for cmd in ["dump", "stats", "kill ID", "help", "quit"] {
        assert!(help.contains(cmd), "{cmd} missing from help: {help}");
    }
    Ok(())
}

#[test]
fn dump_shows_a_green_thread_of_another_hub() -> io::Result<()> {
    let w = worker()?;
    let backdoor = loopback()?;
    let dump = Client::tcp(&backdoor)?.run("dump")?;
    let line = dump
        .lines()
        .find(|l| l.contains(&format!("green thread {} \"worker\"", w.id())))
        .unwrap_or_else(|| panic!("worker {} missing from the dump:\n{dump}", w.id()));
    assert!(line.contains("tests/debug_backdoor.rs"), "{line}");
    assert!(line.contains("sleep"), "{line}");
    w.kill();
    Ok(())
}

#[test]
fn kill_unwinds_the_green_thread() -> io::Result<()> {
    let w = worker()?;
    let id = w.id();
    let backdoor = loopback()?;
    let mut client = Client::tcp(&backdoor)?;
    assert_eq!(
        client.run(&format!("kill {id}"))?,
        format!("killed green thread {id}\n")
    );
    // The kill is delivered when this hub runs again: here, in the join.
    assert!(w.join().unwrap_err().is::<green::Killed>());
    assert_eq!(
        client.run(&format!("kill {id}"))?,
        format!("no green thread {id}\n")
    );
    Ok(())
}

#[test]
fn stats_has_a_line_per_hub() -> io::Result<()> {
    let w = worker()?;
    // The root parks with nothing runnable: the hub publishes its counts
    // before it polls (a hub that never idled has none to show).
    green::sleep(Duration::from_millis(1));
    let my_hub = green::debug::dump()
        .hubs
        .into_iter()
        .find(|h| h.green_threads.iter().any(|g| g.id == w.id()))
        .expect("the test's hub is in the dump")
        .os_thread;
    let backdoor = loopback()?;
    let stats = Client::tcp(&backdoor)?.run("stats")?;
    // This hub, the backdoor's, and those of the tests running alongside.
    assert!(stats.lines().count() >= 2, "{stats}");
    assert!(stats.lines().all(|l| l.starts_with("hub of OS thread ")));
    let mine = format!("hub of OS thread {my_hub}");
    let line = stats
        .lines()
        .find(|l| {
            l.strip_prefix(&mine)
                .is_some_and(|r| r.starts_with([' ', ':']))
        })
        .unwrap_or_else(|| panic!("no line for this hub:\n{stats}"));
    assert!(line.contains(": 1 green threads, 0 runnable, "), "{line}");
    assert!(line.contains(" timers (next in "), "{line}");
    assert!(line.contains(" fd waiters, 0 registered fds"), "{line}");
    assert!(stats.contains("(green-backdoor): "), "{stats}");
    w.kill();
    Ok(())
}

#[test]
fn unknown_command_is_named() -> io::Result<()> {
    let backdoor = loopback()?;
    assert_eq!(
        Client::tcp(&backdoor)?.run("frobnicate now")?,
        "unknown command: frobnicate (try help)\n"
    );
    Ok(())
}

#[test]
fn kill_needs_a_number() -> io::Result<()> {
    let backdoor = loopback()?;
    let mut client = Client::tcp(&backdoor)?;
    assert_eq!(client.run("kill abc")?, "kill: ID must be a number\n");
    assert_eq!(client.run("kill")?, "usage: kill ID\n");
    Ok(())
}

#[test]
fn crlf_and_blank_lines_are_accepted() -> io::Result<()> {
    let backdoor = loopback()?;
    let mut client = Client::tcp(&backdoor)?;
    assert_eq!(client.run("\r")?, ""); // an empty line just prompts again
    assert_eq!(client.run("   ")?, "");
    assert!(client.run("  help \r")?.contains("kill ID"));
    Ok(())
}

#[test]
fn quit_closes_the_connection() -> io::Result<()> {
    let backdoor = loopback()?;
    let mut client = Client::tcp(&backdoor)?;
    client.writer.write_all(b"quit\r\n")?;
    assert!(client.at_eof()?);
    Ok(())
}

#[test]
fn a_line_too_long_closes_the_connection() -> io::Result<()> {
    let backdoor = loopback()?;
    let mut client = Client::tcp(&backdoor)?;
    client.writer.write_all(&[b'x'; 4096])?;
    // The rest of the line is never read: the close may reset the
    // connection, so read the reply only.
    let mut reply = String::new();
    client.reader.read_line(&mut reply)?;
    assert_eq!(reply, "line too long (over 1024 bytes): closing\n");
    Ok(())
}

#[test]
fn unix_socket_serves_and_its_file_is_removed_at_stop() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("backdoor.sock");
    let backdoor = serve_backdoor(path.as_path())?;
    assert_eq!(backdoor.local_addr(), &BackdoorAddr::Unix(path.clone()));
    let w = worker()?;
    let dump = Client::unix(&path)?.run("dump")?;
    assert!(dump.contains(&format!("green thread {} \"worker\"", w.id())));
    backdoor.stop();
    assert!(!path.exists(), "the socket file is left after stop");
    w.kill();
    Ok(())
}

#[test]
fn stop_ends_an_idle_connection() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("backdoor.sock");
    let backdoor = serve_backdoor(path.as_path())?;
    // Connected, and idle at the prompt.
    let mut client = Client::unix(&path)?;
    // Stop on another thread, so that a stop that hangs fails the test.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        backdoor.stop();
        let _ = tx.send(());
    });
    rx.recv_timeout(HANG)
        .expect("stop returns while a client is connected");
    assert!(client.at_eof()?, "the client sees the end of the stream");
    // The path is free again.
    let again = serve_backdoor(path.as_path())?;
    assert_eq!(
        Client::unix(&path)?.run("kill abc")?,
        "kill: ID must be a number\n"
    );
    again.stop();
    Ok(())
}

/// Device and inode of every server-side socket (listener and accepted
/// connections) bound to `path`, from `/proc/net/unix`.
fn socket_inodes(path: &Path) -> io::Result<Vec<String>> {
    let table = std::fs::read_to_string("/proc/net/unix")?;
    let path = path.to_str().expect("a UTF-8 temporary path");
    Ok(table
        .lines()
        .filter(|l| l.split_whitespace().nth(7) == Some(path))
        .filter_map(|l| l.split_whitespace().nth(6).map(|i| format!("socket:[{i}]")))
        .collect())
}

/// How many fds of this process are one of `sockets`.
fn open_fds(sockets: &[String]) -> io::Result<usize> {
    let mut n = 0;
    for fd in std::fs::read_dir("/proc/self/fd")? {
        if let Ok(target) = std::fs::read_link(fd?.path()) {
            n += usize::from(sockets.iter().any(|s| target.as_os_str() == s.as_str()));
        }
    }
    Ok(n)
}

#[test]
fn stop_leaks_no_fd_and_no_green_thread() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("backdoor.sock");
    let backdoor = serve_backdoor(path.as_path())?;
    let tag = backdoor.local_addr().to_string();
    let mut client = Client::unix(&path)?;
    let sockets = socket_inodes(&path)?;
    // The listener and the accepted connection.
    assert_eq!(open_fds(&sockets)?, 2, "{sockets:?}");
    let ours = || {
        green::debug::dump()
            .green_threads()
            .filter(|g| g.name.as_deref().is_some_and(|n| n.contains(&tag)))
            .count()
    };
    assert_eq!(ours(), 2); // the accept loop and the console
    drop(backdoor); // dropping stops it too
    assert!(client.at_eof()?);
    assert_eq!(open_fds(&sockets)?, 0);
    assert_eq!(ours(), 0);
    assert!(!path.exists());
    Ok(())
}

#[test]
fn bad_address_is_invalid_input() -> io::Result<()> {
    for bad in ["", "localhost", "127.0.0.1", "127.0.0.1:99999", "unix:"] {
        let e = BackdoorAddr::parse(bad).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        assert!(e.to_string().contains("invalid backdoor address"), "{e}");
    }
    assert_eq!(
        BackdoorAddr::parse("[::1]:3000")?,
        BackdoorAddr::Tcp("[::1]:3000".parse().unwrap())
    );
    assert_eq!(
        BackdoorAddr::parse("unix:/run/bd.sock")?,
        BackdoorAddr::parse("/run/bd.sock")?
    );
    Ok(())
}

#[test]
fn address_in_use_is_refused() -> io::Result<()> {
    let first = loopback()?;
    let e = serve_backdoor(first.local_addr().clone()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse);

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("taken");
    std::fs::write(&path, b"not a socket")?;
    let e = serve_backdoor(path.as_path()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    assert_eq!(std::fs::read(&path)?, b"not a socket"); // left alone
    Ok(())
}

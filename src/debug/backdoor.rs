//! The backdoor: a line console on a socket, to look inside a running
//! program (eventlet's `backdoor`, without the Python shell).
//!
//! # Security
//!
//! **Anyone who can connect sees every green thread of the process and can
//! kill any of them. Nothing is authenticated.** Listen only on loopback
//! (`127.0.0.1`, `[::1]`) or on a Unix socket in a directory that only the
//! operator can enter (mode `0700`); never on a public address.
//!
//! # How it works
//!
//! The console runs on an OS thread of its own, `green-backdoor`, with its
//! own hub, so it answers even while every hub of the program is held by a
//! green thread that never switches — which is when an operator needs it.
//! [`dump`](super::dump) and [`kill`](super::kill) work from any OS thread.
//!
//! ```text
//!  caller's OS thread                 "green-backdoor" OS thread (own hub)
//!  ------------------                 ------------------------------------
//!  serve_backdoor(addr)
//!    bind (its error is returned)
//!    spawn the OS thread ---------->  root: spawn the accept loop
//!    wait until it serves <---------        send `started`
//!    return the Backdoor                    wait on `stop`
//!                                     accept loop (green thread):
//!                                       accept; spawn a console green thread
//!                                     console (a green thread per client):
//!                                       read a line, run it, write the reply
//!  Backdoor::stop, or its drop
//!    send `stop` ------------------>  root wakes: kill the accept loop (the
//!                                       listener closes) and every console
//!                                       (its connection closes)
//!    wait for `done` <--------------  send `done`, return; the thread ends
//!    join the OS thread
//!    remove the socket file (Unix)
//! ```
//!
//! # The console
//!
//! On connect it writes a one-line banner, then the prompt `green> `. It
//! reads one command per line (`\n` or `\r\n`; surrounding whitespace is
//! ignored, an empty line just prompts again):
//!
//! - `dump`: the [`Dump`](super::Dump) of every hub and green thread;
//! - `stats`: one line of counts per hub;
//! - `kill ID`: [`kill`](super::kill) green thread `ID`, on any hub;
//! - `help`: the list of commands;
//! - `quit` or `exit`: closes the connection.
//!
//! A line longer than 1024 bytes closes the connection.

use std::cell::RefCell;
use std::fmt;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::Dump;
use crate::net::TcpListener;
use crate::os::unix::net::UnixListener;
use crate::{Builder, Event, GreenThread};

/// The prompt written after the banner and after each reply.
const PROMPT: &str = "green> ";
/// The longest command line; a longer one closes the connection.
const MAX_LINE: usize = 1024;
/// The first pause after an accept error; it doubles with each error in a
/// row, up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(5);
/// The longest pause between accept retries.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

const HELP: &str = "\
commands:
  dump      every hub and green thread: id, name, spawn site, what it waits on
  stats     one line of counts per hub
  kill ID   kill green thread ID, of any hub (it unwinds with green::Killed)
  help      this list
  quit      close this connection (or: exit)
";

/// Where a [`serve_backdoor`] listens: a TCP address or a Unix socket path.
///
/// Its `Display` is the form [`parse`](BackdoorAddr::parse) reads back:
/// `127.0.0.1:3000`, `[::1]:3000`, or `unix:/run/app/backdoor.sock`.
///
/// # Examples
/// ```
/// use std::path::Path;
/// use green::debug::BackdoorAddr;
///
/// let tcp = BackdoorAddr::from(std::net::SocketAddr::from(([127, 0, 0, 1], 3000)));
/// assert_eq!(tcp, BackdoorAddr::parse("127.0.0.1:3000")?);
/// let unix = BackdoorAddr::from(Path::new("/run/app/backdoor.sock"));
/// assert_eq!(unix.to_string(), "unix:/run/app/backdoor.sock");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BackdoorAddr {
    /// A TCP address; port 0 asks the OS for a free port.
    Tcp(SocketAddr),
    /// The path of a Unix socket, which must not exist yet.
    Unix(PathBuf),
}

impl BackdoorAddr {
    /// Reads an address as an operator writes it: `unix:PATH`, or a path
    /// starting with `/`, is a Unix socket; anything else must be a
    /// numeric socket address (`127.0.0.1:3000`, `[::1]:3000`). Host names
    /// are not looked up.
    ///
    /// # Errors
    /// `InvalidInput`, with a message that quotes `s` and says what is
    /// expected, if `s` is neither.
    ///
    /// # Examples
    /// ```
    /// use green::debug::BackdoorAddr;
    ///
    /// assert!(matches!(BackdoorAddr::parse("127.0.0.1:0")?, BackdoorAddr::Tcp(_)));
    /// assert!(matches!(BackdoorAddr::parse("unix:/tmp/bd.sock")?, BackdoorAddr::Unix(_)));
    /// assert!(matches!(BackdoorAddr::parse("/tmp/bd.sock")?, BackdoorAddr::Unix(_)));
    /// let e = BackdoorAddr::parse("localhost").unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn parse(s: &str) -> io::Result<BackdoorAddr> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(invalid_addr(s, "a Unix socket path after \"unix:\""));
            }
            return Ok(BackdoorAddr::Unix(PathBuf::from(path)));
        }
        if s.starts_with('/') {
            return Ok(BackdoorAddr::Unix(PathBuf::from(s)));
        }
        s.parse().map(BackdoorAddr::Tcp).map_err(|_| {
            invalid_addr(
                s,
                "IP:PORT (127.0.0.1:3000, [::1]:3000) or a Unix socket path (unix:PATH, /PATH)",
            )
        })
    }
}

fn invalid_addr(s: &str, expected: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("invalid backdoor address {s:?}: expected {expected}"),
    )
}

impl fmt::Display for BackdoorAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackdoorAddr::Tcp(a) => a.fmt(f),
            BackdoorAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl From<SocketAddr> for BackdoorAddr {
    fn from(a: SocketAddr) -> BackdoorAddr {
        BackdoorAddr::Tcp(a)
    }
}

impl From<PathBuf> for BackdoorAddr {
    fn from(p: PathBuf) -> BackdoorAddr {
        BackdoorAddr::Unix(p)
    }
}

impl From<&Path> for BackdoorAddr {
    fn from(p: &Path) -> BackdoorAddr {
        BackdoorAddr::Unix(p.to_owned())
    }
}

/// A running backdoor, made by [`serve_backdoor`]. Stopping it
/// ([`stop`](Backdoor::stop), or dropping it) closes the listener and every
/// connection, ends its OS thread and removes its Unix socket file.
///
/// # Examples
/// ```
/// use std::net::SocketAddr;
///
/// let addr = SocketAddr::from(([127, 0, 0, 1], 0));
/// let backdoor = green::debug::serve_backdoor(addr)?;
/// println!("backdoor on {}", backdoor.local_addr());
/// drop(backdoor); // stops it, as `stop` does
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "dropping a Backdoor stops it"]
pub struct Backdoor {
    addr: BackdoorAddr,
    /// Sent to stop the backdoor's OS thread.
    stop: Event<()>,
    /// Sent by the backdoor's OS thread when it has closed everything.
    done: Event<()>,
    /// `None` once stopped.
    thread: Option<JoinHandle<()>>,
    /// The socket file `serve_backdoor` created, to remove at the stop.
    socket_file: Option<SocketFile>,
}

impl fmt::Debug for Backdoor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backdoor")
            .field("addr", &self.addr)
            .field("running", &self.thread.is_some())
            .finish_non_exhaustive()
    }
}

impl Backdoor {
    /// The address the backdoor listens on: for a TCP port 0, the port
    /// the OS chose; for a Unix socket, the path as it was given.
    ///
    /// # Examples
    /// ```
    /// use std::net::SocketAddr;
    /// use green::debug::BackdoorAddr;
    ///
    /// let backdoor = green::debug::serve_backdoor(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    /// let BackdoorAddr::Tcp(addr) = backdoor.local_addr() else { unreachable!() };
    /// assert_ne!(addr.port(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> &BackdoorAddr {
        &self.addr
    }

    /// Stops the backdoor, as dropping it does: closes the listener, kills
    /// the green thread of every connection (each client sees the end of
    /// the stream), joins the backdoor's OS thread, and removes the Unix
    /// socket file `serve_backdoor` created (if it is still that file).
    ///
    /// It waits for the backdoor's OS thread to end: on a green thread,
    /// that parks only the green thread.
    ///
    /// # Examples
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("backdoor.sock");
    /// let backdoor = green::debug::serve_backdoor(path.as_path())?;
    /// assert!(path.exists());
    /// backdoor.stop();
    /// assert!(!path.exists());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(t) = self.thread.take() {
            // A second send finds the event sent: nothing more to do.
            let _ = self.stop.send(());
            // Dropped on its own OS thread (handed there by the program),
            // the handle cannot wait for that thread: it ends on its own.
            if t.thread().id() != thread::current().id() {
                self.done.wait();
                // A panic of the thread's root was reported by the panic
                // hook; there is nothing more to do with it here.
                let _ = t.join();
            }
        }
        if let Some(f) = self.socket_file.take() {
            f.remove();
        }
    }
}

impl Drop for Backdoor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The Unix socket file a backdoor created, known by its device and inode
/// so that a file put in its place later is left alone.
struct SocketFile {
    /// Absolute, so that a change of the working directory does not matter.
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// The file just bound at `path`.
    fn of(path: &Path) -> io::Result<SocketFile> {
        let path = std::path::absolute(path)?;
        let m = fs::symlink_metadata(&path)?;
        Ok(SocketFile {
            path,
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    /// Removes the file if it is still the one bound.
    fn remove(self) {
        if let Ok(m) = fs::symlink_metadata(&self.path) {
            if m.dev() == self.dev && m.ino() == self.ino {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// What the backdoor's OS thread reports once it serves, or why it cannot.
type Started = Event<Result<(), Arc<io::Error>>>;

/// Serves the backdoor console on `addr`, on an OS thread of its own: a
/// way in to see every green thread of the process ([`dump`](super::dump))
/// and kill any of them ([`kill`](super::kill)).
///
/// **Security: anyone who can connect sees every green thread and can kill
/// any of them; nothing is authenticated.** Listen only on loopback or on a
/// Unix socket in a directory only the operator can enter.
///
/// The address is bound here, on the caller's thread. Then an OS thread
/// named `green-backdoor` starts, whose hub runs the accept loop in a green
/// thread and each connection in a green thread of its own. Because it has
/// its own hub, the backdoor answers even while the program's hubs are held
/// by green threads that never switch, which is when an operator needs it.
/// It serves until the returned [`Backdoor`] is stopped or dropped.
///
/// Connect with `nc 127.0.0.1 PORT`, `nc -U PATH` or `telnet`: a one-line
/// banner, then the prompt `green> `, and one command per line: `dump`,
/// `stats` (one line of counts per hub), `kill ID`, `help`, `quit` (or
/// `exit`).
///
/// A Unix socket path must not exist: nothing is removed before the bind.
/// The socket file is removed when the backdoor stops.
///
/// # Errors
/// The error of the bind (`AddrInUse` for a port in use or a path that
/// exists, `PermissionDenied`, `NotFound` for a missing directory, ...),
/// of `getsockname`, or of starting the OS thread or its first green
/// thread.
///
/// # Examples
/// ```
/// use std::io::{BufRead, BufReader, Read, Write};
/// use green::debug::BackdoorAddr;
///
/// let backdoor = green::debug::serve_backdoor(BackdoorAddr::parse("127.0.0.1:0")?)?;
/// let BackdoorAddr::Tcp(addr) = *backdoor.local_addr() else { unreachable!() };
///
/// // A client, as an operator's `nc` would be.
/// let mut client = std::net::TcpStream::connect(addr)?;
/// let mut reader = BufReader::new(client.try_clone()?);
/// let mut banner = String::new();
/// reader.read_line(&mut banner)?;
/// assert!(banner.starts_with("green backdoor"));
/// client.write_all(b"help\nquit\n")?;
/// let mut rest = String::new();
/// reader.read_to_string(&mut rest)?; // `quit` closes the connection
/// assert!(rest.contains("kill ID"));
/// backdoor.stop();
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn serve_backdoor(addr: impl Into<BackdoorAddr>) -> io::Result<Backdoor> {
    let (listener, addr, socket_file) = match addr.into() {
        BackdoorAddr::Tcp(a) => {
            let l = TcpListener::bind(a)?;
            let local = l.local_addr()?;
            (Listener::Tcp(l), BackdoorAddr::Tcp(local), None)
        }
        BackdoorAddr::Unix(p) => {
            let l = UnixListener::bind(&p)?;
            // Not knowing the file (it was removed at once) only means it
            // is not removed at the stop.
            let file = SocketFile::of(&p).ok();
            (Listener::Unix(l), BackdoorAddr::Unix(p), file)
        }
    };
    let mut backdoor = Backdoor {
        addr,
        stop: Event::new(),
        done: Event::new(),
        thread: None,
        socket_file,
    };
    let started: Started = Event::new();
    let thread = {
        let stop = backdoor.stop.clone();
        let done = backdoor.done.clone();
        let started = started.clone();
        let name = backdoor.addr.to_string();
        thread::Builder::new()
            .name("green-backdoor".into())
            .spawn(move || {
                let guard = Done { done, started };
                run(listener, &name, &stop, &guard.started);
            })?
    };
    backdoor.thread = Some(thread);
    match started.wait() {
        Ok(()) => Ok(backdoor),
        // Dropping `backdoor` joins the thread and removes the socket file.
        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
    }
}

/// Sends `done` (and `started`, if the thread ends before it serves) when
/// the backdoor's thread ends, however it ends.
struct Done {
    done: Event<()>,
    started: Started,
}

impl Drop for Done {
    fn drop(&mut self) {
        let gone = io::Error::other("the backdoor's thread ended before it served");
        let _ = self.started.send(Err(Arc::new(gone)));
        let _ = self.done.send(());
    }
}

/// The bound listener, moved to the backdoor's thread.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// The consoles' green threads, to kill at the stop.
type Consoles = Rc<RefCell<Vec<GreenThread<()>>>>;

/// The root of the backdoor's OS thread: serves until `stop`, then kills
/// the accept loop and every console.
fn run(listener: Listener, addr: &str, stop: &Event<()>, started: &Started) {
    let consoles: Consoles = Rc::default();
    let acceptor = {
        let consoles = consoles.clone();
        let addr = addr.to_owned();
        Builder::new()
            .name(format!("backdoor accept on {addr}"))
            .spawn(move || accept_loop(&listener, &addr, &consoles))
    };
    let acceptor = match acceptor {
        Ok(a) => a,
        Err(e) => {
            let _ = started.send(Err(Arc::new(e)));
            return;
        }
    };
    let _ = started.send(Ok(()));
    stop.wait();
    // Each kill returns once its target has unwound (none parks in its
    // destructors): the listener and then each connection are closed.
    acceptor.kill();
    let consoles: Vec<_> = consoles.borrow_mut().drain(..).collect();
    for c in &consoles {
        c.kill();
    }
}

/// Accepts connections and starts a console green thread for each, until
/// it is killed.
fn accept_loop(listener: &Listener, addr: &str, consoles: &Consoles) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let console = match listener {
            Listener::Tcp(l) => l.accept().and_then(|(s, peer)| {
                spawn_console(s, format!("backdoor console on {addr} from {peer}"))
            }),
            Listener::Unix(l) => l
                .accept()
                .and_then(|(s, _)| spawn_console(s, format!("backdoor console on {addr}"))),
        };
        match console {
            Ok(gt) => {
                let mut consoles = consoles.borrow_mut();
                consoles.retain(|c| !c.is_finished());
                consoles.push(gt);
                backoff = BACKOFF_MIN;
            }
            // That connection's own trouble: go on at once.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                ) => {}
            // Out of fds, memory or stacks: pause rather than spin.
            Err(_) => {
                crate::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Starts the console of one connection in a green thread named `name`.
fn spawn_console<S>(stream: S, name: String) -> io::Result<GreenThread<()>>
where
    S: 'static,
    for<'a> &'a S: Read + Write,
{
    Builder::new().name(name).spawn(move || {
        // An error is the client's going away: nothing to report.
        let _ = console(&stream);
    })
}

/// Serves one connection: banner, then prompt, command, reply, until
/// `quit`, the end of the stream, or a line too long.
fn console<S>(stream: &S) -> io::Result<()>
where
    for<'a> &'a S: Read + Write,
{
    let mut out = stream;
    let mut input = BufReader::new(stream);
    let banner = format!(
        "green backdoor, pid {}: dump, stats, kill ID, help, quit\n{PROMPT}",
        std::process::id()
    );
    out.write_all(banner.as_bytes())?;
    let mut line = Vec::new();
    loop {
        line.clear();
        (&mut input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if line.is_empty() {
            return Ok(()); // the end of the stream
        }
        if line.len() > MAX_LINE && !line.ends_with(b"\n") {
            let msg = format!("line too long (over {MAX_LINE} bytes): closing\n");
            return out.write_all(msg.as_bytes());
        }
        let Some(mut reply) = command(String::from_utf8_lossy(&line).trim()) else {
            return Ok(()); // quit
        };
        reply.push_str(PROMPT);
        out.write_all(reply.as_bytes())?;
    }
}

/// Runs one command line; its reply, or `None` to close the connection.
fn command(line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    let Some(cmd) = words.next() else {
        return Some(String::new());
    };
    let args: Vec<&str> = words.collect();
    Some(match (cmd, args.as_slice()) {
        ("quit" | "exit", []) => return None,
        ("help", []) => HELP.to_owned(),
        ("dump", []) => super::dump().to_string(),
        ("stats", []) => stats(&super::dump()),
        ("kill", [id]) => match id.parse::<u64>() {
            Ok(id) if super::kill(id) => format!("killed green thread {id}\n"),
            Ok(id) => format!("no green thread {id}\n"),
            Err(_) => "kill: ID must be a number\n".to_owned(),
        },
        ("kill", _) => "usage: kill ID\n".to_owned(),
        ("quit" | "exit" | "help" | "dump" | "stats", _) => {
            format!("usage: {cmd} (it takes no arguments)\n")
        }
        _ => format!("unknown command: {} (try help)\n", cmd.escape_debug()),
    })
}

/// One line per hub: its OS thread, green threads and counts.
fn stats(dump: &Dump) -> String {
    let mut s = String::new();
    for h in &dump.hubs {
        s.push_str(&h.head(dump.taken_at));
        s.push('\n');
    }
    s
}

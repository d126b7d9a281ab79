//! eventlet's conveniences: [`listen`], [`connect`] and [`serve`], with
//! [`Server`] and [`ServerHandle`] to stop a server from anywhere.
//!
//! # How `serve` runs
//!
//! ```text
//! serve's context          acceptor green thread            pool (concurrency)
//! ---------------          ---------------------            ------------------
//! spawn acceptor  ---->    loop:
//! wait for stop              reserve a slot: spawn_n  ---->  R: recv a connection
//!   (Event)                    (waits while pool full)          handler(stream, addr)
//!                            accept (parks)
//!                            send (stream, addr)      ---->  R wakes, runs handler
//! stop: kill acceptor,
//!   listener closes
//! waitall (in-flight)
//! return
//! ```
//!
//! A slot is taken *before* `accept`, so a full pool stops accepting:
//! pending connections wait in the kernel's listen queue, not in the
//! server.

use std::error::Error;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::panic;
use std::rc::Rc;
use std::time::Duration;

use super::addr::{each_addr, ToSocketAddrs};
use super::tcp::{TcpListener, TcpStream};
use crate::greenthread::{sleep, spawn, GreenThread, Killed};
use crate::pool::GreenPool;
use crate::sync::mpsc;
use crate::Event;

/// Creates a listening TCP socket for a server, as eventlet's `listen`:
/// `SO_REUSEADDR`, and `SO_REUSEPORT` unless the port is 0, so that
/// several OS threads, each with its own hub, may each `listen` on the same
/// port and share its connections.
///
/// Each address `addr` resolves to is tried in turn until one binds. The
/// backlog is the kernel's maximum (`net.core.somaxconn`). For other
/// options use [`TcpSocket`](crate::net::TcpSocket).
///
/// # Errors
/// `AddrInUse` if a socket without `SO_REUSEPORT` has the port; the errors
/// of [`TcpListener::bind`].
///
/// # Examples
/// ```
/// let listener = green::listen("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let _client = green::connect(addr)?;
/// let (_conn, peer) = listener.accept()?;
/// assert!(peer.ip().is_loopback());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn listen<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
    each_addr(addr, |a| TcpListener::bind_addr(a, a.port() != 0))
}

/// Opens a TCP connection, as eventlet's `connect`; the same as
/// [`TcpStream::connect`].
///
/// # Errors
/// As [`TcpStream::connect`]: `ConnectionRefused`, `InvalidInput` when
/// `addr` resolves to no address, ...
///
/// # Examples
/// ```
/// let listener = green::listen("127.0.0.1:0")?;
/// let stream = green::connect(listener.local_addr()?)?;
/// assert_eq!(stream.peer_addr()?, listener.local_addr()?);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
    TcpStream::connect(addr)
}

/// Returned by a [`serve`] handler to stop the server (eventlet's
/// `StopServe`): `return Err(StopServe.into())`.
///
/// It converts into an [`io::Error`] of kind `Other` that `serve`
/// recognises.
///
/// # Examples
/// ```
/// use std::io::Read;
/// let listener = green::listen("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// green::spawn_n(move || {
///     let _ = green::connect(addr); // one client; the handler stops the server
/// });
/// green::serve(listener, |mut s, _| {
///     s.read_to_end(&mut Vec::new())?;
///     Err(green::StopServe.into())
/// }, 10)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StopServe;

impl fmt::Display for StopServe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the handler asked the server to stop")
    }
}

impl Error for StopServe {}

impl From<StopServe> for io::Error {
    fn from(s: StopServe) -> io::Error {
        io::Error::other(s)
    }
}

impl StopServe {
    /// Whether `e` is a `StopServe` turned into an [`io::Error`].
    ///
    /// # Examples
    /// ```
    /// let e: std::io::Error = green::StopServe.into();
    /// assert!(green::StopServe::is(&e));
    /// assert!(!green::StopServe::is(&std::io::ErrorKind::Other.into()));
    /// ```
    pub fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<StopServe>())
    }
}

/// Accepts connections on `listener` and runs `handler(stream, addr)` for
/// each in a green thread of a [`GreenPool`] of `concurrency`, until stopped
/// (eventlet's `serve`).
///
/// This is `Server::new(listener, concurrency).serve(handler)`; use
/// [`Server`] to get a [`ServerHandle`] that stops it from any green thread
/// or OS thread. A handler stops it by returning `Err(StopServe.into())`;
/// see [`Server::serve`] for the rest.
///
/// # Errors
/// As [`Server::serve`].
///
/// # Panics
/// If `concurrency` is 0; as [`Server::serve`].
///
/// # Examples
/// An echo server that a client stops by sending "stop":
/// ```
/// use std::io::{Read, Write};
///
/// let listener = green::listen("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let client = green::spawn(move || -> std::io::Result<Vec<u8>> {
///     let mut s = green::connect(addr)?;
///     s.write_all(b"hello")?;
///     let mut buf = [0; 5];
///     s.read_exact(&mut buf)?;
///     green::connect(addr)?.write_all(b"stop")?;
///     Ok(buf.to_vec())
/// });
/// green::serve(listener, |mut s, _| {
///     let mut buf = [0; 5];
///     let n = s.read(&mut buf)?;
///     if &buf[..n] == b"stop" {
///         return Err(green::StopServe.into());
///     }
///     s.write_all(&buf[..n])
/// }, 100)?;
/// assert_eq!(client.wait()?, b"hello");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn serve<F>(listener: TcpListener, handler: F, concurrency: usize) -> io::Result<()>
where
    F: Fn(TcpStream, SocketAddr) -> io::Result<()> + 'static,
{
    Server::new(listener, concurrency).serve(handler)
}

/// A TCP server ready to [`serve`](Server::serve): a listener, a bound on
/// how many connections are handled at once, and a stop signal.
///
/// `Server` is `Send`: it may be built on one OS thread and served on
/// another. Its [`ServerHandle`]s stop it from anywhere.
///
/// # Examples
/// Stop a server from another OS thread:
/// ```
/// use std::io::Write;
///
/// let server = green::Server::new(green::listen("127.0.0.1:0")?, 10);
/// let addr = server.local_addr()?;
/// let handle = server.handle();
/// let driver = std::thread::spawn(move || -> std::io::Result<()> {
///     let mut s = green::connect(addr)?;
///     s.write_all(b"hi")?;
///     handle.stop();
///     Ok(())
/// });
/// server.serve(|_, _| Ok(()))?;
/// driver.join().unwrap()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    concurrency: usize,
    stop: Event<()>,
}

/// Stops a [`Server`]: cloneable, `Send` and `Sync`, usable from any green
/// thread or OS thread, before or during [`Server::serve`].
///
/// # Examples
/// ```
/// let server = green::Server::new(green::listen("127.0.0.1:0")?, 10);
/// let handle = server.handle();
/// handle.stop(); // before serving: serve returns at once
/// assert!(handle.is_stopped());
/// server.serve(|_, _| Ok(()))?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ServerHandle {
    stop: Event<()>,
}

impl ServerHandle {
    /// Asks the server to stop: it accepts no more connections, closes its
    /// listener, and [`Server::serve`] returns once the handlers already
    /// running have finished. Stopping twice does nothing more.
    pub fn stop(&self) {
        // A second stop finds the event sent: nothing more to do.
        let _ = self.stop.send(());
    }

    /// Whether the server was asked to stop (by [`stop`](ServerHandle::stop),
    /// by a handler's [`StopServe`], or by a fatal accept error).
    pub fn is_stopped(&self) -> bool {
        self.stop.ready()
    }
}

/// The first pause after an accept error that a retry may cure (`EMFILE`,
/// `ENFILE`, `ENOBUFS`, `ENOMEM`, ...); it doubles with each error in a row.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
/// The longest pause between accept retries.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What the accept loop does after an error.
#[derive(Debug, PartialEq, Eq)]
enum OnError {
    /// The error belonged to one connection (aborted before it was
    /// accepted, refused by a firewall rule, ...): accept the next at once.
    Retry,
    /// The system is out of a resource (fds, buffers, memory): pause, then
    /// try again.
    BackOff,
    /// The listener itself is unusable: stop serving with this error.
    Fatal,
}

fn on_accept_error(e: &io::Error) -> OnError {
    match e.raw_os_error() {
        // accept(2): errors of the connection being accepted, and the
        // network errors Linux passes through from it.
        Some(
            libc::ECONNABORTED
            | libc::EPROTO
            | libc::EPERM
            | libc::EINTR
            | libc::ENETDOWN
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::ENONET
            | libc::EHOSTUNREACH
            | libc::ENETUNREACH,
        ) => OnError::Retry,
        // Not a listening socket (any more).
        Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EOPNOTSUPP | libc::EFAULT) => {
            OnError::Fatal
        }
        // EMFILE, ENFILE, ENOBUFS, ENOMEM, and anything unexpected: a pause
        // keeps the loop from spinning on a listener that stays readable.
        _ => OnError::BackOff,
    }
}

/// Kills the acceptor if `serve` is left by unwinding (its context was
/// killed or timed out), so that it stops accepting.
struct KillOnDrop(Option<GreenThread<io::Error>>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // During an unwind the hub delivers the kill once the unwind is
        // over (a second unwind would abort): the next time the hub runs.
        if let Some(gt) = self.0.take() {
            gt.kill();
        }
    }
}

/// Sends the stop event when the acceptor ends, however it ends (fatal
/// error, kill, or a panic such as a failure to map a stack).
struct StopOnDrop(Event<()>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

impl Server {
    /// A server for `listener` that handles at most `concurrency`
    /// connections at once.
    ///
    /// # Panics
    /// If `concurrency` is 0: such a server would never run a handler.
    pub fn new(listener: TcpListener, concurrency: usize) -> Server {
        assert!(
            concurrency > 0,
            "green::serve needs a concurrency of at least 1: a pool of 0 never runs a handler"
        );
        Server {
            listener,
            concurrency,
            stop: Event::new(),
        }
    }

    /// A handle that stops this server.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            stop: self.stop.clone(),
        }
    }

    /// The address the server listens on.
    ///
    /// # Errors
    /// The OS error from `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections and runs `handler(stream, addr)` for each in a
    /// green thread of a [`GreenPool`] of the server's concurrency, on the
    /// current OS thread's hub, until the server is stopped.
    ///
    /// - **Back-pressure.** A pool slot is taken before each `accept`: while
    ///   `concurrency` handlers run, no connection is accepted, and new ones
    ///   wait in the kernel's listen queue.
    /// - **Stopping.** [`ServerHandle::stop`] (from any green thread or OS
    ///   thread) or a handler returning `Err(StopServe.into())` stops
    ///   accepting and closes the listener at once (later connects are
    ///   refused); `serve` then waits for the handlers still running and
    ///   returns `Ok(())`. A handler that never returns keeps `serve` from
    ///   returning: give handlers read timeouts.
    /// - **Handler errors.** Any other `Err` a handler returns ends that
    ///   connection only; a handler that panics is reported like any green
    ///   thread that panics, and the server goes on.
    /// - **Accept errors.** An error of one connection (`ECONNABORTED`,
    ///   `EPROTO`, `EPERM`, the network errors Linux passes through) is
    ///   skipped. Running out of a resource (`EMFILE`, `ENFILE`, `ENOBUFS`,
    ///   `ENOMEM`, or an unexpected error) pauses accepting for 5 ms,
    ///   doubling to at most 1 s while errors continue, then retries: the
    ///   server neither spins nor dies, and it logs nothing. Only a listener
    ///   that is not a listening socket (`EBADF`, `EINVAL`, `ENOTSOCK`,
    ///   `EOPNOTSUPP`) ends `serve` with that error.
    ///
    /// The listener is put in blocking (green) mode first. If the context
    /// running `serve` is killed or times out, `serve` unwinds at once
    /// without waiting for the handlers, which go on; accepting stops and
    /// the listener closes as for a stop, as soon as the hub runs again
    /// (the next time the OS thread blocks or yields).
    ///
    /// # Errors
    /// The fatal accept error described above.
    ///
    /// # Panics
    /// As [`green::spawn`](crate::spawn), if no stack can be mapped for a
    /// green thread.
    ///
    /// # Examples
    /// ```
    /// use std::io::{Read, Write};
    ///
    /// let server = green::Server::new(green::listen("127.0.0.1:0")?, 100);
    /// let addr = server.local_addr()?;
    /// let handle = server.handle();
    /// green::spawn_n(move || {
    ///     for i in 0..10u8 {
    ///         let mut s = green::connect(addr).unwrap();
    ///         s.write_all(&[i]).unwrap();
    ///         let mut b = [0];
    ///         s.read_exact(&mut b).unwrap();
    ///         assert_eq!(b[0], i + 1);
    ///     }
    ///     handle.stop();
    /// });
    /// server.serve(|mut s, _| {
    ///     let mut b = [0];
    ///     s.read_exact(&mut b)?;
    ///     s.write_all(&[b[0] + 1])
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn serve<F>(self, handler: F) -> io::Result<()>
    where
        F: Fn(TcpStream, SocketAddr) -> io::Result<()> + 'static,
    {
        let Server {
            listener,
            concurrency,
            stop,
        } = self;
        if stop.ready() {
            return Ok(());
        }
        listener.set_nonblocking(false)?;
        let pool = Rc::new(GreenPool::new(concurrency));
        let acceptor = {
            let pool = pool.clone();
            let stop = stop.clone();
            let handler = Rc::new(handler);
            spawn(move || {
                let _stopped = StopOnDrop(stop.clone());
                accept_loop(&listener, &pool, handler, &stop)
            })
        };
        let mut guard = KillOnDrop(Some(acceptor));
        stop.wait();
        let acceptor = guard.0.take().expect("the acceptor is taken once");
        acceptor.kill();
        let result = match acceptor.join() {
            Ok(fatal) => Err(fatal),
            Err(p) if p.is::<Killed>() => Ok(()),
            Err(p) => panic::resume_unwind(p),
        };
        pool.waitall();
        result
    }
}

/// Reserves a slot, accepts, hands the connection to the slot's green
/// thread; again. Returns only with a fatal error; a stop kills it.
fn accept_loop<F>(
    listener: &TcpListener,
    pool: &GreenPool,
    handler: Rc<F>,
    stop: &Event<()>,
) -> io::Error
where
    F: Fn(TcpStream, SocketAddr) -> io::Result<()> + 'static,
{
    // Each reserved green thread takes exactly one connection. When this
    // loop ends (fatal error, kill), `tx` drops and a reserved green thread
    // still waiting gets `Err` and gives its slot back.
    let (tx, rx) = mpsc::channel::<(TcpStream, SocketAddr)>();
    let rx = Rc::new(rx);
    let mut backoff = BACKOFF_MIN;
    loop {
        {
            let (rx, handler, stop) = (rx.clone(), handler.clone(), stop.clone());
            pool.spawn_n(move || {
                let Ok((stream, addr)) = rx.recv() else {
                    return;
                };
                if let Err(e) = handler(stream, addr) {
                    if StopServe::is(&e) {
                        let _ = stop.send(());
                    }
                }
            });
        }
        let conn = loop {
            match listener.accept() {
                Ok(conn) => break conn,
                Err(e) => match on_accept_error(&e) {
                    OnError::Retry => {}
                    OnError::BackOff => {
                        sleep(backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                    OnError::Fatal => return e,
                },
            }
        };
        backoff = BACKOFF_MIN;
        // Cannot fail: `rx` lives in this frame.
        let _ = tx.send(conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_are_classified() {
        let os = io::Error::from_raw_os_error;
        for e in [libc::ECONNABORTED, libc::EPROTO, libc::EPERM, libc::EINTR] {
            assert_eq!(on_accept_error(&os(e)), OnError::Retry, "errno {e}");
        }
        for e in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert_eq!(on_accept_error(&os(e)), OnError::BackOff, "errno {e}");
        }
        for e in [libc::EBADF, libc::EINVAL, libc::ENOTSOCK] {
            assert_eq!(on_accept_error(&os(e)), OnError::Fatal, "errno {e}");
        }
        // An error without errno (the hub's own) never ends the server.
        let hub_error = io::Error::new(io::ErrorKind::ConnectionAborted, "fd closed");
        assert_eq!(on_accept_error(&hub_error), OnError::BackOff);
    }
}

//! Green networking: std's [`std::net`], with every wait parking only the
//! calling green thread.
//!
//! Change `use std::net` to `use green::net` and nothing else: the types have
//! std's names, methods and trait impls, and the address types are std's own.
//! Differences are listed under `# Notes` on each type.
//!
//! Every operation goes through one path: the syscall is tried on the
//! non-blocking fd; if it would block, the green thread parks in the hub's
//! [`wait_io`](crate::hub::wait_io) until the fd is ready, then tries again.
//! Host names resolve on the [`tpool`](crate::tpool), so DNS never blocks the
//! hub.
//!
//! Beyond std: [`TcpSocket`] sets options such as `SO_REUSEPORT` before a
//! socket listens or connects, so that one listener per OS thread (each
//! with its own hub) can share a port; and at the crate root, eventlet's
//! [`listen`](crate::listen), [`connect`](crate::connect) and
//! [`serve`](crate::serve) (with [`Server`](crate::Server) to stop it)
//! cover the common server.
//!
//! # Examples
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use green::net::{TcpListener, TcpStream};
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! // A green echo server: one green thread per connection.
//! green::spawn_n(move || {
//!     for stream in listener.incoming() {
//!         let mut stream = stream.unwrap();
//!         green::spawn_n(move || {
//!             let mut r = BufReader::new(stream.try_clone().unwrap());
//!             let mut line = String::new();
//!             while r.read_line(&mut line).unwrap() > 0 {
//!                 stream.write_all(line.as_bytes()).unwrap();
//!                 line.clear();
//!             }
//!         });
//!     }
//! });
//! let clients: Vec<_> = (0..10)
//!     .map(|i| green::spawn(move || -> std::io::Result<String> {
//!         let mut s = TcpStream::connect(addr)?;
//!         writeln!(s, "hello {i}")?;
//!         let mut line = String::new();
//!         BufReader::new(s).read_line(&mut line)?;
//!         Ok(line)
//!     }))
//!     .collect();
//! for (i, c) in clients.into_iter().enumerate() {
//!     assert_eq!(c.wait()?, format!("hello {i}\n"));
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

mod addr;
pub(crate) mod serve;
mod socket;
pub(crate) mod sys;
mod tcp;
mod udp;

pub use addr::ToSocketAddrs;
pub use socket::TcpSocket;
pub use std::net::{
    AddrParseError, IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6,
};
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;

pub(crate) use tcp::fd_traits;

//! `std::os::linux`, with a [`net::TcpStreamExt`] for green's
//! [`TcpStream`](crate::net::TcpStream).

pub use std::os::linux::*;

pub mod net;

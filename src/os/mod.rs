//! OS-specific functionality: std's [`std::os`], with green versions of what
//! blocks.
//!
//! Everything here is std's own except [`unix::net`], whose sockets park
//! only the calling green thread, `CommandExt` in [`unix::process`] for
//! green's `Command`, and [`linux::net`]'s `TcpStreamExt` for green's
//! `TcpStream`.

pub use std::os::*;

pub mod linux;
pub mod unix;

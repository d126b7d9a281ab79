//! OS-specific functionality: std's [`std::os`], with green versions of what
//! blocks.
//!
//! Everything here is std's own except [`unix::net`], whose sockets park
//! only the calling green thread.

pub use std::os::*;

pub mod unix;

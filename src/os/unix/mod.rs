//! Unix-specific functionality: std's [`std::os::unix`], with a green
//! [`net`] and a [`process`] whose `CommandExt` extends green's `Command`.
//!
//! Every other item (`fs`, `io`, `ffi`, `prelude`, ...) is std's own,
//! re-exported.

pub use std::os::unix::*;

pub mod net;
pub mod process;

//! Unix-specific functionality: std's [`std::os::unix`], with a green
//! [`net`].
//!
//! Every other item (`fs`, `io`, `process`, `ffi`, `prelude`, ...) is std's
//! own, re-exported.

pub use std::os::unix::*;

pub mod net;

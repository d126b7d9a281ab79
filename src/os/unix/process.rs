//! `std::os::unix::process`, with a [`CommandExt`] for green's
//! [`Command`](crate::process::Command).
//!
//! # Examples
//! ```
//! use green::os::unix::process::{CommandExt, ExitStatusExt};
//!
//! let status = green::process::Command::new("sh")
//!     .arg0("renamed")
//!     .args(["-c", "kill -TERM $$"])
//!     .status()?;
//! assert_eq!(status.signal(), Some(libc::SIGTERM));
//! # Ok::<(), std::io::Error>(())
//! ```

pub use std::os::unix::process::{parent_id, ExitStatusExt};

pub use crate::process::CommandExt;

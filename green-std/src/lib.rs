//! A drop-in facade for `std` whose blocking calls are green.
//!
//! Rename it to `std` in `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! std = { package = "green-std", path = "..." }
//! ```
//!
//! and every `std::` path in the crate resolves here: this crate re-exports
//! all of std and overrides only what blocks. Today that is
//! `thread::sleep` and `thread::yield_now`, which park the current green
//! thread instead of the OS thread; everything else is the real std.
//!
//! ```
//! use std::time::{Duration, Instant};
//! let t = Instant::now();
//! let sleepers: Vec<_> = (0..100)
//!     .map(|_| green::spawn(|| green_std::thread::sleep(Duration::from_millis(20))))
//!     .collect();
//! sleepers.into_iter().for_each(|g| g.wait());
//! // 100 sleeps of 20 ms overlap on one OS thread.
//! assert!(t.elapsed() < Duration::from_secs(2));
//! ```
#![deny(missing_docs)]

pub use std::*;

/// `std::thread`, with green `sleep` and `yield_now`.
pub mod thread {
    pub use std::thread::*;

    pub use green::{sleep, yield_now};
}

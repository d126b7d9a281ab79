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
//! thread instead of the OS thread, and `sync`, whose locks, condition
//! variables, barriers, one-time cells and `mpsc` channels are
//! [`green::sync`]'s; everything else is the real std.
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

/// `std::sync`, with [`green::sync`]'s blocking types: `Mutex`, `RwLock`,
/// `Condvar`, `Barrier`, `Once`, `OnceLock`, `LazyLock` and `mpsc`.
///
/// ```
/// use green_std::sync::{mpsc, Arc, Mutex};
///
/// let total = Arc::new(Mutex::new(0));
/// let (tx, rx) = mpsc::channel();
/// for i in 0..10 {
///     let (total, tx) = (total.clone(), tx.clone());
///     green::spawn(move || {
///         *total.lock().unwrap() += i;
///         tx.send(i).unwrap();
///     });
/// }
/// drop(tx);
/// assert_eq!(rx.iter().count(), 10); // the root parks; the green threads run
/// assert_eq!(*total.lock().unwrap(), 45);
/// ```
pub mod sync {
    pub use std::sync::*;

    pub use green::sync::{
        mpsc, Barrier, BarrierWaitResult, Condvar, LazyLock, Mutex, MutexGuard, Once, OnceLock,
        OnceState, RwLock, RwLockReadGuard, RwLockWriteGuard, WaitTimeoutResult,
    };
}

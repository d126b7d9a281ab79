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
//! all of std and overrides only what blocks:
//!
//! | module | green version |
//! |---|---|
//! | `std::thread` | [`green::thread`]: threads are green threads |
//! | `std::net` | [`green::net`] |
//! | `std::process` | [`green::process`] |
//! | `std::sync` | [`green::sync`]: locks, condition variables, barriers, one-time cells, `mpsc` |
//! | `std::time` | [`green::time`] (std's types, plus a green `sleep`) |
//! | `std::io` | [`green::io`]: `pipe()` gives green pipe ends |
//! | `std::os::unix::net` | [`green::os::unix::net`] |
//! | `std::os::unix::process` | `CommandExt` for green's `Command` |
//!
//! Everything else is the real std: the prelude, macros, collections, `fs`
//! (regular files are always ready), `env`, and the rest.
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

/// `std::thread`, whose threads are green threads: [`green::thread`].
///
/// `spawn`, `Builder`, `scope`, `current`, `park`, `sleep` and the rest have
/// std's signatures; a spawned "thread" runs on the current hub, and every
/// blocking call parks only it.
pub mod thread {
    pub use std::thread::*;

    pub use green::thread::{
        current, panicking, park, park_timeout, scope, sleep, spawn, yield_now, Builder,
        JoinHandle, Scope, ScopedJoinHandle, Thread, ThreadId,
    };
    #[allow(deprecated)]
    pub use green::thread::{park_timeout_ms, sleep_ms};
}

/// `std::net`, with [`green::net`]'s sockets; host names resolve on the
/// tpool.
pub mod net {
    pub use std::net::*;

    pub use green::net::{Incoming, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
}

/// `std::process`, with [`green::process`]'s `Command` and `Child`: waiting
/// for a child and reading its pipes park only the green thread.
pub mod process {
    pub use std::process::*;

    pub use green::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
}

/// `std::io`, with [`green::io`]'s `pipe`, `PipeReader` and `PipeWriter`.
pub mod io {
    pub use green::io::*;
}

/// `std::os`, with [`green::os::unix::net`]'s Unix sockets and a
/// `CommandExt` for green's `Command` in `os::unix::process`.
pub mod os {
    pub use green::os::*;
}

/// `std::time`, plus [`green::time::sleep`].
pub mod time {
    pub use green::time::*;
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

    #[allow(deprecated)]
    pub use green::sync::ONCE_INIT;
    pub use green::sync::{
        mpsc, Barrier, BarrierWaitResult, Condvar, LazyLock, Mutex, MutexGuard, Once, OnceLock,
        OnceState, RwLock, RwLockReadGuard, RwLockWriteGuard, WaitTimeoutResult,
    };
}

//! The cheap libc calls that the `patch_passthrough` benchmark times, and
//! the loops that time them.
//!
//! They live in this library, which does not use green, so that both
//! binaries of that benchmark run the same compiled loops: the bench itself
//! links green, whose interposers then receive every call to these libc
//! names made anywhere in the executable (this library's included), and its
//! peer `patch_passthrough_peer` does not link green, so that its calls go
//! straight to libc. [`reaches_libc`] tells which of the two a binary is.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use crate::median;

/// A libc call whose cost the benchmark measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `read` of 64 bytes on an empty non-blocking Unix stream socket: fails
    /// with `EAGAIN`.
    Read,
    /// `fcntl(fd, F_GETFL)` on that socket.
    FcntlGetfl,
    /// `syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1)` on an address
    /// nobody waits on: wakes no one.
    FutexWake,
}

impl Call {
    /// Every call, in the order the results list them.
    pub const ALL: [Call; 3] = [Call::Read, Call::FcntlGetfl, Call::FutexWake];

    /// How a table names the call.
    pub fn name(self) -> &'static str {
        match self {
            Call::Read => "read, non-blocking socket, EAGAIN",
            Call::FcntlGetfl => "fcntl(F_GETFL)",
            Call::FutexWake => "syscall(SYS_futex, FUTEX_WAKE), no waiter",
        }
    }
}

/// The sockets and the futex word the calls use.
#[derive(Debug)]
pub struct Fixture {
    /// One end of a non-blocking Unix stream socket pair; nothing is ever
    /// written to the other end.
    a: OwnedFd,
    _b: OwnedFd,
    /// A futex word nobody waits on.
    word: Box<AtomicU32>,
}

impl Fixture {
    /// A new socket pair and futex word.
    ///
    /// # Errors
    /// If `socketpair` fails.
    pub fn new() -> io::Result<Fixture> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two fds returned.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both fds were just returned to us.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Fixture {
            a,
            _b: b,
            word: Box::new(AtomicU32::new(0)),
        })
    }

    fn word(&self) -> *const AtomicU32 {
        &*self.word
    }

    /// Makes `call` once and checks that it behaves as the benchmark
    /// assumes (the same result as libc's).
    ///
    /// # Errors
    /// A description of the unexpected result.
    pub fn check(&self, call: Call) -> Result<(), String> {
        let fd = self.a.as_raw_fd();
        match call {
            Call::Read => {
                let mut buf = [0u8; 64];
                // SAFETY: reads at most 64 bytes into `buf`.
                let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                let e = io::Error::last_os_error();
                if n != -1 || e.raw_os_error() != Some(libc::EAGAIN) {
                    return Err(format!("read gave {n} ({e}), not EAGAIN"));
                }
            }
            Call::FcntlGetfl => {
                // SAFETY: F_GETFL takes no argument.
                let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
                if fl < 0 || fl & libc::O_NONBLOCK == 0 {
                    return Err(format!("fcntl(F_GETFL) gave {fl:#x}, not O_NONBLOCK"));
                }
            }
            Call::FutexWake => {
                let n = futex_wake(self.word());
                if n != 0 {
                    return Err(format!("FUTEX_WAKE gave {n}, not 0"));
                }
            }
        }
        Ok(())
    }

    /// Makes `call` `n` times in a loop; returns the time it took.
    ///
    /// # Panics
    /// If a call gives another result than the first one [`check`] saw
    /// (each loop sums the results and compares the sum).
    ///
    /// [`check`]: Fixture::check
    pub fn time(&self, call: Call, n: u64) -> Duration {
        let fd = self.a.as_raw_fd();
        let t = Instant::now();
        let (sum, want) = match call {
            Call::Read => (read_loop(fd, n), -(n as i64)),
            Call::FcntlGetfl => {
                // SAFETY: F_GETFL takes no argument.
                let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
                (fcntl_loop(fd, n), fl as i64 * n as i64)
            }
            Call::FutexWake => (futex_loop(self.word(), n), 0),
        };
        let elapsed = t.elapsed();
        assert_eq!(sum, want, "{}: a call gave another result", call.name());
        elapsed
    }
}

#[inline(never)]
fn read_loop(fd: RawFd, n: u64) -> i64 {
    let mut buf = [0u8; 64];
    let mut sum = 0i64;
    for _ in 0..n {
        // SAFETY: reads at most 64 bytes into `buf`.
        sum += unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } as i64;
    }
    sum
}

#[inline(never)]
fn fcntl_loop(fd: RawFd, n: u64) -> i64 {
    let mut sum = 0i64;
    for _ in 0..n {
        // SAFETY: F_GETFL takes no argument.
        sum += unsafe { libc::fcntl(fd, libc::F_GETFL) } as i64;
    }
    sum
}

#[inline(always)]
fn futex_wake(word: *const AtomicU32) -> libc::c_long {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE only reads its
    // address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word,
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        )
    }
}

#[inline(never)]
fn futex_loop(word: *const AtomicU32, n: u64) -> i64 {
    let mut sum = 0i64;
    for _ in 0..n {
        sum += futex_wake(word) as i64;
    }
    sum
}

/// Whether calls to `read`, `fcntl` and `syscall` from this binary reach
/// libc itself (`true`), rather than definitions of the same names linked
/// into the executable, such as green's interposers (`false`).
pub fn reaches_libc() -> bool {
    let same = |here: usize, name: &std::ffi::CStr| {
        // SAFETY: `name` is NUL-terminated; RTLD_NEXT is a valid handle.
        let next = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
        here == next
    };
    same(libc::read as *const () as usize, c"read")
        && same(libc::fcntl as *const () as usize, c"fcntl")
        && same(libc::syscall as *const () as usize, c"syscall")
}

/// The cost of each of [`Call::ALL`], in nanoseconds per call.
#[derive(Clone, Copy, Debug)]
pub struct PerCall {
    /// The fastest rep.
    pub min: [f64; 3],
    /// The median rep.
    pub median: [f64; 3],
}

/// Checks every call, then times `reps` reps of `iters` calls of each,
/// interleaved (each rep times every call once), after one untimed rep.
///
/// # Errors
/// If a call does not behave as the benchmark assumes.
pub fn measure(f: &Fixture, reps: usize, iters: u64) -> Result<PerCall, String> {
    for c in Call::ALL {
        f.check(c)?;
    }
    for c in Call::ALL {
        f.time(c, iters);
    }
    let mut samples = vec![Vec::with_capacity(reps); Call::ALL.len()];
    for _ in 0..reps.max(1) {
        for (i, c) in Call::ALL.into_iter().enumerate() {
            samples[i].push(f.time(c, iters).as_nanos() as f64 / iters as f64);
        }
    }
    let mut out = PerCall {
        min: [0.0; 3],
        median: [0.0; 3],
    };
    for (i, s) in samples.into_iter().enumerate() {
        out.min[i] = s.iter().copied().fold(f64::INFINITY, f64::min);
        out.median[i] = median(s);
    }
    Ok(out)
}

/// The OS threads of this process now (`Threads:` of
/// `/proc/self/status`; 0 if it cannot be read).
///
/// It matters here: while a process has more than one thread, the kernel
/// takes a reference on the file for every fd-based system call (its fd
/// table is shared), which makes `read` and `fcntl` dearer than in a
/// single-threaded process.
pub fn os_threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// What a measuring child reports.
#[derive(Clone, Copy, Debug)]
pub struct Report {
    /// Whether its calls reach libc directly ([`reaches_libc`]).
    pub reach_libc: bool,
    /// Its OS threads while it measured ([`os_threads`]).
    pub threads: usize,
    /// The figures.
    pub per_call: PerCall,
}

impl Report {
    /// The line a measuring child prints: `result`, whether its calls
    /// reach libc (1 or 0), its OS threads, then each call's minimum and
    /// median.
    pub fn line(&self) -> String {
        let mut s = format!("result {} {}", u8::from(self.reach_libc), self.threads);
        for i in 0..Call::ALL.len() {
            s += &format!(" {} {}", self.per_call.min[i], self.per_call.median[i]);
        }
        s
    }

    /// Parses a [`Report::line`] (from the word after `result`).
    pub fn parse(rest: &str) -> Option<Report> {
        let v: Vec<&str> = rest.split_whitespace().collect();
        if v.len() != 2 + 2 * Call::ALL.len() {
            return None;
        }
        let reach_libc = match v[0] {
            "1" => true,
            "0" => false,
            _ => return None,
        };
        let mut per_call = PerCall {
            min: [0.0; 3],
            median: [0.0; 3],
        };
        for i in 0..Call::ALL.len() {
            per_call.min[i] = v[2 + 2 * i].parse().ok()?;
            per_call.median[i] = v[3 + 2 * i].parse().ok()?;
        }
        Some(Report {
            reach_libc,
            threads: v[1].parse().ok()?,
            per_call,
        })
    }
}

/// Makes a fixture and measures with it ([`measure`]) on the calling
/// thread; reports with this thread's view of the process.
///
/// # Errors
/// If the socket pair cannot be made or a call misbehaves.
pub fn measure_here(reps: usize, iters: u64) -> Result<Report, String> {
    let f = Fixture::new().map_err(|e| format!("socketpair: {e}"))?;
    let threads = os_threads();
    let per_call = measure(&f, reps, iters)?;
    Ok(Report {
        reach_libc: reaches_libc(),
        threads,
        per_call,
    })
}

/// Reads the reps and the calls per rep from a measuring child's
/// arguments (`REPS ITERS` after the program name and any flag).
pub fn child_args(args: &[String]) -> Option<(usize, u64)> {
    let n = args.len();
    if n < 2 {
        return None;
    }
    Some((args[n - 2].parse().ok()?, args[n - 1].parse().ok()?))
}

//! A dump on a signal, as Go dumps its goroutines on SIGQUIT.
//!
//! The handler only writes a byte to a pipe (a raw `write`, which is
//! async-signal-safe and leaves `errno` alone), and is installed with
//! `SA_RESTART`, so the interrupted thread goes on as before. A helper OS
//! thread, `green-dump`, reads the pipe and writes the [`dump`](super::dump)
//! to stderr: the dump reads what the hubs publish and stops none of them.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::sys;

/// The pipe's write end, for the handler; -1 before the first call.
static PIPE: AtomicI32 = AtomicI32::new(-1);

/// Serialises [`dump_on_signal`] (the reader thread starts once).
static START: Mutex<bool> = Mutex::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    let fd = PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: the write end is never closed once published.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        // A full pipe already holds a request: dropping this one is fine.
        let _ = sys::io::write(fd, &[1]);
    }
}

/// Prints a [`dump`](super::dump) of every green thread to stderr each
/// time the process receives `signal`, as Go does on `SIGQUIT`.
///
/// The program is not disturbed: the handler only wakes a helper OS
/// thread (`green-dump`), which takes the dump without stopping any hub,
/// and it is installed with `SA_RESTART`, so a system call it interrupts
/// goes on. It replaces the signal's previous disposition (for `SIGQUIT`,
/// the default that ends the process with a core dump).
///
/// # Errors
/// `InvalidInput` for a signal that cannot be caught or that green needs
/// itself (`SIGKILL`, `SIGSTOP`, `SIGSEGV`, `SIGBUS`), for a fault
/// (`SIGILL`, `SIGFPE`, `SIGTRAP`, `SIGSYS`: after a real one the program
/// could not go on) and for a number that is not a signal; the OS error if the pipe, the thread or the handler
/// cannot be set up.
///
/// # Examples
/// ```
/// green::debug::dump_on_signal(libc::SIGUSR2)?;
/// // From a shell: kill -USR2 <pid>, and the dump appears on stderr.
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn dump_on_signal(signal: libc::c_int) -> io::Result<()> {
    // The faults too: after a real one the handler would return to the
    // faulting instruction, and dump for ever instead of dying.
    if matches!(
        signal,
        libc::SIGKILL
            | libc::SIGSTOP
            | libc::SIGSEGV
            | libc::SIGBUS
            | libc::SIGILL
            | libc::SIGFPE
            | libc::SIGTRAP
            | libc::SIGSYS
    ) || !(1..=libc::SIGRTMAX()).contains(&signal)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("green::debug::dump_on_signal: signal {signal} cannot be used for dumps"),
        ));
    }
    {
        let mut started = START.lock().unwrap_or_else(|e| e.into_inner());
        if !*started {
            start_reader()?;
            *started = true;
        }
    }
    // SAFETY: an all-zero sigaction is valid; the fields are set below.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
    act.sa_flags = libc::SA_RESTART;
    sys::signal::sigemptyset(&mut act.sa_mask);
    // SAFETY: `act` is valid; the handler is async-signal-safe (a raw
    // write to a pipe that stays open) and sound on any thread.
    if unsafe { sys::signal::sigaction(signal, &act, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the pipe and starts the thread that prints a dump for each byte.
fn start_reader() -> io::Result<()> {
    let flags = sys::pipe::PipeFlags::CLOEXEC;
    let (r, w) = sys::pipe::pipe_with(flags)?;
    sys::fs::fcntl_setfl(&w, sys::fs::OFlags::NONBLOCK)?;
    // It wakes no hub: a wait that nothing else can end still never ends.
    crate::hub::register_helpers(|| Some(READERS.load(Ordering::SeqCst)));
    std::thread::Builder::new()
        .name("green-dump".into())
        .spawn(move || read_and_dump(r))?;
    // Leaked on purpose: the handler may run at any time from now on.
    let raw: RawFd = std::os::fd::IntoRawFd::into_raw_fd(w);
    PIPE.store(raw, Ordering::Relaxed);
    Ok(())
}

/// The reader threads running (0 or 1), counted by the thread itself.
static READERS: AtomicUsize = AtomicUsize::new(0);

fn read_and_dump(r: OwnedFd) {
    /// Uncounts the reader however it ends.
    struct Running;
    impl Drop for Running {
        fn drop(&mut self) {
            READERS.fetch_sub(1, Ordering::SeqCst);
        }
    }
    READERS.fetch_add(1, Ordering::SeqCst);
    let _running = Running;
    let mut buf = [0u8; 64];
    loop {
        match sys::io::read(r.as_fd(), &mut buf) {
            Ok(0) => return,
            Ok(_) => {
                let text = format!("green: dump on signal\n{}", super::dump());
                write_stderr(text.as_bytes());
            }
            Err(sys::io::Errno::INTR) => {}
            Err(_) => return,
        }
    }
}

/// Writes all of `bytes` to fd 2 with the raw call (no interposer).
fn write_stderr(mut bytes: &[u8]) {
    // SAFETY: fd 2 is the process's stderr for its whole life.
    let err = unsafe { BorrowedFd::borrow_raw(2) };
    while !bytes.is_empty() {
        match sys::io::write(err, bytes) {
            Ok(0) => return,
            Ok(n) => bytes = &bytes[n..],
            Err(sys::io::Errno::INTR) => {}
            Err(_) => return,
        }
    }
}

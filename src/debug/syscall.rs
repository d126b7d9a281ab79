//! What an OS thread is doing, as the kernel says: `/proc/self/task/TID/syscall`.
//!
//! The file holds `running` while the thread runs, `-1` and two addresses
//! while it waits for the CPU outside a system call, or the number of the
//! system call it is in followed by its arguments (in hex), the stack
//! pointer and the program counter.

use std::fmt;

/// What a hub's OS thread was doing when it was looked at.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Activity {
    /// Running user code: a loop that computes without a park point.
    Running,
    /// Inside a system call that green does not make cooperative.
    Syscall {
        /// The call's number on this machine.
        number: i64,
        /// Its name (`"read"`, `"futex wait"`, ...), or `"syscall N"` for
        /// one this table does not know.
        name: String,
    },
    /// The kernel did not say (the thread ended, or `/proc` is not there).
    Unknown,
}

impl Activity {
    /// Whether the thread is waiting on a futex: a lock, condition
    /// variable or `thread::park` of code green does not make cooperative.
    pub fn is_futex_wait(&self) -> bool {
        matches!(self, Activity::Syscall { name, .. } if name == "futex wait")
    }
}

impl fmt::Display for Activity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activity::Running => f.write_str("running user code (CPU)"),
            Activity::Syscall { name, .. } => write!(f, "in the system call {name}"),
            Activity::Unknown => f.write_str("unknown"),
        }
    }
}

/// What OS thread `tid` of this process is doing now.
pub(crate) fn of_thread(tid: u64) -> Activity {
    match std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")) {
        Ok(s) => parse(&s),
        Err(_) => Activity::Unknown,
    }
}

/// Parses the contents of a `syscall` file.
fn parse(s: &str) -> Activity {
    let mut fields = s.split_whitespace();
    let Some(first) = fields.next() else {
        return Activity::Unknown;
    };
    if first == "running" {
        return Activity::Running;
    }
    let Ok(number) = first.parse::<i64>() else {
        return Activity::Unknown;
    };
    if number < 0 {
        // -1: not in a system call: user code the scheduler took the CPU
        // from (on a busy machine), or a fault being handled.
        return Activity::Running;
    }
    let arg = |i: usize| {
        s.split_whitespace()
            .nth(1 + i)
            .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
    };
    let name = name_of(number, arg(1));
    Activity::Syscall { number, name }
}

/// The name of system call `nr`; `futex_op` is its second argument, which
/// says whether a futex call waits.
fn name_of(nr: i64, futex_op: Option<u64>) -> String {
    if nr == libc::SYS_futex {
        // The command without the private and clock flags.
        let cmd = futex_op.map(|op| op as i32 & libc::FUTEX_CMD_MASK);
        return match cmd {
            Some(libc::FUTEX_WAIT | libc::FUTEX_WAIT_BITSET | libc::FUTEX_LOCK_PI) => {
                "futex wait".into()
            }
            _ => "futex".into(),
        };
    }
    const NAMES: &[(i64, &str)] = &[
        (libc::SYS_read, "read"),
        (libc::SYS_write, "write"),
        (libc::SYS_pread64, "pread64"),
        (libc::SYS_pwrite64, "pwrite64"),
        (libc::SYS_readv, "readv"),
        (libc::SYS_writev, "writev"),
        (libc::SYS_openat, "openat"),
        (libc::SYS_close, "close"),
        (libc::SYS_fsync, "fsync"),
        (libc::SYS_fdatasync, "fdatasync"),
        (libc::SYS_flock, "flock"),
        (libc::SYS_fcntl, "fcntl"),
        (libc::SYS_ioctl, "ioctl"),
        (libc::SYS_nanosleep, "nanosleep"),
        (libc::SYS_clock_nanosleep, "clock_nanosleep"),
        (libc::SYS_ppoll, "ppoll"),
        (libc::SYS_pselect6, "pselect6"),
        (libc::SYS_epoll_pwait, "epoll_pwait"),
        (libc::SYS_epoll_pwait2, "epoll_pwait2"),
        (libc::SYS_accept, "accept"),
        (libc::SYS_accept4, "accept4"),
        (libc::SYS_connect, "connect"),
        (libc::SYS_recvfrom, "recvfrom"),
        (libc::SYS_recvmsg, "recvmsg"),
        (libc::SYS_sendto, "sendto"),
        (libc::SYS_sendmsg, "sendmsg"),
        (libc::SYS_wait4, "wait4"),
        (libc::SYS_waitid, "waitid"),
        (libc::SYS_sched_yield, "sched_yield"),
        (libc::SYS_getrandom, "getrandom"),
        (libc::SYS_splice, "splice"),
        (libc::SYS_copy_file_range, "copy_file_range"),
        (libc::SYS_sendfile, "sendfile"),
        (libc::SYS_io_uring_enter, "io_uring_enter"),
        #[cfg(target_arch = "x86_64")]
        (libc::SYS_poll, "poll"),
        #[cfg(target_arch = "x86_64")]
        (libc::SYS_select, "select"),
        #[cfg(target_arch = "x86_64")]
        (libc::SYS_epoll_wait, "epoll_wait"),
        #[cfg(target_arch = "x86_64")]
        (libc::SYS_pause, "pause"),
    ];
    NAMES
        .iter()
        .find(|(n, _)| *n == nr)
        .map_or_else(|| format!("syscall {nr}"), |(_, name)| (*name).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_is_user_code() {
        assert_eq!(parse("running\n"), Activity::Running);
    }

    #[test]
    fn a_futex_wait_is_named_by_its_command() {
        // FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME.
        let line = format!(
            "{} 0x7f0000001000 0x189 0x2 0x0 0x0 0xffffffff 0x7ffd0000 0x7f0000002000\n",
            libc::SYS_futex
        );
        let a = parse(&line);
        assert!(a.is_futex_wait(), "{a:?}");
        let wake = format!(
            "{} 0x7f0000001000 0x81 0x1 0x0 0x0 0x0 0x0 0x0\n",
            libc::SYS_futex
        );
        assert_eq!(
            parse(&wake),
            Activity::Syscall {
                number: libc::SYS_futex,
                name: "futex".into()
            }
        );
    }

    #[test]
    fn known_and_unknown_numbers() {
        let read = format!("{} 0x3 0x0 0x10 0x0 0x0 0x0 0x0 0x0\n", libc::SYS_read);
        assert_eq!(parse(&read).to_string(), "in the system call read");
        assert_eq!(
            parse("9999 0x0 0x0 0x0 0x0 0x0 0x0 0x0 0x0\n").to_string(),
            "in the system call syscall 9999"
        );
        // Preempted in user code.
        assert_eq!(parse("-1 0x7ffd0000 0x5555000\n"), Activity::Running);
        assert_eq!(parse(""), Activity::Unknown);
    }

    #[test]
    fn a_spinning_thread_is_running_user_code() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{mpsc, Arc};
        let stop = Arc::new(AtomicBool::new(false));
        let spinning = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let spinner = {
            let (stop, spinning) = (stop.clone(), spinning.clone());
            std::thread::spawn(move || {
                tx.send(crate::sys::thread::gettid().as_raw_nonzero().get() as u64)
                    .unwrap();
                // From here on, no system call until `stop`.
                spinning.store(true, Ordering::Release);
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        };
        let tid = rx.recv().unwrap();
        while !spinning.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        // Descheduled for a moment on a loaded machine, it still reads as
        // running: it is in no system call.
        assert_eq!(of_thread(tid), Activity::Running);
        stop.store(true, Ordering::Relaxed);
        spinner.join().unwrap();
    }

    #[test]
    fn a_thread_that_is_not_there_is_unknown() {
        // Thread ids are positive: -1 names none.
        assert_eq!(of_thread(u64::MAX), Activity::Unknown);
    }
}

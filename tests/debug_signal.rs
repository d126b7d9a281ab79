//! `dump_on_signal`: a signal prints the dump on stderr and the program
//! goes on undisturbed.
//!
//! The signal is sent to a child (this binary again), whose stderr the
//! test reads; the child is blocked in a plain `read` of its stdin when
//! the signal arrives, and must still read the line sent after it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD: &str = "GREEN_DUMP_SIGNAL_CHILD";

/// The child: two named green threads park (one sleeps, one waits on a
/// green mutex held by the other), then the root reads its stdin with
/// std (not green) and echoes the line.
fn child() -> io::Result<()> {
    green::debug::dump_on_signal(libc::SIGQUIT)?;
    let m = std::sync::Arc::new(green::sync::Mutex::new(()));
    let m2 = m.clone();
    let sleeper = green::Builder::new().name("sleeper").spawn(move || {
        let _g = m2.lock().unwrap();
        green::sleep(Duration::from_secs(60));
    })?;
    green::yield_now();
    let locker = green::Builder::new()
        .name("locker")
        .spawn(move || drop(m.lock().unwrap()))?;
    green::yield_now();
    println!("ready {} {}", sleeper.id(), locker.id());
    io::stdout().flush()?;
    let mut line = String::new();
    io::stdin().read_line(&mut line)?;
    println!("echo {}", line.trim());
    sleeper.kill();
    drop(locker);
    Ok(())
}

#[test]
fn a_signal_prints_the_dump_and_the_program_goes_on() -> io::Result<()> {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let mut c = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "a_signal_prints_the_dump_and_the_program_goes_on",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut err = BufReader::new(c.stderr.take().unwrap());
    let mut line = String::new();
    let ids = loop {
        line.clear();
        if out.read_line(&mut line)? == 0 {
            panic!("the child ended before it was ready");
        }
        // libtest's "test NAME ... " may come first on the line.
        if let Some(rest) = line.split("ready ").nth(1) {
            let ids: Vec<u64> = rest
                .split_whitespace()
                .map(|s| s.parse().unwrap())
                .collect();
            break ids;
        }
    };
    // SAFETY: a plain kill(2) of our own child.
    assert_eq!(
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGQUIT) },
        0
    );
    // Read the dump, line by line, up to the second green thread's.
    let mut dump = String::new();
    let locker_head = format!("green thread {} \"locker\"", ids[1]);
    while !dump.contains(&locker_head) {
        if err.read_line(&mut dump)? == 0 {
            panic!("stderr ended without the dump:\n{dump}");
        }
    }
    assert!(dump.contains("green: dump on signal"), "{dump}");
    let sleeper = dump
        .lines()
        .find(|l| l.contains(&format!("green thread {} \"sleeper\"", ids[0])))
        .unwrap_or_else(|| panic!("no sleeper in:\n{dump}"));
    assert!(sleeper.contains("tests/debug_signal.rs"), "{sleeper}");
    assert!(sleeper.contains("on sleep (until in"), "{sleeper}");
    let locker = dump.lines().find(|l| l.contains(&locker_head)).unwrap();
    assert!(locker.contains("on Mutex 0x"), "{locker}");
    // The root is in a system call green does not make cooperative: it
    // holds its hub.
    assert!(dump.contains("root: running"), "{dump}");
    // Undisturbed: the interrupted read goes on and gets the line.
    c.stdin.as_mut().unwrap().write_all(b"hello\n")?;
    line.clear();
    out.read_line(&mut line)?;
    assert!(line.trim().ends_with("echo hello"), "{line}");
    let mut rest = String::new();
    err.read_to_string(&mut rest)?;
    assert!(c.wait()?.success(), "child failed:\n{rest}");
    Ok(())
}

#[test]
fn signals_that_cannot_carry_a_dump_are_refused() {
    for sig in [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGFPE,
        0,
        -1,
        1000,
    ] {
        let e = green::debug::dump_on_signal(sig).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{sig}");
        assert!(e.to_string().contains(&sig.to_string()), "{e}");
    }
}

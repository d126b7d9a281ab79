//! Where green threads share their OS thread's identity (as on a platform
//! where identity is not supported; turned off here with
//! `patch::Builder::thread_identity(false)`), two green threads of one hub
//! in std's `thread::park` drive its one parker word to a value it never
//! waits for, and the second spins on it in user space. That must not
//! freeze the hub silently: the stall watchdog reports it on stderr with
//! the cause and the fix.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Set in the child process that runs the scenario.
const CHILD: &str = "GREEN_PATCH_SHARED_IDENTITY_CHILD";

#[test]
fn two_green_threads_in_std_park_on_one_hub_are_reported() {
    let name = "two_green_threads_in_std_park_on_one_hub_are_reported";
    if std::env::var_os(CHILD).is_some() {
        green::patch::Builder::all()
            .thread_identity(false)
            .apply()
            .expect("patching is supported here");
        assert!(matches!(
            green::patch::thread_identity(),
            green::patch::IdentityMode::Shared { .. }
        ));
        let a = green::spawn(std::thread::park);
        let b = green::spawn(std::thread::park);
        a.wait();
        b.wait();
        // Only if both parks returned: the parent sees a normal exit.
        std::process::exit(0);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the child test runs");
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The report comes after 10 s of spinning; 60 s is the margin for a
    // loaded machine.
    let mut lines = Vec::new();
    let report = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line)
                if line.starts_with("green: green thread") && line.contains("held the hub") =>
            {
                break Some(line)
            }
            Ok(line) => lines.push(line),
            Err(_) => break None,
        }
    };
    child.kill().expect("the child is ours");
    child.wait().expect("the child is reaped");
    let report = report.unwrap_or_else(|| panic!("no report within 60 s; stderr: {lines:?}"));
    assert!(
        report.contains("share their OS thread's identity")
            && report.contains("std::thread::park")
            && report.contains("green::patch()"),
        "the report names neither the cause nor the fix: {report}"
    );
    assert!(
        report.contains(&format!("(spawned at {}:", file!())),
        "the report does not say where the green thread was spawned: {report}"
    );
}

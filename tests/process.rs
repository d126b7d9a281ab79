//! `green::process`: std's process API whose waits park only the calling
//! green thread. Each behaviour is checked against std on the same command
//! where std can do it; the rest checks what only green can do (concurrent
//! waits on one OS thread, cancellation).

use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

mod common;

use green::process::{
    Child, ChildStderr, ChildStdin, ChildStdout, Command, CommandExt, ExitStatus, Stdio,
};

/// Bounds a wait that only guards against a hang.
const HANG: Duration = Duration::from_secs(10);

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    c
}

fn std_sh(script: &str) -> std::process::Command {
    let mut c = std::process::Command::new("sh");
    c.arg("-c").arg(script);
    c
}

/// How many pidfds of this process refer to process `pid`.
fn pidfds_of(pid: u32) -> usize {
    let want = format!("Pid:\t{pid}");
    let Ok(dir) = std::fs::read_dir("/proc/self/fdinfo") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter(|info| info.lines().any(|l| l == want))
        .count()
}

/// Waits (green) until process `pid` no longer exists: it exited and was
/// reaped. A zombie keeps its `/proc` entry.
fn wait_until_reaped(pid: u32) {
    let deadline = Instant::now() + HANG;
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "process {pid} was not reaped");
        green::sleep(Duration::from_millis(5));
    }
}

/// A FIFO a child writes its pid into, and a green reader of it (opened
/// read-write, so it never sees end of file): how a test learns the pid of
/// a child that `output` or `status` hide.
struct PidFifo {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    reader: BufReader<ChildStdout>,
}

impl PidFifo {
    fn new() -> io::Result<PidFifo> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("pid");
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)?;
        let reader = BufReader::new(ChildStdout::from(OwnedFd::from(f)));
        Ok(PidFifo {
            _dir: dir,
            path,
            reader,
        })
    }

    /// A script that writes its pid here, then sleeps for 10 s.
    fn script(&self) -> String {
        format!("echo $$ > '{}'; exec sleep 10", self.path.display())
    }

    fn read_pid(&mut self) -> u32 {
        let mut line = String::new();
        green::with_timeout(HANG, || self.reader.read_line(&mut line))
            .expect("the child never wrote its pid")
            .unwrap();
        line.trim().parse().unwrap()
    }
}

const fn assert_send_sync<T: Send + Sync>() {}

// Types are send and sync like std: checked when this file compiles.
const _: () = {
    assert_send_sync::<Command>();
    assert_send_sync::<Child>();
    assert_send_sync::<ChildStdin>();
    assert_send_sync::<ChildStdout>();
    assert_send_sync::<ChildStderr>();
};

#[test]
fn exit_codes_match_std() -> io::Result<()> {
    for code in [0, 1, 3, 255] {
        let script = format!("exit {code}");
        let green = sh(&script).status()?;
        let std = std_sh(&script).status()?;
        assert_eq!(green, std);
        assert_eq!(green.code(), Some(code));
    }
    Ok(())
}

#[test]
fn death_by_signal_matches_std() -> io::Result<()> {
    let green = sh("kill -TERM $$").status()?;
    let std = std_sh("kill -TERM $$").status()?;
    assert_eq!(green, std);
    assert_eq!(green.signal(), Some(libc::SIGTERM));
    assert_eq!(green.code(), None);
    Ok(())
}

#[test]
fn output_matches_std() -> io::Result<()> {
    let script = "echo out; echo err >&2; printf 'no newline'; exit 2";
    let green = sh(script).output()?;
    let std = std_sh(script).output()?;
    assert_eq!(green, std);
    assert_eq!(green.stdout, b"out\nno newline");
    assert_eq!(green.stderr, b"err\n");
    assert_eq!(green.status.code(), Some(2));
    Ok(())
}

#[test]
fn env_and_current_dir_match_std() -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let script = "echo \"$GREEN_A|${HOME-unset}\"; pwd";
    let green = sh(script)
        .env("GREEN_A", "one")
        .env_remove("HOME")
        .current_dir(dir.path())
        .output()?;
    let std = std_sh(script)
        .env("GREEN_A", "one")
        .env_remove("HOME")
        .current_dir(dir.path())
        .output()?;
    assert_eq!(green, std);
    let expected = format!("one|unset\n{}\n", dir.path().canonicalize()?.display());
    assert_eq!(String::from_utf8_lossy(&green.stdout), expected);
    Ok(())
}

#[test]
fn env_clear_and_envs_match_std() -> io::Result<()> {
    let script = "echo \"$A $B ${PATH-nopath}\"";
    let vars = [("A", "1"), ("B", "2")];
    let mut green = Command::new("/bin/sh");
    green.arg("-c").arg(script).env_clear().envs(vars);
    let mut std = std::process::Command::new("/bin/sh");
    std.arg("-c").arg(script).env_clear().envs(vars);
    assert_eq!(green.output()?, std.output()?);
    Ok(())
}

#[test]
fn getters_and_debug_match_std() {
    let mut green = Command::new("prog");
    green
        .args(["a", "b"])
        .env("K", "V")
        .env_remove("R")
        .current_dir("/tmp");
    let mut std = std::process::Command::new("prog");
    std.args(["a", "b"])
        .env("K", "V")
        .env_remove("R")
        .current_dir("/tmp");
    assert_eq!(green.get_program(), std.get_program());
    assert!(green.get_args().eq(std.get_args()));
    assert!(green.get_envs().eq(std.get_envs()));
    assert_eq!(green.get_current_dir(), std.get_current_dir());
    assert_eq!(format!("{green:?}"), format!("{std:?}"));
}

#[test]
fn missing_program_is_not_found_like_std() {
    let name = "green-no-such-program-anywhere";
    let std = std::process::Command::new(name).spawn().unwrap_err();
    assert_eq!(std.kind(), io::ErrorKind::NotFound);
    let green = Command::new(name).spawn().unwrap_err();
    assert_eq!(green.kind(), std.kind());
    assert_eq!(green.raw_os_error(), std.raw_os_error());
    assert_eq!(
        Command::new(name).output().unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(
        Command::new(name).status().unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn piped_streams_are_captured_and_others_are_not() -> io::Result<()> {
    let mut piped = Command::new("true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    assert!(piped.stdin.is_some() && piped.stdout.is_some() && piped.stderr.is_some());
    piped.wait()?;
    let mut other = Command::new("true")
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::null())
        .spawn()?;
    assert!(other.stdin.is_none() && other.stdout.is_none() && other.stderr.is_none());
    assert!(other.wait()?.success());
    Ok(())
}

#[test]
fn null_stdin_reads_end_of_file() -> io::Result<()> {
    let out = Command::new("cat")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .output()?;
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    Ok(())
}

#[test]
fn output_keeps_an_explicit_stream_like_std() -> io::Result<()> {
    let green = sh("echo hidden; echo shown >&2")
        .stdout(Stdio::null())
        .output()?;
    let std = std_sh("echo hidden; echo shown >&2")
        .stdout(Stdio::null())
        .output()?;
    assert_eq!(green, std);
    assert!(green.stdout.is_empty());
    assert_eq!(green.stderr, b"shown\n");
    Ok(())
}

#[test]
fn output_leaves_spawn_defaults_inherited() -> io::Result<()> {
    let mut cmd = Command::new("true");
    cmd.output()?;
    let mut child = cmd.spawn()?;
    assert!(child.stdin.is_none() && child.stdout.is_none() && child.stderr.is_none());
    child.wait()?;
    Ok(())
}

#[test]
fn stdin_written_is_read_back_by_cat() -> io::Result<()> {
    // Larger than a pipe's buffer both ways: the writer must run while the
    // output is read.
    let data: Vec<u8> = (0..(1 << 20) + 123).map(|i| (i % 251) as u8).collect();
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().unwrap();
    let input = data.clone();
    let writer = green::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    writer.wait()?;
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data);
    Ok(())
}

#[test]
fn writes_through_a_shared_reference_like_std() -> io::Result<()> {
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdin = child.stdin.take().unwrap();
    (&stdin).write_all(b"by ref")?;
    (&stdin).flush()?;
    drop(stdin);
    assert_eq!(child.wait_with_output()?.stdout, b"by ref");
    Ok(())
}

#[test]
fn waits_on_one_os_thread_overlap() -> io::Result<()> {
    // 20 children of 0.3 s each take 6 s back to back; overlapped they take
    // a little over 0.3 s. The bound (3 s) leaves a 10x margin for a loaded
    // 2-core machine and is still half of the sequential time.
    let start = Instant::now();
    let waiters: Vec<_> = (0..20)
        .map(|_| {
            green::spawn(|| -> io::Result<ExitStatus> {
                Command::new("sleep").arg("0.3").spawn()?.wait()
            })
        })
        .collect();
    for w in waiters {
        assert!(w.wait()?.success());
    }
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    Ok(())
}

#[test]
fn hub_runs_other_green_threads_while_a_child_is_waited_for() -> io::Result<()> {
    // `cat` exits only after the ticker has ticked five times and closed its
    // input: the wait returns only if the hub kept running the ticker.
    let mut child = Command::new("cat").stdin(Stdio::piped()).spawn()?;
    let stdin = child.stdin.take().unwrap();
    let ticks = Rc::new(Cell::new(0));
    let t = ticks.clone();
    green::spawn_n(move || {
        for _ in 0..5 {
            green::sleep(Duration::from_millis(5));
            t.set(t.get() + 1);
        }
        drop(stdin);
    });
    assert!(child.wait()?.success());
    assert_eq!(ticks.get(), 5);
    Ok(())
}

#[test]
fn try_wait_before_and_after_exit() -> io::Result<()> {
    let mut child = Command::new("cat").stdin(Stdio::piped()).spawn()?;
    assert_eq!(child.try_wait()?, None);
    drop(child.stdin.take());
    let status = child.wait()?;
    assert!(status.success());
    assert_eq!(child.try_wait()?, Some(status));
    Ok(())
}

#[test]
fn wait_twice_gives_the_same_status() -> io::Result<()> {
    let mut child = sh("exit 9").spawn()?;
    let first = child.wait()?;
    assert_eq!(first.code(), Some(9));
    assert_eq!(child.wait()?, first);
    Ok(())
}

#[test]
fn kill_reports_sigkill_like_std() -> io::Result<()> {
    let mut green = Command::new("sleep").arg("10").spawn()?;
    let mut std = std::process::Command::new("sleep").arg("10").spawn()?;
    green.kill()?;
    std.kill()?;
    let (g, s) = (green.wait()?, std.wait()?);
    assert_eq!(g, s);
    assert_eq!(g.signal(), Some(libc::SIGKILL));
    // Killing a child already reaped is fine, as with std.
    green.kill()?;
    std.kill()?;
    Ok(())
}

#[test]
fn wait_on_another_hub() -> io::Result<()> {
    let mut child = sh("cat >/dev/null; exit 4").stdin(Stdio::piped()).spawn()?;
    let stdin = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        tx.send(common::tid()).unwrap();
        green::spawn(move || child.wait()).wait()
    });
    // Once that thread sleeps, its hub waits on the child's pidfd.
    common::wait_until_asleep_in_poller(rx.recv().unwrap());
    drop(stdin);
    assert_eq!(waiter.join().unwrap()?.code(), Some(4));
    Ok(())
}

#[test]
fn wait_from_the_root_of_a_plain_thread() -> io::Result<()> {
    let mut child = Command::new("sleep").arg("0.05").spawn()?;
    let status = std::thread::spawn(move || child.wait()).join().unwrap()?;
    assert!(status.success());
    Ok(())
}

#[test]
fn kill_while_waiting_closes_the_pidfd_and_keeps_the_child() -> io::Result<()> {
    let child = Rc::new(RefCell::new(Command::new("sleep").arg("10").spawn()?));
    let pid = child.borrow().id();
    let c = child.clone();
    let waiter = green::spawn(move || c.borrow_mut().wait());
    green::yield_now(); // the waiter parks on the child's pidfd
    assert_eq!(pidfds_of(pid), 1);
    waiter.kill();
    assert!(waiter.join().unwrap_err().is::<green::Killed>());
    assert_eq!(pidfds_of(pid), 0);
    let mut child = child.borrow_mut();
    assert_eq!(
        child.try_wait()?,
        None,
        "a kill of the waiter is not a kill of the child"
    );
    child.kill()?;
    assert_eq!(child.wait()?.signal(), Some(libc::SIGKILL));
    Ok(())
}

#[test]
fn timeout_while_waiting_closes_the_pidfd_and_keeps_the_child() -> io::Result<()> {
    let mut child = Command::new("sleep").arg("10").spawn()?;
    let start = Instant::now();
    let r = green::with_timeout(Duration::from_millis(50), || child.wait());
    let elapsed = start.elapsed();
    assert!(r.is_err(), "the wait outlived its timeout: {r:?}");
    // Margin: at least the 50 ms asked, far less than the child's 10 s.
    assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(pidfds_of(child.id()), 0);
    assert_eq!(child.try_wait()?, None);
    child.kill()?;
    assert_eq!(child.wait()?.signal(), Some(libc::SIGKILL));
    Ok(())
}

#[test]
fn killed_output_kills_and_reaps_its_child() -> io::Result<()> {
    let mut fifo = PidFifo::new()?;
    let script = fifo.script();
    let runner = green::spawn(move || sh(&script).output());
    let pid = fifo.read_pid();
    runner.kill();
    assert!(runner.join().unwrap_err().is::<green::Killed>());
    wait_until_reaped(pid);
    Ok(())
}

#[test]
fn timed_out_status_kills_and_reaps_its_child() -> io::Result<()> {
    let mut fifo = PidFifo::new()?;
    let script = fifo.script();
    // The shell has 2 s to start and write its pid (a margin for a loaded
    // machine); its `sleep 10` then outlives the timeout.
    let runner = green::spawn(move || {
        let _t = green::Timeout::new(Duration::from_secs(2));
        sh(&script).status()
    });
    let pid = fifo.read_pid();
    assert!(runner.join().unwrap_err().is::<green::Elapsed>());
    wait_until_reaped(pid);
    Ok(())
}

#[test]
fn child_exiting_while_its_pipe_is_read_is_reaped_once() -> io::Result<()> {
    // The shell exits at once; a background job it started keeps stdout
    // open until this test closes the job's input.
    let mut child = sh("exec 3<&0; { cat <&3 >/dev/null; echo late; } & echo early; exit 5")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = green::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let status = child.wait()?;
    assert_eq!(status.code(), Some(5));
    assert!(!reader.is_finished(), "stdout is still open");
    drop(stdin);
    assert_eq!(reader.wait()?, "early\nlate\n");
    assert_eq!(child.wait()?, status);
    assert_eq!(child.try_wait()?, Some(status));
    // The kernel has nothing left to reap: it was reaped exactly once.
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    let mut raw = 0;
    // SAFETY: a valid pointer to a c_int.
    let r = unsafe { libc::waitpid(pid, &mut raw, libc::WNOHANG) };
    assert_eq!(r, -1);
    assert_eq!(
        io::Error::last_os_error().raw_os_error(),
        Some(libc::ECHILD)
    );
    Ok(())
}

fn large_output_script(stderr_first: bool) -> String {
    // 1.5 MiB on each stream; either order blocks a reader that drains one
    // pipe before the other.
    let out = "head -c 1572864 /dev/zero | tr '\\0' o";
    let err = "head -c 1572864 /dev/zero | tr '\\0' e >&2";
    if stderr_first {
        format!("{err}; {out}")
    } else {
        format!("{out}; {err}")
    }
}

#[test]
fn large_output_on_both_pipes_does_not_deadlock() -> io::Result<()> {
    for stderr_first in [false, true] {
        let script = large_output_script(stderr_first);
        let green =
            green::with_timeout(HANG, || sh(&script).output()).expect("output deadlocked")?;
        assert_eq!(green.stdout.len(), 1572864);
        assert_eq!(green.stderr.len(), 1572864);
        assert!(green.stdout.iter().all(|&b| b == b'o'));
        assert!(green.stderr.iter().all(|&b| b == b'e'));
        assert_eq!(green, std_sh(&script).output()?);
    }
    Ok(())
}

#[test]
fn stdout_piped_into_another_child_is_blocking() -> io::Result<()> {
    // `cat` would fail with EAGAIN on a non-blocking stdin: the first child
    // writes only after a pause.
    let mut first = sh("sleep 0.1; echo hi").stdout(Stdio::piped()).spawn()?;
    let out = Command::new("cat")
        .stdin(first.stdout.take().unwrap())
        .output()?;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"hi\n");
    assert!(first.wait()?.success());
    Ok(())
}

fn is_nonblocking(fd: &OwnedFd) -> bool {
    // SAFETY: F_GETFL on an open fd.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0);
    flags & libc::O_NONBLOCK != 0
}

#[test]
fn pipes_are_given_up_in_blocking_mode() -> io::Result<()> {
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdin = OwnedFd::from(child.stdin.take().unwrap());
    let stdout = OwnedFd::from(child.stdout.take().unwrap());
    let stderr = child.stderr.take().unwrap().into_std()?;
    assert!(!is_nonblocking(&stdin));
    assert!(!is_nonblocking(&stdout));
    assert!(!is_nonblocking(&OwnedFd::from(stderr)));
    drop(stdin);
    child.wait()?;
    Ok(())
}

#[test]
fn std_child_converts_both_ways() -> io::Result<()> {
    let std_child = std::process::Command::new("echo")
        .arg("round trip")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut child = Child::from_std(std_child)?;
    let mut line = String::new();
    child.stdout.take().unwrap().read_to_string(&mut line)?;
    assert_eq!(line, "round trip\n");
    let status = child.wait()?;
    let mut back = child.into_std()?;
    assert_eq!(back.try_wait()?, Some(status));
    Ok(())
}

#[test]
fn child_debug_matches_std() -> io::Result<()> {
    let mut green = Command::new("true").stdout(Stdio::piped()).spawn()?;
    let mut std = std::process::Command::new("true")
        .stdout(Stdio::piped())
        .spawn()?;
    assert_eq!(format!("{green:?}"), format!("{std:?}"));
    green.wait()?;
    std.wait()?;
    Ok(())
}

#[test]
fn exec_error_matches_std() {
    use std::os::unix::process::CommandExt as _;
    let green = Command::new("/nonexistent/program").exec();
    let std = std::process::Command::new("/nonexistent/program").exec();
    assert_eq!(green.kind(), io::ErrorKind::NotFound);
    assert_eq!(green.raw_os_error(), std.raw_os_error());
}

#[test]
fn pre_exec_error_fails_spawn_like_std() {
    use std::os::unix::process::CommandExt as _;
    let mut green = Command::new("true");
    // SAFETY: the closure builds an OS error, which allocates nothing.
    unsafe { green.pre_exec(|| Err(io::Error::from_raw_os_error(libc::EACCES))) };
    let mut std = std::process::Command::new("true");
    // SAFETY: as above.
    unsafe { std.pre_exec(|| Err(io::Error::from_raw_os_error(libc::EACCES))) };
    let g = green.spawn().unwrap_err();
    let s = std.spawn().unwrap_err();
    assert_eq!(g.raw_os_error(), Some(libc::EACCES));
    assert_eq!(g.raw_os_error(), s.raw_os_error());
}

#[test]
fn arg0_sets_argv0_like_std() -> io::Result<()> {
    use std::os::unix::process::CommandExt as _;
    let green = Command::new("sh")
        .arg0("named")
        .args(["-c", "echo $0"])
        .output()?;
    let std = std::process::Command::new("sh")
        .arg0("named")
        .args(["-c", "echo $0"])
        .output()?;
    assert_eq!(green, std);
    assert_eq!(green.stdout, b"named\n");
    Ok(())
}

#[test]
fn process_group_zero_starts_a_new_group() -> io::Result<()> {
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: getpgid has no memory arguments.
    let pgid = unsafe { libc::getpgid(pid) };
    drop(child.stdin.take());
    child.wait()?;
    assert_eq!(pgid, pid);
    Ok(())
}

#[test]
fn uid_and_gid_of_self_match_std() -> io::Result<()> {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: getuid and getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let green = Command::new("id").uid(uid).gid(gid).output()?;
    let std = std::process::Command::new("id")
        .uid(uid)
        .gid(gid)
        .output()?;
    assert_eq!(green, std);
    assert!(green.status.success());
    Ok(())
}

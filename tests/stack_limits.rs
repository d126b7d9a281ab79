//! Stack overflow and stack exhaustion give clear reports, never a bare
//! SIGSEGV. Each case runs in a child process (this test binary, re-run on
//! one ignored test), since an overflow aborts the process.

use std::process::Command;

/// Runs the ignored test `name` of this binary in a child process.
fn run_child(name: &str) -> std::io::Result<std::process::Output> {
    Command::new(std::env::current_exe()?)
        .args([
            "--ignored",
            "--exact",
            name,
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let buf = [depth as u8; 1024];
    std::hint::black_box(&buf);
    if depth == u64::MAX {
        return 0;
    }
    recurse(depth + 1) + buf[(depth % 1024) as usize] as u64
}

#[test]
#[ignore = "child process of overflow_is_reported"]
fn child_overflows() {
    let gt = green::Builder::new()
        .stack_size(64 * 1024)
        .spawn(|| recurse(0))
        .unwrap();
    eprintln!("spawned green thread {}", gt.id());
    gt.wait();
}

#[test]
#[ignore = "child process of default_stack_overflow_is_reported"]
fn child_overflows_default_stack() {
    let gt = green::spawn(|| recurse(0));
    eprintln!("spawned green thread {}", gt.id());
    gt.wait();
}

#[test]
fn default_stack_overflow_is_reported() -> std::io::Result<()> {
    check_overflow_report("child_overflows_default_stack")
}

#[test]
fn overflow_is_reported() -> std::io::Result<()> {
    check_overflow_report("child_overflows")
}

fn check_overflow_report(child: &str) -> std::io::Result<()> {
    let out = run_child(child)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let id: String = stderr
        .lines()
        .find_map(|l| l.strip_prefix("spawned green thread "))
        .expect("child printed its green thread id")
        .to_string();
    assert!(
        stderr.contains(&format!("green thread {id} has overflowed its stack")),
        "stderr was: {stderr}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{:?}", out.status);
    Ok(())
}

#[test]
#[ignore = "child process of exhausted_mappings_give_clear_error"]
fn child_exhausts_address_space() {
    // Cap the address space so that stack mappings fail with ENOMEM, as
    // they do when vm.max_map_count is reached.
    let lim = libc::rlimit {
        rlim_cur: 1 << 30,
        rlim_max: 1 << 30,
    };
    // SAFETY: setrlimit with a valid struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
    let mut handles = Vec::new();
    loop {
        match green::Builder::new().stack_size(8 << 20).spawn(|| ()) {
            Ok(h) => handles.push(h),
            Err(e) => {
                println!("kind={:?}", e.kind());
                println!("error={e}");
                break;
            }
        }
    }
    for h in handles {
        h.wait();
    }
    println!("after={}", green::hub::stats().green_threads);
}

#[test]
fn exhausted_mappings_give_clear_error() -> std::io::Result<()> {
    let out = run_child("child_exhausts_address_space")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("kind=OutOfMemory"), "{stdout}");
    assert!(stdout.contains("vm.max_map_count"), "{stdout}");
    assert!(stdout.contains("after=0"), "{stdout}");
    Ok(())
}

/// Whether this kernel installs guard pages with `madvise` (Linux 6.13+).
fn kernel_has_guard_advice() -> bool {
    // SAFETY: maps, advises and unmaps one private page of our own.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        let ok = libc::madvise(p, 4096, 102 /* MADV_GUARD_INSTALL */) == 0;
        libc::munmap(p, 4096);
        ok
    }
}

#[test]
fn more_guarded_threads_than_two_mappings_each_allow() -> std::io::Result<()> {
    let limit: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")?
        .trim()
        .parse()
        .expect("a number");
    // Past what two mappings per stack would allow.
    let n = limit / 2 + 5_000;
    let mut live = Vec::with_capacity(n);
    for i in 0..n {
        match green::Builder::new().spawn(move || {
            green::yield_now();
            i
        }) {
            Ok(gt) => live.push(gt),
            Err(e) => {
                // Only a kernel without guard advice may refuse, and then
                // with the error that names the limit.
                assert!(!kernel_has_guard_advice(), "spawn {i} failed: {e}");
                assert_eq!(e.kind(), std::io::ErrorKind::OutOfMemory);
                assert!(e.to_string().contains("vm.max_map_count"), "{e}");
                break;
            }
        }
    }
    let spawned = live.len();
    let sum: usize = live.into_iter().map(|gt| gt.wait()).sum();
    assert_eq!(sum, spawned * (spawned - 1) / 2);
    if kernel_has_guard_advice() {
        assert_eq!(spawned, n);
    }
    Ok(())
}

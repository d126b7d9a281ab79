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
fn overflow_is_reported() -> std::io::Result<()> {
    let out = run_child("child_overflows")?;
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

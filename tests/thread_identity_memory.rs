//! Memory of green threads with an identity of their own, alone in its
//! test binary: it reads malloc's process-wide counters, which other tests
//! running at the same time would move.

fn supported() -> bool {
    match green::patch::thread_identity_supported() {
        Ok(()) => true,
        Err(why) => {
            if cfg!(all(target_arch = "x86_64", target_env = "gnu")) {
                panic!("identity must be supported on x86-64 glibc: {why}");
            }
            false
        }
    }
}

fn own() -> green::Builder {
    green::Builder::new().thread_identity(true)
}

/// Bytes malloc has handed out and not taken back.
fn malloc_in_use() -> usize {
    // SAFETY: mallinfo2 only reads malloc's counters.
    unsafe { libc::mallinfo2() }.uordblks
}

/// Code that runs on a green thread after its thread exit (the result's
/// hand-over, a detached handle's state) still allocates and frees: it
/// must do so with the OS thread's malloc cache, not build one of its own
/// that is lost with the block.
#[test]
fn detached_green_threads_with_identity_leak_no_malloc_memory() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    let round = || -> std::io::Result<()> {
        for _ in 0..5_000 {
            // Detached: the handle is dropped, its state freed at the end.
            drop(own().spawn(|| vec![1u8; 100])?);
        }
        while green::hub::stats().green_threads > 0 {
            green::yield_now();
        }
        Ok(())
    };
    round()?;
    let before = malloc_in_use();
    for _ in 0..4 {
        round()?;
    }
    let grown = malloc_in_use().saturating_sub(before);
    // 20 000 green threads: a lost cache of ~600 B each would be 12 MB.
    assert!(grown < 2 << 20, "malloc memory grew by {grown} bytes");
    Ok(())
}

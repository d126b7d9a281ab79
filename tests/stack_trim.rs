//! The stack pool gives memory back: free stacks beyond the pool's cap
//! keep their pages while they may be reused soon, and return them once
//! they have stayed free a while. A test binary of its own: it reads the
//! process's resident memory, which other tests would disturb.

use std::time::Duration;

/// Resident memory of the process, in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

/// Writes `bytes` of the current green thread's stack.
#[inline(never)]
fn touch_stack(bytes: usize) {
    let mut buf = [0u8; 4096];
    buf[0] = 1;
    std::hint::black_box(&mut buf);
    if bytes > 4096 {
        touch_stack(bytes - 4096);
    }
}

#[test]
fn surplus_stacks_give_their_memory_back_once_idle() {
    const N: usize = 4000;
    const TOUCHED: usize = 64 * 1024;
    let threads: Vec<_> = (0..N)
        .map(|_| {
            green::spawn(|| {
                touch_stack(TOUCHED);
                // Alive together, so that N stacks are in use at once.
                green::yield_now();
            })
        })
        .collect();
    for gt in threads {
        gt.wait();
    }
    let pooled = green::hub::stats().pooled_stacks;
    assert!(pooled >= N, "{pooled} stacks pooled, expected at least {N}");
    let full = rss();
    // The pool's cap is 1024 stacks: (N - 1024) stacks of at least
    // TOUCHED bytes each are surplus, about 190 MB; the check asks for
    // well over half of that.
    let surplus = (N - 1024) * TOUCHED;
    // A second look soon after: the pages are still there (a spawn now
    // would reuse them without faulting).
    green::sleep(Duration::from_millis(100));
    let soon = rss();
    assert!(
        soon + surplus / 2 > full,
        "memory was given back at once: {full} -> {soon} bytes"
    );
    // After the grace period (1 s), the idle hub gives the surplus back.
    green::sleep(Duration::from_millis(1500));
    let later = rss();
    assert!(
        later + surplus * 2 / 3 < full,
        "surplus stacks kept their memory: {full} -> {later} bytes (surplus {surplus})"
    );
    // The pool keeps at least its cap of stacks, and the next spawns
    // work as before.
    assert!(green::hub::stats().pooled_stacks >= 1024);
    let again: Vec<_> = (0..N).map(|i| green::spawn(move || i)).collect();
    assert_eq!(
        again.into_iter().map(|g| g.wait()).sum::<usize>(),
        N * (N - 1) / 2
    );
}

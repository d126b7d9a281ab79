//! Green thread stacks: the default size, a custom size through `Builder`,
//! many stacks at once, and the pool that reuses them.
//!
//! Overflow and exhausted mappings are in `stack_limits.rs` (they abort or
//! need a child process).

use std::io;
use std::time::Duration;

/// Recurses `depth` times with a 1 KiB frame; returns the depth reached.
#[inline(never)]
fn recurse(depth: usize) -> usize {
    let buf = [depth as u8; 1024];
    if depth == 0 {
        return 0;
    }
    let reached = 1 + recurse(depth - 1);
    // Used after the call, so the frame keeps its buffer during recursion.
    std::hint::black_box(&buf);
    reached
}

#[test]
fn default_stack_runs_moderate_recursion() {
    // 1 KiB frames filling a quarter of the default stack (a little more in
    // a debug build, whose frames carry extra spill slots): well within it.
    let depth = green::DEFAULT_STACK_SIZE / 4 / 1024;
    assert_eq!(green::spawn(move || recurse(depth)).wait(), depth);
}

#[test]
fn builder_stack_size_runs_deep_recursion() -> io::Result<()> {
    // 4000 frames of over 1 KiB need more than 4 MiB: sixteen times the
    // default stack, which would overflow (and abort) without the builder.
    let gt = green::Builder::new()
        .stack_size(16 << 20)
        .spawn(|| recurse(4000))?;
    assert_eq!(gt.wait(), 4000);
    Ok(())
}

#[test]
fn tiny_stack_size_is_rounded_up_and_works() -> io::Result<()> {
    let gt = green::Builder::new().stack_size(1).spawn(|| 40 + 2)?;
    assert_eq!(gt.wait(), 42);
    Ok(())
}

#[test]
fn builder_spawn_after_and_spawn_n_take_the_stack_size() -> io::Result<()> {
    let later = green::Builder::new()
        .stack_size(8 << 20)
        .spawn_after(Duration::from_millis(1), || recurse(2000))?;
    let done = std::rc::Rc::new(std::cell::Cell::new(0));
    let d = done.clone();
    green::Builder::new()
        .stack_size(8 << 20)
        .spawn_n(move || d.set(recurse(2000)))?;
    assert_eq!(later.wait(), 2000);
    assert_eq!(done.get(), 2000);
    Ok(())
}

#[test]
fn twenty_thousand_green_threads_at_once() {
    const N: usize = 20_000;
    let before = green::hub::stats();
    let threads: Vec<_> = (0..N)
        .map(|i| {
            green::spawn(move || {
                // Park once, so that all of them are alive together.
                green::yield_now();
                i
            })
        })
        .collect();
    assert_eq!(green::hub::stats().green_threads, before.green_threads + N);
    let sum: usize = threads.into_iter().map(|gt| gt.wait()).sum();
    assert_eq!(sum, N * (N - 1) / 2);
    let after = green::hub::stats();
    assert_eq!(after.green_threads, before.green_threads);
    assert!(after.pooled_stacks > 0, "finished stacks are pooled");
    // Stacks are carved 64 to a mapping where the kernel allows it, so the
    // pool may also hold the unused rest of the last chunk.
    assert!(after.pooled_stacks <= N + 64);
}

#[test]
fn pooled_stacks_are_reused() {
    green::spawn(|| ()).wait();
    let pooled = green::hub::stats().pooled_stacks;
    assert!(pooled > 0);
    // A new default-size green thread takes its stack from the pool ...
    let gt = green::spawn(|| ());
    assert_eq!(green::hub::stats().pooled_stacks, pooled - 1);
    // ... and gives it back when it finishes.
    gt.wait();
    assert_eq!(green::hub::stats().pooled_stacks, pooled);
}

#[test]
fn custom_size_stacks_are_not_pooled() -> io::Result<()> {
    let before = green::hub::stats().pooled_stacks;
    green::Builder::new()
        .stack_size(1 << 20)
        .spawn(|| ())?
        .wait();
    assert_eq!(green::hub::stats().pooled_stacks, before);
    Ok(())
}

#[test]
fn spawn_from_a_small_stack() -> io::Result<()> {
    // Spawning must not need kilobytes of the spawner's stack, even when
    // the hub's slot table grows.
    let gt = green::Builder::new().stack_size(16 * 1024).spawn(|| {
        let children: Vec<_> = (0..200).map(|i| green::spawn(move || i)).collect();
        children.into_iter().map(|c| c.wait()).sum::<usize>()
    })?;
    assert_eq!(gt.wait(), 199 * 200 / 2);
    Ok(())
}

//! Green threads on shared (copied) stacks keep their frames intact across
//! evictions, and are killed, timed out and torn down like any other.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

fn shared() -> green::Builder {
    // SAFETY: these green threads lend no stack data to other threads.
    unsafe { green::Builder::new().shared_stack() }
}

/// Recurses `depth` frames, each holding a local array, parking at the
/// bottom, then checks every frame's array on the way back.
fn deep(depth: u32, tag: u32) -> u64 {
    let local = [tag.wrapping_mul(31).wrapping_add(depth); 32];
    let below = if depth == 0 {
        green::yield_now();
        green::sleep(Duration::from_millis(1));
        0
    } else {
        deep(depth - 1, tag)
    };
    assert!(
        local
            .iter()
            .all(|&v| v == tag.wrapping_mul(31).wrapping_add(depth)),
        "frame {depth} of green thread {tag} was corrupted"
    );
    below + local[0] as u64
}

#[test]
fn frames_survive_eviction() -> std::io::Result<()> {
    let handles = (0..200u32)
        .map(|tag| shared().spawn(move || deep(tag % 40, tag)))
        .collect::<std::io::Result<Vec<_>>>()?;
    for (tag, h) in (0..200u32).zip(handles) {
        let expect: u64 = (0..=tag % 40)
            .map(|d| tag.wrapping_mul(31).wrapping_add(d) as u64)
            .sum();
        assert_eq!(h.wait(), expect);
    }
    assert_eq!(green::hub::stats().green_threads, 0);
    Ok(())
}

#[test]
fn shared_and_guarded_interleave() -> std::io::Result<()> {
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut handles = Vec::new();
    for i in 0..50u32 {
        let log = log.clone();
        let b = if i % 2 == 0 {
            shared()
        } else {
            green::Builder::new()
        };
        handles.push(b.spawn(move || {
            for round in 0..5 {
                log.borrow_mut().push((round, i));
                green::yield_now();
            }
            deep(5, i)
        })?);
    }
    for h in handles {
        h.wait();
    }
    let log = log.borrow();
    assert_eq!(log.len(), 250);
    // Each round runs every green thread once, in spawn order.
    for (n, &(round, i)) in log.iter().enumerate() {
        assert_eq!((round, i), ((n / 50) as i32, (n % 50) as u32));
    }
    Ok(())
}

#[test]
fn more_shared_threads_than_mappings_allow() -> std::io::Result<()> {
    // 40 000 guarded stacks would need 80 000 mappings, over the default
    // vm.max_map_count of 65530; shared stacks need none each.
    let n = 40_000u32;
    let handles = (0..n)
        .map(|i| {
            shared().spawn(move || {
                green::sleep(Duration::from_millis(5));
                i
            })
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let sum: u64 = handles.into_iter().map(|h| h.wait() as u64).sum();
    assert_eq!(sum, (n as u64) * (n as u64 - 1) / 2);
    Ok(())
}

struct SetOnDrop(Rc<RefCell<bool>>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        *self.0.borrow_mut() = true;
    }
}

#[test]
fn kill_evicted_shared_thread_runs_drop() -> std::io::Result<()> {
    let dropped = Rc::new(RefCell::new(false));
    let d = dropped.clone();
    let victim = shared().spawn(move || {
        let _guard = SetOnDrop(d);
        green::sleep(Duration::from_secs(60));
    })?;
    // Others on the same arenas evict the victim's frames.
    let others = (0..8)
        .map(|i| shared().spawn(move || deep(10, i)))
        .collect::<std::io::Result<Vec<_>>>()?;
    green::yield_now();
    for o in others {
        o.wait();
    }
    victim.kill();
    assert!(victim.join().unwrap_err().is::<green::Killed>());
    assert!(*dropped.borrow());
    let s = green::hub::stats();
    assert_eq!((s.green_threads, s.timers), (0, 0));
    Ok(())
}

#[test]
fn timeout_in_shared_thread() -> std::io::Result<()> {
    let gt = shared().spawn(|| {
        green::with_timeout(Duration::from_millis(5), || deep(3, 7))
            .map(|_| "finished")
            .unwrap_or("timed out")
    })?;
    // deep() sleeps 1 ms at the bottom: it finishes within 5 ms unless the
    // machine stalls; either answer must come back intact.
    let r = gt.wait();
    assert!(r == "finished" || r == "timed out");
    let gt = shared().spawn(|| {
        green::with_timeout(Duration::from_millis(1), || {
            green::sleep(Duration::from_secs(60));
        })
    })?;
    assert!(gt.wait().is_err());
    Ok(())
}

#[test]
fn panic_in_shared_thread_is_contained() {
    let gt = shared()
        .spawn(|| -> u32 { panic!("boom in a shared-stack green thread") })
        .unwrap();
    let other = shared().spawn(|| deep(4, 1)).unwrap();
    let err = gt.join().unwrap_err();
    assert_eq!(
        err.downcast_ref::<&str>(),
        Some(&"boom in a shared-stack green thread")
    );
    assert!(other.wait() > 0);
}

#[test]
fn thread_exit_unwinds_parked_shared_threads() {
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let d = dropped.clone();
    std::thread::spawn(move || {
        struct Count(std::sync::Arc<std::sync::atomic::AtomicUsize>);
        impl Drop for Count {
            fn drop(&mut self) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        for _ in 0..10 {
            let c = Count(d.clone());
            shared()
                .spawn(move || {
                    let _c = c;
                    green::sleep(Duration::from_secs(60));
                })
                .unwrap();
        }
        green::yield_now(); // all ten park; the thread then exits
    })
    .join()
    .unwrap();
    assert_eq!(dropped.load(std::sync::atomic::Ordering::SeqCst), 10);
}

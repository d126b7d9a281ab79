//! Thread identity asked for explicitly (`Builder::thread_identity`, and
//! every `green::thread` thread), without `patch()`: each such green thread
//! has its own thread-locals, `std::thread::current()`, errno, and its
//! thread-locals are destroyed when it ends, is killed, or is unwound at
//! its OS thread's exit. Green threads without it still share the OS
//! thread's.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn supported() -> bool {
    match green::patch::thread_identity_supported() {
        Ok(()) => true,
        Err(why) => {
            // Only x86-64 and AArch64 glibc are validated; elsewhere the
            // fallback is what these tests would see, and the
            // shared-identity tests cover it.
            if cfg!(all(
                any(target_arch = "x86_64", target_arch = "aarch64"),
                target_env = "gnu"
            )) {
                panic!("identity must be supported on x86-64 and AArch64 glibc: {why}");
            }
            false
        }
    }
}

fn own() -> green::Builder {
    green::Builder::new().thread_identity(true)
}

thread_local!(static COUNT: Cell<u32> = const { Cell::new(0) });

#[test]
fn own_thread_locals_start_fresh_and_stay_apart() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    COUNT.set(100);
    let a = own().spawn(|| {
        COUNT.set(COUNT.get() + 1);
        green::sleep(Duration::from_millis(5));
        COUNT.get()
    })?;
    let b = own().spawn(|| {
        COUNT.set(COUNT.get() + 10);
        green::yield_now();
        COUNT.get()
    })?;
    let shared = green::Builder::new()
        .thread_identity(false)
        .spawn(|| COUNT.get())?;
    assert_eq!(a.wait(), 1);
    assert_eq!(b.wait(), 10);
    assert_eq!(shared.wait(), 100, "without identity the OS thread's value");
    assert_eq!(COUNT.get(), 100);
    Ok(())
}

#[test]
fn each_is_a_distinct_std_thread() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    let main = std::thread::current().id();
    let ids: Vec<_> = (0..4)
        .map(|_| own().spawn(|| std::thread::current().id()))
        .collect::<Result<_, _>>()?;
    let ids: Vec<_> = ids.into_iter().map(|g| g.wait()).collect();
    for (i, id) in ids.iter().enumerate() {
        assert_ne!(*id, main);
        assert!(!ids[..i].contains(id), "two green threads share {id:?}");
    }
    Ok(())
}

#[test]
fn errno_is_per_green_thread() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    let set = |e| {
        // SAFETY: the calling thread's errno.
        unsafe { *libc::__errno_location() = e }
    };
    // SAFETY: as above.
    let get = || unsafe { *libc::__errno_location() };
    let a = own().spawn(move || {
        set(11);
        green::yield_now();
        get()
    })?;
    let b = own().spawn(move || {
        set(22);
        green::yield_now();
        get()
    })?;
    assert_eq!((a.wait(), b.wait()), (11, 22));
    Ok(())
}

struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
thread_local!(static GUARD: Cell<Option<Counted>> = const { Cell::new(None) });

#[test]
fn thread_local_destructor_runs_when_it_ends() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let gt = own().spawn(move || GUARD.set(Some(Counted(d))))?;
    gt.wait();
    // The destructor ran before the joiner saw the result.
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    Ok(())
}

#[test]
fn thread_local_destructor_runs_when_killed() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let gt = own().spawn(move || {
        GUARD.set(Some(Counted(d)));
        green::sleep(Duration::from_secs(60));
    })?;
    green::yield_now();
    gt.kill();
    assert!(gt.join().is_err());
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    Ok(())
}

#[test]
fn thread_local_destructor_runs_at_os_thread_exit() {
    if !supported() {
        return;
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    std::thread::spawn(move || {
        own()
            .spawn_n(move || {
                GUARD.set(Some(Counted(d)));
                green::sleep(Duration::from_secs(60));
            })
            .unwrap();
        green::yield_now();
        // The OS thread exits with the green thread parked: it is unwound.
    })
    .join()
    .unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[test]
fn green_thread_module_threads_have_their_own() {
    if !supported() {
        return;
    }
    COUNT.set(5);
    let h = green::thread::spawn(|| {
        COUNT.set(COUNT.get() + 1);
        COUNT.get()
    });
    assert_eq!(h.join().unwrap(), 1);
    assert_eq!(COUNT.get(), 5);
}

#[test]
fn shared_stack_green_thread_with_identity() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    // SAFETY: the green threads lend no stack data to other threads.
    let b = unsafe { own().shared_stack() };
    let gts: Vec<_> = (0..8)
        .map(|i| {
            b.clone().spawn(move || {
                COUNT.set(i);
                green::sleep(Duration::from_millis(2));
                COUNT.get()
            })
        })
        .collect::<Result<_, _>>()?;
    let got: Vec<u32> = gts.into_iter().map(|g| g.wait()).collect();
    assert_eq!(got, (0..8).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn many_green_threads_with_identity_leave_nothing_behind() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    for _ in 0..20 {
        let gts: Vec<_> = (0..500)
            .map(|_| {
                let d = dropped.clone();
                own().spawn(move || {
                    GUARD.set(Some(Counted(d)));
                    green::yield_now();
                })
            })
            .collect::<Result<_, _>>()?;
        for g in gts {
            g.wait();
        }
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 10_000);
    assert_eq!(green::hub::stats().green_threads, 0);
    Ok(())
}

#[test]
fn a_green_thread_with_identity_spawns_and_joins_others() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    let outer = own().spawn(|| {
        COUNT.set(1);
        let inner = own().spawn(|| {
            COUNT.set(2);
            green::yield_now();
            COUNT.get()
        })?;
        let shared = green::Builder::new()
            .thread_identity(false)
            .spawn(|| COUNT.get())?;
        Ok::<_, std::io::Error>((COUNT.get(), inner.wait(), shared.wait()))
    })?;
    // The identity-less one runs on the OS thread's thread-locals.
    COUNT.set(7);
    assert_eq!(outer.wait()?, (1, 2, 7));
    Ok(())
}

/// glibc's `setuid` from another OS thread signals this one and waits for
/// it to report in its (the OS thread's) TCB: a green thread with its own
/// TCB running when the signal comes must not leave the caller waiting.
#[test]
fn setuid_from_another_os_thread_while_a_green_thread_runs() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    use std::sync::atomic::AtomicBool;
    let done = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let busy = {
        let (done, started) = (done.clone(), started.clone());
        own().spawn(move || {
            // Runs (without parking) until the other thread's setuid is
            // done, so the signal finds this green thread's TCB installed.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            started.store(true, Ordering::SeqCst);
            while !done.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                std::hint::spin_loop();
            }
            done.load(Ordering::SeqCst)
        })?
    };
    let setter = {
        let (done, started) = (done.clone(), started.clone());
        std::thread::spawn(move || {
            while !started.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            // SAFETY: sets the real uid the process already has.
            let rc = unsafe { libc::setuid(libc::getuid()) };
            done.store(true, Ordering::SeqCst);
            rc
        })
    };
    assert!(
        busy.wait(),
        "setuid on another OS thread did not return in 20 s"
    );
    assert_eq!(setter.join().unwrap(), 0);
    Ok(())
}

//! `green::debug::dump`: every green thread, with what it waits on.
//!
//! Each test parks green threads on one kind of wait, the way a program
//! would, and checks what the dump says of each: its id, name, spawn
//! site, state and wait reason.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use green::debug::{self, Dump, GreenThreadInfo, State, WaitReason};
use green::hub::Interest;

/// The dump's entry of green thread `id`.
fn entry(d: &Dump, id: u64) -> GreenThreadInfo {
    d.find(id)
        .unwrap_or_else(|| panic!("green thread {id} is not in the dump:\n{d}"))
        .clone()
}

/// What green thread `id` waits on, per a fresh dump.
fn reason_of(id: u64) -> WaitReason {
    let d = debug::dump();
    match entry(&d, id).state {
        State::Parked { on, .. } => on,
        s => panic!("green thread {id} is {s:?}, not parked:\n{d}"),
    }
}

/// Lets every green thread of this hub run until it parks.
fn settle() {
    for _ in 0..3 {
        green::yield_now();
    }
}

#[test]
fn a_sleep_shows_its_deadline_name_and_site() {
    let before = Instant::now();
    let gt = green::Builder::new()
        .name("napper")
        .spawn(|| green::sleep(Duration::from_secs(30)))
        .unwrap();
    let line = line!() - 2; // the `.spawn(` line
    settle();
    // It has been parked for at least this sleep when the dump is taken.
    green::sleep(Duration::from_millis(100));
    let d = debug::dump();
    let e = entry(&d, gt.id());
    assert_eq!(e.name.as_deref(), Some("napper"));
    let site = e.spawned_at.expect("a spawn site");
    assert_eq!((site.file(), site.line()), (file!(), line));
    match e.state {
        State::Parked {
            on: WaitReason::Sleep,
            deadline: Some(dl),
            parked_for,
        } => {
            assert!(dl >= before + Duration::from_secs(30), "{dl:?}");
            assert!(dl <= Instant::now() + Duration::from_secs(30));
            // Margins: the hub's looks at the clock bound the park's
            // start to within a pass of its loop (microseconds here).
            assert!(parked_for >= Duration::from_millis(90), "{parked_for:?}");
            assert!(parked_for < Duration::from_secs(30), "{parked_for:?}");
        }
        s => panic!("{s:?}"),
    }
    let text = d.to_string();
    let want = format!(
        "green thread {} \"napper\" (spawned at {}:{}",
        gt.id(),
        file!(),
        line
    );
    assert!(text.contains(&want), "{text}");
    assert!(text.contains(" ms on sleep (until in 2"), "{text}");
    gt.kill();
}

#[test]
fn fd_waits_name_the_fd_and_direction() -> io::Result<()> {
    let (a, b) = green::os::unix::net::UnixStream::pair()?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&a);
    let reader = green::spawn(move || {
        let mut buf = [0u8; 1];
        io::Read::read(&mut &a, &mut buf)
    });
    settle();
    assert_eq!(
        reason_of(reader.id()),
        WaitReason::Fd {
            fd,
            interest: Interest::Read
        }
    );
    (&b).write_all(b"x")?;
    assert_eq!(reader.wait()?, 1);
    Ok(())
}

#[test]
fn primitives_are_named_with_their_address() {
    let ev = green::Event::<()>::new();
    let sem = Arc::new(green::Semaphore::new(0));
    let m = Arc::new(green::sync::Mutex::new(()));
    let rw = Arc::new(green::sync::RwLock::new(()));
    let cv = Arc::new((green::sync::Mutex::new(false), green::sync::Condvar::new()));
    let bar = Arc::new(green::sync::Barrier::new(2));
    let held = m.lock().unwrap();
    let wheld = rw.write().unwrap();

    let e2 = ev.clone();
    let on_event = green::spawn(move || e2.wait());
    let s2 = sem.clone();
    let on_sem = green::spawn(move || drop(s2.acquire()));
    let m2 = m.clone();
    let on_mutex = green::spawn(move || drop(m2.lock().unwrap()));
    let rw2 = rw.clone();
    let on_rwlock = green::spawn(move || drop(rw2.read().unwrap()));
    let cv2 = cv.clone();
    let on_condvar = green::spawn(move || {
        let (lock, cvar) = &*cv2;
        let mut ready = lock.lock().unwrap();
        while !*ready {
            ready = cvar.wait(ready).unwrap();
        }
    });
    let bar2 = bar.clone();
    let on_barrier = green::spawn(move || {
        bar2.wait();
    });
    settle();

    let kinds = [
        (on_event.id(), "Event"),
        (on_sem.id(), "Semaphore"),
        (on_mutex.id(), "Mutex"),
        (on_rwlock.id(), "RwLock"),
        (on_condvar.id(), "Condvar"),
        (on_barrier.id(), "Barrier"),
    ];
    let d = debug::dump();
    for (id, kind) in kinds {
        let e = entry(&d, id);
        let State::Parked { on, .. } = e.state else {
            panic!("{id} not parked:\n{d}")
        };
        let shown = on.to_string();
        assert!(shown.starts_with(&format!("{kind} 0x")), "{id}: {shown}");
    }
    // Two waiters of one primitive show the same address.
    let m3 = m.clone();
    let second = green::spawn(move || drop(m3.lock().unwrap()));
    settle();
    assert_eq!(reason_of(second.id()), reason_of(on_mutex.id()));

    ev.send(()).unwrap();
    sem.release();
    drop(held);
    drop(wheld);
    *cv.0.lock().unwrap() = true;
    cv.1.notify_all();
    bar.wait();
    for g in [on_sem, on_mutex, on_rwlock, on_condvar, on_barrier, second] {
        g.wait();
    }
    on_event.wait();
}

#[test]
fn queue_and_channel_waits_say_which_side() {
    let q = green::queue::Queue::<u32>::new(1);
    let (q1, q2) = (q.clone(), q.clone());
    let getter = green::spawn(move || q1.get());
    settle();
    assert!(matches!(
        reason_of(getter.id()),
        WaitReason::QueueGet { .. }
    ));
    q.put(1);
    assert_eq!(getter.wait(), 1);
    q.put(2);
    let putter = green::spawn(move || q2.put(3));
    settle();
    assert!(matches!(
        reason_of(putter.id()),
        WaitReason::QueuePut { .. }
    ));
    assert_eq!(q.get(), 2);
    putter.wait();
    assert_eq!(q.get(), 3);

    let (tx, rx) = green::sync::mpsc::sync_channel::<u32>(0);
    let receiver = green::spawn(move || rx.recv().unwrap());
    settle();
    assert!(matches!(
        reason_of(receiver.id()),
        WaitReason::MpscRecv { .. }
    ));
    tx.send(7).unwrap();
    assert_eq!(receiver.wait(), 7);

    let (tx, rx) = green::sync::mpsc::sync_channel::<u32>(0);
    let sender = green::spawn(move || tx.send(8).unwrap());
    settle();
    assert!(matches!(
        reason_of(sender.id()),
        WaitReason::MpscSend { .. }
    ));
    assert_eq!(rx.recv().unwrap(), 8);
    sender.wait();
}

#[test]
fn a_join_names_the_green_thread_it_waits_for() {
    let ev = green::Event::<()>::new();
    let e2 = ev.clone();
    let target = green::spawn(move || e2.wait());
    let tid = target.id();
    let joiner = green::spawn(move || target.wait());
    settle();
    assert_eq!(reason_of(joiner.id()), WaitReason::Join { id: tid });
    // green::thread's join too.
    let e3 = ev.clone();
    let (id_tx, id_rx) = std::sync::mpsc::channel();
    let t = green::thread::spawn(move || {
        id_tx.send(green::current_id().unwrap()).unwrap();
        e3.wait()
    });
    settle();
    let t_id = id_rx.recv().unwrap();
    let tjoiner = green::spawn(move || t.join().unwrap());
    settle();
    assert_eq!(reason_of(tjoiner.id()), WaitReason::Join { id: t_id });
    ev.send(()).unwrap();
    joiner.wait();
    tjoiner.wait();
}

#[test]
fn tpool_child_start_and_park_waits() -> io::Result<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let job = green::spawn(move || green::tpool::execute(move || rx.recv().unwrap()));
    let mut child = green::process::Command::new("sleep").arg("30").spawn()?;
    let pid = child.id();
    let waiter = green::spawn(move || child.wait().map(|s| s.success()));
    let later = green::spawn_after(Duration::from_secs(30), || ());
    let parker = green::spawn(green::thread::park);
    settle();
    assert_eq!(reason_of(job.id()), WaitReason::Tpool);
    assert_eq!(reason_of(waiter.id()), WaitReason::Child { pid });
    assert_eq!(reason_of(later.id()), WaitReason::Start);
    assert_eq!(reason_of(parker.id()), WaitReason::Park);
    tx.send(()).unwrap();
    job.wait();
    // SAFETY: a plain kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
    assert!(!waiter.wait()?);
    later.kill();
    parker.kill();
    Ok(())
}

#[test]
fn running_and_runnable_from_another_os_thread() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let spinning = Arc::new(AtomicBool::new(true));
    let (s2, s3) = (spinning.clone(), spinning.clone());
    let (ids_tx, ids_rx) = std::sync::mpsc::channel();
    let hub = std::thread::spawn(move || {
        // A spinner holds the hub; a second green thread is runnable
        // behind it.
        let spinner = green::spawn(move || {
            while s2.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
        let queued = green::spawn(|| ());
        ids_tx.send((spinner.id(), queued.id())).unwrap();
        spinner.wait();
        queued.wait();
    });
    let (spinner, queued) = ids_rx.recv().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let d = loop {
        let d = debug::dump();
        if d.find(spinner).is_some_and(|e| e.state == State::Running) {
            break d;
        }
        assert!(Instant::now() < deadline, "the spinner never ran:\n{d}");
        std::thread::yield_now();
    };
    assert_eq!(entry(&d, queued).state, State::Runnable, "{d}");
    s3.store(false, Ordering::Relaxed);
    hub.join().unwrap();
}

#[test]
fn ten_thousand_parked_green_threads_are_all_in_the_dump() {
    const N: usize = 10_000;
    let ev = green::Event::<()>::new();
    let mut ids = Vec::with_capacity(N);
    let mut handles = Vec::with_capacity(N);
    for i in 0..N {
        let e = ev.clone();
        let gt = if i % 2 == 0 {
            green::Builder::new()
                .stack_size(16 * 1024)
                .spawn(move || e.wait())
                .unwrap()
        } else {
            green::Builder::new()
                .stack_size(16 * 1024)
                .spawn(move || green::sleep(Duration::from_secs(60)))
                .unwrap()
        };
        ids.push(gt.id());
        handles.push(gt);
    }
    settle();
    let d = debug::dump();
    let mut events = 0;
    let mut sleeps = 0;
    for (i, id) in ids.iter().enumerate() {
        match entry(&d, *id).state {
            State::Parked {
                on: WaitReason::Event { .. },
                ..
            } if i % 2 == 0 => events += 1,
            State::Parked {
                on: WaitReason::Sleep,
                deadline: Some(_),
                ..
            } if i % 2 == 1 => sleeps += 1,
            s => panic!("green thread {id} ({i}) is {s:?}"),
        }
    }
    assert_eq!((events, sleeps), (N / 2, N / 2));
    let text = d.to_string();
    assert!(text.lines().count() > N, "a line per green thread");
    ev.send(()).unwrap();
    for (i, h) in handles.into_iter().enumerate() {
        if i % 2 == 1 {
            h.kill();
        }
        let _ = h.join();
    }
}

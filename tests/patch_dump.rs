//! The dump under `patch()`: plain std code parked in a patched call shows
//! what it waits on — a futex word for a std lock, a sleep for
//! `std::thread::sleep`, an fd for a std socket.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use green::debug::{self, State, WaitReason};

fn reason_of(id: u64) -> WaitReason {
    let d = debug::dump();
    match d.find(id).map(|e| e.state.clone()) {
        Some(State::Parked { on, .. }) => on,
        s => panic!("green thread {id}: {s:?}\n{d}"),
    }
}

fn settle() {
    for _ in 0..3 {
        green::yield_now();
    }
}

#[test]
fn std_waits_under_patch_are_named() -> std::io::Result<()> {
    green::patch();
    // A std Mutex held by a green thread that sleeps with std's sleep; a
    // second green thread blocks on it in a futex wait.
    let m = Arc::new(Mutex::new(0u32));
    let m2 = m.clone();
    let holder = green::spawn(move || {
        let mut g = m2.lock().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        *g += 1;
    });
    settle();
    let m3 = m.clone();
    let blocked = green::spawn(move || *m3.lock().unwrap() + 1);
    // A std socket read.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = green::spawn(move || {
        let (mut s, _) = listener.accept()?;
        let mut buf = [0u8; 1];
        s.read(&mut buf)
    });
    settle();
    let client = TcpStream::connect(addr)?;
    settle();

    assert_eq!(reason_of(holder.id()), WaitReason::Sleep);
    match reason_of(blocked.id()) {
        WaitReason::Futex { addr } => {
            let lo = Arc::as_ptr(&m) as usize;
            let hi = lo + std::mem::size_of_val(&*m);
            assert!(
                (lo..hi).contains(&addr),
                "{addr:#x} not in {lo:#x}..{hi:#x}"
            );
        }
        r => panic!("the std lock's waiter waits on {r}"),
    }
    match reason_of(reader.id()) {
        WaitReason::Fd {
            interest: green::hub::Interest::Read,
            ..
        } => {}
        r => panic!("the std socket's reader waits on {r}"),
    }

    drop(client);
    holder.wait();
    assert_eq!(blocked.wait(), 2);
    assert_eq!(reader.wait()?, 0);
    Ok(())
}

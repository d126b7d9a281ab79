use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{mpsc, Arc, Barrier, Condvar, Mutex};
use std::time::{Duration, Instant};

#[test]
fn smoke() {
    green::patch();
    // sleeps
    let t = Instant::now();
    let v: Vec<_> = (0..50)
        .map(|_| green::spawn(|| std::thread::sleep(Duration::from_millis(100))))
        .collect();
    for g in v {
        g.wait();
    }
    eprintln!("sleep: {:?}", t.elapsed());
    // tcp echo with std
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let srv = green::spawn(move || {
        for _ in 0..20 {
            let (mut s, _) = l.accept().unwrap();
            green::spawn_n(move || {
                let mut b = [0u8; 64];
                loop {
                    let n = s.read(&mut b).unwrap();
                    if n == 0 {
                        break;
                    }
                    s.write_all(&b[..n]).unwrap();
                }
            });
        }
    });
    let t = Instant::now();
    let cs: Vec<_> = (0..20)
        .map(|i| {
            green::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                for _ in 0..100 {
                    s.write_all(&[i as u8; 10]).unwrap();
                    let mut b = [0; 10];
                    s.read_exact(&mut b).unwrap();
                    assert_eq!(b, [i as u8; 10]);
                }
            })
        })
        .collect();
    for c in cs {
        c.wait();
    }
    srv.wait();
    eprintln!("tcp: {:?}", t.elapsed());
    // mutex across sleep
    let m = Arc::new(Mutex::new(0));
    let t = Instant::now();
    let gs: Vec<_> = (0..10)
        .map(|_| {
            let m = m.clone();
            green::spawn(move || {
                let mut g = m.lock().unwrap();
                std::thread::sleep(Duration::from_millis(10));
                *g += 1;
            })
        })
        .collect();
    for g in gs {
        g.wait();
    }
    assert_eq!(*m.lock().unwrap(), 10);
    eprintln!("mutex: {:?}", t.elapsed());
    // condvar
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let p2 = pair.clone();
    let w = green::spawn(move || {
        let (l, c) = &*p2;
        let mut g = l.lock().unwrap();
        while !*g {
            g = c.wait(g).unwrap();
        }
    });
    let p3 = pair.clone();
    green::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        let (l, c) = &*p3;
        *l.lock().unwrap() = true;
        c.notify_one();
    })
    .wait();
    w.wait();
    // barrier
    let b = Arc::new(Barrier::new(10));
    let gs: Vec<_> = (0..10)
        .map(|_| {
            let b = b.clone();
            green::spawn(move || {
                b.wait();
            })
        })
        .collect();
    for g in gs {
        g.wait();
    }
    // mpsc
    let (tx, rx) = mpsc::channel();
    let c = green::spawn(move || rx.iter().sum::<u64>());
    for i in 0..10u64 {
        let tx = tx.clone();
        green::spawn_n(move || {
            std::thread::sleep(Duration::from_millis(10));
            tx.send(i).unwrap();
        });
    }
    drop(tx);
    assert_eq!(c.wait(), 45);
    // dns
    let t = Instant::now();
    let gs: Vec<_> = (0..20)
        .map(|_| {
            green::spawn(|| {
                use std::net::ToSocketAddrs;
                ("localhost", 80).to_socket_addrs().unwrap().count()
            })
        })
        .collect();
    for g in gs {
        assert!(g.wait() > 0);
    }
    eprintln!("dns: {:?}", t.elapsed());
    // process
    let t = Instant::now();
    let gs: Vec<_> = (0..10)
        .map(|_| {
            green::spawn(|| {
                std::process::Command::new("sleep")
                    .arg("0.3")
                    .output()
                    .unwrap()
            })
        })
        .collect();
    for g in gs {
        assert!(g.wait().status.success());
    }
    eprintln!("process: {:?}", t.elapsed());
    eprintln!("seen: {:?}", green::patch::hooks_seen());
}

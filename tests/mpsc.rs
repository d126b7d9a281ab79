//! `green::sync::mpsc`: std's channel API between green threads of one hub,
//! across hubs and with plain OS threads; std's disconnect rules both ways;
//! timed and non-blocking receives and sends; rendezvous; and how a waiter
//! that is killed or timed out leaves the channel. Ends with a seeded
//! randomised stress test.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{stress_seed, Rng};

use green::sync::mpsc::{
    channel, sync_channel, Receiver, RecvError, RecvTimeoutError, SendError, Sender, SyncSender,
    TryRecvError, TrySendError,
};

/// Tests every flavour passes alike: unbounded, bounded and rendezvous.
macro_rules! every_flavour {
    ($($module:ident => $tx:ident, $make:expr);* $(;)?) => {$(
        mod $module {
            use super::*;

            fn pair<T>() -> ($tx<T>, Receiver<T>) {
                $make
            }

            #[test]
            fn green_to_green_on_one_hub() {
                let (tx, rx) = pair();
                green::spawn(move || (0..100).for_each(|i| tx.send(i).unwrap()));
                let receiver = green::spawn(move || rx.iter().collect::<Vec<u32>>());
                assert_eq!(receiver.wait(), (0..100).collect::<Vec<_>>());
            }

            #[test]
            fn green_to_green_across_hubs() {
                let (tx, rx) = pair::<(u32, u32)>();
                let senders = thread::spawn(move || {
                    let gts: Vec<_> = (0..2)
                        .map(|p| {
                            let tx = tx.clone();
                            green::spawn(move || (0..50).for_each(|i| tx.send((p, i)).unwrap()))
                        })
                        .collect();
                    drop(tx);
                    gts.into_iter().for_each(|gt| gt.wait());
                });
                let receiver =
                    thread::spawn(move || green::spawn(move || rx.iter().collect::<Vec<_>>()).wait());
                senders.join().unwrap();
                let got = receiver.join().unwrap();
                for p in 0..2 {
                    let seqs: Vec<u32> = got.iter().filter(|m| m.0 == p).map(|m| m.1).collect();
                    assert_eq!(seqs, (0..50).collect::<Vec<_>>(), "producer {p}");
                }
            }

            #[test]
            fn plain_thread_to_green() {
                let (tx, rx) = pair();
                let sender = thread::spawn(move || (0..50).for_each(|i| tx.send(i).unwrap()));
                let receiver = green::spawn(move || rx.iter().collect::<Vec<u32>>());
                assert_eq!(receiver.wait(), (0..50).collect::<Vec<_>>());
                sender.join().unwrap();
            }

            #[test]
            fn green_to_plain_thread() {
                let (tx, rx) = pair();
                let receiver = thread::spawn(move || rx.iter().collect::<Vec<u32>>());
                green::spawn(move || (0..50).for_each(|i| tx.send(i).unwrap())).wait();
                assert_eq!(receiver.join().unwrap(), (0..50).collect::<Vec<_>>());
            }

            #[test]
            fn recv_takes_what_was_sent_then_errs_once_senders_are_gone() {
                let (tx, rx) = pair();
                green::spawn(move || (1..=3).for_each(|i| tx.send(i).unwrap()));
                assert_eq!(rx.recv(), Ok(1));
                assert_eq!(rx.recv(), Ok(2));
                assert_eq!(rx.recv(), Ok(3));
                assert_eq!(rx.recv(), Err(RecvError));
                assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
            }

            #[test]
            fn last_sender_drop_wakes_blocked_green_receiver() {
                let (tx, rx) = pair::<u32>();
                let tx2 = tx.clone();
                let receiver = green::spawn(move || rx.recv());
                green::yield_now(); // it waits
                drop(tx);
                green::yield_now();
                assert!(!receiver.is_finished()); // tx2 still holds the channel open
                drop(tx2);
                assert_eq!(receiver.wait(), Err(RecvError));
            }

            #[test]
            fn last_sender_drop_on_plain_thread_wakes_blocked_root() {
                let (tx, rx) = pair::<u32>();
                green::yield_now(); // the root has a hub: it will wait in its poller
                let tid = common::tid();
                let dropper = thread::spawn(move || {
                    // Only once the root sleeps in recv: the drop must wake it.
                    common::wait_until_asleep_in_poller(tid);
                    drop(tx);
                });
                assert_eq!(rx.recv(), Err(RecvError));
                dropper.join().unwrap();
            }

            #[test]
            fn cloned_sender_keeps_channel_open() {
                let (tx, rx) = pair();
                let tx2 = tx.clone();
                drop(tx);
                green::spawn(move || tx2.send(8).unwrap());
                assert_eq!(rx.recv(), Ok(8));
                assert_eq!(rx.recv(), Err(RecvError));
            }

            #[test]
            fn send_after_receiver_dropped_returns_value() {
                let (tx, rx) = pair();
                drop(rx);
                assert_eq!(tx.send(5), Err(SendError(5)));
            }

            #[test]
            fn recv_timeout_times_out() {
                let (_tx, rx) = pair::<u32>();
                let start = Instant::now();
                let r = rx.recv_timeout(Duration::from_millis(50));
                let took = start.elapsed();
                assert_eq!(r, Err(RecvTimeoutError::Timeout));
                // Margin: at least the timeout, far less than 5 s.
                assert!(took >= Duration::from_millis(50), "{took:?}");
                assert!(took < Duration::from_secs(5), "{took:?}");
            }

            #[test]
            fn recv_timeout_receives_message_sent_meanwhile() {
                let (tx, rx) = pair();
                green::spawn(move || tx.send(4).unwrap());
                assert_eq!(rx.recv_timeout(Duration::from_secs(60)), Ok(4));
            }

            #[test]
            fn recv_timeout_reports_disconnect() {
                let (tx, rx) = pair::<u32>();
                let receiver = green::spawn(move || rx.recv_timeout(Duration::from_secs(60)));
                green::yield_now(); // it waits
                drop(tx);
                assert_eq!(receiver.wait(), Err(RecvTimeoutError::Disconnected));
            }

            #[test]
            fn try_recv_is_empty_then_disconnected() {
                let (tx, rx) = pair::<u32>();
                assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
                drop(tx);
                assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
            }

            #[test]
            fn with_timeout_interrupts_blocked_recv() {
                let (tx, rx) = pair();
                let r = green::with_timeout(Duration::from_millis(20), || rx.recv());
                assert!(r.is_err());
                green::spawn(move || tx.send(1).unwrap());
                assert_eq!(rx.recv(), Ok(1)); // nothing is stuck with a dead waiter
            }

            #[test]
            fn killed_receiver_disconnects_senders() {
                let (tx, rx) = pair::<u32>();
                let receiver = green::spawn(move || rx.recv());
                green::yield_now(); // it waits
                receiver.kill(); // unwinding drops the receiver
                assert!(receiver.join().unwrap_err().is::<green::Killed>());
                assert_eq!(tx.send(1), Err(SendError(1)));
            }

            #[test]
            fn iterators_end_when_senders_are_gone() {
                let (tx, rx) = pair();
                green::spawn(move || (0..3).for_each(|i| tx.send(i).unwrap()));
                let mut got = Vec::new();
                for v in &rx {
                    got.push(v);
                }
                assert_eq!(got, [0, 1, 2]);
                assert_eq!(rx.iter().next(), None);
                assert_eq!(rx.into_iter().next(), None);
            }
        }
    )*};
}

every_flavour! {
    unbounded => Sender, channel();
    bounded => SyncSender, sync_channel(2);
    rendezvous => SyncSender, sync_channel(0);
}

#[test]
fn unbounded_send_never_blocks() {
    let (tx, rx) = channel();
    (0..10_000).for_each(|i| tx.send(i).unwrap());
    drop(tx);
    assert_eq!(rx.iter().count(), 10_000);
}

#[test]
fn messages_from_one_sender_arrive_in_order() {
    let (tx, rx) = sync_channel(3);
    green::spawn(move || (0..200).for_each(|i| tx.send(i).unwrap()));
    assert!(rx.iter().eq(0..200));
}

#[test]
fn sync_send_blocks_while_buffer_is_full() {
    let (tx, rx) = sync_channel(1);
    let sent = Rc::new(Cell::new(0));
    let sender = {
        let sent = sent.clone();
        green::spawn(move || {
            for i in 0..2 {
                tx.send(i).unwrap();
                sent.set(sent.get() + 1);
            }
        })
    };
    green::yield_now(); // the first fits, the second waits
    assert_eq!(sent.get(), 1);
    assert_eq!(rx.recv(), Ok(0)); // room: the waiting message moves in
    green::yield_now();
    assert_eq!(sent.get(), 2);
    assert_eq!(rx.recv(), Ok(1));
    sender.wait();
}

#[test]
fn rendezvous_send_waits_for_recv() {
    let (tx, rx) = sync_channel(0);
    let sent = Rc::new(Cell::new(false));
    let sender = {
        let sent = sent.clone();
        green::spawn(move || {
            tx.send(1).unwrap();
            sent.set(true);
        })
    };
    green::yield_now(); // it waits for a receiver
    assert!(!sent.get());
    assert_eq!(rx.recv(), Ok(1));
    green::yield_now();
    assert!(sent.get());
    sender.wait();
}

#[test]
fn rendezvous_try_send_needs_waiting_receiver() {
    let (tx, rx) = sync_channel(0);
    assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
    let receiver = green::spawn(move || rx.recv());
    green::yield_now(); // it waits
    assert_eq!(tx.try_send(2), Ok(()));
    assert_eq!(receiver.wait(), Ok(2));
    // The receiver is gone with its green thread.
    assert_eq!(tx.try_send(3), Err(TrySendError::Disconnected(3)));
}

#[test]
fn rendezvous_try_recv_takes_from_waiting_sender() {
    let (tx, rx) = sync_channel(0);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    let sender = green::spawn(move || tx.send(6));
    green::yield_now(); // it waits
    assert_eq!(rx.try_recv(), Ok(6));
    assert_eq!(sender.wait(), Ok(()));
}

#[test]
fn try_send_reports_full_then_disconnected() {
    let (tx, rx) = sync_channel(1);
    assert_eq!(tx.try_send(1), Ok(()));
    assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
    drop(rx);
    assert_eq!(tx.try_send(3), Err(TrySendError::Disconnected(3)));
}

#[test]
fn receiver_drop_wakes_blocked_sender_with_its_value() {
    let (tx, rx) = sync_channel(0);
    let sender = green::spawn(move || tx.send("kept"));
    green::yield_now(); // it waits
    drop(rx);
    assert_eq!(sender.wait(), Err(SendError("kept")));
}

#[test]
fn receiver_drop_on_plain_thread_wakes_sender_on_another_hub() {
    let (tx, rx) = sync_channel(1);
    let (tid_tx, tid_rx) = std_mpsc::channel();
    let hub = thread::spawn(move || {
        tid_tx.send(common::tid()).unwrap();
        green::spawn(move || {
            tx.send(1).unwrap();
            tx.send(2) // waits: the buffer is full
        })
        .wait()
    });
    let tid = tid_rx.recv().unwrap();
    // Once the hub sleeps, its green thread waits in the second send.
    common::wait_until_asleep_in_poller(tid);
    drop(rx);
    assert_eq!(hub.join().unwrap(), Err(SendError(2)));
}

/// Counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn receiver_drop_drops_buffered_messages() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = channel();
    let (stx, srx) = sync_channel(3);
    for _ in 0..3 {
        tx.send(Counted(drops.clone())).unwrap();
        stx.send(Counted(drops.clone())).unwrap();
    }
    drop(rx);
    drop(srx);
    // Dropped with the receivers, while the senders are still alive.
    assert_eq!(drops.load(Ordering::SeqCst), 6);
}

/// A message whose destructor uses the channel it travelled on.
struct SendsOnDrop(Option<Sender<SendsOnDrop>>);

impl Drop for SendsOnDrop {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            // The receiver is gone: this fails, and must not deadlock.
            assert!(tx.send(SendsOnDrop(None)).is_err());
        }
    }
}

#[test]
fn receiver_drop_runs_message_destructors_outside_the_lock() {
    let (tx, rx) = channel();
    tx.send(SendsOnDrop(Some(tx.clone()))).unwrap();
    drop(tx);
    drop(rx); // drops the buffered message, which sends and drops its sender
}

#[test]
fn killed_blocked_sender_message_is_not_delivered() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = sync_channel(0);
    let sender = {
        let msg = Counted(drops.clone());
        green::spawn(move || tx.send(msg).is_ok())
    };
    green::yield_now(); // it waits with its message
    sender.kill();
    assert!(sender.join().unwrap_err().is::<green::Killed>());
    assert_eq!(drops.load(Ordering::SeqCst), 1); // dropped by the unwind
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Disconnected)));
}

#[test]
fn killed_receiver_handed_a_message_leaves_it_for_the_channel() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = channel();
    let receiver = green::spawn(move || rx.recv().is_ok());
    green::yield_now(); // it waits
    tx.send(Counted(drops.clone())).unwrap(); // handed to the receiver
    receiver.kill(); // unwinds before it takes the message
    assert!(receiver.join().unwrap_err().is::<green::Killed>());
    // The message went back to the channel, and was dropped with the
    // receiver, which the unwind dropped: dropped exactly once.
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(tx.send(Counted(drops.clone())).is_err());
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

#[test]
fn timeout_interrupts_blocked_send() {
    let (tx, rx) = sync_channel(0);
    let sender = green::spawn(move || {
        let _t = green::Timeout::new(Duration::from_millis(20));
        tx.send(1)
    });
    assert!(sender.join().unwrap_err().is::<green::Elapsed>());
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
}

#[test]
fn try_iter_takes_only_what_is_there() {
    let (tx, rx) = channel();
    (0..3).for_each(|i| tx.send(i).unwrap());
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(rx.try_iter().next(), None); // the sender is alive
    tx.send(3).unwrap();
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [3]);
}

#[test]
fn error_types_are_std_types() {
    fn std_recv(r: Result<u8, std_mpsc::RecvError>) -> bool {
        r.is_err()
    }
    let (tx, rx) = channel::<u8>();
    drop(tx);
    assert!(std_recv(rx.recv()));
    let (stx, srx) = sync_channel::<u8>(0);
    drop(srx);
    let e: std_mpsc::TrySendError<u8> = stx.try_send(1).unwrap_err();
    assert!(matches!(e, std_mpsc::TrySendError::Disconnected(1)));
}

// Handles are send and sync like std: checked when this file compiles.
const _: () = {
    const fn assert_send<T: Send>() {}
    const fn assert_sync<T: Sync>() {}
    assert_send::<Sender<u8>>();
    assert_sync::<Sender<u8>>();
    assert_send::<SyncSender<u8>>();
    assert_sync::<SyncSender<u8>>();
    assert_send::<Receiver<u8>>();
    assert_send::<green::sync::mpsc::IntoIter<u8>>();
};

#[test]
fn debug_hides_messages_like_std() {
    let (tx, rx) = channel::<u8>();
    let (stx, _srx) = sync_channel::<u8>(1);
    assert_eq!(format!("{tx:?}"), "Sender { .. }");
    assert_eq!(format!("{stx:?}"), "SyncSender { .. }");
    assert_eq!(format!("{rx:?}"), "Receiver { .. }");
    assert_eq!(format!("{:?}", rx.iter()), "Iter { rx: Receiver { .. } }");
    assert_eq!(
        format!("{:?}", rx.try_iter()),
        "TryIter { rx: Receiver { .. } }"
    );
}

const PRODUCERS: u32 = 6;
const PER_PRODUCER: u32 = 5000;

/// A tagged message: (producer id, sequence number).
type Msg = (u32, u32);

/// Either kind of sender.
#[derive(Clone)]
enum Tx {
    Unbounded(Sender<Msg>),
    Bounded(SyncSender<Msg>),
}

fn produce(tx: Tx, id: u32, seed: u64, green: bool) {
    let mut rng = Rng::new(seed ^ (u64::from(id) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    for seq in 0..PER_PRODUCER {
        let msg = (id, seq);
        if green && rng.below(8) == 0 {
            green::yield_now();
        }
        match &tx {
            Tx::Unbounded(tx) => tx.send(msg).unwrap(),
            Tx::Bounded(tx) => match rng.below(2) {
                0 => tx.send(msg).unwrap(),
                _ => match tx.try_send(msg) {
                    Ok(()) => {}
                    Err(TrySendError::Full(msg)) => tx.send(msg).unwrap(),
                    Err(e) => panic!("receiver gone: {e}"),
                },
            },
        }
    }
}

/// Receives with randomly chosen operations until every sender is gone.
fn consume(rx: Receiver<Msg>, seed: u64) -> Vec<Msg> {
    let mut rng = Rng::new(seed ^ 0x5151_5151);
    let mut got = Vec::new();
    loop {
        let next = match rng.below(4) {
            0 => loop {
                let wait = Duration::from_micros(rng.below(2000));
                match rx.recv_timeout(wait) {
                    Ok(m) => break Some(m),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break None,
                }
            },
            1 => match rx.try_recv() {
                Ok(m) => Some(m),
                Err(_) => rx.recv().ok(),
            },
            2 => {
                got.extend(rx.try_iter());
                rx.recv().ok()
            }
            _ => rx.recv().ok(),
        };
        match next {
            Some(m) => got.push(m),
            None => return got,
        }
    }
}

/// Producers 0-1 on hub A, 2-3 on hub B, 4-5 on plain threads; the
/// receiver on hub A, hub B or a plain thread, as the seed says.
fn run_mpsc_stress(tx: Tx, rx: Receiver<Msg>, seed: u64) -> Vec<Msg> {
    let where_rx = Rng::new(seed).below(3);
    println!(
        "receiver on {}",
        ["hub A", "hub B", "a plain thread"][where_rx as usize]
    );
    let mut rx = Some(rx);
    let (got_tx, got_rx) = std_mpsc::channel();
    let mut threads = Vec::new();
    for (hub, producers) in [(0, [0, 1]), (1, [2, 3])] {
        let tx = tx.clone();
        let rx = if where_rx == hub { rx.take() } else { None };
        let got_tx = got_tx.clone();
        threads.push(thread::spawn(move || {
            let consumer =
                rx.map(|rx| green::spawn(move || got_tx.send(consume(rx, seed)).unwrap()));
            let ps: Vec<_> = producers
                .into_iter()
                .map(|id| {
                    let tx = tx.clone();
                    green::spawn(move || produce(tx, id, seed, true))
                })
                .collect();
            drop(tx);
            ps.into_iter().for_each(|gt| gt.wait());
            if let Some(c) = consumer {
                c.wait();
            }
        }));
    }
    for id in 4..PRODUCERS {
        let tx = tx.clone();
        threads.push(thread::spawn(move || produce(tx, id, seed, false)));
    }
    if let Some(rx) = rx.take() {
        threads.push(thread::spawn(move || {
            got_tx.send(consume(rx, seed)).unwrap()
        }));
    } else {
        drop(got_tx);
    }
    drop(tx);
    let got = got_rx.recv().unwrap();
    threads.into_iter().for_each(|t| t.join().unwrap());
    got
}

/// Every message exactly once, each producer's in the order it sent them.
fn check_deliveries(got: &[Msg]) {
    let mut next = vec![0; PRODUCERS as usize];
    for &(p, seq) in got {
        assert_eq!(seq, next[p as usize], "producer {p}: {seq} out of turn");
        next[p as usize] += 1;
    }
    assert_eq!(next, vec![PER_PRODUCER; PRODUCERS as usize]);
}

fn stress(make: fn(u64) -> (Tx, Receiver<Msg>)) {
    let seed = stress_seed();
    let (tx, rx) = make(seed);
    let (done_tx, done_rx) = std_mpsc::channel();
    thread::spawn(move || done_tx.send(run_mpsc_stress(tx, rx, seed)).unwrap());
    let got = done_rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("no end within 60 s: deadlock? (seed {seed})"));
    check_deliveries(&got);
}

#[test]
fn stress_unbounded_channel_across_hubs_and_threads() {
    stress(|_| {
        let (tx, rx) = channel();
        (Tx::Unbounded(tx), rx)
    });
}

#[test]
fn stress_sync_channel_across_hubs_and_threads() {
    stress(|seed| {
        let bound = Rng::new(seed ^ 0xb0b0).below(4) as usize; // 0 (rendezvous) to 3
        println!("bound {bound}");
        let (tx, rx) = sync_channel(bound);
        (Tx::Bounded(tx), rx)
    });
}

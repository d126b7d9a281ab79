//! `green::block_on`: runs a future to completion, parking only the calling
//! green thread (or the root, which runs its hub meanwhile, or a plain OS
//! thread) while the future is pending; its waker works from any OS thread.

mod common;

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// Bounds a wait that only guards against a hang.
const HANG: Duration = Duration::from_secs(10);

/// A one-value channel whose receiver is a future: the smallest thing
/// woken by somebody else.
struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    polls: usize,
}

struct Sender<T>(Arc<Mutex<Slot<T>>>);
struct Receiver<T>(Arc<Mutex<Slot<T>>>);

fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
        polls: 0,
    }));
    (Sender(slot.clone()), Receiver(slot))
}

impl<T> Sender<T> {
    fn send(self, v: T) {
        let waker = {
            let mut s = self.0.lock().unwrap();
            s.value = Some(v);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// The shared slot, to read the poll count once the receiver is gone.
    fn shared(&self) -> Arc<Mutex<Slot<T>>> {
        self.0.clone()
    }
}

impl<T> Future for Receiver<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut s = self.0.lock().unwrap();
        s.polls += 1;
        match s.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Pending once, waking itself at once; then ready.
struct YieldOnce {
    polls: usize,
}

impl Future for YieldOnce {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        self.polls += 1;
        if self.polls == 1 {
            cx.waker().wake_by_ref();
            Poll::Pending
        } else {
            Poll::Ready(self.polls)
        }
    }
}

/// Never ready; sets its flag when dropped.
struct PendingForever(Rc<Cell<bool>>);

impl Future for PendingForever {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

impl Drop for PendingForever {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// Gives the current OS thread a hub, making the test thread a root
/// context (one that has not used green yet is a plain thread).
fn with_hub() {
    green::yield_now();
}

/// A pending future that is woken only a few times was not busy-polled.
const FEW_POLLS: usize = 5;

#[test]
fn ready_future_returns_its_output() {
    with_hub();
    assert_eq!(green::block_on(async { 6 * 7 }), 42);
}

#[test]
fn root_is_woken_from_another_os_thread() {
    with_hub();
    let (tx, rx) = oneshot();
    let polls = rx.shared();
    let tid = common::tid();
    let t = thread::spawn(move || {
        // Only once the root's hub sleeps: the wake must reach the poller.
        common::wait_until_asleep_in_poller(tid);
        tx.send("hello");
    });
    assert_eq!(green::block_on(rx), "hello");
    t.join().unwrap();
    assert!(polls.lock().unwrap().polls <= FEW_POLLS);
}

#[test]
fn green_thread_is_woken_from_another_os_thread_while_others_run() {
    let (tx, rx) = oneshot();
    let (progress_tx, progress_rx) = mpsc::channel();
    // The future is completed only after another green thread of this hub
    // has made progress: only the waiting green thread may be parked.
    let completer = thread::spawn(move || {
        let steps: Vec<u32> = (0..3)
            .map(|_| progress_rx.recv_timeout(HANG).unwrap())
            .collect();
        tx.send(steps);
    });
    let waiter = green::spawn(move || green::block_on(rx));
    let worker = green::spawn(move || {
        for i in 0..3 {
            green::yield_now();
            progress_tx.send(i).unwrap();
        }
    });
    assert_eq!(waiter.wait(), [0, 1, 2]);
    worker.wait();
    completer.join().unwrap();
}

#[test]
fn plain_thread_blocks_until_woken() {
    let (tx, rx) = oneshot();
    let (ready_tx, ready_rx) = mpsc::channel();
    let plain = thread::spawn(move || {
        let polls = rx.shared();
        ready_tx.send(()).unwrap();
        let v = green::block_on(rx);
        let n = polls.lock().unwrap().polls;
        (v, n)
    });
    ready_rx.recv_timeout(HANG).unwrap();
    tx.send(5);
    let (v, polls) = plain.join().unwrap();
    assert_eq!(v, 5);
    assert!(polls <= FEW_POLLS, "polled {polls} times");
}

#[test]
fn self_waking_future_is_polled_again_on_the_root() {
    with_hub();
    assert_eq!(green::block_on(YieldOnce { polls: 0 }), 2);
}

#[test]
fn self_waking_future_is_polled_again_on_a_green_thread() {
    let polls = green::spawn(|| green::block_on(YieldOnce { polls: 0 })).wait();
    assert_eq!(polls, 2);
}

#[test]
fn self_waking_future_is_polled_again_on_a_plain_thread() {
    let polls = thread::spawn(|| green::block_on(YieldOnce { polls: 0 }))
        .join()
        .unwrap();
    assert_eq!(polls, 2);
}

#[test]
fn green_thread_awaits_a_future_completed_by_another_green_thread() {
    let (tx, rx) = oneshot();
    let log = Rc::new(Cell::new(0));
    let l = log.clone();
    let waiter = green::spawn(move || {
        let v = green::block_on(rx);
        // The completer ran while this green thread was parked.
        assert_eq!(l.get(), 1);
        v
    });
    let l = log.clone();
    let completer = green::spawn(move || {
        green::yield_now(); // the waiter is parked in block_on by now
        l.set(1);
        tx.send("from a green thread");
    });
    assert_eq!(waiter.wait(), "from a green thread");
    completer.wait();
}

#[test]
fn root_awaits_a_future_completed_by_a_green_thread() {
    let (tx, rx) = oneshot();
    let completer = green::spawn(move || {
        green::yield_now();
        tx.send(9);
    });
    assert_eq!(green::block_on(rx), 9);
    assert!(completer.is_finished());
}

#[test]
fn kill_unwinds_through_block_on_and_drops_the_future() {
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let gt = green::spawn(move || green::block_on(PendingForever(d)));
    green::yield_now(); // it polls and parks
    assert!(!dropped.get());
    gt.kill();
    assert!(gt.join().unwrap_err().is::<green::Killed>());
    assert!(dropped.get());
}

#[test]
fn timeout_unwinds_through_block_on() {
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let start = Instant::now();
    let r = green::with_timeout(Duration::from_millis(20), move || {
        green::block_on(PendingForever(d))
    });
    assert!(r.is_err());
    assert!(dropped.get());
    // Margin: a 20 ms timeout, and anything under 10 s on a loaded machine.
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(20) && took < HANG, "{took:?}");
}

#[test]
fn block_on_inside_an_async_block_on_a_green_thread() {
    // A future whose poll itself blocks on another future: the inner
    // `block_on` parks the same green thread.
    let (tx, rx) = oneshot();
    let completer = green::spawn(move || {
        green::yield_now();
        tx.send(3);
    });
    let outer = green::spawn(move || green::block_on(async move { green::block_on(rx) * 2 }));
    assert_eq!(outer.wait(), 6);
    completer.wait();
}

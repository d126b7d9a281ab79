//! `green::tpool`: calls that block an OS thread run on a pool thread while
//! only the calling green thread parks. Panics resume in the caller; a kill
//! or timeout takes effect once the call has returned, so the call may
//! borrow from the caller's stack.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use green::tpool::{self, Proxy};

/// Bounds a wait that only guards against a hang.
const HANG: Duration = Duration::from_secs(10);

fn thread_name() -> Option<String> {
    thread::current().name().map(String::from)
}

/// Makes sure the current OS thread has a hub, so `execute` uses the pool.
fn with_hub() {
    green::yield_now();
}

#[test]
fn execute_returns_the_value() {
    let v = green::spawn(|| tpool::execute(|| 6 * 7)).wait();
    assert_eq!(v, 42);
}

#[test]
fn execute_from_the_root_uses_the_pool() {
    with_hub();
    let name = tpool::execute(thread_name).unwrap();
    assert!(name.starts_with("green-tpool-"), "ran on {name:?}");
}

#[test]
fn execute_borrows_from_the_callers_stack() {
    let len = green::spawn(|| {
        let data = vec![1u8; 1000];
        let mut out = Vec::new();
        let n = tpool::execute(|| {
            out.extend_from_slice(&data[..10]);
            data.len()
        });
        assert_eq!(out, [1u8; 10]);
        n
    })
    .wait();
    assert_eq!(len, 1000);
}

#[test]
fn worker_thread_names_start_with_green_tpool() {
    let name = green::spawn(|| tpool::execute(thread_name)).wait();
    let name = name.expect("pool threads are named");
    assert!(name.starts_with("green-tpool-"), "ran on {name:?}");
    assert!(name["green-tpool-".len()..].parse::<usize>().is_ok());
}

#[test]
fn other_green_threads_run_while_a_job_blocks() {
    // The job blocks its pool thread until a green thread of the caller's
    // hub has sent three messages, ten milliseconds apart: that can only
    // happen while the caller is parked in `execute`.
    let (tx, rx) = mpsc::channel();
    let sender = green::spawn(move || {
        for i in 0..3 {
            green::sleep(Duration::from_millis(10));
            tx.send(i).unwrap();
        }
    });
    let caller = green::spawn(move || {
        tpool::execute(move || {
            (0..3)
                .map(|_| rx.recv_timeout(HANG))
                .collect::<Result<Vec<_>, _>>()
        })
    });
    assert_eq!(caller.wait().expect("the green thread ran"), [0, 1, 2]);
    sender.wait();
}

#[test]
fn root_runs_its_hub_while_waiting() {
    // As above, with the root as the caller: it runs its hub loop, and so
    // the sender, while it waits.
    let (tx, rx) = mpsc::channel();
    let sender = green::spawn(move || {
        for i in 0..3 {
            green::sleep(Duration::from_millis(10));
            tx.send(i).unwrap();
        }
    });
    let got = tpool::execute(move || {
        (0..3)
            .map(|_| rx.recv_timeout(HANG))
            .collect::<Result<Vec<_>, _>>()
    });
    assert_eq!(got.expect("the green thread ran"), [0, 1, 2]);
    sender.wait();
}

#[test]
fn many_green_threads_share_the_pool() {
    const CALLERS: usize = 100;
    assert!(CALLERS > tpool::num_threads());
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..CALLERS)
        .map(|i| {
            let in_flight = in_flight.clone();
            let most = most.clone();
            green::spawn(move || {
                tpool::execute(move || {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(20));
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    i * 2
                })
            })
        })
        .collect();
    let sum: usize = callers.into_iter().map(|gt| gt.wait()).sum();
    assert_eq!(sum, CALLERS * (CALLERS - 1));
    let most = most.load(Ordering::SeqCst);
    assert!(most <= tpool::num_threads(), "{most} jobs ran at once");
    assert!(most >= 2, "the jobs never overlapped");
}

#[derive(Debug, PartialEq)]
struct Payload(u32);

#[test]
fn panic_in_job_resumes_in_caller_with_its_payload() {
    let err = green::spawn(|| tpool::execute(|| std::panic::panic_any(Payload(7))))
        .join()
        .unwrap_err();
    assert_eq!(err.downcast_ref::<Payload>(), Some(&Payload(7)));
}

#[test]
fn panic_message_resumes_in_caller() {
    let err = green::spawn(|| tpool::execute(|| -> u32 { panic!("job failed: {}", 42) }))
        .join()
        .unwrap_err();
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied());
    assert_eq!(msg, Some("job failed: 42"));
}

#[test]
fn pool_thread_survives_a_panicking_job() {
    // More panics than pool threads: none of them may take a thread down.
    for _ in 0..tpool::num_threads() + 5 {
        let r = green::spawn(|| tpool::execute(|| std::panic::panic_any(Payload(1)))).join();
        assert!(r.is_err());
    }
    assert_eq!(green::spawn(|| tpool::execute(|| 5)).wait(), 5);
}

/// Records, when dropped, whether the job had finished by then.
struct SeenOnUnwind<'a> {
    job_finished: &'a AtomicBool,
    seen: Rc<Cell<Option<bool>>>,
}

impl Drop for SeenOnUnwind<'_> {
    fn drop(&mut self) {
        self.seen
            .set(Some(self.job_finished.load(Ordering::SeqCst)));
    }
}

#[test]
fn kill_takes_effect_when_the_job_returns() {
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let seen = Rc::new(Cell::new(None));
    let returned = Rc::new(Cell::new(false));
    let (s, r) = (seen.clone(), returned.clone());
    let gt = green::spawn(move || {
        let job_finished = AtomicBool::new(false);
        let _guard = SeenOnUnwind {
            job_finished: &job_finished,
            seen: s,
        };
        let local = [3u8; 64];
        let (local, finished) = (&local, &job_finished);
        let sum: u32 = tpool::execute(move || {
            started_tx.send(()).unwrap();
            release_rx.recv_timeout(HANG).unwrap();
            let sum = local.iter().map(|&b| u32::from(b)).sum();
            finished.store(true, Ordering::SeqCst);
            sum
        });
        r.set(true);
        sum
    });
    green::yield_now(); // it submits its job and parks
    started_rx.recv_timeout(HANG).unwrap();
    gt.kill();
    assert!(!gt.is_finished(), "the kill must wait for the job");
    assert_eq!(seen.get(), None);
    release_tx.send(()).unwrap();
    assert!(gt.join().unwrap_err().is::<green::Killed>());
    assert_eq!(seen.get(), Some(true), "unwound before the job finished");
    assert!(!returned.get(), "the caller went on after a kill");
}

#[test]
fn timeout_takes_effect_when_the_job_returns() {
    // The job is released by a green thread 100 ms after a 10 ms timeout
    // has expired: the timeout must wait for the job, then unwind.
    let job_finished = AtomicBool::new(false);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let releaser = green::spawn(move || {
        green::sleep(Duration::from_millis(100));
        release_tx.send(()).unwrap();
    });
    let start = Instant::now();
    let finished = &job_finished;
    let r = green::with_timeout(Duration::from_millis(10), move || {
        tpool::execute(move || {
            release_rx.recv_timeout(HANG).unwrap();
            finished.store(true, Ordering::SeqCst);
        })
    });
    let took = start.elapsed();
    assert!(r.is_err(), "the timeout was lost");
    assert!(job_finished.load(Ordering::SeqCst));
    // Margin: the release comes 100 ms after the start; anything under 10 s
    // is fine on a loaded machine.
    assert!(
        took >= Duration::from_millis(100),
        "returned after {took:?}"
    );
    assert!(took < HANG);
    releaser.wait();
}

#[test]
fn plain_os_thread_runs_the_job_inline() -> io::Result<()> {
    let t = thread::Builder::new()
        .name("plain".into())
        .spawn(|| tpool::execute(|| (thread_name(), thread::current().id())))?;
    let caller = t.thread().id();
    let (name, id) = t.join().unwrap();
    assert_eq!(name.as_deref(), Some("plain"));
    assert_eq!(id, caller);
    Ok(())
}

#[test]
fn execute_from_a_pool_thread_runs_inline() {
    let (outer, inner) = green::spawn(|| {
        tpool::execute(|| {
            (
                thread::current().id(),
                tpool::execute(|| thread::current().id()),
            )
        })
    })
    .wait();
    assert_eq!(outer, inner);
}

#[test]
fn execute_from_two_hubs() -> io::Result<()> {
    let barrier = Arc::new(Barrier::new(2));
    let hubs: Vec<_> = (0..2u32)
        .map(|k| {
            let barrier = barrier.clone();
            thread::Builder::new().spawn(move || {
                // Both hubs have a job in the pool at the same time: each
                // job waits for the other's.
                let gt = green::spawn(move || {
                    tpool::execute(|| {
                        barrier.wait();
                        thread_name()
                    })
                });
                let from_root = tpool::execute(move || k * 10);
                (gt.wait(), from_root)
            })
        })
        .collect::<io::Result<_>>()?;
    for (k, h) in hubs.into_iter().enumerate() {
        let (name, v) = h.join().unwrap();
        assert!(name.unwrap().starts_with("green-tpool-"));
        assert_eq!(v, k as u32 * 10);
    }
    Ok(())
}

/// Blocks until OS thread `tid` of this process sleeps in the kernel (a
/// closing hub's caller blocks its OS thread in the hub's epoll wait):
/// synchronisation on kernel state, not a guess at a delay.
fn wait_until_blocked(tid: libc::pid_t) {
    let deadline = Instant::now() + HANG;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"));
        let sleeping = stat.is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .and_then(|r| r.trim_start().chars().next())
                == Some('S')
        });
        if sleeping {
            match std::fs::read_to_string(format!("/proc/self/task/{tid}/wchan")) {
                Ok(w) if !w.is_empty() && w != "0" => {
                    if w.contains("epoll") || w.contains("futex") {
                        return;
                    }
                }
                // The kernel hides the wait channel: sleeping must do.
                _ => return,
            }
        }
        assert!(Instant::now() < deadline, "thread {tid} never blocked");
        thread::yield_now();
    }
}

/// Sends on its channel when dropped.
struct SendOnDrop(mpsc::Sender<()>);

impl Drop for SendOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// Records, when dropped, whether the job had finished by then; for a
/// green thread of another OS thread.
struct RecordOnDrop<'a> {
    job_finished: &'a AtomicBool,
    seen: mpsc::Sender<bool>,
}

impl Drop for RecordOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.seen.send(self.job_finished.load(Ordering::SeqCst));
    }
}

#[test]
fn thread_exit_unwinds_a_caller_only_after_its_job() {
    let (tid_tx, tid_rx) = mpsc::channel();
    let (teardown_tx, teardown_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (seen_tx, seen_rx) = mpsc::channel();
    let hub_thread = thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        green::spawn_n(move || {
            let job_finished = AtomicBool::new(false);
            let _g = RecordOnDrop {
                job_finished: &job_finished,
                seen: seen_tx,
            };
            let finished = &job_finished;
            tpool::execute(move || {
                release_rx.recv_timeout(HANG).unwrap();
                finished.store(true, Ordering::SeqCst);
            });
        });
        // Unwound first when the thread exits (the newest green thread
        // goes first): tells the test that teardown started.
        green::spawn_n(move || {
            let _g = SendOnDrop(teardown_tx);
            green::sleep(Duration::from_secs(3600));
        });
        green::yield_now(); // both park; then the thread exits
    });
    let tid = tid_rx.recv_timeout(HANG).unwrap();
    teardown_rx.recv_timeout(HANG).unwrap();
    // The unwinding caller now waits for its job, blocking its OS thread.
    wait_until_blocked(tid);
    release_tx.send(()).unwrap();
    hub_thread.join().unwrap();
    assert!(
        seen_rx.recv_timeout(HANG).unwrap(),
        "unwound before the job"
    );
}

/// Runs a pool job from a destructor and reports which thread ran it.
struct ExecuteOnDrop(mpsc::Sender<Option<String>>);

impl Drop for ExecuteOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(tpool::execute(thread_name));
    }
}

#[test]
fn execute_in_a_destructor_at_thread_exit() {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        green::spawn_n(move || {
            let _g = ExecuteOnDrop(tx);
            green::sleep(Duration::from_secs(3600));
        });
        green::yield_now(); // it parks; the thread exits and unwinds it
    })
    .join()
    .unwrap();
    let name = rx.recv_timeout(HANG).unwrap().unwrap();
    assert!(name.starts_with("green-tpool-"), "ran on {name:?}");
}

#[test]
fn default_pool_size_is_twenty() {
    assert_eq!(tpool::DEFAULT_NUM_THREADS, 20);
    assert_eq!(tpool::num_threads(), 20);
}

#[test]
fn set_num_threads_after_start_errors() {
    green::spawn(|| tpool::execute(|| ())).wait();
    let err = tpool::set_num_threads(3).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Other);
    assert!(err.to_string().contains("already started"), "{err}");
    assert_eq!(tpool::num_threads(), 20);
}

#[test]
fn set_num_threads_zero_is_invalid() {
    let err = tpool::set_num_threads(0).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn proxy_runs_calls_on_the_pool() {
    let p = Rc::new(Proxy::new(Vec::<Option<String>>::new()));
    let q = p.clone();
    green::spawn(move || q.call(|v| v.push(thread_name()))).wait();
    let names = Rc::into_inner(p).unwrap().into_inner();
    assert!(names[0].as_deref().unwrap().starts_with("green-tpool-"));
}

#[test]
fn proxy_calls_take_turns() {
    const CALLERS: usize = 20;
    let p = Rc::new(Proxy::new((0usize, Vec::new())));
    let in_call = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..CALLERS)
        .map(|i| {
            let p = p.clone();
            let in_call = in_call.clone();
            green::spawn(move || {
                p.call(|(most, order)| {
                    let now = in_call.fetch_add(1, Ordering::SeqCst) + 1;
                    *most = (*most).max(now);
                    thread::sleep(Duration::from_millis(2));
                    order.push(i);
                    in_call.fetch_sub(1, Ordering::SeqCst);
                })
            })
        })
        .collect();
    for gt in callers {
        gt.wait();
    }
    let (most, mut order) = Rc::into_inner(p).unwrap().into_inner();
    assert_eq!(most, 1, "two calls ran at once");
    order.sort_unstable();
    assert_eq!(order, (0..CALLERS).collect::<Vec<_>>());
}

#[test]
fn proxy_is_not_poisoned_by_a_panicking_call() {
    with_hub();
    let mut p = Proxy::new(1);
    let r = std::panic::catch_unwind(|| {
        p.call(|v| {
            *v = 2;
            panic!("in call");
        })
    });
    assert!(r.is_err());
    assert_eq!(p.call(|v| *v), 2);
    *p.get_mut() += 1;
    assert_eq!(p.into_inner(), 3);
}

#[test]
fn proxy_debug_shows_the_value() {
    assert_eq!(format!("{:?}", Proxy::new(5)), "Proxy { value: 5 }");
}

// A proxy is send and sync when its value is send (the value sits behind a
// mutex, like `Mutex<T>`): checked when this file compiles.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Proxy<Cell<u32>>>();
    assert_send_sync::<Proxy<Vec<u8>>>();
};

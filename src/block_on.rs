//! Running a future to completion from green code.
//!
//! The future is polled on the caller's own stack. Its [`Waker`] is the
//! caller's [`Unparker`](crate::hub::Unparker): while the future is pending
//! only the calling green thread parks, and a wake from any OS thread makes
//! the hub resume it to poll again. A root context runs its hub loop
//! meanwhile; a plain OS thread (no hub) parks with [`std::thread::park`].

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use crate::hub;

/// Runs `fut` to completion and returns its output, parking only the current
/// green thread while it is pending.
///
/// Works from a green thread, from the root context (which runs its hub
/// loop while it waits, so the other green threads go on) and from a plain
/// OS thread (one without a hub: it has not used green yet), which then
/// blocks in [`std::thread::park`] and gets no hub.
///
/// The future must be woken by its own machinery: another OS thread, a
/// green thread, a channel's sender. `block_on` is no reactor for other
/// runtimes: a future that needs one (tokio's sockets and timers, for
/// instance) must run inside that runtime.
///
/// # Panics
/// A panic in the future's `poll` propagates. Also panics when called from
/// the hub itself (a timer callback).
///
/// # Notes
/// A [`kill`](crate::GreenThread::kill) or [`Timeout`](crate::Timeout)
/// aimed at the caller while the future is pending unwinds from
/// `block_on`; the future is dropped on the way out, as when a task is
/// cancelled in an async runtime.
///
/// # Examples
/// ```
/// assert_eq!(green::block_on(async { 6 * 7 }), 42);
/// ```
///
/// A future completed by a green thread of the same hub:
///
/// ```
/// use std::future::poll_fn;
/// use std::sync::{Arc, Mutex};
/// use std::task::{Poll, Waker};
///
/// let slot: Arc<Mutex<(Option<u32>, Option<Waker>)>> = Default::default();
/// let s = slot.clone();
/// green::spawn(move || {
///     let mut g = s.lock().unwrap();
///     g.0 = Some(7);
///     if let Some(w) = g.1.take() {
///         w.wake();
///     }
/// });
/// let v = green::block_on(poll_fn(|cx| {
///     let mut g = slot.lock().unwrap();
///     match g.0.take() {
///         Some(v) => Poll::Ready(v),
///         None => {
///             g.1 = Some(cx.waker().clone());
///             Poll::Pending
///         }
///     }
/// }));
/// assert_eq!(v, 7);
/// ```
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    if let Some(h) = hub::try_hub() {
        let waker = h.unparker().into_waker();
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            // Spurious returns just poll again. Kills and timeouts unwind
            // from here. (A closing hub parks by blocking the OS thread;
            // the waker still reaches it.)
            crate::wait::park(None, hub::Blocker::of(hub::Kind::Future));
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

/// Wakes a plain OS thread parked in [`block_on`].
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

//! Multi-producer, single-consumer FIFO queue communication primitives: a
//! cooperative mirror of [`std::sync::mpsc`].
//!
//! The names, signatures, error types (re-exported from std) and disconnect
//! rules are std's. The difference is how a blocked call waits: a green
//! thread parks and its hub runs other green threads meanwhile; a plain OS
//! thread parks as with std. So a channel connects green threads of one hub,
//! green threads on different OS threads, and plain OS threads, in any mix.
//!
//! - [`channel`] makes an unbounded channel: [`Sender::send`] never blocks.
//! - [`sync_channel`] makes a bounded one: [`SyncSender::send`] blocks while
//!   the buffer is full; a bound of 0 makes a rendezvous channel, where each
//!   send waits until the receiver takes the message.
//!
//! Disconnection: once every sender is gone, [`Receiver::recv`] returns the
//! buffered messages, then [`RecvError`] (a receiver blocked at that moment
//! wakes up). Once the receiver is gone, sends fail and hand the message
//! back (blocked senders wake up with [`SendError`]), and buffered messages
//! are dropped.
//!
//! The channel shares its core with [`green::queue`](crate::queue); a green
//! thread killed while it waits in `recv` leaves the channel as if it had
//! never waited: a message it had already been handed goes to the next
//! receive. A sender killed while it waits in `send` takes its message down
//! with it if the message was not taken yet; if it was, the message is
//! delivered although the kill (or [`Timeout`](crate::Timeout)) unwinds
//! the sender, as an `Ok` from `send` never meant it was received.
//!
//! # Examples
//! ```
//! use green::sync::mpsc;
//!
//! let (tx, rx) = mpsc::channel();
//! for id in 0..3 {
//!     let tx = tx.clone();
//!     green::spawn(move || tx.send(id).unwrap());
//! }
//! drop(tx);
//! // The root parks in `recv`, and the green threads run meanwhile.
//! let mut got: Vec<i32> = rx.iter().collect();
//! got.sort();
//! assert_eq!(got, [0, 1, 2]);
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use std::sync::mpsc::{RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError};

use crate::wait::chan::{Block, Chan, Fifo, GetFail, PutFail};

/// What the handles of one channel share.
struct Shared<T> {
    chan: Chan<T, Fifo<T>>,
    /// Live `Sender`s or `SyncSender`s; the last one to go closes the
    /// channel for the receiver.
    senders: AtomicUsize,
}

/// A counted sending handle, the body of [`Sender`] and [`SyncSender`].
struct Tx<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Tx<T> {
    #[inline(always)]
    fn put(&self, t: T, block: Block) -> Result<(), PutFail<T>> {
        self.shared.chan.put(t, block)
    }
}

impl<T> Clone for Tx<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Tx {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Tx<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.chan.close_putters();
        }
    }
}

fn new_channel<T>(bound: Option<usize>) -> (Tx<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        chan: Chan::new(bound, false, true),
        senders: AtomicUsize::new(1),
    });
    let rx = Receiver {
        shared: shared.clone(),
        _not_sync: PhantomData,
    };
    (Tx { shared }, rx)
}

/// Creates a new asynchronous channel, returning the sender/receiver halves.
///
/// All data sent on the [`Sender`] will become available on the
/// [`Receiver`] in the same order as it was sent, and no
/// [`send`](Sender::send) will block the calling thread (this channel has an
/// "infinite buffer"). [`recv`](Receiver::recv) parks the caller until a
/// message is available while there is at least one [`Sender`] alive.
///
/// # Examples
/// ```
/// use green::sync::mpsc::channel;
///
/// let (tx, rx) = channel();
/// // A plain OS thread sends; the root's hub receives.
/// std::thread::spawn(move || tx.send(3).unwrap());
/// assert_eq!(rx.recv(), Ok(3));
/// ```
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = new_channel(None);
    (Sender { tx }, rx)
}

/// Creates a new synchronous, bounded channel.
///
/// Data sent on the [`SyncSender`] becomes available on the [`Receiver`] in
/// the same order as it was sent. [`send`](SyncSender::send) parks the
/// caller while the buffer already holds `bound` messages. A `bound` of 0
/// makes a rendezvous channel: each send parks until the receiver takes the
/// message.
///
/// # Examples
/// ```
/// use green::sync::mpsc::sync_channel;
///
/// let (tx, rx) = sync_channel(0);
/// let sender = green::spawn(move || {
///     tx.send(1).unwrap(); // returns once the root has received it
///     "sent"
/// });
/// assert_eq!(rx.recv(), Ok(1));
/// assert_eq!(sender.wait(), "sent");
/// ```
pub fn sync_channel<T>(bound: usize) -> (SyncSender<T>, Receiver<T>) {
    let (tx, rx) = new_channel(Some(bound));
    (SyncSender { tx }, rx)
}

/// The sending half of an asynchronous [`channel`]. It can be cloned to
/// send from many green threads or OS threads.
///
/// As std's, it is `Send` and `Sync` when the messages are `Send`, and
/// neither otherwise:
///
/// ```compile_fail,E0277
/// fn assert_send<T: Send>() {}
/// assert_send::<green::sync::mpsc::Sender<std::rc::Rc<u8>>>();
/// ```
///
/// # Examples
/// ```
/// use green::sync::mpsc::channel;
///
/// let (tx, rx) = channel();
/// let tx2 = tx.clone();
/// green::spawn(move || tx.send(1).unwrap());
/// green::spawn(move || tx2.send(2).unwrap());
/// let mut got = [rx.recv().unwrap(), rx.recv().unwrap()];
/// got.sort();
/// assert_eq!(got, [1, 2]);
/// ```
pub struct Sender<T> {
    tx: Tx<T>,
}

impl<T> Sender<T> {
    /// Attempts to send a value on this channel, returning it back if it
    /// could not be sent.
    ///
    /// A successful send means the receiver had not hung up yet; it may
    /// still hang up before receiving the value. This method never blocks.
    ///
    /// # Errors
    /// [`SendError`], holding `t`, if the [`Receiver`] has been dropped.
    ///
    /// # Examples
    /// ```
    /// use green::sync::mpsc::channel;
    ///
    /// let (tx, rx) = channel();
    /// assert!(tx.send(1).is_ok());
    /// drop(rx);
    /// assert_eq!(tx.send(2).unwrap_err().0, 2);
    /// ```
    #[inline]
    pub fn send(&self, t: T) -> Result<(), SendError<T>> {
        match self.tx.put(t, Block::Forever) {
            Ok(()) => Ok(()),
            Err(PutFail::Closed(t) | PutFail::Full(t)) => Err(SendError(t)),
        }
    }
}

impl<T> Clone for Sender<T> {
    /// Another sender for the same channel.
    fn clone(&self) -> Self {
        Sender {
            tx: self.tx.clone(),
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// The sending half of a bounded [`sync_channel`]. It can be cloned to
/// send from many green threads or OS threads.
///
/// # Examples
/// ```
/// use green::sync::mpsc::sync_channel;
///
/// let (tx, rx) = sync_channel(1);
/// let tx2 = tx.clone();
/// let a = green::spawn(move || tx.send('a').unwrap());
/// let b = green::spawn(move || tx2.send('b').unwrap());
/// green::yield_now(); // 'a' fills the buffer, the second sender waits
/// assert_eq!(rx.recv(), Ok('a'));
/// assert_eq!(rx.recv(), Ok('b'));
/// a.wait();
/// b.wait();
/// ```
pub struct SyncSender<T> {
    tx: Tx<T>,
}

impl<T> SyncSender<T> {
    /// Sends a value on this channel, parking the caller while the buffer
    /// is full (on a rendezvous channel: until the receiver takes it).
    ///
    /// # Errors
    /// [`SendError`], holding `t`, if the [`Receiver`] has been dropped,
    /// also while this call waited.
    ///
    /// # Examples
    /// ```
    /// use green::sync::mpsc::sync_channel;
    ///
    /// let (tx, rx) = sync_channel(1);
    /// tx.send(1).unwrap();
    /// let sender = green::spawn(move || tx.send(2)); // waits: the buffer is full
    /// green::yield_now();
    /// drop(rx); // wakes the sender with its value
    /// assert_eq!(sender.wait().unwrap_err().0, 2);
    /// ```
    #[inline]
    pub fn send(&self, t: T) -> Result<(), SendError<T>> {
        match self.tx.put(t, Block::Forever) {
            Ok(()) => Ok(()),
            Err(PutFail::Closed(t) | PutFail::Full(t)) => Err(SendError(t)),
        }
    }

    /// Attempts to send a value on this channel without blocking.
    ///
    /// # Errors
    /// [`TrySendError::Full`] if the buffer is full (on a rendezvous
    /// channel: if the receiver is not waiting in a receive), and
    /// [`TrySendError::Disconnected`] if the [`Receiver`] has been dropped;
    /// both hold `t`.
    ///
    /// # Examples
    /// ```
    /// use green::sync::mpsc::{sync_channel, TrySendError};
    ///
    /// let (tx, rx) = sync_channel(1);
    /// assert_eq!(tx.try_send(1), Ok(()));
    /// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
    /// drop(rx);
    /// assert_eq!(tx.try_send(3), Err(TrySendError::Disconnected(3)));
    /// ```
    pub fn try_send(&self, t: T) -> Result<(), TrySendError<T>> {
        match self.tx.put(t, Block::No) {
            Ok(()) => Ok(()),
            Err(PutFail::Full(t)) => Err(TrySendError::Full(t)),
            Err(PutFail::Closed(t)) => Err(TrySendError::Disconnected(t)),
        }
    }
}

impl<T> Clone for SyncSender<T> {
    /// Another sender for the same channel.
    fn clone(&self) -> Self {
        SyncSender {
            tx: self.tx.clone(),
        }
    }
}

impl<T> fmt::Debug for SyncSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncSender").finish_non_exhaustive()
    }
}

/// The receiving half of a [`channel`] or [`sync_channel`]. It is `Send`
/// (when the messages are) but, as std's, not `Sync`: one context receives
/// at a time.
///
/// ```compile_fail
/// fn assert_sync<T: Sync>() {}
/// assert_sync::<green::sync::mpsc::Receiver<u8>>();
/// ```
///
/// nor `Send` when the messages are not:
///
/// ```compile_fail,E0277
/// fn assert_send<T: Send>() {}
/// assert_send::<green::sync::mpsc::Receiver<std::rc::Rc<u8>>>();
/// ```
///
/// # Examples
/// ```
/// use green::sync::mpsc::channel;
///
/// let (tx, rx) = channel();
/// let receiver = std::thread::spawn(move || {
///     // A green thread on another OS thread's hub receives.
///     green::spawn(move || rx.recv().unwrap()).wait()
/// });
/// tx.send("hi").unwrap();
/// assert_eq!(receiver.join().unwrap(), "hi");
/// ```
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// std's receiver's auto traits: `Send`, not `Sync`, unwind safe (a
    /// `Cell` would make it not `RefUnwindSafe`, unlike std's).
    _not_sync: PhantomData<std::sync::mpsc::Receiver<()>>,
}

impl<T> Receiver<T> {
    /// Attempts to return a pending value on this receiver without
    /// blocking.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] if no message is waiting (on a rendezvous
    /// channel: no sender is waiting in a send) and
    /// [`TryRecvError::Disconnected`] if, moreover, every sender is gone.
    ///
    /// # Examples
    /// ```
    /// use green::sync::mpsc::{channel, TryRecvError};
    ///
    /// let (tx, rx) = channel();
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// tx.send(1).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        match self.shared.chan.get(Block::No) {
            Ok(t) => Ok(t),
            Err(GetFail::Empty) => Err(TryRecvError::Empty),
            Err(GetFail::Closed) => Err(TryRecvError::Disconnected),
        }
    }

    /// Attempts to wait for a value on this receiver, returning an error if
    /// the corresponding channel has hung up.
    ///
    /// Parks the caller until a message arrives. Messages sent before the
    /// last sender went are still received; after them, `recv` fails.
    ///
    /// # Errors
    /// [`RecvError`] once the buffer is empty and every sender is gone,
    /// also if the last one goes while this call waits.
    ///
    /// # Examples
    /// ```
    /// use green::sync::mpsc::{channel, RecvError};
    ///
    /// let (tx, rx) = channel();
    /// green::spawn(move || {
    ///     tx.send(1).unwrap();
    ///     // tx is dropped here: the channel hangs up
    /// });
    /// assert_eq!(rx.recv(), Ok(1));
    /// assert_eq!(rx.recv(), Err(RecvError));
    /// ```
    #[inline]
    pub fn recv(&self) -> Result<T, RecvError> {
        match self.shared.chan.get(Block::Forever) {
            Ok(t) => Ok(t),
            Err(GetFail::Closed | GetFail::Empty) => Err(RecvError),
        }
    }

    /// Attempts to wait for a value on this receiver, returning an error if
    /// the corresponding channel has hung up, or if it waits more than
    /// `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`] if no message came within `timeout`,
    /// [`RecvTimeoutError::Disconnected`] once the buffer is empty and every
    /// sender is gone.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use green::sync::mpsc::{channel, RecvTimeoutError};
    ///
    /// let (tx, rx) = channel::<u8>();
    /// let r = rx.recv_timeout(Duration::from_millis(10));
    /// assert_eq!(r, Err(RecvTimeoutError::Timeout));
    /// drop(tx);
    /// let r = rx.recv_timeout(Duration::from_millis(10));
    /// assert_eq!(r, Err(RecvTimeoutError::Disconnected));
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        match self.shared.chan.get(Block::timeout(timeout)) {
            Ok(t) => Ok(t),
            Err(GetFail::Empty) => Err(RecvTimeoutError::Timeout),
            Err(GetFail::Closed) => Err(RecvTimeoutError::Disconnected),
        }
    }

    /// Returns an iterator that will block waiting for messages, but never
    /// panic. It returns `None` when the channel has hung up.
    ///
    /// # Examples
    /// ```
    /// use green::sync::mpsc::channel;
    ///
    /// let (tx, rx) = channel();
    /// green::spawn(move || {
    ///     for i in 1..=3 {
    ///         tx.send(i).unwrap();
    ///     }
    /// });
    /// assert_eq!(rx.iter().sum::<i32>(), 6);
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// Returns an iterator that will attempt to yield all pending values
    /// without blocking. It returns `None` when no message is waiting,
    /// whether or not the channel has hung up.
    ///
    /// # Examples
    /// ```
    /// use green::sync::mpsc::channel;
    ///
    /// let (tx, rx) = channel();
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2]);
    /// assert_eq!(rx.try_iter().next(), None); // tx is alive but idle
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // Dropped here, after the channel's lock is released: a message's
        // destructor may use the channel.
        let buffered = self.shared.chan.close_getters();
        drop(buffered);
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

/// An iterator over messages on a [`Receiver`], created by
/// [`Receiver::iter`]; it parks for each message and ends when the channel
/// hangs up.
///
/// It borrows the receiver, which is not `Sync`, so, as std's, it is not
/// `Send`:
///
/// ```compile_fail,E0277
/// fn assert_send<T: Send>() {}
/// assert_send::<green::sync::mpsc::Iter<'static, u8>>();
/// ```
///
/// # Examples
/// ```
/// use green::sync::mpsc::channel;
///
/// let (tx, rx) = channel();
/// tx.send('x').unwrap();
/// drop(tx);
/// let mut it = rx.iter();
/// assert_eq!(it.next(), Some('x'));
/// assert_eq!(it.next(), None);
/// ```
pub struct Iter<'a, T: 'a> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<T> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").field("rx", self.rx).finish()
    }
}

/// An iterator that takes the messages already waiting on a [`Receiver`],
/// created by [`Receiver::try_iter`]; it never parks.
///
/// # Examples
/// ```
/// use green::sync::mpsc::channel;
///
/// let (tx, rx) = channel();
/// tx.send(1).unwrap();
/// assert_eq!(rx.try_iter().count(), 1);
/// ```
pub struct TryIter<'a, T: 'a> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

impl<T> fmt::Debug for TryIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryIter").field("rx", self.rx).finish()
    }
}

/// An owning iterator over messages on a [`Receiver`], created by its
/// [`IntoIterator`] implementation; it parks for each message and ends
/// when the channel hangs up.
///
/// # Examples
/// ```
/// use green::sync::mpsc::channel;
///
/// let (tx, rx) = channel();
/// tx.send(1).unwrap();
/// tx.send(2).unwrap();
/// drop(tx);
/// let all: Vec<i32> = rx.into_iter().collect();
/// assert_eq!(all, [1, 2]);
/// ```
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<T> fmt::Debug for IntoIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntoIter").field("rx", &self.rx).finish()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}

impl<T> crate::wait_any::sealed::Sealed for Receiver<T> {
    fn item(&self) -> crate::wait_any::sealed::Item<'_> {
        crate::wait_any::sealed::Item::Watch(self.shared.chan.watched())
    }
}

/// Ready while a `recv` would not wait: a message can be taken, or every
/// sender has gone (the `recv` then fails at once).
impl<T> crate::Waitable for Receiver<T> {}

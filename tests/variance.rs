//! The mirrors' variance and auto traits are std's.
//!
//! Variance: as in std's `assert_covariance` tests, a function that turns a
//! type over `'long` into the same type over `'short` compiles only if the
//! type is covariant there; there is one for every parameter in which
//! std's type is covariant. Where std's type is invariant, green's must be
//! too (a covariant write guard would be unsound): `compile_fail` doctests
//! on the types check that.
//!
//! Auto traits: each mirror is compared with std's own type for `Send`,
//! `Sync`, `Unpin`, `UnwindSafe` and `RefUnwindSafe`, with type parameters
//! that have and lack each of them, so that a trait green has and std has
//! not fails as well as one green lacks.

// The covariance functions are checked by compiling them.
#![allow(dead_code)]

use std::cell::{Cell, UnsafeCell};
use std::marker::{PhantomData, PhantomPinned};
use std::panic::{RefUnwindSafe, UnwindSafe};

use green::sync::{RwLock, RwLockReadGuard};

/// Which of the auto traits a type has.
#[derive(Debug, PartialEq, Eq)]
struct AutoTraits {
    send: bool,
    sync: bool,
    unpin: bool,
    unwind_safe: bool,
    ref_unwind_safe: bool,
}

/// Whether `$t` implements `$tr`, as a constant: the inherent `IMPLS`
/// exists only where the bound holds, and then shadows the trait's `false`.
macro_rules! impls {
    ($t:ty: $tr:path) => {{
        struct Probe<X: ?Sized>(PhantomData<X>);
        trait Fallback {
            const IMPLS: bool = false;
        }
        impl<X: ?Sized> Fallback for Probe<X> {}
        impl<X: ?Sized + $tr> Probe<X> {
            const IMPLS: bool = true;
        }
        Probe::<$t>::IMPLS
    }};
}

macro_rules! auto_traits {
    ($t:ty) => {
        AutoTraits {
            send: impls!($t: Send),
            sync: impls!($t: Sync),
            unpin: impls!($t: Unpin),
            unwind_safe: impls!($t: UnwindSafe),
            ref_unwind_safe: impls!($t: RefUnwindSafe),
        }
    };
}

/// Asserts that green's type has std's auto traits; with `<T>`, for each
/// kind of parameter `T` below.
macro_rules! assert_std_auto_traits {
    (<$T:ident> $std:ty, $green:ty) => {{
        assert_std_auto_traits!(<$T = u32> $std, $green);
        assert_std_auto_traits!(<$T = SyncOnly> $std, $green);
        assert_std_auto_traits!(<$T = Cell<u32>> $std, $green);
        assert_std_auto_traits!(<$T = Neither> $std, $green);
        assert_std_auto_traits!(<$T = PhantomPinned> $std, $green);
        assert_std_auto_traits!(<$T = &'static mut u32> $std, $green);
        assert_std_auto_traits!(<$T = NotRefUnwindSafe> $std, $green);
    }};
    (<$T:ident = $param:ty> $std:ty, $green:ty) => {{
        type $T = $param;
        assert_eq!(
            auto_traits!($green),
            auto_traits!($std),
            "{} differs from {} with {} = {}",
            stringify!($green),
            stringify!($std),
            stringify!($T),
            stringify!($param),
        );
    }};
    ($std:ty, $green:ty) => {
        assert_eq!(
            auto_traits!($green),
            auto_traits!($std),
            "{} differs from {}",
            stringify!($green),
            stringify!($std),
        );
    };
}

/// `Sync`, not `Send`.
struct SyncOnly(PhantomData<*const ()>);
// SAFETY: a marker with no data.
unsafe impl Sync for SyncOnly {}

/// Neither `Send` nor `Sync` (but unwind safe).
struct Neither(PhantomData<*const ()>);

/// `Send`, `Sync` and `UnwindSafe`, not `RefUnwindSafe`.
struct NotRefUnwindSafe(UnsafeCell<()>);
// SAFETY: the cell holds `()` and is never accessed.
unsafe impl Sync for NotRefUnwindSafe {}

#[test]
fn rwlock_read_guard_is_covariant_in_t() {
    // std's test_read_guard_covariance.
    fn do_stuff<'a>(_: RwLockReadGuard<'_, &'a i32>, _: &'a i32) {}
    let j = 5;
    let lock = RwLock::new(&j);
    {
        let i = 6;
        do_stuff(lock.read().unwrap(), &i);
    }
    drop(lock);
}

/// Compiles only where std's types are covariant: in every lifetime of a
/// borrowing guard, iterator or handle, and in `T` of `RwLockReadGuard`.
fn assert_covariance() {
    use green::sync::mpsc::{Iter, TryIter};
    use green::sync::{MutexGuard, RwLockWriteGuard};
    use green::thread::ScopedJoinHandle;

    fn mutex_guard<'new>(g: MutexGuard<'static, ()>) -> MutexGuard<'new, ()> {
        g
    }
    fn read_guard<'new>(g: RwLockReadGuard<'static, ()>) -> RwLockReadGuard<'new, ()> {
        g
    }
    fn read_guard_t<'a, 'new>(
        g: RwLockReadGuard<'a, &'static str>,
    ) -> RwLockReadGuard<'a, &'new str> {
        g
    }
    fn write_guard<'new>(g: RwLockWriteGuard<'static, ()>) -> RwLockWriteGuard<'new, ()> {
        g
    }
    fn iter<'new>(i: Iter<'static, ()>) -> Iter<'new, ()> {
        i
    }
    fn try_iter<'new>(i: TryIter<'static, ()>) -> TryIter<'new, ()> {
        i
    }
    fn scoped_join_handle<'new>(h: ScopedJoinHandle<'static, ()>) -> ScopedJoinHandle<'new, ()> {
        h
    }
    fn tcp_incoming<'new>(i: green::net::Incoming<'static>) -> green::net::Incoming<'new> {
        i
    }
    fn unix_incoming<'new>(
        i: green::os::unix::net::Incoming<'static>,
    ) -> green::os::unix::net::Incoming<'new> {
        i
    }
}

#[test]
fn locks_and_guards_have_std_auto_traits() {
    use green::sync as g;
    use std::sync as s;
    assert_std_auto_traits!(<T> s::Mutex<T>, g::Mutex<T>);
    assert_std_auto_traits!(<T> s::MutexGuard<'static, T>, g::MutexGuard<'static, T>);
    assert_std_auto_traits!(<T> s::RwLock<T>, g::RwLock<T>);
    assert_std_auto_traits!(<T> s::RwLockReadGuard<'static, T>, g::RwLockReadGuard<'static, T>);
    assert_std_auto_traits!(<T> s::RwLockWriteGuard<'static, T>, g::RwLockWriteGuard<'static, T>);
    assert_std_auto_traits!(s::Condvar, g::Condvar);
    assert_std_auto_traits!(s::WaitTimeoutResult, g::WaitTimeoutResult);
    assert_std_auto_traits!(s::Barrier, g::Barrier);
    assert_std_auto_traits!(s::BarrierWaitResult, g::BarrierWaitResult);
}

#[test]
fn once_types_have_std_auto_traits() {
    use green::sync as g;
    use std::sync as s;
    assert_std_auto_traits!(s::Once, g::Once);
    assert_std_auto_traits!(s::OnceState, g::OnceState);
    assert_std_auto_traits!(<T> s::OnceLock<T>, g::OnceLock<T>);
    assert_std_auto_traits!(<T> s::LazyLock<T>, g::LazyLock<T>);
    assert_std_auto_traits!(<F> s::LazyLock<u32, F>, g::LazyLock<u32, F>);
}

#[test]
fn mpsc_types_have_std_auto_traits() {
    use green::sync::mpsc as g;
    use std::sync::mpsc as s;
    assert_std_auto_traits!(<T> s::Sender<T>, g::Sender<T>);
    assert_std_auto_traits!(<T> s::SyncSender<T>, g::SyncSender<T>);
    assert_std_auto_traits!(<T> s::Receiver<T>, g::Receiver<T>);
    assert_std_auto_traits!(<T> s::Iter<'static, T>, g::Iter<'static, T>);
    assert_std_auto_traits!(<T> s::TryIter<'static, T>, g::TryIter<'static, T>);
    assert_std_auto_traits!(<T> s::IntoIter<T>, g::IntoIter<T>);
}

#[test]
fn thread_types_have_std_auto_traits() {
    use green::thread as g;
    use std::thread as s;
    assert_std_auto_traits!(<T> s::JoinHandle<T>, g::JoinHandle<T>);
    assert_std_auto_traits!(<T> s::ScopedJoinHandle<'static, T>, g::ScopedJoinHandle<'static, T>);
    assert_std_auto_traits!(s::Scope<'static, 'static>, g::Scope<'static, 'static>);
    assert_std_auto_traits!(s::Thread, g::Thread);
    assert_std_auto_traits!(s::ThreadId, g::ThreadId);
    assert_std_auto_traits!(s::Builder, g::Builder);
}

#[test]
fn net_types_have_std_auto_traits() {
    use green::net as g;
    use std::net as s;
    assert_std_auto_traits!(s::TcpStream, g::TcpStream);
    assert_std_auto_traits!(s::TcpListener, g::TcpListener);
    assert_std_auto_traits!(s::UdpSocket, g::UdpSocket);
    assert_std_auto_traits!(s::Incoming<'static>, g::Incoming<'static>);
}

#[test]
fn unix_net_types_have_std_auto_traits() {
    use green::os::unix::net as g;
    use std::os::unix::net as s;
    assert_std_auto_traits!(s::UnixStream, g::UnixStream);
    assert_std_auto_traits!(s::UnixListener, g::UnixListener);
    assert_std_auto_traits!(s::UnixDatagram, g::UnixDatagram);
    assert_std_auto_traits!(s::Incoming<'static>, g::Incoming<'static>);
}

#[test]
fn process_and_pipe_types_have_std_auto_traits() {
    use green::process as g;
    use std::process as s;
    assert_std_auto_traits!(s::Command, g::Command);
    assert_std_auto_traits!(s::Child, g::Child);
    assert_std_auto_traits!(s::ChildStdin, g::ChildStdin);
    assert_std_auto_traits!(s::ChildStdout, g::ChildStdout);
    assert_std_auto_traits!(s::ChildStderr, g::ChildStderr);
    assert_std_auto_traits!(std::io::PipeReader, green::io::PipeReader);
    assert_std_auto_traits!(std::io::PipeWriter, green::io::PipeWriter);
}

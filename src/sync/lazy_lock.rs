//! [`LazyLock`]: a value initialized on first access, by its initializer
//! run through a [`Once`]; callers that arrive during the run park in the
//! `Once`.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::panic::{RefUnwindSafe, UnwindSafe};

use super::Once;

/// What a [`LazyLock`] holds.
enum Data<T, F> {
    Init(F),
    Value(T),
    /// The initializer was taken and did not return.
    Poisoned,
}

/// A value which is initialized on the first access; callers that arrive
/// while it is being initialized park.
///
/// The mirror of [`std::sync::LazyLock`]: usable in statics, dereferences
/// to the value, runs the initializer once. The initializer may park.
///
/// # Poisoning
/// If the initializer panics, the panic propagates and the `LazyLock` is
/// poisoned, as with std: later accesses panic. Unlike [`Once`], this also
/// happens when the initializing green thread is killed or timed out: the
/// initializer is an `FnOnce`, consumed by the run that did not finish, so
/// there is nothing left to run.
///
/// As std's, it is `Sync` only when the value is `Send` and `Sync` and the
/// initializer is `Send`:
///
/// ```compile_fail,E0277
/// fn assert_sync<T: Sync>() {}
/// assert_sync::<green::sync::LazyLock<std::cell::Cell<u8>>>();
/// ```
///
/// # Examples
/// ```
/// use std::collections::HashMap;
/// use green::sync::LazyLock;
///
/// static TABLE: LazyLock<HashMap<u32, &str>> = LazyLock::new(|| {
///     HashMap::from([(1, "one"), (2, "two")])
/// });
///
/// assert_eq!(TABLE[&1], "one");
/// ```
pub struct LazyLock<T, F = fn() -> T> {
    once: Once,
    /// # Invariant
    /// Changed only by the initializer `once` runs, before `once`
    /// completes; after that only through `&mut self`.
    data: UnsafeCell<Data<T, F>>,
}

// SAFETY: the initializer runs on one thread at a time (`F: Send`), moves
// its value into the cell (`T: Send`), and the value is then shared
// (`T: Sync`). Same bounds as std.
unsafe impl<T: Sync + Send, F: Send> Sync for LazyLock<T, F> {}

impl<T: RefUnwindSafe + UnwindSafe, F: UnwindSafe> RefUnwindSafe for LazyLock<T, F> {}

impl<T, F: FnOnce() -> T> LazyLock<T, F> {
    /// Creates a new lazy value with the given initializing function.
    ///
    /// # Examples
    /// ```
    /// use green::sync::LazyLock;
    ///
    /// let hello = "Hello, World!".to_string();
    /// let lazy = LazyLock::new(|| hello.to_uppercase());
    /// assert_eq!(&*lazy, "HELLO, WORLD!");
    /// ```
    #[inline]
    pub const fn new(f: F) -> LazyLock<T, F> {
        LazyLock {
            once: Once::new(),
            data: UnsafeCell::new(Data::Init(f)),
        }
    }

    /// Forces the evaluation of this lazy value and returns a reference to
    /// the result. This is equivalent to the `Deref` impl, but is explicit.
    ///
    /// If another context is running the initializer, this parks until it
    /// is done.
    ///
    /// # Panics
    /// If the initializer panics, the panic is propagated and the
    /// `LazyLock` is poisoned; forcing a poisoned `LazyLock` panics with
    /// "LazyLock instance has previously been poisoned". Panics when it must
    /// wait and is called from the hub itself (a timer callback).
    ///
    /// # Examples
    /// ```
    /// use green::sync::LazyLock;
    ///
    /// let lazy = LazyLock::new(|| 92);
    /// assert_eq!(LazyLock::force(&lazy), &92);
    /// assert_eq!(&*lazy, &92);
    /// ```
    pub fn force(this: &LazyLock<T, F>) -> &T {
        if !this.once.is_completed() {
            this.once.call_once_force(|_| {
                // SAFETY: `once` runs this initializer alone, and nothing
                // else touches the data before `once` completes.
                let old = unsafe { std::mem::replace(&mut *this.data.get(), Data::Poisoned) };
                let Data::Init(f) = old else {
                    panic!("LazyLock instance has previously been poisoned");
                };
                let value = f();
                // SAFETY: as above; `f` has returned, so no reference into
                // the data is alive.
                unsafe { *this.data.get() = Data::Value(value) };
            });
        }
        LazyLock::get(this).expect("a complete LazyLock holds a value")
    }

    /// Forces the evaluation of this lazy value and returns a mutable
    /// reference to the result.
    ///
    /// # Panics
    /// As [`force`](LazyLock::force).
    ///
    /// # Examples
    /// ```
    /// use green::sync::LazyLock;
    ///
    /// let mut lazy = LazyLock::new(|| 92);
    /// *LazyLock::force_mut(&mut lazy) += 1;
    /// assert_eq!(*lazy, 93);
    /// ```
    pub fn force_mut(this: &mut LazyLock<T, F>) -> &mut T {
        LazyLock::force(this);
        LazyLock::get_mut(this).expect("a complete LazyLock holds a value")
    }
}

impl<T, F> LazyLock<T, F> {
    /// Returns a reference to the value if initialized, or `None` if not.
    /// Never runs the initializer and never waits.
    ///
    /// # Examples
    /// ```
    /// use green::sync::LazyLock;
    ///
    /// let lazy = LazyLock::new(|| 92);
    /// assert_eq!(LazyLock::get(&lazy), None);
    /// let _ = LazyLock::force(&lazy);
    /// assert_eq!(LazyLock::get(&lazy), Some(&92));
    /// ```
    #[inline]
    pub fn get(this: &LazyLock<T, F>) -> Option<&T> {
        if !this.once.is_completed() {
            return None;
        }
        // SAFETY: complete: the value was written before (Acquire) and is
        // only changed through `&mut self` from now on.
        match unsafe { &*this.data.get() } {
            Data::Value(v) => Some(v),
            _ => None,
        }
    }

    /// Returns a mutable reference to the value if initialized, or `None`
    /// if not. Never runs the initializer.
    ///
    /// # Examples
    /// ```
    /// use green::sync::LazyLock;
    ///
    /// let mut lazy = LazyLock::new(|| 92);
    /// assert_eq!(LazyLock::get_mut(&mut lazy), None);
    /// let _ = LazyLock::force(&lazy);
    /// *LazyLock::get_mut(&mut lazy).unwrap() = 44;
    /// assert_eq!(*lazy, 44);
    /// ```
    #[inline]
    pub fn get_mut(this: &mut LazyLock<T, F>) -> Option<&mut T> {
        match this.data.get_mut() {
            Data::Value(v) => Some(v),
            _ => None,
        }
    }
}

impl<T, F: FnOnce() -> T> Deref for LazyLock<T, F> {
    type Target = T;

    /// Dereferences the value, forcing its evaluation first.
    ///
    /// # Panics
    /// As [`LazyLock::force`].
    #[inline]
    fn deref(&self) -> &T {
        LazyLock::force(self)
    }
}

impl<T, F: FnOnce() -> T> DerefMut for LazyLock<T, F> {
    /// Mutably dereferences the value, forcing its evaluation first.
    ///
    /// # Panics
    /// As [`LazyLock::force`].
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        LazyLock::force_mut(self)
    }
}

impl<T: Default> Default for LazyLock<T> {
    /// Creates a new lazy value using `Default` as the initializing
    /// function.
    #[inline]
    fn default() -> LazyLock<T> {
        LazyLock::new(T::default)
    }
}

impl<T: fmt::Debug, F> fmt::Debug for LazyLock<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("LazyLock");
        match LazyLock::get(self) {
            Some(v) => d.field(v),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}

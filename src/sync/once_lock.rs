//! [`OnceLock`]: a cell written once, by one initializer run through a
//! [`Once`]; callers that arrive during the run park in the `Once`.

use std::cell::UnsafeCell;
use std::fmt;
use std::panic::{RefUnwindSafe, UnwindSafe};

use super::Once;

/// A synchronization primitive which can be written to only once; callers
/// that arrive while it is being initialized park.
///
/// The mirror of [`std::sync::OnceLock`]. Many contexts may call
/// [`get_or_init`](OnceLock::get_or_init) at once: one initializer runs, the
/// others park until it is done. The initializer may park too.
///
/// If the initializer panics, the panic propagates and the cell stays
/// empty; the next caller runs its own initializer (as with std). The same
/// holds when the initializing green thread is killed or timed out.
///
/// Like std's, it is `Sync` only when `T` is both `Send` and `Sync`:
///
/// ```compile_fail,E0277
/// fn assert_sync<T: Sync>() {}
/// assert_sync::<green::sync::OnceLock<std::cell::Cell<u32>>>();
/// ```
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use green::sync::OnceLock;
///
/// static CELL: OnceLock<usize> = OnceLock::new();
///
/// let a = green::spawn(|| {
///     *CELL.get_or_init(|| {
///         green::sleep(Duration::from_millis(1)); // parks; `b` runs
///         92
///     })
/// });
/// let b = green::spawn(|| *CELL.get_or_init(|| unreachable!("`a` initializes")));
/// assert_eq!(a.wait(), 92);
/// assert_eq!(b.wait(), 92);
/// ```
pub struct OnceLock<T> {
    once: Once,
    /// # Invariant
    /// Written only by the initializer `once` runs, before `once`
    /// completes; after that only through `&mut self`.
    value: UnsafeCell<Option<T>>,
}

// SAFETY: the value is written once and then shared: `&OnceLock` moves a
// `T` in from the initializing thread (`T: Send`) and shares `&T` between
// threads (`T: Sync`). Same bounds as std.
unsafe impl<T: Sync + Send> Sync for OnceLock<T> {}
// SAFETY: owning the cell means owning the `T`.
unsafe impl<T: Send> Send for OnceLock<T> {}

impl<T: RefUnwindSafe + UnwindSafe> RefUnwindSafe for OnceLock<T> {}
impl<T: UnwindSafe> UnwindSafe for OnceLock<T> {}

impl<T> OnceLock<T> {
    /// Creates a new uninitialized cell.
    ///
    /// # Examples
    /// ```
    /// static CELL: green::sync::OnceLock<u32> = green::sync::OnceLock::new();
    /// assert!(CELL.get().is_none());
    /// ```
    #[inline]
    #[must_use]
    pub const fn new() -> OnceLock<T> {
        OnceLock {
            once: Once::new(),
            value: UnsafeCell::new(None),
        }
    }

    /// Gets the reference to the underlying value, or `None` if the cell
    /// is uninitialized or being initialized. Never waits.
    ///
    /// # Examples
    /// ```
    /// let cell = green::sync::OnceLock::new();
    /// assert!(cell.get().is_none());
    /// let _ = cell.set(1);
    /// assert_eq!(cell.get(), Some(&1));
    /// ```
    #[inline]
    pub fn get(&self) -> Option<&T> {
        if self.once.is_completed() {
            // SAFETY: complete: the value was written before (Acquire) and
            // is only changed through `&mut self` from now on.
            unsafe { (*self.value.get()).as_ref() }
        } else {
            None
        }
    }

    /// Gets the mutable reference to the underlying value, or `None` if
    /// the cell is uninitialized.
    ///
    /// # Examples
    /// ```
    /// let mut cell = green::sync::OnceLock::from(1);
    /// *cell.get_mut().unwrap() += 1;
    /// assert_eq!(cell.get(), Some(&2));
    /// ```
    #[inline]
    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.value.get_mut().as_mut()
    }

    /// Parks the current green thread until the cell is initialized, and
    /// returns the value.
    ///
    /// # Panics
    /// Panics when it must wait and is called from the hub itself (a timer
    /// callback).
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use green::sync::OnceLock;
    ///
    /// let cell = Arc::new(OnceLock::new());
    /// let c = Arc::clone(&cell);
    /// let reader = green::spawn(move || *c.wait());
    /// green::yield_now(); // the reader parks
    /// cell.set(5).unwrap();
    /// assert_eq!(reader.wait(), 5);
    /// ```
    pub fn wait(&self) -> &T {
        self.once.wait_force();
        self.get().expect("a complete OnceLock holds a value")
    }

    /// Initializes the contents of the cell to `value`.
    ///
    /// If the cell is being initialized by another context, this parks
    /// until that is done.
    ///
    /// # Errors
    /// `Err(value)` if the cell was already initialized.
    ///
    /// # Examples
    /// ```
    /// let cell = green::sync::OnceLock::new();
    /// assert_eq!(cell.set(92), Ok(()));
    /// assert_eq!(cell.set(62), Err(62));
    /// assert_eq!(cell.get(), Some(&92));
    /// ```
    pub fn set(&self, value: T) -> Result<(), T> {
        let mut value = Some(value);
        self.get_or_init(|| value.take().expect("the initializer runs once"));
        match value {
            None => Ok(()),
            Some(value) => Err(value),
        }
    }

    /// Gets the contents of the cell, initializing it to `f()` if the cell
    /// was uninitialized.
    ///
    /// Many contexts may call it at once with different initializers: only
    /// one runs, the others park until it is done, then all return its
    /// value. `f` may park. Calling it on the same cell from inside `f`
    /// waits forever.
    ///
    /// # Panics
    /// If `f` panics, the panic is propagated to the caller and the cell
    /// stays uninitialized. Panics when it must wait and is called from the
    /// hub itself (a timer callback).
    ///
    /// # Examples
    /// ```
    /// let cell = green::sync::OnceLock::new();
    /// assert_eq!(*cell.get_or_init(|| 92), 92);
    /// assert_eq!(*cell.get_or_init(|| unreachable!()), 92);
    /// ```
    pub fn get_or_init<F>(&self, f: F) -> &T
    where
        F: FnOnce() -> T,
    {
        if let Some(v) = self.get() {
            return v;
        }
        self.once.call_once_force(|_| {
            let v = f();
            // SAFETY: `once` runs this initializer alone, and no one reads
            // the value before `once` completes.
            unsafe { *self.value.get() = Some(v) };
        });
        self.get().expect("a complete OnceLock holds a value")
    }

    /// Consumes the cell, returning the wrapped value, or `None` if it was
    /// uninitialized.
    ///
    /// # Examples
    /// ```
    /// let cell: green::sync::OnceLock<String> = green::sync::OnceLock::new();
    /// assert_eq!(cell.into_inner(), None);
    /// let cell = green::sync::OnceLock::from("hello".to_string());
    /// assert_eq!(cell.into_inner(), Some("hello".to_string()));
    /// ```
    #[inline]
    pub fn into_inner(mut self) -> Option<T> {
        self.take()
    }

    /// Takes the value out of the cell, moving it back to an uninitialized
    /// state. Returns `None` if the cell was uninitialized.
    ///
    /// # Examples
    /// ```
    /// let mut cell = green::sync::OnceLock::from(1);
    /// assert_eq!(cell.take(), Some(1));
    /// assert_eq!(cell.get(), None);
    /// ```
    #[inline]
    pub fn take(&mut self) -> Option<T> {
        if self.once.is_completed() {
            self.once = Once::new();
            self.value.get_mut().take()
        } else {
            None
        }
    }
}

impl<T> Default for OnceLock<T> {
    /// Creates a new uninitialized cell.
    #[inline]
    fn default() -> OnceLock<T> {
        OnceLock::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("OnceLock");
        match self.get() {
            Some(v) => d.field(v),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}

impl<T: Clone> Clone for OnceLock<T> {
    fn clone(&self) -> OnceLock<T> {
        let cell = OnceLock::new();
        if let Some(value) = self.get() {
            // A fresh cell: `set` cannot fail.
            let _ = cell.set(value.clone());
        }
        cell
    }
}

impl<T> From<T> for OnceLock<T> {
    /// Creates a new cell with its contents set to `value`.
    fn from(value: T) -> Self {
        let cell = OnceLock::new();
        // A fresh cell: `set` cannot fail.
        let _ = cell.set(value);
        cell
    }
}

impl<T: PartialEq> PartialEq for OnceLock<T> {
    /// Equality for two `OnceLock`s: equal if both are uninitialized, or if
    /// both hold equal values.
    #[inline]
    fn eq(&self, other: &OnceLock<T>) -> bool {
        self.get() == other.get()
    }
}

impl<T: Eq> Eq for OnceLock<T> {}

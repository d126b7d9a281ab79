//! A process-wide table indexed by fd number, for state that every OS
//! thread reads without locking: lazily allocated chunks of atomics.

use std::os::fd::RawFd;
use std::sync::OnceLock;

const CHUNK: usize = 4096;
const CHUNKS: usize = 1024;

/// Per-fd cells of `T` (atomics), made on first write. Fds past the table
/// (4M) have no cell and are not tracked.
pub(crate) struct FdMap<T> {
    chunks: [OnceLock<Box<[T; CHUNK]>>; CHUNKS],
}

impl<T: Default> FdMap<T> {
    pub(crate) const fn new() -> FdMap<T> {
        FdMap {
            chunks: [const { OnceLock::new() }; CHUNKS],
        }
    }

    /// The cell of `fd` if its chunk exists: one or two loads, no lock.
    #[inline]
    pub(crate) fn get(&self, fd: RawFd) -> Option<&T> {
        let i = usize::try_from(fd).ok()?;
        Some(&self.chunks.get(i / CHUNK)?.get()?[i % CHUNK])
    }

    /// The cell of `fd`, making its chunk if needed.
    pub(crate) fn get_or_make(&self, fd: RawFd) -> Option<&T> {
        let i = usize::try_from(fd).ok()?;
        let chunk = self.chunks.get(i / CHUNK)?;
        let cells = chunk.get_or_init(|| {
            let cells: Box<[T]> = (0..CHUNK).map(|_| T::default()).collect();
            cells
                .try_into()
                .unwrap_or_else(|_| unreachable!("CHUNK cells"))
        });
        Some(&cells[i % CHUNK])
    }

    /// Calls `f` with every fd whose chunk exists, and its cell.
    pub(crate) fn for_each(&self, mut f: impl FnMut(RawFd, &T)) {
        for (c, chunk) in self.chunks.iter().enumerate() {
            if let Some(cells) = chunk.get() {
                for (i, cell) in cells.iter().enumerate() {
                    f((c * CHUNK + i) as RawFd, cell);
                }
            }
        }
    }
}

//! The hub's end, when its OS thread exits.
//!
//! Teardown marks the hub closing (its contexts never run from the loop
//! again; other threads see `closed`), then drops every green thread,
//! newest first: dropping a parked coroutine unwinds it from its park point,
//! so its destructors run. A destructor that parks meanwhile blocks the OS
//! thread (`park.rs`, a closing hub). A green thread parked inside a patched
//! libc call cannot be unwound (the unwind would cross a C frame): it is
//! leaked, its stack left mapped, and the layer that parked it is told
//! through the hook it registered ([`on_leaked_teardown`]).

use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use super::slots::State;
use super::{io, Hub, ROOT};
use crate::coro;

/// What runs when a teardown leaks green threads (see the module docs).
static LEAK_HOOK: OnceLock<fn()> = OnceLock::new();

/// Registers `hook` to run whenever a hub's teardown leaks green threads
/// parked in a call it cannot unwind, after their hub is marked closed
/// ([`Unparker::hub_closed`](super::Unparker::hub_closed)): a layer that
/// keeps such contexts in tables of its own (the patched futex wait) takes
/// them out there. The first registration stays; later ones are ignored.
pub(crate) fn on_leaked_teardown(hook: fn()) {
    let _ = LEAK_HOOK.set(hook);
}

impl Hub {
    /// Tears down at thread exit: drops every green thread (unwinding those
    /// that are parked, so their destructors run).
    pub(super) fn teardown(&self) {
        self.closing.set(true);
        self.shared.closed.store(true, Ordering::Release);
        io::unregister_hub(self.shared.id);
        let mut leaked = false;
        loop {
            let next = {
                let mut slots = self.slots.borrow_mut();
                // Newest first: a green thread goes before the one that
                // spawned it, whose frames it may borrow from (a scoped
                // thread of `thread::scope`), while they are still intact.
                let found = slots
                    .iter_mut()
                    .enumerate()
                    .filter(|(_, s)| s.green.is_some())
                    .max_by_key(|(_, s)| s.green.as_ref().map(|g| g.id));
                found.map(|(k, s)| {
                    s.state = State::Running;
                    // Unwound like a kill: what it holds is not poisoned.
                    s.cancel.torn_down();
                    let g = s.green.as_ref().expect("checked above");
                    (
                        k as u32,
                        g.seat.is_some() && g.coro.is_some(),
                        s.cancel.in_foreign(),
                    )
                })
            };
            let Some((key, restore, foreign)) = next else {
                break;
            };
            // No longer parked on anything, for a dump meanwhile.
            self.slots.borrow().record(key).unparked();
            if restore {
                self.take_seat(key);
            }
            let Some(mut green) = self.slots.borrow_mut()[key as usize].green.take() else {
                continue;
            };
            self.current.set(key);
            self.current_yielder.set(green.yielder);
            coro::set_running(Some(green.running_info()));
            // Dropping a parked coroutine unwinds it. Without unwinding
            // (panic = "abort"), or when it is parked inside a patched libc
            // call (an unwind cannot cross that C frame), it is leaked
            // instead: its frames are abandoned as if it stayed parked
            // forever.
            if cfg!(panic = "abort") || foreign {
                if let Some(c) = green.coro.take() {
                    std::mem::forget(c);
                    // Its thread-locals may still be reached from the
                    // abandoned frames (a tpool job): keep the block too.
                    std::mem::forget(green.tls.take());
                    leaked = true;
                }
            } else if green.tp != 0 {
                // It unwinds under its own thread pointer, so that its
                // thread-locals and their destructors are its own.
                // SAFETY: the block lives in `green` until after the drop;
                // no thread-local reference is held across the switch.
                unsafe {
                    crate::coro::tls::set_tp(self.fsgsbase, green.tp);
                    drop(green.coro.take());
                    crate::coro::tls::set_tp(self.fsgsbase, self.os_tp);
                }
            } else {
                drop(green.coro.take());
            }
            coro::set_running(None);
            self.slots.borrow().clear(key, green.id, green.named);
            if let Some(seat) = &green.seat {
                self.seats.leave(key, seat);
            }
            self.green_count.set(self.green_count.get() - 1);
        }
        self.current.set(ROOT);
        // A leaked coroutine's stack may sit in a pooled chunk or an arena,
        // and may still be written (a tpool job borrowing from it): leave
        // all green stack memory mapped.
        if leaked {
            // Green threads parked in a wait of a layer above (a patched
            // futex wait) stay in its tables: let it take them out, so that
            // no wakeup goes to them.
            if let Some(hook) = LEAK_HOOK.get() {
                hook();
            }
            std::mem::forget(std::mem::take(&mut *self.stacks.borrow_mut()));
            self.seats.leak();
        }
        if let Some(a) = self.altstack.take() {
            coro::free_altstack(a);
        }
    }
}

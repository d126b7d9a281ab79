//! The `syscall` interposer: `SYS_futex`, which std's `Mutex`, `Condvar`,
//! `RwLock`, `Once`, `mpsc` and `thread::park` block with on Linux, and
//! `SYS_sendfile`/`SYS_splice`, which std's `io::copy` uses.
//!
//! A private futex wait of a green context parks it on green's futex wait
//! table ([`futex`]) instead of blocking the OS thread; a wake wakes the
//! table's waiters of that address and makes the real call for the rest.
//! On x86-64 the interposer's first decision is a few instructions of
//! assembly, so that a wake with no green waiter costs a compare.

use std::os::fd::RawFd;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use libc::{c_int, c_long, timespec};

use super::copy::{copy_call, Bulk};
use super::sleep::clock_now;
use super::{futex, green_hub, mark, set_errno, shielded, state, ts_duration, H};
use crate::hub::Hub;
use crate::patch::{EMULATE, NET, SYNC};
use crate::sys::original;

/// `syscall`, declared with six fixed arguments after the number.
///
/// libc's `syscall` is variadic. On the supported targets (x86-64 System V
/// and AArch64 Linux) a variadic caller passes integer and pointer
/// arguments exactly where a non-variadic callee reads them, and a seventh
/// argument slot that the caller did not fill is only read, never used:
/// the real `syscall` is called with the same registers.
///
/// On x86-64 the first decision is made in assembly: a call green takes no
/// part in, and a futex wake while no green context waits, jump to libc's
/// `syscall` with the stack untouched (the seventh argument lives on it,
/// and compiled code would copy it into a frame of its own to make the
/// call). The rest goes to [`syscall_hooked`].
///
/// # Safety
/// libc's `syscall`.
#[cfg(all(target_arch = "x86_64", target_pointer_width = "64"))]
#[no_mangle]
#[unsafe(naked)]
pub unsafe extern "C" fn syscall(
    num: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    // rdi: the number; edx: the futex operation; r11, a scratch register
    // that carries no argument (rax, which may carry a variadic call's
    // vector-register count, is left alone). Labels made only of the digits
    // 0 and 1 would read as binary numbers in Intel syntax.
    std::arch::naked_asm!(
        "cmp rdi, {futex}",
        "je 2f",
        "cmp rdi, {sendfile}",
        "je 4f",
        "cmp rdi, {splice}",
        "je 4f",
        "5:",
        "jmp {real}",
        "2:",
        // The command, without the private and clock flags.
        "mov r11d, edx",
        "and r11d, {cmd_mask}",
        "cmp r11d, {wake}",
        "je 3f",
        "cmp r11d, {wake_bitset}",
        "jne 4f",
        "3:",
        // A wake: a full barrier after the caller's store to the futex
        // word (a locked no-op on the return address), then the count of
        // green waiters (see futex::waiting_after_store).
        "lock or dword ptr [rsp], 0",
        "cmp qword ptr [rip + {waiting}], 0",
        "je 5b",
        "4:",
        "jmp {hooked}",
        futex = const libc::SYS_futex,
        sendfile = const libc::SYS_sendfile,
        splice = const libc::SYS_splice,
        cmd_mask = const !(libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME),
        wake = const libc::FUTEX_WAKE,
        wake_bitset = const libc::FUTEX_WAKE_BITSET,
        waiting = sym futex::WAITING,
        real = sym original::syscall,
        hooked = sym syscall_hooked,
    )
}

/// Elsewhere the interposer is [`syscall_hooked`] itself.
#[cfg(not(all(target_arch = "x86_64", target_pointer_width = "64")))]
pub(super) use syscall_hooked as syscall;

/// The `syscall` interposer's decision, in full (on targets other than
/// x86-64, the interposer itself).
///
/// # Safety
/// libc's `syscall`.
#[cfg_attr(
    not(all(target_arch = "x86_64", target_pointer_width = "64")),
    export_name = "syscall"
)]
pub(super) unsafe extern "C" fn syscall_hooked(
    num: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    let st = state();
    let hooked = if num == libc::SYS_futex {
        futex_hooked(st, a2)
    } else {
        // Bulk copies: not worth deciding here.
        (num == libc::SYS_sendfile || num == libc::SYS_splice) && st & (NET | EMULATE) != 0
    };
    if !hooked {
        // SAFETY: the caller's arguments, unchanged.
        return unsafe { original::syscall(num, a1, a2, a3, a4, a5, a6) };
    }
    // SAFETY: the caller's arguments.
    unsafe { syscall_patched(num, a1, a2, a3, a4, a5, a6) }
}

/// Whether a futex call with operation `op` may concern the green wait
/// table: a private wait with `SYNC` patched, or a wake while a green
/// context waits (whatever the state: waiters left by `unpatch` are woken
/// too). The check of the waiter count is ordered after the caller's change
/// of the futex word, as in [`futex::wake`].
#[inline(always)]
fn futex_hooked(st: u32, op: c_long) -> bool {
    const WAKES: u32 = 1 << libc::FUTEX_WAKE | 1 << libc::FUTEX_WAKE_BITSET;
    const WAITS: u32 = 1 << libc::FUTEX_WAIT | 1 << libc::FUTEX_WAIT_BITSET;
    let op = op as c_int;
    // The command, as a bit: operations past 31 are none of these.
    let cmd = 1u32
        .checked_shl((op & !(libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME)) as u32)
        .unwrap_or(0);
    if cmd & WAKES != 0 {
        return futex::waiting_after_store();
    }
    cmd & WAITS != 0 && st & SYNC != 0 && op & libc::FUTEX_PRIVATE_FLAG != 0
}

/// The `syscall`s green takes part in: futex, and `sendfile`/`splice`.
///
/// # Safety
/// The arguments of a `syscall(num, ...)` call.
#[inline(never)]
unsafe extern "C" fn syscall_patched(
    num: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    let st = state();
    let a = [a1, a2, a3, a4, a5, a6];
    let real = || {
        // SAFETY: the caller's arguments, unchanged.
        unsafe { original::syscall(num, a1, a2, a3, a4, a5, a6) }
    };
    if num == libc::SYS_futex {
        // SAFETY: the caller's futex arguments.
        if let Some(r) = unsafe { futex_call(st, a[0], a[1], a[2], a[3], a[5]) } {
            return r;
        }
        let cmd = a[1] as c_int & !(libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME);
        let wait = cmd == libc::FUTEX_WAIT || cmd == libc::FUTEX_WAIT_BITSET;
        // A wait that blocks an OS thread with a hub is counted, so that
        // wakes reach it too when green waiters of the word take them
        // (`futex::wait_for_real`).
        return if wait && crate::hub::try_hub().is_some() {
            futex::wait_for_real(real)
        } else {
            real()
        };
    }
    // std copies between a socket and a file or pipe with these (in
    // `io::copy`), as the named functions do.
    let (bulk, fd_in, fd_out) = if num == libc::SYS_sendfile {
        (Bulk::Sendfile, a[1], a[0])
    } else {
        (Bulk::Splice, a[0], a[2])
    };
    let mut op = || real() as isize;
    copy_call(
        st,
        H::syscall,
        bulk,
        fd_in as RawFd,
        fd_out as RawFd,
        &mut op,
    ) as c_long
}

/// The green part of a futex call, or `None` to make the real call.
///
/// # Safety
/// The arguments of a `futex` call.
unsafe fn futex_call(
    st: u32,
    uaddr: c_long,
    op: c_long,
    val: c_long,
    timeout: c_long,
    val3: c_long,
) -> Option<c_long> {
    let op = op as c_int;
    let cmd = op & !(libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME);
    match cmd {
        // A shared futex may be woken from another process, which the
        // process-local table never hears of.
        libc::FUTEX_WAIT | libc::FUTEX_WAIT_BITSET if op & libc::FUTEX_PRIVATE_FLAG != 0 => {
            let hub = green_hub(st, SYNC)?;
            let bitset = if cmd == libc::FUTEX_WAIT {
                u32::MAX
            } else {
                val3 as u32
            };
            if bitset == 0 {
                return None;
            }
            let ts = timeout as *const timespec;
            let deadline = if ts.is_null() {
                None
            } else {
                // SAFETY: the caller's timespec.
                let t = ts_duration(unsafe { &*ts })?;
                let left = if cmd == libc::FUTEX_WAIT {
                    t
                } else {
                    // FUTEX_WAIT_BITSET takes an absolute time.
                    let clock = if op & libc::FUTEX_CLOCK_REALTIME != 0 {
                        libc::CLOCK_REALTIME
                    } else {
                        libc::CLOCK_MONOTONIC
                    };
                    t.saturating_sub(clock_now(clock)?)
                };
                Some(Instant::now().checked_add(left)?)
            };
            mark(H::syscall);
            let word = uaddr as *const AtomicU32;
            match futex::wait(hub, word, val as u32, bitset, deadline) {
                libc::EAGAIN => {
                    futex_mismatch(hub, uaddr as usize);
                    set_errno(libc::EAGAIN);
                    Some(-1)
                }
                e => {
                    SPIN.set(Spin::NONE);
                    if e == 0 {
                        Some(0)
                    } else {
                        set_errno(e);
                        Some(-1)
                    }
                }
            }
        }
        libc::FUTEX_WAKE | libc::FUTEX_WAKE_BITSET => {
            let bitset = if cmd == libc::FUTEX_WAKE {
                u32::MAX
            } else {
                val3 as u32
            };
            let n = (val as c_int).max(0);
            let woken = futex::wake(uaddr as usize, n, bitset);
            if woken == 0 {
                return None;
            }
            // The waiters left get the real call; all `n` of them if an OS
            // thread with a hub is blocked for real, which may be the
            // thread the green waiters just woken need (`wait_for_real`).
            let left = if futex::hub_thread_blocked() {
                n
            } else {
                n - woken
            };
            if left <= 0 {
                return Some(woken as c_long);
            }
            // SAFETY: the caller's call, for the waiters left.
            let r = unsafe {
                original::syscall(
                    libc::SYS_futex,
                    uaddr,
                    op as c_long,
                    left as c_long,
                    timeout,
                    0,
                    val3,
                )
            };
            Some(if r < 0 {
                woken as c_long
            } else {
                r + woken as c_long
            })
        }
        _ => None,
    }
}

/// A run of futex waits by one context on one word that all found the word
/// changed: the caller re-checks and waits again at once, without parking.
#[derive(Clone, Copy)]
struct Spin {
    addr: usize,
    who: u64,
    count: u32,
    since: Option<Instant>,
}

impl Spin {
    const NONE: Spin = Spin {
        addr: 0,
        who: 0,
        count: 0,
        since: None,
    };
}

thread_local! {
    /// The current run of mismatched futex waits (per context where green
    /// threads have identities of their own, else per OS thread).
    static SPIN: std::cell::Cell<Spin> = const { std::cell::Cell::new(Spin::NONE) };
}

/// Mismatched waits in a row after which the waiter yields to the others.
const SPIN_YIELD: u32 = 64;
/// How long a run of mismatched waits may last on a shared identity before
/// it is reported as the known freeze.
const SPIN_LIMIT: Duration = Duration::from_secs(10);

/// Notes a futex wait that returned at once because its word had changed.
///
/// Loops such as std's `thread::park` wait again at once. Where green
/// threads share their OS thread's identity, two of them parked in std's
/// `thread::park` share one parker word that never again holds the value
/// they wait for: each wait returns at once, and the loop would hold the
/// hub for ever. So after a run of such waits the waiter yields, letting
/// the others run; a run that lasts [`SPIN_LIMIT`] on a shared identity
/// panics with the cause and the fix.
#[cold]
fn futex_mismatch(hub: &Hub, addr: usize) {
    let who = hub.current_green_id().unwrap_or(0);
    let mut s = SPIN.get();
    if s.addr != addr || s.who != who {
        s = Spin {
            addr,
            who,
            count: 0,
            since: None,
        };
    }
    s.count = s.count.saturating_add(1);
    if s.count >= SPIN_YIELD {
        let since = *s.since.get_or_insert_with(Instant::now);
        if !crate::coro::tls::on_own_block() && since.elapsed() > SPIN_LIMIT {
            SPIN.set(Spin::NONE);
            panic!(
                "green: a green thread has retried a futex wait on {addr:#x} for {SPIN_LIMIT:?} \
                 without the word ever holding the value it waits for: green threads of this OS \
                 thread share one identity (one std::thread::park parker, one set of \
                 thread-locals), and two of them wait on the same per-thread word. Turn on \
                 per-green-thread identity (green::patch() does where supported; see \
                 green::patch::thread_identity() for why it is off), or use green::sync and \
                 green::thread::park, which park per green thread"
            );
        }
        SPIN.set(s);
        let _ = shielded(hub, crate::yield_now);
        return;
    }
    SPIN.set(s);
}

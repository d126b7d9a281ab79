//! The one boundary between green and the operating system.
//!
//! Every system call green makes for itself goes through here: rustix's
//! `linux_raw` backend makes the call without going through libc, so an
//! internal call can never land in one of green's own interposers
//! (`patch()`). The few libc functions whose own behaviour is the point
//! (the interposers' pass-through, `getaddrinfo`, the thread and TLS
//! machinery of `coro::tls`) are reached through [`original`] (looked up
//! with `dlsym(RTLD_NEXT)`) or named here.

pub mod original;

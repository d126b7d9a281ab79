//! The one boundary between green and the operating system.
//!
//! Every system call green makes for itself goes through here. The calls
//! themselves are rustix's, re-exported below by module (`sys::event`,
//! `sys::mm`, ...): rustix's `linux_raw` backend makes the system call
//! without going through libc, so an internal call can never land in one
//! of green's own interposers (`patch()`), and its wrappers are safe where
//! the call is. What rustix does not give lives in a file of its own here.
//!
//! libc itself is called only where libc's own behaviour is the point:
//! the interposers' pass-through and the real calls a patched program may
//! want ([`original`], each looked up once with `dlsym(RTLD_NEXT)`), name
//! resolution, and the thread and TLS machinery a green thread's identity
//! copies from its OS thread. Above this layer no code names a libc
//! function (`clippy.toml` lists them under `disallowed-methods`); libc's
//! types and constants are used freely.

#![allow(clippy::disallowed_methods)]

pub(crate) mod epoll;
pub(crate) mod errno;
pub(crate) mod mem;
pub mod original;
pub(crate) mod pthread;
pub(crate) mod raw;
pub(crate) mod signal;
pub(crate) mod socket;
pub(crate) mod tls;

#[allow(unused_imports)]
pub(crate) use rustix::{event, fd, fs, io, mm, net, pipe, process, thread, time};

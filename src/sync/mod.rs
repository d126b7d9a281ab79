//! Cooperative mirrors of `std::sync`: blocking parks the green thread, not the OS thread.

pub mod mpsc;

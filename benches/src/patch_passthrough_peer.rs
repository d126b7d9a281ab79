//! The peer of the `patch_passthrough` benchmark: the same libc calls,
//! timed by the same loops ([`green_benches::libc_calls`]), in a binary
//! that does not link green, so that every call goes straight to libc.
//!
//! Run by the benchmark as a child process: `patch_passthrough_peer
//! [--thread] REPS ITERS` prints one `result` line. With `--thread` it
//! measures on a second OS thread (the process then has two, as when green
//! is measured on a plain OS thread). It refuses to measure if its calls do
//! not reach libc (green linked in by mistake).

use green_benches::libc_calls::{child_args, measure_here, reaches_libc};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some((reps, iters)) = child_args(&args) else {
        eprintln!("usage: patch_passthrough_peer [--thread] REPS ITERS");
        std::process::exit(2);
    };
    if !reaches_libc() {
        eprintln!("patch_passthrough_peer: calls do not reach libc: is green linked in?");
        std::process::exit(1);
    }
    let res = if args.iter().any(|a| a == "--thread") {
        std::thread::spawn(move || measure_here(reps, iters))
            .join()
            .unwrap_or_else(|_| Err("the measuring thread panicked".into()))
    } else {
        measure_here(reps, iters)
    };
    match res {
        Ok(r) => println!("{}", r.line()),
        Err(e) => {
            eprintln!("patch_passthrough_peer: {e}");
            std::process::exit(1);
        }
    }
}

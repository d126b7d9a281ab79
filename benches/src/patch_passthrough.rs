//! `patch_passthrough`: what green's interposers add to a libc call that
//! they pass through, against the same call in a process without them.
//!
//! A binary that links green's `patch` module holds functions named `read`,
//! `fcntl`, `syscall`... and every call to those names made inside the
//! executable (std's, other crates', this bench's) reaches them instead of
//! libc, patched or not. The fair peer is therefore a binary that does not
//! link green at all: `patch_passthrough_peer`, a second binary of this
//! package that uses only the shared library ([`green_benches::libc_calls`],
//! which holds the timed loops, compiled once for both binaries). Each
//! binary checks at start-up whether its calls reach libc or something
//! linked in its place (comparing the address of `read`, `fcntl` and
//! `syscall` with `dlsym(RTLD_NEXT, ...)`), and the bench fails if the peer
//! is not calling libc directly or the green binary is.
//!
//! `green::patch::original::read` and its kin are not the peer: they call
//! libc through a pointer that `dlsym` found, which is another path than a
//! direct call to libc.
//!
//! Calls (cheap system calls, so that a few nanoseconds show):
//! - `read` of 64 bytes on an empty non-blocking Unix stream socket
//!   (`EAGAIN`);
//! - `fcntl(F_GETFL)` on that socket;
//! - `syscall(SYS_futex, FUTEX_WAKE_PRIVATE)` on an address nobody waits on.
//!
//! States, each in a child process of its own:
//! - `libc`: the peer binary, measuring on its main thread;
//! - `libc-thread`: the peer binary, measuring on a second OS thread;
//! - `unpatched`: this binary, `green::patch()` never called (the
//!   interposers load the patch state and jump to libc); compared with `libc`;
//! - `green`: after `green::patch()`, on a green thread (checked: a std
//!   sleep there takes the green path first). The socket is non-blocking by
//!   its owner's wish, so `read` passes through after the fd-table lookup;
//!   `fcntl(F_GETFL)` passes through with a table lookup; `FUTEX_WAKE`
//!   checks green's futex wait table for waiters, finds none and makes the
//!   real call. Compared with `libc`;
//! - `plain`: after `green::patch()`, on a second, plain OS thread (no hub):
//!   the interposers find no green context and pass through. Compared with
//!   `libc-thread`: while a process has more than one OS thread, fd-based
//!   system calls cost the kernel more (see
//!   [`green_benches::libc_calls::os_threads`]), so the peer must have as
//!   many. The tables give each state's OS thread count.
//!
//! Each child checks every call's result once, makes one untimed rep, then
//! `PATCH_REPS` reps (default 9) of `PATCH_ITERS` calls (default 200 000)
//! of each call, interleaved. The parent runs `PATCH_ROUNDS` rounds
//! (default 5) of the five children, in an order that rotates each round,
//! and reports per call the fastest rep of all (the figure least disturbed
//! by other work on the machine) and the median of the children's medians.
//! The target: at most 5 ns added per passed-through call (fastest reps).
//!
//! Run: `cargo bench --bench patch_passthrough` in `benches/`.

use std::process::Command;
use std::time::Duration;

use green_benches::libc_calls::{child_args, measure_here, Call, Report};
use green_benches::{banner, check, median, Table};

/// Most nanoseconds the interposers may add to a passed-through call.
const TARGET_NS: f64 = 5.0;

/// A configuration measured in a child process of its own.
struct State {
    /// `libc` or `libc-thread` for the peer binary (without or with
    /// `--thread`), else the argument of this binary's `--state`.
    key: &'static str,
    /// How the tables name it.
    name: &'static str,
    /// The state it is compared with (an index in [`STATES`]), for the
    /// green states.
    peer: Option<usize>,
}

const STATES: [State; 5] = [
    State {
        key: "libc",
        name: "libc, no green linked",
        peer: None,
    },
    State {
        key: "libc-thread",
        name: "libc, no green linked, second OS thread",
        peer: None,
    },
    State {
        key: "unpatched",
        name: "green linked, never patched",
        peer: Some(0),
    },
    State {
        key: "green",
        name: "patched, green thread",
        peer: Some(0),
    },
    State {
        key: "plain",
        name: "patched, plain second OS thread",
        peer: Some(1),
    },
];

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

// ---------------------------------------------------------------- children

/// Measures in state `state` of this binary.
fn child(state: &str, reps: usize, iters: u64) -> Result<Report, String> {
    match state {
        "unpatched" => measure_here(reps, iters),
        "plain" => {
            green::patch();
            std::thread::spawn(move || measure_here(reps, iters))
                .join()
                .map_err(|_| "the measuring thread panicked".to_string())?
        }
        "green" => {
            green::patch();
            green::spawn(move || {
                // A std sleep on this green thread takes the green path:
                // proof that the calls below are made from a green context.
                std::thread::sleep(Duration::from_millis(1));
                if green::patch::hooks_seen().is_empty() {
                    return Err("a std sleep on a green thread did not take the green path".into());
                }
                measure_here(reps, iters)
            })
            .join()
            .map_err(|_| "the measuring green thread panicked".to_string())?
        }
        other => Err(format!("unknown state {other:?}")),
    }
}

fn child_main(state: &str, args: &[String]) {
    let Some((reps, iters)) = child_args(args) else {
        eprintln!("usage: patch_passthrough --state STATE REPS ITERS");
        std::process::exit(2);
    };
    match child(state, reps, iters) {
        Ok(r) => println!("{}", r.line()),
        Err(e) => {
            eprintln!("{state}: {e}");
            std::process::exit(1);
        }
    }
}

// ---------------------------------------------------------------- parent

/// Runs the child of `state`; checks that its calls reach libc if and only
/// if it is the peer.
fn run_child(state: &State, reps: usize, iters: u64) -> Result<Report, String> {
    let key = state.key;
    let mut cmd = if state.peer.is_none() {
        let mut c = Command::new(env!("CARGO_BIN_EXE_patch_passthrough_peer"));
        if key == "libc-thread" {
            c.arg("--thread");
        }
        c
    } else {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut c = Command::new(exe);
        c.args(["--state", key]);
        c
    };
    let out = cmd
        .args([reps.to_string(), iters.to_string()])
        .output()
        .map_err(|e| format!("cannot run the {key} child: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the {key} child failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r = stdout
        .lines()
        .find_map(|l| l.strip_prefix("result "))
        .and_then(Report::parse)
        .ok_or_else(|| format!("the {key} child printed no result: {stdout:?}"))?;
    match (state.peer.is_none(), r.reach_libc) {
        (true, false) => Err("the peer's calls do not reach libc: green is linked into it".into()),
        (false, true) => Err(format!(
            "state {key}: calls reach libc directly: green's interposers are not linked"
        )),
        _ => Ok(r),
    }
}

/// One table: a row per state, a column per call.
fn table(title: &str, figures: &[[f64; 3]], threads: &[String]) -> Table {
    let mut header = vec!["state", "OS threads", "compared with"];
    header.extend(Call::ALL.iter().map(|c| c.name()));
    let mut t = Table::new(title, &header);
    for (s, state) in STATES.iter().enumerate() {
        let mut row = vec![state.name.to_string(), threads[s].clone()];
        match state.peer {
            None => {
                row.push("-".into());
                row.extend(figures[s].iter().map(|ns| format!("{ns:.1} ns")));
            }
            Some(p) => {
                row.push(STATES[p].key.into());
                row.extend(
                    figures[s]
                        .iter()
                        .zip(&figures[p])
                        .map(|(ns, base)| format!("{ns:.1} ns ({:+.1})", ns - base)),
                );
            }
        }
        t.row(row);
    }
    t
}

fn parent_main() -> Result<(), String> {
    let rounds: usize = env_num("PATCH_ROUNDS", 5).max(1);
    let reps: usize = env_num("PATCH_REPS", 9).max(1);
    let iters: u64 = env_num("PATCH_ITERS", 200_000).max(1);
    println!(
        "{rounds} rounds of {} child processes; each child: {reps} reps of {iters} calls of \
         each call, interleaved; load average at start: {}",
        STATES.len(),
        loadavg()
    );
    let mut runs: Vec<Vec<Report>> = vec![Vec::new(); STATES.len()];
    for round in 0..rounds {
        print!("round {} of {rounds}:", round + 1);
        for k in 0..STATES.len() {
            let i = (k + round) % STATES.len();
            let r = run_child(&STATES[i], reps, iters)?;
            let mins: Vec<String> = r.per_call.min.iter().map(|ns| format!("{ns:.1}")).collect();
            print!(" {} [{}]", STATES[i].key, mins.join(" "));
            runs[i].push(r);
        }
        println!();
    }
    println!("load average at end: {}", loadavg());
    let mins: Vec<[f64; 3]> = runs
        .iter()
        .map(|rs| {
            std::array::from_fn(|c| {
                rs.iter()
                    .map(|r| r.per_call.min[c])
                    .fold(f64::INFINITY, f64::min)
            })
        })
        .collect();
    let medians: Vec<[f64; 3]> = runs
        .iter()
        .map(|rs| {
            std::array::from_fn(|c| median(rs.iter().map(|r| r.per_call.median[c]).collect()))
        })
        .collect();
    let threads: Vec<String> = runs
        .iter()
        .map(|rs| {
            let mut t: Vec<usize> = rs.iter().map(|r| r.threads).collect();
            t.sort_unstable();
            t.dedup();
            let t: Vec<String> = t.iter().map(usize::to_string).collect();
            t.join(", ")
        })
        .collect();
    table(
        &format!(
            "time per call, fastest rep of {rounds} x {reps}; in parentheses: added to the \
             same call without green (the state compared with)"
        ),
        &mins,
        &threads,
    )
    .print();
    table(
        &format!("time per call, median of the {rounds} children's median reps"),
        &medians,
        &threads,
    )
    .print();
    println!();
    for (s, state) in STATES.iter().enumerate() {
        let Some(p) = state.peer else { continue };
        let (worst, call) = Call::ALL
            .iter()
            .enumerate()
            .map(|(c, call)| (mins[s][c] - mins[p][c], call.name()))
            .fold(
                (f64::NEG_INFINITY, ""),
                |a, b| if b.0 > a.0 { b } else { a },
            );
        check(
            &format!("{}: most added per call (fastest reps; {call})", state.name),
            &format!("{worst:.1} ns"),
            &format!("<= {TARGET_NS} ns"),
            worst <= TARGET_NS,
        );
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--state") {
        let state = args.get(i + 1).map_or("", String::as_str);
        child_main(state, &args);
        return;
    }
    banner(
        "patch_passthrough",
        "libc calls passed through green's interposers vs libc without green",
    );
    if let Err(e) = parent_main() {
        println!("{e}");
        std::process::exit(1);
    }
}

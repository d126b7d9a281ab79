//! The sync `postgres` crate, unmodified, on green threads under
//! `green::patch()`. Each `postgres::Client` owns a tokio runtime and drives
//! it with `block_on` on the calling thread: tokio's per-thread runtime
//! context then has to be per green thread ("Cannot start a runtime from
//! within a runtime" otherwise), and its epoll waits park only that green
//! thread.
//!
//! Each test runs a throwaway PostgreSQL cluster of its own: made with
//! `initdb` in a temporary directory, listening on 127.0.0.1 only on a free
//! port, stopped (and killed if need be) when the test ends. Without the
//! PostgreSQL server binaries the tests fail: install them with
//! `apt-get install -y postgresql` (`.ci/run` does).

#[path = "common/identity.rs"]
mod identity;

use std::ffi::CString;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use identity::{assert_all_on_os_thread, os_tid, Ticker, Watchdog};

/// How long any one test here may run before the watchdog ends the process.
const LIMIT: Duration = Duration::from_secs(180);

#[test]
fn identity_is_per_green_thread() {
    identity::patch_with_identity();
}

/// The newest `/usr/lib/postgresql/VERSION/bin` that has the server's
/// programs.
fn server_bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            ["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|p| bin.join(p).is_file())
                .then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL server (initdb, pg_ctl, postgres) under /usr/lib/postgresql/*/bin: \
             install postgresql (apt-get install -y postgresql) to run these tests"
        ),
    }
}

/// The uid and gid of user `name`.
fn user_ids(name: &str) -> Option<(libc::uid_t, libc::gid_t)> {
    let name = CString::new(name).ok()?;
    // SAFETY: a NUL-terminated name; the entry is read at once, before
    // another getpw* call could overwrite it.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    // SAFETY: a non-null result points at a valid passwd entry.
    (!pw.is_null()).then(|| unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// A free TCP port on 127.0.0.1 (free when this returns; the start retries
/// with another if it is taken meanwhile).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind on loopback")
        .port()
}

/// Runs `cmd` to its end; panics with its output if it fails.
fn run(mut cmd: Command, what: &str) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A throwaway PostgreSQL cluster, stopped when dropped.
struct Cluster {
    // Removed after the server has stopped (fields drop after `drop`).
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Whether the server's programs run as user `postgres` (the test runs
    /// as root, and `initdb` refuses root).
    as_postgres: bool,
    port: u16,
    /// The postmaster's pid, read from `postmaster.pid` once it runs.
    pid: libc::pid_t,
}

impl Cluster {
    fn start() -> Cluster {
        let bin = server_bin_dir();
        // SAFETY: geteuid has no preconditions.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::Builder::new()
            .prefix("green-pg-")
            .tempdir()
            .expect("a temporary directory");
        if as_postgres {
            let (uid, gid) = user_ids("postgres").expect(
                "running as root: the server must run as user postgres, which installing \
                 postgresql creates (apt-get install -y postgresql)",
            );
            let path = CString::new(dir.path().as_os_str().as_encoded_bytes()).expect("a path");
            // SAFETY: a NUL-terminated path.
            let rc = unsafe { libc::chown(path.as_ptr(), uid, gid) };
            assert_eq!(rc, 0, "chown {:?}", dir.path());
        }
        let mut cluster = Cluster {
            dir,
            bin,
            as_postgres,
            port: 0,
            pid: 0,
        };
        let mut initdb = cluster.command("initdb");
        initdb
            .arg("-D")
            .arg(cluster.data())
            .args(["-U", "postgres", "-A", "trust", "--no-sync", "--no-locale"])
            .args(["-E", "UTF8"]);
        run(initdb, "initdb");

        // The port is free when chosen; another process may take it before
        // the server binds it, so a failed start is retried on another.
        let mut last_log = String::new();
        for _ in 0..3 {
            cluster.port = free_port();
            let options = format!(
                "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} \
                 -c fsync=off -c max_connections=100",
                cluster.port,
                cluster.dir.path().display()
            );
            let mut start = cluster.command("pg_ctl");
            start
                .arg("-D")
                .arg(cluster.data())
                .arg("-l")
                .arg(cluster.log())
                .args(["-w", "-t", "60", "-o", &options, "start"]);
            let out = start
                .output()
                .unwrap_or_else(|e| panic!("cannot run pg_ctl start: {e}"));
            if out.status.success() {
                cluster.pid = cluster.read_pid();
                return cluster;
            }
            last_log = format!(
                "pg_ctl start: {}\n{}{}\nserver log:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(cluster.log()).unwrap_or_default()
            );
        }
        panic!("the PostgreSQL server did not start:\n{last_log}");
    }

    /// One of the server's programs, run as the user that owns the cluster.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        // A directory the server's user may enter.
        cmd.current_dir(self.dir.path());
        cmd
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn read_pid(&self) -> libc::pid_t {
        let file = self.data().join("postmaster.pid");
        std::fs::read_to_string(&file)
            .ok()
            .and_then(|s| s.lines().next()?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no pid in {}", file.display()))
    }

    fn config(&self) -> postgres::Config {
        let mut config = postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(30));
        config
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "-t", "30", "stop"]);
        let stopped = stop.output().is_ok_and(|o| o.status.success());
        // SAFETY: signal 0 only checks that the process exists.
        if !stopped || unsafe { libc::kill(self.pid, 0) } == 0 {
            // SAFETY: the postmaster this cluster started.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

#[test]
fn fifty_green_threads_with_their_own_clients_overlap_pg_sleep() {
    green::patch();
    let _w = Watchdog::new("postgres pg_sleep", LIMIT);
    const CLIENTS: i32 = 50;
    const SLEEP: Duration = Duration::from_millis(300);
    let cluster = Cluster::start();
    let me = os_tid();
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let config = cluster.config();
            green::spawn(move || {
                let mut client = config
                    .connect(postgres::NoTls)
                    .unwrap_or_else(|e| panic!("client {i} connects: {e}"));
                let began = Instant::now();
                let row = client
                    .query_one(
                        "SELECT pg_sleep($1::FLOAT8), $2::INT4",
                        &[&SLEEP.as_secs_f64(), &i],
                    )
                    .unwrap_or_else(|e| panic!("client {i} queries: {e}"));
                let ended = Instant::now();
                let echoed: i32 = row.get(1);
                drop(client);
                (echoed, began, ended, os_tid())
            })
        })
        .collect();
    let mut tids = Vec::new();
    let mut spans = Vec::new();
    for (i, c) in (0..CLIENTS).zip(clients) {
        let (echoed, began, ended, tid) = c.wait();
        assert_eq!(echoed, i, "client {i}'s answer");
        assert!(ended - began >= SLEEP, "client {i}'s query slept");
        spans.push((began, ended));
        tids.push(tid);
    }
    let elapsed = start.elapsed();
    assert_all_on_os_thread(&tids, me);
    // From the first query's start to the last one's end: about one sleep,
    // 300 ms, plus the connects of the clients that were still connecting.
    // One at a time: 50 x 300 ms = 15 s. 5 s is a margin of over 15x for a
    // loaded machine.
    let first = spans.iter().map(|s| s.0).min().expect("clients");
    let last = spans.iter().map(|s| s.1).max().expect("clients");
    let queries = last - first;
    println!("{CLIENTS} pg_sleep queries in {queries:?} (with connects: {elapsed:?})");
    assert!(
        queries < Duration::from_secs(5),
        "{CLIENTS} pg_sleep queries took {queries:?} (all, with connects: {elapsed:?})"
    );
    drop(cluster);
}

#[test]
fn one_client_runs_many_queries_in_a_row_from_one_green_thread() {
    green::patch();
    let _w = Watchdog::new("postgres many queries", LIMIT);
    const QUERIES: i64 = 300;
    let cluster = Cluster::start();
    let me = os_tid();
    let ticker = Ticker::start();
    let worker = {
        let config = cluster.config();
        let ticks = ticker.counter();
        green::spawn(move || {
            let mut client = config.connect(postgres::NoTls).expect("connect");
            let t0 = ticks.load(std::sync::atomic::Ordering::SeqCst);
            let statement = client.prepare("SELECT $1::INT8 * 2").expect("prepare");
            for i in 0..QUERIES {
                let doubled: i64 = client.query_one(&statement, &[&i]).expect("query").get(0);
                assert_eq!(doubled, 2 * i, "query {i}");
                if i % 100 == 0 {
                    // A wait in the server: ten ticker periods.
                    client
                        .batch_execute("SELECT pg_sleep(0.1)")
                        .expect("pg_sleep");
                }
            }
            let mut tx = client.transaction().expect("begin");
            tx.batch_execute("CREATE TEMPORARY TABLE t (n INT8)")
                .expect("create");
            for i in 0..QUERIES {
                tx.execute("INSERT INTO t VALUES ($1)", &[&i])
                    .expect("insert");
            }
            let sum: i64 = tx
                .query_one("SELECT sum(n)::INT8 FROM t", &[])
                .expect("sum")
                .get(0);
            tx.commit().expect("commit");
            let ticked = ticks.load(std::sync::atomic::Ordering::SeqCst) - t0;
            drop(client);
            (sum, ticked, os_tid())
        })
    };
    let (sum, ticked, tid) = worker.wait();
    ticker.stop(me);
    assert_all_on_os_thread(&[tid], me);
    assert_eq!(sum, QUERIES * (QUERIES - 1) / 2);
    // Three 100 ms server-side sleeps: thirty ticker periods.
    assert!(
        ticked >= 1,
        "the ticker did not tick while the client waited for the server"
    );
    drop(cluster);
}

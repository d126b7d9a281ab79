//! The std-only program of this crate, built against green-std, runs all of
//! its threads concurrently on one OS thread.

use std::time::Duration;

#[test]
fn std_program_runs_concurrently_on_one_os_thread() -> std::io::Result<()> {
    let clients = 200;
    let children = 10;
    let report = green_std_facade_test::run(clients, children)?;

    assert_eq!(report.answered, clients * green_std_facade_test::LINES);
    assert_eq!(report.checked, clients * green_std_facade_test::LINES);
    let mut outs = report.child_outputs.clone();
    outs.sort();
    let mut want: Vec<String> = (0..children).map(|n| format!("child {n}\n")).collect();
    want.sort();
    assert_eq!(outs, want);

    // Every thread of the program (server, 200 handlers, 200 clients, 10
    // child runners) ran on this test's own OS thread.
    let here = std::fs::read_link("/proc/thread-self")?;
    assert_eq!(report.os_threads.len(), 1, "{:?}", report.os_threads);
    assert!(report.os_threads.contains(&here));

    // Back to back, the server's sleeps alone take 200 x 3 x 50 ms = 30 s
    // and the children 2 s; overlapped, about 0.4 s. 15 s leaves a wide
    // margin for a loaded machine while still proving the overlap.
    assert!(
        report.elapsed < Duration::from_secs(15),
        "took {:?}",
        report.elapsed
    );
    Ok(())
}

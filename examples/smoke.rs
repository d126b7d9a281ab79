use std::time::{Duration, Instant};
fn main() {
    let t = Instant::now();
    let v: Vec<_> = (0..10_000)
        .map(|i| {
            green::spawn(move || {
                green::sleep(Duration::from_millis(50));
                i
            })
        })
        .collect();
    let s: u64 = v.into_iter().map(|g| g.wait()).sum();
    println!(
        "sum {s} in {:?} stats {:?}",
        t.elapsed(),
        green::hub::stats()
    );
    let gt = green::spawn(|| green::sleep(Duration::from_secs(10)));
    green::yield_now();
    gt.kill();
    println!("{:?}", gt.join().is_err());
    println!(
        "{:?}",
        green::with_timeout(Duration::from_millis(20), || green::sleep(
            Duration::from_secs(1)
        ))
    );
    println!("stats {:?}", green::hub::stats());
}

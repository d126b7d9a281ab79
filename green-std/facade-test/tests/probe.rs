#[test]
fn probe() {
    println!("{}", std::any::type_name::<std::sync::Mutex<i32>>());
    assert!(std::any::type_name::<std::sync::Mutex<i32>>().starts_with("green::"));
}

//! What src/lib.rs does today, and must keep doing. `parse_port` is checked through its
//! debug form, which holds the port whether it returns it bare or in a `Result`.

#[test]
fn parses_a_port() {
    assert!(format!("{:?}", demo::parse_port(" 8080 ")).contains("8080"));
}

#[test]
fn greets() {
    assert_eq!(demo::greet("ada"), "hello ada");
}

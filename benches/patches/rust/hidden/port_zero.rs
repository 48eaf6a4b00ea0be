use minilib::parse::parse_port;

#[test]
fn zero_is_rejected() {
    assert!(parse_port("0").is_err());
    assert!(parse_port(" 0 ").is_err());
    assert!(parse_port("00").is_err());
}

#[test]
fn others_unchanged() {
    assert_eq!(parse_port("1"), Ok(1));
    assert_eq!(parse_port("65535"), Ok(65535));
    assert!(parse_port("65536").is_err());
    assert!(parse_port("x").is_err());
}

use minilib::parse::parse_hex_color;

#[test]
fn short_form() {
    assert_eq!(parse_hex_color("#fa0"), Some((255, 170, 0)));
    assert_eq!(parse_hex_color("#000"), Some((0, 0, 0)));
    assert_eq!(parse_hex_color("#FFF"), Some((255, 255, 255)));
    assert_eq!(parse_hex_color("#1a2"), Some((0x11, 0xaa, 0x22)));
}

#[test]
fn bad_short_forms() {
    assert_eq!(parse_hex_color("#fg0"), None);
    assert_eq!(parse_hex_color("fa0"), None);
    assert_eq!(parse_hex_color("#fa"), None);
    assert_eq!(parse_hex_color("#fa00"), None);
}

#[test]
fn long_form_unchanged() {
    assert_eq!(parse_hex_color("#ff8000"), Some((255, 128, 0)));
    assert_eq!(parse_hex_color("#gg8000"), None);
}

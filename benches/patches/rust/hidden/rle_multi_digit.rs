use minilib::parse::rle_decode;

#[test]
fn multi_digit_counts() {
    assert_eq!(rle_decode("a12b1"), Some("a".repeat(12) + "b"));
    assert_eq!(rle_decode("x10"), Some("x".repeat(10)));
    assert_eq!(
        rle_decode("a2b100c3"),
        Some("aa".to_string() + &"b".repeat(100) + "ccc")
    );
}

#[test]
fn single_digits_and_errors() {
    assert_eq!(rle_decode("a3b1"), Some("aaab".to_string()));
    assert_eq!(rle_decode(""), Some(String::new()));
    assert_eq!(rle_decode("a"), None);
    assert_eq!(rle_decode("ab"), None);
}

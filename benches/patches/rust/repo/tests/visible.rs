//! The behaviour that exists today.

use minilib::num::*;
use minilib::parse::*;
use minilib::text::*;

#[test]
fn numbers() {
    assert_eq!(average(&[1.0, 2.0, 3.0, 4.0]), Some(2.5));
    assert_eq!(gcd(12, 18), 6);
    assert_eq!(lcm(4, 6), 12);
    assert_eq!(factorial(0), Some(1));
    assert_eq!(factorial(5), Some(120));
    assert_eq!(factorial(20), Some(2_432_902_008_176_640_000));
}

#[test]
fn search_distinct() {
    let xs = [1, 3, 5, 7, 9];
    assert_eq!(binary_search(&xs, 7), Some(3));
    assert_eq!(binary_search(&xs, 1), Some(0));
    assert_eq!(binary_search(&xs, 4), None);
    assert_eq!(binary_search(&[], 4), None);
}

#[test]
fn parsers() {
    assert_eq!(parse_port("8080"), Ok(8080));
    assert_eq!(parse_port(" 22 "), Ok(22));
    assert!(parse_port("http").is_err());
    assert!(parse_port("70000").is_err());
    assert_eq!(parse_hex_color("#ff8000"), Some((255, 128, 0)));
    assert_eq!(parse_hex_color("ff8000"), None);
    assert_eq!(parse_hex_color("#ff80"), None);
    assert_eq!(rle_decode("a3b1"), Some("aaab".to_string()));
    assert_eq!(rle_decode(""), Some(String::new()));
    assert_eq!(rle_decode("a"), None);
}

#[test]
fn text() {
    assert!(is_palindrome("racecar"));
    assert!(!is_palindrome("rust"));
    assert_eq!(title_case("hello world"), "Hello World");
    assert_eq!(
        wrap("the quick brown fox", 10),
        vec!["the quick", "brown fox"]
    );
    assert_eq!(wrap("", 5), Vec::<String>::new());
}

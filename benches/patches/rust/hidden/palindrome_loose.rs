use minilib::text::is_palindrome;

#[test]
fn ignores_case_and_punctuation() {
    assert!(is_palindrome("A man, a plan, a canal: Panama"));
    assert!(is_palindrome("No 'x' in Nixon"));
    assert!(is_palindrome("Racecar"));
    assert!(is_palindrome("12 3 21"));
}

#[test]
fn still_rejects() {
    assert!(!is_palindrome("rust"));
    assert!(!is_palindrome("ab, c"));
    assert!(is_palindrome(""));
}

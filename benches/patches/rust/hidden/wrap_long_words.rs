use minilib::text::wrap;

/// Every line fits, none is empty, and the words' characters are all there in order.
fn check(text: &str, width: usize) -> Vec<String> {
    let lines = wrap(text, width);
    for line in &lines {
        assert!(
            !line.is_empty() && line.len() <= width,
            "{text:?} at {width}: {lines:?}"
        );
        assert!(!line.starts_with(' ') && !line.ends_with(' '), "{lines:?}");
    }
    assert_eq!(
        lines.concat().replace(' ', ""),
        text.replace(' ', ""),
        "{text:?} at {width}: {lines:?}"
    );
    lines
}

#[test]
fn long_words_are_split() {
    assert_eq!(check("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
    assert_eq!(check("abcdefgh", 4), vec!["abcd", "efgh"]);
    check("hi abcdefgh", 4);
    check("a verylongwordindeed here", 5);
    check("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx y", 7);
}

#[test]
fn short_words_unchanged() {
    assert_eq!(
        check("the quick brown fox", 10),
        vec!["the quick", "brown fox"]
    );
    assert_eq!(check("one two", 3), vec!["one", "two"]);
}

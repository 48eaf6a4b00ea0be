use minilib::text::title_case;

#[test]
fn small_words_stay_lower() {
    assert_eq!(title_case("the lord of the rings"), "The Lord of the Rings");
    assert_eq!(title_case("war and peace"), "War and Peace");
    assert_eq!(title_case("a tale OF two cities"), "A Tale of Two Cities");
    assert_eq!(title_case("an apple or a pear"), "An Apple or a Pear");
}

#[test]
fn other_words_unchanged() {
    assert_eq!(title_case("hello world"), "Hello World");
    assert_eq!(title_case("offer the andes"), "Offer the Andes");
}

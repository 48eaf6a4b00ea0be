use minilib::num::binary_search;

#[test]
fn first_of_duplicates() {
    let xs = [1, 2, 2, 2, 2, 2, 2, 3, 4];
    assert_eq!(binary_search(&xs, 2), Some(1));
    let xs = [5, 5, 5, 5, 5, 5, 5, 5];
    assert_eq!(binary_search(&xs, 5), Some(0));
    let xs = [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 9];
    assert_eq!(binary_search(&xs, 1), Some(1));
}

#[test]
fn distinct_and_missing() {
    let xs = [1, 3, 5, 7, 9];
    assert_eq!(binary_search(&xs, 9), Some(4));
    assert_eq!(binary_search(&xs, 1), Some(0));
    assert_eq!(binary_search(&xs, 6), None);
    assert_eq!(binary_search(&xs, 10), None);
    assert_eq!(binary_search(&[], 1), None);
}

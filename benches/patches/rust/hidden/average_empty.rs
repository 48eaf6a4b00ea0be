use minilib::num::average;

#[test]
fn empty_is_none() {
    assert_eq!(average(&[]), None);
}

#[test]
fn still_averages() {
    assert_eq!(average(&[1.0, 2.0, 3.0, 4.0]), Some(2.5));
    assert_eq!(average(&[-1.0, 1.0]), Some(0.0));
}

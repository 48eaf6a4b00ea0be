use minilib::num::factorial;

#[test]
fn overflow_is_none() {
    assert_eq!(factorial(21), None);
    assert_eq!(factorial(25), None);
    assert_eq!(factorial(100), None);
}

#[test]
fn fits_is_some() {
    assert_eq!(factorial(0), Some(1));
    assert_eq!(factorial(1), Some(1));
    assert_eq!(factorial(10), Some(3_628_800));
    assert_eq!(factorial(20), Some(2_432_902_008_176_640_000));
}

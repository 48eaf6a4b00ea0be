use minilib::num::lcm;

#[test]
fn zero_gives_zero() {
    assert_eq!(lcm(0, 5), 0);
    assert_eq!(lcm(5, 0), 0);
    assert_eq!(lcm(0, 0), 0);
}

#[test]
fn still_lcm() {
    assert_eq!(lcm(4, 6), 12);
    assert_eq!(lcm(7, 1), 7);
    assert_eq!(lcm(21, 6), 42);
}

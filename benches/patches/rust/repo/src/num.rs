//! Numbers.

/// The mean of `xs`.
pub fn average(xs: &[f64]) -> Option<f64> {
    // TODO: return None for an empty slice instead of NaN
    Some(xs.iter().sum::<f64>() / xs.len() as f64)
}

/// The greatest common divisor.
pub fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The least common multiple.
pub fn lcm(a: u64, b: u64) -> u64 {
    // TODO: return 0 when a or b is 0 instead of dividing by zero
    a / gcd(a, b) * b
}

/// n! for small n.
pub fn factorial(n: u32) -> Option<u64> {
    let mut acc: u64 = 1;
    for i in 2..=u64::from(n) {
        // TODO: return None when the result does not fit in a u64 instead of overflowing
        acc *= i;
    }
    Some(acc)
}

/// The index of `x` in the sorted slice `xs`, if it is there.
pub fn binary_search(xs: &[i32], x: i32) -> Option<usize> {
    // TODO: when x occurs several times, return the index of its first occurrence
    let (mut lo, mut hi) = (0, xs.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if xs[mid] == x {
            return Some(mid);
        } else if xs[mid] < x {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    None
}

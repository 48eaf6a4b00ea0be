//! `apply_unified`, the strict applier that checks every patch. The input is `mode`, then two
//! texts split at the first 0 byte.
//!
//! Even `mode`: the texts are an old and a new file; the diff of the two (`unified_diff`, as
//! `make_patch` computes it) must apply to the old file and give exactly the new one.
//! Odd `mode`: the texts are a file and an arbitrary diff; the applier must answer Ok or Err
//! without panicking, and what it builds holds only the file's lines and the diff's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tars_fleet::patch::{apply_unified, unified_diff};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (a, b) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let a = String::from_utf8_lossy(a);
    let b = String::from_utf8_lossy(b);
    if mode & 1 == 0 {
        let diff = unified_diff("src/x.rs", &a, &b);
        match apply_unified(&a, &diff) {
            Ok(out) => assert_eq!(out, b, "round trip differs; diff:\n{diff}"),
            Err(e) => panic!("our own diff does not apply: {e}; diff:\n{diff}"),
        }
    } else if let Ok(out) = apply_unified(&a, &b) {
        assert!(
            out.len() <= a.len() + b.len(),
            "{} > {} + {}",
            out.len(),
            a.len(),
            b.len()
        );
    }
});

//! Issue 10, item 9: files a repository can hold that the scan must survive (a sparse
//! terabyte under a huge size bound), against the real binary. The FIFO and the symbolic link
//! swapped in after the listing are in the scanner's unit tests (`src/scan/tests/walk.rs`):
//! only there can the swap be made to land between the listing and the open every time.

use crate::util::{cmd, run};

#[test]
fn a_sparse_terabyte_under_a_huge_size_bound_is_not_read_into_memory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.py"), "# TODO: still found\n").unwrap();
    let huge = std::fs::File::create(dir.path().join("huge.py")).unwrap();
    huge.set_len(1 << 40).unwrap();
    drop(huge);
    let mut c = cmd("dispatcher");
    c.env("TARS_SCAN__MAX_FILE_BYTES", (1u64 << 41).to_string())
        .args(["scan"])
        .arg(dir.path());
    let out = run(c).success();
    assert_eq!(out.stdout, "ok.py:1: TODO still found\n");
    assert!(out.stderr.contains("binary 1"), "{}", out.stderr);
}

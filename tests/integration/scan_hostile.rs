//! Issue 10, items 9 and 10: files a repository can hold that the scan must survive (a sparse
//! terabyte under a huge size bound) and names no task can hold exactly (not UTF-8, a newline
//! or a tab in them), against the real binary. The FIFO and the symbolic link swapped in
//! after the listing are in the scanner's unit tests (`src/scan/tests/walk.rs`): only there
//! can the swap be made to land between the listing and the open every time.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::util::{RedisServer, cmd, run};

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

/// A directory with names that a task cannot hold, and one that it can.
fn repo_with_bad_names() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &[u8], body: &str| {
        let p = dir.path().join(OsStr::from_bytes(name));
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, body).unwrap();
    };
    // Lossy conversion makes both `\u{fffd}.py`: one path, one id, for two files.
    write(b"\xff.py", "# TODO: same words\n");
    write(b"\xfe.py", "# TODO: same words\n");
    write(b"new\nline.py", "# TODO: n\n");
    write(b"tab\there.py", "# TODO: t\n");
    write(b"dir\xe9/inner.py", "# TODO: i\n");
    write(b"ok.py", "# TODO: fine\n");
    dir
}

fn scanned_paths(root: &Path) -> (Vec<String>, String) {
    let mut c = cmd("dispatcher");
    c.args(["scan", "--json"]).arg(root);
    let out = run(c).success();
    let paths = out
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["path"].as_str().unwrap().to_string()
        })
        .collect();
    (paths, out.stderr)
}

#[test]
fn names_a_task_cannot_hold_exactly_are_skipped_and_counted() {
    let dir = repo_with_bad_names();
    let (paths, stderr) = scanned_paths(dir.path());
    assert_eq!(paths, ["ok.py"], "{stderr}");
    assert!(stderr.contains("bad_path 5"), "{stderr}");

    // A run enqueues only what `apply` could find again.
    let redis = RedisServer::start();
    let mut c = cmd("dispatcher");
    c.args(["--redis-url", &redis.url(), "run"]).arg(dir.path());
    let out = run(c).success();
    assert!(
        out.stderr
            .contains("1 tasks enqueued (1 TODOs found in 1 files)"),
        "{}",
        out.stderr
    );
    let run_id = out.stdout.trim();
    let mut conn = redis.conn();
    let ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(tars_fleet::queue::keys::run_tasks(run_id))
        .query(&mut conn)
        .unwrap();
    assert_eq!(ids.len(), 1);
    let path: String = redis::cmd("HGET")
        .arg(tars_fleet::queue::keys::task(run_id, &ids[0]))
        .arg("path")
        .query(&mut conn)
        .unwrap();
    assert_eq!(path, "ok.py");
}

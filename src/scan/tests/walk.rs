//! The walk: ignore rules, include/exclude globs, skip reasons, bad roots, links, prefilter.

use std::path::Path;

use crate::scan::tags::TagSet;
use crate::scan::text::scan_text;

use super::*;

#[test]
fn walker_honours_ignores_and_counts_skips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let write = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, data).expect("write");
    };
    write(".gitignore", b"ignored.rs\nbuild/\n");
    write(".ignore", b"also_ignored.py\n");
    write("src/main.rs", b"fn main() {\n    // TODO: real\n}\n");
    write("src/clean.rs", b"fn clean() {}\n");
    write("ignored.rs", b"// TODO: ignored\n");
    write("build/gen.rs", b"// TODO: ignored too\n");
    write("also_ignored.py", b"# TODO: ignored\n");
    write(".hidden/x.rs", b"// TODO: hidden\n");
    write("bin.c", b"// TODO\0binary\n");
    write(
        "big.rs",
        format!("// TODO: big\n{}", "x".repeat(2000)).as_bytes(),
    );
    write("latin1.py", b"# TODO: caf\xe9\n");
    write("notes.txt", b"TODO: unknown language\n");
    write("tool", b"#!/bin/sh\n# TODO: shebang\n");

    let opts = ScanOptions {
        max_file_bytes: 1000,
        ..ScanOptions::default()
    };
    let report = scan_path(root, &opts).expect("scan");
    let paths: Vec<&str> = report.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["src/main.rs", "tool"]);
    assert_eq!(report.files_scanned, 3);
    assert_eq!(report.skipped.get(&SkipReason::Binary), Some(&1));
    assert_eq!(report.skipped.get(&SkipReason::TooLarge), Some(&1));
    assert_eq!(report.skipped.get(&SkipReason::NotUtf8), Some(&1));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let main = &report.files[0];
    assert_eq!(main.todos[0].text, "real");
    assert_eq!(main.content, "fn main() {\n    // TODO: real\n}\n");
    assert_eq!(main.content_hash, main.todos[0].content_hash);
    assert_eq!(report.files[1].todos[0].language, "shell");
}

#[test]
fn walker_rejects_bad_roots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope");
    assert!(matches!(
        scan_path(&missing, &ScanOptions::default()),
        Err(ScanError::NotFound { .. })
    ));
    let file = dir.path().join("f.rs");
    std::fs::write(&file, "").expect("write");
    let err = scan_path(&file, &ScanOptions::default()).expect_err("file root");
    assert!(matches!(err, ScanError::NotADirectory { .. }));
    assert!(err.to_string().contains("not a directory"));
}

#[cfg(unix)]
#[test]
fn walker_survives_symlink_loops_and_dangling_links() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir(root.join("d")).expect("mkdir");
    std::os::unix::fs::symlink(root, root.join("d/loop")).expect("symlink");
    std::os::unix::fs::symlink(root.join("missing.rs"), root.join("dangling.rs")).expect("symlink");
    std::fs::write(root.join("d/a.rs"), "// TODO: once\n").expect("write");
    let report = scan_path(root, &ScanOptions::default()).expect("scan");
    assert_eq!(report.files.len(), 1);
    assert_eq!(report.files[0].path, "d/a.rs");
}

#[test]
fn walker_include_and_exclude_globs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    for (rel, body) in [
        ("src/a.rs", "// TODO: a\n"),
        ("src/gen/b.rs", "// TODO: b\n"),
        ("tests/c.py", "# TODO: c\n"),
        ("d.go", "// TODO: d\n"),
    ] {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("write");
    }
    let paths = |include: &[&str], exclude: &[&str]| -> Vec<String> {
        let opts = ScanOptions {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            ..ScanOptions::default()
        };
        let report = scan_path(root, &opts).expect("scan");
        report.files.into_iter().map(|f| f.path).collect()
    };
    assert_eq!(paths(&[], &[]).len(), 4);
    assert_eq!(paths(&["src/**"], &[]), ["src/a.rs", "src/gen/b.rs"]);
    assert_eq!(paths(&["src/**"], &["gen/"]), ["src/a.rs"]);
    assert_eq!(
        paths(&["*.rs", "*.go"], &["src/gen/**"]),
        ["d.go", "src/a.rs"]
    );
    assert_eq!(paths(&[], &["*.rs"]), ["d.go", "tests/c.py"]);

    let bad = ScanOptions {
        include: vec!["src/{a,b".into()],
        ..ScanOptions::default()
    };
    let err = scan_path(root, &bad).expect_err("bad glob");
    assert!(matches!(err, ScanError::BadGlob { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("--include") && msg.contains("src/{a,b"),
        "{msg}"
    );
    let bad = ScanOptions {
        exclude: vec!["!keep".into()],
        ..ScanOptions::default()
    };
    assert!(scan_path(root, &bad).is_err());
}

#[test]
fn prefilter_never_hides_a_tag() {
    // Every file of the ground-truth corpus and the demo, scanned with and without the
    // whole-file prefilter, gives the same TODOs.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let opts = ScanOptions::default();
    let tags = TagSet::new(&opts.tags);
    let mut checked = 0;
    for dir in ["tests/fixtures/scan-corpus", "examples/demo"] {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).expect("read_dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Ok(content) = std::fs::read_to_string(&path) else {
                    continue;
                };
                let rel = path.to_string_lossy().into_owned();
                let text = content.strip_prefix('\u{feff}').unwrap_or(&content);
                let Some(lang) = detect_language(&rel, text.lines().next().unwrap_or("")) else {
                    continue;
                };
                let all = scan_text(&rel, &content, lang, &tags, None, &opts);
                let cands = tags.candidates(text.as_bytes()).expect("prefilter");
                let filtered = if cands.is_empty() {
                    Vec::new()
                } else {
                    scan_text(&rel, &content, lang, &tags, Some(&cands), &opts)
                };
                assert_eq!(filtered, all, "{rel}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "{checked}");
    let noise = "x.todo(); DEBUG; TODOS; todo_list; let todo = 1; // todo: y\n@Todo z";
    let found = tags.candidates(noise.as_bytes()).expect("prefilter");
    assert_eq!(found.len(), 2, "{found:?}");
}

/// The walker's entry for every file under `root`, as a scan lists them.
fn listed(root: &Path) -> Vec<ignore::DirEntry> {
    ignore::WalkBuilder::new(root)
        .build()
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
        .collect()
}

fn mkfifo(path: &Path) {
    let st = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(st.success(), "mkfifo {}", path.display());
}

#[cfg(unix)]
#[test]
fn a_file_swapped_for_a_fifo_after_the_listing_is_skipped_not_waited_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    // One with a known extension, one known only by its shebang (read before the language).
    std::fs::write(root.join("a.py"), "# TODO: a\n").expect("write");
    std::fs::write(root.join("tool"), "#!/bin/sh\n# TODO: t\n").expect("write");
    let entries = listed(&root);
    assert_eq!(entries.len(), 2);
    for e in &entries {
        std::fs::remove_file(e.path()).expect("rm");
        mkfifo(e.path());
    }
    // A FIFO's plain open waits for a writer that never comes: run it where a hang can be
    // seen, and keep the test's thread free to fail.
    let (tx, rx) = std::sync::mpsc::channel();
    let worker_root = root.clone();
    std::thread::spawn(move || {
        let opts = ScanOptions::default();
        let tags = TagSet::new(&opts.tags);
        for e in &entries {
            let out = crate::scan::walk::visit(&worker_root, e, &tags, &opts);
            let _ = tx.send((e.path().display().to_string(), format!("{out:?}")));
        }
    });
    for name in ["a.py", "tool"] {
        let (path, out) = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("the scan hangs on a FIFO ({name} or the other)"));
        if path.ends_with("a.py") {
            assert_eq!(out, "Some(Skipped(SpecialFile))", "{path}");
        } else {
            // A file of no known language is not counted at all.
            assert_eq!(out, "None", "{path}");
        }
    }
}

#[cfg(unix)]
#[test]
fn a_file_swapped_for_a_symlink_after_the_listing_is_not_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("repo");
    std::fs::create_dir(&root).expect("mkdir");
    let outside = dir.path().join("secret.py");
    std::fs::write(&outside, "# TODO: outside the repository\n").expect("write");
    std::fs::write(root.join("a.py"), "# TODO: a\n").expect("write");
    let entries = listed(&root);
    std::fs::remove_file(root.join("a.py")).expect("rm");
    std::os::unix::fs::symlink(&outside, root.join("a.py")).expect("symlink");
    let opts = ScanOptions::default();
    let tags = TagSet::new(&opts.tags);
    let out = crate::scan::walk::visit(&root, &entries[0], &tags, &opts);
    assert_eq!(format!("{out:?}"), "Some(Skipped(SpecialFile))");
}

#[cfg(unix)]
#[test]
fn paths_a_task_cannot_name_exactly_are_skipped_and_counted() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let raw = |name: &[u8]| root.join(std::ffi::OsStr::from_bytes(name));
    // Two names that one lossy conversion makes equal, with the same TODO: one id.
    std::fs::write(raw(b"\xff.py"), "# TODO: same\n").expect("write");
    std::fs::write(raw(b"\xfe.py"), "# TODO: same\n").expect("write");
    std::fs::write(raw(b"new\nline.py"), "# TODO: n\n").expect("write");
    std::fs::write(raw(b"tab\there.py"), "# TODO: t\n").expect("write");
    std::fs::write(raw(b"esc\x1b[2J.py"), "# TODO: e\n").expect("write");
    std::fs::create_dir(raw(b"dir\xff")).expect("mkdir");
    std::fs::write(raw(b"dir\xff/x.py"), "# TODO: x\n").expect("write");
    std::fs::write(raw(b"shebang\xff"), "#!/bin/sh\n# TODO: s\n").expect("write");
    std::fs::write(raw(b"notes\xff"), "TODO: no language, not counted\n").expect("write");
    // Round-trips: valid UTF-8 without control characters, whatever else is in it.
    std::fs::write(raw("caf\u{e9} \"q\" #1.py".as_bytes()), "# TODO: ok\n").expect("write");
    let report = scan_path(root, &ScanOptions::default()).expect("scan");
    let paths: Vec<&str> = report.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["caf\u{e9} \"q\" #1.py"], "{report:?}");
    assert_eq!(report.skipped.get(&SkipReason::BadPath), Some(&7));
    assert_eq!(report.files_scanned, 1);
}

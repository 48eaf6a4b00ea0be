use crate::util::{cmd, demo_repo, run};

/// The TODOs of examples/demo, as a person reading the code would list them.
const DEMO_TODOS: &[(&str, usize, &str)] = &[
    ("cmd/main.go", 6, "TODO"),
    ("scripts/backup.sh", 4, "TODO"),
    ("src/lib.rs", 3, "TODO"),
    ("src/stats.py", 5, "TODO"),
    ("src/stats.py", 10, "FIXME"),
    ("web/cart.js", 4, "TODO"),
];

#[test]
fn scan_json_lists_every_demo_todo_and_nothing_else() {
    let repo = demo_repo();
    // Ignored and unreadable-as-text files must not produce tasks.
    std::fs::create_dir_all(repo.path().join("build")).unwrap();
    std::fs::write(repo.path().join("build/gen.js"), "// TODO: generated\n").unwrap();
    std::fs::write(repo.path().join("packed.js"), b"\0\x01// TODO: binary\n").unwrap();
    std::fs::write(repo.path().join("latin1.py"), b"# TODO: caf\xe9\n").unwrap();

    let mut c = cmd("dispatcher");
    c.args(["scan", "--json"]).arg(repo.path());
    let out = run(c).success();
    let mut found: Vec<(String, usize, String)> = Vec::new();
    for line in out.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
        for key in ["id", "path", "line", "tag", "text", "language", "block"] {
            assert!(!v[key].is_null(), "{key} missing in {line}");
        }
        assert_eq!(v["id"].as_str().unwrap().len(), 16);
        let (start, end) = (
            v["block"]["start"].as_u64().unwrap(),
            v["block"]["end"].as_u64().unwrap(),
        );
        assert!(start < end, "{line}");
        found.push((
            v["path"].as_str().unwrap().to_string(),
            v["line"].as_u64().unwrap() as usize,
            v["tag"].as_str().unwrap().to_string(),
        ));
    }
    found.sort();
    let expected: Vec<(String, usize, String)> = DEMO_TODOS
        .iter()
        .map(|(p, l, t)| (p.to_string(), *l, t.to_string()))
        .collect();
    assert_eq!(found, expected);
    assert!(out.stderr.contains("binary 1"), "{}", out.stderr);
    assert!(out.stderr.contains("not_utf8 1"), "{}", out.stderr);
}

#[test]
fn scan_plain_output_is_path_line_tag_text() {
    let repo = demo_repo();
    let mut c = cmd("dispatcher");
    c.arg("scan").arg(repo.path());
    let out = run(c).success();
    assert!(
        out.stdout
            .lines()
            .any(|l| l == "src/stats.py:10: FIXME swap low and high when low > high"),
        "{}",
        out.stdout
    );
    assert_eq!(out.stdout.lines().count(), DEMO_TODOS.len());
    assert!(out.stderr.contains("6 TODOs in 5 files"), "{}", out.stderr);
    // The summary table: one row per language, one column per tag, most frequent first.
    let rows: Vec<Vec<&str>> = out
        .stderr
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let row = |first: &str| rows.iter().find(|r| r.first() == Some(&first)).cloned();
    assert_eq!(
        row("language"),
        Some(vec!["language", "TODO", "FIXME", "total"]),
        "{}",
        out.stderr
    );
    assert_eq!(row("python"), Some(vec!["python", "1", "1", "2"]));
    assert_eq!(row("go"), Some(vec!["go", "1", "0", "1"]));
    assert_eq!(row("total"), Some(vec!["total", "5", "1", "6"]));
}

#[test]
fn scan_block_covers_the_enclosing_function() {
    let repo = demo_repo();
    let mut c = cmd("dispatcher");
    c.args(["scan", "--json"]).arg(repo.path());
    let out = run(c).success();
    let content = std::fs::read_to_string(repo.path().join("src/lib.rs")).unwrap();
    let v: serde_json::Value = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["path"] == "src/lib.rs")
        .expect("the Rust TODO");
    let block = &content[v["block"]["start"].as_u64().unwrap() as usize
        ..v["block"]["end"].as_u64().unwrap() as usize];
    assert!(
        block.starts_with("pub fn parse_port(s: &str) -> u16 {"),
        "{block}"
    );
    assert!(block.trim_end().ends_with('}'), "{block}");
    assert!(!block.contains("fn greet"), "{block}");
}

#[test]
fn scan_include_and_exclude_globs() {
    let repo = demo_repo();
    let mut c = cmd("dispatcher");
    c.args(["scan", "--include", "src/**", "--include", "*.go"])
        .args(["--exclude", "*.py"])
        .arg(repo.path());
    let out = run(c).success();
    let paths: Vec<&str> = out
        .stdout
        .lines()
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(paths, ["cmd/main.go", "src/lib.rs"], "{}", out.stdout);

    let mut c = cmd("dispatcher");
    c.args(["scan", "--exclude", "src/[x"]).arg(repo.path());
    let out = run(c).code_is(2);
    assert!(
        out.stderr.contains("--exclude") && out.stderr.contains("src/[x"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);

    // `run` checks its globs before it needs Redis.
    let mut c = cmd("dispatcher");
    c.args([
        "--redis-url",
        "redis://127.0.0.1:1",
        "run",
        "--include",
        "{a",
    ])
    .arg(repo.path());
    let out = run(c).code_is(2);
    assert!(
        out.stderr.contains("--include") && out.stderr.contains("{a"),
        "{}",
        out.stderr
    );
}

#[test]
fn scan_context_shows_the_syntax_tree_block_with_the_same_ids() {
    let dir = tempfile::tempdir().unwrap();
    // Unindented body: the heuristic sees only column-0 lines, the parser sees the function.
    let src = "static int\ncount(const char *s)\n{\nint n = 0;\n/* TODO: handle NULL */\nwhile (*s++) n++;\nreturn n;\n}\n";
    std::fs::write(dir.path().join("count.c"), src).unwrap();
    let scan = |context: bool| -> serde_json::Value {
        let mut c = cmd("dispatcher");
        c.args(["scan", "--json"]);
        if context {
            c.arg("--context");
        }
        c.arg(dir.path());
        let out = run(c).success();
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "{}", out.stdout);
        serde_json::from_str(lines[0]).unwrap()
    };
    let plain = scan(false);
    let tree = scan(true);
    assert_eq!(plain["id"], tree["id"], "ids must not depend on --context");
    assert_eq!(tree["symbol"], "static int count(const char *s)");
    assert_eq!(tree["block_lines"], serde_json::json!([1, 8]));
    let start = tree["block"]["start"].as_u64().unwrap() as usize;
    let end = tree["block"]["end"].as_u64().unwrap() as usize;
    assert_eq!(&src[start..end], src, "the whole function");
    assert_ne!(plain["block_lines"], tree["block_lines"]);
}

/// Files in no known language are not scanned, and the summary says which, by extension;
/// languages from tokei's database are scanned (Zig here), and an extension-less file with a
/// known shebang is too.
#[test]
fn scan_counts_files_of_unknown_languages_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("alloc.zig"),
        "// TODO: free on error\nconst s = \"TODO\";\n",
    )
    .unwrap();
    std::fs::write(p.join("logo.png"), b"\x89PNG TODO").unwrap();
    std::fs::write(p.join("a.lock"), "# TODO: not ours\n").unwrap();
    std::fs::write(p.join("b.lock"), "# TODO: not ours\n").unwrap();
    std::fs::write(p.join("LICENSE"), "TODO text\n").unwrap();
    std::fs::write(p.join("tool"), "#!/bin/sh\n# FIXME: quote the path\n").unwrap();
    // Known, with no comment syntax: neither scanned nor unknown.
    std::fs::write(p.join("data.json"), "{\"TODO\": 1}\n").unwrap();
    let mut c = cmd("dispatcher");
    c.arg("scan").arg(p);
    let out = run(c).success();
    assert_eq!(
        out.stdout,
        "alloc.zig:1: TODO free on error\ntool:2: FIXME quote the path\n"
    );
    assert!(
        out.stderr
            .contains("unknown_language: 4 files not scanned (.lock 2, no extension 1, .png 1)"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("(2 files scanned)"), "{}", out.stderr);
}

/// `scan --languages`: the hand-written rows, then tokei's, each with where it comes from.
#[test]
fn scan_languages_lists_every_language_and_its_source() {
    let mut c = cmd("dispatcher");
    c.args(["scan", "--languages", "--json"]);
    let out = run(c).success();
    let rows: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert!(rows.len() >= 300, "{} languages", rows.len());
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .clone()
    };
    assert_eq!(row("rust")["source"], "hand-written");
    let tokei = row("zig")["source"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        tokei.starts_with("tokei ") && tokei.ends_with(" languages.json"),
        "{tokei}"
    );
    assert_eq!(row("zig")["extensions"][0], "zig");
    assert_eq!(row("cmake")["file_names"][0], "cmakelists.txt");
    assert_eq!(row("matlab")["extensions"][0], "m");
    assert_eq!(row("json")["scanned"], false);
    // A database row loses the names the hand-written table has (Python's `.py`).
    assert!(
        rows.iter()
            .filter(|r| r["extensions"]
                .as_array()
                .is_some_and(|e| e.iter().any(|x| x == "py")))
            .count()
            == 1
    );

    let mut c = cmd("dispatcher");
    c.args(["scan", "--languages"]);
    let text = run(c).success().stdout;
    assert!(
        text.lines()
            .any(|l| l.starts_with("zig ") && l.contains("tokei")),
        "{text}"
    );
    assert!(
        text.trim_end().ends_with("tokei 15.0.0 languages.json"),
        "{text}"
    );
}

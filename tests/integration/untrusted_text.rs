//! Issue 10, item 8: text from a repository or from Redis cannot drive the terminal of the
//! person reading the output (clear the screen, set the title, set the clipboard with OSC 52,
//! reorder a line with U+202E); JSON output stays exact (the same value once parsed, with
//! every such character in a `\uXXXX` escape).

use crate::util::{RedisServer, cmd, demo_repo, git, git_commit, run};
use tars_fleet::queue::keys;

/// The characters that must never reach a terminal raw.
const RAW: &[char] = &[
    '\x1b', '\x07', '\x08', '\r', '\u{9b}', '\u{202e}', '\u{2066}',
];

#[track_caller]
fn assert_no_raw_controls(what: &str, text: &str) {
    if let Some(c) = text.chars().find(|c| RAW.contains(c)) {
        panic!("{what} holds {c:?} raw:\n{}", text.escape_debug());
    }
}

/// A TODO whose words try everything, in a file whose name reverses the rest of the line.
const EVIL_TEXT: &str = "\x1b]0;pwned\x07title \x1b[2Jclear \x1b]52;c;ZXZpbA==\x07clip \u{9b}31mred \u{202e}gnp.exe back\rover \u{2066}iso";
const EVIL_NAME: &str = "x\u{202e}yp.py";

#[test]
fn scan_shows_escapes_from_a_repository_escaped_and_json_exact() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(EVIL_NAME),
        format!("def f():\n    # TODO: {EVIL_TEXT}\n    pass\n"),
    )
    .unwrap();

    let mut c = cmd("dispatcher");
    c.arg("scan").arg(dir.path());
    let out = run(c).success();
    assert_no_raw_controls("scan's stdout", &out.stdout);
    assert_no_raw_controls("scan's stderr", &out.stderr);
    assert!(
        out.stdout
            .contains(r"x\u{202e}yp.py:2: TODO \x1b]0;pwned\x07title \x1b[2Jclear"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(r"\x1b]52;c;ZXZpbA==\x07clip"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(r"\u{9b}31mred"), "{}", out.stdout);
    assert!(out.stdout.contains(r"back\rover"), "{}", out.stdout);

    let mut c = cmd("dispatcher");
    c.args(["scan", "--json"]).arg(dir.path());
    let out = run(c).success();
    assert_no_raw_controls("scan --json", &out.stdout);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["path"], EVIL_NAME);
    assert_eq!(v["text"], EVIL_TEXT);
}

#[test]
fn errors_show_what_they_name_escaped() {
    let mut c = cmd("dispatcher");
    c.args(["scan", "/no/such/\x1b]0;pwned\x07dir"]);
    let out = run(c).code_is(1);
    assert_no_raw_controls("the error", &out.stderr);
    assert!(
        out.stderr.contains(r"/no/such/\x1b]0;pwned\x07dir"),
        "{}",
        out.stderr
    );
}

#[test]
fn status_shows_redis_fields_escaped() {
    let redis = RedisServer::start();
    let repo = demo_repo();
    // A file name that reverses what follows it on the line, committed in the repository.
    std::fs::write(repo.path().join("\u{202e}evil.py"), "# TODO: \x1b[2Jwipe\n").unwrap();
    git(repo.path(), &["add", "-A"]);
    git_commit(repo.path(), "evil");
    let mut c = cmd("dispatcher");
    c.args(["--redis-url", &redis.url(), "run"])
        .arg(repo.path());
    let out = run(c).success();
    assert_no_raw_controls("run's output", &(out.stdout.clone() + &out.stderr));

    // Anyone on Redis's network can write a heartbeat, or a run's repository.
    let run_id = out.stdout.trim().to_string();
    let mut conn = redis.conn();
    let _: () = redis::cmd("HSET")
        .arg(keys::worker("evil"))
        .arg("id")
        .arg("w\x1b]52;c;aGVsbG8=\x07")
        .arg("host")
        .arg("\x1b[2J\x1b[H")
        .arg("state")
        .arg("idle\u{202e}")
        .arg("done")
        .arg("1\r2")
        .arg("current")
        .arg("\u{9b}0m")
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(keys::run(&run_id))
        .arg("repo")
        .arg("/repo\x1b]0;title\x07")
        .query(&mut conn)
        .unwrap();
    // Beside it, a heartbeat with a field that is not UTF-8 and a worker key of another type:
    // neither may hide the others (they made `status` show no worker at all).
    let _: () = redis::cmd("HSET")
        .arg(keys::worker("bytes"))
        .arg("id")
        .arg(&b"w-\xff"[..])
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(keys::worker("string"))
        .arg("x")
        .query(&mut conn)
        .unwrap();

    let mut c = cmd("dispatcher");
    c.args(["--redis-url", &redis.url(), "status"]);
    let out = run(c).success();
    assert_no_raw_controls("status", &out.stdout);
    for shown in [
        r"w\x1b]52;c;aGVsbG8=\x07",
        r"host \x1b[2J\x1b[H",
        r"idle\u{202e}",
        r"done 1\r2",
        r"current \u{9b}0m",
        r"repo /repo\x1b]0;title\x07",
    ] {
        assert!(
            out.stdout.contains(shown),
            "{shown} not in:\n{}",
            out.stdout
        );
    }

    // JSON stays exact, in escapes a terminal does not act on.
    let mut c = cmd("dispatcher");
    c.args(["--redis-url", &redis.url(), "status", "--json"]);
    let out = run(c).success();
    assert_no_raw_controls("status --json", &out.stdout);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["repo"], "/repo\x1b]0;title\x07");
}

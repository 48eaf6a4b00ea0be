//! Issue 13: `dispatcher land` makes one commit per done patch on a review branch, several per
//! file, from the commit the run scanned, and never touches the work tree, the index or HEAD.
//! Real git repositories, a real Redis, the real binaries (the LLM is the resolving stand-in:
//! these tests are about landing, not the model).

use std::path::Path;

use crate::fake_llm::resolved_run;
use crate::util::{Output, RedisServer, cmd, committed_repo, git, run};

const AUTHOR: &str = "Test Reviewer <reviewer@example.org>";

const CALC: &str = "\"\"\"Calculator.\"\"\"\n\n\ndef add(a, b):\n    # TODO: check that both are numbers\n    return a + b\n\n\ndef sub(a, b):\n    # TODO: saturate at zero\n    return a - b\n\n\ndef mul(a, b):\n    # FIXME: handle None\n    return a * b\n";
const CART: &str = "export function total(items) {\n  // TODO: skip items without a price\n  return items.reduce((s, i) => s + i.price, 0);\n}\n";

fn text(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn land(redis: &RedisServer, repo: &Path, args: &[&str]) -> Output {
    let mut c = cmd("dispatcher");
    c.env("TARS_REDIS__URL", redis.url())
        .current_dir(repo)
        .arg("land")
        .args(args);
    run(c)
}

/// A clone of `repo` in a directory of its own.
fn clone_of(repo: &Path) -> tempfile::TempDir {
    let clone = tempfile::tempdir().unwrap();
    let (from, to) = (repo.to_str().unwrap(), clone.path().to_str().unwrap());
    git(clone.path(), &["clone", "-q", from, to]);
    clone
}

/// Everything `land` must leave alone: the work tree's files, the index and HEAD, byte for byte.
fn snapshot(repo: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for name in [
        "src/calc.py",
        "web/cart.js",
        "notes.txt",
        ".git/index",
        ".git/HEAD",
    ] {
        files.push((
            name.to_string(),
            std::fs::read(repo.join(name)).unwrap_or_default(),
        ));
    }
    files.push(("HEAD".into(), git(repo, &["rev-parse", "HEAD"]).stdout));
    files.push((
        "status".into(),
        git(repo, &["status", "--porcelain=v2"]).stdout,
    ));
    files
}

#[test]
fn a_run_lands_one_commit_per_patch_and_leaves_work_tree_index_and_head_alone() {
    let redis = RedisServer::start();
    let repo = committed_repo(&[
        ("src/calc.py", CALC),
        ("web/cart.js", CART),
        ("notes.txt", "my notes\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let run_id = resolved_run(&redis, repo.path(), out.path());
    let base = text(&git(repo.path(), &["rev-parse", "HEAD"]));

    // The user's own work, uncommitted: an edit, and a staged change.
    std::fs::write(
        repo.path().join("notes.txt"),
        "my notes\nmore, not committed\n",
    )
    .unwrap();
    std::fs::write(repo.path().join("src/calc.py"), format!("{CALC}\n# mine\n")).unwrap();
    git(repo.path(), &["add", "src/calc.py"]);
    let before = snapshot(repo.path());

    let r = land(&redis, repo.path(), &["--author", AUTHOR]).success();
    let branch = format!("tars/{run_id}");
    assert!(
        r.stderr.contains(&format!("4 of 4 landed on {branch}")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("landed  "), "{}", r.stderr);
    assert_eq!(
        snapshot(repo.path()),
        before,
        "work tree, index and HEAD untouched"
    );

    // One commit per patch, on the scanned commit, in path and line order.
    let subjects = text(&git(
        repo.path(),
        &[
            "log",
            "--reverse",
            "--format=%s",
            &format!("{base}..{branch}"),
        ],
    ));
    let subjects: Vec<&str> = subjects.lines().collect();
    assert_eq!(
        subjects,
        [
            "Resolve TODO in src/calc.py: check that both are numbers",
            "Resolve TODO in src/calc.py: saturate at zero",
            "Resolve FIXME in src/calc.py: handle None",
            "Resolve TODO in web/cart.js: skip items without a price",
        ]
    );
    let first_parent = text(&git(
        repo.path(),
        &["rev-list", "--max-parents=0", "--first-parent", &branch],
    ));
    assert_eq!(
        text(&git(repo.path(), &["merge-base", &base, &branch])),
        base,
        "built on the scanned commit ({first_parent})"
    );
    let author = text(&git(
        repo.path(),
        &["log", "-1", "--format=%an <%ae>", &branch],
    ));
    assert_eq!(author, AUTHOR);
    // Each commit touches one file.
    let stat = text(&git(
        repo.path(),
        &[
            "log",
            "--format=",
            "--name-only",
            &format!("{base}..{branch}"),
        ],
    ));
    assert_eq!(stat.lines().filter(|l| !l.is_empty()).count(), 4, "{stat}");

    // The branch's tree is the patches applied in order by git itself, on a clone.
    let clone = clone_of(repo.path());
    git(clone.path(), &["checkout", "-q", &base]);
    let mut patches: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "patch"))
        .collect();
    patches.sort();
    assert_eq!(patches.len(), 4);
    for p in &patches {
        git(clone.path(), &["apply", p.to_str().unwrap()]);
    }
    git(clone.path(), &["add", "-A"]);
    let applied_tree = text(&git(clone.path(), &["write-tree"]));
    let landed_tree = text(&git(
        repo.path(),
        &["rev-parse", &format!("{branch}^{{tree}}")],
    ));
    assert_eq!(
        applied_tree, landed_tree,
        "the branch is the patches applied"
    );

    // Trailers a reviewer's tools read.
    let body = git(repo.path(), &["log", "-1", "--format=%B", &branch]).stdout;
    let parsed = {
        let mut c = std::process::Command::new("git");
        c.args(["interpret-trailers", "--parse"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&body).unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    };
    assert!(
        parsed.contains(&format!("Tars-Run: {run_id}\n")),
        "{parsed}"
    );
    assert!(parsed.contains("Tars-Task: "), "{parsed}");
    assert!(parsed.contains("Tars-Model: test-model\n"), "{parsed}");
    assert!(
        parsed.contains("Tars-Verified: skipped (the run did not verify)"),
        "{parsed}"
    );
    let task = parsed
        .lines()
        .find_map(|l| l.strip_prefix("Tars-Task: "))
        .unwrap()
        .to_string();
    let found = text(&git(
        repo.path(),
        &[
            "log",
            "--format=%s",
            "--grep",
            &format!("Tars-Task: {task}"),
            &branch,
        ],
    ));
    assert_eq!(
        found,
        "Resolve TODO in web/cart.js: skip items without a price"
    );

    // Landing again: the branch exists; --force resets it to the same commits' content.
    let again = land(&redis, repo.path(), &["--author", AUTHOR]).code_is(2);
    assert!(again.stderr.contains("exists already"), "{}", again.stderr);
    land(&redis, repo.path(), &["--author", AUTHOR, "--force"]).success();
    let forced_tree = text(&git(
        repo.path(),
        &["rev-parse", &format!("{branch}^{{tree}}")],
    ));
    assert_eq!(forced_tree, landed_tree);
    assert_eq!(snapshot(repo.path()), before);
}

#[test]
fn overlapping_patches_and_files_scanned_dirty_are_skipped_with_their_reasons() {
    let redis = RedisServer::start();
    // Two TODOs in one function: one block, so the second patch overlaps the first.
    let both = "def area(w, h):\n    # TODO: reject negative sizes\n    # TODO: round to two places\n    return w * h\n";
    let repo = committed_repo(&[("geo.py", both), ("web/cart.js", CART)]);
    // Scanned with an uncommitted change: that file is not what the commit holds.
    std::fs::write(
        repo.path().join("web/cart.js"),
        format!("{CART}\n// a local edit\n"),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let run_id = resolved_run(&redis, repo.path(), out.path());
    let r = land(&redis, repo.path(), &["--author", AUTHOR, "--json"]).code_is(8);
    assert!(
        r.stderr.contains("overlaps the block of task"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("web/cart.js: the file in the scanned commit")
            && r.stderr.contains("differs from what was scanned"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("1 of 3 landed on tars/{run_id}")),
        "{}",
        r.stderr
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let patches = v["patches"].as_array().unwrap();
    assert_eq!(patches.len(), 3);
    assert_eq!(
        patches.iter().filter(|p| p["commit"].is_string()).count(),
        1,
        "{v}"
    );
    assert_eq!(v["branch"], format!("tars/{run_id}"));
}

#[test]
fn an_mbox_alone_writes_nothing_to_the_repository_and_git_am_rebuilds_the_branch() {
    let redis = RedisServer::start();
    let repo = committed_repo(&[("src/calc.py", CALC), ("web/cart.js", CART)]);
    let out = tempfile::tempdir().unwrap();
    let _run_id = resolved_run(&redis, repo.path(), out.path());
    let base = text(&git(repo.path(), &["rev-parse", "HEAD"]));
    let objects = |r: &Path| text(&git(r, &["count-objects", "-v"]));
    let before = (
        objects(repo.path()),
        text(&git(repo.path(), &["branch", "--list"])),
    );

    let files = tempfile::tempdir().unwrap();
    let mbox = files.path().join("run.mbox");
    let page = files.path().join("review.md");
    let r = land(
        &redis,
        repo.path(),
        &[
            "--author",
            AUTHOR,
            "--mbox",
            mbox.to_str().unwrap(),
            "--report",
            page.to_str().unwrap(),
        ],
    )
    .success();
    assert!(r.stderr.contains("4 of 4 landed in"), "{}", r.stderr);
    assert_eq!(
        (
            objects(repo.path()),
            text(&git(repo.path(), &["branch", "--list"]))
        ),
        before,
        "no object and no branch written to the repository"
    );

    // `git am` on a clone at the scanned commit gives the tree a branch landing gives.
    let clone = clone_of(repo.path());
    git(clone.path(), &["checkout", "-q", "-b", "review", &base]);
    git(
        clone.path(),
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "am",
            "-q",
            mbox.to_str().unwrap(),
        ],
    );
    let am_tree = text(&git(clone.path(), &["rev-parse", "HEAD^{tree}"]));
    land(
        &redis,
        repo.path(),
        &["--author", AUTHOR, "--branch", "review"],
    )
    .success();
    let landed_tree = text(&git(repo.path(), &["rev-parse", "review^{tree}"]));
    assert_eq!(am_tree, landed_tree);
    assert_eq!(
        text(&git(
            clone.path(),
            &["rev-list", "--count", &format!("{base}..HEAD")]
        )),
        "4"
    );

    let page = std::fs::read_to_string(&page).unwrap();
    assert!(page.contains("## `src/calc.py:5` TODO"), "{page}");
    assert!(page.contains("> saturate at zero"), "{page}");
    assert!(page.contains("```diff\ndiff --git a/src/calc.py"), "{page}");
    assert!(page.contains("model test-model"), "{page}");
}

#[test]
fn a_failure_part_way_leaves_no_branch() {
    let redis = RedisServer::start();
    let repo = committed_repo(&[("src/calc.py", CALC)]);
    let out = tempfile::tempdir().unwrap();
    let run_id = resolved_run(&redis, repo.path(), out.path());
    let branch = format!("tars/{run_id}");
    let exists = |b: &str| {
        std::process::Command::new("git")
            .args(["rev-parse", "-q", "--verify", &format!("refs/heads/{b}")])
            .current_dir(repo.path())
            .output()
            .unwrap()
            .status
            .success()
    };
    // Every commit is made, then the mbox cannot be written: no branch.
    let r = land(
        &redis,
        repo.path(),
        &[
            "--author",
            AUTHOR,
            "--branch",
            &branch,
            "--mbox",
            "/nonexistent/dir/x.mbox",
        ],
    )
    .code_is(1);
    assert!(
        r.stderr.contains("cannot write /nonexistent/dir/x.mbox"),
        "{}",
        r.stderr
    );
    assert!(!exists(&branch), "no branch after a failure");

    // No identity at all (user.useConfigOnly, no user.email): the message names the fix.
    git(repo.path(), &["config", "user.useConfigOnly", "true"]);
    let home = tempfile::tempdir().unwrap();
    let mut c = cmd("dispatcher");
    c.env("TARS_REDIS__URL", redis.url())
        .env("HOME", home.path())
        .current_dir(repo.path())
        .arg("land");
    let r = run(c).code_is(1);
    assert!(r.stderr.contains("--author 'Name <email>'"), "{}", r.stderr);
    assert!(!exists(&branch), "no branch after a failure");
    // A branch name git refuses, and the branch checked out, are refused before any work.
    let r = land(
        &redis,
        repo.path(),
        &["--author", AUTHOR, "--branch", "a..b"],
    )
    .code_is(2);
    assert!(r.stderr.contains("not a valid branch name"), "{}", r.stderr);
    let head = text(&git(repo.path(), &["symbolic-ref", "--short", "HEAD"]));
    let r = land(
        &redis,
        repo.path(),
        &["--author", AUTHOR, "--branch", &head, "--force"],
    )
    .code_is(2);
    assert!(r.stderr.contains("is checked out"), "{}", r.stderr);
}

/// A hostile repository names commands for a clean filter, a textconv, an external diff,
/// commit signing and hooks; `land` (branch and mbox) runs none of them.
#[test]
fn a_repository_s_own_commands_never_run_during_land() {
    let redis = RedisServer::start();
    let repo = committed_repo(&[
        ("src/calc.py", CALC),
        (".gitattributes", "*.py filter=evil diff=evil\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let _run_id = resolved_run(&redis, repo.path(), out.path());
    let marker = tempfile::tempdir().unwrap();
    let ran = marker.path().join("ran");
    let script = marker.path().join("evil.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$0 $*\" >> {}\ncat\n", ran.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let s = script.to_str().unwrap();
    for (k, v) in [
        ("filter.evil.clean", s),
        ("filter.evil.smudge", s),
        ("diff.evil.textconv", s),
        ("diff.evil.command", s),
        ("diff.external", s),
        ("commit.gpgSign", "true"),
        ("gpg.program", s),
        ("core.hooksPath", marker.path().to_str().unwrap()),
        ("core.fsmonitor", s),
    ] {
        git(repo.path(), &["config", k, v]);
    }
    for hook in ["post-commit", "reference-transaction", "post-rewrite"] {
        std::fs::copy(&script, marker.path().join(hook)).unwrap();
    }
    let mbox = marker.path().join("x.mbox");
    land(
        &redis,
        repo.path(),
        &[
            "--author",
            AUTHOR,
            "--mbox",
            mbox.to_str().unwrap(),
            "--branch",
            "review",
        ],
    )
    .success();
    assert!(
        !ran.exists(),
        "a repository command ran: {}",
        std::fs::read_to_string(&ran).unwrap_or_default()
    );
    assert!(
        std::fs::read_to_string(&mbox)
            .unwrap()
            .contains("Resolve TODO")
    );
}

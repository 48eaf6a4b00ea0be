//! `dispatcher apply` never lands on uncommitted work, whatever hides it (a submodule, a
//! repository-local excludes file, a second `apply` at the same moment) and never leaves a temp
//! file behind, however it is stopped. Real binaries, a real redis-server, a scripted LLM.

use std::path::Path;
use std::process::Stdio;

use crate::fake_llm::{many_todos_repo, resolved_run};
use crate::util::{Proc, RedisServer, cmd, committed_repo, git, git_commit, run};

fn done_run(redis: &RedisServer, repo: &Path) -> String {
    let out = tempfile::tempdir().unwrap();
    resolved_run(redis, repo, out.path())
}

/// `many_todos_repo(files, 1)`, committed.
fn committed_todos(files: usize) -> tempfile::TempDir {
    let repo = many_todos_repo(files, 1);
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "-A"]);
    git_commit(repo.path(), "init");
    repo
}

fn apply(redis: &RedisServer, run_id: &str, repo: &Path) -> crate::util::Output {
    let mut a = cmd("dispatcher");
    a.env("TARS_REDIS__URL", redis.url())
        .args(["apply", run_id, "--repo"])
        .arg(repo);
    run(a)
}

const PY: &str = "def f(x):\n    # TODO: check x\n    return x\n";

#[test]
fn a_file_inside_a_submodule_with_local_edits_is_left_alone() {
    let redis = RedisServer::start();
    let sub_src = committed_repo(&[("lib.py", PY)]);
    let top = committed_repo(&[("main.py", PY)]);
    git(
        top.path(),
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            sub_src.path().to_str().unwrap(),
            "sub",
        ],
    );
    git_commit(top.path(), "add a submodule");
    let run_id = done_run(&redis, top.path());
    // A local edit inside the submodule that keeps the scanned content: staged there, then
    // the file restored. The superproject's `git status -- sub/lib.py` says nothing.
    let file = top.path().join("sub/lib.py");
    std::fs::write(&file, "def f(x):\n    return x  # mine\n").unwrap();
    git(&top.path().join("sub"), &["add", "lib.py"]);
    std::fs::write(&file, PY).unwrap();
    let r = apply(&redis, &run_id, top.path()).success();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), PY, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("sub/lib.py: it is inside the submodule or nested repository sub"),
        "{}",
        r.stderr
    );
    // The superproject's own file is patched as usual.
    let main = std::fs::read_to_string(top.path().join("main.py")).unwrap();
    assert!(!main.contains("TODO"), "{main}\n{}", r.stderr);
}

#[test]
fn a_file_git_ignores_through_a_repository_excludes_file_is_never_written() {
    let redis = RedisServer::start();
    let repo = committed_repo(&[("main.py", PY)]);
    // Ignored by a repository-local core.excludesFile, which the scanner does not read: the
    // scanner finds its TODO, git status never shows its changes.
    std::fs::write(repo.path().join(".git/tars-excludes"), "notes.py\n").unwrap();
    git(
        repo.path(),
        &["config", "core.excludesFile", ".git/tars-excludes"],
    );
    let notes = repo.path().join("notes.py");
    std::fs::write(&notes, PY).unwrap();
    let run_id = done_run(&redis, repo.path());
    let r = apply(&redis, &run_id, repo.path()).success();
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), PY, "{}", r.stderr);
    assert!(
        r.stderr.contains("notes.py: git does not track it"),
        "{}",
        r.stderr
    );
}

#[test]
fn two_applies_at_once_never_both_write_a_file() {
    let redis = RedisServer::start();
    let repo = committed_todos(8);
    let run_id = done_run(&redis, repo.path());
    for round in 0..15 {
        let start = || {
            let mut a = cmd("dispatcher");
            a.env("TARS_REDIS__URL", redis.url())
                .args(["apply", &run_id, "--repo"])
                .arg(repo.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            a.spawn().unwrap()
        };
        let (a, b) = (start(), start());
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let (ea, eb) = (
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&b.stderr),
        );
        for f in 0..8 {
            let line = |e: &str| {
                e.lines()
                    .any(|l| l.starts_with("applied") && l.ends_with(&format!(" m{f}.py")))
            };
            assert!(
                line(&ea) ^ line(&eb),
                "round {round}: m{f}.py must be applied by exactly one apply\nfirst:\n{ea}\nsecond:\n{eb}"
            );
            let text = std::fs::read_to_string(repo.path().join(format!("m{f}.py"))).unwrap();
            assert!(!text.contains("TODO"), "round {round}: m{f}.py\n{text}");
        }
        git(repo.path(), &["checkout", "-q", "--", "."]);
    }
}

#[test]
fn a_killed_apply_leaves_every_file_whole_and_no_temp_file() {
    let redis = RedisServer::start();
    let repo = committed_todos(150);
    let run_id = done_run(&redis, repo.path());
    let original: Vec<String> = (0..150)
        .map(|f| std::fs::read_to_string(repo.path().join(format!("m{f}.py"))).unwrap())
        .collect();
    let mut killed_midway = 0;
    for round in 0..12u64 {
        let mut a = cmd("dispatcher");
        a.env("TARS_REDIS__URL", redis.url())
            .args(["apply", &run_id, "--repo"])
            .arg(repo.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut p = Proc {
            child: a.spawn().unwrap(),
            name: "apply".into(),
        };
        // Wait until it has written some files, then SIGKILL it wherever it is.
        let first_written = || {
            (0..150).any(|f| {
                std::fs::read_to_string(repo.path().join(format!("m{f}.py")))
                    .is_ok_and(|t| t != original[f])
            })
        };
        while !first_written() && p.child.try_wait().unwrap().is_none() {
            std::thread::yield_now();
        }
        for _ in 0..round * 3 {
            std::thread::yield_now();
        }
        p.signal("KILL");
        let status = p.wait_timeout(std::time::Duration::from_secs(10));
        if status.is_some_and(|s| s.code().is_none()) {
            killed_midway += 1;
        }
        let names: Vec<String> = std::fs::read_dir(repo.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let stray: Vec<&String> = names.iter().filter(|n| n.contains(".tars-")).collect();
        assert!(stray.is_empty(), "round {round}: left behind: {stray:?}");
        for (f, orig) in original.iter().enumerate() {
            let text = std::fs::read_to_string(repo.path().join(format!("m{f}.py"))).unwrap();
            // Whole: either what was there, or the patched file (no TODO, still parses as
            // the same function).
            assert!(
                &text == orig || (!text.contains("TODO") && text.contains(&format!("def f_{f}_0"))),
                "round {round}: m{f}.py is neither the original nor the patched file:\n{text}"
            );
        }
        git(repo.path(), &["checkout", "-q", "--", "."]);
    }
    assert!(
        killed_midway > 0,
        "apply always finished before the kill: the test did not test anything"
    );
}

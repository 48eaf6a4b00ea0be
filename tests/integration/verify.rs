//! The verify stage: real verifier processes (`worker --role verify`) check gated patches with
//! the repository's own tests (python3's unittest, node's test runner, cargo on an offline
//! crate), a real redis-server holds the queue, and a scripted LLM answers wrong, then right,
//! so that the repair and candidate paths run on demand.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::fake_llm::{FakeLlm, Reply, models_reply, openai_completion, resolving_answer};
use crate::util::{Proc, RedisServer, cmd, committed_repo, git, run, spawn_worker};

/// A verifier serving repositories under `root`, with its scratch trees in `scratch`, allowed
/// to run `check` (the command its own configuration names; a run's is not enough).
fn spawn_verifier(
    redis: &RedisServer,
    root: &Path,
    scratch: &Path,
    check: &str,
    extra: &[(&str, &str)],
) -> Proc {
    let mut w = cmd("worker");
    w.env("TARS_REDIS__URL", redis.url())
        .env("TARS_VERIFY__DIR", scratch)
        .env("TARS_VERIFY__COMMAND", check)
        .args(["--role", "verify", "--root"])
        .arg(root)
        .envs(extra.iter().copied())
        .stderr(Stdio::null());
    Proc {
        child: w.spawn().expect("spawn verifier"),
        name: "verifier".into(),
    }
}

/// An LLM whose chat answers come from `answer(index, request body)`.
fn scripted(answer: impl Fn(usize, &str) -> String + Send + Sync + 'static) -> FakeLlm {
    let calls = Arc::new(AtomicUsize::new(0));
    FakeLlm::start(move |req, _| match req.path.as_str() {
        "/v1/chat/completions" => {
            let i = calls.fetch_add(1, Ordering::SeqCst);
            Reply::Json {
                status: 200,
                body: openai_completion(&answer(i, &req.body)),
            }
        }
        _ => models_reply(),
    })
}

/// `dispatcher run --wait --verify CMD REPO` with a summary in `out`; returns the output.
fn verified_run(
    redis: &RedisServer,
    repo: &Path,
    out: &Path,
    verify: &str,
    extra: &[(&str, &str)],
) -> crate::util::Output {
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .envs(extra.iter().copied())
        .args([
            "run",
            "--wait",
            "--timeout",
            "300",
            "--verify",
            verify,
            "--out",
        ])
        .arg(out)
        .arg(repo);
    run(d)
}

fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

const CLAMP_PY: &str =
    "def clamp(x, lo, hi):\n    # TODO: clamp x into the range [lo, hi]\n    return x\n";
const CLAMP_TEST_PY: &str = "import unittest\nfrom calc import clamp\n\n\nclass T(unittest.TestCase):\n    def test_inside(self):\n        self.assertEqual(clamp(5, 0, 10), 5)\n";

#[test]
fn a_patch_that_fails_the_tests_goes_back_to_the_model_and_the_repair_is_verified() {
    let redis = RedisServer::start();
    let r = committed_repo(&[("calc.py", CLAMP_PY), ("test_calc.py", CLAMP_TEST_PY)]);
    let scratch = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let fake = scripted(|i, _| match i {
        // Breaks the visible test: clamp(5, 0, 10) is 6.
        0 => "```python\ndef clamp(x, lo, hi):\n    return x + 1\n```".into(),
        _ => "```python\ndef clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n```".into(),
    });
    let _w = spawn_worker(&redis, &fake.url(), &[], Stdio::null());
    let _v = spawn_verifier(
        &redis,
        r.path(),
        scratch.path(),
        "python3 -m unittest -q",
        &[],
    );
    let res = verified_run(&redis, r.path(), out.path(), "python3 -m unittest -q", &[]).success();
    assert!(
        res.stderr.contains("verify: `python3 -m unittest -q`"),
        "{}",
        res.stderr
    );

    let s = summary(out.path());
    let t = &s["tasks"][0];
    assert_eq!(t["state"], "done", "{t:#}");
    assert_eq!(t["verified"], "passed", "{t:#}");
    assert_eq!(t["repairs"], 1, "{t:#}");
    assert!(t["verify_ms"].as_u64().is_some(), "{t:#}");
    let patch = std::fs::read_to_string(
        out.path()
            .join(format!("{}.patch", t["id"].as_str().unwrap())),
    )
    .unwrap();
    assert!(patch.contains("+    return max(lo, min(x, hi))"), "{patch}");
    // The repair prompt showed the model its answer and the test's failure.
    let reqs = fake.requests.lock().unwrap().clone();
    let chats: Vec<_> = reqs
        .iter()
        .filter(|r| r.path == "/v1/chat/completions")
        .collect();
    assert_eq!(chats.len(), 2, "one answer, one repair");
    assert!(chats[1].body.contains("return x + 1"), "{}", chats[1].body);
    assert!(
        chats[1].body.contains("AssertionError"),
        "{}",
        chats[1].body
    );
    assert!(
        chats[1].body.contains("python3 -m unittest -q"),
        "{}",
        chats[1].body
    );
    let v = &s["verification"];
    assert_eq!(
        (v["passed"].as_u64(), v["pass_at_1"].as_u64()),
        (Some(1), Some(0)),
        "{v:#}"
    );
    // Verification happened in the verifier's own tree: the repository is as it was.
    assert!(
        git(r.path(), &["status", "--porcelain", "--ignored"])
            .stdout
            .is_empty()
    );
    // status shows the check and its outcomes.
    let mut st = cmd("dispatcher");
    st.env("TARS_REDIS__URL", redis.url())
        .args(["status", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&run(st).success().stdout).unwrap();
    assert_eq!(st["verify"]["passed"], 1, "{st:#}");
    assert_eq!(st["verify"]["baseline"], "passed", "{st:#}");
}

#[test]
fn with_several_candidates_the_first_that_passes_the_tests_wins() {
    let redis = RedisServer::start();
    let r = committed_repo(&[
        (
            "lib.js",
            "function sign(x) {\n  // TODO: return -1 for negative numbers\n  return x > 0 ? 1 : 0;\n}\nmodule.exports = { sign };\n",
        ),
        (
            "lib.test.js",
            "const test = require('node:test');\nconst assert = require('node:assert');\nconst { sign } = require('./lib.js');\ntest('positive', () => assert.strictEqual(sign(5), 1));\ntest('zero', () => assert.strictEqual(sign(0), 0));\n",
        ),
    ]);
    let scratch = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    // The first candidate (the configured temperature) breaks a visible test; of the two
    // others, one is right and one fails the gates (the TODO is still there).
    let right = Arc::new(AtomicUsize::new(0));
    let fake = scripted(move |_, body| {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        if v["temperature"].as_f64().unwrap() < 0.5 {
            "```js\nfunction sign(x) {\n  return x < 0 ? -1 : 1;\n}\n```".into()
        } else if right.fetch_add(1, Ordering::SeqCst) == 0 {
            "```js\nfunction sign(x) {\n  return x > 0 ? 1 : x < 0 ? -1 : 0;\n}\n```".into()
        } else {
            "```js\nfunction sign(x) {\n  // TODO: return -1 for negative numbers\n  return 1;\n}\n```".into()
        }
    });
    let _w = spawn_worker(
        &redis,
        &fake.url(),
        &[("TARS_LLM__CANDIDATES", "3")],
        Stdio::null(),
    );
    let _v = spawn_verifier(&redis, r.path(), scratch.path(), "node --test", &[]);
    verified_run(&redis, r.path(), out.path(), "node --test", &[]).success();
    let s = summary(out.path());
    let t = &s["tasks"][0];
    assert_eq!(
        (t["state"].as_str(), t["verified"].as_str()),
        (Some("done"), Some("passed")),
        "{t:#}"
    );
    assert_eq!(
        t["candidate"], 2,
        "the second gated candidate passed: {t:#}"
    );
    assert_eq!(t["candidates"], 2, "one of three failed the gates: {t:#}");
    assert_eq!(t["repairs"], 0, "{t:#}");
    assert_eq!(t["llm_calls"], 3, "{t:#}");
    assert_eq!(
        fake.count("/v1/chat/completions"),
        3,
        "no repair was needed"
    );
    let v = &s["verification"];
    assert_eq!(
        (v["pass_at_1"].as_u64(), v["pass_at_k"].as_u64()),
        (Some(0), Some(1)),
        "{v:#}"
    );
}

#[test]
fn a_patch_that_fails_every_round_ends_verify_failed_and_is_never_applied() {
    let redis = RedisServer::start();
    let r = committed_repo(&[
        (
            "Cargo.toml",
            "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n",
        ),
        (
            "src/lib.rs",
            "pub fn double(x: i32) -> i32 {\n    // TODO: saturate instead of overflowing\n    x * 2\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn doubles() {\n        assert_eq!(super::double(4), 8);\n    }\n}\n",
        ),
        (".gitignore", "target/\n"),
    ]);
    let scratch = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    // Always a patch that parses but does not compile (a type error).
    let fake = scripted(|_, _| {
        "```rust\npub fn double(x: i32) -> i32 {\n    x.saturating_mul(2u64)\n}\n```".into()
    });
    let _w = spawn_worker(&redis, &fake.url(), &[], Stdio::null());
    let _v = spawn_verifier(
        &redis,
        r.path(),
        scratch.path(),
        "cargo test --offline -q",
        &[],
    );
    let res = verified_run(
        &redis,
        r.path(),
        out.path(),
        "cargo test --offline -q",
        &[("TARS_VERIFY__REPAIRS", "1")],
    );
    let res = res.code_is(5);
    assert!(res.stderr.contains("verify_failed"), "{}", res.stderr);
    let s = summary(out.path());
    let t = &s["tasks"][0];
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["reason_kind"], "verify_failed", "{t:#}");
    assert_eq!(t["verified"], "failed", "{t:#}");
    assert_eq!(t["repairs"], 1, "{t:#}");
    assert!(
        t["verify_output"]
            .as_str()
            .unwrap()
            .contains("error[E0308]"),
        "{t:#}"
    );
    assert!(
        t["reason"]
            .as_str()
            .unwrap()
            .contains("cargo test --offline -q"),
        "{t:#}"
    );
    assert_eq!(
        fake.count("/v1/chat/completions"),
        2,
        "the answer and one repair"
    );
    assert!(
        t["patch"].is_null(),
        "no patch file for a failed task: {t:#}"
    );
    let mut a = cmd("dispatcher");
    a.env("TARS_REDIS__URL", redis.url())
        .current_dir(r.path())
        .arg("apply");
    let a = run(a).success();
    assert!(a.stderr.contains("0 of 0 patches applied"), "{}", a.stderr);
    assert!(git(r.path(), &["status", "--porcelain"]).stdout.is_empty());
}

#[test]
fn when_the_unpatched_tree_fails_its_check_patches_are_unverified_not_wrong() {
    let redis = RedisServer::start();
    let broken_test = "import unittest\n\n\nclass T(unittest.TestCase):\n    def test_broken(self):\n        self.assertEqual(1, 2)\n";
    let r = committed_repo(&[("calc.py", CLAMP_PY), ("test_calc.py", broken_test)]);
    let scratch = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let fake = scripted(|_, body| resolving_answer(body));
    let _w = spawn_worker(&redis, &fake.url(), &[], Stdio::null());
    let _v = spawn_verifier(
        &redis,
        r.path(),
        scratch.path(),
        "python3 -m unittest -q",
        &[],
    );
    let res = verified_run(&redis, r.path(), out.path(), "python3 -m unittest -q", &[]).success();
    assert!(
        res.stderr
            .contains("the unpatched tree fails `python3 -m unittest -q`"),
        "{}",
        res.stderr
    );
    assert!(res.stderr.contains("BASELINE FAILED"), "{}", res.stderr);
    let t = &summary(out.path())["tasks"][0];
    assert_eq!(
        (t["state"].as_str(), t["verified"].as_str()),
        (Some("done"), Some("baseline_failed")),
        "{t:#}"
    );
    // apply holds back what was not verified, unless asked.
    let apply = |extra: &[&str]| {
        let mut a = cmd("dispatcher");
        a.env("TARS_REDIS__URL", redis.url())
            .current_dir(r.path())
            .arg("apply")
            .args(extra);
        run(a).success()
    };
    let a = apply(&[]);
    assert!(
        a.stderr.contains("not verified (baseline_failed)"),
        "{}",
        a.stderr
    );
    assert_eq!(
        std::fs::read_to_string(r.path().join("calc.py")).unwrap(),
        CLAMP_PY
    );
    let a = apply(&["--unverified"]);
    assert!(a.stderr.contains("1 of 1 patches applied"), "{}", a.stderr);
    assert_ne!(
        std::fs::read_to_string(r.path().join("calc.py")).unwrap(),
        CLAMP_PY
    );
}

#[test]
fn a_verifier_runs_only_commands_it_allows_on_repositories_under_its_roots() {
    let redis = RedisServer::start();
    let r = committed_repo(&[("calc.py", CLAMP_PY), ("test_calc.py", CLAMP_TEST_PY)]);
    let elsewhere = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let pwned = scratch.path().join("pwned");
    let fake = scripted(|_, body| resolving_answer(body));
    let _w = spawn_worker(&redis, &fake.url(), &[], Stdio::null());
    let _v = spawn_verifier(
        &redis,
        r.path(),
        scratch.path(),
        "python3 -m unittest -q",
        &[],
    );
    // A run (or anyone who can write Redis) naming a command the verifier was not given.
    let evil = format!("touch {}", pwned.display());
    let res = verified_run(&redis, r.path(), out.path(), &evil, &[]).code_is(5);
    assert!(res.stderr.contains("verify_not_allowed"), "{}", res.stderr);
    assert!(!pwned.exists(), "the command ran");
    let t = &summary(out.path())["tasks"][0];
    assert!(
        t["reason"].as_str().unwrap().contains("verify.allow"),
        "{t:#}"
    );
    // A verifier serving another directory refuses the run's repository.
    let redis2 = RedisServer::start();
    let _w2 = spawn_worker(&redis2, &fake.url(), &[], Stdio::null());
    let _v2 = spawn_verifier(
        &redis2,
        elsewhere.path(),
        scratch.path(),
        "python3 -m unittest -q",
        &[],
    );
    let out2 = tempfile::tempdir().unwrap();
    let res = verified_run(
        &redis2,
        r.path(),
        out2.path(),
        "python3 -m unittest -q",
        &[],
    )
    .code_is(5);
    assert!(res.stderr.contains("verify_refused"), "{}", res.stderr);
}

#[test]
fn the_check_gets_no_tars_secrets_from_the_verifier() {
    let redis = RedisServer::start();
    let r = committed_repo(&[("calc.py", CLAMP_PY), ("test_calc.py", CLAMP_TEST_PY)]);
    let scratch = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let fake = scripted(|_, body| resolving_answer(body));
    let check = "env; python3 -m unittest -q";
    let _w = spawn_worker(&redis, &fake.url(), &[], Stdio::null());
    let _v = spawn_verifier(
        &redis,
        r.path(),
        scratch.path(),
        check,
        &[("TARS_LLM__API_KEY", "sk-verifier-secret")],
    );
    verified_run(&redis, r.path(), out.path(), check, &[]).success();
    let t = &summary(out.path())["tasks"][0];
    let output = t["verify_output"].as_str().unwrap();
    assert!(output.contains("CI=true"), "{output}");
    assert!(!output.contains("TARS_"), "{output}");
    assert!(!output.contains("sk-verifier-secret"), "{output}");
}

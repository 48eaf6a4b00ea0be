//! `dispatcher cancel`, `retry [--dead]` and `purge` against real workers and Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use crate::fake_llm::{FakeLlm, Reply, models_reply, openai_completion, resolving_answer};
use crate::util::{RedisServer, cmd, demo_repo, run, spawn_worker, wait_until};

const PROSE: u8 = 0;
const RESOLVE: u8 = 1;
const SLOW: u8 = 2;
const FAILING: u8 = 3;

#[track_caller]
fn dispatcher(redis: &RedisServer, args: &[&str]) -> crate::util::Output {
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url()).args(args);
    run(d).success()
}

fn status(redis: &RedisServer, run_id: &str) -> serde_json::Value {
    serde_json::from_str(&dispatcher(redis, &["status", "--json", run_id]).stdout).unwrap()
}

fn wait_for(
    redis: &RedisServer,
    run_id: &str,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) {
    wait_until(what, Duration::from_secs(60), || {
        check(&status(redis, run_id))
    });
}

#[test]
fn cancel_retry_and_purge_a_run() {
    let redis = RedisServer::start();
    let mode = Arc::new(AtomicU8::new(PROSE));
    let m = mode.clone();
    let fake = FakeLlm::start(move |req, _| {
        if req.path != "/v1/chat/completions" {
            return models_reply();
        }
        match m.load(Ordering::SeqCst) {
            PROSE => Reply::Json {
                status: 200,
                body: openai_completion("Just validate it."),
            },
            FAILING => Reply::Json {
                status: 500,
                body: r#"{"error":"internal"}"#.into(),
            },
            SLOW => {
                std::thread::sleep(Duration::from_secs(2));
                Reply::Json {
                    status: 200,
                    body: openai_completion(&resolving_answer(&req.body)),
                }
            }
            _ => Reply::Json {
                status: 200,
                body: openai_completion(&resolving_answer(&req.body)),
            },
        }
    });
    let repo = demo_repo();
    let path = repo.path().to_str().unwrap().to_string();
    let settings = [
        ("TARS_LLM__RETRIES", "0"),
        ("TARS_LLM__ANSWER_ATTEMPTS", "1"),
        ("TARS_QUEUE__MAX_ATTEMPTS", "1"),
        ("TARS_WORKER__CONCURRENCY", "6"),
    ];
    let _worker = spawn_worker(&redis, &fake.url(), &settings, std::process::Stdio::null());

    // Answers without code fail every task; `retry` requeues them and they succeed.
    let run_a = dispatcher(&redis, &["run", &path])
        .stdout
        .trim()
        .to_string();
    wait_for(&redis, &run_a, "all failed", |s| s["failed"] == 6);
    mode.store(RESOLVE, Ordering::SeqCst);
    dispatcher(&redis, &["retry", &run_a]);
    wait_for(&redis, &run_a, "all done after retry", |s| s["done"] == 6);

    // A failing LLM (HTTP 500; a 503 would be waited for) with one attempt allowed
    // dead-letters; `retry --dead` brings them back.
    mode.store(FAILING, Ordering::SeqCst);
    let run_b = dispatcher(&redis, &["run", &path])
        .stdout
        .trim()
        .to_string();
    wait_for(&redis, &run_b, "all dead", |s| s["dead"] == 6);
    mode.store(RESOLVE, Ordering::SeqCst);
    dispatcher(&redis, &["retry", "--dead", &run_b]);
    wait_for(&redis, &run_b, "all done after retry --dead", |s| {
        s["done"] == 6 && s["dead"] == 0
    });

    // Cancelling while the LLM works: in-flight tasks stop at their next checkpoint.
    mode.store(SLOW, Ordering::SeqCst);
    let run_c = dispatcher(&redis, &["run", &path])
        .stdout
        .trim()
        .to_string();
    wait_for(&redis, &run_c, "tasks in flight", |s| {
        s["running"].as_u64().unwrap_or(0) > 0
    });
    dispatcher(&redis, &["cancel", &run_c]);
    wait_for(&redis, &run_c, "run cancelled", |s| {
        s["finished_at"].is_u64() && s["running"] == 0 && s["queued"] == 0
    });
    let s = status(&redis, &run_c);
    assert_eq!(
        s["cancelled"].as_u64().unwrap() + s["done"].as_u64().unwrap(),
        6,
        "{s}"
    );
    assert!(s["cancelled"].as_u64().unwrap() > 0, "{s}");

    // Purge removes the run and every task key.
    dispatcher(&redis, &["purge", &run_c]);
    let mut conn = redis.conn();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*{run_c}*"))
        .query(&mut conn)
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .args(["status", &run_c]);
    let out = run(d).code_is(1);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
}

/// The live workers' roles, from their heartbeats in Redis.
fn worker_roles(redis: &RedisServer) -> Vec<String> {
    let mut c = redis.conn();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("{tars}:worker:*")
        .query(&mut c)
        .unwrap();
    keys.iter()
        .filter_map(|k| {
            redis::cmd("HGET")
                .arg(k)
                .arg("role")
                .query::<Option<String>>(&mut c)
                .unwrap()
        })
        .collect()
}

fn run_wait(redis: &RedisServer, repo: &std::path::Path, timeout: &str) -> crate::util::Output {
    let out = tempfile::tempdir().unwrap();
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .args([
            "run",
            "--no-verify",
            "--wait",
            "--timeout",
            timeout,
            "--out",
        ])
        .arg(out.path())
        .arg(repo);
    run(d)
}

#[test]
fn run_wait_without_a_worker_says_so_and_how_to_start_one() {
    let redis = RedisServer::start();
    let repo = demo_repo();
    let out = run_wait(&redis, repo.path(), "3").code_is(6);
    let said = out
        .stderr
        .lines()
        .position(|l| l.starts_with("warning: no worker is running: 6 tasks wait for one."))
        .unwrap_or_else(|| panic!("{}", out.explain("no word of the missing worker")));
    let line = out.stderr.lines().nth(said).unwrap();
    assert!(
        line.contains(&format!("`TARS_REDIS__URL={} worker`", redis.url()))
            && line.contains("docker compose -f compose/docker-compose.yml up -d --scale worker=N"),
        "{line}"
    );
    let timed_out = out
        .stderr
        .lines()
        .position(|l| l.starts_with("error: run ") && l.contains("did not finish within 3 s"))
        .unwrap_or_else(|| panic!("{}", out.explain("the timeout's error")));
    assert!(
        said < timed_out,
        "said at once, before the timeout:\n{}",
        out.stderr
    );
}

#[test]
fn run_wait_with_only_a_verifier_says_no_worker_serves_the_llm_stage() {
    let redis = RedisServer::start();
    let repo = demo_repo();
    let mut v = cmd("worker");
    v.env("TARS_REDIS__URL", redis.url())
        .args(["--role", "verify", "--root"])
        .arg(repo.path())
        .stderr(std::process::Stdio::null());
    let _verifier = crate::util::Proc {
        child: v.spawn().unwrap(),
        name: "verifier".into(),
    };
    wait_until("the verifier's heartbeat", Duration::from_secs(30), || {
        worker_roles(&redis) == ["verify"]
    });
    let out = run_wait(&redis, repo.path(), "3").code_is(6);
    assert!(
        out.stderr.contains(
            "warning: no worker serves the LLM stage (1 verifier only): 6 tasks wait for one."
        ),
        "{}",
        out.explain("no word of the missing LLM worker")
    );
}

#[test]
fn run_wait_says_no_worker_and_finishes_once_one_starts() {
    use std::io::BufRead;
    let redis = RedisServer::start();
    let repo = demo_repo();
    let out = tempfile::tempdir().unwrap();
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .args(["run", "--no-verify", "--wait", "--timeout", "120", "--out"])
        .arg(out.path())
        .arg(repo.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut dispatcher = crate::util::Proc {
        child: d.spawn().unwrap(),
        name: "dispatcher".into(),
    };
    let stderr = std::io::BufReader::new(dispatcher.child.stderr.take().unwrap());
    let mut lines = stderr.lines().map_while(Result::ok);
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        seen.push(line);
        if seen
            .last()
            .unwrap()
            .starts_with("warning: no worker is running")
        {
            break;
        }
    }
    assert!(
        seen.last()
            .unwrap()
            .starts_with("warning: no worker is running"),
        "the dispatcher ended without a word of the missing worker:\n{}",
        seen.join("\n")
    );
    // As the message says: a worker on this machine with TARS_REDIS__URL.
    let fake = FakeLlm::resolving();
    let _worker = spawn_worker(&redis, &fake.url(), &[], std::process::Stdio::null());
    seen.extend(lines);
    let status = dispatcher
        .wait_timeout(Duration::from_secs(120))
        .expect("the run finishes once a worker serves it");
    assert!(status.success(), "{status}:\n{}", seen.join("\n"));
    assert!(
        seen.iter()
            .any(|l| l.starts_with("run ") && l.contains(" finished in ")),
        "{}",
        seen.join("\n")
    );
}

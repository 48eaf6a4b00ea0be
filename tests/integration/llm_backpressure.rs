//! HTTP 429 (and 503) from the LLM is backpressure, not a refusal (issue 12, item 9): the
//! worker waits as `Retry-After` says and asks again, without spending an attempt of the task
//! or one of its in-place retries (`llm.retries`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::fake_llm::{FakeLlm, Reply, models_reply, openai_completion, resolving_answer};
use crate::util::{RedisServer, cmd, run, spawn_worker};
use tars_fleet::queue::{Queue, TaskState};

#[tokio::test]
async fn http_429_waits_for_retry_after_without_spending_an_attempt() {
    let redis = RedisServer::start();
    let chats = Arc::new(AtomicUsize::new(0));
    let seen = chats.clone();
    let fake = FakeLlm::start(move |req, _| match req.path.as_str() {
        "/v1/chat/completions" => match seen.fetch_add(1, Ordering::SeqCst) {
            0 | 1 => Reply::JsonWithHeaders {
                status: 429,
                headers: vec![("Retry-After".into(), "1".into())],
                body: r#"{"error":{"message":"rate limited"}}"#.into(),
            },
            _ => Reply::Json {
                status: 200,
                body: openai_completion(&resolving_answer(&req.body)),
            },
        },
        _ => models_reply(),
    });
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(
        repo.path().join("m.py"),
        "def f(x):\n    # TODO: handle negative x\n    return x\n",
    )
    .unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    // No in-place retries: the waits must not be counted as retries either.
    let mut worker = spawn_worker(
        &redis,
        &fake.url(),
        &[("TARS_LLM__RETRIES", "0")],
        log.reopen().unwrap().into(),
    );
    let t0 = Instant::now();
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .args(["run", "--wait", "--timeout", "60", "--out"])
        .arg(repo.path().join("out"))
        .arg(repo.path());
    let out = run(d);
    let elapsed = t0.elapsed();
    worker.signal("TERM");
    worker.wait_timeout(Duration::from_secs(30));
    let log = std::fs::read_to_string(log.path()).unwrap();
    let out = out.note("worker log", log.clone()).success();
    let run_id = out.stdout.trim().to_string();
    let q = Queue::connect(&redis.url(), 7).await.unwrap();
    let tasks = q.run_tasks(&run_id).await.unwrap();
    assert_eq!(tasks.len(), 1);
    let t = &tasks[0];
    assert_eq!(t.state, TaskState::Done, "{t:?}\n{log}");
    assert_eq!(
        t.outcome.attempts, 1,
        "a 429 spends no attempt: {t:?}\n{log}"
    );
    assert_eq!(chats.load(Ordering::SeqCst), 3);
    assert!(
        elapsed >= Duration::from_secs(2),
        "Retry-After: 1 was honoured twice: {elapsed:?}"
    );
    assert!(
        log.contains("waiting") && log.contains("429"),
        "the worker says it waited:\n{log}"
    );
}

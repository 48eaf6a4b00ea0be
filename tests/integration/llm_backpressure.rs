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

/// Runs one TODO through one worker against `fake`, with the worker's extra environment, and
/// returns the task and the worker's log.
pub(crate) async fn one_task_through(
    redis: &RedisServer,
    fake: &FakeLlm,
    env: &[(&str, &str)],
) -> (tars_fleet::queue::TaskRecord, String) {
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(
        repo.path().join("m.py"),
        "def f(x):\n    # TODO: handle negative x\n    return x\n",
    )
    .unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut worker = spawn_worker(redis, &fake.url(), env, log.reopen().unwrap().into());
    let mut d = cmd("dispatcher");
    d.env("TARS_REDIS__URL", redis.url())
        .args(["run", "--wait", "--timeout", "90", "--out"])
        .arg(repo.path().join("out"))
        .arg(repo.path());
    let out = run(d);
    worker.signal("TERM");
    worker.wait_timeout(Duration::from_secs(30));
    let log = std::fs::read_to_string(log.path()).unwrap();
    // Success or not (exit 5 when the task failed), the run is what the caller checks.
    let run_id = out.stdout.trim().to_string();
    assert!(
        !run_id.is_empty(),
        "{}",
        out.note("worker log", log.clone()).explain("a run id")
    );
    let q = Queue::connect(&redis.url(), 7).await.unwrap();
    let mut tasks = q.run_tasks(&run_id).await.unwrap();
    assert_eq!(tasks.len(), 1);
    (tasks.remove(0), log)
}

/// A 503 that does not say when to come back is backpressure too: waited for with the
/// backoff, not counted against `llm.retries` (0 here) nor the task's attempts (1 here, so a
/// counted failure would dead-letter it).
#[tokio::test]
async fn http_503_without_retry_after_is_waited_for_without_spending_anything() {
    let redis = RedisServer::start();
    let chats = Arc::new(AtomicUsize::new(0));
    let seen = chats.clone();
    let fake = FakeLlm::start(move |req, _| match req.path.as_str() {
        "/v1/chat/completions" => match seen.fetch_add(1, Ordering::SeqCst) {
            0..=2 => Reply::Json {
                status: 503,
                body: r#"{"error":"model is loading"}"#.into(),
            },
            _ => Reply::Json {
                status: 200,
                body: openai_completion(&resolving_answer(&req.body)),
            },
        },
        _ => models_reply(),
    });
    let env = [
        ("TARS_LLM__RETRIES", "0"),
        ("TARS_QUEUE__MAX_ATTEMPTS", "1"),
    ];
    let (t, log) = one_task_through(&redis, &fake, &env).await;
    assert_eq!(t.state, TaskState::Done, "{t:?}\n{log}");
    assert_eq!(t.outcome.attempts, 1, "{t:?}\n{log}");
    assert_eq!(chats.load(Ordering::SeqCst), 4);
    assert!(
        log.contains("busy; waiting with backoff"),
        "the worker says it waited:\n{log}"
    );
}

/// A server that stays busy for longer than a worker waits in place (`llm.timeout_secs` of
/// waiting, 2 s here) defers the task: it comes back later without spending an attempt, so
/// with `queue.max_attempts = 1` it still ends done once the server has room.
#[tokio::test]
async fn a_server_busy_past_the_wait_defers_the_task_without_spending_an_attempt() {
    let redis = RedisServer::start();
    let first: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let busy_since = first.clone();
    let fake = FakeLlm::start(move |req, _| match req.path.as_str() {
        "/v1/chat/completions" => {
            let since = *busy_since.lock().unwrap().get_or_insert_with(Instant::now);
            if since.elapsed() < Duration::from_secs(5) {
                Reply::Json {
                    status: 429,
                    body: r#"{"error":{"message":"too many requests"}}"#.into(),
                }
            } else {
                Reply::Json {
                    status: 200,
                    body: openai_completion(&resolving_answer(&req.body)),
                }
            }
        }
        _ => models_reply(),
    });
    let env = [
        ("TARS_LLM__RETRIES", "0"),
        ("TARS_LLM__TIMEOUT_SECS", "2"),
        ("TARS_QUEUE__MAX_ATTEMPTS", "1"),
    ];
    let (t, log) = one_task_through(&redis, &fake, &env).await;
    assert_eq!(t.state, TaskState::Done, "{t:?}\n{log}");
    assert_eq!(
        t.outcome.attempts, 1,
        "a deferral spends no attempt: {t:?}\n{log}"
    );
    let deferrals: u64 = redis::cmd("HGET")
        .arg(tars_fleet::queue::keys::task(&t.run, &t.spec.id))
        .arg("deferrals")
        .query(&mut redis.conn())
        .unwrap();
    assert!(deferrals >= 1, "{t:?}\n{log}");
    assert!(
        log.contains("deferred without spending an attempt"),
        "the worker says it deferred:\n{log}"
    );
}

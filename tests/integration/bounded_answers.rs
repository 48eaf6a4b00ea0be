//! Issue 12, item 8: what one answer costs is bounded, in the worker's memory (the client stops
//! reading at a limit derived from `llm.max_answer_tokens`) and in Redis (a rewrite past
//! `MAX_REWRITE_BYTES` is rejected, a raw answer is stored clipped).

use crate::fake_llm::{FakeLlm, Reply, models_reply, openai_completion};
use crate::llm_backpressure::one_task_through;
use crate::util::RedisServer;
use tars_fleet::patch::{MAX_REWRITE_BYTES, MAX_STORED_ANSWER_BYTES};
use tars_fleet::queue::{TaskState, keys};

/// A model that loops (200 KiB of code for a three-line block, under the client's read limit
/// of 256 KiB for 2048 answer tokens) gets the task failed as `too_long` after its answers,
/// and the task's hash in Redis stays small.
#[tokio::test]
async fn a_looping_answer_fails_as_too_long_and_stores_a_bounded_hash() {
    let redis = RedisServer::start();
    let lines: String = (0..5_000)
        .map(|i| format!("    x = x + {i}  # keep going\n"))
        .collect();
    assert!(lines.len() > MAX_REWRITE_BYTES && lines.len() < 256 << 10);
    let answer = format!("```python\ndef f(x):\n{lines}    return x\n```\n");
    let fake = FakeLlm::start(move |req, _| match req.path.as_str() {
        "/v1/chat/completions" => Reply::Json {
            status: 200,
            body: openai_completion(&answer),
        },
        _ => models_reply(),
    });
    let (t, log) = one_task_through(&redis, &fake, &[("TARS_LLM__ANSWER_ATTEMPTS", "2")]).await;
    assert_eq!(t.state, TaskState::Failed, "{log}");
    assert_eq!(t.outcome.reason_kind.as_deref(), Some("too_long"), "{t:?}");
    assert!(
        t.outcome
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("reviewable")),
        "{t:?}"
    );
    let stored = t.answer.clone().unwrap_or_default();
    assert!(
        stored.len() <= MAX_STORED_ANSWER_BYTES + 100 && stored.ends_with("bytes are not stored]"),
        "stored answer of {} bytes",
        stored.len()
    );
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(keys::task(&t.run, &t.spec.id))
        .query(&mut redis.conn())
        .unwrap();
    let mut total = 0u64;
    for f in &fields {
        let n: u64 = redis::cmd("HSTRLEN")
            .arg(keys::task(&t.run, &t.spec.id))
            .arg(f)
            .query(&mut redis.conn())
            .unwrap();
        total += n;
    }
    assert!(
        total < 96 << 10,
        "the task's hash holds {total} bytes: {fields:?}"
    );
}

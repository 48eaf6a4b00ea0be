//! A worker run in-process (built from its parts, stopped by a future) against a real
//! redis-server and a scripted LLM, for the damaged tasks a Redis writer can leave: the worker
//! must refuse them before asking the LLM, and never hang on them.

use std::time::Duration;

use crate::fake_llm::{FakeLlm, Reply, openai_completion};
use crate::util::{RedisServer, wait_until_async};
use tars_fleet::config::{Config, LlmApi};
use tars_fleet::llm::LlmClient;
use tars_fleet::queue::{Queue, TaskRecord, TaskState};
use tars_fleet::task::TaskSpec;
use tars_fleet::worker::Worker;

const FILE: &str = "fn add(a: i32, b: i32) -> i32 {\n    // TODO: handle overflow\n    a + b\n}\n";

fn spec(id: &str, content_hash: &str) -> TaskSpec {
    TaskSpec {
        id: id.into(),
        path: "src/lib.rs".into(),
        line: 2,
        tag: "TODO".into(),
        text: "handle overflow".into(),
        language: "rust".into(),
        symbol: Some("fn add(a: i32, b: i32) -> i32 {".into()),
        block_start: 0,
        block_end: FILE.len(),
        content_hash: content_hash.into(),
        block_hash: String::new(),
    }
}

/// An LLM that would answer every task well, counting what it is asked.
fn good_llm() -> FakeLlm {
    FakeLlm::start(|_, _| Reply::Json {
        status: 200,
        body: openai_completion(
            "```rust\nfn add(a: i32, b: i32) -> i32 {\n    a.saturating_add(b)\n}\n```",
        ),
    })
}

/// Runs `specs` through one in-process worker until every task finished; returns them.
async fn run_tasks(redis: &RedisServer, llm: &FakeLlm, specs: &[TaskSpec]) -> Vec<TaskRecord> {
    let mut cfg = Config::default();
    cfg.redis.url = redis.url();
    cfg.llm.api = LlmApi::Openai;
    cfg.llm.url = llm.url();
    cfg.llm.model = "m".into();
    cfg.queue.lease_secs = 3;
    let queue = Queue::open(&cfg).await.unwrap();
    queue.ensure_group().await.unwrap();
    let hash = tars_fleet::scan::sha256_hex(FILE.as_bytes());
    queue.put_blobs(&[(hash.as_str(), FILE)]).await.unwrap();
    let run = queue.create_run("/repo").await.unwrap();
    queue.enqueue_batch(&run, specs).await.unwrap();
    let worker = Worker::new(queue.clone(), LlmClient::new(&cfg.llm).unwrap(), cfg);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    wait_until_async("every task finished", Duration::from_secs(60), || async {
        queue
            .run_status(&run)
            .await
            .is_ok_and(|st| st.is_complete())
    })
    .await;
    let _ = stop.send(());
    serving.await.unwrap();
    queue.run_tasks(&run).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_without_a_tag_fails_at_once_without_asking_the_llm() {
    // Before: the gate's tag count looped forever on an empty tag, while the lease renewer
    // kept the task, so no other worker could ever reclaim it.
    let redis = RedisServer::start();
    let llm = good_llm();
    let hash = tars_fleet::scan::sha256_hex(FILE.as_bytes());
    let mut no_tag = spec("notag", &hash);
    no_tag.tag = String::new();
    let tasks = run_tasks(&redis, &llm, &[no_tag, spec("good", &hash)]).await;
    let by_id = |id: &str| tasks.iter().find(|t| t.spec.id == id).unwrap();
    let bad = by_id("notag");
    assert_eq!(bad.state, TaskState::Failed, "{bad:?}");
    assert_eq!(
        bad.outcome.reason_kind.as_deref(),
        Some("bad_task"),
        "{bad:?}"
    );
    assert!(
        bad.outcome
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("no tag"),
        "{bad:?}"
    );
    // The healthy task beside it is done, with the only LLM call made.
    assert_eq!(by_id("good").state, TaskState::Done, "{:?}", by_id("good"));
    assert_eq!(llm.count("/v1/chat/completions"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_block_does_not_fit_its_file_fails_without_asking_the_llm() {
    // Before: the range was checked only after the LLM call, and the rejection made the
    // worker ask again (llm.answer_attempts calls for a task no answer can fix).
    let redis = RedisServer::start();
    let llm = good_llm();
    let hash = tars_fleet::scan::sha256_hex(FILE.as_bytes());
    let mut past_end = spec("past-end", &hash);
    past_end.block_end = FILE.len() + 40;
    let mut reversed = spec("reversed", &hash);
    (reversed.block_start, reversed.block_end) = (20, 10);
    let tasks = run_tasks(&redis, &llm, &[past_end, reversed]).await;
    for t in &tasks {
        assert_eq!(t.state, TaskState::Failed, "{t:?}");
        assert_eq!(t.outcome.reason_kind.as_deref(), Some("bad_range"), "{t:?}");
        assert!(
            t.outcome
                .reason
                .as_deref()
                .unwrap_or_default()
                .contains("does not fit the file"),
            "{t:?}"
        );
    }
    assert_eq!(
        llm.count("/v1/chat/completions"),
        0,
        "no LLM call for a damaged task"
    );
}

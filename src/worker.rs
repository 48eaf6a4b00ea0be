//! The worker loop: fetch deliveries, hold their lease while the LLM works, turn answers into
//! patches and record exactly one result per task.
//!
//! Shutdown follows the usual container contract: on the token, stop fetching, let in-flight
//! tasks finish for `worker.shutdown_grace_secs`, then hand the rest back to the queue at once
//! (not after a lease expiry) and return, so the process exits 0 before Docker's SIGKILL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::edit;
use crate::llm::{LlmClient, LlmError};
use crate::queue::{Completion, Delivery, Queue, QueueError, Start, TaskState};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Llm(#[from] LlmError),
}

/// What a worker did, for its exit log and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WorkerStats {
    pub done: u64,
    pub failed: u64,
    pub retried: u64,
    pub dead: u64,
    pub duplicates: u64,
    pub handed_back: u64,
}

#[derive(Default)]
struct Counters {
    done: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    duplicates: AtomicU64,
    handed_back: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> WorkerStats {
        WorkerStats {
            done: self.done.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead: self.dead.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            handed_back: self.handed_back.load(Ordering::Relaxed),
        }
    }
}

/// A worker's identity: readable in Redis, unique across restarts of the same container.
pub fn worker_id() -> String {
    let host = std::env::var("TARS_WORKER_NAME")
        .ok()
        .or_else(|| hostname::get().ok().and_then(|h| h.into_string().ok()))
        .unwrap_or_else(|| "worker".into());
    let tag: u16 = rand::random();
    format!("{host}-{}-{tag:04x}", std::process::id())
}

struct Shared {
    cfg: Config,
    queue: Queue,
    llm: LlmClient,
    id: String,
    counters: Counters,
    in_flight: Mutex<Vec<String>>,
    /// Cancelled after the grace period: in-flight tasks stop and are handed back.
    hard_stop: CancellationToken,
}

/// Runs a worker until `shutdown` is cancelled. Fails early, with the URL and model in the
/// message, when Redis or the LLM cannot be used at all.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<WorkerStats, WorkerError> {
    let queue = Queue::connect(&cfg.redis.url, cfg.queue.retention_days).await?;
    queue.ensure_group().await?;
    let llm = LlmClient::new(&cfg.llm)?;
    llm.preflight().await?;
    let id = worker_id();
    tracing::info!(worker = %id, concurrency = cfg.worker.concurrency, llm = %cfg.llm.url, model = %cfg.llm.model, "worker started");
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        queue,
        llm,
        id,
        counters: Counters::default(),
        in_flight: Mutex::new(Vec::new()),
        hard_stop: CancellationToken::new(),
    });
    let tracker = TaskTracker::new();
    let heartbeat = tokio::spawn(heartbeat_loop(shared.clone(), shutdown.clone()));
    fetch_loop(shared.clone(), &tracker, &shutdown).await;

    tracker.close();
    let grace = Duration::from_secs(cfg.worker.shutdown_grace_secs);
    let in_flight = tracker.len();
    if in_flight > 0 {
        tracing::info!(
            in_flight,
            grace_secs = grace.as_secs(),
            "stopping: letting in-flight tasks finish"
        );
    }
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!("grace period over: handing in-flight tasks back to the queue");
        shared.hard_stop.cancel();
        // Handing back is a couple of Redis round trips per task.
        let _ = tokio::time::timeout(Duration::from_secs(10), tracker.wait()).await;
    }
    heartbeat.abort();
    let mut c = shared.queue.conn();
    let _: Result<(), _> = redis::cmd("DEL")
        .arg(crate::queue::keys::worker(&shared.id))
        .query_async(&mut c)
        .await;
    let stats = shared.counters.snapshot();
    tracing::info!(?stats, "worker stopped");
    Ok(stats)
}

async fn fetch_loop(shared: Arc<Shared>, tracker: &TaskTracker, shutdown: &CancellationToken) {
    let cfg = &shared.cfg;
    let lease = Duration::from_secs(cfg.queue.lease_secs);
    let permits = Arc::new(Semaphore::new(cfg.worker.concurrency));
    let mut blocking = None;
    let mut last_maintenance = Instant::now() - Duration::from_secs(3600);
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        let first = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.cancelled() => return,
        };
        let mut held = vec![first];
        while let Ok(p) = permits.clone().try_acquire_owned() {
            held.push(p);
        }
        let step = async {
            let mut deliveries = Vec::new();
            if last_maintenance.elapsed() >= Duration::from_secs(1) {
                last_maintenance = Instant::now();
                shared.queue.promote_due(100).await?;
                deliveries = shared.queue.reclaim(&shared.id, lease, held.len()).await?;
                for d in &deliveries {
                    tracing::info!(task = %d.task, run = %d.run, "reclaimed a task whose lease expired");
                }
            }
            if deliveries.is_empty() {
                if blocking.is_none() {
                    blocking = Some(shared.queue.blocking_connection().await?);
                }
                if let Some(conn) = blocking.as_mut() {
                    deliveries = shared
                        .queue
                        .fetch(conn, &shared.id, held.len(), Duration::from_secs(2))
                        .await?;
                }
            }
            Ok::<_, QueueError>(deliveries)
        };
        let deliveries = tokio::select! {
            r = step => r,
            _ = shutdown.cancelled() => return,
        };
        match deliveries {
            Ok(ds) => {
                backoff = Duration::from_millis(200);
                for d in ds {
                    let Some(permit) = held.pop() else { break };
                    let shared = shared.clone();
                    tracker.spawn(async move {
                        handle(shared, d).await;
                        drop(permit);
                    });
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "Redis unavailable, retrying");
                blocking = None;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {},
                    _ = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn heartbeat_loop(shared: Arc<Shared>, shutdown: CancellationToken) {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    loop {
        let current = shared.in_flight.lock().await.join(",");
        let s = shared.counters.snapshot();
        let fields = [
            ("id", shared.id.clone()),
            ("host", host.clone()),
            ("pid", std::process::id().to_string()),
            ("started_at", started.to_string()),
            ("concurrency", shared.cfg.worker.concurrency.to_string()),
            ("current", current),
            ("done", s.done.to_string()),
            ("failed", s.failed.to_string()),
            (
                "state",
                if shutdown.is_cancelled() {
                    "stopping"
                } else {
                    "running"
                }
                .into(),
            ),
        ];
        if let Err(e) = shared
            .queue
            .heartbeat(&shared.id, &fields, Duration::from_secs(15))
            .await
        {
            tracing::debug!(error = %e, "heartbeat failed");
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Exponential backoff with full jitter for a task's next attempt.
fn task_backoff(attempt: u32) -> Duration {
    let base = 1000u64.saturating_mul(1 << attempt.min(8)).min(300_000);
    let jitter: u64 = rand::random::<u64>() % (base / 2 + 1);
    Duration::from_millis(base / 2 + jitter)
}

async fn handle(shared: Arc<Shared>, d: Delivery) {
    let attempt = match shared
        .queue
        .start(&d, &shared.id, shared.cfg.queue.max_attempts)
        .await
    {
        Ok(Start::Running { attempt }) => attempt,
        Ok(Start::Skip(state)) => {
            tracing::debug!(task = %d.task, state, "skipping a delivery of a finished task");
            shared.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Ok(Start::Dead) => {
            shared.counters.dead.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Err(e) => {
            // The delivery stays pending; its lease expires and another worker reclaims it.
            tracing::warn!(task = %d.task, error = %e, "could not start task");
            return;
        }
    };
    shared.in_flight.lock().await.push(d.task.clone());
    let renew_stop = CancellationToken::new();
    let renewer = tokio::spawn(renew_loop(shared.clone(), d.clone(), renew_stop.clone()));
    let outcome = tokio::select! {
        o = process(&shared, &d, attempt) => Some(o),
        _ = shared.hard_stop.cancelled() => None,
    };
    renew_stop.cancel();
    let _ = renewer.await;
    match outcome {
        None => match shared.queue.release(&d).await {
            Ok(_) => {
                shared.counters.handed_back.fetch_add(1, Ordering::Relaxed);
                tracing::info!(task = %d.task, "handed the task back to the queue");
            }
            Err(e) => {
                tracing::warn!(task = %d.task, error = %e, "could not hand back; it returns after its lease")
            }
        },
        Some(Err(e)) => {
            tracing::warn!(task = %d.task, error = %e, "could not record the result; the task returns after its lease");
        }
        Some(Ok(c)) => {
            let counter = match c {
                Completion::Recorded => None,
                Completion::Duplicate => Some(&shared.counters.duplicates),
                Completion::Retrying => Some(&shared.counters.retried),
                Completion::Dead => Some(&shared.counters.dead),
            };
            if let Some(counter) = counter {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    shared.in_flight.lock().await.retain(|t| t != &d.task);
}

async fn renew_loop(shared: Arc<Shared>, d: Delivery, stop: CancellationToken) {
    let every = Duration::from_millis(shared.cfg.queue.lease_secs * 1000 / 3);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        match shared.queue.renew(&shared.id, &d.entry).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(task = %d.task, "the delivery is no longer pending (finished elsewhere)")
            }
            Err(e) => tracing::warn!(task = %d.task, error = %e, "lease renewal failed"),
        }
    }
}

async fn process(shared: &Shared, d: &Delivery, attempt: u32) -> Result<Completion, QueueError> {
    let q = &shared.queue;
    let Some(task) = q.task(&d.run, &d.task).await? else {
        return q
            .complete(
                d,
                TaskState::Failed,
                &[("reason", "task record missing".into())],
            )
            .await;
    };
    let spec = task.spec;
    let Some(content) = q.get_blob(&spec.content_hash).await? else {
        shared.counters.failed.fetch_add(1, Ordering::Relaxed);
        return q
            .complete(
                d,
                TaskState::Failed,
                &[
                    (
                        "reason",
                        "the file's content is no longer in Redis (its blob expired); scan again"
                            .into(),
                    ),
                    ("reason_kind", "blob_missing".into()),
                ],
            )
            .await;
    };
    let budget = u64::from(shared.cfg.llm.num_ctx - shared.cfg.llm.max_answer_tokens);
    let messages = edit::build_prompt(&spec, &content, budget);
    tracing::info!(task = %d.task, path = %spec.path, line = spec.line, attempt, "asking the LLM");
    match shared.llm.chat(&messages).await {
        Ok(answer) => {
            let mut fields = vec![
                ("model", answer.model.clone()),
                ("llm_ms", answer.elapsed.as_millis().to_string()),
                ("answer", answer.content.clone()),
            ];
            if let Some(p) = answer.prompt_tokens {
                fields.push(("prompt_tokens", p.to_string()));
            }
            if let Some(c) = answer.completion_tokens {
                fields.push(("completion_tokens", c.to_string()));
            }
            match edit::make_patch(&spec, &content, &answer.content) {
                Ok(patch) => {
                    fields.push(("patch", patch.diff));
                    fields.push(("lines_added", patch.lines_added.to_string()));
                    fields.push(("lines_removed", patch.lines_removed.to_string()));
                    fields.push(("reason", String::new()));
                    let c = q.complete(d, TaskState::Done, &fields).await?;
                    if c == Completion::Recorded {
                        shared.counters.done.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::info!(task = %d.task, "patch recorded");
                    Ok(c)
                }
                Err(rejection) => {
                    fields.push(("reason", rejection.to_string()));
                    fields.push(("reason_kind", rejection.kind().into()));
                    let c = q.complete(d, TaskState::Failed, &fields).await?;
                    if c == Completion::Recorded {
                        shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::info!(task = %d.task, reason = %rejection, "answer rejected");
                    Ok(c)
                }
            }
        }
        Err(e) if e.is_retryable() => {
            let error = serde_json::json!({
                "attempt": attempt,
                "kind": e.kind(),
                "error": e.to_string(),
                "worker": shared.id,
            });
            let c = q
                .retry_later(
                    d,
                    shared.cfg.queue.max_attempts,
                    task_backoff(attempt),
                    &error,
                    &e.to_string(),
                )
                .await?;
            tracing::warn!(task = %d.task, attempt, error = %e, outcome = ?c, "LLM call failed");
            Ok(c)
        }
        Err(e) => {
            let c = q
                .complete(
                    d,
                    TaskState::Failed,
                    &[("reason", e.to_string()), ("reason_kind", e.kind().into())],
                )
                .await?;
            if c == Completion::Recorded {
                shared.counters.failed.fetch_add(1, Ordering::Relaxed);
            }
            tracing::warn!(task = %d.task, error = %e, "LLM refused the task");
            Ok(c)
        }
    }
}

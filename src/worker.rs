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
    /// Wakes the heartbeat when the in-flight set changes, so `current` is fresh.
    changed: tokio::sync::Notify,
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
        changed: tokio::sync::Notify::new(),
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
        match shared
            .queue
            .heartbeat(&shared.id, &fields, Duration::from_secs(15))
            .await
        {
            Ok(()) => touch_health_file(),
            Err(e) => tracing::debug!(error = %e, "heartbeat failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shared.changed.notified() => {}
        }
    }
}

/// Where the container health check looks (`worker --health`); unset outside containers.
pub const HEALTH_FILE_ENV: &str = "TARS_HEALTH_FILE";
/// A worker is healthy while its heartbeat reached Redis within this long.
pub const HEALTHY_WITHIN: Duration = Duration::from_secs(30);

fn touch_health_file() {
    if let Ok(path) = std::env::var(HEALTH_FILE_ENV) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if let Err(e) = std::fs::write(&path, now.to_string()) {
            tracing::debug!(path, error = %e, "cannot write the health file");
        }
    }
}

/// The container health check: healthy when the heartbeat loop reached Redis recently. Checks a
/// file rather than Redis so that probing costs nothing and needs no network.
pub fn check_health() -> Result<(), String> {
    let path = std::env::var(HEALTH_FILE_ENV)
        .map_err(|_| format!("{HEALTH_FILE_ENV} is not set: no health file to check"))?;
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("no heartbeat yet ({path}: {e})"))?;
    let then: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{path} is malformed"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let age = now.saturating_sub(then);
    if age > HEALTHY_WITHIN.as_secs() {
        return Err(format!("last heartbeat reached Redis {age} s ago"));
    }
    Ok(())
}

/// Exponential backoff with full jitter for a task's next attempt.
fn task_backoff(attempt: u32) -> Duration {
    let base = 1000u64.saturating_mul(1 << attempt.min(8)).min(300_000);
    let jitter: u64 = rand::random::<u64>() % (base / 2 + 1);
    Duration::from_millis(base / 2 + jitter)
}

/// How one delivery ended for this worker.
enum Outcome {
    Finished(Result<Completion, QueueError>),
    /// Shutdown grace ran out: hand the task back.
    Shutdown,
    /// Another worker owns the task now (our lease lapsed): drop our work, write nothing.
    LeaseLost,
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
            // The delivery stays pending; its lease expires and a worker reclaims it.
            tracing::warn!(task = %d.task, error = %e, "could not start task");
            return;
        }
    };
    shared.in_flight.lock().await.push(d.task.clone());
    shared.changed.notify_one();
    let renew_stop = CancellationToken::new();
    let lost = CancellationToken::new();
    let renewer = tokio::spawn(renew_loop(
        shared.clone(),
        d.clone(),
        renew_stop.clone(),
        lost.clone(),
    ));
    let outcome = tokio::select! {
        o = process(&shared, &d, attempt) => Outcome::Finished(o),
        _ = shared.hard_stop.cancelled() => Outcome::Shutdown,
        _ = lost.cancelled() => Outcome::LeaseLost,
    };
    renew_stop.cancel();
    let _ = renewer.await;
    match outcome {
        Outcome::Shutdown => match shared.queue.release(&d).await {
            Ok(_) => {
                shared.counters.handed_back.fetch_add(1, Ordering::Relaxed);
                tracing::info!(task = %d.task, "handed the task back to the queue");
            }
            Err(e) => {
                tracing::warn!(task = %d.task, error = %e, "could not hand back; it returns after its lease")
            }
        },
        Outcome::LeaseLost => {
            tracing::warn!(task = %d.task, "lease lost: another worker has the task now; abandoning this attempt");
        }
        Outcome::Finished(Err(e)) => {
            tracing::warn!(task = %d.task, error = %e, "could not record the result; the task returns after its lease");
        }
        Outcome::Finished(Ok(c)) => {
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
    shared.changed.notify_one();
}

async fn renew_loop(
    shared: Arc<Shared>,
    d: Delivery,
    stop: CancellationToken,
    lost: CancellationToken,
) {
    let every = Duration::from_millis(shared.cfg.queue.lease_secs * 1000 / 3);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        match shared.queue.renew(&shared.id, &d.entry).await {
            Ok(true) => {}
            Ok(false) => {
                lost.cancel();
                return;
            }
            // Redis away: keep trying; if it stays away past the lease, another worker will
            // reclaim the task and the next renewal reports the loss.
            Err(e) => tracing::warn!(task = %d.task, error = %e, "lease renewal failed"),
        }
    }
}

/// Retries a Redis write through a short outage (a restart, a failover) so that a finished
/// task's result is not thrown away for a blip.
async fn persist<T, F, Fut>(what: &str, f: F) -> Result<T, QueueError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, QueueError>>,
{
    use backon::{ExponentialBuilder, Retryable};
    f.retry(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(5))
            .with_max_times(10)
            .with_jitter(),
    )
    .when(|e| matches!(e, QueueError::Redis(_)))
    .notify(|e, d| tracing::warn!(error = %e, retry_in = ?d, "{what}: Redis unavailable, retrying"))
    .await
}

/// A fleet-wide LLM permit, renewed while held, released when dropped.
struct Permit {
    queue: Queue,
    endpoint: String,
    holder: String,
    renewer: tokio::task::JoinHandle<()>,
}

impl Permit {
    async fn acquire(shared: &Shared, max: u32) -> Result<Permit, QueueError> {
        let endpoint = shared.cfg.llm.url.trim_end_matches('/').to_string();
        let nonce: u32 = rand::random();
        let holder = format!("{}:{nonce:08x}", shared.id);
        let ttl = Duration::from_secs(shared.cfg.queue.lease_secs);
        let mut logged = false;
        while !shared
            .queue
            .permit_acquire(&endpoint, &holder, max, ttl)
            .await?
        {
            if !logged {
                tracing::debug!(
                    endpoint,
                    max,
                    "waiting for an LLM permit (llm.max_in_flight)"
                );
                logged = true;
            }
            let wait = 50 + rand::random::<u64>() % 100;
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        let (q, e, h) = (shared.queue.clone(), endpoint.clone(), holder.clone());
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                if let Ok(false) = q.permit_renew(&e, &h, ttl).await {
                    tracing::warn!("LLM permit lapsed while in use");
                }
            }
        });
        Ok(Permit {
            queue: shared.queue.clone(),
            endpoint,
            holder,
            renewer,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.renewer.abort();
        let (q, e, h) = (
            self.queue.clone(),
            std::mem::take(&mut self.endpoint),
            std::mem::take(&mut self.holder),
        );
        tokio::spawn(async move {
            if let Err(err) = q.permit_release(&e, &h).await {
                tracing::debug!(error = %err, "permit release failed; it lapses on its own");
            }
        });
    }
}

async fn cancelled_now(shared: &Shared, d: &Delivery) -> Result<Option<Completion>, QueueError> {
    if !shared.queue.run_cancelled(&d.run).await? {
        return Ok(None);
    }
    tracing::info!(task = %d.task, run = %d.run, "run cancelled: abandoning the task");
    let fields = [
        ("reason", "the run was cancelled".to_string()),
        ("reason_kind", "cancelled".to_string()),
    ];
    persist("cancel", || {
        shared.queue.complete(d, TaskState::Cancelled, &fields)
    })
    .await
    .map(Some)
}

async fn process(shared: &Shared, d: &Delivery, attempt: u32) -> Result<Completion, QueueError> {
    let q = &shared.queue;
    // No cancellation check here: start.lua has just made it, atomically with the start.
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
        let fields = [
            (
                "reason",
                "the file's content is no longer in Redis (its blob expired); scan again"
                    .to_string(),
            ),
            ("reason_kind", "blob_missing".to_string()),
        ];
        return persist("fail", || q.complete(d, TaskState::Failed, &fields)).await;
    };
    let budget = u64::from(shared.cfg.llm.num_ctx - shared.cfg.llm.max_answer_tokens);
    let base = edit::build_prompt(&spec, &content, budget);
    let answer_attempts = shared.cfg.llm.answer_attempts;
    let (mut prompt_tokens, mut completion_tokens, mut llm_ms) = (0u64, 0u64, 0u128);
    let mut messages = base.clone();
    let mut ask = 0;
    loop {
        ask += 1;
        tracing::info!(task = %d.task, path = %spec.path, line = spec.line, attempt, ask, "asking the LLM");
        let answer = {
            let _permit = match shared.cfg.llm.max_in_flight {
                Some(max) => Some(Permit::acquire(shared, max).await?),
                None => None,
            };
            shared.llm.chat(&messages).await
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) => return llm_failed(shared, d, attempt, e).await,
        };
        if let Some(c) = cancelled_now(shared, d).await? {
            return Ok(c);
        }
        prompt_tokens += answer.prompt_tokens.unwrap_or(0);
        completion_tokens += answer.completion_tokens.unwrap_or(0);
        llm_ms += answer.elapsed.as_millis();
        let mut fields = vec![
            ("model", answer.model.clone()),
            ("llm_ms", llm_ms.to_string()),
            ("answer", answer.content.clone()),
            ("answers", ask.to_string()),
            ("prompt_tokens", prompt_tokens.to_string()),
            ("completion_tokens", completion_tokens.to_string()),
        ];
        match edit::make_patch(&spec, &content, &answer.content) {
            Ok(patch) => {
                fields.push(("patch", patch.diff));
                fields.push(("lines_added", patch.lines_added.to_string()));
                fields.push(("lines_removed", patch.lines_removed.to_string()));
                fields.push(("reason", String::new()));
                let c = persist("done", || q.complete(d, TaskState::Done, &fields)).await?;
                if c == Completion::Recorded {
                    shared.counters.done.fetch_add(1, Ordering::Relaxed);
                }
                tracing::info!(task = %d.task, "patch recorded");
                return Ok(c);
            }
            Err(rejection) if ask < answer_attempts => {
                tracing::info!(task = %d.task, reason = %rejection, "answer rejected; asking again");
                messages = base.clone();
                if let Some(user) = messages.last_mut() {
                    user.content.push_str(&format!(
                        "\n\nA previous answer was rejected: {rejection}. Avoid that."
                    ));
                }
            }
            Err(rejection) => {
                fields.push(("reason", rejection.to_string()));
                fields.push(("reason_kind", rejection.kind().into()));
                let c = persist("fail", || q.complete(d, TaskState::Failed, &fields)).await?;
                if c == Completion::Recorded {
                    shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                }
                tracing::info!(task = %d.task, reason = %rejection, "answer rejected");
                return Ok(c);
            }
        }
    }
}

async fn llm_failed(
    shared: &Shared,
    d: &Delivery,
    attempt: u32,
    e: LlmError,
) -> Result<Completion, QueueError> {
    let q = &shared.queue;
    if e.is_retryable() {
        let error = serde_json::json!({
            "attempt": attempt,
            "kind": e.kind(),
            "error": e.to_string(),
            "worker": shared.id,
        });
        let backoff = task_backoff(attempt);
        let reason = e.to_string();
        let c = persist("retry", || {
            q.retry_later(
                d,
                shared.cfg.queue.max_attempts,
                backoff,
                &error,
                &reason,
                e.kind(),
            )
        })
        .await?;
        tracing::warn!(task = %d.task, attempt, error = %e, outcome = ?c, "LLM call failed");
        Ok(c)
    } else {
        let fields = [
            ("reason", e.to_string()),
            ("reason_kind", e.kind().to_string()),
        ];
        let c = persist("fail", || q.complete(d, TaskState::Failed, &fields)).await?;
        if c == Completion::Recorded {
            shared.counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        tracing::warn!(task = %d.task, error = %e, "LLM refused the task");
        Ok(c)
    }
}

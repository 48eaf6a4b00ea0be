//! The worker: fetch deliveries, hold their lease while the LLM works, turn answers into
//! patches and record exactly one result per task.
//!
//! A [`Worker`] is built from its parts (a queue, an LLM client, the configuration) and run
//! until a shutdown future completes, as mini-redis' `server::run(listener, shutdown)`, so a
//! test can run one in-process against a real Redis. Shutdown follows the container contract:
//! stop fetching, let in-flight tasks finish for `worker.shutdown_grace_secs`, then hand the
//! rest back to the queue at once (not after a lease expiry) and return, so the process exits 0
//! before Docker's SIGKILL.
//!
//! The stages: [`fetch`] (deliveries and reclaims), [`attempt`] (one task: ask, check, record),
//! [`lease`] (renewing the task's lease and the fleet-wide LLM permit), [`health`] (heartbeats
//! and the container health check).

mod attempt;
mod endpoints;
mod fetch;
pub mod health;
mod lease;
mod verify;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::llm::{LlmClient, LlmError};
use crate::queue::{Queue, QueueError, Stage};

pub use health::{HEALTH_FILE_ENV, HEALTHY_WITHIN, HEARTBEAT_TTL_MS, check_health};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    VerifierSetup(#[from] verify::VerifierSetupError),
}

/// What a worker did, for its exit log, its heartbeat and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WorkerStats {
    pub done: u64,
    pub failed: u64,
    pub retried: u64,
    pub dead: u64,
    pub duplicates: u64,
    pub handed_back: u64,
    /// Results (or retries, or hand-backs) refused because another worker had taken the task
    /// after this one's lease lapsed.
    pub stale_results: u64,
}

/// A worker's identity: readable in Redis, unique across restarts of the same container.
/// `TARS_WORKER_NAME` sets the first part (default: the host name).
pub fn worker_id() -> String {
    let host = std::env::var("TARS_WORKER_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| match hostname() {
            h if h.is_empty() => "worker".into(),
            h => h,
        });
    let tag: u16 = rand::random();
    format!("{host}-{}-{tag:04x}", std::process::id())
}

/// This machine's host name, or "" when it has none in UTF-8.
pub(crate) fn hostname() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// A worker, ready to run.
pub struct Worker {
    shared: Arc<Shared>,
}

/// What the worker's tasks share.
struct Shared {
    cfg: Config,
    queue: Queue,
    /// The stage this process serves: its stream, its consumer group, its work.
    stage: Stage,
    /// What the stage works with.
    parts: Parts,
    id: String,
    stats: std::sync::Mutex<WorkerStats>,
    /// The tasks at work: (run, task, started at in ms), for the heartbeat.
    in_flight: Mutex<Vec<(String, String, u64)>>,
    /// Wakes the heartbeat when the in-flight set changes, so `current` is fresh.
    changed: Notify,
    /// Cancelled after the grace period: in-flight tasks stop and are handed back.
    hard_stop: CancellationToken,
    /// Redis refused a write for lack of memory: fetch nothing more before this instant.
    paused_until: std::sync::Mutex<Option<std::time::Instant>>,
}

/// A stage's own parts: an LLM stage needs clients and no toolchain, a verifier the reverse.
enum Parts {
    Llm { endpoints: endpoints::Endpoints },
    Verify(verify::VerifierState),
}

impl Shared {
    fn count(&self, f: impl FnOnce(&mut WorkerStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }
    fn stats(&self) -> WorkerStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }
    /// Fetch nothing for `d` (Redis is out of memory: every new delivery would fail alike).
    fn pause_for(&self, d: Duration) {
        if let Ok(mut p) = self.paused_until.lock() {
            *p = Some(std::time::Instant::now() + d);
        }
    }
    /// How long fetching is still paused, if at all.
    fn paused(&self) -> Option<Duration> {
        let until = (*self.paused_until.lock().ok()?)?;
        until.checked_duration_since(std::time::Instant::now())
    }
}

/// How long a worker fetches nothing after Redis refused a write for lack of memory.
const OOM_PAUSE: Duration = Duration::from_secs(10);

impl Worker {
    /// A worker from its parts; `cfg` is the validated configuration (the queue and the LLM
    /// client were made from it).
    pub fn new(queue: Queue, llm: LlmClient, cfg: Config) -> Worker {
        let one = endpoints::Endpoint::new(&llm.config().clone(), llm);
        let endpoints = endpoints::Endpoints::new(vec![one]);
        Worker::with_parts(queue, Parts::Llm { endpoints }, cfg)
    }

    fn with_parts(queue: Queue, parts: Parts, cfg: Config) -> Worker {
        Worker {
            shared: Arc::new(Shared {
                cfg,
                queue,
                stage: match parts {
                    Parts::Llm { .. } => Stage::Llm,
                    Parts::Verify(_) => Stage::Verify,
                },
                parts,
                id: worker_id(),
                stats: Default::default(),
                in_flight: Mutex::new(Vec::new()),
                changed: Notify::new(),
                hard_stop: CancellationToken::new(),
                paused_until: std::sync::Mutex::new(None),
            }),
        }
    }

    /// Connects to Redis and checks the LLM server has the model, so a worker started against
    /// a wrong model fails at once with the URL and model in the message. A server that cannot
    /// be reached is waited for (logged, with the usual cause: a server on the Docker host
    /// listening on 127.0.0.1 only), since exiting would only start a container restart loop
    /// whose backoff keeps the worker down long after the server is up.
    ///
    /// With several endpoints (`llm.endpoints`), one that fails the check is taken out of
    /// service (and probed again later) rather than stopping the worker; only when every one
    /// fails does the worker stop with the first error. Several endpoints make no in-place
    /// retries (`llm.retries`): a failed call goes to another endpoint instead.
    pub async fn connect(cfg: Config) -> Result<Worker, WorkerError> {
        let queue = Queue::open(&cfg).await?;
        queue.ensure_group().await?;
        let each = cfg.llm.each_endpoint();
        let several = each.len() > 1;
        let mut list = Vec::new();
        for mut c in each {
            if several {
                c.retries = 0;
            }
            let llm = LlmClient::new(&c)?;
            list.push(endpoints::Endpoint::new(&c, llm));
        }
        let endpoints = endpoints::Endpoints::new(list);
        // Only `status` reads what this writes: a Redis that refuses it (full, say) must not
        // keep the worker from starting and reporting that itself.
        if let Err(e) = endpoints.register(&queue).await {
            tracing::warn!(error = %e, "could not announce the LLM endpoints in Redis (dispatcher status will not list them)");
        }
        let worker = Worker::with_parts(queue, Parts::Llm { endpoints }, cfg);
        let Parts::Llm { endpoints } = &worker.shared.parts else {
            unreachable!("built as an LLM worker")
        };
        // A server that cannot be reached may be starting, or listening where containers cannot
        // reach it: wait for it (saying so) rather than exit into a restart loop.
        let mut wait = Duration::from_secs(2);
        loop {
            let mut first_error = None;
            let mut up = 0;
            let mut away = 0;
            for (i, e) in endpoints.list.iter().enumerate() {
                let t0 = std::time::Instant::now();
                match e.llm.preflight().await {
                    Ok(()) => up += 1,
                    Err(err) => {
                        if matches!(err, LlmError::Unreachable { .. } | LlmError::Timeout { .. }) {
                            away += 1;
                        }
                        if several {
                            tracing::warn!(endpoint = %e.key, error = %err, "LLM endpoint failed its check at start: out of service until a probe passes");
                            endpoints
                                .observe(&worker.shared, i, Some(&err), t0.elapsed(), 0)
                                .await;
                        }
                        first_error.get_or_insert(err);
                    }
                }
            }
            match first_error {
                Some(err) if up == 0 && away == endpoints.list.len() => {
                    tracing::warn!(error = %err, retry_in = ?wait, "cannot reach the LLM server; waiting for it. If it runs on the Docker host, it must listen on an address containers reach: OLLAMA_HOST=0.0.0.0 for Ollama, --host 0.0.0.0 for llama.cpp (both listen on 127.0.0.1 by default)");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                Some(err) if up == 0 => return Err(err.into()),
                _ => return Ok(worker),
            }
        }
    }

    /// A verifier (`worker --role verify`): serves the verify stage with the repository's
    /// own check. It needs no LLM; it checks one patch at a time (a build uses every core:
    /// scale with more verifier processes), whatever `worker.concurrency` says.
    pub async fn connect_verifier(mut cfg: Config) -> Result<Worker, WorkerError> {
        let verifier = verify::VerifierState::new(&cfg.verify)?;
        let queue = Queue::open(&cfg).await?;
        queue.ensure_group().await?;
        cfg.worker.concurrency = 1;
        Ok(Worker::with_parts(queue, Parts::Verify(verifier), cfg))
    }

    /// This worker's id, as its heartbeat and the tasks it works on show it.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Serves tasks until `shutdown` completes, then winds down (see the module docs).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> WorkerStats {
        let shared = self.shared;
        let cfg = &shared.cfg;
        match &shared.parts {
            Parts::Llm { endpoints } => {
                let urls: Vec<&str> = endpoints.list.iter().map(|e| e.key.as_str()).collect();
                tracing::info!(worker = %shared.id, concurrency = cfg.worker.concurrency, llm = %urls.join(","), model = %cfg.llm.model, candidates = cfg.llm.candidates, "worker started")
            }
            Parts::Verify(v) => {
                let roots: Vec<String> =
                    v.roots().iter().map(|r| r.display().to_string()).collect();
                tracing::info!(worker = %shared.id, roots = %roots.join(","), timeout_secs = cfg.verify.timeout_secs, network = cfg.verify.network, "verifier started")
            }
        }
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let heartbeat = tokio::spawn(health::heartbeat_loop(shared.clone(), stop.clone()));
        {
            let fetching = fetch::fetch_loop(shared.clone(), &tracker, &stop);
            tokio::pin!(fetching);
            tokio::select! {
                _ = &mut fetching => {}
                _ = shutdown => {
                    stop.cancel();
                    fetching.await;
                }
            }
        }
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
        if let Err(e) = shared.queue.forget_worker(&shared.id).await {
            tracing::debug!(error = %e, "could not delete the heartbeat; it expires on its own");
        }
        let stats = shared.stats();
        tracing::info!(?stats, "worker stopped");
        stats
    }
}

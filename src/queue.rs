//! The Redis schema and the atomic state transitions of a task.
//!
//! Design choices, each answering a failure seen in older job queues:
//! - Tasks are delivered through a Stream with a consumer group, so a task a worker has fetched
//!   stays in the group's pending list until it is acknowledged: a SIGKILLed worker loses
//!   nothing, another worker reclaims it with `XAUTOCLAIM` once its lease has expired.
//! - A worker renews the lease of a task while it works on it (`XCLAIM ... JUSTID`), so a long
//!   LLM call is not mistaken for a dead worker.
//! - Every transition is one Lua script: the task's hash, the run's counters, the stream and the
//!   result log change together or not at all, and a second completion of the same task is
//!   recognised and dropped.
//! - Values are plain hash fields and JSON, keys are documented (README), and all carry the
//!   `{tars}` hash tag so a Redis Cluster keeps them in one slot, as the scripts require.
//! - Acknowledged entries are deleted from the task stream, so it holds only queued and
//!   in-flight work; the result and dead-letter streams are capped with `MAXLEN ~`.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Script, Value};
use serde::{Deserialize, Serialize};

/// Prefix shared by every key; the braces are a Redis Cluster hash tag.
pub const PREFIX: &str = "{tars}";
/// Consumer group on the task stream shared by all workers.
pub const GROUP: &str = "workers";
/// Entries kept in the result and dead-letter streams (approximately).
pub const LOG_MAXLEN: usize = 100_000;

/// Key names. The README's key layout table is written from these.
pub mod keys {
    use super::PREFIX;
    /// ZSET run id -> creation time (ms): the run list, newest last.
    pub fn runs() -> String {
        format!("{PREFIX}:runs")
    }
    /// HASH: the run's metadata and per-state counters.
    pub fn run(run: &str) -> String {
        format!("{PREFIX}:run:{run}")
    }
    /// SET of the run's task ids.
    pub fn run_tasks(run: &str) -> String {
        format!("{PREFIX}:run:{run}:tasks")
    }
    /// HASH: one task, its state and its result.
    pub fn task(run: &str, task: &str) -> String {
        format!("{PREFIX}:task:{run}:{task}")
    }
    /// STRING: a file's content, stored once per content hash.
    pub fn blob(hash: &str) -> String {
        format!("{PREFIX}:blob:{hash}")
    }
    /// STREAM of task deliveries (fields `run`, `task`), consumer group `workers`.
    pub fn tasks_stream() -> String {
        format!("{PREFIX}:stream:tasks")
    }
    /// STREAM of finished tasks (fields `run`, `task`, `state`), for dashboards and waiters.
    pub fn results_stream() -> String {
        format!("{PREFIX}:stream:results")
    }
    /// STREAM of dead-lettered tasks (fields `run`, `task`, `reason`).
    pub fn dead_stream() -> String {
        format!("{PREFIX}:stream:dead")
    }
    /// ZSET `run:task` -> due time (ms) of retries waiting out their backoff.
    pub fn delayed() -> String {
        format!("{PREFIX}:delayed")
    }
    /// ZSET holder -> lease expiry (ms, server clock): the fleet-wide permits of one LLM
    /// endpoint (`llm.max_in_flight`).
    pub fn llm_permits(endpoint: &str) -> String {
        format!("{PREFIX}:llm:{endpoint}:permits")
    }
    /// HASH with a TTL: a worker's heartbeat.
    pub fn worker(id: &str) -> String {
        format!("{PREFIX}:worker:{id}")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(
        "cannot reach Redis at {url}: {source}. Start one (e.g. `redis-server --port 6379`) or set redis.url / TARS_REDIS__URL"
    )]
    Unreachable {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("Redis command failed: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis holds a malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error("run {0} does not exist (see `dispatcher status` for the latest run)")]
    NoSuchRun(String),
    #[error("no run exists yet: start one with `dispatcher run PATH`")]
    NoRuns,
    #[error(
        "could not find a free run id after {attempts} tries: is something else creating runs \
         in a loop? Try again"
    )]
    RunIdTaken { attempts: usize },
}

/// The states a task moves through. Terminal: done, failed, dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Queued,
    Running,
    Retrying,
    Done,
    Failed,
    Dead,
    Cancelled,
}

impl TaskState {
    pub const ALL: [TaskState; 7] = [
        TaskState::Queued,
        TaskState::Running,
        TaskState::Retrying,
        TaskState::Done,
        TaskState::Failed,
        TaskState::Dead,
        TaskState::Cancelled,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Retrying => "retrying",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
            TaskState::Dead => "dead",
            TaskState::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<TaskState> {
        TaskState::ALL.into_iter().find(|t| t.as_str() == s)
    }
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Done | TaskState::Failed | TaskState::Dead | TaskState::Cancelled
        )
    }
}

/// What a worker needs to do a task, written at enqueue time. Stored as hash fields so a person
/// reading Redis sees the task without decoding anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub id: String,
    pub path: String,
    pub line: usize,
    pub tag: String,
    pub text: String,
    pub language: String,
    pub symbol: Option<String>,
    pub block_start: usize,
    pub block_end: usize,
    pub content_hash: String,
    /// SHA-256 (16 hex digits) of the block's text at scan time. `run --only-new` skips a TODO
    /// done in an earlier run only while this is unchanged: ids count identical TODOs in order,
    /// so once an applied patch removes the first of two, the second inherits its id, and only
    /// the changed block tells them apart.
    pub block_hash: String,
}

impl TaskSpec {
    /// `content` is the file the TODO was found in (its block range points into it).
    pub fn from_todo(t: &crate::scan::Todo, content: &str) -> TaskSpec {
        let block = content.get(t.block.start..t.block.end).unwrap_or("");
        let mut block_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(block.as_bytes()));
        block_hash.truncate(16);
        TaskSpec {
            id: t.id.clone(),
            path: t.path.clone(),
            line: t.line,
            tag: t.tag.clone(),
            text: t.text.clone(),
            language: t.language.clone(),
            symbol: t.symbol.clone(),
            block_start: t.block.start,
            block_end: t.block.end,
            content_hash: t.content_hash.clone(),
            block_hash,
        }
    }

    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("id", self.id.clone()),
            ("path", self.path.clone()),
            ("line", self.line.to_string()),
            ("tag", self.tag.clone()),
            ("text", self.text.clone()),
            ("language", self.language.clone()),
            ("symbol", self.symbol.clone().unwrap_or_default()),
            ("block_start", self.block_start.to_string()),
            ("block_end", self.block_end.to_string()),
            ("content_hash", self.content_hash.clone()),
            ("block_hash", self.block_hash.clone()),
        ]
    }
}

/// A task as read back from Redis: its spec, its state and whatever result it has.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRecord {
    pub run: String,
    pub spec: TaskSpec,
    pub state: TaskState,
    pub attempts: u32,
    pub reason: Option<String>,
    /// A short stable word for the reason (`no_code_block`, `timeout`...), for grouping.
    pub reason_kind: Option<String>,
    pub patch: Option<String>,
    pub answer: Option<String>,
    pub model: Option<String>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub llm_ms: Option<u64>,
    pub enqueued_at: Option<u64>,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    pub worker: Option<String>,
    /// JSON array of every failed attempt's error, oldest first.
    pub errors: Vec<serde_json::Value>,
}

impl TaskRecord {
    fn from_hash(run: &str, h: &HashMap<String, String>) -> Result<TaskRecord, QueueError> {
        let get = |k: &str| h.get(k).filter(|v| !v.is_empty()).cloned();
        let num = |k: &str| get(k).and_then(|v| v.parse::<u64>().ok());
        let malformed = |detail: String| QueueError::Malformed {
            what: "task hash",
            detail,
        };
        let state_s = get("state").ok_or_else(|| malformed(format!("no state in {h:?}")))?;
        let state = TaskState::parse(&state_s)
            .ok_or_else(|| malformed(format!("unknown state {state_s:?}")))?;
        let spec = TaskSpec {
            id: get("id").ok_or_else(|| malformed("no id".into()))?,
            path: get("path").ok_or_else(|| malformed("no path".into()))?,
            line: num("line").unwrap_or(0) as usize,
            tag: get("tag").unwrap_or_default(),
            text: get("text").unwrap_or_default(),
            language: get("language").unwrap_or_default(),
            symbol: get("symbol"),
            block_start: num("block_start").ok_or_else(|| malformed("no block_start".into()))?
                as usize,
            block_end: num("block_end").ok_or_else(|| malformed("no block_end".into()))? as usize,
            content_hash: get("content_hash").unwrap_or_default(),
            block_hash: get("block_hash").unwrap_or_default(),
        };
        let errors = get("errors")
            .and_then(|e| serde_json::from_str::<Vec<serde_json::Value>>(&e).ok())
            .unwrap_or_default();
        Ok(TaskRecord {
            run: run.to_string(),
            spec,
            state,
            attempts: num("attempts").unwrap_or(0) as u32,
            reason: get("reason"),
            reason_kind: get("reason_kind"),
            patch: get("patch"),
            answer: get("answer"),
            model: get("model"),
            prompt_tokens: num("prompt_tokens"),
            completion_tokens: num("completion_tokens"),
            llm_ms: num("llm_ms"),
            enqueued_at: num("enqueued_at"),
            started_at: num("started_at"),
            finished_at: num("finished_at"),
            worker: get("worker"),
            errors,
        })
    }
}

/// A run's metadata and counters, as `dispatcher status` shows them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunStatus {
    pub run: String,
    pub repo: String,
    pub created_at: u64,
    pub finished_at: Option<u64>,
    pub total: u64,
    pub queued: u64,
    pub running: u64,
    pub retrying: u64,
    pub done: u64,
    pub failed: u64,
    pub dead: u64,
    pub cancelled: u64,
    /// Completions dropped because the task had already finished (it was delivered twice).
    pub duplicates: u64,
    /// `dispatcher run --only-new`: TODOs of the scan left out because an earlier run of the
    /// same repository has them done. None for a run made without the flag.
    #[serde(default)]
    pub skipped_done: Option<u64>,
}

impl RunStatus {
    pub fn finished(&self) -> u64 {
        self.done + self.failed + self.dead + self.cancelled
    }
    pub fn is_complete(&self) -> bool {
        self.finished() >= self.total
    }
    pub fn count(&self, s: TaskState) -> u64 {
        match s {
            TaskState::Queued => self.queued,
            TaskState::Running => self.running,
            TaskState::Retrying => self.retrying,
            TaskState::Done => self.done,
            TaskState::Failed => self.failed,
            TaskState::Dead => self.dead,
            TaskState::Cancelled => self.cancelled,
        }
    }
}

/// One delivery read from the task stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub entry: String,
    pub run: String,
    pub task: String,
}

/// What `start` found when a worker tried to take a delivered task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// The worker owns this attempt (1-based).
    Running { attempt: u32 },
    /// The task already finished (a duplicate delivery) or is gone; the entry was acknowledged.
    Skip(String),
    /// Too many attempts: dead-lettered.
    Dead,
}

/// How a completion landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    Recorded,
    /// Another delivery of the task finished first; this result was dropped.
    Duplicate,
    /// A retryable failure: the task waits in the delayed set.
    Retrying,
    /// A retryable failure on the last allowed attempt.
    Dead,
}

/// Every script starts with the shared prelude (terminal states, run completion, ack).
fn script(body: &str) -> Script {
    Script::new(&format!("{}\n{body}", include_str!("lua/prelude.lua")))
}

static ENQUEUE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/enqueue.lua")));
/// Fresh suffixes drawn before giving up on creating a run; more than one is already rare.
const RUN_ID_ATTEMPTS: usize = 16;

static CREATE_RUN_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/create_run.lua")));
static START_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/start.lua")));
static COMPLETE_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/complete.lua")));
static RETRY_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/retry.lua")));
static PROMOTE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/promote.lua")));
static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/release.lua")));
static RENEW_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/renew.lua")));
static CANCEL_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/cancel.lua")));
static RETRY_RUN_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/retry_run.lua")));
static PURGE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/purge.lua")));
static PERMIT_ACQUIRE_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/permit_acquire.lua")));
static PERMIT_RENEW_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/permit_renew.lua")));

/// Commands per pipelined round trip when enqueueing.
const BATCH: usize = 500;
/// Task states read per pipelined round trip by [`Queue::done_among`] (short replies).
pub const STATE_BATCH: usize = 2_000;

fn enqueue_invocation<'a>(run: &str, spec: &TaskSpec, now: u64) -> redis::ScriptInvocation<'a> {
    let mut inv = ENQUEUE_SCRIPT.prepare_invoke();
    inv.key(keys::task(run, &spec.id))
        .key(keys::run(run))
        .key(keys::run_tasks(run))
        .key(keys::tasks_stream())
        .arg(run)
        .arg(&spec.id)
        .arg(now);
    for (k, v) in spec.fields() {
        inv.arg(k).arg(v);
    }
    inv
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A handle on the queue. Cheap to clone: the connection manager multiplexes and reconnects.
#[derive(Clone)]
pub struct Queue {
    url: String,
    client: redis::Client,
    conn: ConnectionManager,
    retention_secs: u64,
}

impl Queue {
    /// Connects and checks the server answers, so a wrong URL fails here with a message that
    /// names it rather than later inside a loop.
    pub async fn connect(url: &str, retention_days: u64) -> Result<Queue, QueueError> {
        let unreachable = |source| QueueError::Unreachable {
            url: url.to_string(),
            source,
        };
        let client = redis::Client::open(url).map_err(unreachable)?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(2));
        let mut conn = client
            .get_connection_manager_with_config(cfg)
            .await
            .map_err(unreachable)?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(unreachable)?;
        Ok(Queue {
            url: url.to_string(),
            client,
            conn,
            retention_secs: retention_days.saturating_mul(86_400),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A dedicated connection for blocking reads: its response timeout must outlast the BLOCK,
    /// and a blocked command would stall every other command multiplexed with it.
    pub async fn blocking_connection(&self) -> Result<MultiplexedConnection, QueueError> {
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(10)));
        self.client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(|source| QueueError::Unreachable {
                url: self.url.clone(),
                source,
            })
    }

    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Creates the consumer group if it is missing (idempotent).
    pub async fn ensure_group(&self) -> Result<(), QueueError> {
        let mut c = self.conn();
        let r: Result<String, redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(keys::tasks_stream())
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut c)
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Records a new run. Run ids sort by creation time and stay readable in a dashboard.
    pub async fn create_run(&self, repo: &str) -> Result<String, QueueError> {
        self.create_run_with(repo, None).await
    }

    /// Records a new run; `skipped_done` (set by `dispatcher run --only-new`) is how many TODOs
    /// of the scan were left out because an earlier run of the repository had them done.
    pub async fn create_run_with(
        &self,
        repo: &str,
        skipped_done: Option<u64>,
    ) -> Result<String, QueueError> {
        let mut c = self.conn();
        // A 16-bit suffix collides within a second now and then (200 runs in one second: about
        // one chance in four); the script refuses a taken id and we draw again.
        for _ in 0..RUN_ID_ATTEMPTS {
            let now = now_ms();
            let suffix: u16 = rand::random();
            let run = format!("{}-{suffix:04x}", format_utc(now / 1000));
            let mut fields = vec![
                ("run", run.clone()),
                ("repo", repo.to_string()),
                ("created_at", now.to_string()),
                ("total", "0".into()),
                ("queued", "0".into()),
                ("running", "0".into()),
                ("retrying", "0".into()),
                ("done", "0".into()),
                ("failed", "0".into()),
                ("dead", "0".into()),
                ("cancelled", "0".into()),
            ];
            if let Some(n) = skipped_done {
                fields.push(("skipped_done", n.to_string()));
            }
            let mut inv = CREATE_RUN_SCRIPT.key(keys::run(&run));
            inv.key(keys::runs()).arg(self.retention_secs * 1000);
            for (field, value) in &fields {
                inv.arg(*field).arg(value);
            }
            let created: i64 = inv.invoke_async(&mut c).await?;
            if created == 1 {
                return Ok(run);
            }
        }
        Err(QueueError::RunIdTaken {
            attempts: RUN_ID_ATTEMPTS,
        })
    }

    /// Stores files' contents once per content hash (`(hash, content)` pairs); workers read
    /// the block's context from them.
    pub async fn put_blobs(&self, blobs: &[(&str, &str)]) -> Result<(), QueueError> {
        let mut c = self.conn();
        for chunk in blobs.chunks(BATCH) {
            let mut p = redis::pipe();
            for (hash, content) in chunk {
                p.cmd("SET")
                    .arg(keys::blob(hash))
                    .arg(*content)
                    .arg("EX")
                    .arg(self.retention_secs)
                    .ignore();
            }
            let _: () = p.query_async(&mut c).await?;
        }
        Ok(())
    }

    pub async fn get_blob(&self, hash: &str) -> Result<Option<String>, QueueError> {
        let mut c = self.conn();
        Ok(redis::cmd("GET")
            .arg(keys::blob(hash))
            .query_async(&mut c)
            .await?)
    }

    /// Adds a task to a run; returns false when the run already has it (so enqueueing the same
    /// scan twice adds nothing).
    pub async fn enqueue(&self, run: &str, spec: &TaskSpec) -> Result<bool, QueueError> {
        let mut c = self.conn();
        let added: i64 = enqueue_invocation(run, spec, now_ms())
            .invoke_async(&mut c)
            .await?;
        Ok(added == 1)
    }

    /// Enqueues many tasks in pipelined batches (one round trip per batch, not per task) and
    /// returns how many were new. Each task is still its own atomic script.
    pub async fn enqueue_batch(&self, run: &str, specs: &[TaskSpec]) -> Result<usize, QueueError> {
        let mut c = self.conn();
        let mut added = 0;
        for chunk in specs.chunks(BATCH) {
            // EVALSHA in a pipeline needs the script loaded; load it per batch so a Redis
            // restart between batches cannot leave it missing.
            ENQUEUE_SCRIPT.prepare_invoke().load_async(&mut c).await?;
            let now = now_ms();
            let invocations: Vec<_> = chunk
                .iter()
                .map(|spec| enqueue_invocation(run, spec, now))
                .collect();
            let mut p = redis::pipe();
            for inv in &invocations {
                p.invoke_script(inv);
            }
            let results: Vec<i64> = p.query_async(&mut c).await?;
            added += results.iter().filter(|&&n| n == 1).count();
        }
        Ok(added)
    }

    /// Reads new deliveries for `consumer`, blocking up to `block`. Use a connection from
    /// [`Queue::blocking_connection`].
    pub async fn fetch(
        &self,
        blocking: &mut MultiplexedConnection,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let v: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(keys::tasks_stream())
            .arg(">")
            .query_async(blocking)
            .await?;
        let mut out = Vec::new();
        if let Value::Array(streams) = v {
            for s in streams {
                if let Value::Array(parts) = s
                    && parts.len() == 2
                {
                    parse_entries(&parts[1], &mut out);
                }
            }
        } else if let Value::Map(streams) = v {
            for (_, entries) in streams {
                parse_entries(&entries, &mut out);
            }
        }
        Ok(out)
    }

    /// Takes over deliveries whose lease expired (their worker died or hung).
    pub async fn reclaim(
        &self,
        consumer: &str,
        lease: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, QueueError> {
        let mut c = self.conn();
        let v: Value = redis::cmd("XAUTOCLAIM")
            .arg(keys::tasks_stream())
            .arg(GROUP)
            .arg(consumer)
            .arg(lease.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut c)
            .await?;
        let mut out = Vec::new();
        if let Value::Array(parts) = v
            && parts.len() >= 2
        {
            parse_entries(&parts[1], &mut out);
        }
        Ok(out)
    }

    /// Renews the lease of a delivery this consumer owns. Returns false when it no longer owns
    /// it (the lease expired and another worker took the task, or the task finished).
    pub async fn renew(&self, consumer: &str, entry: &str) -> Result<bool, QueueError> {
        let mut c = self.conn();
        let n: i64 = RENEW_SCRIPT
            .key(keys::tasks_stream())
            .arg(GROUP)
            .arg(consumer)
            .arg(entry)
            .invoke_async(&mut c)
            .await?;
        Ok(n == 1)
    }

    /// Whether the run was cancelled: workers check it at their checkpoints.
    pub async fn run_cancelled(&self, run: &str) -> Result<bool, QueueError> {
        let mut c = self.conn();
        let n: i64 = redis::cmd("HEXISTS")
            .arg(keys::run(run))
            .arg("cancelled_at")
            .query_async(&mut c)
            .await?;
        Ok(n == 1)
    }

    /// Cancels a run; returns how many queued or retrying tasks were cancelled at once.
    pub async fn cancel_run(&self, run: &str) -> Result<u64, QueueError> {
        let mut c = self.conn();
        let n: i64 = CANCEL_SCRIPT
            .key(keys::run(run))
            .key(keys::run_tasks(run))
            .key(keys::delayed())
            .arg(PREFIX)
            .arg(run)
            .arg(now_ms())
            .arg(self.retention_secs)
            .invoke_async(&mut c)
            .await?;
        u64::try_from(n).map_err(|_| QueueError::NoSuchRun(run.to_string()))
    }

    /// Requeues a run's tasks that ended in `state` (failed, dead or cancelled).
    pub async fn retry_run(&self, run: &str, state: TaskState) -> Result<u64, QueueError> {
        let mut c = self.conn();
        let n: i64 = RETRY_RUN_SCRIPT
            .key(keys::run(run))
            .key(keys::run_tasks(run))
            .key(keys::tasks_stream())
            .arg(PREFIX)
            .arg(run)
            .arg(state.as_str())
            .invoke_async(&mut c)
            .await?;
        u64::try_from(n).map_err(|_| QueueError::NoSuchRun(run.to_string()))
    }

    /// Removes a run and its tasks; returns how many tasks were removed.
    pub async fn purge_run(&self, run: &str) -> Result<u64, QueueError> {
        let mut c = self.conn();
        let n: i64 = PURGE_SCRIPT
            .key(keys::run(run))
            .key(keys::run_tasks(run))
            .key(keys::delayed())
            .key(keys::runs())
            .arg(PREFIX)
            .arg(run)
            .invoke_async(&mut c)
            .await?;
        u64::try_from(n).map_err(|_| QueueError::NoSuchRun(run.to_string()))
    }

    /// Tries to take one of `max` fleet-wide permits for an LLM endpoint; the permit lapses
    /// after `ttl` unless renewed.
    pub async fn permit_acquire(
        &self,
        endpoint: &str,
        holder: &str,
        max: u32,
        ttl: Duration,
    ) -> Result<bool, QueueError> {
        let mut c = self.conn();
        let n: i64 = PERMIT_ACQUIRE_SCRIPT
            .key(keys::llm_permits(endpoint))
            .arg(holder)
            .arg(ttl.as_millis() as u64)
            .arg(max)
            .invoke_async(&mut c)
            .await?;
        Ok(n == 1)
    }

    pub async fn permit_renew(
        &self,
        endpoint: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, QueueError> {
        let mut c = self.conn();
        let n: i64 = PERMIT_RENEW_SCRIPT
            .key(keys::llm_permits(endpoint))
            .arg(holder)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut c)
            .await?;
        Ok(n == 1)
    }

    pub async fn permit_release(&self, endpoint: &str, holder: &str) -> Result<(), QueueError> {
        let mut c = self.conn();
        let _: i64 = redis::cmd("ZREM")
            .arg(keys::llm_permits(endpoint))
            .arg(holder)
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    pub async fn start(
        &self,
        d: &Delivery,
        worker: &str,
        max_attempts: u32,
    ) -> Result<Start, QueueError> {
        let mut c = self.conn();
        let v: Vec<Value> = START_SCRIPT
            .key(keys::task(&d.run, &d.task))
            .key(keys::run(&d.run))
            .key(keys::tasks_stream())
            .key(keys::dead_stream())
            .key(keys::run_tasks(&d.run))
            .arg(&d.entry)
            .arg(GROUP)
            .arg(worker)
            .arg(now_ms())
            .arg(max_attempts)
            .arg(&d.run)
            .arg(&d.task)
            .arg(self.retention_secs)
            .invoke_async(&mut c)
            .await?;
        let word = v.first().map(value_string).unwrap_or_default();
        let second = v.get(1).map(value_string).unwrap_or_default();
        Ok(match word.as_str() {
            "running" => Start::Running {
                attempt: second.parse().unwrap_or(1),
            },
            "dead" => Start::Dead,
            _ => Start::Skip(second),
        })
    }

    pub async fn task(&self, run: &str, task: &str) -> Result<Option<TaskRecord>, QueueError> {
        let mut c = self.conn();
        let h: HashMap<String, String> = hgetall(&mut c, keys::task(run, task)).await?;
        if h.is_empty() {
            return Ok(None);
        }
        TaskRecord::from_hash(run, &h).map(Some)
    }

    /// Records a final result (`done` or `failed`) with its fields.
    pub async fn complete(
        &self,
        d: &Delivery,
        state: TaskState,
        fields: &[(&str, String)],
    ) -> Result<Completion, QueueError> {
        let mut c = self.conn();
        let mut inv = COMPLETE_SCRIPT.prepare_invoke();
        inv.key(keys::task(&d.run, &d.task))
            .key(keys::run(&d.run))
            .key(keys::tasks_stream())
            .key(keys::results_stream())
            .key(keys::run_tasks(&d.run))
            .arg(&d.entry)
            .arg(GROUP)
            .arg(state.as_str())
            .arg(now_ms())
            .arg(self.retention_secs)
            .arg(&d.run)
            .arg(&d.task);
        for (k, v) in fields {
            inv.arg(*k).arg(v);
        }
        let r: String = inv.invoke_async(&mut c).await?;
        Ok(if r == "duplicate" {
            Completion::Duplicate
        } else {
            Completion::Recorded
        })
    }

    /// Records a retryable failure: the task waits out `backoff` in the delayed set, or is
    /// dead-lettered when this was its last attempt.
    pub async fn retry_later(
        &self,
        d: &Delivery,
        max_attempts: u32,
        backoff: Duration,
        error: &serde_json::Value,
        reason: &str,
        reason_kind: &str,
    ) -> Result<Completion, QueueError> {
        let mut c = self.conn();
        let now = now_ms();
        let r: String = RETRY_SCRIPT
            .key(keys::task(&d.run, &d.task))
            .key(keys::run(&d.run))
            .key(keys::tasks_stream())
            .key(keys::delayed())
            .key(keys::dead_stream())
            .key(keys::results_stream())
            .key(keys::run_tasks(&d.run))
            .arg(&d.entry)
            .arg(GROUP)
            .arg(now)
            .arg(now + backoff.as_millis() as u64)
            .arg(max_attempts)
            .arg(error.to_string())
            .arg(reason)
            .arg(&d.run)
            .arg(&d.task)
            .arg(self.retention_secs)
            .arg(reason_kind)
            .invoke_async(&mut c)
            .await?;
        Ok(match r.as_str() {
            "dead" => Completion::Dead,
            "retrying" => Completion::Retrying,
            _ => Completion::Duplicate,
        })
    }

    /// Moves retries whose backoff has elapsed back onto the task stream.
    pub async fn promote_due(&self, limit: usize) -> Result<u64, QueueError> {
        let mut c = self.conn();
        Ok(PROMOTE_SCRIPT
            .key(keys::delayed())
            .key(keys::tasks_stream())
            .arg(now_ms())
            .arg(limit)
            .arg(PREFIX)
            .invoke_async(&mut c)
            .await?)
    }

    /// Hands an in-flight task back at once (shutdown), without counting the attempt.
    pub async fn release(&self, d: &Delivery) -> Result<bool, QueueError> {
        let mut c = self.conn();
        let n: i64 = RELEASE_SCRIPT
            .key(keys::task(&d.run, &d.task))
            .key(keys::run(&d.run))
            .key(keys::tasks_stream())
            .arg(&d.entry)
            .arg(GROUP)
            .arg(&d.run)
            .arg(&d.task)
            .invoke_async(&mut c)
            .await?;
        Ok(n == 1)
    }

    pub async fn latest_run(&self) -> Result<String, QueueError> {
        let mut c = self.conn();
        let v: Vec<String> = redis::cmd("ZRANGE")
            .arg(keys::runs())
            .arg(-1)
            .arg(-1)
            .query_async(&mut c)
            .await?;
        v.into_iter().next().ok_or(QueueError::NoRuns)
    }

    /// The listed runs (oldest first) whose hash records exactly `repo` as the scanned root: one
    /// round trip for the list, then the runs' `repo` fields in pipelines of 500. Purged and
    /// expired runs have no hash and are left out.
    pub async fn runs_of_repo(&self, repo: &str) -> Result<Vec<String>, QueueError> {
        let mut c = self.conn();
        let runs: Vec<String> = redis::cmd("ZRANGE")
            .arg(keys::runs())
            .arg(0)
            .arg(-1)
            .query_async(&mut c)
            .await?;
        let mut out = Vec::new();
        for chunk in runs.chunks(BATCH) {
            let mut p = redis::pipe();
            for r in chunk {
                p.hget(keys::run(r), "repo");
            }
            let repos: Vec<Option<String>> = p.query_async(&mut c).await?;
            out.extend(
                chunk
                    .iter()
                    .zip(repos)
                    .filter(|(_, r)| r.as_deref() == Some(repo))
                    .map(|(run, _)| run.clone()),
            );
        }
        Ok(out)
    }

    /// Which of `candidates` (task ids) ended `done` in at least one of `runs`. Pipelined: one
    /// round trip for the runs' task sets, then one per [`STATE_BATCH`] task states, reading only
    /// the states of candidates the runs hold and not already known done (10,000 tasks over
    /// several runs: about six round trips).
    pub async fn done_among(
        &self,
        runs: &[String],
        candidates: &HashMap<&str, &str>,
    ) -> Result<HashSet<String>, QueueError> {
        let mut done = HashSet::new();
        if runs.is_empty() || candidates.is_empty() {
            return Ok(done);
        }
        let mut c = self.conn();
        let mut p = redis::pipe();
        for r in runs {
            p.smembers(keys::run_tasks(r));
        }
        let sets: Vec<Vec<String>> = p.query_async(&mut c).await?;
        // Every run's copy is read: an older run may have done the TODO with today's block
        // while a newer one did it with another.
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for (run, ids) in runs.iter().zip(&sets) {
            for id in ids {
                if candidates.contains_key(id.as_str()) {
                    pairs.push((run.as_str(), id.as_str()));
                }
            }
        }
        for chunk in pairs.chunks(STATE_BATCH) {
            let mut p = redis::pipe();
            for (run, id) in chunk {
                p.cmd("HMGET")
                    .arg(keys::task(run, id))
                    .arg("state")
                    .arg("block_hash");
            }
            let rows: Vec<(Option<String>, Option<String>)> = p.query_async(&mut c).await?;
            for ((_, id), (st, hash)) in chunk.iter().zip(rows) {
                if st.as_deref() == Some(TaskState::Done.as_str())
                    && hash.as_deref() == candidates.get(id).copied()
                {
                    done.insert(id.to_string());
                }
            }
        }
        Ok(done)
    }

    pub async fn run_status(&self, run: &str) -> Result<RunStatus, QueueError> {
        let mut c = self.conn();
        let h: HashMap<String, String> = hgetall(&mut c, keys::run(run)).await?;
        if h.is_empty() {
            return Err(QueueError::NoSuchRun(run.to_string()));
        }
        let num = |k: &str| h.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Ok(RunStatus {
            run: run.to_string(),
            repo: h.get("repo").cloned().unwrap_or_default(),
            created_at: num("created_at"),
            finished_at: h.get("finished_at").and_then(|v| v.parse().ok()),
            total: num("total"),
            queued: num("queued"),
            running: num("running"),
            retrying: num("retrying"),
            done: num("done"),
            failed: num("failed"),
            dead: num("dead"),
            cancelled: num("cancelled"),
            duplicates: num("duplicates"),
            skipped_done: h.get("skipped_done").and_then(|v| v.parse().ok()),
        })
    }

    /// Every task of a run, sorted by path and line.
    pub async fn run_tasks(&self, run: &str) -> Result<Vec<TaskRecord>, QueueError> {
        let mut c = self.conn();
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::run_tasks(run))
            .query_async(&mut c)
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(200) {
            let mut p = redis::pipe();
            for id in chunk {
                p.hgetall(keys::task(run, id));
            }
            let hs: Vec<HashMap<String, String>> = p.query_async(&mut c).await?;
            for h in hs.iter().filter(|h| !h.is_empty()) {
                out.push(TaskRecord::from_hash(run, h)?);
            }
        }
        out.sort_by(|a, b| (&a.spec.path, a.spec.line).cmp(&(&b.spec.path, b.spec.line)));
        Ok(out)
    }

    /// Every live worker's heartbeat (SCAN, never KEYS: safe on a busy server).
    pub async fn heartbeats(&self) -> Result<Vec<HashMap<String, String>>, QueueError> {
        let mut c = self.conn();
        let mut cursor: u64 = 0;
        let mut keys_found: Vec<String> = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(keys::worker("*"))
                .arg("COUNT")
                .arg(500)
                .query_async(&mut c)
                .await?;
            keys_found.extend(batch);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        if keys_found.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = redis::pipe();
        for k in &keys_found {
            p.hgetall(k);
        }
        let all: Vec<HashMap<String, String>> = p.query_async(&mut c).await?;
        // A heartbeat can expire between SCAN and HGETALL.
        let mut out: Vec<_> = all.into_iter().filter(|h| !h.is_empty()).collect();
        out.sort_by(|a, b| a.get("id").cmp(&b.get("id")));
        Ok(out)
    }

    /// Writes a worker's heartbeat; it expires on its own when the worker dies.
    pub async fn heartbeat(
        &self,
        worker: &str,
        fields: &[(&str, String)],
        ttl: Duration,
    ) -> Result<(), QueueError> {
        let mut c = self.conn();
        let key = keys::worker(worker);
        let _: () = redis::pipe()
            .hset_multiple(&key, fields)
            .expire(&key, ttl.as_secs().max(1) as i64)
            .query_async(&mut c)
            .await?;
        Ok(())
    }
}

async fn hgetall(
    c: &mut ConnectionManager,
    key: String,
) -> Result<HashMap<String, String>, QueueError> {
    Ok(redis::cmd("HGETALL").arg(key).query_async(c).await?)
}

fn value_string(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Okay => "OK".into(),
        _ => String::new(),
    }
}

/// Parses `[[id, [field, value, ...]], ...]`; entries whose fields were deleted are skipped.
fn parse_entries(v: &Value, out: &mut Vec<Delivery>) {
    let Value::Array(entries) = v else { return };
    for e in entries {
        let Value::Array(pair) = e else { continue };
        if pair.len() != 2 {
            continue;
        }
        let entry = value_string(&pair[0]);
        let mut run = None;
        let mut task = None;
        match &pair[1] {
            Value::Array(kv) => {
                for f in kv.chunks(2) {
                    if f.len() == 2 {
                        match value_string(&f[0]).as_str() {
                            "run" => run = Some(value_string(&f[1])),
                            "task" => task = Some(value_string(&f[1])),
                            _ => {}
                        }
                    }
                }
            }
            Value::Map(kv) => {
                for (k, val) in kv {
                    match value_string(k).as_str() {
                        "run" => run = Some(value_string(val)),
                        "task" => task = Some(value_string(val)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        if let (Some(run), Some(task)) = (run, task) {
            out.push(Delivery { entry, run, task });
        }
    }
}

/// `YYYYMMDD-HHMMSS` in UTC, without pulling in a date crate for one format.
pub fn format_utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}{mo:02}{d:02}-{h:02}{m:02}{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_format_matches_known_dates() {
        assert_eq!(format_utc(0), "19700101-000000");
        assert_eq!(format_utc(1_795_500_000), "20261124-060000");
        assert_eq!(format_utc(951_782_400), "20000229-000000");
    }

    #[test]
    fn states_round_trip() {
        for s in TaskState::ALL {
            assert_eq!(TaskState::parse(s.as_str()), Some(s));
        }
        assert_eq!(TaskState::parse("bogus"), None);
    }
}

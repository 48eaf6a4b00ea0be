//! Key names. Every key starts with [`PREFIX`], a Redis Cluster hash tag, so that all of them
//! live in one slot as the Lua scripts need. The README's key layout table is written from
//! these; the scripts that find keys by id get templates made by these same functions
//! (`TASK_KEY`, `RUN_KEY`), rendered into their header by `queue::scripts`.

/// Prefix shared by every key; the braces are a Redis Cluster hash tag.
pub const PREFIX: &str = "{tars}";
/// Consumer group on the task stream shared by all workers.
pub const GROUP: &str = "workers";
/// Consumer group on the verify stream shared by all verifiers (`worker --role verify`).
pub const VERIFY_GROUP: &str = "verifiers";

/// ZSET run id -> creation time (ms, Redis's clock): the run list, newest last.
/// Tasks finished in one minute (Unix minute, Redis's clock), by final state: the dashboard's
/// bounded history. Each expires after [`history_window`]'s seconds.
pub fn minute(minute: u64) -> String {
    format!("{PREFIX}:minute:{minute}")
}

/// HASH: a histogram of whole-task durations (enqueued to finished, ms), by final state:
/// `<state>:<bucket ms>` and `<state>:inf` (calls in the first bucket that fits), `<state>:sum_ms`,
/// `<state>:count`. Counters since the queue was made, for Prometheus.
/// Upper bounds (ms) of [`task_durations`]' buckets: a task takes from a second (a fast model,
/// a small block) to many minutes (retries, verification, repairs).
pub const TASK_BUCKETS_MS: [u64; 10] = [
    1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000, 3_600_000,
];

pub fn task_durations() -> String {
    format!("{PREFIX}:task_durations")
}

/// How long a [`minute`] hash is kept, in seconds (a number; absent: 24 h). Set by
/// `dispatcher dashboard --history-hours`.
pub fn history_window() -> String {
    format!("{PREFIX}:history_window")
}

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
/// STREAM of task deliveries (fields `run`, `task`), consumer group [`GROUP`].
pub fn tasks_stream() -> String {
    format!("{PREFIX}:stream:tasks")
}
/// STREAM of patched tasks waiting for verification (fields `run`, `task`), consumer group
/// [`VERIFY_GROUP`]: the verify stage's own queue, so verifiers and LLM workers scale apart.
pub fn verify_stream() -> String {
    format!("{PREFIX}:stream:verify")
}
/// STREAM with exactly one entry per finished task (fields `run`, `task`, `state`), whichever
/// way it ended (a worker's result, a dead letter, a cancellation), written with the task's
/// final state by the scripts' `finish()`: for dashboards and anything that follows results as
/// they land.
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
/// ZSET holder -> registration expiry (ms): who waits for a permit of the endpoint.
pub fn llm_waiters(endpoint: &str) -> String {
    format!("{PREFIX}:llm:{endpoint}:waiters")
}
/// LIST of holders in arrival order: the order permits are handed out in.
pub fn llm_queue(endpoint: &str) -> String {
    format!("{PREFIX}:llm:{endpoint}:queue")
}
/// The prefix of the LIST a waiter blocks on (`...:wake:<holder>`): a grant pushes to it.
pub fn llm_wake_prefix(endpoint: &str) -> String {
    format!("{PREFIX}:llm:{endpoint}:wake:")
}
/// HASH: the endpoint's shared state (`limit` found by `auto`, the circuit breaker's
/// `state`/`until`/`reason`, request and error counters).
pub fn llm_endpoint(endpoint: &str) -> String {
    format!("{PREFIX}:llm:{endpoint}:state")
}
/// LIST of the last latencies (ms) of the endpoint's calls, newest first, for p50/p95.
pub fn llm_latencies(endpoint: &str) -> String {
    format!("{PREFIX}:llm:{endpoint}:latency")
}
/// SET of the endpoints the fleet has used (for `status`).
pub fn llm_endpoints() -> String {
    format!("{PREFIX}:llm:endpoints")
}
/// HASH with a TTL: a worker's heartbeat.
pub fn worker(id: &str) -> String {
    format!("{PREFIX}:worker:{id}")
}

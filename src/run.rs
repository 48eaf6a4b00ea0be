//! Starting a run and watching it: scan results become tasks in a new run (all TODOs, or with
//! `--only-new` those not already done in an earlier run of the repository), then the run's
//! counters are followed until every task has finished. Printing is `report`'s business.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::queue::{Queue, QueueError, RunStatus, TaskState};
use crate::scan::ScanReport;
use crate::task::TaskSpec;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(
        "{0:?} is not a run id (YYYYMMDD-HHMMSS-xxxx): pass one from `dispatcher status`, or \
         if it is the latest in Redis, purge it (`dispatcher purge`), since something other \
         than tars wrote it"
    )]
    BadRunId(String),
    #[error(
        "run {run} did not finish within {secs} s ({finished} of {total} tasks finished); \
         it goes on: follow it with `dispatcher status {run}`"
    )]
    WaitTimeout {
        run: String,
        secs: u64,
        finished: u64,
        total: u64,
    },
    /// The run was there and is gone while we waited, with the consumer groups: Redis
    /// restarted without persistence, or was flushed.
    #[error(
        "Redis lost the data of run {run} while it ran ({finished} of {total} tasks had \
         finished): it restarted without persistence, or was flushed, and the run's queued \
         tasks are gone. Make Redis durable (`appendonly yes` in redis.conf, or `CONFIG SET \
         appendonly yes`), then start the run again with `dispatcher run`"
    )]
    DataLost {
        run: String,
        finished: u64,
        total: u64,
    },
    /// A run asked for by name is missing, and Redis restarted after it was created.
    #[error(
        "run {run} does not exist, and Redis restarted at {restarted} UTC, after the run was \
         created: Redis lost its data (a restart without persistence; or the run was purged). \
         Make Redis durable (`appendonly yes` in redis.conf, or `CONFIG SET appendonly yes`), \
         then start the run again with `dispatcher run`"
    )]
    LostInRestart { run: String, restarted: String },
    /// Redis refuses every write: the run cannot move until memory is freed.
    #[error("run {run} cannot progress ({finished} of {total} tasks finished): {source}")]
    Stuck {
        run: String,
        finished: u64,
        total: u64,
        #[source]
        source: QueueError,
    },
}

/// How `start_run` picks the TODOs to enqueue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// `dispatcher run --only-new`: leave out every TODO whose id has a `done` task in an
    /// earlier run of the same repository, i.e. a listed run whose hash records the same
    /// canonical root path. Failed, dead and cancelled tasks do not count; purged and expired
    /// runs are gone from Redis and do not count either.
    pub only_new: bool,
    /// Verify the run's patches with this check (`dispatcher run --verify`), recorded on the
    /// run for the verify stage.
    pub verify: Option<crate::queue::RunVerify>,
}

/// What `start_run` did.
#[derive(Debug)]
pub struct Started {
    /// The run created and filled. None when nothing was left to do (the scan found no TODO,
    /// or with `only_new` every one was done before): no run is created then, so `status`, `results` and `apply` keep defaulting to the latest
    /// run that has work in it.
    pub run: Option<String>,
    /// TODOs the scan found.
    pub tasks: usize,
    /// Tasks added to the run.
    pub added: usize,
    /// TODOs left out because an earlier run of the repository has them done (`only_new`).
    pub skipped_done: usize,
    /// The earlier runs of the repository that were consulted (`only_new`), oldest first.
    pub earlier_runs: Vec<String>,
    pub report: ScanReport,
}

/// The repository's identity on a run: its canonical root path.
pub fn repo_key(root: &Path) -> String {
    std::fs::canonicalize(root)
        .unwrap_or_else(|_| root.to_path_buf())
        .display()
        .to_string()
}

/// Creates a run for a scan of `root` and enqueues one task per TODO (with `only_new`, per TODO
/// not already done in an earlier run of the same repository). The caller scans, so that a bad
/// path fails before Redis is touched without walking the tree twice.
pub async fn start_run(
    queue: &Queue,
    root: &Path,
    report: ScanReport,
    opts: RunOptions,
) -> Result<Started, RunError> {
    // A Redis at maxmemory with noeviction refuses every write: say so before creating
    // anything, rather than leave a run no worker can start.
    queue.check_memory().await?;
    queue.ensure_group().await?;
    let repo = repo_key(root);
    let mut specs: Vec<TaskSpec> = report
        .files
        .iter()
        .flat_map(|f| f.todos.iter().map(|t| TaskSpec::from_todo(t, &f.content)))
        .collect();
    let tasks = specs.len();
    let mut earlier_runs = Vec::new();
    let mut skipped_done = 0;
    if opts.only_new {
        // Read before the new run exists, so it is never one of the earlier runs.
        earlier_runs = queue.runs_of_repo(&repo).await?;
        let candidates: HashMap<&str, &str> = specs
            .iter()
            .map(|s| (s.id.as_str(), s.block_hash.as_str()))
            .collect();
        let done = queue.done_among(&earlier_runs, &candidates).await?;
        specs.retain(|s| !done.contains(&s.id));
        skipped_done = tasks - specs.len();
    }
    if specs.is_empty() {
        // Nothing to do (no TODO at all, or with `only_new` none left): no run, which would
        // only shadow the latest real one for `status`, `results` and `apply`.
        return Ok(Started {
            run: None,
            tasks,
            added: 0,
            skipped_done,
            earlier_runs,
            report,
        });
    }
    // The run's hash is created unlisted and listed only once every blob and task is stored:
    // a run that fails half-way (Redis full, an expiry Redis refuses) is removed again and
    // never becomes the latest run, shown empty and "complete".
    let run = queue
        .create_unlisted_run(
            &repo,
            opts.only_new.then_some(skipped_done as u64),
            opts.verify.as_ref(),
            crate::git::head_commit(root).as_deref(),
        )
        .await?;
    let added = match fill_run(queue, &run, &report, &specs).await {
        Ok(added) => added,
        Err(e) => {
            // Deleting is allowed even in a full Redis; if this fails too, every key of the
            // run expires after the retention.
            if let Err(remove) = queue.remove_run(&run).await {
                tracing::warn!(%run, error = %remove, "could not remove the half-made run; it expires after queue.retention_days");
            }
            return Err(e.into());
        }
    };
    Ok(Started {
        run: Some(run),
        tasks,
        added,
        skipped_done,
        earlier_runs,
        report,
    })
}

/// Stores the blobs of the files with a task to do, enqueues the tasks and lists the run.
async fn fill_run(
    queue: &Queue,
    run: &str,
    report: &ScanReport,
    specs: &[TaskSpec],
) -> Result<usize, QueueError> {
    // Only the files that still have a task to do are stored.
    let wanted: HashSet<&str> = specs.iter().map(|s| s.content_hash.as_str()).collect();
    let blobs: Vec<(&str, &str)> = report
        .files
        .iter()
        .filter(|f| wanted.contains(f.content_hash.as_str()))
        .map(|f| (f.content_hash.as_str(), f.content.as_str()))
        .collect();
    queue.put_blobs(&blobs).await?;
    let added = queue.enqueue_batch(run, specs).await?;
    queue.list_run(run).await?;
    Ok(added)
}

/// What [`wait_run`] reports while it waits.
#[derive(Debug, Clone, Copy)]
pub enum Waiting<'a> {
    /// The run's counters, at every poll.
    Status(&'a RunStatus),
    /// The run has tasks waiting for the LLM stage and no live worker serves it (no heartbeat
    /// with role `llm`): said at once, and again every [`NO_WORKER_REPEAT`] while it lasts.
    NoWorker {
        /// The Redis the workers must use, without its password.
        redis: &'a str,
        /// Tasks queued, running or retrying.
        waiting: u64,
        /// Live workers of other roles (verifiers).
        others: usize,
    },
}

/// How often [`wait_run`] repeats [`Waiting::NoWorker`] while no worker starts.
pub const NO_WORKER_REPEAT: Duration = Duration::from_secs(30);

/// Whether a heartbeat is an LLM-stage worker's; one without a role (an older worker) counts.
fn serves_llm(h: &HashMap<String, String>) -> bool {
    h.get("role")
        .is_none_or(|r| r == crate::queue::Stage::Llm.as_str())
}

/// Polls the run's counters until every task has finished, calling `progress` with each
/// reading (the CLI draws a bar or prints a line from it), and with [`Waiting::NoWorker`] when
/// nothing serves the run's tasks. Rides out a Redis restart: a transient error is retried
/// for about half a minute before it is reported.
pub async fn wait_run(
    queue: &Queue,
    run: &str,
    timeout: Option<Duration>,
    mut progress: impl FnMut(Waiting<'_>),
) -> Result<RunStatus, RunError> {
    let started = Instant::now();
    let mut failures = 0u32;
    let mut last: Option<RunStatus> = None;
    let mut polls = 0u64;
    // When the missing worker was last said, while it is still missing.
    let mut no_worker_said: Option<Instant> = None;
    loop {
        let st = match queue.run_status(run).await {
            Ok(st) => {
                failures = 0;
                st
            }
            // It was there a moment ago: Redis lost it (purge also removes a run, but says so
            // to whoever purges; a waiting dispatcher should not block on it either way).
            Err(QueueError::NoSuchRun(_)) if last.is_some() => {
                let (finished, total) = last.map_or((0, 0), |l| (l.finished(), l.total));
                return Err(RunError::DataLost {
                    run: run.into(),
                    finished,
                    total,
                });
            }
            Err(e) if e.is_transient() && failures < 30 => {
                failures += 1;
                tracing::warn!(error = %e, "Redis unavailable while waiting; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        progress(Waiting::Status(&st));
        if st.is_complete() {
            return Ok(st);
        }
        // At once, then every few seconds: heartbeats expire 15 s after a worker stops.
        if polls.is_multiple_of(10) {
            let waiting = st.count(TaskState::Queued)
                + st.count(TaskState::Running)
                + st.count(TaskState::Retrying);
            match queue.heartbeats().await {
                Ok(beats) if waiting > 0 && !beats.iter().any(serves_llm) => {
                    if no_worker_said.is_none_or(|t| t.elapsed() >= NO_WORKER_REPEAT) {
                        no_worker_said = Some(Instant::now());
                        progress(Waiting::NoWorker {
                            redis: queue.shown_url(),
                            waiting,
                            others: beats.len(),
                        });
                    }
                }
                Ok(_) => no_worker_said = None,
                Err(e) => tracing::debug!(error = %e, "cannot read the workers' heartbeats"),
            }
        }
        // Every few seconds: a Redis at maxmemory with noeviction refuses every start and
        // result, and the run would never move.
        polls += 1;
        if polls.is_multiple_of(6)
            && let Err(e @ QueueError::OutOfMemory { .. }) = queue.check_memory().await
        {
            return Err(RunError::Stuck {
                run: run.into(),
                finished: st.finished(),
                total: st.total,
                source: e,
            });
        }
        last = Some(st.clone());
        if let Some(t) = timeout
            && started.elapsed() > t
        {
            return Err(RunError::WaitTimeout {
                run: run.into(),
                secs: t.as_secs(),
                finished: st.finished(),
                total: st.total,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A run's status for `dispatcher status`: a missing run that was created before Redis last
/// started (and is younger than `retention_days`, so it did not expire) is reported as lost by
/// Redis, not as a run that never existed.
pub async fn run_status(
    queue: &Queue,
    run: &str,
    retention_days: u64,
) -> Result<RunStatus, RunError> {
    match queue.run_status(run).await {
        Err(QueueError::NoSuchRun(_)) if crate::task::is_run_id(run) => {
            let created = &run[..15];
            let Ok(Some(started)) = queue.server_started_secs().await else {
                return Err(QueueError::NoSuchRun(run.into()).into());
            };
            let now = crate::time::now_secs();
            let oldest = crate::time::format_utc(now.saturating_sub(retention_days * 86_400));
            let restarted = crate::time::format_utc(started);
            if created < restarted.as_str() && created > oldest.as_str() {
                return Err(RunError::LostInRestart {
                    run: run.into(),
                    restarted,
                });
            }
            Err(QueueError::NoSuchRun(run.into()).into())
        }
        r => Ok(r?),
    }
}

/// The run named, or the latest one.
/// Either way the id is checked to be a run id, since it may name a directory
/// (`tars-out/<run>`) and the latest one is read from Redis.
pub async fn resolve_run(queue: &Queue, run: Option<&str>) -> Result<String, RunError> {
    let run = match run {
        Some(r) => r.to_string(),
        None => queue.latest_run().await?,
    };
    if !crate::task::is_run_id(&run) {
        return Err(RunError::BadRunId(run));
    }
    Ok(run)
}

//! A run's results on disk: `DIR/<task-id>.patch` for every done task (a git-style diff to
//! `git apply` at the repository root) and `DIR/summary.json` for all of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::queue::{Queue, QueueError, RunStatus, TaskOutcome, TaskRecord, TaskState};
use crate::task::{TaskSpec, is_task_id};

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(
        "tars-out in the current directory is a symbolic link (to {target}): pass --out DIR to say where the results go"
    )]
    LinkedDefault { target: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// One task in `summary.json`: the task and its outcome as Redis holds them, plus what only
/// the summary knows (timings derived from the timestamps, the patch's file name).
#[derive(Debug, Serialize)]
pub struct TaskSummary {
    #[serde(flatten)]
    pub spec: TaskSpec,
    pub state: TaskState,
    #[serde(flatten)]
    pub outcome: TaskOutcome,
    /// From enqueue to the (last) start.
    pub wait_ms: Option<u64>,
    /// From enqueue to the final result.
    pub total_ms: Option<u64>,
    /// File name of the patch in the output directory, for done tasks.
    pub patch: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub run: String,
    pub repo: String,
    pub status: RunStatus,
    /// A verifying run's yield: how many TODOs got a verified patch at the first try, with
    /// several candidates, and after repairs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    pub tasks: Vec<TaskSummary>,
}

/// pass@1, pass@k and the rest over a verifying run's tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub command: String,
    pub tasks: usize,
    /// Verified with the first candidate of the first round.
    pub pass_at_1: usize,
    /// Verified with any candidate of the first round.
    pub pass_at_k: usize,
    /// Verified, repairs included.
    pub passed: usize,
    pub failed: usize,
    pub baseline_failed: usize,
    pub repairs: u64,
    pub verify_ms: u64,
}

/// The verification figures of a run's tasks.
pub fn verification(command: &str, tasks: &[TaskRecord]) -> Verification {
    let mut v = Verification {
        command: command.to_string(),
        tasks: tasks.len(),
        ..Verification::default()
    };
    for t in tasks {
        let o = &t.outcome;
        v.repairs += u64::from(o.repairs);
        v.verify_ms += o.verify_ms.unwrap_or(0);
        match o.verified.as_deref() {
            Some("passed") if t.state == TaskState::Done => {
                v.passed += 1;
                if o.repairs == 0 {
                    v.pass_at_k += 1;
                    if o.candidate == Some(1) {
                        v.pass_at_1 += 1;
                    }
                }
            }
            Some("failed") => v.failed += 1,
            Some("baseline_failed") => v.baseline_failed += 1,
            _ => {}
        }
    }
    v
}

fn summarize(t: &TaskRecord) -> TaskSummary {
    let since = |end: Option<u64>| match (t.outcome.enqueued_at, end) {
        (Some(a), Some(b)) if b >= a => Some(b - a),
        _ => None,
    };
    TaskSummary {
        spec: t.spec.clone(),
        state: t.state,
        outcome: t.outcome.clone(),
        wait_ms: since(t.outcome.started_at),
        total_ms: since(t.outcome.finished_at),
        patch: has_patch_file(t).then(|| format!("{}.patch", t.spec.id)),
    }
}

/// A done task with a patch gets a file if its id is a real task id (ids come from Redis and
/// must not name a path outside `DIR`) and its patch edits exactly the task's file (a patch
/// rewritten in Redis could also create an executable or edit another file when a reviewer
/// runs `git apply` on it).
fn patch_file_refusal(t: &TaskRecord) -> Option<Result<(), String>> {
    let (TaskState::Done, Some(p)) = (t.state, &t.patch) else {
        return None;
    };
    if !is_task_id(&t.spec.id) {
        return Some(Err("its id is not a task id".into()));
    }
    Some(crate::patch::check_single_file(p, &t.spec.path))
}

fn has_patch_file(t: &TaskRecord) -> bool {
    matches!(patch_file_refusal(t), Some(Ok(())))
}

/// Creates or truncates `path` for writing without following a symbolic link there: a link
/// planted at `summary.json` or `<id>.patch` is refused, not written through.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?
        .write_all(bytes)
}

/// `tars-out/<run>` in the current directory, unless `tars-out` there is a symbolic link: the
/// current directory is often the repository, which could commit `tars-out -> /elsewhere`.
pub fn default_dir(run: &str) -> Result<PathBuf, ResultsError> {
    let base = Path::new("tars-out");
    if std::fs::symlink_metadata(base).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(ResultsError::LinkedDefault {
            target: std::fs::read_link(base)
                .map(|t| t.display().to_string())
                .unwrap_or_default(),
        });
    }
    Ok(base.join(run))
}

/// Writes `DIR/<task-id>.patch` for every done task and `DIR/summary.json` for all of them.
pub async fn write_results(queue: &Queue, run: &str, dir: &Path) -> Result<Summary, ResultsError> {
    let status = queue.run_status(run).await?;
    let tasks = queue.run_tasks(run).await?;
    let werr = |path: PathBuf| {
        move |source| ResultsError::Write {
            path: path.display().to_string(),
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(werr(dir.to_path_buf()))?;
    for t in &tasks {
        match (patch_file_refusal(t), &t.patch) {
            (Some(Ok(())), Some(p)) => {
                let path = dir.join(format!("{}.patch", t.spec.id));
                write_new(&path, p.as_bytes()).map_err(werr(path.clone()))?;
            }
            (Some(Err(why)), _) => tracing::warn!(
                id = ?t.spec.id,
                path = ?t.spec.path,
                "no patch file written for a done task: {why} (Redis data was altered)"
            ),
            _ => {}
        }
    }
    let summary = Summary {
        run: run.to_string(),
        repo: status.repo.clone(),
        verification: status
            .verify
            .as_ref()
            .map(|v| verification(&v.command, &tasks)),
        status,
        tasks: tasks.iter().map(summarize).collect(),
    };
    let path = dir.join("summary.json");
    let json = crate::report::pretty_json(&summary).unwrap_or_default();
    write_new(&path, (json + "\n").as_bytes()).map_err(werr(path.clone()))?;
    Ok(summary)
}

/// The failed and dead tasks grouped by `reason_kind` (a stable word; the free-text reasons
/// differ by URL, line or attempt count): for each kind, how many and one example reason.
pub fn failure_kinds(summary: &Summary) -> BTreeMap<String, (usize, String)> {
    let mut m: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for t in summary.tasks.iter().filter(|t| t.state.is_failure()) {
        let kind = t
            .outcome
            .reason_kind
            .clone()
            .unwrap_or_else(|| "unknown".into());
        let e = m
            .entry(kind)
            .or_insert_with(|| (0, t.outcome.reason.clone().unwrap_or_default()));
        e.0 += 1;
    }
    m
}

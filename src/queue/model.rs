//! What the queue holds, as typed values: a task's state, a task read back with its result, a
//! run's counters, and what the delivery scripts answer.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::task::TaskSpec;

/// The states a task moves through. This enum is the one list of them: the run's counters,
/// the scripts' terminal set (rendered into their prelude) and every rendering iterate
/// [`TaskState::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Queued,
    Running,
    Retrying,
    /// Patched, waiting for (or under) verification by the verify stage.
    Verifying,
    Done,
    Failed,
    Dead,
    Cancelled,
}

impl TaskState {
    pub const ALL: [TaskState; 8] = [
        TaskState::Queued,
        TaskState::Running,
        TaskState::Retrying,
        TaskState::Verifying,
        TaskState::Done,
        TaskState::Failed,
        TaskState::Dead,
        TaskState::Cancelled,
    ];

    /// The word stored in Redis and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Retrying => "retrying",
            TaskState::Verifying => "verifying",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
            TaskState::Dead => "dead",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// A task in a terminal state is never worked on or counted again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Done | TaskState::Failed | TaskState::Dead | TaskState::Cancelled
        )
    }

    /// Terminal states that are not a success: what a run's exit status and summary report.
    pub fn is_failure(self) -> bool {
        matches!(self, TaskState::Failed | TaskState::Dead)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for TaskState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An unknown state word (from Redis, or a command line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a task state (one of queued, running, retrying, verifying, done, failed, dead, cancelled)"
)]
pub struct UnknownState(pub String);

impl FromStr for TaskState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<TaskState, UnknownState> {
        TaskState::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// How many of a run's tasks are in each state; serialised as `{"queued": n, ...}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts([u64; TaskState::ALL.len()]);

impl StateCounts {
    pub fn get(&self, s: TaskState) -> u64 {
        self.0[s.index()]
    }
    pub fn set(&mut self, s: TaskState, n: u64) {
        self.0[s.index()] = n;
    }
    /// Tasks in a terminal state.
    pub fn finished(&self) -> u64 {
        TaskState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .map(|s| self.get(s))
            .sum()
    }
}

impl Serialize for StateCounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(TaskState::ALL.len()))?;
        for st in TaskState::ALL {
            m.serialize_entry(st.as_str(), &self.get(st))?;
        }
        m.end()
    }
}

/// What a task's attempts gave and cost, besides its state and patch. Shared by
/// [`TaskRecord`] and the run summary, so the two cannot drift apart.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TaskOutcome {
    pub attempts: u32,
    pub reason: Option<String>,
    /// A short stable word for the reason (`no_code_block`, `timeout`...), for grouping.
    pub reason_kind: Option<String>,
    pub model: Option<String>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// Time spent in LLM calls, summed over the answers of the last attempt and of the
    /// repair rounds before it.
    pub llm_ms: Option<u64>,
    /// LLM calls made, counted as `llm_ms` is (every candidate is a call).
    pub llm_calls: Option<u64>,
    pub enqueued_at: Option<u64>,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    pub worker: Option<String>,
    /// Every failed attempt's error, oldest first.
    pub errors: Vec<serde_json::Value>,
    /// `passed`, `failed`, `baseline_failed` (the unpatched tree fails its check too, so the
    /// patch is unverified) or `skipped` (the run does not verify).
    pub verified: Option<String>,
    /// Time spent in the repository's check, summed over the candidates tried.
    pub verify_ms: Option<u64>,
    /// The tail of the last check's output.
    pub verify_output: Option<String>,
    /// Rounds in which a failed check went back to the model.
    pub repairs: u32,
    /// Gated answers handed to the verify stage in the last round.
    pub candidates: Option<u32>,
    /// Which of them (1-based) passed its check.
    pub candidate: Option<u32>,
}

/// A task as read back from Redis: its spec, where it stands, and its result.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    pub run: String,
    pub spec: TaskSpec,
    pub state: TaskState,
    pub outcome: TaskOutcome,
    /// The unified diff, for a done task.
    pub patch: Option<String>,
    /// The model's last raw answer.
    pub answer: Option<String>,
    /// The gated patches waiting for the verify stage (JSON, [`crate::verify::Candidate`]).
    pub candidates_json: Option<String>,
    /// The failed check a repair round is to fix (JSON, [`crate::verify::Repair`]).
    pub repair: Option<String>,
}

/// A run's metadata and counters, as `dispatcher status` shows them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RunStatus {
    pub run: String,
    pub repo: String,
    pub created_at: u64,
    pub finished_at: Option<u64>,
    pub total: u64,
    #[serde(flatten)]
    pub counts: StateCounts,
    /// Completions dropped because the task had already finished (it was delivered twice).
    pub duplicates: u64,
    /// Results, retries and hand-backs refused because their worker no longer owned the
    /// delivery (its lease lapsed and another worker took the unfinished task).
    pub stale_results: u64,
    /// `dispatcher run --only-new`: TODOs of the scan left out because an earlier run of the
    /// same repository has them done. None for a run made without the flag.
    pub skipped_done: Option<u64>,
    /// The git commit checked out where the run scanned (None outside git): `land` builds on
    /// it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The run's verification, when it verifies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyStatus>,
    /// What the run's finished tasks cost, summed by the scripts as they end.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub llm_ms: u64,
}

/// What a run asks of the verify stage, as `dispatcher run` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunVerify {
    /// The shell command run at the repository's root.
    pub command: String,
    /// Rounds in which a failed check goes back to the model.
    pub repairs: u32,
    /// The repository the run scanned (its canonical path), as the run records it; empty
    /// when recording.
    pub repo: String,
}

/// A verifying run's check and its outcomes so far (kept by the scripts as tasks end).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VerifyStatus {
    pub command: String,
    /// The unpatched tree's check: `passed` or `failed`; None until a verifier ran it.
    pub baseline: Option<String>,
    /// How long that first check took: a cold build, the dearest check of the run.
    pub baseline_ms: Option<u64>,
    pub passed: u64,
    pub failed: u64,
    pub baseline_failed: u64,
}

impl RunStatus {
    pub fn count(&self, s: TaskState) -> u64 {
        self.counts.get(s)
    }
    pub fn finished(&self) -> u64 {
        self.counts.finished()
    }
    pub fn is_complete(&self) -> bool {
        self.finished() >= self.total
    }
    /// Failed plus dead tasks: a run with any did not do all it was asked.
    pub fn failures(&self) -> u64 {
        TaskState::ALL
            .into_iter()
            .filter(|s| s.is_failure())
            .map(|s| self.count(s))
            .sum()
    }
}

/// The two stages a task passes through, each with its own stream and consumer group so that
/// LLM workers and verifiers scale apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stage {
    /// Ask the LLM, gate the answer (`worker`).
    #[default]
    Llm,
    /// Check a gated patch with the repository's own command (`worker --role verify`).
    Verify,
}

impl Stage {
    pub fn stream(self) -> String {
        match self {
            Stage::Llm => super::keys::tasks_stream(),
            Stage::Verify => super::keys::verify_stream(),
        }
    }
    pub fn group(self) -> &'static str {
        match self {
            Stage::Llm => super::keys::GROUP,
            Stage::Verify => super::keys::VERIFY_GROUP,
        }
    }
    /// The word for logs and heartbeats.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Llm => "llm",
            Stage::Verify => "verify",
        }
    }
}

/// One delivery read from a stage's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub entry: String,
    pub run: String,
    pub task: String,
    pub stage: Stage,
}

/// What `start` found when a worker tried to take a delivered task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// The worker owns this attempt (1-based).
    Running { attempt: u32 },
    /// The task already finished (a duplicate delivery), its run was cancelled, or it is gone;
    /// the entry was acknowledged. Holds the state found (`missing` when gone).
    Skip(String),
    /// Too many attempts: dead-lettered.
    Dead,
    /// Another consumer owns the delivery now (this worker's lease lapsed before it started):
    /// nothing was written.
    NotOwner,
}

/// How a result landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    Recorded,
    /// Another delivery of the task finished first; this result was dropped.
    Duplicate,
    /// A retryable failure: the task waits in the delayed set.
    Retrying,
    /// A retryable failure on the last allowed attempt.
    Dead,
    /// The patch went on to the verify stage.
    HandedToVerify,
    /// Verification failed and the task went back to the LLM stage for a repair.
    Repairing,
    /// The caller no longer owns the delivery (its lease lapsed and another worker took the
    /// task, which has not finished): nothing was written; the run counts it in
    /// `stale_results`.
    NotOwner,
}

/// What handing a delivery back (shutdown) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Back on its stage's stream, the attempt not counted.
    HandedBack,
    /// The task had moved on (finished, purged, or at the other stage): only acknowledged.
    Skipped,
    /// Another worker owns the delivery now: left to it, nothing written.
    NotOwner,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_unknown_ones_are_named() {
        for s in TaskState::ALL {
            assert_eq!(s.to_string().parse::<TaskState>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        let e = "bogus".parse::<TaskState>().unwrap_err().to_string();
        assert!(e.contains("bogus") && e.contains("cancelled"), "{e}");
    }

    #[test]
    fn counts_serialise_by_state_name() {
        let mut c = StateCounts::default();
        c.set(TaskState::Done, 3);
        c.set(TaskState::Dead, 1);
        c.set(TaskState::Queued, 2);
        assert_eq!(c.finished(), 4);
        let v = serde_json::to_value(c).unwrap();
        assert_eq!(v["done"], 3);
        assert_eq!(v["queued"], 2);
        assert_eq!(v.as_object().unwrap().len(), TaskState::ALL.len());
    }
}

//! The verify stage (`worker --role verify`): a patched task's candidates are tried, in order,
//! in a scratch tree at the scanned state with the repository's own check; the first that
//! passes makes the task `done` (`verified = passed`). When all fail, the task goes back to the
//! LLM stage with the first error while repair rounds are left, and ends `failed`
//! (`verify_failed`) after the last.
//!
//! Trust: the run names its repository and its check in Redis, which anyone on its network can
//! write. A verifier runs a check only when its own configuration allows that command
//! (`verify.command`, `verify.allow`, or one that `"auto"` picks), and only on a repository
//! under one of its `verify.roots`; the scratch tree is its own, and the run id is checked
//! before it names a directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use super::attempt::{fail, persist, read_task};
use crate::config::VerifyConfig;
use crate::patch::{apply_unified, check_single_file};
use crate::queue::{Completion, Delivery, QueueError, RunVerify, TaskState};
use crate::verify::{
    AUTO_COMMANDS, Candidate, CheckLimits, Repair, Scratch, Verified, error_line, first_error,
    run_check,
};

/// Bytes of a failed check's output that a repair prompt shows the model.
const REPAIR_ERROR_BYTES: usize = 2048;

/// What a verifier holds across tasks: its limits, and a scratch tree per run.
pub(super) struct VerifierState {
    roots: Vec<PathBuf>,
    allowed: Vec<String>,
    dir: PathBuf,
    limits: CheckLimits,
    output_bytes: usize,
    runs: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<RunScratch>>>>,
}

/// A run's scratch tree on this verifier, with the lock that keeps it this verifier's, and the
/// outcome of its baseline check.
struct RunScratch {
    scratch: Scratch,
    _slot: std::fs::File,
    baseline_passed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifierSetupError {
    #[error(
        "verify.roots: {path} cannot be used ({source}): name directories that exist (the \
         repositories this verifier may check lie under them)"
    )]
    Root {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("verify.dir: cannot create the scratch directory {path}: {source}")]
    Dir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl VerifierState {
    pub(super) fn new(cfg: &VerifyConfig) -> Result<VerifierState, VerifierSetupError> {
        let roots_given = if cfg.roots.is_empty() {
            vec![PathBuf::from(".")]
        } else {
            cfg.roots.clone()
        };
        let mut roots = Vec::new();
        for r in roots_given {
            let canon = std::fs::canonicalize(&r).map_err(|source| VerifierSetupError::Root {
                path: r.display().to_string(),
                source,
            })?;
            roots.push(canon);
        }
        let mut allowed: Vec<String> = AUTO_COMMANDS.iter().map(|c| c.to_string()).collect();
        if let Some(c) = cfg.command.as_deref().filter(|c| *c != "auto") {
            allowed.push(c.to_string());
        }
        allowed.extend(cfg.allow.iter().cloned());
        let dir = cfg.dir.clone().unwrap_or_else(default_dir);
        std::fs::create_dir_all(&dir).map_err(|source| VerifierSetupError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(VerifierState {
            roots,
            allowed,
            dir,
            limits: CheckLimits {
                timeout: Duration::from_secs(cfg.timeout_secs),
                memory_mb: cfg.memory_mb,
                max_processes: cfg.max_processes,
                network: cfg.network,
            },
            output_bytes: cfg.output_bytes,
            runs: Default::default(),
        })
    }

    /// The directories this verifier serves, for its start-up log.
    pub(super) fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    fn allows(&self, command: &str) -> bool {
        self.allowed.iter().any(|c| c == command)
    }

    /// The recorded repository, canonical, when it lies under one of the roots.
    fn served(&self, repo: &str) -> Option<PathBuf> {
        let canon = std::fs::canonicalize(repo).ok()?;
        self.roots
            .iter()
            .any(|r| canon.starts_with(r))
            .then_some(canon)
    }

    /// This verifier's scratch tree for `run`, made (and its baseline checked) on first use.
    async fn run_scratch(
        &self,
        shared: &Shared,
        run: &str,
        repo: &Path,
        command: &str,
    ) -> Result<Arc<tokio::sync::Mutex<RunScratch>>, String> {
        let mut runs = self.runs.lock().await;
        if let Some(rs) = runs.get(run) {
            return Ok(rs.clone());
        }
        let run_dir = self.dir.join(run);
        let (repo2, run_dir2) = (repo.to_path_buf(), run_dir.clone());
        let (scratch, slot) = tokio::task::spawn_blocking(move || {
            let (slot_dir, lock) = take_slot(&run_dir2)?;
            let scratch = Scratch::prepare(&repo2, &slot_dir).map_err(|e| e.to_string())?;
            Ok::<_, String>((scratch, lock))
        })
        .await
        .map_err(|e| format!("the copy into the scratch tree stopped: {e}"))??;
        tracing::info!(run, repo = %repo.display(), tree = %scratch.root().display(), files = scratch.files, command, "checking the unpatched tree (the baseline)");
        let base = run_check(scratch.root(), command, &self.limits)
            .await
            .map_err(|e| format!("cannot start the check `{command}`: {e}"))?;
        if base.passed {
            tracing::info!(
                run,
                ms = base.elapsed.as_millis() as u64,
                "baseline check passed"
            );
        } else {
            tracing::warn!(run, outcome = %base.summary(), "the unpatched tree fails its check: this run's patches are recorded as unverified (baseline_failed)");
        }
        let tail = crate::verify::check::summary_tail(&base, self.output_bytes);
        if let Err(e) = shared
            .queue
            .record_baseline(run, base.passed, &tail, base.elapsed.as_millis() as u64)
            .await
        {
            tracing::warn!(run, error = %e, "could not record the baseline on the run");
        }
        let rs = Arc::new(tokio::sync::Mutex::new(RunScratch {
            scratch,
            _slot: slot,
            baseline_passed: base.passed,
        }));
        // Other runs' trees on this verifier are done with once a new run starts.
        runs.retain(|_, _| false);
        runs.insert(run.to_string(), rs.clone());
        let keep = run.to_string();
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || remove_stale_runs(&dir, &keep));
        Ok(rs)
    }
}

/// `$TARS_CACHE/verify`, else `~/.cache/tars-fleet/verify`, else the temp directory's.
fn default_dir() -> PathBuf {
    if let Some(c) = std::env::var_os("TARS_CACHE") {
        return PathBuf::from(c).join("verify");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache/tars-fleet/verify"),
        None => std::env::temp_dir().join("tars-fleet-verify"),
    }
}

/// A slot of the run's directory that no other verifier on this machine holds: `slot-N`,
/// locked by `slot-N.lock` for as long as this process keeps the file open.
fn take_slot(run_dir: &Path) -> Result<(PathBuf, std::fs::File), String> {
    std::fs::create_dir_all(run_dir)
        .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;
    for n in 0..64 {
        let lock_path = run_dir.join(format!("slot-{n}.lock"));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
        if f.try_lock().is_ok() {
            return Ok((run_dir.join(format!("slot-{n}")), f));
        }
    }
    Err(format!(
        "64 verifiers on this machine already hold scratch trees in {}",
        run_dir.display()
    ))
}

/// Removes the scratch trees of other runs that no verifier holds (every slot lock free).
fn remove_stale_runs(dir: &Path, keep: &str) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == keep || !crate::task::is_run_id(name) {
            continue;
        }
        let path = e.path();
        let mut locks = Vec::new();
        let all_free = std::fs::read_dir(&path).is_ok_and(|slots| {
            slots.flatten().all(|s| {
                if !s.file_name().to_string_lossy().ends_with(".lock") {
                    return true;
                }
                match std::fs::File::open(s.path()) {
                    Ok(f) if f.try_lock().is_ok() => {
                        locks.push(f);
                        true
                    }
                    _ => false,
                }
            })
        });
        if all_free {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// The patched file a candidate makes of the scanned `content`, or why it cannot be applied.
fn candidate_file(path: &str, content: &str, c: &Candidate) -> Result<String, String> {
    check_single_file(&c.diff, path)?;
    apply_unified(content, &c.diff)
}

pub(super) async fn process(
    shared: &Shared,
    d: &Delivery,
    verifier: &VerifierState,
) -> Result<Completion, QueueError> {
    let q = &shared.queue;
    let task = match read_task(shared, d).await? {
        Ok(t) => t,
        Err(ended) => return Ok(ended),
    };
    let candidates: Vec<Candidate> = match task
        .candidates_json
        .as_deref()
        .map(serde_json::from_str::<Vec<Candidate>>)
    {
        Some(Ok(c)) if !c.is_empty() => c,
        _ => {
            let reason =
                "the task has no readable `candidates` to verify (its hash in Redis is damaged)";
            return fail(shared, d, Vec::new(), reason.into(), "bad_task").await;
        }
    };
    if !crate::task::is_run_id(&d.run) {
        let reason = format!(
            "{:?} is not a run id: the delivery in Redis is damaged",
            d.run
        );
        return fail(shared, d, Vec::new(), reason, "bad_task").await;
    }
    let Some(rv) = persist("read the run", || q.run_verify(&d.run)).await? else {
        // The run does not verify (a hand-over someone else wrote): record the first patch.
        return record_done(shared, d, &candidates[0], 1, Verified::Skipped, 0, "").await;
    };
    let RunVerify {
        command,
        repairs,
        repo,
        ..
    } = rv;
    if !verifier.allows(&command) {
        let reason = format!(
            "the run asks to verify with `{command}`, which this verifier does not run: start \
             verifiers with that command in verify.command or verify.allow (TARS_VERIFY__COMMAND)"
        );
        return fail(shared, d, Vec::new(), reason, "verify_not_allowed").await;
    }
    let Some(repo_path) = verifier.served(&repo) else {
        let roots: Vec<String> = verifier
            .roots
            .iter()
            .map(|r| r.display().to_string())
            .collect();
        let reason = format!(
            "the run's repository {repo:?} is not under this verifier's verify.roots ({}), or \
             does not exist here: start verifiers with --root naming a directory above it",
            roots.join(", ")
        );
        return fail(shared, d, Vec::new(), reason, "verify_refused").await;
    };
    let spec = &task.spec;
    let Some(content) = persist("read the file", || q.get_blob(&spec.content_hash)).await? else {
        let reason = "the file's content is no longer in Redis (its blob expired); scan again";
        return fail(shared, d, Vec::new(), reason.into(), "blob_missing").await;
    };
    let rs = match verifier
        .run_scratch(shared, &d.run, &repo_path, &command)
        .await
    {
        Ok(rs) => rs,
        Err(reason) => {
            let reason = format!("cannot prepare the verification: {reason}");
            return fail(shared, d, Vec::new(), reason, "verify_error").await;
        }
    };
    let rs = rs.lock().await;
    if !rs.baseline_passed {
        return record_done(
            shared,
            d,
            &candidates[0],
            1,
            Verified::BaselineFailed,
            0,
            "",
        )
        .await;
    }
    let mut total_ms = 0u64;
    // The first failing candidate: its index, its error for the model, its output tail, and a
    // one-line reason.
    let mut first_failure: Option<(usize, String, String, String)> = None;
    for (i, cand) in candidates.iter().enumerate() {
        let patched = match candidate_file(&spec.path, &content, cand) {
            Ok(p) => p,
            Err(why) => {
                tracing::warn!(task = %d.task, candidate = i + 1, why, "a candidate's diff does not apply to the scanned file; skipped");
                continue;
            }
        };
        if let Err(e) = rs.scratch.write_patched(&spec.path, patched.as_bytes()) {
            return fail(shared, d, Vec::new(), e.to_string(), "verify_error").await;
        }
        tracing::info!(task = %d.task, path = %spec.path, candidate = i + 1, of = candidates.len(), command, "checking a patch");
        let outcome = run_check(rs.scratch.root(), &command, &verifier.limits).await;
        // Put the scanned file back whatever happened, so the next check starts clean.
        let reset = rs.scratch.restore(&spec.path, content.as_bytes());
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                let reason = format!("cannot start the check `{command}`: {e}");
                return fail(shared, d, Vec::new(), reason, "verify_error").await;
            }
        };
        if let Err(e) = reset {
            return fail(shared, d, Vec::new(), e.to_string(), "verify_error").await;
        }
        total_ms += outcome.elapsed.as_millis() as u64;
        let tail = crate::verify::check::summary_tail(&outcome, verifier.output_bytes);
        if outcome.passed {
            tracing::info!(task = %d.task, candidate = i + 1, ms = outcome.elapsed.as_millis() as u64, "patch verified");
            return record_done(shared, d, cand, i + 1, Verified::Passed, total_ms, &tail).await;
        }
        tracing::info!(task = %d.task, candidate = i + 1, outcome = %outcome.summary(), "the patch fails the check");
        if first_failure.is_none() {
            let error = first_error(&outcome.output, REPAIR_ERROR_BYTES);
            let line = format!("{}: {}", outcome.summary(), error_line(&outcome.output));
            first_failure = Some((i, format!("{}: {}", outcome.summary(), error), tail, line));
        }
    }
    let Some((i, error, tail, line)) = first_failure else {
        let reason =
            "no candidate's diff applies to the scanned file (the task in Redis is damaged)";
        return fail(shared, d, Vec::new(), reason.into(), "bad_task").await;
    };
    let times = [("verify_ms", total_ms.to_string()), ("verify_output", tail)];
    if task.outcome.repairs < repairs {
        let repair = Repair {
            command: command.clone(),
            answer: candidates[i].answer.clone(),
            error,
        };
        let mut fields: Vec<(&str, String)> = times.to_vec();
        fields.push(("repair", serde_json::to_string(&repair).unwrap_or_default()));
        tracing::info!(task = %d.task, round = task.outcome.repairs + 1, of = repairs, "sending the failure back to the model");
        return persist("repair", || q.send_for_repair(d, &shared.id, &fields)).await;
    }
    let reason = format!(
        "the patch fails the repository's check `{command}` ({} candidate(s), {} repair \
         round(s)): {line}",
        candidates.len(),
        task.outcome.repairs,
    );
    let mut fields: Vec<(&'static str, String)> = times.to_vec();
    fields.push(("verified", Verified::Failed.as_str().to_string()));
    fail(shared, d, fields, reason, "verify_failed").await
}

/// Ends a task `done` with `cand` as its patch.
async fn record_done(
    shared: &Shared,
    d: &Delivery,
    cand: &Candidate,
    index: usize,
    verified: Verified,
    verify_ms: u64,
    output: &str,
) -> Result<Completion, QueueError> {
    let fields = [
        ("patch", cand.diff.clone()),
        ("answer", cand.answer.clone()),
        ("lines_added", cand.lines_added.to_string()),
        ("lines_removed", cand.lines_removed.to_string()),
        ("candidate", index.to_string()),
        ("verified", verified.as_str().to_string()),
        ("verify_ms", verify_ms.to_string()),
        ("verify_output", output.to_string()),
        ("reason", String::new()),
    ];
    let c = persist("done", || {
        shared
            .queue
            .complete(d, &shared.id, TaskState::Done, &fields)
    })
    .await?;
    if c == Completion::Recorded {
        shared.count(|s| s.done += 1);
    }
    Ok(c)
}

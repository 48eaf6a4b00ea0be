//! Run bookkeeping: creating a run, its counters and task list, finding earlier runs of a
//! repository, and the run-wide commands (cancel, retry, purge). The counters are kept by the
//! scripts as tasks move, so reading a run's status never scans its tasks.

use std::collections::{HashMap, HashSet};

use super::keys;
use super::model::{RunStatus, RunVerify, StateCounts, TaskRecord, TaskState, VerifyStatus};
use super::wire::{self, hgetall};
use super::{BATCH, Queue, QueueError, scripts};
use crate::time::{format_utc, now_ms};

/// Fresh suffixes drawn before giving up on creating a run; more than one is already rare.
const RUN_ID_ATTEMPTS: usize = 16;
/// Task states read per pipelined round trip by [`Queue::done_among`] (short replies).
pub const STATE_BATCH: usize = 2_000;

impl Queue {
    /// Records a new run and lists it at once (an empty run: for tests and tools; `dispatcher
    /// run` lists its run only once the tasks are in, see [`Queue::create_unlisted_run`]).
    /// Run ids sort by creation time and stay readable in a dashboard.
    pub async fn create_run(&self, repo: &str) -> Result<String, QueueError> {
        self.create_run_with(repo, None, None).await
    }

    /// [`Queue::create_unlisted_run`] then [`Queue::list_run`].
    pub async fn create_run_with(
        &self,
        repo: &str,
        skipped_done: Option<u64>,
        verify: Option<&RunVerify>,
    ) -> Result<String, QueueError> {
        let run = self
            .create_unlisted_run(repo, skipped_done, verify, None)
            .await?;
        self.list_run(&run).await?;
        Ok(run)
    }

    /// Records a new run's hash, not yet listed in `{tars}:runs`: no command sees it as the
    /// latest run until [`Queue::list_run`], so a run whose tasks could not all be stored
    /// never shows. The hash expires after the retention (enqueueing and every task's ending
    /// refresh it), so an abandoned run does not stay forever. `skipped_done` (set by
    /// `dispatcher run --only-new`) is how many TODOs of the scan were left out because an
    /// earlier run of the repository had them done; `commit` is the git commit checked out
    /// where the run scanned (what `dispatcher land` builds on).
    pub async fn create_unlisted_run(
        &self,
        repo: &str,
        skipped_done: Option<u64>,
        verify: Option<&RunVerify>,
        commit: Option<&str>,
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
            ];
            fields.extend(TaskState::ALL.map(|s| (s.as_str(), "0".to_string())));
            if let Some(n) = skipped_done {
                fields.push(("skipped_done", n.to_string()));
            }
            if let Some(c) = commit {
                fields.push(("commit", c.to_string()));
            }
            if let Some(v) = verify {
                // `repo` is the run's own field; the verify stage reads it from there.
                fields.push(("verify_command", v.command.clone()));
                fields.push(("verify_repairs", v.repairs.to_string()));
            }
            let mut inv = scripts::CREATE_RUN.key(keys::run(&run));
            inv.arg(self.retention_ms());
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

    /// Lists a run created by [`Queue::create_unlisted_run`] in `{tars}:runs`, as the latest.
    pub async fn list_run(&self, run: &str) -> Result<(), QueueError> {
        let mut c = self.conn();
        let listed: i64 = scripts::LIST_RUN
            .key(keys::run(run))
            .key(keys::runs())
            .arg(run)
            .arg(self.retention_ms())
            .invoke_async(&mut c)
            .await?;
        match listed {
            1 => {
                // The run's tasks went through this connection before: one WAIT covers them.
                self.replicate().await;
                Ok(())
            }
            _ => Err(QueueError::NoSuchRun(run.to_string())),
        }
    }

    fn retention_ms(&self) -> u64 {
        self.retention_secs.saturating_mul(1000)
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

    /// Which of `candidates` (task id -> block hash) ended `done`, on that same block, in at
    /// least one of `runs`: a done TODO whose block changed since (the id passed to an identical
    /// TODO once the first was fixed) is not done. Pipelined: one round trip for the runs' task
    /// sets, then one per [`STATE_BATCH`] task states, reading only the candidates the runs hold
    /// (10,000 tasks over several runs: about six round trips).
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
        let mut counts = StateCounts::default();
        for s in TaskState::ALL {
            counts.set(s, num(s.as_str()));
        }
        Ok(RunStatus {
            run: run.to_string(),
            repo: h.get("repo").cloned().unwrap_or_default(),
            created_at: num("created_at"),
            finished_at: h.get("finished_at").and_then(|v| v.parse().ok()),
            total: num("total"),
            counts,
            duplicates: num("duplicates"),
            stale_results: num("stale_results"),
            skipped_done: h.get("skipped_done").and_then(|v| v.parse().ok()),
            commit: h.get("commit").filter(|c| !c.is_empty()).cloned(),
            verify: h
                .get("verify_command")
                .filter(|c| !c.is_empty())
                .map(|command| VerifyStatus {
                    command: command.clone(),
                    baseline: h.get("verify_baseline").cloned(),
                    baseline_ms: h.get("verify_baseline_ms").and_then(|v| v.parse().ok()),
                    passed: num("verified_passed"),
                    failed: num("verified_failed"),
                    baseline_failed: num("verified_baseline_failed"),
                }),
            prompt_tokens: num("prompt_tokens"),
            completion_tokens: num("completion_tokens"),
            llm_ms: num("llm_ms"),
        })
    }

    /// What a run asks of the verify stage (its command and repair rounds, as the dispatcher
    /// recorded them), or None for a run that does not verify.
    pub async fn run_verify(&self, run: &str) -> Result<Option<RunVerify>, QueueError> {
        let mut c = self.conn();
        let (command, repairs, repo): (Option<String>, Option<String>, Option<String>) =
            redis::cmd("HMGET")
                .arg(keys::run(run))
                .arg("verify_command")
                .arg("verify_repairs")
                .arg("repo")
                .query_async(&mut c)
                .await?;
        Ok(command.filter(|c| !c.is_empty()).map(|command| RunVerify {
            command,
            repo: repo.unwrap_or_default(),
            // A number written by anyone on Redis's network: bounded as the configuration is.
            repairs: repairs
                .and_then(|r| r.parse::<u32>().ok())
                .unwrap_or(0)
                .min(10),
        }))
    }

    /// Records the outcome of a verifier's check of the unpatched tree, the first one only.
    pub async fn record_baseline(
        &self,
        run: &str,
        passed: bool,
        output_tail: &str,
        elapsed_ms: u64,
    ) -> Result<(), QueueError> {
        let mut c = self.conn();
        let word = if passed { "passed" } else { "failed" };
        let first: bool = redis::cmd("HSETNX")
            .arg(keys::run(run))
            .arg("verify_baseline")
            .arg(word)
            .query_async(&mut c)
            .await?;
        if first {
            let _: () = redis::cmd("HSET")
                .arg(keys::run(run))
                .arg("verify_baseline_output")
                .arg(output_tail)
                .arg("verify_baseline_ms")
                .arg(elapsed_ms)
                .query_async(&mut c)
                .await?;
        }
        Ok(())
    }

    /// The run's tasks in path and line order; a task whose hash is malformed is skipped with
    /// a warning that names its key.
    pub async fn run_tasks(&self, run: &str) -> Result<Vec<TaskRecord>, QueueError> {
        let mut c = self.conn();
        let raw: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
            .arg(keys::run_tasks(run))
            .query_async(&mut c)
            .await?;
        let ids: Vec<String> = raw
            .into_iter()
            .filter_map(|id| match String::from_utf8(id) {
                Ok(id) => Some(id),
                Err(e) => {
                    let id = String::from_utf8_lossy(e.as_bytes()).into_owned();
                    tracing::warn!(key = ?keys::run_tasks(run), ?id, "skipping a task id that is not UTF-8 (Redis data was altered)");
                    None
                }
            })
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(200) {
            let mut p = redis::pipe();
            for id in chunk {
                p.hgetall(keys::task(run, id));
            }
            // Each reply on its own: a key of another type or a field that is not UTF-8 is
            // that one task's problem, not the pipeline's.
            let hs: Vec<redis::RedisResult<HashMap<Vec<u8>, Vec<u8>>>> =
                p.ignore_errors().query_async(&mut c).await?;
            for (id, h) in chunk.iter().zip(hs) {
                // Anyone on Redis's network can write a task hash: one malformed task must not
                // hide the run's other results from `results` and `apply`.
                let record = h
                    .map_err(|e| QueueError::Malformed {
                        what: "task hash",
                        detail: e.to_string(),
                    })
                    .and_then(utf8_fields)
                    .and_then(|h| match h.is_empty() {
                        true => Ok(None),
                        false => wire::task_record(run, &h).map(Some),
                    });
                match record {
                    Ok(Some(t)) => out.push(t),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(
                        key = ?keys::task(run, id),
                        error = %e,
                        "skipping a malformed task (Redis data was altered or is from another version)"
                    ),
                }
            }
        }
        out.sort_by(|a, b| (&a.spec.path, a.spec.line).cmp(&(&b.spec.path, b.spec.line)));
        Ok(out)
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
        let n: i64 = scripts::CANCEL
            .key(keys::run(run))
            .key(keys::run_tasks(run))
            .key(keys::delayed())
            .key(keys::results_stream())
            .arg(run)
            .arg(now_ms())
            .arg(self.retention_secs)
            .invoke_async(&mut c)
            .await?;
        u64::try_from(n).map_err(|_| QueueError::NoSuchRun(run.to_string()))
    }

    /// Requeues a run's tasks that ended in `state` (failed, dead or cancelled).
    pub async fn retry_run(&self, run: &str, state: TaskState) -> Result<u64, QueueError> {
        self.retry_tasks(run, state, None).await
    }

    /// [`Queue::retry_run`] limited to the tasks `only` (when given: the dashboard retries
    /// the tasks its filter shows). An empty `only` retries nothing.
    pub async fn retry_tasks(
        &self,
        run: &str,
        state: TaskState,
        only: Option<&[String]>,
    ) -> Result<u64, QueueError> {
        if only.is_some_and(<[String]>::is_empty) {
            return Ok(0);
        }
        let mut c = self.conn();
        let mut inv = scripts::RETRY_RUN.prepare_invoke();
        inv.key(keys::run(run))
            .key(keys::run_tasks(run))
            .key(keys::tasks_stream())
            .arg(run)
            .arg(state.as_str())
            .arg(self.retention_secs);
        for id in only.unwrap_or_default() {
            inv.arg(id);
        }
        let n: i64 = inv.invoke_async(&mut c).await?;
        u64::try_from(n).map_err(|_| QueueError::NoSuchRun(run.to_string()))
    }

    /// Keeps the per-minute history ([`keys::minute`]) for `secs` from now on.
    pub async fn set_history_window(&self, secs: u64) -> Result<(), QueueError> {
        let mut c = self.conn();
        redis::cmd("SET")
            .arg(keys::history_window())
            .arg(secs.max(60))
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// Tasks finished per minute over the last `minutes` minutes (Redis's clock), oldest first:
    /// (Unix minute, final state -> count), minutes without any left out.
    pub async fn minute_history(
        &self,
        minutes: u64,
    ) -> Result<Vec<(u64, std::collections::BTreeMap<String, u64>)>, QueueError> {
        let mut c = self.conn();
        let (secs, _): (u64, u64) = redis::cmd("TIME").query_async(&mut c).await?;
        let now = secs / 60;
        let first = now.saturating_sub(minutes.saturating_sub(1));
        let mut p = redis::pipe();
        for m in first..=now {
            p.hgetall(keys::minute(m));
        }
        let all: Vec<std::collections::HashMap<String, String>> = p.query_async(&mut c).await?;
        Ok((first..=now)
            .zip(all)
            .filter(|(_, h)| !h.is_empty())
            .map(|(m, h)| {
                let counts = h
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v.parse::<u64>().ok()?)))
                    .collect();
                (m, counts)
            })
            .collect())
    }

    /// The listed runs, newest first, at most `limit`.
    pub async fn recent_runs(&self, limit: usize) -> Result<Vec<String>, QueueError> {
        let mut c = self.conn();
        // Raw bytes: a member that is not UTF-8 (a hostile writer's) names no run of ours and
        // is left out, rather than failing the whole listing.
        let v: Vec<Vec<u8>> = redis::cmd("ZRANGE")
            .arg(keys::runs())
            .arg(0)
            .arg(limit.saturating_sub(1))
            .arg("REV")
            .query_async(&mut c)
            .await?;
        Ok(v.into_iter()
            .filter_map(|r| String::from_utf8(r).ok())
            .collect())
    }

    /// Removes a run and its tasks; returns how many tasks were removed.
    pub async fn purge_run(&self, run: &str) -> Result<u64, QueueError> {
        let mut c = self.conn();
        let n: i64 = scripts::PURGE
            .key(keys::run(run))
            .key(keys::run_tasks(run))
            .key(keys::delayed())
            .key(keys::runs())
            .arg(run)
            .invoke_async(&mut c)
            .await?;
        u64::try_from(n).map_err(|_| QueueError::NoSuchRun(run.to_string()))
    }

    /// Removes a run that could not be filled (Redis full, a rejected command): its hash, its
    /// task set and tasks, and its entry in the run list. Plain `DEL`/`ZREM`, which Redis
    /// allows even at `maxmemory`, where a script is refused. A delivery already on the stream
    /// finds its task gone and is acknowledged and skipped.
    pub async fn remove_run(&self, run: &str) -> Result<(), QueueError> {
        let mut c = self.conn();
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::run_tasks(run))
            .query_async(&mut c)
            .await?;
        for chunk in ids.chunks(BATCH) {
            let mut del = redis::cmd("DEL");
            for id in chunk {
                del.arg(keys::task(run, id));
            }
            let _: i64 = del.query_async(&mut c).await?;
        }
        let mut p = redis::pipe();
        p.del(keys::run(run)).ignore();
        p.del(keys::run_tasks(run)).ignore();
        p.zrem(keys::runs(), run).ignore();
        let _: () = p.query_async(&mut c).await?;
        Ok(())
    }
}

/// A hash's fields as text, or which field is not UTF-8.
fn utf8_fields(h: HashMap<Vec<u8>, Vec<u8>>) -> Result<HashMap<String, String>, QueueError> {
    h.into_iter()
        .map(|(k, v)| {
            let name = String::from_utf8_lossy(&k).into_owned();
            match (String::from_utf8(k), String::from_utf8(v)) {
                (Ok(k), Ok(v)) => Ok((k, v)),
                _ => Err(QueueError::Malformed {
                    what: "task hash",
                    detail: format!("the field {name:?} is not UTF-8"),
                }),
            }
        })
        .collect()
}

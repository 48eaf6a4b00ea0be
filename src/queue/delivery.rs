//! Delivery: tasks in, deliveries out, and the transitions a worker makes on one delivery
//! (start, complete, retry later, hand back), each one Lua script.
//!
//! Tasks are delivered through a Stream with a consumer group, so a task a worker has fetched
//! stays in the group's pending list until it is acknowledged: a SIGKILLed worker loses
//! nothing, another worker reclaims it with `XAUTOCLAIM` once its lease has expired. A worker
//! renews the lease while it works (`XCLAIM ... JUSTID`, only while it still owns the entry), so
//! a long LLM call is not mistaken for a dead worker. Acknowledged entries are deleted, so the
//! stream holds only queued and in-flight work.
//!
//! Every transition that records a result or a retry takes the caller's consumer name and
//! refuses, in the same script, when that consumer no longer owns the delivery in the group's
//! pending list ([`Completion::NotOwner`], [`Release::NotOwner`]): a worker whose lease lapsed
//! while another took the task writes nothing over the new owner's work.

use std::collections::HashMap;
use std::time::Duration;

use crate::queue::Conn;
use redis::Value;

use super::keys;
use super::model::{Completion, Delivery, Release, Stage, Start, TaskRecord, TaskState};
use super::wire::{self, hgetall, value_string};
use super::{BATCH, Queue, QueueError, scripts};
use crate::task::TaskSpec;
use crate::time::now_ms;

fn enqueue_invocation<'a>(
    run: &str,
    spec: &TaskSpec,
    now: u64,
    ttl_secs: u64,
) -> redis::ScriptInvocation<'a> {
    let mut inv = scripts::ENQUEUE.prepare_invoke();
    inv.key(keys::task(run, &spec.id))
        .key(keys::run(run))
        .key(keys::run_tasks(run))
        .key(keys::tasks_stream())
        .arg(run)
        .arg(&spec.id)
        .arg(now)
        .arg(ttl_secs);
    for (k, v) in wire::spec_fields(spec) {
        inv.arg(k).arg(v);
    }
    inv
}

impl Queue {
    /// Creates both stages' consumer groups if they are missing (idempotent).
    pub async fn ensure_group(&self) -> Result<(), QueueError> {
        for stage in [Stage::Llm, Stage::Verify] {
            self.ensure_stage_group(stage).await?;
        }
        Ok(())
    }

    /// Creates one stage's consumer group if it is missing (idempotent): a worker that finds
    /// its group gone (`NOGROUP`: Redis lost its data) recreates its own.
    pub async fn ensure_stage_group(&self, stage: Stage) -> Result<(), QueueError> {
        let mut c = self.conn();
        let r: Result<String, redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stage.stream())
            .arg(stage.group())
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut c)
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            // At maxmemory Redis refuses XGROUP CREATE before it sees the group exists.
            Err(e) if e.code() == Some("OOM") => {
                let groups: Vec<HashMap<String, Value>> = redis::cmd("XINFO")
                    .arg("GROUPS")
                    .arg(stage.stream())
                    .query_async(&mut c)
                    .await
                    .map_err(|_| QueueError::from(e.clone()))?;
                let exists = groups
                    .iter()
                    .any(|g| g.get("name").map(value_string).as_deref() == Some(stage.group()));
                if exists { Ok(()) } else { Err(e.into()) }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Adds a task to a run; returns false when the run already has it (so enqueueing the same
    /// scan twice adds nothing).
    pub async fn enqueue(&self, run: &str, spec: &TaskSpec) -> Result<bool, QueueError> {
        let mut c = self.conn();
        let added: i64 = enqueue_invocation(run, spec, now_ms(), self.retention_secs)
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
            scripts::ENQUEUE.prepare_invoke().load_async(&mut c).await?;
            let now = now_ms();
            let invocations: Vec<_> = chunk
                .iter()
                .map(|spec| enqueue_invocation(run, spec, now, self.retention_secs))
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

    /// Reads new deliveries of `stage` for `consumer`, blocking up to `block`. Use a connection
    /// from [`Queue::blocking_connection`].
    pub async fn fetch(
        &self,
        blocking: &mut Conn,
        stage: Stage,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let v: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(stage.group())
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(stage.stream())
            .arg(">")
            .query_async(blocking)
            .await?;
        Ok(wire::read_reply(v, stage))
    }

    /// Takes over deliveries whose lease expired (their worker died or hung).
    pub async fn reclaim(
        &self,
        stage: Stage,
        consumer: &str,
        lease: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, QueueError> {
        let mut c = self.conn();
        let v: Value = redis::cmd("XAUTOCLAIM")
            .arg(stage.stream())
            .arg(stage.group())
            .arg(consumer)
            .arg(lease.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut c)
            .await?;
        // [next-cursor, entries, deleted-ids]: only the entries matter.
        let mut out = Vec::new();
        if let Value::Array(parts) = v
            && parts.len() >= 2
        {
            wire::parse_entries(&parts[1], stage, &mut out);
        }
        Ok(out)
    }

    /// Renews the lease of a delivery this consumer owns. Returns false when it no longer owns
    /// it (the lease expired and another worker took the task, or the task finished).
    pub async fn renew(&self, consumer: &str, d: &Delivery) -> Result<bool, QueueError> {
        let mut c = self.conn();
        let n: i64 = scripts::RENEW
            .key(d.stage.stream())
            .arg(d.stage.group())
            .arg(consumer)
            .arg(&d.entry)
            .invoke_async(&mut c)
            .await?;
        Ok(n == 1)
    }

    pub async fn start(
        &self,
        d: &Delivery,
        worker: &str,
        max_attempts: u32,
    ) -> Result<Start, QueueError> {
        let mut c = self.conn();
        let (state, attempts, taker, started) = stage_fields(d.stage);
        let v: Vec<Value> = scripts::START
            .key(keys::task(&d.run, &d.task))
            .key(keys::run(&d.run))
            .key(d.stage.stream())
            .key(keys::dead_stream())
            .key(keys::results_stream())
            .key(keys::run_tasks(&d.run))
            .arg(&d.entry)
            .arg(d.stage.group())
            .arg(worker)
            .arg(now_ms())
            .arg(max_attempts)
            .arg(&d.run)
            .arg(&d.task)
            .arg(self.retention_secs)
            .arg(state)
            .arg(attempts)
            .arg(taker)
            .arg(started)
            .invoke_async(&mut c)
            .await?;
        let word = v.first().map(value_string).unwrap_or_default();
        let second = v.get(1).map(value_string).unwrap_or_default();
        Ok(match word.as_str() {
            "running" => Start::Running {
                attempt: second.parse().unwrap_or(1),
            },
            "dead" => Start::Dead,
            "not_owner" => Start::NotOwner,
            _ => Start::Skip(second),
        })
    }

    pub async fn task(&self, run: &str, task: &str) -> Result<Option<TaskRecord>, QueueError> {
        let mut c = self.conn();
        let h: HashMap<String, String> = hgetall(&mut c, keys::task(run, task)).await?;
        if h.is_empty() {
            return Ok(None);
        }
        wire::task_record(run, &h).map(Some)
    }

    /// Records a final state (`done`, `failed` or `cancelled`) with its fields. `reason` and
    /// `reason_kind` among them are the ending's (both empty when absent, which a done task
    /// wants: an earlier attempt's reason no longer applies). `consumer` must still own the
    /// delivery.
    pub async fn complete(
        &self,
        d: &Delivery,
        consumer: &str,
        state: TaskState,
        fields: &[(&str, String)],
    ) -> Result<Completion, QueueError> {
        let mut c = self.conn();
        let field = |name: &str| {
            fields
                .iter()
                .rev()
                .find(|(k, _)| *k == name)
                .map_or("", |(_, v)| v.as_str())
        };
        let mut inv = scripts::COMPLETE.prepare_invoke();
        inv.key(keys::task(&d.run, &d.task))
            .key(keys::run(&d.run))
            .key(d.stage.stream())
            .key(keys::results_stream())
            .key(keys::run_tasks(&d.run))
            .arg(&d.entry)
            .arg(d.stage.group())
            .arg(consumer)
            .arg(state.as_str())
            .arg(now_ms())
            .arg(self.retention_secs)
            .arg(&d.run)
            .arg(&d.task)
            .arg(field("reason"))
            .arg(field("reason_kind"));
        for (k, v) in fields {
            if !matches!(*k, "reason" | "reason_kind") {
                inv.arg(*k).arg(v);
            }
        }
        let r: String = inv.invoke_async(&mut c).await?;
        let completion = refusal(&r).unwrap_or(Completion::Recorded);
        if completion == Completion::Recorded {
            self.replicate().await;
        }
        Ok(completion)
    }

    /// Records a retryable failure: the task waits out `backoff` in the delayed set, or is
    /// dead-lettered when this was its last attempt. The due time is Redis's clock plus
    /// `backoff`, computed in the script: this host's clock plays no part. `consumer` must
    /// still own the delivery.
    #[allow(clippy::too_many_arguments)]
    pub async fn retry_later(
        &self,
        d: &Delivery,
        consumer: &str,
        max_attempts: u32,
        backoff: Duration,
        error: &serde_json::Value,
        reason: &str,
        reason_kind: &str,
    ) -> Result<Completion, QueueError> {
        let why = Why::new(error, reason, reason_kind);
        self.retry_script(d, consumer, max_attempts, backoff, why, true)
            .await
    }

    /// Like [`Queue::retry_later`] for backpressure (the LLM server kept saying "busy" past
    /// what a worker waits in place): the attempt is given back (counted in the task's
    /// `deferrals` instead), so a busy server delays tasks but never dead-letters them.
    pub async fn defer(
        &self,
        d: &Delivery,
        consumer: &str,
        backoff: Duration,
        error: &serde_json::Value,
        reason: &str,
        reason_kind: &str,
    ) -> Result<Completion, QueueError> {
        let why = Why::new(error, reason, reason_kind);
        self.retry_script(d, consumer, u32::MAX, backoff, why, false)
            .await
    }

    async fn retry_script(
        &self,
        d: &Delivery,
        consumer: &str,
        max_attempts: u32,
        backoff: Duration,
        why: Why<'_>,
        counts: bool,
    ) -> Result<Completion, QueueError> {
        let mut c = self.conn();
        let r: String = scripts::RETRY
            .key(keys::task(&d.run, &d.task))
            .key(keys::run(&d.run))
            .key(d.stage.stream())
            .key(keys::delayed())
            .key(keys::dead_stream())
            .key(keys::results_stream())
            .key(keys::run_tasks(&d.run))
            .arg(&d.entry)
            .arg(d.stage.group())
            .arg(consumer)
            .arg(now_ms())
            .arg(u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX))
            .arg(max_attempts)
            .arg(why.error.to_string())
            .arg(why.reason)
            .arg(&d.run)
            .arg(&d.task)
            .arg(self.retention_secs)
            .arg(why.reason_kind)
            .arg(if counts { "1" } else { "0" })
            .invoke_async(&mut c)
            .await?;
        Ok(match r.as_str() {
            "dead" => Completion::Dead,
            "retrying" => Completion::Retrying,
            other => refusal(other).unwrap_or(Completion::Duplicate),
        })
    }

    /// Moves retries whose backoff has elapsed, by Redis's clock, back onto the task stream.
    pub async fn promote_due(&self, limit: usize) -> Result<u64, QueueError> {
        let mut c = self.conn();
        Ok(scripts::PROMOTE
            .key(keys::delayed())
            .key(keys::tasks_stream())
            .arg(limit)
            .invoke_async(&mut c)
            .await?)
    }

    /// Hands an in-flight task back at once (shutdown), without counting the attempt, if
    /// `consumer` still owns the delivery.
    pub async fn release(&self, d: &Delivery, consumer: &str) -> Result<Release, QueueError> {
        let mut c = self.conn();
        let (state, attempts, _, _) = stage_fields(d.stage);
        let r: String = scripts::RELEASE
            .key(keys::task(&d.run, &d.task))
            .key(keys::run(&d.run))
            .key(d.stage.stream())
            .arg(&d.entry)
            .arg(d.stage.group())
            .arg(consumer)
            .arg(&d.run)
            .arg(&d.task)
            .arg(state)
            .arg(attempts)
            .invoke_async(&mut c)
            .await?;
        Ok(match r.as_str() {
            "released" => Release::HandedBack,
            "not_owner" => Release::NotOwner,
            _ => Release::Skipped,
        })
    }

    /// Hands a gated patch to the verify stage: `fields` (the candidates, the model, the
    /// tokens...) go on the task, which becomes `verifying` and is delivered to a verifier.
    /// `consumer` must still own the LLM stage's delivery.
    pub async fn hand_to_verify(
        &self,
        d: &Delivery,
        consumer: &str,
        fields: &[(&str, String)],
    ) -> Result<Completion, QueueError> {
        self.move_stage(&scripts::HANDOFF, Stage::Verify, d, consumer, fields)
            .await
            .map(|r| r.unwrap_or(Completion::HandedToVerify))
    }

    /// Sends a task whose verification failed back to the LLM stage, with `fields` (the
    /// failure the model is to repair) on the task. `consumer` must still own the verify
    /// stage's delivery.
    pub async fn send_for_repair(
        &self,
        d: &Delivery,
        consumer: &str,
        fields: &[(&str, String)],
    ) -> Result<Completion, QueueError> {
        self.move_stage(&scripts::REPAIR, Stage::Llm, d, consumer, fields)
            .await
            .map(|r| r.unwrap_or(Completion::Repairing))
    }

    /// Runs a script that moves a task from `d`'s stage to the stage `to` (hand-over or
    /// repair): both take the same keys and arguments. None when it moved; the refusal when
    /// the caller no longer owns the delivery or the task already ended.
    async fn move_stage(
        &self,
        script: &redis::Script,
        to: Stage,
        d: &Delivery,
        consumer: &str,
        fields: &[(&str, String)],
    ) -> Result<Option<Completion>, QueueError> {
        let mut c = self.conn();
        let mut inv = script.prepare_invoke();
        inv.key(keys::task(&d.run, &d.task))
            .key(keys::run(&d.run))
            .key(d.stage.stream())
            .key(to.stream())
            .arg(&d.entry)
            .arg(d.stage.group())
            .arg(consumer)
            .arg(&d.run)
            .arg(&d.task);
        for (k, v) in fields {
            inv.arg(*k).arg(v);
        }
        let r: String = inv.invoke_async(&mut c).await?;
        Ok(refusal(&r))
    }
}

/// The refusals every result script may answer (see `take_for_result` in the prelude).
fn refusal(reply: &str) -> Option<Completion> {
    match reply {
        "duplicate" => Some(Completion::Duplicate),
        "not_owner" => Some(Completion::NotOwner),
        _ => None,
    }
}

/// What a stage's scripts write on a task it takes: the state it holds meanwhile, and the
/// fields of its attempt counter, its taker and its start time.
fn stage_fields(stage: Stage) -> (&'static str, &'static str, &'static str, &'static str) {
    match stage {
        Stage::Llm => ("running", "attempts", "worker", "started_at"),
        Stage::Verify => (
            "verifying",
            "verify_attempts",
            "verifier",
            "verify_started_at",
        ),
    }
}

/// Why an attempt is retried: the error recorded in the task's `errors`, and its reason.
#[derive(Clone, Copy)]
struct Why<'a> {
    error: &'a serde_json::Value,
    reason: &'a str,
    reason_kind: &'a str,
}

impl<'a> Why<'a> {
    fn new(error: &'a serde_json::Value, reason: &'a str, reason_kind: &'a str) -> Why<'a> {
        Why {
            error,
            reason,
            reason_kind,
        }
    }
}

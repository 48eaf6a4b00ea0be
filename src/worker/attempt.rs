//! One delivery, start to result: take the task, check it against its file, ask the LLM,
//! check the answer, and record exactly one outcome. Every failure goes through
//! [`crate::failure::decide`], which alone says whether it is retried in place, retried later
//! or final.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::endpoints::{Endpoints, Grant, try_elsewhere};
use super::lease::renew_loop;
use super::{Parts, Shared};
use crate::failure::{Decision, decide};
use crate::patch;
use crate::prompt;
use crate::queue::{Completion, Delivery, QueueError, Release, Start, TaskState};
use crate::verify::{Candidate, Repair, Verified};

/// How one delivery ended for this worker.
enum Outcome {
    Finished(Result<Completion, QueueError>),
    /// Shutdown grace ran out: hand the task back.
    Shutdown,
    /// Another worker owns the task now (our lease lapsed): drop our work, write nothing.
    LeaseLost,
}

/// Works on one delivery. `grant` is an LLM permit the fetch loop took before fetching it
/// (so that no worker sits on a task while no endpoint has room): the first call uses it.
pub(super) async fn handle(shared: Arc<Shared>, d: Delivery, grant: Option<Grant>) {
    let attempt = match shared
        .queue
        .start(&d, &shared.id, shared.cfg.queue.max_attempts)
        .await
    {
        Ok(Start::Running { attempt }) => attempt,
        Ok(Start::Skip(state)) => {
            tracing::debug!(task = %d.task, state, "skipping a delivery of a finished task");
            shared.count(|s| s.duplicates += 1);
            return;
        }
        Ok(Start::Dead) => {
            shared.count(|s| s.dead += 1);
            return;
        }
        Ok(Start::NotOwner) => {
            tracing::warn!(task = %d.task, "lease lost before the start: another worker claimed the task; leaving it to that worker");
            return;
        }
        Err(e) => {
            // The delivery stays pending; its lease expires and a worker reclaims it.
            if e.is_out_of_memory() {
                // Every start would fail alike until memory is freed: stop fetching a while
                // rather than spin through the queue (the attempt was not counted).
                tracing::error!(task = %d.task, error = %e, pause = ?super::OOM_PAUSE, "Redis is out of memory (maxmemory): cannot start the task; raise maxmemory or purge old runs. Fetching paused");
                shared.pause_for(super::OOM_PAUSE);
            } else if e.is_transient() {
                tracing::warn!(task = %d.task, error = %e, "Redis unavailable: could not start task");
            } else {
                tracing::error!(task = %d.task, error = %e, "Redis rejected the start of a task");
            }
            return;
        }
    };
    shared
        .in_flight
        .lock()
        .await
        .push((d.run.clone(), d.task.clone(), crate::time::now_ms()));
    shared.changed.notify_one();
    let renew_stop = CancellationToken::new();
    let lost = CancellationToken::new();
    let renewer = tokio::spawn(renew_loop(
        shared.clone(),
        d.clone(),
        renew_stop.clone(),
        lost.clone(),
    ));
    let work = async {
        match &shared.parts {
            Parts::Verify(v) => super::verify::process(&shared, &d, v).await,
            Parts::Llm { endpoints } => process(&shared, &d, attempt, endpoints, grant).await,
        }
    };
    let outcome = tokio::select! {
        o = work => Outcome::Finished(o),
        _ = shared.hard_stop.cancelled() => Outcome::Shutdown,
        _ = lost.cancelled() => Outcome::LeaseLost,
    };
    renew_stop.cancel();
    let _ = renewer.await;
    match outcome {
        Outcome::Shutdown => match shared.queue.release(&d, &shared.id).await {
            Ok(Release::HandedBack | Release::Skipped) => {
                shared.count(|s| s.handed_back += 1);
                tracing::info!(task = %d.task, "handed the task back to the queue");
            }
            Ok(Release::NotOwner) => {
                shared.count(|s| s.stale_results += 1);
                tracing::warn!(task = %d.task, "lease lost: another worker has the task; not handing it back");
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
        Outcome::Finished(Ok(c)) => shared.count(|s| match c {
            Completion::Recorded => {}
            Completion::Duplicate => s.duplicates += 1,
            Completion::Retrying => s.retried += 1,
            Completion::Dead => s.dead += 1,
            Completion::HandedToVerify | Completion::Repairing => {}
            Completion::NotOwner => {
                s.stale_results += 1;
                tracing::warn!(task = %d.task, "lease lost: another worker has the task; dropping this result");
            }
        }),
    }
    shared
        .in_flight
        .lock()
        .await
        .retain(|(run, task, _)| !(run == &d.run && task == &d.task));
    shared.changed.notify_one();
}

/// Retries a Redis step through a short outage (a restart, a failover) so that a finished
/// task's result, or an answer the LLM already gave, is not thrown away for a blip: every
/// read and write of an attempt goes through it. Only transient errors are retried: a script
/// error or a wrong type fails the same way every time.
pub(super) async fn persist<T, F, Fut>(what: &str, f: F) -> Result<T, QueueError>
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
    .when(QueueError::is_transient)
    .notify(|e, d| tracing::warn!(error = %e, retry_in = ?d, "{what}: Redis unavailable, retrying"))
    .await
    .inspect_err(|e| {
        if e.is_out_of_memory() {
            tracing::error!(error = %e, "{what}: Redis is out of memory (maxmemory): raise maxmemory or purge old runs");
        } else if e.is_rejection() {
            tracing::error!(error = %e, "{what}: Redis rejected the command");
        }
    })
}

/// Records a final failure with its reason and kind.
pub(super) async fn fail(
    shared: &Shared,
    d: &Delivery,
    mut fields: Vec<(&'static str, String)>,
    reason: String,
    kind: &str,
) -> Result<Completion, QueueError> {
    tracing::info!(task = %d.task, reason, "task failed");
    fields.push(("reason", reason));
    fields.push(("reason_kind", kind.to_string()));
    let c = persist("fail", || {
        shared
            .queue
            .complete(d, &shared.id, TaskState::Failed, &fields)
    })
    .await?;
    if c == Completion::Recorded {
        shared.count(|s| s.failed += 1);
    }
    Ok(c)
}

/// Ends this attempt with a retryable error, recorded in the task's `errors`: with `counts`, a
/// new attempt after `delay`, or dead-lettered when the task has none left; without, a
/// deferral (the LLM server stayed busy past what `chat` waits in place): the task comes back
/// after `delay` and the attempt is not counted.
async fn retry_later(
    shared: &Shared,
    d: &Delivery,
    attempt: u32,
    delay: Duration,
    reason: String,
    kind: &str,
    counts: bool,
) -> Result<Completion, QueueError> {
    let mut error = serde_json::json!({
        "attempt": attempt,
        "kind": kind,
        "error": reason,
        "worker": shared.id,
        // When it failed (ms, the worker's clock): the task's timeline, one entry per ask.
        "at": crate::time::now_ms(),
    });
    if !counts {
        error["deferred"] = true.into();
    }
    let q = &shared.queue;
    let max = shared.cfg.queue.max_attempts;
    let c = persist(if counts { "retry" } else { "defer" }, || async {
        match counts {
            true => {
                q.retry_later(d, &shared.id, max, delay, &error, &reason, kind)
                    .await
            }
            false => q.defer(d, &shared.id, delay, &error, &reason, kind).await,
        }
    })
    .await?;
    if counts {
        tracing::warn!(task = %d.task, attempt, error = %reason, outcome = ?c, "attempt failed");
    } else {
        tracing::warn!(task = %d.task, attempt, error = %reason, retry_in = ?delay, outcome = ?c, "the LLM server stayed busy; task deferred without spending an attempt");
    }
    Ok(c)
}

async fn cancelled_now(shared: &Shared, d: &Delivery) -> Result<Option<Completion>, QueueError> {
    if !persist("read the run", || shared.queue.run_cancelled(&d.run)).await? {
        return Ok(None);
    }
    tracing::info!(task = %d.task, run = %d.run, "run cancelled: abandoning the task");
    let fields = [
        ("reason", "the run was cancelled".to_string()),
        ("reason_kind", "cancelled".to_string()),
    ];
    persist("cancel", || {
        shared
            .queue
            .complete(d, &shared.id, TaskState::Cancelled, &fields)
    })
    .await
    .map(Some)
}

/// The delivered task's record; a task that is gone or damaged ends `failed` at once (the
/// completion is returned in `Err`), since no work can mend it.
pub(super) async fn read_task(
    shared: &Shared,
    d: &Delivery,
) -> Result<Result<crate::queue::TaskRecord, Completion>, QueueError> {
    let q = &shared.queue;
    let (reason, kind) = match persist("read the task", || q.task(&d.run, &d.task)).await {
        Ok(Some(t)) => return Ok(Ok(t)),
        Ok(None) => (
            "the task's hash is gone from Redis (purged?)".to_string(),
            "task_missing",
        ),
        Err(QueueError::Malformed { detail, .. }) => (
            format!("the task's hash in Redis is damaged: {detail}"),
            "bad_task",
        ),
        Err(e) => return Err(e),
    };
    fail(shared, d, Vec::new(), reason, kind).await.map(Err)
}

/// Asks for `k` answers at once (the first at the configured temperature, the others at the
/// candidates' higher one), each on an endpoint with room, under that endpoint's fleet-wide
/// permit (`first`, when the fetch loop took one, serves the first). A call that fails because
/// its endpoint is away or lacks the model is made again on another endpoint, if there is
/// one, without spending anything of the task.
async fn ask_candidates(
    shared: &Shared,
    endpoints: &Endpoints,
    messages: &[crate::llm::Message],
    k: usize,
    first: Option<Grant>,
) -> Result<Vec<Result<crate::llm::Answer, crate::llm::LlmError>>, QueueError> {
    let mut first = Some(first);
    let one = |i: usize, pre: Option<Grant>| async move {
        let mut pre = pre;
        let mut tried: Vec<usize> = Vec::new();
        loop {
            let grant = match pre.take() {
                Some(g) => g,
                None => endpoints.acquire(shared, &tried).await?,
            };
            let e = &endpoints.list[grant.index];
            let client = match (&e.diverse, i) {
                (Some(d), 1..) => d,
                _ => &e.llm,
            };
            let t0 = std::time::Instant::now();
            // In-place retries of the call itself happen inside `chat`, through `decide`.
            let r = client.chat(messages).await;
            endpoints
                .observe(
                    shared,
                    grant.index,
                    r.as_ref().err(),
                    t0.elapsed(),
                    grant.out,
                )
                .await;
            let index = grant.index;
            drop(grant);
            match r {
                Err(e) if try_elsewhere(&e) && tried.len() + 1 < endpoints.list.len() => {
                    tracing::warn!(endpoint = %endpoints.list[index].key, error = %e, "LLM call failed on this endpoint; asking another");
                    tried.push(index);
                }
                r => return Ok::<_, QueueError>(r),
            }
        }
    };
    let all = futures_util::future::join_all(
        (0..k).map(|i| one(i, if i == 0 { first.take().flatten() } else { None })),
    )
    .await;
    all.into_iter().collect()
}

async fn process(
    shared: &Shared,
    d: &Delivery,
    attempt: u32,
    endpoints: &Endpoints,
    grant: Option<Grant>,
) -> Result<Completion, QueueError> {
    let mut grant = grant;
    let q = &shared.queue;
    // No cancellation check here: start.lua has just made it, atomically with the start.
    let task = match read_task(shared, d).await? {
        Ok(t) => t,
        Err(ended) => return Ok(ended),
    };
    let spec = &task.spec;
    let Some(content) = persist("read the file", || q.get_blob(&spec.content_hash)).await? else {
        let reason = "the file's content is no longer in Redis (its blob expired); scan again";
        return fail(shared, d, Vec::new(), reason.into(), "blob_missing").await;
    };
    // Before any LLM call: no answer can mend a damaged task.
    let target = match spec.target(&content) {
        Ok(t) => t,
        Err(defect) => {
            let kind = defect.kind();
            return fail(shared, d, Vec::new(), defect.to_string(), kind).await;
        }
    };
    let verifying = persist("read the run", || q.run_verify(&d.run))
        .await?
        .is_some();
    // A repair round: the model sees its last answer and the check's first error.
    let repair = task
        .repair
        .as_deref()
        .and_then(|r| serde_json::from_str::<Repair>(r).ok());
    let budget = u64::from(shared.cfg.llm.num_ctx - shared.cfg.llm.max_answer_tokens);
    let base = match &repair {
        Some(r) => prompt::for_repair(&target, budget, r),
        None => prompt::build_prompt(&target, budget),
    };
    let answer_attempts = shared.cfg.llm.answer_attempts;
    let k = shared.cfg.llm.candidates.max(1) as usize;
    // A repair round adds to what the earlier rounds spent.
    let o = &task.outcome;
    let earlier = repair.is_some();
    let (mut prompt_tokens, mut completion_tokens, mut llm_ms, mut llm_calls) = if earlier {
        (
            o.prompt_tokens.unwrap_or(0),
            o.completion_tokens.unwrap_or(0),
            u128::from(o.llm_ms.unwrap_or(0)),
            o.llm_calls.unwrap_or(0),
        )
    } else {
        (0, 0, 0, 0)
    };
    let mut messages = base.clone();
    let mut ask = 0;
    loop {
        ask += 1;
        tracing::info!(task = %d.task, path = %spec.path, line = spec.line, attempt, ask, candidates = k, repair = task.outcome.repairs, "asking the LLM");
        let results = ask_candidates(shared, endpoints, &messages, k, grant.take()).await?;
        llm_calls += results.len() as u64;
        let mut answers = Vec::new();
        let mut first_error = None;
        for r in results {
            match r {
                Ok(a) => answers.push(a),
                Err(e) if first_error.is_none() => first_error = Some(e),
                Err(_) => {}
            }
        }
        if answers.is_empty() {
            // Every call failed: the first error decides, as for a single answer.
            let Some(e) = first_error else {
                return fail(shared, d, Vec::new(), "no answer".into(), "llm_error").await;
            };
            let (reason, kind) = (e.to_string(), e.kind());
            return match decide(e.failure_kind(), false, attempt) {
                Decision::RetryLater { delay } => {
                    retry_later(shared, d, attempt, delay, reason, kind, true).await
                }
                Decision::Defer { delay } => {
                    retry_later(shared, d, attempt, delay, reason, kind, false).await
                }
                Decision::RetryInPlace | Decision::Fail => {
                    fail(shared, d, Vec::new(), reason, kind).await
                }
            };
        }
        if let Some(c) = cancelled_now(shared, d).await? {
            return Ok(c);
        }
        for a in &answers {
            prompt_tokens += a.prompt_tokens.unwrap_or(0);
            completion_tokens += a.completion_tokens.unwrap_or(0);
            llm_ms += a.elapsed.as_millis();
        }
        let mut passed: Vec<Candidate> = Vec::new();
        let mut rejection = None;
        for a in &answers {
            match patch::make_patch(&target, &a.content) {
                Ok(p) => {
                    if !passed.iter().any(|c| c.diff == p.diff) {
                        passed.push(Candidate {
                            diff: p.diff,
                            answer: patch::stored_answer(&a.content),
                            lines_added: p.lines_added,
                            lines_removed: p.lines_removed,
                        });
                    }
                }
                Err(r) if rejection.is_none() => {
                    rejection = Some(r.explain_cut_off(a.finish_reason.as_deref()))
                }
                Err(_) => {}
            }
        }
        let mut fields = vec![
            ("model", answers[0].model.clone()),
            ("llm_ms", llm_ms.to_string()),
            ("llm_calls", llm_calls.to_string()),
            ("answer", patch::stored_answer(&answers[0].content)),
            ("answers", ask.to_string()),
            ("prompt_tokens", prompt_tokens.to_string()),
            ("completion_tokens", completion_tokens.to_string()),
        ];
        if let Some(first) = passed.first().cloned() {
            fields.push(("candidates_count", passed.len().to_string()));
            fields.push(("answer", first.answer.clone()));
            if verifying {
                fields.push((
                    "candidates",
                    serde_json::to_string(&passed).unwrap_or_default(),
                ));
                let c = persist("verify", || q.hand_to_verify(d, &shared.id, &fields)).await?;
                if c == Completion::HandedToVerify {
                    tracing::info!(task = %d.task, candidates = passed.len(), "patch gated; handed to the verify stage");
                }
                return Ok(c);
            }
            fields.push(("patch", first.diff));
            fields.push(("lines_added", first.lines_added.to_string()));
            fields.push(("lines_removed", first.lines_removed.to_string()));
            fields.push(("candidate", "1".to_string()));
            fields.push(("verified", Verified::Skipped.as_str().to_string()));
            fields.push(("reason", String::new()));
            let c = persist("done", || {
                q.complete(d, &shared.id, TaskState::Done, &fields)
            })
            .await?;
            if c == Completion::Recorded {
                shared.count(|s| s.done += 1);
                tracing::info!(task = %d.task, "patch recorded");
            }
            return Ok(c);
        }
        let Some(rejection) = rejection else {
            return fail(shared, d, fields, "no answer".into(), "llm_error").await;
        };
        match decide(rejection.failure_kind(), ask < answer_attempts, attempt) {
            Decision::RetryInPlace => {
                tracing::info!(task = %d.task, reason = %rejection, "answer rejected; asking again");
                messages = prompt::after_rejection(&base, &rejection);
            }
            Decision::RetryLater { delay } | Decision::Defer { delay } => {
                let kind = rejection.kind();
                return retry_later(shared, d, attempt, delay, rejection.to_string(), kind, true)
                    .await;
            }
            Decision::Fail => {
                let kind = rejection.kind();
                return fail(shared, d, fields, rejection.to_string(), kind).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn script_error() -> QueueError {
        QueueError::Redis(redis::RedisError::from((
            redis::ErrorKind::Extension,
            "WRONGTYPE",
            "Operation against a key holding the wrong kind of value".to_string(),
        )))
    }

    fn io_error() -> QueueError {
        QueueError::Redis(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        )))
    }

    #[tokio::test(start_paused = true)]
    async fn persist_retries_an_outage_but_not_a_script_error() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = persist("test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(script_error())
        })
        .await;
        assert!(r.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a script error is not retried"
        );

        let calls = AtomicU32::new(0);
        let r = persist("test", || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0..=2 => Err(io_error()),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 4, "an outage is ridden out");
    }

    #[test]
    fn an_llm_error_is_retried_later_or_failed_by_its_kind() {
        use crate::llm::LlmError;
        let busy = LlmError::Busy {
            url: "u".into(),
            status: 429,
            retry_after: None,
            body: String::new(),
        };
        assert!(matches!(
            decide(busy.failure_kind(), false, 1),
            Decision::Defer { .. }
        ));
        let missing = LlmError::ModelMissing {
            url: "u".into(),
            model: "m".into(),
            hint: String::new(),
        };
        assert_eq!(decide(missing.failure_kind(), false, 1), Decision::Fail);
        assert_eq!(
            crate::failure::FailureKind::Answer,
            patch::Rejection::Empty.failure_kind()
        );
    }
}

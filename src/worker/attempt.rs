//! One delivery, start to result: take the task, check it against its file, ask the LLM,
//! check the answer, and record exactly one outcome. Every failure goes through
//! [`crate::failure::decide`], which alone says whether it is retried in place, retried later
//! or final.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Shared;
use super::lease::{Permit, renew_loop};
use crate::failure::{Decision, decide};
use crate::patch;
use crate::prompt;
use crate::queue::{Completion, Delivery, QueueError, Start, TaskState};

/// How one delivery ended for this worker.
enum Outcome {
    Finished(Result<Completion, QueueError>),
    /// Shutdown grace ran out: hand the task back.
    Shutdown,
    /// Another worker owns the task now (our lease lapsed): drop our work, write nothing.
    LeaseLost,
}

pub(super) async fn handle(shared: Arc<Shared>, d: Delivery) {
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
        Err(e) => {
            // The delivery stays pending; its lease expires and a worker reclaims it.
            tracing::warn!(task = %d.task, error = %e, "could not start task");
            return;
        }
    };
    shared.in_flight.lock().await.push(d.task.clone());
    shared.changed.notify_one();
    let renew_stop = CancellationToken::new();
    let lost = CancellationToken::new();
    let renewer = tokio::spawn(renew_loop(
        shared.clone(),
        d.clone(),
        renew_stop.clone(),
        lost.clone(),
    ));
    let outcome = tokio::select! {
        o = process(&shared, &d, attempt) => Outcome::Finished(o),
        _ = shared.hard_stop.cancelled() => Outcome::Shutdown,
        _ = lost.cancelled() => Outcome::LeaseLost,
    };
    renew_stop.cancel();
    let _ = renewer.await;
    match outcome {
        Outcome::Shutdown => match shared.queue.release(&d).await {
            Ok(_) => {
                shared.count(|s| s.handed_back += 1);
                tracing::info!(task = %d.task, "handed the task back to the queue");
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
        }),
    }
    shared.in_flight.lock().await.retain(|t| t != &d.task);
    shared.changed.notify_one();
}

/// Retries a Redis write through a short outage (a restart, a failover) so that a finished
/// task's result is not thrown away for a blip. Only transient errors are retried: a script
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
}

/// Records a final failure with its reason and kind.
async fn fail(
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
        shared.queue.complete(d, TaskState::Failed, &fields)
    })
    .await?;
    if c == Completion::Recorded {
        shared.count(|s| s.failed += 1);
    }
    Ok(c)
}

/// Ends this attempt with a retryable error: a new attempt after `delay`, or dead-lettered
/// when the task has none left.
async fn retry_later(
    shared: &Shared,
    d: &Delivery,
    attempt: u32,
    delay: Duration,
    reason: String,
    kind: &str,
) -> Result<Completion, QueueError> {
    let error = serde_json::json!({
        "attempt": attempt,
        "kind": kind,
        "error": reason,
        "worker": shared.id,
    });
    let c = persist("retry", || {
        shared.queue.retry_later(
            d,
            shared.cfg.queue.max_attempts,
            delay,
            &error,
            &reason,
            kind,
        )
    })
    .await?;
    tracing::warn!(task = %d.task, attempt, error = %reason, outcome = ?c, "attempt failed");
    Ok(c)
}

async fn cancelled_now(shared: &Shared, d: &Delivery) -> Result<Option<Completion>, QueueError> {
    if !shared.queue.run_cancelled(&d.run).await? {
        return Ok(None);
    }
    tracing::info!(task = %d.task, run = %d.run, "run cancelled: abandoning the task");
    let fields = [
        ("reason", "the run was cancelled".to_string()),
        ("reason_kind", "cancelled".to_string()),
    ];
    persist("cancel", || {
        shared.queue.complete(d, TaskState::Cancelled, &fields)
    })
    .await
    .map(Some)
}

async fn process(shared: &Shared, d: &Delivery, attempt: u32) -> Result<Completion, QueueError> {
    let q = &shared.queue;
    // No cancellation check here: start.lua has just made it, atomically with the start.
    let task = match q.task(&d.run, &d.task).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            let reason = "the task's hash is gone from Redis (purged?)".to_string();
            return fail(shared, d, Vec::new(), reason, "task_missing").await;
        }
        Err(QueueError::Malformed { detail, .. }) => {
            let reason = format!("the task's hash in Redis is damaged: {detail}");
            return fail(shared, d, Vec::new(), reason, "bad_task").await;
        }
        Err(e) => return Err(e),
    };
    let spec = task.spec;
    let Some(content) = q.get_blob(&spec.content_hash).await? else {
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
    let budget = u64::from(shared.cfg.llm.num_ctx - shared.cfg.llm.max_answer_tokens);
    let base = prompt::build_prompt(&target, budget);
    let answer_attempts = shared.cfg.llm.answer_attempts;
    let (mut prompt_tokens, mut completion_tokens, mut llm_ms) = (0u64, 0u64, 0u128);
    let mut messages = base.clone();
    let mut ask = 0;
    loop {
        ask += 1;
        tracing::info!(task = %d.task, path = %spec.path, line = spec.line, attempt, ask, "asking the LLM");
        let answer = {
            let _permit = match shared.cfg.llm.max_in_flight {
                Some(max) => Some(Permit::acquire(shared, max).await?),
                None => None,
            };
            // In-place retries of the call itself happen inside `chat`, through `decide`.
            shared.llm.chat(&messages).await
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                let (reason, kind) = (e.to_string(), e.kind());
                return match decide(e.failure_kind(), false, attempt) {
                    Decision::RetryLater { delay } => {
                        retry_later(shared, d, attempt, delay, reason, kind).await
                    }
                    Decision::RetryInPlace | Decision::Fail => {
                        fail(shared, d, Vec::new(), reason, kind).await
                    }
                };
            }
        };
        if let Some(c) = cancelled_now(shared, d).await? {
            return Ok(c);
        }
        prompt_tokens += answer.prompt_tokens.unwrap_or(0);
        completion_tokens += answer.completion_tokens.unwrap_or(0);
        llm_ms += answer.elapsed.as_millis();
        let mut fields = vec![
            ("model", answer.model.clone()),
            ("llm_ms", llm_ms.to_string()),
            ("answer", answer.content.clone()),
            ("answers", ask.to_string()),
            ("prompt_tokens", prompt_tokens.to_string()),
            ("completion_tokens", completion_tokens.to_string()),
        ];
        let rejection = match patch::make_patch(&target, &answer.content) {
            Ok(patch) => {
                fields.push(("patch", patch.diff));
                fields.push(("lines_added", patch.lines_added.to_string()));
                fields.push(("lines_removed", patch.lines_removed.to_string()));
                fields.push(("reason", String::new()));
                let c = persist("done", || q.complete(d, TaskState::Done, &fields)).await?;
                if c == Completion::Recorded {
                    shared.count(|s| s.done += 1);
                }
                tracing::info!(task = %d.task, "patch recorded");
                return Ok(c);
            }
            Err(r) => r.explain_cut_off(answer.finish_reason.as_deref()),
        };
        match decide(rejection.failure_kind(), ask < answer_attempts, attempt) {
            Decision::RetryInPlace => {
                tracing::info!(task = %d.task, reason = %rejection, "answer rejected; asking again");
                messages = prompt::after_rejection(&base, &rejection);
            }
            Decision::RetryLater { delay } => {
                let kind = rejection.kind();
                return retry_later(shared, d, attempt, delay, rejection.to_string(), kind).await;
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
            body: String::new(),
        };
        assert!(matches!(
            decide(busy.failure_kind(), false, 1),
            Decision::RetryLater { .. }
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

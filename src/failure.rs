//! Failure decisions as types (after apalis' `AbortError` / `RetryAfterError`): every error a
//! task attempt can meet says what kind of failure it is, and [`decide`] alone turns that into
//! what happens next. Workers, the LLM client and the summaries all go through it, so "is this
//! retried?" has one answer.

use std::time::Duration;

/// What kind of failure an error is, as far as retrying goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The server or the network had trouble (unreachable, timeout, 5xx, a broken stream):
    /// the same request may pass in a moment. Retried in place, then as a new attempt after a
    /// backoff.
    Transient,
    /// The server is up and asks to be asked later (HTTP 429, 503): backpressure, not a
    /// refusal. The LLM client waits in place (its `Retry-After`, or the backoff) without
    /// counting a retry (see `LlmClient::chat`); past that, the task is deferred without
    /// spending an attempt.
    Backpressure,
    /// Sending the same request at once cannot help, but later may (a truncated prompt: the
    /// server may reload the model with the full context): a new attempt after a backoff.
    Later,
    /// The answer failed a gate: ask again, saying why, while answers are left; then fail.
    Answer,
    /// Nothing changes by retrying (model missing, request refused, a damaged task): fail.
    Permanent,
}

/// What happens after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again within this attempt (the attempt count does not move).
    RetryInPlace,
    /// End this attempt; the task is delivered again after `delay`, or dead-lettered when it
    /// has no attempts left.
    RetryLater { delay: Duration },
    /// End this attempt without counting it (backpressure): the task is delivered again after
    /// `delay` and never dead-lettered for it.
    Defer { delay: Duration },
    /// The task fails now.
    Fail,
}

/// The one place that decides. `in_place_left` says whether this attempt may still retry in
/// place (LLM retries or answers left); `attempt` (1-based) sizes the backoff.
pub fn decide(kind: FailureKind, in_place_left: bool, attempt: u32) -> Decision {
    match kind {
        FailureKind::Transient | FailureKind::Backpressure | FailureKind::Answer
            if in_place_left =>
        {
            Decision::RetryInPlace
        }
        FailureKind::Backpressure => Decision::Defer {
            delay: backoff(attempt),
        },
        FailureKind::Transient | FailureKind::Later => Decision::RetryLater {
            delay: backoff(attempt),
        },
        FailureKind::Answer | FailureKind::Permanent => Decision::Fail,
    }
}

/// Exponential backoff with jitter for a task's next attempt: between half and all of
/// 2^attempt seconds, capped at 5 minutes, so a fleet that failed together does not retry
/// together.
pub fn backoff(attempt: u32) -> Duration {
    let base = 1000u64.saturating_mul(1 << attempt.min(8)).min(300_000);
    let jitter: u64 = rand::random::<u64>() % (base / 2 + 1);
    Duration::from_millis(base / 2 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_leads_where_it_says() {
        use FailureKind::*;
        assert_eq!(decide(Transient, true, 1), Decision::RetryInPlace);
        assert_eq!(decide(Backpressure, true, 1), Decision::RetryInPlace);
        assert!(matches!(
            decide(Backpressure, false, 1),
            Decision::Defer { .. }
        ));
        assert!(matches!(
            decide(Transient, false, 1),
            Decision::RetryLater { .. }
        ));
        assert!(matches!(
            decide(Later, true, 1),
            Decision::RetryLater { .. }
        ));
        assert_eq!(decide(Answer, true, 1), Decision::RetryInPlace);
        assert_eq!(decide(Answer, false, 1), Decision::Fail);
        assert_eq!(decide(Permanent, true, 1), Decision::Fail);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..20 {
            let d = backoff(attempt).as_millis() as u64;
            let base = (1000u64 << attempt.min(8)).min(300_000);
            assert!(d >= base / 2 && d <= base, "attempt {attempt}: {d} ms");
        }
    }
}

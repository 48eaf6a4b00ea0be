//! What the run page computes from a run's tasks: the filter, paging, and the summaries
//! (reasons, yield per language and model, throughput per minute, latency percentiles).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::queue::{TaskRecord, TaskState};

/// Tasks shown per page of the run page.
pub const PAGE_SIZE: usize = 50;

/// The run page's filter, from its query string; every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Filter {
    pub state: String,
    pub kind: String,
    pub lang: String,
    /// A substring of the path.
    pub path: String,
    /// A substring of the TODO's text.
    pub q: String,
    /// 1-based.
    pub page: usize,
    /// What an action just did (after its redirect); shown, never part of the filter.
    pub notice: String,
}

impl Filter {
    pub fn matches(&self, t: &TaskRecord) -> bool {
        (self.state.is_empty() || t.state.as_str() == self.state)
            && (self.kind.is_empty()
                || t.outcome.reason_kind.as_deref() == Some(self.kind.as_str()))
            && (self.lang.is_empty() || t.spec.language == self.lang)
            && (self.path.is_empty() || t.spec.path.contains(&self.path))
            && (self.q.is_empty() || t.spec.text.to_lowercase().contains(&self.q.to_lowercase()))
    }

    /// The query string of this filter at `page` (for links; values percent-encoded).
    pub fn query(&self, page: usize) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("state", &self.state),
            ("kind", &self.kind),
            ("lang", &self.lang),
            ("path", &self.path),
            ("q", &self.q),
        ] {
            if !v.is_empty() {
                parts.push(format!("{k}={}", percent(v)));
            }
        }
        if page > 1 {
            parts.push(format!("page={page}"));
        }
        parts.join("&")
    }
}

/// Percent-encoding for a query value: everything but unreserved characters.
pub fn percent(s: &str) -> String {
    // A path segment `.` or `..` would be resolved away by the browser: encoded whole.
    if s == "." || s == ".." {
        return s.replace('.', "%2E");
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `p`-th percentile (0..=100) of `values`, nearest rank; None when empty.
pub fn percentile(values: &mut [u64], p: u32) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = (u64::from(p).saturating_mul(values.len() as u64))
        .div_ceil(100)
        .max(1) as usize;
    values.get(rank - 1).copied()
}

/// p50, p95 and p99 of `values`.
pub fn percentiles(mut values: Vec<u64>) -> [Option<u64>; 3] {
    [50, 95, 99].map(|p| percentile(&mut values, p))
}

/// Done and finished (done + failed + dead) counts, per key.
pub type Yield = BTreeMap<String, (u64, u64)>;

/// The summaries of a run page.
#[derive(Debug, Default)]
pub struct RunSummary {
    /// Failure reason kinds of failed and dead tasks, most frequent first.
    pub reasons: Vec<(String, u64)>,
    pub by_language: Yield,
    pub by_model: Yield,
    /// Tasks finished per minute (Unix minute -> count), oldest first.
    pub per_minute: BTreeMap<u64, u64>,
    /// LLM time per task (ms): p50, p95, p99.
    pub llm_ms: [Option<u64>; 3],
    /// Whole task, started to finished (ms): p50, p95, p99.
    pub task_ms: [Option<u64>; 3],
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub llm_ms_total: u64,
}

pub fn summarize(tasks: &[TaskRecord]) -> RunSummary {
    let mut s = RunSummary::default();
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    let mut llm = Vec::new();
    let mut whole = Vec::new();
    for t in tasks {
        let o = &t.outcome;
        // Numbers from Redis: saturating, so a hostile one cannot overflow.
        s.prompt_tokens = s.prompt_tokens.saturating_add(o.prompt_tokens.unwrap_or(0));
        s.completion_tokens = s
            .completion_tokens
            .saturating_add(o.completion_tokens.unwrap_or(0));
        s.llm_ms_total = s.llm_ms_total.saturating_add(o.llm_ms.unwrap_or(0));
        if !t.state.is_terminal() {
            continue;
        }
        if matches!(t.state, TaskState::Failed | TaskState::Dead) {
            let kind = o.reason_kind.clone().unwrap_or_else(|| "unknown".into());
            let e = reasons.entry(kind).or_default();
            *e = e.saturating_add(1);
        }
        if t.state == TaskState::Cancelled {
            continue;
        }
        let done = u64::from(t.state == TaskState::Done);
        for (map, key) in [
            (&mut s.by_language, t.spec.language.clone()),
            (
                &mut s.by_model,
                o.model.clone().unwrap_or_else(|| "(none)".into()),
            ),
        ] {
            let e = map.entry(key).or_default();
            e.0 = e.0.saturating_add(done);
            e.1 = e.1.saturating_add(1);
        }
        if let Some(f) = o.finished_at {
            let m = s.per_minute.entry(f / 60_000).or_default();
            *m = m.saturating_add(1);
            if let Some(st) = o.started_at {
                whole.push(f.saturating_sub(st));
            }
        }
        if let Some(ms) = o.llm_ms {
            llm.push(ms);
        }
    }
    let mut reasons: Vec<(String, u64)> = reasons.into_iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    s.reasons = reasons;
    s.llm_ms = percentiles(llm);
    s.task_ms = percentiles(whole);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentiles(v), [Some(50), Some(95), Some(99)]);
        assert_eq!(percentiles(vec![7]), [Some(7), Some(7), Some(7)]);
        assert_eq!(percentiles(Vec::new()), [None, None, None]);
        assert_eq!(percentiles(vec![3, 1, 2]), [Some(2), Some(3), Some(3)]);
    }

    #[test]
    fn a_filter_query_round_trips_through_percent_encoding() {
        let f = Filter {
            state: "failed".into(),
            q: "a b&c".into(),
            ..Filter::default()
        };
        assert_eq!(f.query(2), "state=failed&q=a%20b%26c&page=2");
        assert_eq!(Filter::default().query(1), "");
        assert_eq!(percent(".."), "%2E%2E");
        assert_eq!(percent("a.b"), "a.b");
    }
}

//! `GET /metrics`: the fleet in Prometheus's text format (version 0.0.4), read from Redis on
//! each scrape. Labels are bounded: runs (kept for the retention only; at most [`MAX_RUNS`]
//! here), states, reason kinds, endpoints, stream names. Never a task id.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::queue::{EndpointStatus, Queue, QueueError, TaskState, keys};

/// The newest runs described per run (from their run hashes).
pub const MAX_RUNS: usize = 20;
/// The newest runs whose tasks are read for reasons, retries and verification outcomes.
pub const TASK_RUNS: usize = 5;

/// A label value, escaped as the text format asks (backslash, double quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
            .collect();
        if l.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{}}} {value}", l.join(","));
        }
    }
}

/// One stream's length and its consumer group's pending entries and lag.
async fn stream_info(
    q: &Queue,
    stream: &str,
) -> Result<(u64, Vec<(String, u64, Option<u64>)>), QueueError> {
    let mut c = q.conn();
    let len: u64 = redis::cmd("XLEN").arg(stream).query_async(&mut c).await?;
    let groups: redis::Value = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(&mut c)
        .await
        .unwrap_or(redis::Value::Nil);
    let mut out = Vec::new();
    if let redis::Value::Array(gs) = groups {
        for g in gs {
            let fields: BTreeMap<String, redis::Value> = match g {
                redis::Value::Array(kv) => kv
                    .chunks(2)
                    .filter_map(|p| match p {
                        [redis::Value::BulkString(k), v] => {
                            Some((String::from_utf8_lossy(k).into_owned(), v.clone()))
                        }
                        [redis::Value::SimpleString(k), v] => Some((k.clone(), v.clone())),
                        _ => None,
                    })
                    .collect(),
                redis::Value::Map(kv) => kv
                    .into_iter()
                    .filter_map(|(k, v)| match k {
                        redis::Value::BulkString(k) => {
                            Some((String::from_utf8_lossy(&k).into_owned(), v))
                        }
                        redis::Value::SimpleString(k) => Some((k, v)),
                        _ => None,
                    })
                    .collect(),
                _ => continue,
            };
            let num = |k: &str| match fields.get(k) {
                Some(redis::Value::Int(n)) => u64::try_from(*n).ok(),
                _ => None,
            };
            let name = match fields.get("name") {
                Some(redis::Value::BulkString(n)) => String::from_utf8_lossy(n).into_owned(),
                Some(redis::Value::SimpleString(n)) => n.clone(),
                _ => continue,
            };
            out.push((name, num("pending").unwrap_or(0), num("lag")));
        }
    }
    Ok((len, out))
}

pub async fn render(q: &Queue) -> Result<String, QueueError> {
    let mut o = Out(String::new());
    // Runs and their tasks.
    let runs = q.recent_runs(MAX_RUNS).await?;
    o.family(
        "tars_run_tasks",
        "gauge",
        "Tasks of a run by state (the newest runs).",
    );
    let mut statuses = Vec::new();
    for run in &runs {
        let Ok(st) = q.run_status(run).await else {
            continue;
        };
        for s in TaskState::ALL {
            o.sample(
                "tars_run_tasks",
                &[("run", run), ("state", s.as_str())],
                st.counts.get(s) as f64,
            );
        }
        statuses.push(st);
    }
    let mut kinds: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut tokens: BTreeMap<(String, &str), u64> = BTreeMap::new();
    let mut verified: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut llm_ms: BTreeMap<String, u64> = BTreeMap::new();
    let mut retries: BTreeMap<String, u64> = BTreeMap::new();
    for st in &statuses {
        tokens.insert((st.run.clone(), "prompt"), st.prompt_tokens);
        tokens.insert((st.run.clone(), "completion"), st.completion_tokens);
        llm_ms.insert(st.run.clone(), st.llm_ms);
    }
    // What only the tasks say (reasons, retries, verification outcomes): the newest runs only,
    // since it reads every task of each on every scrape.
    for st in statuses.iter().take(TASK_RUNS) {
        let Ok(tasks) = q.run_tasks(&st.run).await else {
            continue;
        };
        for t in &tasks {
            let o = &t.outcome;
            if matches!(t.state, TaskState::Failed | TaskState::Dead) {
                // A reason kind is a short word from our code; anything else (a hostile
                // writer's) is counted as `other`, so labels stay bounded.
                let kind = o
                    .reason_kind
                    .clone()
                    .filter(|k| {
                        k.len() <= 40 && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    })
                    .unwrap_or_else(|| "other".into());
                let e = kinds
                    .entry((st.run.clone(), t.state.as_str().to_string(), kind))
                    .or_default();
                *e = e.saturating_add(1);
            }
            let r = retries.entry(st.run.clone()).or_default();
            *r = r.saturating_add(u64::from(o.attempts.saturating_sub(1)));
            let outcome = o.verified.clone().filter(|v| {
                matches!(
                    v.as_str(),
                    "passed" | "failed" | "skipped" | "baseline_failed"
                )
            });
            if let Some(v) = outcome {
                let e = verified.entry((st.run.clone(), v)).or_default();
                *e = e.saturating_add(1);
            }
        }
    }
    o.family(
        "tars_run_failures",
        "gauge",
        "Failed and dead tasks of a run by reason kind.",
    );
    for ((run, state, kind), n) in &kinds {
        o.sample(
            "tars_run_failures",
            &[("run", run), ("state", state), ("reason_kind", kind)],
            *n as f64,
        );
    }
    o.family(
        "tars_run_retries",
        "gauge",
        "Attempts after the first, summed over a run's tasks.",
    );
    for (run, n) in &retries {
        o.sample("tars_run_retries", &[("run", run)], *n as f64);
    }
    o.family(
        "tars_run_tokens",
        "gauge",
        "LLM tokens of a run, prompt and completion.",
    );
    for ((run, kind), n) in &tokens {
        o.sample(
            "tars_run_tokens",
            &[("run", run), ("kind", kind)],
            *n as f64,
        );
    }
    o.family(
        "tars_run_llm_seconds",
        "gauge",
        "Time spent in LLM calls by a run's tasks.",
    );
    for (run, ms) in &llm_ms {
        o.sample("tars_run_llm_seconds", &[("run", run)], *ms as f64 / 1000.0);
    }
    o.family(
        "tars_run_verifications",
        "gauge",
        "Tasks of a run by verification outcome.",
    );
    for ((run, v), n) in &verified {
        o.sample(
            "tars_run_verifications",
            &[("run", run), ("outcome", v)],
            *n as f64,
        );
    }
    // Whole tasks, enqueued to finished, by final state (counters kept by the scripts).
    let mut c = q.conn();
    let h: std::collections::HashMap<String, u64> = redis::cmd("HGETALL")
        .arg(keys::task_durations())
        .query_async(&mut c)
        .await
        .unwrap_or_default();
    o.family(
        "tars_task_duration_seconds",
        "histogram",
        "Whole tasks, enqueued to finished (queue wait, every attempt and verification included), by final state.",
    );
    for s in TaskState::ALL.into_iter().filter(|s| s.is_terminal()) {
        let state = s.as_str();
        let count = h.get(&format!("{state}:count")).copied().unwrap_or(0);
        if count == 0 {
            continue;
        }
        let mut cum = 0u64;
        for b in keys::TASK_BUCKETS_MS {
            cum = cum.saturating_add(h.get(&format!("{state}:{b}")).copied().unwrap_or(0));
            o.sample(
                "tars_task_duration_seconds_bucket",
                &[("state", state), ("le", &format!("{}", b as f64 / 1000.0))],
                cum as f64,
            );
        }
        cum = cum.saturating_add(h.get(&format!("{state}:inf")).copied().unwrap_or(0));
        o.sample(
            "tars_task_duration_seconds_bucket",
            &[("state", state), ("le", "+Inf")],
            cum as f64,
        );
        o.sample(
            "tars_task_duration_seconds_sum",
            &[("state", state)],
            h.get(&format!("{state}:sum_ms")).copied().unwrap_or(0) as f64 / 1000.0,
        );
        o.sample(
            "tars_task_duration_seconds_count",
            &[("state", state)],
            count as f64,
        );
    }
    // Streams and their consumer groups.
    o.family("tars_stream_length", "gauge", "Entries in a stream.");
    let mut groups = Vec::new();
    for (name, key) in [
        ("tasks", keys::tasks_stream()),
        ("verify", keys::verify_stream()),
        ("dead", keys::dead_stream()),
    ] {
        // A stream of the wrong type (a hostile writer) drops out; the scrape goes on.
        let Ok((len, gs)) = stream_info(q, &key).await else {
            continue;
        };
        o.sample("tars_stream_length", &[("stream", name)], len as f64);
        for (g, pending, lag) in gs {
            groups.push((name, g, pending, lag));
        }
    }
    o.family(
        "tars_stream_pending",
        "gauge",
        "Entries delivered to a consumer group and not yet acknowledged.",
    );
    for (s, g, pending, _) in &groups {
        o.sample(
            "tars_stream_pending",
            &[("stream", s), ("group", g)],
            *pending as f64,
        );
    }
    o.family(
        "tars_stream_lag",
        "gauge",
        "Entries not yet delivered to a consumer group (what KEDA's lagCount reads).",
    );
    for (s, g, _, lag) in &groups {
        if let Some(lag) = lag {
            o.sample(
                "tars_stream_lag",
                &[("stream", s), ("group", g)],
                *lag as f64,
            );
        }
    }
    // Workers.
    let beats = q.heartbeats().await.unwrap_or_default();
    let mut alive: BTreeMap<String, u64> = BTreeMap::new();
    for b in &beats {
        let role = b.get("role").cloned().unwrap_or_else(|| "llm".into());
        *alive.entry(role).or_default() += 1;
    }
    o.family(
        "tars_workers_alive",
        "gauge",
        "Workers with a live heartbeat, by role.",
    );
    for role in ["llm", "verify"] {
        o.sample(
            "tars_workers_alive",
            &[("role", role)],
            alive.get(role).copied().unwrap_or(0) as f64,
        );
    }
    // LLM endpoints, as the fleet records them.
    let eps: Vec<EndpointStatus> = q.llm_endpoint_status().await.unwrap_or_default();
    type Pick = fn(&EndpointStatus) -> Option<f64>;
    let per_endpoint: [(&str, &str, &str, Pick); 4] = [
        (
            "tars_llm_requests_total",
            "counter",
            "LLM requests the fleet made to an endpoint.",
            |e| Some(e.requests as f64),
        ),
        (
            "tars_llm_errors_total",
            "counter",
            "LLM requests to an endpoint that failed.",
            |e| Some(e.errors as f64),
        ),
        (
            "tars_llm_in_flight",
            "gauge",
            "Requests at an endpoint now.",
            |e| Some(e.in_flight as f64),
        ),
        (
            "tars_llm_limit",
            "gauge",
            "The concurrency limit in force at an endpoint (absent: none).",
            |e| e.limit.map(f64::from),
        ),
    ];
    for (name, kind, help, pick) in per_endpoint {
        o.family(name, kind, help);
        for e in &eps {
            if let Some(v) = pick(e) {
                o.sample(name, &[("endpoint", &e.url)], v);
            }
        }
    }
    o.family(
        "tars_llm_request_duration_seconds",
        "histogram",
        "Latency of an endpoint's successful LLM calls, since the fleet's record of the endpoint \
         began (it resets after a week without calls).",
    );
    for e in &eps {
        for (le, n) in &e.latency_buckets {
            let le = le.map_or("+Inf".to_string(), |ms| format!("{}", ms as f64 / 1000.0));
            o.sample(
                "tars_llm_request_duration_seconds_bucket",
                &[("endpoint", &e.url), ("le", &le)],
                *n as f64,
            );
        }
        o.sample(
            "tars_llm_request_duration_seconds_sum",
            &[("endpoint", &e.url)],
            e.latency_sum_ms as f64 / 1000.0,
        );
        o.sample(
            "tars_llm_request_duration_seconds_count",
            &[("endpoint", &e.url)],
            e.latency_count as f64,
        );
    }
    // The recent percentiles too, as `status` shows them (the last 200 calls).
    for (name, help, pick) in [
        (
            "tars_llm_latency_p50_seconds",
            "Median latency of an endpoint's recent LLM calls.",
            0,
        ),
        (
            "tars_llm_latency_p95_seconds",
            "95th percentile latency of an endpoint's recent LLM calls.",
            1,
        ),
    ] {
        o.family(name, "gauge", help);
        for e in &eps {
            if let Some(v) = [e.p50_ms, e.p95_ms][pick] {
                o.sample(name, &[("endpoint", &e.url)], v as f64 / 1000.0);
            }
        }
    }
    Ok(o.0)
}

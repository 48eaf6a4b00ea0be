//! Fleet-wide LLM permits: a lease-based counting semaphore per endpoint (a sorted set of
//! holders with their lease expiry, on Redis's clock), so `max_in_flight` holds across every
//! worker and a killed worker's permit lapses on its own after the lease. Waiters queue first
//! come first served, and a released permit is handed to the next one by the releasing script
//! itself and announced on that waiter's wake list, which it blocks on (`BLPOP`): no polling,
//! no slot left idle between a release and the next request.

use std::time::Duration;

use crate::queue::Conn;

use super::keys;
use super::{Queue, QueueError, scripts};

/// One endpoint's permit keys.
fn invocation<'a>(script: &'a redis::Script, endpoint: &str) -> redis::ScriptInvocation<'a> {
    let mut inv = script.key(keys::llm_permits(endpoint));
    inv.key(keys::llm_waiters(endpoint))
        .key(keys::llm_queue(endpoint))
        .key(keys::llm_endpoint(endpoint));
    inv
}

impl Queue {
    /// Takes one of `max` fleet-wide permits for an LLM endpoint (`max` 0: the limit `auto`
    /// has found), after everyone already waiting; the permit lapses after `ttl` unless
    /// renewed. With `wait`, a caller that gets none joins the queue (or keeps its place and
    /// renews its registration): a permit may then be handed to it, announced on
    /// [`Queue::permit_wait`]. Returns, when the caller holds a permit, how many are out with
    /// it (its own included).
    pub async fn permit_acquire(
        &self,
        endpoint: &str,
        holder: &str,
        max: u32,
        ttl: Duration,
        wait: bool,
    ) -> Result<Option<u32>, QueueError> {
        let mut c = self.conn();
        let n: i64 = invocation(&scripts::PERMIT_ACQUIRE, endpoint)
            .arg(holder)
            .arg(ttl.as_millis() as u64)
            .arg(max)
            .arg(if wait { "1" } else { "0" })
            .arg(keys::llm_wake_prefix(endpoint))
            .invoke_async(&mut c)
            .await?;
        Ok(u32::try_from(n).ok().filter(|&n| n > 0))
    }

    /// Blocks up to `timeout` (on a connection of its own: see
    /// [`Queue::blocking_connection`]) until a permit is handed to one of the `(endpoint,
    /// holder)` waiters; returns the index of the one that got it, and how many permits of
    /// that endpoint were out with it.
    pub async fn permit_wait(
        &self,
        blocking: &mut Conn,
        waiting: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Option<(usize, u32)>, QueueError> {
        let wake: Vec<String> = waiting
            .iter()
            .map(|(e, h)| format!("{}{h}", keys::llm_wake_prefix(e)))
            .collect();
        let popped: Option<(String, String)> = redis::cmd("BLPOP")
            .arg(&wake)
            .arg(timeout.as_secs_f64())
            .query_async(blocking)
            .await?;
        Ok(popped.and_then(|(key, out)| {
            let i = wake.iter().position(|k| *k == key)?;
            Some((i, out.parse().unwrap_or(1)))
        }))
    }

    pub async fn permit_renew(
        &self,
        endpoint: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, QueueError> {
        let mut c = self.conn();
        let n: i64 = scripts::PERMIT_RENEW
            .key(keys::llm_permits(endpoint))
            .arg(holder)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut c)
            .await?;
        Ok(n == 1)
    }

    /// Gives a permit back, or stops waiting for one (a permit handed over meanwhile is given
    /// back too), and hands what is free to the next waiters. Returns whether it held one.
    pub async fn permit_release(
        &self,
        endpoint: &str,
        holder: &str,
        max: u32,
        ttl: Duration,
    ) -> Result<bool, QueueError> {
        let mut c = self.conn();
        let n: i64 = invocation(&scripts::PERMIT_RELEASE, endpoint)
            .arg(holder)
            .arg(ttl.as_millis() as u64)
            .arg(max)
            .arg(keys::llm_wake_prefix(endpoint))
            .invoke_async(&mut c)
            .await?;
        Ok(n == 1)
    }
}

/// Whether an endpoint may get work now, as [`Queue::llm_states`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointGate {
    Serving,
    /// Cooling down after failures, or its model is missing, until its cool-down ends.
    Out,
    /// Its cool-down is over and this caller is to probe it before it gets work again.
    Probe,
}

/// What one LLM call did, for [`Queue::llm_observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Ok,
    /// HTTP 429 or 503.
    Busy,
    /// The server is away or failing: refused connection (`refused`), timeout, 5xx, broken
    /// stream.
    Down {
        refused: bool,
    },
    /// The model is not on this endpoint.
    Missing,
    /// Anything else (a refused request, a protocol error): counted only.
    Other,
}

/// Upper bounds (ms) of the LLM latency histogram's buckets, kept per endpoint by the
/// `llm_observe` script: from a fast local model's short answer to a slow model's long one.
pub const LATENCY_BUCKETS_MS: [u64; 10] = [
    100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 120_000,
];

/// One endpoint as `dispatcher status` shows it.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct EndpointStatus {
    pub url: String,
    pub model: String,
    /// Permits held now (requests the fleet has at the server).
    pub in_flight: u64,
    /// The limit in force (None: no limit).
    pub limit: Option<u32>,
    /// Where the limit comes from: `set` (configured), `found` (`auto`, by latency), `server`
    /// (`auto`, as the server reports its slots), `none`.
    pub limit_source: String,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    /// `serving`, `cooling` (after failures) or `missing_model`.
    pub state: String,
    /// Successful calls by latency: (upper bound in ms, None for +Inf; calls at or under it,
    /// cumulative), since the endpoint's state was made.
    pub latency_buckets: Vec<(Option<u64>, u64)>,
    pub latency_sum_ms: u64,
    pub latency_count: u64,
    /// Why it is out, when it is.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// How long an endpoint's state is kept after its last call.
const ENDPOINT_TTL_SECS: u64 = 7 * 24 * 3600;

impl Queue {
    /// Records one call's outcome on the endpoint's shared state (see `llm_observe.lua`);
    /// `at_start` is how many permits were out when it started (0: not known).
    pub async fn llm_observe(
        &self,
        endpoint: &str,
        outcome: CallOutcome,
        rtt: Duration,
        auto: bool,
        reason: &str,
        at_start: u32,
    ) -> Result<(), QueueError> {
        let (word, refused) = match outcome {
            CallOutcome::Ok => ("ok", false),
            CallOutcome::Busy => ("busy", false),
            CallOutcome::Down { refused } => ("down", refused),
            CallOutcome::Missing => ("missing", false),
            CallOutcome::Other => ("other", false),
        };
        let mut c = self.conn();
        let _: i64 = scripts::LLM_OBSERVE
            .key(keys::llm_endpoint(endpoint))
            .key(keys::llm_latencies(endpoint))
            .arg(word)
            .arg(rtt.as_millis() as u64)
            .arg(if auto { "1" } else { "0" })
            .arg(reason.chars().take(300).collect::<String>())
            .arg(if refused { "1" } else { "0" })
            .arg(at_start)
            .arg(ENDPOINT_TTL_SECS)
            .invoke_async(&mut c)
            .await?;
        Ok(())
    }

    /// Which of `endpoints` may get work now; an endpoint whose cool-down is over comes back
    /// as [`EndpointGate::Probe`] to exactly one caller.
    pub async fn llm_states(&self, endpoints: &[&str]) -> Result<Vec<EndpointGate>, QueueError> {
        let mut c = self.conn();
        let mut inv = scripts::LLM_STATES.prepare_invoke();
        for e in endpoints {
            inv.key(keys::llm_endpoint(e));
        }
        let words: Vec<String> = inv.invoke_async(&mut c).await?;
        Ok(words
            .iter()
            .map(|w| match w.as_str() {
                "out" => EndpointGate::Out,
                "probe" => EndpointGate::Probe,
                _ => EndpointGate::Serving,
            })
            .collect())
    }

    /// Announces an endpoint a worker serves, with its model and limit, for `status`. `limit`
    /// is the configured count, or for `auto` None; `told` is the slot count the server
    /// reported (llama.cpp's `/props`), which `auto` then uses as the limit.
    pub async fn llm_register(
        &self,
        endpoint: &str,
        model: &str,
        limit: Option<crate::config::MaxInFlight>,
        told: Option<u32>,
    ) -> Result<(), QueueError> {
        use crate::config::MaxInFlight;
        let key = keys::llm_endpoint(endpoint);
        let mut p = redis::pipe();
        p.cmd("SADD")
            .arg(keys::llm_endpoints())
            .arg(endpoint)
            .ignore();
        p.cmd("HSET").arg(&key).arg("model").arg(model).ignore();
        match (limit, told) {
            (Some(MaxInFlight::Fixed(n)), _) => {
                p.cmd("HSET")
                    .arg(&key)
                    .arg("limit")
                    .arg(n)
                    .arg("limit_source")
                    .arg("set")
                    .ignore();
            }
            (Some(MaxInFlight::Auto), Some(n)) => {
                p.cmd("HSET")
                    .arg(&key)
                    .arg("limit")
                    .arg(n)
                    .arg("limit_source")
                    .arg("server")
                    .ignore();
            }
            (Some(MaxInFlight::Auto), None) => {
                p.cmd("HSETNX").arg(&key).arg("limit").arg(1).ignore();
                p.cmd("HSET")
                    .arg(&key)
                    .arg("limit_source")
                    .arg("found")
                    .ignore();
            }
            (None, _) => {
                p.cmd("HSET")
                    .arg(&key)
                    .arg("limit_source")
                    .arg("none")
                    .ignore();
                p.cmd("HDEL").arg(&key).arg("limit").ignore();
            }
        }
        p.cmd("EXPIRE").arg(&key).arg(ENDPOINT_TTL_SECS).ignore();
        p.cmd("EXPIRE")
            .arg(keys::llm_endpoints())
            .arg(ENDPOINT_TTL_SECS)
            .ignore();
        let mut c = self.conn();
        let _: () = p.query_async(&mut c).await?;
        Ok(())
    }

    /// Every endpoint the fleet has announced, as `status` shows them.
    pub async fn llm_endpoint_status(&self) -> Result<Vec<EndpointStatus>, QueueError> {
        use std::collections::HashMap;
        let mut c = self.conn();
        let mut names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::llm_endpoints())
            .query_async(&mut c)
            .await?;
        names.sort();
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut c).await?;
        let now = secs * 1000 + micros / 1000;
        let mut out = Vec::new();
        for name in names {
            // An endpoint whose keys a hostile writer damaged (another type, bytes that are
            // not UTF-8) is left out; the others are still shown.
            let Ok(h) = redis::cmd("HGETALL")
                .arg(keys::llm_endpoint(&name))
                .query_async::<HashMap<String, String>>(&mut c)
                .await
            else {
                continue;
            };
            if h.is_empty() {
                continue;
            }
            let in_flight: u64 = redis::cmd("ZCOUNT")
                .arg(keys::llm_permits(&name))
                .arg(now)
                .arg("+inf")
                .query_async(&mut c)
                .await
                .unwrap_or(0);
            let mut lat: Vec<u64> = redis::cmd("LRANGE")
                .arg(keys::llm_latencies(&name))
                .arg(0)
                .arg(-1)
                .query_async::<Vec<String>>(&mut c)
                .await
                .unwrap_or_default()
                .iter()
                .filter_map(|v| v.parse().ok())
                .collect();
            lat.sort_unstable();
            let pct = |p: f64| -> Option<u64> {
                (!lat.is_empty()).then(|| lat[((lat.len() - 1) as f64 * p).round() as usize])
            };
            let num = |k: &str| h.get(k).and_then(|v| v.parse::<f64>().ok());
            let mut state = h.get("state").cloned().unwrap_or_else(|| "serving".into());
            if state != "serving" && num("until").is_some_and(|u| (u as u64) <= now) {
                state = format!("{state} (probing)");
            }
            out.push(EndpointStatus {
                url: name,
                model: h.get("model").cloned().unwrap_or_default(),
                in_flight,
                limit: num("limit").map(|l| l.floor().max(1.0) as u32),
                limit_source: h
                    .get("limit_source")
                    .cloned()
                    .unwrap_or_else(|| "none".into()),
                requests: num("requests").unwrap_or(0.0) as u64,
                errors: num("errors").unwrap_or(0.0) as u64,
                p50_ms: pct(0.5),
                p95_ms: pct(0.95),
                latency_buckets: {
                    let mut cum = 0u64;
                    LATENCY_BUCKETS_MS
                        .iter()
                        .map(|b| (Some(*b), format!("h_{b}")))
                        .chain([(None, "h_inf".to_string())])
                        .map(|(le, field)| {
                            cum = cum.saturating_add(num(&field).unwrap_or(0.0) as u64);
                            (le, cum)
                        })
                        .collect()
                },
                latency_sum_ms: num("h_sum_ms").unwrap_or(0.0) as u64,
                latency_count: num("h_count").unwrap_or(0.0) as u64,
                state,
                reason: h.get("reason").cloned().unwrap_or_default(),
            });
        }
        Ok(out)
    }
}

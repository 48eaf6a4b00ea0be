//! The LLM endpoints a worker sends calls to, and the fleet-wide permits that keep each one
//! busy but not overloaded.
//!
//! Each call takes a permit of an endpoint that is serving and has one free, trying them in
//! turn from a rotating start; when none has, the caller queues on all of them at once (first
//! come first served per endpoint) and blocks until a release hands it a permit
//! ([`crate::queue::permits`]). What each call did is recorded on the endpoint's shared state:
//! latency and counters for `status`, the circuit breaker (a refused connection takes the
//! endpoint out at once, timeouts and 5xx after three in a row, a missing model too; after a
//! cool-down one worker probes it with the model check before it gets work again), and the
//! limit `auto` finds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::queue::Conn;

use super::Shared;
use crate::config::{LlmConfig, MaxInFlight};
use crate::llm::{LlmClient, LlmError};
use crate::queue::{CallOutcome, EndpointGate, Queue, QueueError};

/// One LLM server.
pub(super) struct Endpoint {
    /// Its name in Redis keys and in `status`: the URL without credentials.
    pub key: String,
    pub llm: LlmClient,
    /// For candidates after the first: the same server at a higher temperature.
    pub diverse: Option<LlmClient>,
    pub limit: Option<MaxInFlight>,
}

impl Endpoint {
    pub fn new(cfg: &LlmConfig, llm: LlmClient) -> Endpoint {
        let diverse = (cfg.candidates > 1)
            .then(|| {
                let mut c = cfg.clone();
                c.temperature = c.temperature.max(0.8);
                LlmClient::new(&c).ok()
            })
            .flatten();
        Endpoint {
            key: cfg.endpoint_key(),
            llm,
            diverse,
            limit: cfg.max_in_flight,
        }
    }
}

/// The worker's endpoints.
pub(super) struct Endpoints {
    pub list: Vec<Endpoint>,
    /// Where the next call starts looking, so calls spread over endpoints with room.
    next: AtomicUsize,
    /// Dedicated connections for blocking on a wake list, reused between waits.
    blocking: tokio::sync::Mutex<Vec<Conn>>,
}

/// A call's place: the endpoint, and its permit when the endpoint is capped.
pub(super) struct Grant {
    pub index: usize,
    /// How many permits of the endpoint were out with this one when it was granted (0 for an
    /// endpoint without a limit): `auto` raises its limit only on calls made at the limit.
    pub out: u32,
    _permit: Option<Permit>,
}

impl Endpoints {
    pub fn new(list: Vec<Endpoint>) -> Endpoints {
        Endpoints {
            list,
            next: AtomicUsize::new(0),
            blocking: Default::default(),
        }
    }

    /// Whether any endpoint is capped: then a worker takes a permit before it fetches a task,
    /// so that it never sits on a task while no endpoint has room.
    pub fn capped(&self) -> bool {
        self.list.iter().any(|e| e.limit.is_some())
    }

    /// Announces the endpoints in Redis (for `status`), with the slot count a server reports
    /// where the limit is `auto`.
    pub async fn register(&self, queue: &Queue) -> Result<(), QueueError> {
        for e in &self.list {
            let told = match e.limit {
                Some(MaxInFlight::Auto) => e.llm.told_slots().await,
                _ => None,
            };
            if let Some(n) = told {
                tracing::info!(endpoint = %e.key, slots = n, "the LLM server reports its slots: max_in_flight = auto uses them");
            }
            queue
                .llm_register(&e.key, &e.llm.config().model, e.limit, told)
                .await?;
        }
        Ok(())
    }

    /// A place for one call, avoiding the endpoints in `tried` while others serve; waits
    /// (first come first served) while every serving endpoint is full, and while none serves.
    pub async fn acquire(&self, shared: &Shared, tried: &[usize]) -> Result<Grant, QueueError> {
        let ttl = Duration::from_secs(shared.cfg.queue.lease_secs);
        let holder = format!("{}:{:08x}", shared.id, rand::random::<u32>());
        let mut said_out = false;
        let mut said_full = false;
        loop {
            let serving = self.serving(shared, tried).await?;
            if serving.is_empty() {
                if !said_out {
                    tracing::warn!(
                        "every LLM endpoint is out (cooling down after failures, or its model missing); waiting for one to come back"
                    );
                    said_out = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            let start = self.next.fetch_add(1, Ordering::Relaxed);
            let order: Vec<usize> = (0..serving.len())
                .map(|k| serving[(start + k) % serving.len()])
                .collect();
            // An endpoint with room now, without queueing.
            for &i in &order {
                let e = &self.list[i];
                let Some(limit) = e.limit else {
                    return Ok(Grant {
                        index: i,
                        out: 0,
                        _permit: None,
                    });
                };
                let max = limit.script_arg();
                if let Some(out) = shared
                    .queue
                    .permit_acquire(&e.key, &holder, max, ttl, false)
                    .await?
                {
                    return Ok(Grant {
                        index: i,
                        out,
                        _permit: Some(Permit::held(shared, &e.key, &holder, max)),
                    });
                }
            }
            if !said_full {
                tracing::debug!(
                    "every LLM endpoint is at its max_in_flight: queueing for a permit"
                );
                said_full = true;
            }
            // Queue on every serving endpoint at once; the first to hand over wins.
            let mut wait = Waiting::new(shared, &holder, ttl);
            for &i in &order {
                let e = &self.list[i];
                let max = e.limit.map_or(1, MaxInFlight::script_arg);
                wait.entered.push((i, e.key.clone(), max));
                if let Some(out) = shared
                    .queue
                    .permit_acquire(&e.key, &holder, max, ttl, true)
                    .await?
                {
                    return Ok(wait.granted(self, i, out));
                }
            }
            let mut conn = match self.blocking.lock().await.pop() {
                Some(c) => c,
                None => shared.queue.blocking_connection().await?,
            };
            let keys: Vec<(&str, &str)> = wait
                .entered
                .iter()
                .map(|(_, key, _)| (key.as_str(), holder.as_str()))
                .collect();
            // Re-registering (the next turn of the loop) keeps the place in each queue alive
            // and finds permits a crashed holder left behind once their lease lapsed.
            let woke = shared
                .queue
                .permit_wait(&mut conn, &keys, (ttl / 3).min(Duration::from_secs(2)))
                .await;
            match woke {
                Ok(Some((k, out))) => {
                    self.blocking.lock().await.push(conn);
                    let i = wait.entered[k].0;
                    return Ok(wait.granted(self, i, out));
                }
                Ok(None) => self.blocking.lock().await.push(conn),
                Err(e) => return Err(e),
            }
            // Still waiting: the guard withdraws this round's registrations only if the loop
            // ends; the next round renews them.
            wait.keep();
        }
    }

    /// The endpoints that may get work now (probing, here and now, those whose cool-down
    /// ended), leaving out `tried` unless nothing else serves.
    async fn serving(&self, shared: &Shared, tried: &[usize]) -> Result<Vec<usize>, QueueError> {
        let keys: Vec<&str> = self.list.iter().map(|e| e.key.as_str()).collect();
        let gates = shared.queue.llm_states(&keys).await?;
        let mut serving = Vec::new();
        for (i, g) in gates.iter().enumerate() {
            match g {
                EndpointGate::Serving => serving.push(i),
                EndpointGate::Out => {}
                EndpointGate::Probe => {
                    if self.probe(shared, i).await? {
                        serving.push(i);
                    }
                }
            }
        }
        let fresh: Vec<usize> = serving
            .iter()
            .copied()
            .filter(|i| !tried.contains(i))
            .collect();
        Ok(if fresh.is_empty() { serving } else { fresh })
    }

    /// Checks an endpoint that was out (the model check: server up, model there) and records
    /// the result: back to serving, or out for a longer cool-down.
    async fn probe(&self, shared: &Shared, i: usize) -> Result<bool, QueueError> {
        let e = &self.list[i];
        let t0 = Instant::now();
        let r = e.llm.preflight().await;
        match &r {
            Ok(()) => {
                tracing::info!(endpoint = %e.key, "LLM endpoint answers again: back in service")
            }
            Err(err) => tracing::warn!(endpoint = %e.key, error = %err, "LLM endpoint still out"),
        }
        self.observe(shared, i, r.as_ref().err(), t0.elapsed(), 0)
            .await;
        Ok(r.is_ok())
    }

    /// Records what a call to endpoint `i` did (errors in recording are only logged: the
    /// call's result matters more than its statistics).
    pub async fn observe(
        &self,
        shared: &Shared,
        i: usize,
        error: Option<&LlmError>,
        rtt: Duration,
        at_start: u32,
    ) {
        let e = &self.list[i];
        let (outcome, reason) = match error {
            None => (CallOutcome::Ok, String::new()),
            Some(err) => (outcome_of(err), err.to_string()),
        };
        if matches!(
            outcome,
            CallOutcome::Missing | CallOutcome::Down { refused: true }
        ) {
            tracing::warn!(endpoint = %e.key, error = %reason, "LLM endpoint taken out of service; its calls go to the others");
        }
        let auto = e.limit == Some(MaxInFlight::Auto);
        if let Err(err) = shared
            .queue
            .llm_observe(&e.key, outcome, rtt, auto, &reason, at_start)
            .await
        {
            tracing::debug!(error = %err, "could not record the LLM call's outcome");
        }
    }
}

/// What an LLM error says about its endpoint.
pub(super) fn outcome_of(e: &LlmError) -> CallOutcome {
    match e {
        LlmError::Busy { .. } => CallOutcome::Busy,
        LlmError::Unreachable { .. } => CallOutcome::Down { refused: true },
        LlmError::Timeout { .. } | LlmError::Server { .. } | LlmError::Stream { .. } => {
            CallOutcome::Down { refused: false }
        }
        LlmError::ModelMissing { .. } | LlmError::NotOllama { .. } => CallOutcome::Missing,
        _ => CallOutcome::Other,
    }
}

/// Whether another endpoint may succeed where this error failed: the endpoint is away or
/// lacks the model, not the request at fault.
pub(super) fn try_elsewhere(e: &LlmError) -> bool {
    matches!(
        outcome_of(e),
        CallOutcome::Down { .. } | CallOutcome::Missing
    )
}

/// A caller queued on several endpoints: whatever it leaves (dropped while waiting, or on the
/// endpoints it did not get) is withdrawn, and a permit handed to it there meanwhile is passed
/// on to the next waiter.
struct Waiting<'a> {
    shared: &'a Shared,
    holder: &'a str,
    ttl: Duration,
    /// Where it queued: the endpoint's index and key, and its permit count.
    entered: Vec<(usize, String, u32)>,
}

impl<'a> Waiting<'a> {
    fn new(shared: &'a Shared, holder: &'a str, ttl: Duration) -> Waiting<'a> {
        Waiting {
            shared,
            holder,
            ttl,
            entered: Vec::new(),
        }
    }

    /// Endpoint `i` handed a permit over: keep it, withdraw from the others.
    fn granted(mut self, eps: &Endpoints, i: usize, out: u32) -> Grant {
        let max = self
            .entered
            .iter()
            .find(|(j, _, _)| *j == i)
            .map_or(1, |(_, _, m)| *m);
        self.entered.retain(|(j, _, _)| *j != i);
        Grant {
            index: i,
            out,
            _permit: Some(Permit::held(
                self.shared,
                &eps.list[i].key,
                self.holder,
                max,
            )),
        }
    }

    /// Keeps the registrations for the next round (they are renewed there).
    fn keep(mut self) {
        self.entered.clear();
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.entered.is_empty() {
            return;
        }
        let left: Vec<(String, u32)> = std::mem::take(&mut self.entered)
            .into_iter()
            .map(|(_, key, max)| (key, max))
            .collect();
        let q = self.shared.queue.clone();
        let (holder, ttl) = (self.holder.to_string(), self.ttl);
        tokio::spawn(async move {
            for (key, max) in left {
                if let Err(err) = q.permit_release(&key, &holder, max, ttl).await {
                    tracing::debug!(error = %err, "could not withdraw from an LLM queue; the registration lapses on its own");
                }
            }
        });
    }
}

/// A fleet-wide LLM permit, renewed while held, released (and handed to the next waiter)
/// when dropped.
pub(super) struct Permit {
    queue: Queue,
    endpoint: String,
    holder: String,
    max: u32,
    ttl: Duration,
    renewer: tokio::task::JoinHandle<()>,
}

impl Permit {
    fn held(shared: &Shared, endpoint: &str, holder: &str, max: u32) -> Permit {
        let ttl = Duration::from_secs(shared.cfg.queue.lease_secs);
        let (q, e, h) = (
            shared.queue.clone(),
            endpoint.to_string(),
            holder.to_string(),
        );
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                if let Ok(false) = q.permit_renew(&e, &h, ttl).await {
                    tracing::warn!("LLM permit lapsed while in use");
                }
            }
        });
        Permit {
            queue: shared.queue.clone(),
            endpoint: endpoint.to_string(),
            holder: holder.to_string(),
            max,
            ttl,
            renewer,
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.renewer.abort();
        let (q, e, h, max, ttl) = (
            self.queue.clone(),
            std::mem::take(&mut self.endpoint),
            std::mem::take(&mut self.holder),
            self.max,
            self.ttl,
        );
        tokio::spawn(async move {
            if let Err(err) = q.permit_release(&e, &h, max, ttl).await {
                tracing::debug!(error = %err, "permit release failed; it lapses on its own");
            }
        });
    }
}

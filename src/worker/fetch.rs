//! Getting work: new deliveries from the consumer group (a blocking read on a connection of
//! its own), deliveries whose lease expired (their worker died), and due retries moved back
//! onto the stream, with backoff while Redis is away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Shared, attempt};
use crate::queue::QueueError;

pub(super) async fn fetch_loop(
    shared: Arc<Shared>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let cfg = &shared.cfg;
    let lease = Duration::from_secs(cfg.queue.lease_secs);
    let permits = Arc::new(Semaphore::new(cfg.worker.concurrency));
    let mut blocking = None;
    let mut last_maintenance = Instant::now() - Duration::from_secs(3600);
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        if let Some(wait) = shared.paused() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {},
                _ = shutdown.cancelled() => return,
            }
            continue;
        }
        let first = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.cancelled() => return,
        };
        let mut held = vec![first];
        // With a capped LLM endpoint, room at an endpoint comes first: a worker takes an LLM
        // permit (queueing fleet-wide, first come first served), then fetches one task for it,
        // so no task waits in a worker for an endpoint while another worker could start it.
        let mut grant = None;
        if let super::Parts::Llm { endpoints } = &shared.parts
            && endpoints.capped()
        {
            let got = tokio::select! {
                g = endpoints.acquire(&shared, &[]) => g,
                _ = shutdown.cancelled() => return,
            };
            match got {
                Ok(g) => grant = Some(g),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "could not take an LLM permit (Redis), retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {},
                        _ = shutdown.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        } else {
            while let Ok(p) = permits.clone().try_acquire_owned() {
                held.push(p);
            }
        }
        let step = async {
            let mut deliveries = Vec::new();
            if last_maintenance.elapsed() >= Duration::from_secs(1) {
                last_maintenance = Instant::now();
                if shared.stage == crate::queue::Stage::Llm {
                    shared.queue.promote_due(100).await?;
                }
                deliveries = shared
                    .queue
                    .reclaim(shared.stage, &shared.id, lease, held.len())
                    .await?;
                for d in &deliveries {
                    tracing::info!(task = %d.task, run = %d.run, "reclaimed a task whose lease expired");
                }
            }
            if deliveries.is_empty() {
                if blocking.is_none() {
                    blocking = Some(shared.queue.blocking_connection().await?);
                }
                if let Some(conn) = blocking.as_mut() {
                    deliveries = shared
                        .queue
                        .fetch(
                            conn,
                            shared.stage,
                            &shared.id,
                            held.len(),
                            Duration::from_secs(2),
                        )
                        .await?;
                }
            }
            Ok::<_, QueueError>(deliveries)
        };
        let deliveries = tokio::select! {
            r = step => r,
            _ = shutdown.cancelled() => return,
        };
        match deliveries {
            Ok(ds) => {
                backoff = Duration::from_millis(200);
                for d in ds {
                    let Some(permit) = held.pop() else { break };
                    let shared = shared.clone();
                    let grant = grant.take();
                    tracker.spawn(async move {
                        attempt::handle(shared, d, grant).await;
                        drop(permit);
                    });
                }
            }
            Err(e) => {
                let e_oom = e.is_out_of_memory();
                if e.is_group_missing() {
                    // Redis restarted without persistence, or was flushed: the group (with the
                    // queue) is gone. Recreate it at once: new runs are served again.
                    tracing::error!(error = %e, stream = %shared.stage.stream(), group = shared.stage.group(), "Redis lost its data (restarted without persistence, or flushed): its queued tasks are gone; recreating the consumer group. Set `appendonly yes` to keep them across restarts");
                    match shared.queue.ensure_stage_group(shared.stage).await {
                        Ok(()) => {
                            blocking = None;
                            backoff = Duration::from_millis(200);
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, retry_in = ?backoff, "could not recreate the consumer group, retrying")
                        }
                    }
                } else if e.is_out_of_memory() {
                    backoff = backoff.max(Duration::from_secs(5));
                    tracing::error!(error = %e, retry_in = ?backoff, "Redis is out of memory (maxmemory): raise maxmemory or purge old runs; retrying");
                } else if e.is_transient() {
                    tracing::warn!(error = %e, retry_in = ?backoff, "Redis unavailable, retrying");
                } else {
                    // A missing ACL permission, say: an operator can grant it without a restart.
                    tracing::error!(error = %e, retry_in = ?backoff, "Redis rejected a read, retrying");
                }
                blocking = None;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {},
                    _ = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(if e_oom { 30 } else { 5 }));
            }
        }
    }
}

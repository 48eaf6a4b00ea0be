//! Holding on to what a task uses while the LLM works: the delivery's lease (renewed every
//! third of `queue.lease_secs`, only while this worker still owns the entry), and the
//! fleet-wide LLM permit (`llm.max_in_flight`), renewed while held and released when dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::queue::{Delivery, Queue, QueueError};

pub(super) async fn renew_loop(
    shared: Arc<Shared>,
    d: Delivery,
    stop: CancellationToken,
    lost: CancellationToken,
) {
    let every = Duration::from_millis(shared.cfg.queue.lease_secs * 1000 / 3);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        match shared.queue.renew(&shared.id, &d).await {
            Ok(true) => {}
            Ok(false) => {
                lost.cancel();
                return;
            }
            // Redis away: keep trying; if it stays away past the lease, another worker will
            // reclaim the task and the next renewal reports the loss.
            Err(e) => tracing::warn!(task = %d.task, error = %e, "lease renewal failed"),
        }
    }
}

/// A fleet-wide LLM permit, renewed while held, released when dropped.
pub(super) struct Permit {
    queue: Queue,
    endpoint: String,
    holder: String,
    renewer: tokio::task::JoinHandle<()>,
}

impl Permit {
    pub(super) async fn acquire(shared: &Shared, max: u32) -> Result<Permit, QueueError> {
        let endpoint = shared.cfg.llm.shown_url().trim_end_matches('/').to_string();
        let nonce: u32 = rand::random();
        let holder = format!("{}:{nonce:08x}", shared.id);
        let ttl = Duration::from_secs(shared.cfg.queue.lease_secs);
        let mut logged = false;
        while !shared
            .queue
            .permit_acquire(&endpoint, &holder, max, ttl)
            .await?
        {
            if !logged {
                tracing::debug!(
                    endpoint,
                    max,
                    "waiting for an LLM permit (llm.max_in_flight)"
                );
                logged = true;
            }
            let wait = 50 + rand::random::<u64>() % 100;
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        let (q, e, h) = (shared.queue.clone(), endpoint.clone(), holder.clone());
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                if let Ok(false) = q.permit_renew(&e, &h, ttl).await {
                    tracing::warn!("LLM permit lapsed while in use");
                }
            }
        });
        Ok(Permit {
            queue: shared.queue.clone(),
            endpoint,
            holder,
            renewer,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.renewer.abort();
        let (q, e, h) = (
            self.queue.clone(),
            std::mem::take(&mut self.endpoint),
            std::mem::take(&mut self.holder),
        );
        tokio::spawn(async move {
            if let Err(err) = q.permit_release(&e, &h).await {
                tracing::debug!(error = %err, "permit release failed; it lapses on its own");
            }
        });
    }
}

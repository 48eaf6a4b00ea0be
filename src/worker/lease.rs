//! Holding on to a task while the LLM works: the delivery's lease, renewed every third of
//! `queue.lease_secs`, only while this worker still owns the entry. (The LLM permits are in
//! [`super::endpoints`].)

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::queue::Delivery;

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

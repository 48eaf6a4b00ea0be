//! Being seen alive: a heartbeat hash in Redis every few seconds (what `status` and
//! `fleet status` show), and a file the container's HEALTHCHECK reads (`worker --health`) so
//! that probing costs nothing and needs no network.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::time::{now_ms, now_secs};

pub(super) async fn heartbeat_loop(shared: Arc<Shared>, shutdown: CancellationToken) {
    // Milliseconds, as every other timestamp in Redis.
    let started = now_ms();
    let host = super::hostname();
    loop {
        // Task ids, and in the same order their runs and start times (ms), so a dashboard can
        // link each and say how long it has been at work.
        let (current, current_runs, current_since) = {
            let f = shared.in_flight.lock().await;
            let col = |pick: &dyn Fn(&(String, String, u64)) -> String| {
                f.iter().map(pick).collect::<Vec<_>>().join(",")
            };
            (
                col(&|t| t.1.clone()),
                col(&|t| t.0.clone()),
                col(&|t| t.2.to_string()),
            )
        };
        let s = shared.stats();
        let fields = [
            ("id", shared.id.clone()),
            ("host", host.clone()),
            ("pid", std::process::id().to_string()),
            ("started_at", started.to_string()),
            ("concurrency", shared.cfg.worker.concurrency.to_string()),
            ("role", shared.stage.as_str().to_string()),
            ("current", current),
            ("current_runs", current_runs),
            ("current_since", current_since),
            ("done", s.done.to_string()),
            ("failed", s.failed.to_string()),
            (
                "state",
                if shutdown.is_cancelled() {
                    "stopping"
                } else {
                    "running"
                }
                .into(),
            ),
        ];
        match shared
            .queue
            .heartbeat(&shared.id, &fields, Duration::from_millis(HEARTBEAT_TTL_MS))
            .await
        {
            Ok(()) => touch_health_file(),
            Err(e) => tracing::debug!(error = %e, "heartbeat failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shared.changed.notified() => {}
        }
    }
}

/// Where the container health check looks (`worker --health`); unset outside containers.
pub const HEALTH_FILE_ENV: &str = "TARS_HEALTH_FILE";

/// How long a heartbeat outlives its last write: a worker that stops beating disappears from
/// Redis this long after (the dashboard reads a beat's age from the key's time to live).
pub const HEARTBEAT_TTL_MS: u64 = 15_000;
/// A worker is healthy while its heartbeat reached Redis within this long.
pub const HEALTHY_WITHIN: Duration = Duration::from_secs(30);

fn touch_health_file() {
    if let Ok(path) = std::env::var(HEALTH_FILE_ENV)
        && let Err(e) = std::fs::write(&path, now_secs().to_string())
    {
        tracing::debug!(path, error = %e, "cannot write the health file");
    }
}

/// The container health check: healthy when the heartbeat loop reached Redis recently. Checks a
/// file rather than Redis so that probing costs nothing and needs no network.
pub fn check_health() -> Result<(), String> {
    let path = std::env::var(HEALTH_FILE_ENV)
        .map_err(|_| format!("{HEALTH_FILE_ENV} is not set: no health file to check"))?;
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("no heartbeat yet ({path}: {e})"))?;
    let then: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{path} is malformed"))?;
    let age = now_secs().saturating_sub(then);
    if age > HEALTHY_WITHIN.as_secs() {
        return Err(format!("last heartbeat reached Redis {age} s ago"));
    }
    Ok(())
}

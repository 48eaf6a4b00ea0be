//! Worker heartbeats: a hash per worker that expires on its own when the worker dies, read
//! with `SCAN` (never `KEYS`, which blocks a busy server).

use std::collections::HashMap;
use std::time::Duration;

use super::keys;
use super::{Queue, QueueError};

impl Queue {
    /// Every live worker's heartbeat (SCAN, never KEYS: safe on a busy server).
    pub async fn heartbeats(&self) -> Result<Vec<HashMap<String, String>>, QueueError> {
        let mut c = self.conn();
        let mut cursor: u64 = 0;
        let mut keys_found: Vec<String> = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(keys::worker("*"))
                .arg("COUNT")
                .arg(500)
                .query_async(&mut c)
                .await?;
            keys_found.extend(batch);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        if keys_found.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = redis::pipe();
        for k in &keys_found {
            p.hgetall(k);
        }
        let all: Vec<HashMap<String, String>> = p.query_async(&mut c).await?;
        // A heartbeat can expire between SCAN and HGETALL.
        let mut out: Vec<_> = all.into_iter().filter(|h| !h.is_empty()).collect();
        out.sort_by(|a, b| a.get("id").cmp(&b.get("id")));
        Ok(out)
    }

    /// Writes a worker's heartbeat; it expires on its own when the worker dies.
    pub async fn heartbeat(
        &self,
        worker: &str,
        fields: &[(&str, String)],
        ttl: Duration,
    ) -> Result<(), QueueError> {
        let mut c = self.conn();
        let key = keys::worker(worker);
        let _: () = redis::pipe()
            .hset_multiple(&key, fields)
            .expire(&key, ttl.as_secs().max(1) as i64)
            .query_async(&mut c)
            .await?;
        Ok(())
    }
}

impl Queue {
    /// Deletes a worker's heartbeat at a clean stop, so it leaves `status` at once.
    pub async fn forget_worker(&self, worker: &str) -> Result<(), QueueError> {
        let mut c = self.conn();
        let _: i64 = redis::cmd("DEL")
            .arg(keys::worker(worker))
            .query_async(&mut c)
            .await?;
        Ok(())
    }
}

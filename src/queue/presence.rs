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
        // Raw bytes throughout: anyone on Redis's network can write a key or field that is not
        // UTF-8, and one such heartbeat must not hide the live workers from `status`.
        let mut keys_found: Vec<Vec<u8>> = Vec::new();
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
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
        let all: Vec<redis::RedisResult<HashMap<Vec<u8>, Vec<u8>>>> =
            p.ignore_errors().query_async(&mut c).await?;
        // A heartbeat can expire between SCAN and HGETALL; one of another type is skipped.
        let mut out: Vec<HashMap<String, String>> = all
            .into_iter()
            .flatten()
            .filter(|h| !h.is_empty())
            .map(|h| {
                h.into_iter()
                    .map(|(k, v)| {
                        (
                            String::from_utf8_lossy(&k).into_owned(),
                            String::from_utf8_lossy(&v).into_owned(),
                        )
                    })
                    .collect()
            })
            .collect();
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

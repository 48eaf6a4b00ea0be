//! Fleet-wide LLM permits: a lease-based counting semaphore per endpoint in a sorted set, so
//! `llm.max_in_flight` holds across every worker, and a killed worker's permit lapses on its
//! own after the lease.

use std::time::Duration;

use super::keys;
use super::{Queue, QueueError, scripts};

impl Queue {
    /// Tries to take one of `max` fleet-wide permits for an LLM endpoint; the permit lapses
    /// after `ttl` unless renewed.
    pub async fn permit_acquire(
        &self,
        endpoint: &str,
        holder: &str,
        max: u32,
        ttl: Duration,
    ) -> Result<bool, QueueError> {
        let mut c = self.conn();
        let n: i64 = scripts::PERMIT_ACQUIRE
            .key(keys::llm_permits(endpoint))
            .arg(holder)
            .arg(ttl.as_millis() as u64)
            .arg(max)
            .invoke_async(&mut c)
            .await?;
        Ok(n == 1)
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

    pub async fn permit_release(&self, endpoint: &str, holder: &str) -> Result<(), QueueError> {
        let mut c = self.conn();
        let _: i64 = redis::cmd("ZREM")
            .arg(keys::llm_permits(endpoint))
            .arg(holder)
            .query_async(&mut c)
            .await?;
        Ok(())
    }
}

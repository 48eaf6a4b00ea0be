//! The Redis schema and the atomic state transitions of a task.
//!
//! Design choices, each answering a failure seen in older job queues:
//! - Delivery through a Stream and a consumer group ([`delivery`]): a fetched task stays
//!   pending until its result is recorded, so a killed worker loses nothing.
//! - Every transition is one Lua script ([`scripts`]): the task's hash, the run's counters, the
//!   stream and the result log change together or not at all, and a second completion of the
//!   same task is recognised and dropped.
//! - Values are plain hash fields and JSON ([`wire`]), keys are documented ([`keys`], README),
//!   and all carry the `{tars}` hash tag so a Redis Cluster keeps them in one slot.
//!
//! The rest: [`runs`] (a run's bookkeeping), [`blobs`] (file contents by hash), [`permits`]
//! (fleet-wide LLM concurrency), [`presence`] (worker heartbeats), [`model`] (the types).

pub mod blobs;
pub mod delivery;
pub mod keys;
pub mod model;
pub mod permits;
pub mod presence;
pub mod runs;
pub mod scripts;
pub mod wire;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, IntoConnectionInfo, RetryMethod};

pub use model::{
    Completion, Delivery, RunStatus, Start, StateCounts, TaskOutcome, TaskRecord, TaskState,
};

use crate::config::{Config, RedisConfig};
use crate::secret::Secret;

/// Commands per pipelined round trip when writing many tasks or blobs.
const BATCH: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(
        "cannot reach Redis at {url}: {source}. Start one (e.g. `redis-server --port 6379`) or set redis.url / TARS_REDIS__URL"
    )]
    Unreachable {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("Redis command failed: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis holds a malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error("run {0} does not exist (see `dispatcher status` for the latest run)")]
    NoSuchRun(String),
    #[error("no run exists yet: start one with `dispatcher run PATH`")]
    NoRuns,
    #[error(
        "could not find a free run id after {attempts} tries: is something else creating runs \
         in a loop? Try again"
    )]
    RunIdTaken { attempts: usize },
}

impl QueueError {
    /// Whether the same command may succeed if sent again after a pause: the connection
    /// dropped, the server is restarting or loading, a failover is under way. A script error,
    /// a wrong type, a missing permission or a malformed value will fail the same way again.
    pub fn is_transient(&self) -> bool {
        match self {
            QueueError::Unreachable { .. } => true,
            QueueError::Redis(e) => matches!(
                e.retry_method(),
                RetryMethod::Reconnect
                    | RetryMethod::RetryImmediately
                    | RetryMethod::WaitAndRetry
                    | RetryMethod::ReconnectFromInitialConnections
                    | RetryMethod::RefreshSlotsAndRetry
            ),
            QueueError::Malformed { .. }
            | QueueError::NoSuchRun(_)
            | QueueError::NoRuns
            | QueueError::RunIdTaken { .. } => false,
        }
    }
}

/// The error of a failed connection to `url` (shown without its password).
fn connect_error(url: &str, source: redis::RedisError) -> QueueError {
    QueueError::Unreachable {
        url: url.to_string(),
        source,
    }
}

/// A handle on the queue. Cheap to clone: the connection manager multiplexes and reconnects.
#[derive(Clone)]
pub struct Queue {
    /// The URL as shown in errors: without its password.
    url: String,
    client: redis::Client,
    conn: ConnectionManager,
    retention_secs: u64,
}

impl Queue {
    /// Connects to the configured Redis (`redis.url`, `redis.password_file`, the TLS files,
    /// `queue.retention_days`).
    pub async fn open(cfg: &Config) -> Result<Queue, QueueError> {
        Queue::connect_to(&cfg.redis, cfg.queue.retention_days).await
    }

    /// Connects and checks the server answers, so a wrong URL fails here with a message that
    /// names it rather than later inside a loop.
    pub async fn connect(url: &str, retention_days: u64) -> Result<Queue, QueueError> {
        Queue::connect_with(url, None, retention_days).await
    }

    /// [`Queue::connect`] with a password from elsewhere than the URL (a secret file), which
    /// wins over the URL's. Errors name the URL without its password.
    pub async fn connect_with(
        url: &str,
        password: Option<&Secret>,
        retention_days: u64,
    ) -> Result<Queue, QueueError> {
        let redis = RedisConfig {
            url: url.to_string(),
            password: password.cloned(),
            ..RedisConfig::default()
        };
        Queue::connect_to(&redis, retention_days).await
    }

    /// [`Queue::connect_with`] with everything of `[redis]`: for a `rediss://` URL, the CA
    /// (`redis.ca_file`, else the system's roots) and the client certificate read at load.
    pub async fn connect_to(redis: &RedisConfig, retention_days: u64) -> Result<Queue, QueueError> {
        // `rediss://`: redis-rs builds its rustls config from the process-wide provider.
        crate::tls::install_crypto_provider();
        let shown = crate::secret::redact_url(&redis.url);
        let fail = |source| connect_error(&shown, source);
        let mut info = redis.url.as_str().into_connection_info().map_err(fail)?;
        if let Some(pw) = &redis.password {
            let settings = info.redis_settings().clone().set_password(pw.expose());
            info = info.set_redis_settings(settings);
        }
        let client = match &redis.tls {
            Some(certs) => redis::Client::build_with_tls(info, certs.clone()),
            None => redis::Client::open(info),
        }
        .map_err(fail)?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(2));
        let mut conn = client
            .get_connection_manager_with_config(cfg)
            .await
            .map_err(fail)?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(fail)?;
        Ok(Queue {
            url: shown,
            client,
            conn,
            retention_secs: retention_days.saturating_mul(86_400),
        })
    }
    /// A dedicated connection for blocking reads: its response timeout must outlast the BLOCK,
    /// and a blocked command would stall every other command multiplexed with it.
    pub async fn blocking_connection(&self) -> Result<MultiplexedConnection, QueueError> {
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(10)));
        self.client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(|source| connect_error(&self.url, source))
    }
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connection_trouble_is_transient() {
        let io = redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ));
        assert!(QueueError::Redis(io).is_transient());
        let script = redis::RedisError::from((
            redis::ErrorKind::Extension,
            "WRONGTYPE",
            "Operation against a key holding the wrong kind of value".to_string(),
        ));
        assert!(!QueueError::Redis(script).is_transient());
        assert!(
            !QueueError::Malformed {
                what: "task hash",
                detail: "x".into()
            }
            .is_transient()
        );
    }
}

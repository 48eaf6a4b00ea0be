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
pub mod conn;
pub mod delivery;
pub mod keys;
pub mod model;
pub mod permits;
pub mod presence;
pub mod runs;
pub mod scripts;
pub mod wire;

use std::time::Duration;

use redis::aio::ConnectionManagerConfig;
use redis::{AsyncConnectionConfig, IntoConnectionInfo, RetryMethod};

pub use model::{
    Completion, Delivery, Release, RunStatus, RunVerify, Stage, Start, StateCounts, TaskOutcome,
    TaskRecord, TaskState, VerifyStatus,
};

pub use permits::{CallOutcome, EndpointGate, EndpointStatus};

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
    /// The server said no to the user and password (WRONGPASS, NOAUTH): configuration, not a
    /// server to start.
    #[error(
        "Redis at {url} refused the credentials ({detail}): check redis.url's user and password \
         or redis.password_file (TARS_REDIS__URL / TARS_REDIS__PASSWORD_FILE)"
    )]
    AuthFailed { url: String, detail: String },
    /// The ACL user may not run a command (or touch a key) tars needs.
    #[error(
        "the Redis ACL user lacks a permission: Redis refused {} (NOPERM {detail}). Grant the \
         user the commands and keys listed under \"Redis with TLS and ACLs\" in the README",
        command.as_deref().map_or("a key or channel".to_string(), |c| format!("the command `{c}`"))
    )]
    NoPermission {
        command: Option<String>,
        detail: String,
    },
    /// `rediss://`: the server's certificate does not verify against the trusted roots.
    #[error(
        "Redis at {url} presented a TLS certificate that is not trusted ({reason}): set \
         redis.ca_file (TARS_REDIS__CA_FILE) to the PEM file of the CA that signed it, and use \
         the host name the certificate was issued for"
    )]
    TlsUntrusted { url: String, reason: String },
    /// A `redis+cluster://` URL that does not say which nodes to reach, or a plain URL that
    /// points at a cluster node.
    #[error(
        "redis.url {url} cannot be used: {problem}. For a Redis Cluster write \
         redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...] (rediss+cluster:// for TLS)"
    )]
    BadUrl { url: String, problem: String },
    #[error("Redis command failed: {0}")]
    Redis(#[source] redis::RedisError),
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
    /// The server lacks what tars relies on (`XAUTOCLAIM`, `GETDEL`, Lua `redis.setresp`...).
    #[error(
        "Redis at {url} is version {version}, and tars needs Redis 6.2 or newer (XAUTOCLAIM, \
         GETDEL): upgrade the server"
    )]
    ServerTooOld { url: String, version: String },
    /// `maxmemory` reached with `noeviction`: every write is refused until memory is freed.
    #[error(
        "Redis is out of memory (maxmemory reached, and its maxmemory-policy evicts nothing): \
         {detail}. Raise maxmemory (`CONFIG SET maxmemory ...`), purge old runs (`dispatcher \
         purge RUN`) or free memory, then try again"
    )]
    OutOfMemory { detail: String },
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
                    // A cluster's MOVED or ASK that redis-rs could not follow within its own
                    // retries: mid-failover, the nodes still name the dead master as the
                    // slot's owner until the replica's promotion reaches them.
                    | RetryMethod::MovedRedirect
                    | RetryMethod::AskRedirect
            ),
            QueueError::AuthFailed { .. }
            | QueueError::ServerTooOld { .. }
            | QueueError::OutOfMemory { .. }
            | QueueError::NoPermission { .. }
            | QueueError::TlsUntrusted { .. }
            | QueueError::BadUrl { .. }
            | QueueError::Malformed { .. }
            | QueueError::NoSuchRun(_)
            | QueueError::NoRuns
            | QueueError::RunIdTaken { .. } => false,
        }
    }

    /// Whether Redis answered `NOGROUP`: a consumer group (and so, usually, everything) is
    /// gone, i.e. Redis restarted without persistence or was flushed.
    pub fn is_group_missing(&self) -> bool {
        match self {
            // A read blocked on the stream when it was deleted: "UNBLOCKED the stream key no
            // longer exists" (Redis 7), then NOGROUP on the next read.
            QueueError::Redis(e) => matches!(e.code(), Some("NOGROUP" | "UNBLOCKED")),
            _ => false,
        }
    }

    /// Whether Redis refused a write for lack of memory (`OOM command not allowed when used
    /// memory > 'maxmemory'`), also from inside a script.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, QueueError::OutOfMemory { .. })
    }

    /// Whether Redis itself answered with an error (a script error, WRONGTYPE, OOM, NOGROUP...)
    /// rather than being unreachable: logs say "Redis rejected", not "Redis unavailable".
    pub fn is_rejection(&self) -> bool {
        match self {
            QueueError::Redis(e) => e.code().is_some(),
            QueueError::OutOfMemory { .. } | QueueError::NoPermission { .. } => true,
            _ => false,
        }
    }
}

/// The `field:value` of an `INFO` reply.
pub(crate) fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|l| {
        l.trim_end()
            .strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
    })
}

/// Whether `version` (`redis_version`, e.g. `7.0.15`) is at least 6.2.
pub(crate) fn version_supported(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= (6, 2)
}

/// A command's error: a missing ACL permission gets its own variant, so that it says which
/// command and maps to the configuration exit code; anything else stays as redis-rs put it.
impl From<redis::RedisError> for QueueError {
    fn from(e: redis::RedisError) -> QueueError {
        // Also inside a pipeline's failures or a script's error, where the code is not first.
        if e.code() == Some("OOM") || e.to_string().contains("\"OOM\": command not allowed") {
            return QueueError::OutOfMemory {
                detail: format!(
                    "it refused a write (OOM {})",
                    e.detail()
                        .unwrap_or("command not allowed when used memory > 'maxmemory'")
                ),
            };
        }
        no_permission(&e).unwrap_or(QueueError::Redis(e))
    }
}

/// [`QueueError::NoPermission`] for a NOPERM reply, also one that a Lua script passed on.
fn no_permission(e: &redis::RedisError) -> Option<QueueError> {
    let is_noperm = e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm)
        || e.code() == Some("NOPERM");
    if !is_noperm {
        return None;
    }
    let detail = e.detail().unwrap_or_default().to_string();
    // "User tars has no permissions to run the 'xinfo|groups' command"
    let command = detail
        .split_once("to run the '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(c, _)| c.to_string());
    Some(QueueError::NoPermission { command, detail })
}

/// What went wrong while connecting to `url` (shown without its password): credentials
/// refused, a permission missing, an untrusted certificate, or else the server unreachable.
fn connect_error(url: &str, source: redis::RedisError) -> QueueError {
    if let Some(e) = no_permission(&source) {
        return e;
    }
    if source.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(source.code(), Some("WRONGPASS" | "NOAUTH"))
    {
        // redis-rs turns AUTH's WRONGPASS reply into its own AuthenticationFailed, without the
        // server's text.
        let detail = match (source.code(), source.detail()) {
            (Some(code), Some(d)) => format!("{code} {d}"),
            _ if source.kind() == redis::ErrorKind::AuthenticationFailed => {
                "AUTH failed: a wrong password, or a user that does not exist or is disabled"
                    .to_string()
            }
            _ => source.to_string(),
        };
        return QueueError::AuthFailed {
            url: url.to_string(),
            detail,
        };
    }
    if let Some(reason) = untrusted_certificate(&source) {
        return QueueError::TlsUntrusted {
            url: url.to_string(),
            reason,
        };
    }
    QueueError::Unreachable {
        url: url.to_string(),
        source,
    }
}

/// The cluster client for a parsed `redis+cluster://` URL; the password file wins over the
/// URL's password, as for one server.
fn cluster_client(
    url: &conn::ClusterUrl,
    redis: &RedisConfig,
) -> Result<redis::cluster::ClusterClient, redis::RedisError> {
    let mut b = redis::cluster::ClusterClientBuilder::new(url.nodes.clone())
        .retries(conn::CLUSTER_RETRIES)
        .min_retry_wait(conn::CLUSTER_MIN_WAIT_MS)
        .max_retry_wait(conn::CLUSTER_MAX_WAIT_MS)
        .connection_timeout(conn::CONNECT_TIMEOUT)
        .response_timeout(conn::RESPONSE_TIMEOUT);
    if let Some(user) = &url.username {
        b = b.username(user);
    }
    match (&redis.password, &url.password) {
        (Some(pw), _) => b = b.password(pw.expose()),
        (None, Some(pw)) => b = b.password(pw),
        (None, None) => {}
    }
    if url.tls {
        b = b.tls(redis::TlsMode::Secure);
        if let Some(certs) = &redis.tls {
            b = b.certs(certs.clone());
        }
    }
    b.build()
}

async fn cluster_connection(
    client: &redis::cluster::ClusterClient,
) -> Result<redis::cluster_async::ClusterConnection, redis::RedisError> {
    client.get_async_connection().await
}

/// The reason rustls gave for rejecting the server's certificate, if that is the error.
fn untrusted_certificate(e: &redis::RedisError) -> Option<String> {
    type Dyn = dyn std::error::Error + 'static;
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    // redis-rs keeps the I/O error in an `Arc`, and `io::Error::source` skips the error it
    // wraps (tokio-rustls's `rustls::Error`): unwrap both by hand along the chain.
    fn find(err: &Dyn, depth: usize) -> Option<String> {
        if let Some(e @ rustls::Error::InvalidCertificate(_)) = err.downcast_ref::<rustls::Error>()
        {
            return Some(e.to_string());
        }
        if depth > 8 {
            return None;
        }
        let inner: Option<&Dyn> = if let Some(a) = err.downcast_ref::<Shared>() {
            Some(&**a)
        } else if let Some(io) = err.downcast_ref::<std::io::Error>() {
            io.get_ref().map(|i| i as &Dyn)
        } else {
            None
        };
        inner
            .and_then(|i| find(i, depth + 1))
            .or_else(|| err.source().and_then(|s| find(s, depth + 1)))
    }
    find(e, 0)
}

pub use conn::Conn;

/// A handle on the queue. Cheap to clone: the connection multiplexes and reconnects.
#[derive(Clone)]
pub struct Queue {
    /// The URL as shown in errors: without its password.
    url: String,
    client: conn::Client,
    conn: Conn,
    retention_secs: u64,
    /// `WAIT` for this many replicas after recording a result or listing a run (0: no WAIT).
    wait_replicas: u32,
    wait_timeout_ms: u64,
    /// Until when (ms on this process's clock, since `started`) no WAIT is sent: after one
    /// timed out, the master lacks replicas (e.g. just after a failover, before its old master
    /// comes back as a replica), and waiting out the timeout on every result would slow the
    /// whole fleet to one result per timeout per slot.
    wait_paused_until: std::sync::Arc<std::sync::atomic::AtomicU64>,
    started: std::time::Instant,
}

/// How long results are not waited for after a WAIT timed out.
const WAIT_PAUSE: Duration = Duration::from_secs(30);

impl Queue {
    /// The Redis URL as shown to a person: without its password.
    pub fn shown_url(&self) -> &str {
        &self.url
    }

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
        let (client, mut conn) = match conn::cluster_nodes(&redis.url) {
            Some(parsed) => {
                let parsed = parsed.map_err(|problem| QueueError::BadUrl {
                    url: shown.clone(),
                    problem,
                })?;
                let client = cluster_client(&parsed, redis).map_err(fail)?;
                let conn = cluster_connection(&client).await.map_err(fail)?;
                (conn::Client::Cluster(client), Conn::Cluster(conn))
            }
            None => {
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
                    .set_connection_timeout(Some(conn::CONNECT_TIMEOUT))
                    .set_response_timeout(Some(conn::RESPONSE_TIMEOUT))
                    .set_number_of_retries(3)
                    .set_max_delay(Duration::from_secs(2));
                let conn = client
                    .get_connection_manager_with_config(cfg)
                    .await
                    .map_err(fail)?;
                (conn::Client::Single(client), Conn::Managed(conn))
            }
        };
        let cluster = matches!(client, conn::Client::Cluster(_));
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(fail)?;
        // Once per connect: a server older than 6.2 lacks XAUTOCLAIM and GETDEL, and would
        // fail every reclaim as if it were unreachable.
        match redis::cmd("INFO")
            .arg("server")
            .query_async::<String>(&mut conn)
            .await
        {
            Ok(info) => {
                if let Some(version) = info_field(&info, "redis_version")
                    && !version_supported(version)
                {
                    return Err(QueueError::ServerTooOld {
                        url: shown,
                        version: version.to_string(),
                    });
                }
            }
            // An ACL user without `info` (the README's line has it since 6.2 was checked):
            // the check is skipped rather than refusing a working setup.
            Err(e) if no_permission(&e).is_some() => {
                tracing::debug!(error = %e, "cannot read INFO server; Redis version not checked")
            }
            Err(e) => return Err(fail(e)),
        }
        // A cluster node reached through a plain URL answers for its own slots only: every
        // command would fail with "MOVED 1040" unless it happens to hold tars's slot, and
        // then only until the next failover or resharding.
        if !cluster
            && let Ok(info) = redis::cmd("INFO")
                .arg("cluster")
                .query_async::<String>(&mut conn)
                .await
            && info_field(&info, "cluster_enabled") == Some("1")
        {
            return Err(QueueError::BadUrl {
                url: shown.clone(),
                problem: "the server is a node of a Redis Cluster, which a plain redis:// URL \
                          cannot follow"
                    .into(),
            });
        }
        Ok(Queue {
            url: shown,
            client,
            conn,
            retention_secs: retention_days.saturating_mul(86_400),
            wait_replicas: redis.wait_replicas.unwrap_or(u32::from(cluster)),
            wait_timeout_ms: redis.wait_timeout_ms,
            wait_paused_until: Default::default(),
            started: std::time::Instant::now(),
        })
    }
    /// A dedicated connection for blocking reads: its response timeout must outlast the BLOCK,
    /// and a blocked command would stall every other command multiplexed with it.
    /// In a cluster, a second cluster connection: its per-node connections are its own.
    pub async fn blocking_connection(&self) -> Result<Conn, QueueError> {
        let fail = |source| connect_error(&self.url, source);
        match &self.client {
            conn::Client::Single(client) => {
                let cfg = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(conn::CONNECT_TIMEOUT))
                    .set_response_timeout(Some(conn::RESPONSE_TIMEOUT));
                client
                    .get_multiplexed_async_connection_with_config(&cfg)
                    .await
                    .map(Conn::Direct)
                    .map_err(fail)
            }
            conn::Client::Cluster(client) => cluster_connection(client)
                .await
                .map(Conn::Cluster)
                .map_err(fail),
        }
    }
    pub fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// Whether this queue talks to a Redis Cluster (`redis+cluster://`).
    pub fn is_cluster(&self) -> bool {
        matches!(self.client, conn::Client::Cluster(_))
    }

    /// After a write that must survive a failover (a recorded result, a listed run): `WAIT`
    /// until `redis.wait_replicas` replicas have it, at most `redis.wait_timeout_ms`. Redis
    /// replicates asynchronously, so without this a master that dies right after answering
    /// can take the write with it when its replica is promoted. Too few acknowledgements are
    /// logged, not failed: the write is on the master, and stopping the fleet would not bring
    /// a replica back; and WAITs pause for [`WAIT_PAUSE`]. Also a failed WAIT (the connection
    /// cut by that very failover) is only logged.
    pub(crate) async fn replicate(&self) {
        use std::sync::atomic::Ordering;
        let now_ms = || u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if self.wait_replicas == 0 || now_ms() < self.wait_paused_until.load(Ordering::Relaxed) {
            return;
        }
        let mut c = self.conn();
        match redis::cmd("WAIT")
            .arg(self.wait_replicas)
            .arg(self.wait_timeout_ms)
            .query_async::<u64>(&mut c)
            .await
        {
            Ok(acked) if acked >= u64::from(self.wait_replicas) => {}
            Ok(acked) => {
                let until = now_ms().saturating_add(WAIT_PAUSE.as_millis() as u64);
                // One warning per pause, whichever task saw it first.
                if self.wait_paused_until.swap(until, Ordering::Relaxed) < now_ms() {
                    tracing::warn!(
                        acked,
                        wanted = self.wait_replicas,
                        timeout_ms = self.wait_timeout_ms,
                        "fewer Redis replicas than redis.wait_replicas acknowledged a write in \
                         time: a failover now could lose it. Results are not waited for in \
                         the next 30 s. If the master has no replica, set \
                         redis.wait_replicas = 0"
                    );
                }
            }
            // The write itself succeeded; a WAIT cut off by a failover says nothing new, and
            // one refused (an ACL user without WAIT) would be refused every time.
            Err(e) => {
                let until = now_ms().saturating_add(WAIT_PAUSE.as_millis() as u64);
                if self.wait_paused_until.swap(until, Ordering::Relaxed) < now_ms() {
                    tracing::warn!(error = %e, "WAIT for Redis replicas failed; not waited for \
                                                in the next 30 s");
                }
            }
        }
    }

    /// When Redis (re)started, in seconds since the epoch on its clock (`TIME` minus
    /// `INFO server`'s `uptime_in_seconds`); None when it does not tell.
    pub async fn server_started_secs(&self) -> Result<Option<u64>, QueueError> {
        let mut c = self.conn();
        let info: String = match redis::cmd("INFO").arg("server").query_async(&mut c).await {
            Ok(i) => i,
            Err(e) if no_permission(&e).is_some() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(uptime) =
            info_field(&info, "uptime_in_seconds").and_then(|v| v.parse::<u64>().ok())
        else {
            return Ok(None);
        };
        let (now, _): (u64, u64) = redis::cmd("TIME").query_async(&mut c).await?;
        Ok(Some(now.saturating_sub(uptime)))
    }

    /// [`QueueError::OutOfMemory`] when Redis has reached `maxmemory` under `noeviction` (it
    /// refuses every write then); Ok when it has room, evicts, or does not let us read `INFO`.
    pub async fn check_memory(&self) -> Result<(), QueueError> {
        let mut c = self.conn();
        let info: String = match redis::cmd("INFO").arg("memory").query_async(&mut c).await {
            Ok(i) => i,
            Err(e) if no_permission(&e).is_some() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let num = |f| info_field(&info, f).and_then(|v| v.parse::<u64>().ok());
        let (Some(used), Some(max)) = (num("used_memory"), num("maxmemory")) else {
            return Ok(());
        };
        let policy = info_field(&info, "maxmemory_policy").unwrap_or("noeviction");
        if max > 0 && used >= max && policy == "noeviction" {
            return Err(QueueError::OutOfMemory {
                detail: format!(
                    "it uses {used} bytes of its maxmemory of {max} bytes (policy {policy}) and \
                     refuses writes"
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions_and_info_fields() {
        assert!(version_supported("6.2.0") && version_supported("7.0.15"));
        assert!(version_supported("10.0.0"));
        assert!(!version_supported("6.0.16") && !version_supported("5.0.7"));
        let info = "# Server\r\nredis_version:6.0.16\r\nredis_mode:standalone\r\n";
        assert_eq!(info_field(info, "redis_version"), Some("6.0.16"));
        assert_eq!(info_field(info, "redis"), None);
        let oom = redis::make_extension_error(
            "OOM".into(),
            Some("command not allowed when used memory > 'maxmemory'.".into()),
        );
        let oom = QueueError::from(oom);
        assert!(oom.is_out_of_memory() && oom.is_rejection() && !oom.is_transient());
        assert!(oom.to_string().contains("maxmemory"), "{oom}");
        let gone = QueueError::from(redis::make_extension_error(
            "NOGROUP".into(),
            Some("No such key '{tars}:stream:tasks' or consumer group 'workers'".into()),
        ));
        assert!(gone.is_group_missing() && gone.is_rejection() && !gone.is_transient());
    }

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
        let noperm = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm),
            "NOPERM",
            "User tars has no permissions to run the 'xautoclaim' command".to_string(),
        ));
        match QueueError::from(noperm) {
            e @ QueueError::NoPermission { .. } => {
                assert!(!e.is_transient());
                assert!(e.to_string().contains("`xautoclaim`"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        let auth = redis::RedisError::from((
            redis::ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        let e = connect_error("redis://:***@h:1", auth);
        assert!(matches!(e, QueueError::AuthFailed { .. }) && !e.is_transient());
        assert!(
            !QueueError::Malformed {
                what: "task hash",
                detail: "x".into()
            }
            .is_transient()
        );
    }
}

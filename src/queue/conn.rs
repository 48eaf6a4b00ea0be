//! The connection to Redis: one server, or a Redis Cluster.
//!
//! Every key carries the `{tars}` hash tag, so in a cluster they all live in one slot
//! ([`TARS_SLOT`]) and so on one master. [`Conn::Cluster`] therefore sends *every* command to the
//! master of that slot, keyless ones included: `INFO`, `TIME`, `SCAN` and `WAIT` would otherwise
//! go to a random node or to every master (redis-rs then merges the replies, and `SCAN` would
//! list another node's keys), and a script's `SCRIPT LOAD` must reach the node that runs it.
//! redis-rs still follows `MOVED`/`ASK` and refreshes its slot map, which is how a failover (the
//! slot's replica promoted) is followed.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// The cluster slot of every tars key: CRC16 (XMODEM) of the hash tag `tars`, modulo 16384.
pub const TARS_SLOT: u16 = key_slot(b"tars");

/// Redis Cluster's key slot of a hash tag's content (the part between `{` and `}`).
const fn key_slot(tag: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    let mut i = 0;
    while i < tag.len() {
        crc ^= (tag[i] as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        i += 1;
    }
    crc % 16384
}

/// A connection to the queue's Redis. Cheap to clone (all variants multiplex).
#[derive(Clone)]
pub enum Conn {
    /// One server, through redis-rs's connection manager (reconnects on its own).
    Managed(ConnectionManager),
    /// One server, a dedicated connection (blocking reads: see `Queue::blocking_connection`).
    Direct(MultiplexedConnection),
    /// A Redis Cluster: every command goes to the master of [`TARS_SLOT`].
    Cluster(ClusterConnection),
}

fn tars_node() -> SingleNodeRoutingInfo {
    SingleNodeRoutingInfo::SpecificNode(Route::new(TARS_SLOT, SlotAddr::Master))
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Managed(c) => c.req_packed_command(cmd),
            Conn::Direct(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => {
                Box::pin(c.route_command(cmd.clone(), RoutingInfo::SingleNode(tars_node())))
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Managed(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => {
                Box::pin(c.route_pipeline(pipeline.clone(), offset, count, tars_node()))
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Managed(c) => c.get_db(),
            Conn::Direct(c) => c.get_db(),
            Conn::Cluster(_) => 0,
        }
    }
}

/// What makes connections: a client of one server, or of a cluster.
// One per `Queue`, cloned rarely: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(crate) enum Client {
    Single(redis::Client),
    Cluster(ClusterClient),
}

/// The nodes of a `redis+cluster://` or `rediss+cluster://` URL, each as a `redis://` or
/// `rediss://` URL without credentials, and the URL's user and password. None when the URL is
/// not a cluster URL. Errors name what is wrong.
pub(crate) fn cluster_nodes(url: &str) -> Option<Result<ClusterUrl, String>> {
    let (scheme, rest) = if let Some(r) = url.strip_prefix("redis+cluster://") {
        ("redis", r)
    } else if let Some(r) = url.strip_prefix("rediss+cluster://") {
        ("rediss", r)
    } else {
        return None;
    };
    Some(parse_cluster(scheme, rest))
}

/// A parsed cluster URL.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ClusterUrl {
    pub nodes: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: bool,
}

fn parse_cluster(scheme: &str, rest: &str) -> Result<ClusterUrl, String> {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if !matches!(tail, "" | "/" | "/0") {
        return Err(format!(
            "a cluster URL takes no path or options (a cluster has database 0 only), and this \
             one ends in {tail:?}"
        ));
    }
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let decode = |s: &str| -> Result<String, String> {
        percent_decode(s).ok_or_else(|| "its user or password is not valid percent-encoding".into())
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pw)) => (
                Some(decode(user)?).filter(|u: &String| !u.is_empty()),
                Some(decode(pw)?).filter(|p: &String| !p.is_empty()),
            ),
            None => (Some(decode(u)?).filter(|u: &String| !u.is_empty()), None),
        },
    };
    let mut nodes = Vec::new();
    for node in hosts.split(',') {
        let Some((host, port)) = node.rsplit_once(':') else {
            return Err(format!("the node {node:?} has no port: write it HOST:PORT"));
        };
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!(
                "the node {node:?} is not HOST:PORT with a port from 1 to 65535"
            ));
        }
        nodes.push(format!("{scheme}://{host}:{port}"));
    }
    Ok(ClusterUrl {
        nodes,
        username,
        password,
        tls: scheme == "rediss",
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The cluster client's timing: a failover takes the cluster's `cluster-node-timeout` (15 s by
/// default) plus an election, and a command sent meanwhile is retried this many times with
/// backoff between `min` and `max`; past that it fails as transient and the caller's own retry
/// (the worker's backoff, the connection-manager-like reconnect) takes over.
pub(crate) const CLUSTER_RETRIES: u32 = 8;
pub(crate) const CLUSTER_MIN_WAIT_MS: u64 = 100;
pub(crate) const CLUSTER_MAX_WAIT_MS: u64 = 2_000;
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slot_is_redis_clusters() {
        // What `CLUSTER KEYSLOT` answers on Redis 7.0 for `{tars}:runs` and `123456789` (the
        // cluster specification's example: CRC16 0x31C3); tests/integration/redis_cluster.rs
        // checks the first against a live cluster too.
        assert_eq!(key_slot(b"123456789"), 12739);
        assert_eq!(TARS_SLOT, 1040);
    }

    #[test]
    fn cluster_urls_give_their_nodes_and_credentials() {
        assert_eq!(cluster_nodes("redis://a:1"), None);
        let u = cluster_nodes("redis+cluster://tars:p%40ss@10.0.0.1:7000,node-b:7001/")
            .unwrap()
            .unwrap();
        assert_eq!(
            u,
            ClusterUrl {
                nodes: vec!["redis://10.0.0.1:7000".into(), "redis://node-b:7001".into()],
                username: Some("tars".into()),
                password: Some("p@ss".into()),
                tls: false,
            }
        );
        let u = cluster_nodes("rediss+cluster://:pw@[::1]:7000")
            .unwrap()
            .unwrap();
        assert_eq!(u.nodes, vec!["rediss://[::1]:7000".to_string()]);
        assert_eq!(
            (u.username, u.password, u.tls),
            (None, Some("pw".into()), true)
        );
        for bad in [
            "redis+cluster://a",
            "redis+cluster://a:0",
            "redis+cluster://a:1,:2",
            "redis+cluster://a:1/3",
            "redis+cluster://a:1?x=y",
            "redis+cluster://u:%zz@a:1",
        ] {
            assert!(cluster_nodes(bad).unwrap().is_err(), "{bad}");
        }
    }
}

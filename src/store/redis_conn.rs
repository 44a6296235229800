//! One Redis connection type for a single server (a multiplexed `ConnectionManager`) or a
//! Redis Cluster, so the stores are written once against `ConnectionLike`.
use std::time::Duration;

use redis::{
    Cmd, Pipeline, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager},
    cluster_async::ClusterConnection,
};

use crate::domain::StoreError;

#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(cmd, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

/// Connects to `url`, or to the cluster of `cluster_nodes` when there are any, with short
/// timeouts. A single server is connected lazily (down at start is fine); a cluster must answer
/// at start, to learn its slots. Returns the connection and the key prefix to use: in a cluster
/// the prefix becomes a hash tag, so the keys one check reads together live in one slot.
pub async fn redis_connection(
    url: &str,
    cluster_nodes: &[String],
    prefix: &str,
    timeout: Duration,
) -> Result<(RedisConn, String), StoreError> {
    let failed = |e: redis::RedisError| StoreError::Unavailable(format!("redis: {e}"));
    if !cluster_nodes.is_empty() {
        let client = redis::cluster::ClusterClientBuilder::new(cluster_nodes.to_vec())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(1)
            .build()
            .map_err(failed)?;
        let conn = client.get_async_connection().await.map_err(failed)?;
        return Ok((RedisConn::Cluster(conn), format!("{{{prefix}}}")));
    }
    let client =
        redis::Client::open(url).map_err(|e| StoreError::Internal(format!("redis url: {e}")))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(failed)?;
    Ok((RedisConn::Single(conn), prefix.to_owned()))
}

/// Warns when Redis may evict keys: an evicted revocation is a revoked token accepted again
/// (until the next rebuild). Tessera's keys all expire on their own; Redis must run with
/// `maxmemory-policy noeviction`. Redis being down at start is fine: the check is skipped.
pub async fn warn_unless_noeviction(conn: &RedisConn) {
    let mut conn = conn.clone();
    let answer: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(&mut conn)
        .await;
    match answer.as_deref() {
        Ok([_, policy]) if policy == "noeviction" => {}
        Ok([_, policy]) => tracing::warn!(
            policy = %policy,
            "Redis may evict revocations: set maxmemory-policy noeviction (see README, Production)"
        ),
        Ok(_) | Err(_) => tracing::warn!(
            "could not read Redis's maxmemory-policy: make sure it is noeviction (see README, Production)"
        ),
    }
}

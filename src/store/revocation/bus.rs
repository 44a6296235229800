//! Keeps every instance's [`Mirror`] exact: each revocation, cut-off and key deletion is
//! published on a Redis channel with its SQL sequence number, and applied by every instance on
//! receipt. A subscription that drops, a gap in the numbers or SQL ahead of the copy (a message
//! lost with its writer) stops the copy being trusted until it is reloaded from SQL.
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::mirror::{Message, Mirror};
use super::redis::RedisRevocations;
use super::sql::SqlRevocations;
use crate::store::redis_conn::RedisConn;

/// How often SQL's sequence is compared with the copy (a lost last message shows here).
const HEARTBEAT: Duration = Duration::from_millis(250);

/// An instance's copy and, with Redis, where its events are published.
#[derive(Clone)]
pub struct Bus {
    pub mirror: Arc<Mirror>,
    publisher: Option<(RedisConn, String)>,
}

impl Bus {
    /// One process writing SQL alone (the embedded SQLite setup): its copy is the truth once
    /// loaded; writes by other processes (the CLI) show through the heartbeat.
    pub fn embedded(mirror: Mirror) -> Self {
        Self {
            mirror: Arc::new(mirror),
            publisher: None,
        }
    }

    /// Instances sharing Redis: events go out on `channel`.
    pub fn redis(mirror: Mirror, conn: RedisConn, channel: String) -> Self {
        Self {
            mirror: Arc::new(mirror),
            publisher: Some((conn, channel)),
        }
    }

    /// Adds the PUBLISH of `message` to a pipeline the writer sends anyway.
    pub fn publish_in(&self, pipe: &mut redis::Pipeline, message: &Message) {
        if let (Some((_, channel)), Ok(json)) = (&self.publisher, serde_json::to_string(message)) {
            pipe.cmd("PUBLISH").arg(channel).arg(json).ignore();
        }
    }

    /// Applies `message` here at once, then tells the other instances. A failed publish is
    /// logged: the others find SQL ahead of their copy at their next heartbeat and reload.
    pub async fn announce(&self, message: Message) {
        self.mirror.apply(&message);
        let Some((conn, _)) = &self.publisher else {
            return;
        };
        let mut pipe = redis::pipe();
        self.publish_in(&mut pipe, &message);
        let mut conn = conn.clone();
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            tracing::warn!(error = %e, "publishing a security event failed; other instances reload within a second");
        }
    }

    fn channel(&self) -> Option<&str> {
        self.publisher.as_ref().map(|(_, c)| c.as_str())
    }
}

/// Reloads the copy from SQL: the sequence first, then the entries (an event committed in
/// between is in the entries or arrives on the channel, and counts either way).
pub async fn resync(
    mirror: &Mirror,
    sql: &SqlRevocations,
) -> Result<(), crate::domain::StoreError> {
    let seq = sql.sequence().await?;
    let (jtis, cutoffs) = sql.live_entries(chrono::Utc::now()).await?;
    let jtis = jtis
        .into_iter()
        .map(|r| (r.jti, r.expires_at.timestamp()))
        .collect();
    let cutoffs = cutoffs
        .into_iter()
        .map(|c| (c.user_id, c.not_before, c.expires_at.timestamp()))
        .collect();
    mirror.load(seq, jtis, cutoffs);
    metrics::counter!("tessera_revocation_memory_resyncs_total").increment(1);
    Ok(())
}

/// Compares SQL's sequence with the copy every [`HEARTBEAT`]; a copy behind for a whole beat
/// (not a message still on its way) or with an old gap is reloaded. Also prunes expired entries.
async fn heartbeat(
    mirror: &Mirror,
    sql: &SqlRevocations,
    redis: Option<&RedisRevocations>,
    behind: &mut Option<(i64, Instant)>,
) {
    mirror.prune();
    let (jtis, cutoffs, keys) = mirror.sizes();
    metrics::gauge!("tessera_revocation_memory_entries", "kind" => "jti").set(jtis as f64);
    metrics::gauge!("tessera_revocation_memory_entries", "kind" => "cutoff").set(cutoffs as f64);
    metrics::gauge!("tessera_revocation_memory_entries", "kind" => "key").set(keys as f64);
    metrics::gauge!("tessera_revocation_memory_trusted").set(if mirror.is_trusted() {
        1.0
    } else {
        0.0
    });
    let sql_seq = match sql.sequence().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "reading the revocation sequence failed");
            return;
        }
    };
    let lost = match *behind {
        Some((seq, since)) => mirror.seen() < seq && since.elapsed() >= HEARTBEAT,
        None => false,
    };
    *behind = (sql_seq > mirror.seen()).then(|| match *behind {
        Some((seq, since)) if seq <= sql_seq => (seq, since),
        _ => (sql_seq, Instant::now()),
    });
    if lost || mirror.needs_resync() {
        if lost {
            tracing::warn!("the in-memory revocation list missed an event: reloading it from SQL");
            // Redis missed it too (its writer failed before publishing): rebuild it as well.
            if let Some(redis) = redis {
                redis.repair();
            }
        }
        if let Err(e) = resync(mirror, sql).await {
            tracing::warn!(error = %e, "reloading the in-memory revocation list failed");
        }
        *behind = None;
    }
}

/// The embedded setup: load now, then watch SQL for other processes' writes.
pub async fn start_embedded(
    bus: &Bus,
    sql: SqlRevocations,
) -> Result<(), crate::domain::StoreError> {
    resync(&bus.mirror, &sql).await?;
    let mirror = bus.mirror.clone();
    tokio::spawn(async move {
        let mut behind = None;
        let mut tick = tokio::time::interval(HEARTBEAT);
        loop {
            tick.tick().await;
            heartbeat(&mirror, &sql, None, &mut behind).await;
        }
    });
    Ok(())
}

/// Subscribes to the channel (reconnecting with backoff), reloads on every (re)subscription and
/// applies what arrives. While not subscribed the copy is not trusted.
pub fn start_listener(url: String, bus: Bus, sql: SqlRevocations, redis: RedisRevocations) {
    let Some(channel) = bus.channel().map(str::to_owned) else {
        return;
    };
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            match listen(&url, &channel, &bus.mirror, &sql, &redis).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, "revocation channel down: checks use Redis/SQL until it is back")
                }
            }
            bus.mirror.distrust();
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    });
}

async fn listen(
    url: &str,
    channel: &str,
    mirror: &Mirror,
    sql: &SqlRevocations,
    redis: &RedisRevocations,
) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut pubsub = tokio::time::timeout(Duration::from_secs(2), client.get_async_pubsub())
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    pubsub.subscribe(channel).await.map_err(|e| e.to_string())?;
    let mut messages = pubsub.into_on_message();
    // Subscribed: from here on nothing is missed, so a reload now makes the copy complete.
    mirror.listening();
    resync(mirror, sql).await.map_err(|e| e.to_string())?;
    // Redis may have restarted empty meanwhile: it is the fallback, so it is rebuilt too.
    redis.repair();
    tracing::info!("revocation channel subscribed; checks are answered from memory");
    let mut behind = None;
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return Err("subscription closed".into());
                };
                match serde_json::from_slice::<Message>(message.get_payload_bytes()) {
                    Ok(m) => mirror.apply(&m),
                    // Not ours to understand: never trust a copy that may have missed something.
                    Err(e) => return Err(format!("unreadable event: {e}")),
                }
            }
            _ = tick.tick() => heartbeat(mirror, sql, Some(redis), &mut behind).await,
        }
    }
}

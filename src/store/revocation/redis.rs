//! Redis in front of the SQL record: one MGET per check, trusted only while it provably holds
//! every revocation (epoch marker, sequence, no failed write since the last rebuild).
use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
};

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;
use uuid::Uuid;

use super::bus::Bus;
use super::mirror::{Event, Message};
use super::sql::SqlRevocations;
use crate::{
    domain::{
        StoreError,
        revocation::{RevocationStore, RevokedJti},
    },
    store::redis_conn::RedisConn,
};

/// Redis in front of [`SqlRevocations`]. Keys: `{prefix}revoked:{jti}`, `{prefix}cutoff:{user}`
/// (each with the entry's remaining lifetime as TTL) and `{prefix}epoch`, a marker written after
/// every rebuild: its absence means Redis lost its data (FLUSHALL, restart without persistence).
#[derive(Clone)]
pub struct RedisRevocations {
    sql: SqlRevocations,
    redis: RedisConn,
    prefix: String,
    /// Redis may be missing entries: answer from SQL until a rebuild succeeds.
    pub(super) stale: Arc<AtomicBool>,
    /// Failed writes so far; a rebuild only clears `stale` if none failed while it copied.
    failed_writes: Arc<AtomicU64>,
    rebuilding: Arc<Mutex<()>>,
    /// When the last rebuild was attempted (unix ms): at most one attempt a second while Redis is down.
    last_attempt: Arc<AtomicI64>,
    /// The highest revocation sequence number this instance knows SQL has reached (its own
    /// writes, and a read of SQL at most once a second). Redis showing a lower one missed a
    /// write, perhaps another instance's: it is not trusted until rebuilt.
    sql_sequence: Arc<AtomicI64>,
    /// When SQL's sequence was last read (unix ms).
    last_sequence_read: Arc<AtomicI64>,
    /// The in-memory copy checks are answered from while it is trusted (None: a cluster, or
    /// turned off).
    bus: Option<Bus>,
}

impl RedisRevocations {
    /// A store on `url`, connecting lazily with short timeouts; Redis being down at start is fine.
    pub fn new(sql: SqlRevocations, redis: RedisConn, prefix: &str, bus: Option<Bus>) -> Self {
        Self {
            sql,
            redis,
            prefix: prefix.to_owned(),
            stale: Arc::new(AtomicBool::new(true)),
            failed_writes: Arc::new(AtomicU64::new(0)),
            rebuilding: Arc::new(Mutex::new(())),
            last_attempt: Arc::new(AtomicI64::new(0)),
            sql_sequence: Arc::new(AtomicI64::new(0)),
            last_sequence_read: Arc::new(AtomicI64::new(0)),
            bus,
        }
    }

    /// Applies `event` (numbered `seq`) to this instance's copy and adds its PUBLISH to `pipe`.
    fn announce_in(&self, pipe: &mut redis::Pipeline, seq: i64, event: Event) {
        if let Some(bus) = &self.bus {
            let message = Message { seq, event };
            bus.mirror.apply(&message);
            bus.publish_in(pipe, &message);
        }
    }

    fn sequence_key(&self) -> String {
        format!("{}sequence", self.prefix)
    }

    /// Adds to `pipe`: raise Redis's sequence to `sequence` (never lower it).
    fn raise_sequence(&self, pipe: &mut redis::Pipeline, sequence: i64) {
        pipe.cmd("EVAL")
            .arg(RAISE_SEQUENCE)
            .arg(1)
            .arg(self.sequence_key())
            .arg(sequence)
            .ignore();
    }

    /// Adds to `pipe`: `user`'s cut-off, forward only, expiring in `ttl` seconds.
    fn set_cutoff(&self, pipe: &mut redis::Pipeline, user: Uuid, cutoff: i64, ttl: u64) {
        pipe.cmd("EVAL")
            .arg(FORWARD_ONLY_CUTOFF)
            .arg(1)
            .arg(self.cutoff_key(user))
            .arg(cutoff)
            .arg(ttl)
            .ignore();
    }

    /// Reads SQL's sequence in the background when the last read is a second old.
    fn refresh_sql_sequence(&self) {
        if !once_a_second(&self.last_sequence_read) {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            match store.sql.sequence().await {
                Ok(seq) => {
                    store.sql_sequence.fetch_max(seq, Ordering::SeqCst);
                }
                Err(e) => tracing::warn!(error = %e, "reading the revocation sequence failed"),
            }
        });
    }

    fn jti_key(&self, jti: &str) -> String {
        format!("{}revoked:{jti}", self.prefix)
    }

    fn cutoff_key(&self, user: Uuid) -> String {
        format!("{}cutoff:{user}", self.prefix)
    }

    fn epoch_key(&self) -> String {
        format!("{}epoch", self.prefix)
    }

    /// Stops trusting Redis and rebuilds it in the background (it may lack an entry).
    pub fn repair(&self) {
        self.stale.store(true, Ordering::SeqCst);
        let store = self.clone();
        tokio::spawn(async move {
            if let Err(e) = store.rebuild().await {
                tracing::warn!(error = %e, "rebuilding the Redis revocation list failed; retrying later");
            }
        });
    }

    /// Copies every live SQL entry into Redis, then writes the epoch marker.
    pub async fn rebuild(&self) -> Result<(), StoreError> {
        let Ok(_guard) = self.rebuilding.try_lock() else {
            return Ok(()); // another task is rebuilding
        };
        let failures_before = self.failed_writes.load(Ordering::SeqCst);
        self.copy_sql_to_redis().await?;
        // A write that failed during the copy may be missing from Redis: stay stale for it.
        if self.failed_writes.load(Ordering::SeqCst) == failures_before {
            self.stale.store(false, Ordering::SeqCst);
        }
        Ok(())
    }

    async fn copy_sql_to_redis(&self) -> Result<(), StoreError> {
        // Read first: whatever is revoked after this read raises the sequence again.
        let sequence = self.sql.sequence().await?;
        let now = Utc::now();
        let (jtis, cutoffs) = self.sql.live_entries(now).await?;
        let mut conn = self.redis.clone();
        // In chunks: one pipeline of a million entries would hold Redis and this process.
        for chunk in jtis.chunks(REBUILD_CHUNK) {
            let mut pipe = redis::pipe();
            for r in chunk {
                pipe.set_ex(self.jti_key(&r.jti), 1, ttl(r.expires_at, now))
                    .ignore();
            }
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(redis_error)?;
        }
        for chunk in cutoffs.chunks(REBUILD_CHUNK) {
            let mut pipe = redis::pipe();
            for c in chunk {
                self.set_cutoff(&mut pipe, c.user_id, c.not_before, ttl(c.expires_at, now));
            }
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(redis_error)?;
        }
        let mut pipe = redis::pipe();
        self.raise_sequence(&mut pipe, sequence);
        // The marker expires too, so the list is also rebuilt once a day whatever happens.
        pipe.set_ex(self.epoch_key(), now.timestamp(), 86_400)
            .ignore();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(redis_error)?;
        self.sql_sequence.fetch_max(sequence, Ordering::SeqCst);
        tracing::info!(
            jtis = jtis.len(),
            cutoffs = cutoffs.len(),
            "revocation list rebuilt in Redis"
        );
        Ok(())
    }

    /// Marks Redis stale after a failed write, and repairs it in the background.
    fn write_failed(&self, e: &redis::RedisError) {
        tracing::warn!(error = %e, "redis write failed: revocation checks use SQL until Redis is rebuilt");
        self.failed_writes.fetch_add(1, Ordering::SeqCst);
        self.stale.store(true, Ordering::SeqCst);
    }

    async fn sql_check(
        &self,
        jti: Option<&str>,
        user: Option<Uuid>,
        iat: i64,
    ) -> Result<bool, StoreError> {
        metrics::counter!("tessera_revocation_sql_fallbacks_total").increment(1);
        if once_a_second(&self.last_attempt) {
            // Repair in the background; this request is answered from SQL either way.
            let store = self.clone();
            tokio::spawn(async move {
                if let Err(e) = store.rebuild().await {
                    tracing::warn!(error = %e, "rebuilding the Redis revocation list failed; retrying later");
                }
            });
        }
        self.sql.is_revoked(jti, user, iat).await
    }
}

/// True at most once a second per `gate` (unix ms of the last time), whoever asks.
fn once_a_second(gate: &AtomicI64) -> bool {
    let now = Utc::now().timestamp_millis();
    let last = gate.load(Ordering::Relaxed);
    now - last >= 1000
        && gate
            .compare_exchange(last, now, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
}

/// Seconds until `expires_at`, rounded up: an entry never leaves Redis before it may.
pub(super) fn ttl(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let millis = (expires_at - now).num_milliseconds().max(1).unsigned_abs();
    millis.div_ceil(1000)
}

/// Sets a cut-off unless a later one is there; the TTL only grows.
const FORWARD_ONLY_CUTOFF: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]))
local ttl = redis.call('TTL', KEYS[1])
local value = tonumber(ARGV[1])
if current ~= nil and current > value then value = current end
local expire = tonumber(ARGV[2])
if ttl > expire then expire = ttl end
redis.call('SET', KEYS[1], value, 'EX', expire)
";

/// Raises the sequence Redis has seen to ARGV[1], never lowers it.
const RAISE_SEQUENCE: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]))
if current == nil or current < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
";

/// Entries written to Redis per pipeline when rebuilding.
const REBUILD_CHUNK: usize = 1000;

fn redis_error(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

#[async_trait::async_trait]
impl RevocationStore for RedisRevocations {
    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.redis.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(redis_error)
    }

    async fn revoke(&self, jtis: &[RevokedJti]) -> Result<(), StoreError> {
        let sequence = self.sql.revoke_counted(jtis).await?;
        self.sql_sequence.fetch_max(sequence, Ordering::SeqCst);
        let now = Utc::now();
        let mut pipe = redis::pipe();
        for r in jtis {
            pipe.set_ex(self.jti_key(&r.jti), 1, ttl(r.expires_at, now))
                .ignore();
        }
        self.raise_sequence(&mut pipe, sequence);
        self.announce_in(&mut pipe, sequence, Event::revoked(jtis));
        let mut conn = self.redis.clone();
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            self.write_failed(&e);
        }
        Ok(())
    }

    async fn revoke_user(
        &self,
        user: Uuid,
        cutoff: i64,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let sequence = self.sql.revoke_user_counted(user, cutoff, until).await?;
        self.sql_sequence.fetch_max(sequence, Ordering::SeqCst);
        let mut conn = self.redis.clone();
        let mut pipe = redis::pipe();
        self.set_cutoff(&mut pipe, user, cutoff, ttl(until, Utc::now()));
        self.raise_sequence(&mut pipe, sequence);
        self.announce_in(&mut pipe, sequence, Event::cutoff(user, cutoff, until));
        let result = pipe.query_async::<()>(&mut conn).await;
        if let Err(e) = result {
            self.write_failed(&e);
        }
        Ok(())
    }

    async fn is_revoked(
        &self,
        jti: Option<&str>,
        user: Option<Uuid>,
        iat: i64,
    ) -> Result<bool, StoreError> {
        if let Some(answer) = self
            .bus
            .as_ref()
            .and_then(|b| b.mirror.check(jti, user, iat))
        {
            metrics::counter!("tessera_revocation_checks_total", "answered_by" => "memory")
                .increment(1);
            return Ok(answer);
        }
        self.refresh_sql_sequence();
        if self.stale.load(Ordering::SeqCst) {
            return self.sql_check(jti, user, iat).await;
        }
        // Absent parts read a key that never exists, so the answer keeps one shape.
        let cutoff_key = user
            .map(|u| self.cutoff_key(u))
            .unwrap_or_else(|| format!("{}cutoff:-", self.prefix));
        let jti_key = self.jti_key(jti.unwrap_or("-"));
        let mut conn = self.redis.clone();
        let answer: redis::RedisResult<(Option<i64>, Option<i64>, Option<i64>, Option<i64>)> =
            redis::cmd("MGET")
                .arg(jti_key)
                .arg(cutoff_key)
                .arg(self.epoch_key())
                .arg(self.sequence_key())
                .query_async(&mut conn)
                .await;
        match answer {
            Ok((_, _, Some(_), sequence))
                if sequence.unwrap_or(0) < self.sql_sequence.load(Ordering::SeqCst) =>
            {
                tracing::warn!(
                    "redis is behind SQL (a revocation write was lost): answering from SQL and rebuilding"
                );
                self.stale.store(true, Ordering::SeqCst);
                self.sql_check(jti, user, iat).await
            }
            Ok((_, _, None, _)) => {
                tracing::warn!(
                    "redis lost the revocation list (no epoch marker): rebuilding from SQL"
                );
                self.stale.store(true, Ordering::SeqCst);
                self.sql_check(jti, user, iat).await
            }
            Ok((revoked, cutoff, Some(_), _)) => {
                Ok(revoked.is_some() || cutoff.is_some_and(|c| iat < c))
            }
            Err(e) => {
                tracing::warn!(error = %e, "redis unreachable: revocation check answered from SQL");
                self.sql_check(jti, user, iat).await
            }
        }
    }

    async fn prune(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        // Redis entries expire by their TTL.
        self.sql.prune(now).await
    }
}

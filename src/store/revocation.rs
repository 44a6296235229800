//! Revocation lists: SQL only (the embedded default), or Redis in front of SQL. SQL is always the
//! record; Redis answers the per-request check in one round trip. A Redis that is unreachable,
//! lost writes, or was flushed is never trusted: checks fall back to SQL until it is rebuilt.
use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
};

use super::redis_conn::RedisConn;
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter, TransactionTrait,
    sea_query::{Expr, OnConflict},
};
use tokio::sync::Mutex;
use uuid::Uuid;

use super::{
    entities::{revocation_sequence, revoked_jti, user_cutoff},
    store_error,
};
use crate::domain::{
    StoreError,
    revocation::{RevocationStore, RevokedJti},
};

fn err(e: sea_orm::DbErr) -> StoreError {
    store_error(e, "jti")
}

/// Raises the revocation sequence inside `txn` and returns its new value.
async fn next_sequence(txn: &sea_orm::DatabaseTransaction) -> Result<i64, StoreError> {
    revocation_sequence::Entity::update_many()
        .col_expr(
            revocation_sequence::Column::Value,
            sea_orm::sea_query::ExprTrait::add(Expr::col(revocation_sequence::Column::Value), 1),
        )
        .filter(revocation_sequence::Column::Id.eq(1))
        .exec(txn)
        .await
        .map_err(err)?;
    revocation_sequence::Entity::find_by_id(1)
        .one(txn)
        .await
        .map_err(err)?
        .map(|row| row.value)
        .ok_or_else(|| StoreError::Internal("the revocation sequence row is missing".into()))
}

/// The record: revoked JTIs and per-user cut-offs in SQL.
#[derive(Clone)]
pub struct SqlRevocations {
    db: DatabaseConnection,
}

impl SqlRevocations {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// The number of revocations SQL has recorded.
    pub async fn sequence(&self) -> Result<i64, StoreError> {
        revocation_sequence::Entity::find_by_id(1)
            .one(&self.db)
            .await
            .map_err(err)?
            .map(|row| row.value)
            .ok_or_else(|| StoreError::Internal("the revocation sequence row is missing".into()))
    }

    /// Writes the revocations and raises the sequence in one transaction; returns the new
    /// sequence number.
    async fn revoke_counted(&self, jtis: &[RevokedJti]) -> Result<i64, StoreError> {
        if jtis.is_empty() {
            return self.sequence().await;
        }
        let now = Utc::now();
        let rows = jtis.iter().map(|r| {
            revoked_jti::Model {
                jti: r.jti.clone(),
                user_id: r.user_id,
                revoked_at: now,
                expires_at: r.expires_at,
            }
            .into_active_model()
        });
        let txn = self.db.begin().await.map_err(err)?;
        revoked_jti::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(revoked_jti::Column::Jti)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(err)?;
        let seq = next_sequence(&txn).await?;
        txn.commit().await.map_err(err)?;
        Ok(seq)
    }

    /// Sets the cut-off (forward only) and raises the sequence in one transaction.
    async fn revoke_user_counted(
        &self,
        user: Uuid,
        cutoff: i64,
        until: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let row = user_cutoff::Model {
            user_id: user,
            not_before: cutoff,
            expires_at: until,
        }
        .into_active_model();
        let txn = self.db.begin().await.map_err(err)?;
        user_cutoff::Entity::insert(row)
            .on_conflict(
                OnConflict::column(user_cutoff::Column::UserId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(err)?;
        // Each column only moves forward: a late, older cut-off changes nothing.
        user_cutoff::Entity::update_many()
            .col_expr(user_cutoff::Column::NotBefore, Expr::value(cutoff))
            .filter(user_cutoff::Column::UserId.eq(user))
            .filter(user_cutoff::Column::NotBefore.lt(cutoff))
            .exec(&txn)
            .await
            .map_err(err)?;
        user_cutoff::Entity::update_many()
            .col_expr(user_cutoff::Column::ExpiresAt, Expr::value(until))
            .filter(user_cutoff::Column::UserId.eq(user))
            .filter(user_cutoff::Column::ExpiresAt.lt(until))
            .exec(&txn)
            .await
            .map_err(err)?;
        let seq = next_sequence(&txn).await?;
        txn.commit().await.map_err(err)?;
        Ok(seq)
    }

    async fn live_entries(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(Vec<revoked_jti::Model>, Vec<user_cutoff::Model>), StoreError> {
        let jtis = revoked_jti::Entity::find()
            .filter(revoked_jti::Column::ExpiresAt.gt(now))
            .all(&self.db)
            .await
            .map_err(err)?;
        let cutoffs = user_cutoff::Entity::find()
            .filter(user_cutoff::Column::ExpiresAt.gt(now))
            .all(&self.db)
            .await
            .map_err(err)?;
        Ok((jtis, cutoffs))
    }
}

#[async_trait::async_trait]
impl RevocationStore for SqlRevocations {
    async fn revoke(&self, jtis: &[RevokedJti]) -> Result<(), StoreError> {
        self.revoke_counted(jtis).await.map(|_| ())
    }

    async fn revoke_user(
        &self,
        user: Uuid,
        cutoff: i64,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.revoke_user_counted(user, cutoff, until)
            .await
            .map(|_| ())
    }

    async fn is_revoked(
        &self,
        jti: Option<&str>,
        user: Option<Uuid>,
        iat: i64,
    ) -> Result<bool, StoreError> {
        if let Some(jti) = jti
            && revoked_jti::Entity::find_by_id(jti.to_owned())
                .one(&self.db)
                .await
                .map_err(err)?
                .is_some()
        {
            return Ok(true);
        }
        let Some(user) = user else { return Ok(false) };
        let cutoff = user_cutoff::Entity::find_by_id(user)
            .one(&self.db)
            .await
            .map_err(err)?;
        Ok(cutoff.is_some_and(|c| iat < c.not_before))
    }

    async fn prune(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let a = revoked_jti::Entity::delete_many()
            .filter(revoked_jti::Column::ExpiresAt.lt(now))
            .exec(&self.db)
            .await
            .map_err(err)?;
        let b = user_cutoff::Entity::delete_many()
            .filter(user_cutoff::Column::ExpiresAt.lt(now))
            .exec(&self.db)
            .await
            .map_err(err)?;
        Ok(a.rows_affected + b.rows_affected)
    }
}

/// Redis in front of [`SqlRevocations`]. Keys: `{prefix}revoked:{jti}`, `{prefix}cutoff:{user}`
/// (each with the entry's remaining lifetime as TTL) and `{prefix}epoch`, a marker written after
/// every rebuild: its absence means Redis lost its data (FLUSHALL, restart without persistence).
#[derive(Clone)]
pub struct RedisRevocations {
    sql: SqlRevocations,
    redis: RedisConn,
    prefix: String,
    /// Redis may be missing entries: answer from SQL until a rebuild succeeds.
    stale: Arc<AtomicBool>,
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
}

impl RedisRevocations {
    /// A store on `url`, connecting lazily with short timeouts; Redis being down at start is fine.
    pub fn new(sql: SqlRevocations, redis: RedisConn, prefix: &str) -> Self {
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
        }
    }

    fn sequence_key(&self) -> String {
        format!("{}sequence", self.prefix)
    }

    /// Reads SQL's sequence in the background when the last read is a second old.
    fn refresh_sql_sequence(&self) {
        let now = Utc::now().timestamp_millis();
        let last = self.last_sequence_read.load(Ordering::Relaxed);
        if now - last < 1000
            || self
                .last_sequence_read
                .compare_exchange(last, now, Ordering::SeqCst, Ordering::Relaxed)
                .is_err()
        {
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
                pipe.cmd("EVAL")
                    .arg(FORWARD_ONLY_CUTOFF)
                    .arg(1)
                    .arg(self.cutoff_key(c.user_id))
                    .arg(c.not_before)
                    .arg(ttl(c.expires_at, now))
                    .ignore();
            }
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(redis_error)?;
        }
        let mut pipe = redis::pipe();
        pipe.cmd("EVAL")
            .arg(RAISE_SEQUENCE)
            .arg(1)
            .arg(self.sequence_key())
            .arg(sequence)
            .ignore();
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
        let now = Utc::now().timestamp_millis();
        let last = self.last_attempt.load(Ordering::Relaxed);
        if now - last >= 1000
            && self
                .last_attempt
                .compare_exchange(last, now, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        {
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

/// Seconds until `expires_at`, rounded up: an entry never leaves Redis before it may.
fn ttl(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
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
        pipe.cmd("EVAL")
            .arg(RAISE_SEQUENCE)
            .arg(1)
            .arg(self.sequence_key())
            .arg(sequence)
            .ignore();
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
        pipe.cmd("EVAL")
            .arg(FORWARD_ONLY_CUTOFF)
            .arg(1)
            .arg(self.cutoff_key(user))
            .arg(cutoff)
            .arg(ttl(until, Utc::now()))
            .ignore();
        pipe.cmd("EVAL")
            .arg(RAISE_SEQUENCE)
            .arg(1)
            .arg(self.sequence_key())
            .arg(sequence)
            .ignore();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{settings::DatabaseSettings, store::redis_conn::redis_connection};
    use std::time::Duration;

    async fn sql() -> SqlRevocations {
        let db = crate::store::database::connect(&DatabaseSettings {
            url: "sqlite::memory:".into(),
            migrate_on_start: true,
            max_connections: 1,
            acquire_timeout: Duration::from_secs(2),
        })
        .await
        .unwrap();
        crate::store::database::migrate(&db).await.unwrap();
        SqlRevocations::new(db)
    }

    /// Two instances log a user out everywhere at nearly the same time, and the older cut-off
    /// is written last: the newer one must stand.
    async fn a_late_older_cutoff_changes_nothing(store: &dyn RevocationStore) {
        let user = Uuid::now_v7();
        let now = Utc::now();
        let later = now + chrono::TimeDelta::hours(2);
        store.revoke_user(user, 2_000, later).await.unwrap();
        store
            .revoke_user(user, 1_000, now + chrono::TimeDelta::hours(1))
            .await
            .unwrap();
        assert!(store.is_revoked(None, Some(user), 1_500).await.unwrap());
        assert!(!store.is_revoked(None, Some(user), 2_000).await.unwrap());
        store.revoke_user(user, 3_000, later).await.unwrap();
        assert!(store.is_revoked(None, Some(user), 2_500).await.unwrap());
    }

    #[tokio::test]
    async fn cutoffs_only_move_forward_in_sql() {
        a_late_older_cutoff_changes_nothing(&sql().await).await;
    }

    #[tokio::test]
    async fn cutoffs_only_move_forward_in_redis() {
        let url = std::env::var("TEST_REDIS_URL").unwrap_or("redis://127.0.0.1:6379/0".into());
        let prefix = format!("tessera-unit:{}:", Uuid::new_v4().simple());
        let conn = match redis_connection(&url, &[], &prefix, Duration::from_secs(1)).await {
            Ok((conn, _)) => conn,
            Err(e) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true needs Redis: {e}"
                );
                eprintln!("SKIPPED cutoffs_only_move_forward_in_redis: {e}");
                return;
            }
        };
        let store = RedisRevocations::new(sql().await, conn, &prefix);
        store.rebuild().await.unwrap();
        a_late_older_cutoff_changes_nothing(&store).await;
        // Redis itself holds the newer cut-off (not only SQL behind it).
        assert!(!store.stale.load(Ordering::SeqCst), "answered by Redis");
    }

    #[test]
    fn ttls_round_up() {
        let now = Utc::now();
        assert_eq!(ttl(now + chrono::TimeDelta::milliseconds(1_001), now), 2);
        assert_eq!(ttl(now + chrono::TimeDelta::milliseconds(1_000), now), 1);
        assert_eq!(ttl(now - chrono::TimeDelta::seconds(5), now), 1);
    }
}

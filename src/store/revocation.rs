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
    entities::{revoked_jti, user_cutoff},
    store_error,
};
use crate::domain::{
    StoreError,
    revocation::{RevocationStore, RevokedJti},
};

fn err(e: sea_orm::DbErr) -> StoreError {
    store_error(e, "jti")
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
        if jtis.is_empty() {
            return Ok(());
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
        revoked_jti::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(revoked_jti::Column::Jti)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await
            .map(|_| ())
            .map_err(err)
    }

    async fn revoke_user(
        &self,
        user: Uuid,
        cutoff: i64,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
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
        txn.commit().await.map_err(err)
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
        }
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
        let now = Utc::now();
        let (jtis, cutoffs) = self.sql.live_entries(now).await?;
        let mut pipe = redis::pipe();
        for r in &jtis {
            pipe.set_ex(self.jti_key(&r.jti), 1, ttl(r.expires_at, now))
                .ignore();
        }
        for c in &cutoffs {
            pipe.set_ex(
                self.cutoff_key(c.user_id),
                c.not_before,
                ttl(c.expires_at, now),
            )
            .ignore();
        }
        // The marker expires too, so the list is also rebuilt once a day whatever happens.
        pipe.set_ex(self.epoch_key(), now.timestamp(), 86_400)
            .ignore();
        let mut conn = self.redis.clone();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(redis_error)?;
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
static FORWARD_ONLY_CUTOFF: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
        local current = tonumber(redis.call('GET', KEYS[1]))
        local ttl = redis.call('TTL', KEYS[1])
        local value = tonumber(ARGV[1])
        if current ~= nil and current > value then value = current end
        local expire = tonumber(ARGV[2])
        if ttl > expire then expire = ttl end
        redis.call('SET', KEYS[1], value, 'EX', expire)
        ",
    )
});

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
        self.sql.revoke(jtis).await?;
        let now = Utc::now();
        let mut pipe = redis::pipe();
        for r in jtis {
            pipe.set_ex(self.jti_key(&r.jti), 1, ttl(r.expires_at, now))
                .ignore();
        }
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
        self.sql.revoke_user(user, cutoff, until).await?;
        let mut conn = self.redis.clone();
        let result: redis::RedisResult<()> = FORWARD_ONLY_CUTOFF
            .key(self.cutoff_key(user))
            .arg(cutoff)
            .arg(ttl(until, Utc::now()))
            .invoke_async(&mut conn)
            .await;
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
        if self.stale.load(Ordering::SeqCst) {
            return self.sql_check(jti, user, iat).await;
        }
        // Absent parts read a key that never exists, so the answer keeps one shape.
        let cutoff_key = user
            .map(|u| self.cutoff_key(u))
            .unwrap_or_else(|| format!("{}cutoff:-", self.prefix));
        let jti_key = self.jti_key(jti.unwrap_or("-"));
        let mut conn = self.redis.clone();
        let answer: redis::RedisResult<(Option<i64>, Option<i64>, Option<i64>)> =
            redis::cmd("MGET")
                .arg(jti_key)
                .arg(cutoff_key)
                .arg(self.epoch_key())
                .query_async(&mut conn)
                .await;
        match answer {
            Ok((_, _, None)) => {
                tracing::warn!(
                    "redis lost the revocation list (no epoch marker): rebuilding from SQL"
                );
                self.stale.store(true, Ordering::SeqCst);
                self.sql_check(jti, user, iat).await
            }
            Ok((revoked, cutoff, Some(_))) => {
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

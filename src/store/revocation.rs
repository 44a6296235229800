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
    ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    sea_query::OnConflict,
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
        user_cutoff::Entity::insert(row)
            .on_conflict(
                OnConflict::column(user_cutoff::Column::UserId)
                    .update_columns([
                        user_cutoff::Column::NotBefore,
                        user_cutoff::Column::ExpiresAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await
            .map(|_| ())
            .map_err(err)
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

fn ttl(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    (expires_at - now).num_seconds().max(1) as u64
}

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
        let result: redis::RedisResult<()> = redis::cmd("SET")
            .arg(self.cutoff_key(user))
            .arg(cutoff)
            .arg("EX")
            .arg(ttl(until, Utc::now()))
            .query_async(&mut conn)
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

//! Revocation lists: SQL only (the embedded default), or Redis in front of SQL. SQL is always the
//! record; Redis answers the per-request check in one round trip. A Redis that is unreachable,
//! lost writes, or was flushed is never trusted: checks fall back to SQL until it is rebuilt.
pub(crate) mod bus;
mod memory;
pub mod mirror;
mod redis;
mod sql;

pub use memory::MemoryRevocations;
pub use redis::RedisRevocations;
pub use sql::SqlRevocations;
pub(crate) use sql::next_sequence;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::revocation::RevocationStore;
    use crate::store::redis_conn::redis_connection;
    use crate::store::revocation::redis::ttl;
    use chrono::Utc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    use uuid::Uuid;

    async fn sql() -> SqlRevocations {
        SqlRevocations::new(crate::store::database::in_memory().await)
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
        let store = RedisRevocations::new(sql().await, conn, &prefix, None);
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

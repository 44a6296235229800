//! The embedded setup (SQLite, one process): the revocation list answered from memory, written
//! through to SQL.
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::bus::Bus;
use super::mirror::{Event, Message};
use super::sql::SqlRevocations;
use crate::domain::{
    StoreError,
    revocation::{RevocationStore, RevokedJti},
};

pub struct MemoryRevocations {
    sql: SqlRevocations,
    bus: Bus,
}

impl MemoryRevocations {
    pub fn new(sql: SqlRevocations, bus: Bus) -> Self {
        Self { sql, bus }
    }
}

#[async_trait::async_trait]
impl RevocationStore for MemoryRevocations {
    async fn revoke(&self, jtis: &[RevokedJti]) -> Result<(), StoreError> {
        let seq = self.sql.revoke_counted(jtis).await?;
        self.bus.mirror.apply(&Message {
            seq,
            event: Event::revoked(jtis),
        });
        Ok(())
    }

    async fn revoke_user(
        &self,
        user: Uuid,
        cutoff: i64,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let seq = self.sql.revoke_user_counted(user, cutoff, until).await?;
        self.bus.mirror.apply(&Message {
            seq,
            event: Event::cutoff(user, cutoff, until),
        });
        Ok(())
    }

    async fn is_revoked(
        &self,
        jti: Option<&str>,
        user: Option<Uuid>,
        iat: i64,
    ) -> Result<bool, StoreError> {
        match self.bus.mirror.check(jti, user, iat) {
            Some(answer) => Ok(answer),
            None => self.sql.is_revoked(jti, user, iat).await,
        }
    }

    async fn prune(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.sql.prune(now).await
    }
}

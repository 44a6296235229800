//! What the token rules need from storage: the ledger of issued refresh tokens (families,
//! rotation) and the revocation list (revoked JTIs, per-user cut-offs).
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;

/// An issued refresh token, like SimpleJWT's OutstandingToken (a hash, never the token itself).
#[derive(Debug, Clone, PartialEq)]
pub struct OutstandingToken {
    pub jti: String,
    pub user_id: Uuid,
    /// Every token rotated from one login shares a family.
    pub family: Uuid,
    pub parent_jti: Option<String>,
    /// The access token issued with it, revoked with it.
    pub access_jti: String,
    pub access_expires_at: DateTime<Utc>,
    pub token_sha256: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub grace_used: bool,
}

/// A JTI that must no longer be accepted, until it expires anyway.
#[derive(Debug, Clone, PartialEq)]
pub struct RevokedJti {
    pub jti: String,
    pub user_id: Option<Uuid>,
    pub expires_at: DateTime<Utc>,
}

/// The SQL record of refresh tokens.
#[async_trait::async_trait]
pub trait TokenLedger: Send + Sync {
    async fn record(&self, token: &OutstandingToken) -> Result<(), StoreError>;
    async fn find(&self, jti: &str) -> Result<Option<OutstandingToken>, StoreError>;
    /// Atomically marks `parent_jti` rotated at `now` and records `child`. False when the parent
    /// was rotated already (reuse, or a concurrent refresh that won the race).
    async fn rotate(
        &self,
        parent_jti: &str,
        child: &OutstandingToken,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Atomically spends the single grace of a parent rotated at or after `rotated_since` whose
    /// children are all unrotated, and records `child`. False when the grace is not available.
    async fn rotate_in_grace(
        &self,
        parent_jti: &str,
        child: &OutstandingToken,
        rotated_since: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Marks every token of `family` rotated with its grace spent, so none of them can ever be
    /// refreshed again, and returns them (their JTIs are then revoked).
    async fn close_family(
        &self,
        family: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<OutstandingToken>, StoreError>;
    /// Marks these tokens rotated (if not yet) with their grace spent: none of them can be
    /// refreshed again, whatever the revocation list says.
    async fn close(&self, jtis: &[String], now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Deletes rows that expired before `now`; returns how many.
    async fn prune(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
    /// The user's refresh tokens that are not rotated (nor closed) and expire after `now`.
    async fn live_for_user(
        &self,
        user: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<OutstandingToken>, StoreError>;
}

/// The revocation list, consulted on every verification.
#[async_trait::async_trait]
pub trait RevocationStore: Send + Sync {
    async fn revoke(&self, jtis: &[RevokedJti]) -> Result<(), StoreError>;
    /// Tokens of `user` issued before `cutoff` (unix seconds) are revoked until `until`. A
    /// cut-off only moves forward: an older one arriving late never replaces a newer one.
    async fn revoke_user(
        &self,
        user: Uuid,
        cutoff: i64,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Whether `jti` is revoked, or `user`'s cut-off is after `iat`; one lookup either way.
    async fn is_revoked(
        &self,
        jti: Option<&str>,
        user: Option<Uuid>,
        iat: i64,
    ) -> Result<bool, StoreError>;
    /// Deletes entries that expired before `now`; returns how many.
    async fn prune(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
    /// A cheap round trip to the fast path (Redis), for readiness.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

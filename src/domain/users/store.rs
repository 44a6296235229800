//! What the user rules need from storage.
use std::collections::HashMap;

use uuid::Uuid;

use super::model::{Numbering, User, UserChange, UserPage};
use crate::domain::StoreError;

/// Persistence of users; usernames are unique case-insensitively.
#[async_trait::async_trait]
pub trait UserStore: Send + Sync {
    /// Stores a new user numbered as `numbering` says and answers its number. Fails with
    /// `Conflict("username")` when the name is taken in any case, `Conflict("number")` when a
    /// kept number belongs to someone else.
    async fn insert(&self, user: &User, numbering: Numbering) -> Result<i64, StoreError>;
    async fn by_id(&self, id: Uuid) -> Result<Option<User>, StoreError>;
    /// The user with this integer id.
    async fn by_number(&self, number: i64) -> Result<Option<User>, StoreError>;
    /// The users with these ids that exist, in one round trip.
    async fn by_ids(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, User>, StoreError>;
    /// Exact, case-sensitive match (logins match exactly, like Django).
    async fn by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// Users with this email address (case-insensitive), oldest first.
    async fn by_email(&self, email: &str) -> Result<Vec<User>, StoreError>;
    /// True when the name is taken in any case.
    async fn username_taken(&self, username: &str) -> Result<bool, StoreError>;
    /// Users ordered by number (creation order); `limit` None means all.
    async fn list(&self, offset: u64, limit: Option<u64>) -> Result<UserPage, StoreError>;
    /// Writes only the columns `change` names. Fails with `Conflict("username")` on a taken name.
    async fn change(&self, id: Uuid, change: &UserChange) -> Result<(), StoreError>;
    /// Writes `change` like [`UserStore::change`], but only while the stored password hash is
    /// still `seen_hash` (read before a slow check): a password changed meanwhile stands.
    /// True when the row was written.
    async fn change_if_password_unchanged(
        &self,
        id: Uuid,
        seen_hash: &str,
        change: &UserChange,
    ) -> Result<bool, StoreError>;
    async fn delete(&self, id: Uuid) -> Result<(), StoreError>;
    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;
}

//! Opaque keys like DRF's authtoken: 40 hex characters, only their SHA-256 stored. With one key
//! per user (DRF's behaviour) a repeated login returns the same key without storing it: the key
//! is derived as HMAC(secret, user id + a random nonce kept in the row); logout deletes the row,
//! so the next login draws a new nonce and a new key.
use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::crypto::{MacKey, ct_eq, random_hex, sha256_hex};

use super::{
    DomainError, StoreError,
    sessions::{Client, Handle, SessionLog},
    users::{User, UserService},
};

/// A stored key (its hash, never the key).
#[derive(Debug, Clone, PartialEq)]
pub struct OpaqueToken {
    pub key_sha256: String,
    pub user_id: Uuid,
    /// The derivation nonce (one-key-per-user mode); empty for random keys.
    pub nonce: String,
    /// The device (User-Agent) that logged in.
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The user's credential version when the key was issued; a key from before the user's
    /// current one is refused.
    pub credential_version: i64,
}

#[async_trait::async_trait]
pub trait OpaqueTokenStore: Send + Sync {
    async fn insert(&self, token: &OpaqueToken) -> Result<(), StoreError>;
    async fn by_hash(&self, key_sha256: &str) -> Result<Option<OpaqueToken>, StoreError>;
    /// The user's keys, oldest first.
    async fn for_user(&self, user: Uuid) -> Result<Vec<OpaqueToken>, StoreError>;
    async fn delete(&self, key_sha256: &str) -> Result<(), StoreError>;
    async fn delete_for_user(&self, user: Uuid) -> Result<u64, StoreError>;
    async fn touch(&self, key_sha256: &str, at: DateTime<Utc>) -> Result<(), StoreError>;
}

/// How opaque keys are handed out: the `[tokens]` section.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpaqueRules {
    /// Several keys per user (one per device) instead of DRF's one.
    pub multiple: bool,
    /// Keys expire after this long; None ("0s") never.
    #[serde(
        rename = "token_lifetime",
        deserialize_with = "super::setting_values::optional_duration"
    )]
    pub lifetime: Option<Duration>,
}

/// Why a presented key is refused (DRF's TokenAuthentication messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpaqueError {
    #[error("Invalid token.")]
    Invalid,
    #[error("User inactive or deleted.")]
    Inactive,
}

pub struct OpaqueTokenService {
    store: Arc<dyn OpaqueTokenStore>,
    users: Arc<UserService>,
    /// Derives one-key-per-user keys.
    secret: MacKey,
    rules: OpaqueRules,
    /// Every new key starts a session; uses are noted as `last_used_at` is.
    sessions: Arc<SessionLog>,
}

/// Hex digits of a key's hash that name its session in `/auth/token/sessions/`.
pub const SESSION_ID_LEN: usize = 16;

/// `last_used_at` is written at most this often per key (a write per request would be costly).
const TOUCH_EVERY: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

impl OpaqueTokenService {
    pub fn new(
        store: Arc<dyn OpaqueTokenStore>,
        users: Arc<UserService>,
        secret: MacKey,
        rules: OpaqueRules,
        sessions: Arc<SessionLog>,
    ) -> Self {
        Self {
            store,
            users,
            secret,
            rules,
            sessions,
        }
    }

    /// The user's keys, oldest first (their sessions).
    pub async fn sessions(&self, user: Uuid) -> Result<Vec<OpaqueToken>, DomainError> {
        Ok(self.store.for_user(user).await?)
    }

    /// Deletes the user's key whose session id (the first 16 hex digits of its hash) is `id`;
    /// false when the user has no such key.
    pub async fn end_session(&self, user: Uuid, id: &str) -> Result<bool, DomainError> {
        if id.len() != SESSION_ID_LEN {
            return Ok(false);
        }
        let rows = self.store.for_user(user).await?;
        let Some(row) = rows.iter().find(|t| t.key_sha256.starts_with(id)) else {
            return Ok(false);
        };
        self.store.delete(&row.key_sha256).await?;
        Ok(true)
    }

    /// The user's keys that still work (not expired, not from before a credential change):
    /// their sessions.
    pub async fn live_keys(&self, user: &User) -> Result<Vec<OpaqueToken>, DomainError> {
        let now = Utc::now();
        let mut keys = self.store.for_user(user.id).await?;
        keys.retain(|k| {
            k.expires_at.is_none_or(|e| e > now) && k.credential_version == user.credential_version
        });
        Ok(keys)
    }

    /// Deletes one key, everywhere (a session ended).
    pub async fn end_key(&self, key_sha256: &str) -> Result<(), DomainError> {
        Ok(self.store.delete(key_sha256).await?)
    }

    /// The key of a user whose login is complete (a fresh one, or DRF's same key again): with
    /// `reset`, earlier keys are deleted first (drf_create_token -r). A new key starts a
    /// session; DRF's same key again continues its own. Every opaque login path ends here.
    pub async fn key_for(
        &self,
        user: &User,
        client: &Client<'_>,
        reset: bool,
    ) -> Result<String, DomainError> {
        if reset {
            self.store.delete_for_user(user.id).await?;
        }
        let now = Utc::now();
        if !self.rules.multiple {
            for row in self.store.for_user(user.id).await? {
                // A DRF key imported from Django: Tessera cannot derive (nor hand back) it, so
                // it stays beside the derived one until a logout or credential change.
                if row.nonce == crate::domain::import::IMPORTED_KEY_NONCE {
                    continue;
                }
                let key = self.derive(user.id, &row.nonce);
                let usable = row.expires_at.is_none_or(|e| e > now)
                    && row.credential_version == user.credential_version;
                if usable && ct_eq(sha256_hex(&key).as_bytes(), row.key_sha256.as_bytes()) {
                    let session = Handle::Key(row.key_sha256).session_id();
                    self.sessions.used(session, client, None).await?;
                    return Ok(key);
                }
                // Expired, from before a credential change, or derived with another secret.
                self.store.delete(&row.key_sha256).await?;
            }
        }
        let (key, nonce) = if self.rules.multiple {
            (random_hex(20), String::new())
        } else {
            let nonce = random_hex(16);
            (self.derive(user.id, &nonce), nonce)
        };
        let row = OpaqueToken {
            key_sha256: sha256_hex(&key),
            user_id: user.id,
            nonce,
            name: client.user_agent.chars().take(200).collect(),
            created_at: now,
            last_used_at: None,
            expires_at: self.rules.lifetime.map(|l| now + l),
            // The version read with the password: a change that landed meanwhile outdates it.
            credential_version: user.credential_version,
        };
        self.store.insert(&row).await?;
        let handle = Handle::Key(row.key_sha256);
        self.sessions
            .started(user, &handle, client, row.expires_at)
            .await?;
        Ok(key)
    }

    /// The active user behind a presented key, and the key's hash. `client` is noted as the
    /// session's last use when `last_used_at` is (at most once a `TOUCH_EVERY`).
    pub async fn authenticate(
        &self,
        key: &str,
        client: &Client<'_>,
    ) -> Result<(User, String), DomainError> {
        let hash = sha256_hex(key);
        let row = self
            .store
            .by_hash(&hash)
            .await?
            .ok_or(DomainError::Opaque(OpaqueError::Invalid))?;
        let now = Utc::now();
        if row.expires_at.is_some_and(|e| e <= now) {
            self.store.delete(&hash).await?;
            return Err(OpaqueError::Invalid.into());
        }
        let user = match self.users.find(row.user_id).await? {
            Some(user) if user.is_active => user,
            _ => return Err(OpaqueError::Inactive.into()),
        };
        // Issued before the user's credentials changed (a login racing a password change):
        // the key ends like the sessions the change ended.
        if row.credential_version != user.credential_version {
            self.store.delete(&hash).await?;
            return Err(OpaqueError::Invalid.into());
        }
        if row.last_used_at.is_none_or(|t| now - t >= TOUCH_EVERY) {
            self.store.touch(&hash, now).await?;
            let session = Handle::Key(hash.clone()).session_id();
            self.sessions.used(session, client, None).await?;
        }
        Ok((user, hash))
    }

    /// Logout: the presented key only when several are allowed, else all of the user's keys.
    pub async fn logout(&self, user: Uuid, presented: Option<&str>) -> Result<(), DomainError> {
        match presented {
            Some(hash) if self.rules.multiple => self.store.delete(hash).await?,
            _ => {
                self.store.delete_for_user(user).await?;
            }
        }
        Ok(())
    }

    /// Deletes every key of `user` (password change, account lock).
    pub async fn revoke_all(&self, user: Uuid) -> Result<(), DomainError> {
        self.store.delete_for_user(user).await?;
        Ok(())
    }

    fn derive(&self, user: Uuid, nonce: &str) -> String {
        self.secret
            .mac_hex(&[user.as_bytes(), nonce.as_bytes()], 20)
    }
}

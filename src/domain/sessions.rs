//! Sessions: every login is one, a JWT family (the refresh-token chain) or an opaque key. The
//! session store keeps what the ledger and the key rows do not (when and from where it logged in
//! and was last used); whether a session is still alive is always read from the ledger, the
//! revocation list and the keys themselves, so nothing that can no longer be used is listed and
//! families or keys without details (issued before sessions were recorded, or adopted from a
//! Django service) are listed too.
use std::{collections::HashMap, net::IpAddr, sync::Arc};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::crypto::digest_uuid;

use super::{
    DomainError, StoreError,
    opaque::OpaqueTokenService,
    tokens::TokenService,
    users::{User, UserRef, UserService},
};

/// The longest User-Agent kept, in bytes (cut on a character boundary).
pub const USER_AGENT_LIMIT: usize = 256;

/// Where a request comes from, as the HTTP layer saw it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Client<'a> {
    pub ip: Option<IpAddr>,
    pub user_agent: &'a str,
}

/// A client as recorded: its address as text and its User-Agent, cut short.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub ip: Option<String>,
    pub user_agent: String,
}

impl From<&Client<'_>> for Seen {
    fn from(client: &Client<'_>) -> Self {
        let ua = client.user_agent;
        Self {
            ip: client.ip.map(|ip| ip.to_string()),
            user_agent: ua[..ua.floor_char_boundary(USER_AGENT_LIMIT)].to_owned(),
        }
    }
}

/// What a session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handle {
    /// A JWT family: the session's id is the family's.
    Family(Uuid),
    /// An opaque key, by the SHA-256 of the key.
    Key(String),
}

impl Handle {
    /// The session's id: a family's own id, or a UUID derived from the key's hash.
    pub fn session_id(&self) -> Uuid {
        match self {
            Handle::Family(family) => *family,
            Handle::Key(hash) => digest_uuid(hash),
        }
    }

    pub fn kind(&self) -> SessionKind {
        match self {
            Handle::Family(_) => SessionKind::Jwt,
            Handle::Key(_) => SessionKind::Token,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// An access/refresh pair and the tokens rotated from it.
    Jwt,
    /// An opaque key (`Token <key>`).
    Token,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Jwt => "jwt",
            SessionKind::Token => "token",
        }
    }
}

/// A session's recorded details.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: SessionKind,
    /// The key's hash, for an opaque key's session.
    pub key_sha256: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub login: Seen,
    pub last: Seen,
    pub expires_at: Option<DateTime<Utc>>,
    /// The user's credential version at login: a login that raced a credential change started
    /// a session that the change ended.
    pub credential_version: i64,
}

#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    /// Records a new session; `Conflict` when its id is recorded already.
    async fn insert(&self, session: &SessionRecord) -> Result<(), StoreError>;
    /// Notes a use (a refresh, a key's throttled touch); `expires_at` replaces the expiry when
    /// given. A session without a record is left without one.
    async fn used(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        client: &Seen,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError>;
    async fn for_user(&self, user: Uuid) -> Result<Vec<SessionRecord>, StoreError>;
    async fn delete(&self, ids: &[Uuid]) -> Result<(), StoreError>;
    /// Deletes records of sessions that expired before `now` or whose family, key or user is
    /// gone, or that a credential change ended; returns how many.
    async fn prune(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Records sessions as logins start and use them: the one step every login path takes
/// (`TokenService::login`, `OpaqueTokenService::key_for`).
pub struct SessionLog {
    store: Option<Arc<dyn SessionStore>>,
    enabled: bool,
}

impl SessionLog {
    /// `store` None (unit tests) records nothing; `enabled` off (`sessions.enabled`) records
    /// nothing but still prunes what an earlier run recorded.
    pub fn new(store: Option<Arc<dyn SessionStore>>, enabled: bool) -> Self {
        Self { store, enabled }
    }

    pub fn enabled(&self) -> bool {
        self.enabled && self.store.is_some()
    }

    fn recording(&self) -> Option<&Arc<dyn SessionStore>> {
        self.store.as_ref().filter(|_| self.enabled)
    }

    /// A login of `user` from `client` started the session `handle`.
    pub async fn started(
        &self,
        user: &User,
        handle: &Handle,
        client: &Client<'_>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), DomainError> {
        let Some(store) = self.recording() else {
            return Ok(());
        };
        let now = Utc::now();
        let seen = Seen::from(client);
        let record = SessionRecord {
            id: handle.session_id(),
            user_id: user.id,
            kind: handle.kind(),
            key_sha256: match handle {
                Handle::Key(hash) => Some(hash.clone()),
                Handle::Family(_) => None,
            },
            created_at: now,
            last_used_at: now,
            login: seen.clone(),
            last: seen,
            expires_at,
            credential_version: user.credential_version,
        };
        match store.insert(&record).await {
            Ok(()) => Ok(()),
            // The same key logged in again (DRF's one key per user): the same session.
            Err(StoreError::Conflict(_)) => {
                Ok(store.used(record.id, now, &record.last, expires_at).await?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The session `id` was used again from `client`.
    pub async fn used(
        &self,
        id: Uuid,
        client: &Client<'_>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), DomainError> {
        let Some(store) = self.recording() else {
            return Ok(());
        };
        Ok(store
            .used(id, Utc::now(), &Seen::from(client), expires_at)
            .await?)
    }

    pub async fn prune(&self, now: DateTime<Utc>) -> Result<u64, DomainError> {
        match &self.store {
            Some(store) => Ok(store.prune(now).await?),
            None => Ok(0),
        }
    }
}

/// Why a session operation is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No live session of this user has this id (another user's included: existence is not
    /// revealed).
    #[error("No Session matches the given query.")]
    NotFound,
    /// `sessions.enabled` is off: the endpoints do not exist.
    #[error("sessions are off")]
    Off,
}

/// One live session, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionView {
    pub id: Uuid,
    pub kind: SessionKind,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub login: Seen,
    pub last: Seen,
    pub expires_at: Option<DateTime<Utc>>,
    pub current: bool,
    handle: Handle,
}

/// Lists and ends sessions: the user's own, or any user's for staff.
pub struct SessionService {
    log: Arc<SessionLog>,
    tokens: Arc<TokenService>,
    opaque: Arc<OpaqueTokenService>,
    users: Arc<UserService>,
}

impl SessionService {
    pub fn new(
        log: Arc<SessionLog>,
        tokens: Arc<TokenService>,
        opaque: Arc<OpaqueTokenService>,
        users: Arc<UserService>,
    ) -> Self {
        Self {
            log,
            tokens,
            opaque,
            users,
        }
    }

    fn ensure_on(&self) -> Result<(), DomainError> {
        if self.log.enabled() {
            Ok(())
        } else {
            Err(SessionError::Off.into())
        }
    }

    /// The user a staff member names (None: an id that names no possible user): 403 for
    /// non-staff whatever the id (nothing is looked up), then the user paths' answers: a
    /// malformed id `Hidden`, an unknown one `NotFound`.
    pub async fn user_for_staff(
        &self,
        actor: &User,
        id: Option<UserRef>,
    ) -> Result<User, DomainError> {
        self.ensure_on()?;
        if !actor.is_staff {
            return Err(DomainError::Forbidden);
        }
        let id = id.ok_or(DomainError::Hidden)?;
        self.users.lookup(id).await?.ok_or(DomainError::NotFound)
    }

    /// The user's live sessions, oldest first; `current` marks the caller's own.
    pub async fn list(
        &self,
        user: &User,
        current: Option<Uuid>,
    ) -> Result<Vec<SessionView>, DomainError> {
        self.ensure_on()?;
        let records = match &self.log.store {
            Some(store) => store.for_user(user.id).await?,
            None => Vec::new(),
        };
        let mut records: HashMap<Uuid, SessionRecord> =
            records.into_iter().map(|r| (r.id, r)).collect();
        let mut views = Vec::new();
        for family in self.tokens.live_families(user.id).await? {
            let handle = Handle::Family(family.family);
            let record = records.remove(&handle.session_id());
            // Started by a login that raced a credential change: its tokens are refused.
            if record
                .as_ref()
                .is_some_and(|r| r.credential_version != user.credential_version)
            {
                continue;
            }
            let last_refresh = family.refreshed_at;
            views.push(SessionView {
                id: handle.session_id(),
                kind: SessionKind::Jwt,
                created_at: record.as_ref().map_or(last_refresh, |r| r.created_at),
                last_used_at: Some(
                    record
                        .as_ref()
                        .map_or(last_refresh, |r| r.last_used_at.max(last_refresh)),
                ),
                login: record.as_ref().map(|r| r.login.clone()).unwrap_or_default(),
                last: record.map(|r| r.last).unwrap_or_default(),
                expires_at: Some(family.expires_at),
                current: current == Some(handle.session_id()),
                handle,
            });
        }
        for key in self.opaque.live_keys(user).await? {
            let handle = Handle::Key(key.key_sha256);
            let record = records.remove(&handle.session_id());
            views.push(SessionView {
                id: handle.session_id(),
                kind: SessionKind::Token,
                created_at: key.created_at,
                last_used_at: key.last_used_at,
                login: record.as_ref().map_or_else(
                    || Seen {
                        ip: None,
                        user_agent: key.name.clone(),
                    },
                    |r| r.login.clone(),
                ),
                last: record.map(|r| r.last).unwrap_or_default(),
                expires_at: key.expires_at,
                current: current == Some(handle.session_id()),
                handle,
            });
        }
        views.sort_by_key(|v| (v.created_at, v.id));
        Ok(views)
    }

    /// Ends the user's session `id` everywhere: its family is revoked (every refresh and access
    /// token of it) or its key deleted.
    pub async fn end(&self, user: &User, id: Uuid, actor: &User) -> Result<(), DomainError> {
        let sessions = self.list(user, None).await?;
        let session = sessions
            .into_iter()
            .find(|s| s.id == id)
            .ok_or(SessionError::NotFound)?;
        self.end_each(user, &[session], actor).await
    }

    /// Ends every session of the user but `keep` (the caller's own, or None for all).
    pub async fn end_all(
        &self,
        user: &User,
        keep: Option<Uuid>,
        actor: &User,
    ) -> Result<(), DomainError> {
        let sessions = self.list(user, keep).await?;
        let ending: Vec<SessionView> = sessions.into_iter().filter(|s| !s.current).collect();
        self.end_each(user, &ending, actor).await
    }

    async fn end_each(
        &self,
        user: &User,
        sessions: &[SessionView],
        actor: &User,
    ) -> Result<(), DomainError> {
        let ended_by = if actor.id == user.id { "self" } else { "staff" };
        for session in sessions {
            match &session.handle {
                Handle::Family(family) => self.tokens.revoke_family(*family).await?,
                Handle::Key(hash) => self.opaque.end_key(hash).await?,
            }
            tracing::info!(
                target: "tessera::audit",
                user_id = %user.id,
                actor_id = %actor.id,
                session_id = %session.id,
                kind = session.kind.as_str(),
                ended_by,
                "session ended"
            );
        }
        // The records go once the tokens are refused (a failure above keeps them listed).
        if let Some(store) = &self.log.store {
            let ids: Vec<Uuid> = sessions.iter().map(|s| s.id).collect();
            store.delete(&ids).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_user_agent_is_cut_on_a_character_boundary() {
        let ua = "é".repeat(200); // 400 bytes, 2 a character
        let seen = Seen::from(&Client {
            ip: None,
            user_agent: &ua,
        });
        assert_eq!(seen.user_agent.len(), USER_AGENT_LIMIT);
        assert!(seen.user_agent.chars().all(|c| c == 'é'));
        let odd = format!("a{ua}");
        let seen = Seen::from(&Client {
            ip: None,
            user_agent: &odd,
        });
        assert_eq!(seen.user_agent.len(), USER_AGENT_LIMIT - 1);
    }

    #[test]
    fn a_key_session_id_is_stable_and_differs_from_the_hash() {
        let hash = crate::crypto::sha256_hex("key");
        let id = Handle::Key(hash.clone()).session_id();
        assert_eq!(id, Handle::Key(hash.clone()).session_id());
        assert!(!hash.starts_with(&id.simple().to_string()[..16]));
    }
}

//! Rotation, the reuse grace and reuse detection against in-memory fakes of the ledger, the
//! revocation list and the user store: the rules alone, no SQL, no HTTP.
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use super::*;
use crate::domain::{
    StoreError,
    keys::KeyRing,
    passwords::{PasswordHasher, PasswordRules, PasswordSettings},
    users::{IdKind, LoginField, Numbering, UserChange, UserPage, UserRules, UserStore},
};

#[derive(Default)]
struct MemLedger(Mutex<HashMap<String, OutstandingToken>>);

#[async_trait::async_trait]
impl TokenLedger for MemLedger {
    async fn record(&self, token: &OutstandingToken) -> Result<(), StoreError> {
        let mut rows = self.0.lock().unwrap();
        if rows.contains_key(&token.jti) {
            return Err(StoreError::Conflict("jti"));
        }
        rows.insert(token.jti.clone(), token.clone());
        Ok(())
    }
    async fn find(&self, jti: &str) -> Result<Option<OutstandingToken>, StoreError> {
        Ok(self.0.lock().unwrap().get(jti).cloned())
    }
    async fn rotate(
        &self,
        parent_jti: &str,
        child: &OutstandingToken,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut rows = self.0.lock().unwrap();
        match rows.get_mut(parent_jti) {
            Some(parent) if parent.rotated_at.is_none() => {
                parent.rotated_at = Some(now);
                rows.insert(child.jti.clone(), child.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn rotate_in_grace(
        &self,
        parent_jti: &str,
        child: &OutstandingToken,
        rotated_since: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut rows = self.0.lock().unwrap();
        let grandparent = rows
            .values()
            .any(|r| r.parent_jti.as_deref() == Some(parent_jti) && r.rotated_at.is_some());
        match rows.get_mut(parent_jti) {
            Some(parent)
                if !grandparent
                    && !parent.grace_used
                    && parent.rotated_at.is_some_and(|t| t >= rotated_since) =>
            {
                parent.grace_used = true;
                rows.insert(child.jti.clone(), child.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn close_family(
        &self,
        family: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<OutstandingToken>, StoreError> {
        let mut rows = self.0.lock().unwrap();
        let mut closed = Vec::new();
        for row in rows.values_mut().filter(|r| r.family == family) {
            row.grace_used = true;
            row.rotated_at.get_or_insert(now);
            closed.push(row.clone());
        }
        Ok(closed)
    }
    async fn close(&self, jtis: &[String], now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut rows = self.0.lock().unwrap();
        for jti in jtis {
            if let Some(row) = rows.get_mut(jti) {
                row.grace_used = true;
                row.rotated_at.get_or_insert(now);
            }
        }
        Ok(())
    }
    async fn prune(&self, _now: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn live_for_user(
        &self,
        user: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<OutstandingToken>, StoreError> {
        let rows = self.0.lock().unwrap();
        Ok(rows
            .values()
            .filter(|r| r.user_id == user && r.rotated_at.is_none() && r.expires_at > now)
            .cloned()
            .collect())
    }
}

#[derive(Default)]
struct MemRevocations(Mutex<(HashSet<String>, HashMap<Uuid, i64>)>);

#[async_trait::async_trait]
impl RevocationStore for MemRevocations {
    async fn revoke(&self, jtis: &[RevokedJti]) -> Result<(), StoreError> {
        let mut list = self.0.lock().unwrap();
        list.0.extend(jtis.iter().map(|r| r.jti.clone()));
        Ok(())
    }
    async fn revoke_user(
        &self,
        user: Uuid,
        cutoff: i64,
        _until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut list = self.0.lock().unwrap();
        let entry = list.1.entry(user).or_insert(cutoff);
        *entry = (*entry).max(cutoff);
        Ok(())
    }
    async fn is_revoked(
        &self,
        jti: Option<&str>,
        user: Option<Uuid>,
        iat: i64,
    ) -> Result<bool, StoreError> {
        let list = self.0.lock().unwrap();
        Ok(jti.is_some_and(|j| list.0.contains(j))
            || user.and_then(|u| list.1.get(&u)).is_some_and(|c| iat < *c))
    }
    async fn prune(&self, _now: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(0)
    }
}

/// One user, always found (the refresh path only reads by id).
struct OneUser(User);

#[async_trait::async_trait]
impl UserStore for OneUser {
    async fn insert(&self, _: &User, _: Numbering) -> Result<i64, StoreError> {
        Err(StoreError::Internal("read-only fake".into()))
    }
    async fn by_number(&self, number: i64) -> Result<Option<User>, StoreError> {
        Ok((number == self.0.number).then(|| self.0.clone()))
    }
    async fn by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        Ok((id == self.0.id).then(|| self.0.clone()))
    }
    async fn by_ids(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, User>, StoreError> {
        Ok(ids
            .iter()
            .filter(|id| **id == self.0.id)
            .map(|id| (*id, self.0.clone()))
            .collect())
    }
    async fn by_username(&self, name: &str) -> Result<Option<User>, StoreError> {
        Ok((name == self.0.username).then(|| self.0.clone()))
    }
    async fn by_email(&self, _: &str) -> Result<Vec<User>, StoreError> {
        Ok(Vec::new())
    }
    async fn username_taken(&self, name: &str) -> Result<bool, StoreError> {
        Ok(name == self.0.username)
    }
    async fn list(&self, _: u64, _: Option<u64>) -> Result<UserPage, StoreError> {
        Ok(UserPage {
            users: vec![self.0.clone()],
            total: 1,
        })
    }
    async fn change(&self, _: Uuid, _: &UserChange) -> Result<(), StoreError> {
        Err(StoreError::Internal("read-only fake".into()))
    }
    async fn change_if_password_unchanged(
        &self,
        _: Uuid,
        _: &str,
        _: &UserChange,
    ) -> Result<bool, StoreError> {
        Err(StoreError::Internal("read-only fake".into()))
    }
    async fn delete(&self, _: Uuid) -> Result<(), StoreError> {
        Err(StoreError::Internal("read-only fake".into()))
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

fn user() -> User {
    User {
        id: Uuid::now_v7(),
        username: "alice".into(),
        email: String::new(),
        password_hash: String::new(),
        first_name: String::new(),
        last_name: String::new(),
        is_active: true,
        is_staff: false,
        is_superuser: false,
        date_joined: Utc::now(),
        last_login: None,
        credential_version: 0,
        number: 42,
    }
}

fn service(user: &User, reuse_grace: Duration) -> TokenService {
    let passwords = PasswordSettings {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
        workers: 1,
        queue: 1,
        nice: 0,
        min_length: 8,
        max_similarity: 0.7,
    };
    let users = UserService::new(
        Arc::new(OneUser(user.clone())),
        Arc::new(PasswordHasher::new(&passwords).unwrap()),
        PasswordRules::new(&passwords),
        UserRules {
            hide_users: true,
            login_field: LoginField::Username,
            user_id: IdKind::Uuid,
        },
        None,
    );
    let rules = JwtRules {
        access_lifetime: Duration::from_secs(300),
        refresh_lifetime: Duration::from_secs(86_400),
        rotate_refresh_tokens: true,
        blacklist_after_rotation: true,
        update_last_login: false,
        reuse_grace,
        leeway: Duration::ZERO,
        issuer: None,
        audience: None,
        user_id_claim: "user_id".into(),
        token_type_claim: "token_type".into(),
        jti_claim: "jti".into(),
        claims: ExtraClaims::default(),
    };
    let keys = KeyRing::new(
        jsonwebtoken::Algorithm::HS256,
        b"unit-test-signing-key-0123456789abcdef",
        &[],
        false,
    )
    .unwrap();
    TokenService::new(
        rules,
        keys,
        Arc::new(MemLedger::default()),
        Arc::new(MemRevocations::default()),
        Arc::new(users),
        None,
        Arc::new(crate::domain::sessions::SessionLog::new(None, false)),
    )
}

/// A login's refresh token, recorded in the ledger.
async fn login(tokens: &TokenService, user: &User) -> String {
    let (pair, row) = tokens
        .mint(
            user,
            &Map::new(),
            &Map::new(),
            crate::crypto::new_family(),
            None,
            Utc::now(),
        )
        .unwrap();
    tokens.ledger.record(&row).await.unwrap();
    pair.refresh
}

/// The refresh token a successful rotation of `refresh` answers.
async fn rotated(tokens: &TokenService, refresh: &str) -> String {
    tokens
        .refresh(refresh, &Default::default())
        .await
        .unwrap()
        .refresh
        .unwrap()
}

fn blacklisted(result: Result<Refreshed, DomainError>) -> bool {
    matches!(result, Err(DomainError::Token(TokenError::Blacklisted)))
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_its_whole_family() {
    let alice = user();
    let tokens = service(&alice, Duration::ZERO);
    let first = login(&tokens, &alice).await;
    let second = rotated(&tokens, &first).await;
    assert!(
        blacklisted(tokens.refresh(&first, &Default::default()).await),
        "reuse"
    );
    assert!(
        blacklisted(tokens.refresh(&second, &Default::default()).await),
        "the family went with it"
    );
}

#[tokio::test]
async fn the_grace_lets_the_parent_through_once_and_never_a_grandparent() {
    let alice = user();
    let tokens = service(&alice, Duration::from_secs(60));
    let parent = login(&tokens, &alice).await;
    let child = rotated(&tokens, &parent).await;
    let twin = rotated(&tokens, &parent).await;
    assert_ne!(child, twin);
    assert!(
        blacklisted(tokens.refresh(&parent, &Default::default()).await),
        "only once"
    );

    let parent = login(&tokens, &alice).await;
    let child = rotated(&tokens, &parent).await;
    let _grandchild = tokens.refresh(&child, &Default::default()).await.unwrap();
    assert!(
        blacklisted(tokens.refresh(&parent, &Default::default()).await),
        "a grandparent never passes"
    );
}

#[tokio::test]
async fn of_concurrent_refreshes_exactly_one_wins() {
    let alice = user();
    let tokens = Arc::new(service(&alice, Duration::ZERO));
    let parent = login(&tokens, &alice).await;
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let tokens = tokens.clone();
            let parent = parent.clone();
            tokio::spawn(async move { tokens.refresh(&parent, &Default::default()).await.is_ok() })
        })
        .collect();
    let mut winners = 0;
    for attempt in attempts {
        winners += usize::from(attempt.await.unwrap());
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn a_token_from_an_older_credential_version_is_refused() {
    let alice = user();
    let tokens = service(&alice, Duration::ZERO);
    let before = login(&tokens, &alice).await;
    // The same ledger and list, and the user now at a newer version (a password change
    // landed after the login had read the row).
    let changed = User {
        credential_version: 1,
        ..alice.clone()
    };
    let mut now = service(&changed, Duration::ZERO);
    now.ledger = tokens.ledger.clone();
    now.revocations = tokens.revocations.clone();
    assert!(blacklisted(now.refresh(&before, &Default::default()).await));
    assert!(
        tokens.refresh(&before, &Default::default()).await.is_ok(),
        "the same token under the version it was issued with"
    );
}

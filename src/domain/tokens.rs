//! JWTs the way SimpleJWT issues them, verified strictly: pinned algorithm, no key-bearing
//! headers, required claims, explicit token types; refresh rotation with reuse detection.
use std::{sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value};
use tessera_verify::Policy;
use uuid::Uuid;

use crate::crypto::{new_family, new_jti, sha256_hex};

use super::{
    DomainError,
    groups::GroupStore,
    keys::KeyRing,
    revocation::{OutstandingToken, RevocationStore, RevokedJti, TokenLedger},
    setting_values::{duration, optional_text, text},
    users::{User, UserService},
};

pub use tessera_verify::{Claims, TokenType, VerifyError};

/// Why a token is refused: the offline checks (the same as downstream services run, from
/// `tessera-verify`), then what only Tessera knows. The messages are SimpleJWT's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Refused(#[from] VerifyError),
    #[error("Token is blacklisted")]
    Blacklisted,
    #[error("User not found")]
    UserNotFound,
    #[error("User is inactive")]
    UserInactive,
}

/// SimpleJWT's settings, in snake_case: the token rules of the `[jwt]` section, read from it
/// by serde (the key material around them is `settings::JwtSettings`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct JwtRules {
    #[serde(rename = "access_token_lifetime", deserialize_with = "duration")]
    pub access_lifetime: Duration,
    #[serde(rename = "refresh_token_lifetime", deserialize_with = "duration")]
    pub refresh_lifetime: Duration,
    pub rotate_refresh_tokens: bool,
    pub blacklist_after_rotation: bool,
    pub update_last_login: bool,
    /// How long a rotated refresh token may be presented once more (0: never).
    #[serde(deserialize_with = "duration")]
    pub reuse_grace: Duration,
    #[serde(deserialize_with = "duration")]
    pub leeway: Duration,
    #[serde(deserialize_with = "optional_text")]
    pub issuer: Option<String>,
    #[serde(deserialize_with = "optional_text")]
    pub audience: Option<String>,
    #[serde(deserialize_with = "text")]
    pub user_id_claim: String,
    #[serde(deserialize_with = "text")]
    pub token_type_claim: String,
    #[serde(deserialize_with = "text")]
    pub jti_claim: String,
    pub claims: ExtraClaims,
}

/// User facts put into access tokens beyond SimpleJWT's claims (`[jwt.claims]`).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraClaims {
    pub groups: bool,
    pub username: bool,
    pub email: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
}

/// The claim that carries the user's credential version (security stamp) in tokens Tessera
/// mints. Tokens minted elsewhere (adopted from a Django service) have none and are ended by
/// the per-user cut-off instead.
pub const CREDENTIAL_VERSION_CLAIM: &str = "cv";

/// The credential version a token was issued under; None for tokens without the claim.
fn stamp_of(claims: &Claims) -> Result<Option<i64>, TokenError> {
    match claims.raw.get(CREDENTIAL_VERSION_CLAIM) {
        None => Ok(None),
        Some(value) => value.as_i64().map(Some).ok_or(VerifyError::Invalid.into()),
    }
}

/// Refuses a token issued under an older credential version than the user's: a login that
/// raced a password change, logout everywhere or deactivation ends with the sessions it ended.
fn check_stamp(claims: &Claims, user: &User) -> Result<(), TokenError> {
    match stamp_of(claims)? {
        Some(stamp) if stamp != user.credential_version => Err(TokenError::Blacklisted),
        _ => Ok(()),
    }
}

/// Kept beyond a revoked token's acceptance window (clock skew between instances and stores).
const REVOCATION_MARGIN: Duration = Duration::from_secs(60);

/// When a token's `exp` falls, as a timestamp for the ledger and the revocation list.
fn expires_at(claims: &Claims) -> DateTime<Utc> {
    Utc.timestamp_opt(claims.exp, 0)
        .single()
        .unwrap_or_else(Utc::now)
}

/// An access/refresh pair.
pub struct TokenPair {
    pub access: String,
    pub refresh: String,
}

/// What a refresh answers: a new access token, and a new refresh token when rotating.
pub struct Refreshed {
    pub access: String,
    pub refresh: Option<String>,
}

/// Issues, refreshes, verifies and revokes tokens.
pub struct TokenService {
    rules: JwtRules,
    keys: KeyRing,
    /// What `decode` checks besides the signature, from `rules` and the key ring's algorithm.
    policy: Policy,
    ledger: Arc<dyn TokenLedger>,
    revocations: Arc<dyn RevocationStore>,
    users: Arc<UserService>,
    /// Group names for the `groups` claim (read from SQL: a token outlives any cache).
    groups: Option<Arc<dyn GroupStore>>,
}

impl TokenService {
    pub fn new(
        rules: JwtRules,
        keys: KeyRing,
        ledger: Arc<dyn TokenLedger>,
        revocations: Arc<dyn RevocationStore>,
        users: Arc<UserService>,
        groups: Option<Arc<dyn GroupStore>>,
    ) -> Self {
        let policy = Policy {
            algorithm: keys.algorithm,
            issuer: rules.issuer.clone(),
            audience: rules.audience.clone(),
            leeway: rules.leeway,
            user_id_claim: rules.user_id_claim.clone(),
            token_type_claim: rules.token_type_claim.clone(),
            jti_claim: rules.jti_claim.clone(),
        };
        Self {
            rules,
            keys,
            policy,
            ledger,
            revocations,
            users,
            groups,
        }
    }

    /// The user a token names. Without the claim, SimpleJWT's "no recognizable user
    /// identification"; with one that names no possible user (null, a number, not a UUID),
    /// "User not found", as for an unknown id.
    fn user_of(&self, claims: &Claims) -> Result<Uuid, TokenError> {
        if !claims.raw.contains_key(&self.policy.user_id_claim) {
            return Err(VerifyError::NoUser.into());
        }
        claims
            .user_id
            .as_deref()
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or(TokenError::UserNotFound)
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Username and password for a fresh pair (a new family). Any failure, including an inactive
    /// user, is `InvalidCredentials`, so nothing is revealed.
    pub async fn obtain(
        &self,
        username: &str,
        password: &str,
        ip: Option<std::net::IpAddr>,
    ) -> Result<TokenPair, DomainError> {
        let mut user = self.users.authenticate(username, password, ip).await?;
        if self.rules.update_last_login {
            self.users.record_login(&mut user).await?;
        }
        let extra = self.access_claims(&user).await?;
        let (pair, row) = self.mint(&user, &extra, new_family(), None, Utc::now())?;
        self.ledger.record(&row).await?;
        Ok(pair)
    }

    /// Rotates a refresh token (or only issues an access token when rotation is off). A token
    /// presented after it was rotated revokes its whole family, unless the grace lets it through.
    pub async fn refresh(&self, token: &str) -> Result<Refreshed, DomainError> {
        let claims = self.decode(token, Some(TokenType::Refresh))?;
        let user_id = self.user_of(&claims)?;
        let now = Utc::now();
        if !self.rules.rotate_refresh_tokens {
            self.ensure_not_revoked(&claims, Some(user_id)).await?;
            let user = self.active_user(user_id).await?;
            check_stamp(&claims, &user)?;
            let extra = self.access_claims(&user).await?;
            let stamp = Some(user.credential_version);
            let (access, _, _) =
                self.encode_with(TokenType::Access, user_id, stamp, now, &extra)?;
            return Ok(Refreshed {
                access,
                refresh: None,
            });
        }
        // The ledger decides first: a rotated token is reuse even though it is also blacklisted.
        let parent = match self.ledger.find(&claims.jti).await? {
            Some(row) => row,
            None => self.adopt(token, &claims, user_id, now).await?,
        };
        if parent.rotated_at.is_none() {
            self.ensure_not_revoked(&claims, Some(user_id)).await?;
        }
        // Claims are rebuilt from the database on every refresh: a group change shows here.
        let user = self.active_user(user_id).await?;
        check_stamp(&claims, &user)?;
        let extra = self.access_claims(&user).await?;
        let (pair, child) =
            self.mint(&user, &extra, parent.family, Some(parent.jti.clone()), now)?;
        if parent.rotated_at.is_none() && self.ledger.rotate(&parent.jti, &child, now).await? {
            if self.rules.blacklist_after_rotation {
                // The rotation is committed: the client must get its new pair even if this fails
                // (the ledger already refuses the parent on refresh).
                let revoked = RevokedJti {
                    jti: parent.jti,
                    user_id: Some(user_id),
                    expires_at: self.revoked_until(expires_at(&claims)),
                };
                if let Err(e) = self.revocations.revoke(&[revoked]).await {
                    tracing::error!(error = %e, "could not blacklist a rotated refresh token");
                }
            }
            tracing::info!(target: "tessera::audit", user_id = %user_id, "refresh token rotated");
            return Ok(Refreshed {
                access: pair.access,
                refresh: Some(pair.refresh),
            });
        }
        // Already rotated (or a concurrent refresh won the race): the grace, or reuse.
        let in_grace = !self.rules.reuse_grace.is_zero()
            && !self
                .revocations
                .is_revoked(None, Some(user_id), claims.iat.unwrap_or(i64::MIN))
                .await?
            && self
                .ledger
                .rotate_in_grace(&parent.jti, &child, now - self.rules.reuse_grace)
                .await?;
        if in_grace {
            tracing::info!(target: "tessera::audit", user_id = %user_id, "refresh token rotated");
            return Ok(Refreshed {
                access: pair.access,
                refresh: Some(pair.refresh),
            });
        }
        tracing::warn!(target: "tessera::audit", user_id = %user_id, family = %parent.family, "refresh token reuse detected: family revoked");
        metrics::counter!("tessera_refresh_reuse_detected_total").increment(1);
        self.revoke_family(parent.family).await?;
        Err(TokenError::Blacklisted.into())
    }

    /// A valid access or refresh token that is not revoked.
    pub async fn verify(&self, token: &str) -> Result<(), DomainError> {
        let claims = self.decode(token, None)?;
        let user = self.user_of(&claims).ok();
        self.ensure_not_revoked(&claims, user).await?;
        // A stamped token of a known user must carry the user's current stamp.
        if let (Some(_), Some(id)) = (stamp_of(&claims)?, user)
            && let Some(user) = self.users.find(id).await?
        {
            check_stamp(&claims, &user)?;
        }
        Ok(())
    }

    /// Revokes a refresh token and the access token issued with it.
    pub async fn blacklist(&self, token: &str) -> Result<(), DomainError> {
        let claims = self.decode(token, Some(TokenType::Refresh))?;
        let user = self.user_of(&claims).ok();
        self.ensure_not_revoked(&claims, user).await?;
        let mut revoked = vec![RevokedJti {
            jti: claims.jti.clone(),
            user_id: user,
            expires_at: self.revoked_until(expires_at(&claims)),
        }];
        if let Some(row) = self.ledger.find(&claims.jti).await? {
            // The ledger refuses it too (a Redis that missed the entry cannot let it refresh),
            // and its parent's one grace use is spent: a logout is not undone by presenting
            // the token it replaced.
            let mut closed = vec![row.jti.clone()];
            closed.extend(row.parent_jti.clone());
            self.ledger.close(&closed, Utc::now()).await?;
            if !row.access_jti.is_empty() {
                revoked.push(RevokedJti {
                    jti: row.access_jti,
                    user_id: user,
                    expires_at: self.revoked_until(row.access_expires_at),
                });
            }
        }
        self.revocations.revoke(&revoked).await?;
        metrics::counter!("tessera_tokens_revoked_total").increment(revoked.len() as u64);
        tracing::info!(target: "tessera::audit", user_id = ?user, "refresh token blacklisted");
        Ok(())
    }

    /// The user behind a `Bearer` access token.
    pub async fn authenticate(&self, token: &str) -> Result<User, DomainError> {
        let claims = self.decode(token, Some(TokenType::Access))?;
        let user_id = self.user_of(&claims)?;
        self.ensure_not_revoked(&claims, Some(user_id)).await?;
        let user = self.active_user(user_id).await?;
        check_stamp(&claims, &user)?;
        Ok(user)
    }

    /// Revokes every token of `user` issued until now. Answers once the next whole second has
    /// begun, so a token issued after the call (its `iat` is in seconds) is never caught by it.
    pub async fn revoke_all(&self, user: Uuid) -> Result<(), DomainError> {
        let now = Utc::now();
        let cutoff = now.timestamp() + 1;
        let until = self.revoked_until(now + self.rules.refresh_lifetime);
        self.revocations.revoke_user(user, cutoff, until).await?;
        tracing::info!(target: "tessera::audit", user_id = %user, "all tokens revoked");
        let wait = (cutoff * 1000 - Utc::now().timestamp_millis()).max(0);
        tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())).await;
        Ok(())
    }

    /// Deletes expired ledger and revocation rows; returns how many.
    pub async fn prune(&self) -> Result<u64, DomainError> {
        self.prune_as_of(Utc::now()).await
    }

    /// Deletes the rows that are expired at `now`: ledger rows past their token's acceptance
    /// window (exp + leeway), revocations past theirs (which already includes the margin).
    pub async fn prune_as_of(&self, now: DateTime<Utc>) -> Result<u64, DomainError> {
        let ledger = self.ledger.prune(now - self.rules.leeway).await?;
        Ok(ledger + self.revocations.prune(now).await?)
    }

    /// Verifies signature and claims. `expected` None accepts access and refresh tokens.
    pub fn decode(&self, token: &str, expected: Option<TokenType>) -> Result<Claims, TokenError> {
        Ok(tessera_verify::decode(
            token,
            &self.policy,
            self.keys.verifying(),
            expected,
        )?)
    }

    /// Signs a token with SimpleJWT's header and claim order (no ledger record; see `obtain`).
    pub fn encode(
        &self,
        token_type: TokenType,
        user: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(String, String, DateTime<Utc>), DomainError> {
        self.encode_with(token_type, user, None, now, &Map::new())
    }

    /// The user facts `jwt.claims` asks for in access tokens; none by default.
    async fn access_claims(&self, user: &User) -> Result<Map<String, Value>, DomainError> {
        let c = &self.rules.claims;
        let mut extra = Map::new();
        if c.username {
            extra.insert("username".into(), user.username.clone().into());
        }
        if c.email {
            extra.insert("email".into(), user.email.clone().into());
        }
        if c.is_staff {
            extra.insert("is_staff".into(), user.is_staff.into());
        }
        if c.is_superuser {
            extra.insert("is_superuser".into(), user.is_superuser.into());
        }
        if c.groups
            && let Some(groups) = &self.groups
        {
            extra.insert("groups".into(), groups.names_of(user.id).await?.into());
        }
        Ok(extra)
    }

    fn encode_with(
        &self,
        token_type: TokenType,
        user: Uuid,
        stamp: Option<i64>,
        now: DateTime<Utc>,
        extra: &Map<String, Value>,
    ) -> Result<(String, String, DateTime<Utc>), DomainError> {
        let lifetime = match token_type {
            TokenType::Access => self.rules.access_lifetime,
            TokenType::Refresh => self.rules.refresh_lifetime,
        };
        let expires_at = now + lifetime;
        let jti = new_jti();
        let mut header = Map::new();
        header.insert("alg".into(), format!("{:?}", self.keys.algorithm).into());
        if let Some(kid) = self.keys.signing_kid() {
            header.insert("kid".into(), kid.into());
        }
        header.insert("typ".into(), "JWT".into());
        let mut payload = String::from("{");
        let mut field = |name: &str, value: Value| {
            if payload.len() > 1 {
                payload.push(',');
            }
            payload.push_str(&Value::from(name).to_string());
            payload.push(':');
            payload.push_str(&value.to_string());
        };
        field(&self.rules.token_type_claim, token_type.as_str().into());
        field("exp", expires_at.timestamp().into());
        field("iat", now.timestamp().into());
        field(&self.rules.jti_claim, jti.clone().into());
        field(&self.rules.user_id_claim, user.to_string().into());
        if let Some(aud) = &self.rules.audience {
            field("aud", aud.clone().into());
        }
        if let Some(iss) = &self.rules.issuer {
            field("iss", iss.clone().into());
        }
        if let Some(stamp) = stamp {
            field(CREDENTIAL_VERSION_CLAIM, stamp.into());
        }
        if token_type == TokenType::Access {
            for (name, value) in extra {
                field(name, value.clone());
            }
        }
        payload.push('}');
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(Value::Object(header).to_string()),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            self.keys.signing_key(),
            self.keys.algorithm,
        )
        .map_err(|e| DomainError::Internal(format!("signing failed: {e}")))?;
        Ok((format!("{message}.{signature}"), jti, expires_at))
    }

    /// A new pair in `family`, and the ledger row describing its refresh token.
    fn mint(
        &self,
        user: &User,
        extra: &Map<String, Value>,
        family: Uuid,
        parent_jti: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(TokenPair, OutstandingToken), DomainError> {
        let stamp = Some(user.credential_version);
        let (access, access_jti, access_expires_at) =
            self.encode_with(TokenType::Access, user.id, stamp, now, extra)?;
        let (refresh, jti, expires_at) =
            self.encode_with(TokenType::Refresh, user.id, stamp, now, &Map::new())?;
        metrics::counter!("tessera_tokens_issued_total", "kind" => if parent_jti.is_some() { "refresh" } else { "login" })
            .increment(1);
        let row = OutstandingToken {
            jti,
            user_id: user.id,
            family,
            parent_jti,
            access_jti,
            access_expires_at,
            token_sha256: sha256_hex(&refresh),
            created_at: now,
            expires_at,
            rotated_at: None,
            grace_used: false,
        };
        Ok((TokenPair { access, refresh }, row))
    }

    /// A valid refresh token this ledger never issued (e.g. minted by the Django service being
    /// replaced, with the shared key) starts a family of its own.
    async fn adopt(
        &self,
        token: &str,
        claims: &Claims,
        user: Uuid,
        now: DateTime<Utc>,
    ) -> Result<OutstandingToken, DomainError> {
        let row = OutstandingToken {
            jti: claims.jti.clone(),
            user_id: user,
            family: new_family(),
            parent_jti: None,
            access_jti: String::new(),
            access_expires_at: now,
            token_sha256: sha256_hex(token),
            created_at: now,
            expires_at: expires_at(claims),
            rotated_at: None,
            grace_used: false,
        };
        match self.ledger.record(&row).await {
            Ok(()) => Ok(row),
            // Adopted concurrently by another request: use the stored row.
            Err(super::StoreError::Conflict(_)) => self
                .ledger
                .find(&claims.jti)
                .await?
                .ok_or(DomainError::Internal("ledger row vanished".into())),
            Err(e) => Err(e.into()),
        }
    }

    /// How long a revocation of a token expiring at `exp` is kept: a token is accepted until
    /// `exp` + leeway, and a store's clock or TTL rounding must not end the entry before that.
    fn revoked_until(&self, exp: DateTime<Utc>) -> DateTime<Utc> {
        exp + self.rules.leeway + REVOCATION_MARGIN
    }

    async fn revoke_family(&self, family: Uuid) -> Result<(), DomainError> {
        let rows = self.ledger.close_family(family, Utc::now()).await?;
        let revoked: Vec<RevokedJti> = rows
            .into_iter()
            .flat_map(|row| {
                let refresh = RevokedJti {
                    jti: row.jti,
                    user_id: Some(row.user_id),
                    expires_at: self.revoked_until(row.expires_at),
                };
                let access = (!row.access_jti.is_empty()).then_some(RevokedJti {
                    jti: row.access_jti,
                    user_id: Some(row.user_id),
                    expires_at: self.revoked_until(row.access_expires_at),
                });
                std::iter::once(refresh).chain(access)
            })
            .collect();
        self.revocations.revoke(&revoked).await?;
        metrics::counter!("tessera_tokens_revoked_total").increment(revoked.len() as u64);
        Ok(())
    }

    async fn ensure_not_revoked(
        &self,
        claims: &Claims,
        user: Option<Uuid>,
    ) -> Result<(), DomainError> {
        let iat = claims.iat.unwrap_or(i64::MIN);
        if self
            .revocations
            .is_revoked(Some(&claims.jti), user, iat)
            .await?
        {
            return Err(TokenError::Blacklisted.into());
        }
        Ok(())
    }

    async fn active_user(&self, id: Uuid) -> Result<User, DomainError> {
        match self.users.find(id).await? {
            None => Err(TokenError::UserNotFound.into()),
            Some(user) if !user.is_active => Err(TokenError::UserInactive.into()),
            Some(user) => Ok(user),
        }
    }
}

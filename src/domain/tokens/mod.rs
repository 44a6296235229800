//! JWTs the way SimpleJWT issues them, verified strictly: pinned algorithm, no key-bearing
//! headers, required claims, explicit token types; refresh rotation with reuse detection.
use std::{sync::Arc, time::Duration};

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
    sessions::{Client, Handle, SessionLog},
    setting_values::{duration, optional_text, text},
    users::{User, UserRef, UserService},
};

mod codec;
mod families;
mod revoke;
mod rotation;

pub use codec::{CREDENTIAL_VERSION_CLAIM, SESSION_CLAIM};
pub use families::LiveFamily;
pub use revoke::revocation_margin;
pub use tessera_verify::{Claims, TokenType, VerifyError};

use codec::{access_extra, check_stamp, expires_at, session_of, stamp_of};

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
    /// Every login starts a session; refreshes note its use.
    sessions: Arc<SessionLog>,
}

impl TokenService {
    pub fn new(
        rules: JwtRules,
        keys: KeyRing,
        ledger: Arc<dyn TokenLedger>,
        revocations: Arc<dyn RevocationStore>,
        users: Arc<UserService>,
        groups: Option<Arc<dyn GroupStore>>,
        sessions: Arc<SessionLog>,
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
            sessions,
        }
    }

    /// The user a token names: a UUID, or an integer id (`2` or `"2"`, as a Django service
    /// minted it) looked up by number, in either `accounts.user_id` mode. Without the claim,
    /// SimpleJWT's "no recognizable user identification"; with one that names no possible or
    /// no existing numbered user, "User not found", as for an unknown id.
    async fn user_of(&self, claims: &Claims) -> Result<Uuid, DomainError> {
        if !claims.raw.contains_key(&self.policy.user_id_claim) {
            return Err(TokenError::from(VerifyError::NoUser).into());
        }
        match claims.user_id.as_deref().and_then(UserRef::parse) {
            Some(UserRef::Id(id)) => Ok(id),
            Some(number) => match self.users.lookup(number).await? {
                Some(user) => Ok(user.id),
                None => Err(TokenError::UserNotFound.into()),
            },
            None => Err(TokenError::UserNotFound.into()),
        }
    }

    /// The user a token names, or None when it names nobody (SimpleJWT's verify and blacklist
    /// do not look the user up). A store that cannot answer is an error, never None: that
    /// would skip the user's cut-off.
    async fn user_if_named(&self, claims: &Claims) -> Result<Option<Uuid>, DomainError> {
        match self.user_of(claims).await {
            Ok(id) => Ok(Some(id)),
            Err(DomainError::Token(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// A fresh pair for a user whose login is complete (a password login, or its second-factor
    /// completion): a new family, which is a new session. Every JWT login path ends here.
    pub async fn issue_pair(
        &self,
        mut user: User,
        client: &Client<'_>,
    ) -> Result<TokenPair, DomainError> {
        if self.rules.update_last_login {
            self.users.record_login(&mut user).await?;
        }
        let extra = self.access_claims(&user).await?;
        let family = new_family();
        let claims = self.session_claim(family);
        let (pair, row) = self.mint(&user, &claims, &extra, family, None, Utc::now())?;
        self.ledger.record(&row).await?;
        self.sessions
            .started(&user, &Handle::Family(family), client, Some(row.expires_at))
            .await?;
        Ok(pair)
    }

    /// A valid access or refresh token that is not revoked.
    pub async fn verify(&self, token: &str) -> Result<(), DomainError> {
        let claims = self.decode(token, None)?;
        let user = self.user_if_named(&claims).await?;
        self.ensure_not_revoked(&claims, user).await?;
        // A stamped token of a known user must carry the user's current stamp.
        if let (Some(_), Some(id)) = (stamp_of(&claims)?, user)
            && let Some(user) = self.users.find(id).await?
        {
            check_stamp(&claims, &user)?;
        }
        Ok(())
    }

    /// The user behind a `Bearer` access token, and the session it belongs to (its `sid`).
    pub async fn authenticate(&self, token: &str) -> Result<(User, Option<Uuid>), DomainError> {
        let claims = self.decode(token, Some(TokenType::Access))?;
        let user_id = self.user_of(&claims).await?;
        self.ensure_not_revoked(&claims, Some(user_id)).await?;
        let user = self.active_user(user_id).await?;
        check_stamp(&claims, &user)?;
        Ok((user, session_of(&claims)))
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
}

#[cfg(test)]
mod tests;

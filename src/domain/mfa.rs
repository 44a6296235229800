//! A second factor: TOTP (RFC 6238) with one-time recovery codes, and the short-lived token
//! that carries a login from its right password to its code. Off unless `[mfa] enabled`.
use std::{net::IpAddr, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use totp_rs::{Builder, Secret, Totp};
use uuid::Uuid;

use crate::crypto::{
    SealKey, ct_eq, normalize_recovery_code, random_bytes, random_hex, recovery_code, sha256_hex,
};

use super::{
    DomainError, StoreError,
    setting_values::duration,
    users::{User, UserService},
};

/// The `[mfa]` section.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct MfaRules {
    pub enabled: bool,
    /// The issuer shown by authenticator apps (the `otpauth://` URI's issuer).
    pub issuer: String,
    /// How long a login may wait between its right password and its code.
    #[serde(deserialize_with = "duration")]
    pub token_lifetime: Duration,
}

/// What a login hands out once complete; an mfa_token is good for its own kind only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginKind {
    /// An access/refresh pair (`/api/token/`, `/auth/jwt/create/`).
    Pair,
    /// An opaque key (`/auth/token/login/`, `/api/api-token-auth/`).
    Key,
}

impl LoginKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pair => "pair",
            Self::Key => "key",
        }
    }
}

/// A user's TOTP factor: pending until a first code confirms it.
#[derive(Debug, Clone, PartialEq)]
pub struct TotpFactor {
    pub user_id: Uuid,
    /// The secret sealed with the user id as associated data (hex of nonce + ciphertext).
    pub secret_sealed: String,
    pub confirmed: bool,
    /// The last time-step whose code was accepted: only later ones are (a code works once).
    pub last_step: i64,
    pub created_at: DateTime<Utc>,
}

/// A login waiting for its second factor (the token itself is never stored).
#[derive(Debug, Clone, PartialEq)]
pub struct MfaToken {
    pub token_sha256: String,
    pub user_id: Uuid,
    pub kind: LoginKind,
    /// The user's credential version at the password check: a change since voids the token.
    pub credential_version: i64,
    pub expires_at: DateTime<Utc>,
}

#[async_trait::async_trait]
pub trait MfaStore: Send + Sync {
    async fn factor(&self, user: Uuid) -> Result<Option<TotpFactor>, StoreError>;
    /// Stores a pending factor in place of a pending one; false when a confirmed one exists.
    async fn put_pending(&self, factor: &TotpFactor) -> Result<bool, StoreError>;
    /// Confirms the pending factor, if it is still the one sealed as `sealed`, with `step` as
    /// its last step, and replaces the user's recovery codes; false when it was replaced or
    /// confirmed meanwhile.
    async fn confirm(
        &self,
        user: Uuid,
        sealed: &str,
        step: i64,
        recovery_sha256: &[String],
    ) -> Result<bool, StoreError>;
    /// Moves the confirmed factor's last step to `step` when it is earlier, atomically; false
    /// when a code of this or a later step was accepted already.
    async fn advance_step(&self, user: Uuid, step: i64) -> Result<bool, StoreError>;
    /// Deletes the user's recovery code with this hash; false when there is none (used).
    async fn use_recovery_code(&self, user: Uuid, code_sha256: &str) -> Result<bool, StoreError>;
    /// Deletes the factor, the recovery codes and the pending logins; false when there was no
    /// factor.
    async fn remove(&self, user: Uuid) -> Result<bool, StoreError>;
    async fn insert_token(&self, token: &MfaToken) -> Result<(), StoreError>;
    async fn token(&self, token_sha256: &str) -> Result<Option<MfaToken>, StoreError>;
    /// Deletes the token; false when another request did first (single use).
    async fn consume_token(&self, token_sha256: &str) -> Result<bool, StoreError>;
    /// Deletes the pending logins expired at `now`; returns how many.
    async fn prune_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Why a second-factor request is refused beyond field errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MfaError {
    /// `[mfa] enabled` is off: the endpoints do not exist.
    #[error("second factors are off")]
    Disabled,
    /// The password was right; the login goes on at the completion endpoint with this token.
    #[error("{}", MSG_MFA_REQUIRED)]
    Required { token: String },
    /// `accounts.require_mfa_for_staff`: a staff account without an active factor.
    #[error(
        "Staff accounts must enable a second factor (POST /auth/mfa/totp/) before using staff endpoints."
    )]
    StaffMustEnrol,
}

pub const MSG_MFA_REQUIRED: &str =
    "A second factor is required: send a code from your authenticator app with this mfa_token.";
pub const MSG_INVALID_CODE: &str = "Invalid code.";
pub const MSG_INVALID_MFA_TOKEN: &str = "Invalid or expired mfa_token: log in again.";
pub const MSG_ALREADY_ACTIVE: &str = "TOTP is already active: remove it first.";
pub const MSG_NOT_ENROLLING: &str = "No TOTP enrolment is pending: start one first.";
pub const MSG_NOT_ACTIVE: &str = "TOTP is not active.";

/// Recovery codes handed out at confirmation.
pub const RECOVERY_CODES: usize = 10;
/// Seconds per time-step (RFC 6238's default, what authenticator apps use).
const STEP_SECS: u64 = 30;
/// Secret bytes: 160 bits, RFC 4226's recommendation.
const SECRET_BYTES: usize = 20;
/// Longest mfa_token looked up (they are 64 hex digits).
const MAX_TOKEN_LEN: usize = 128;

/// A started enrolment: what the authenticator app needs.
pub struct Enrolment {
    /// The secret in base32 (for typing into an app).
    pub secret: String,
    /// `otpauth://totp/...` (for a QR code).
    pub uri: String,
}

pub struct MfaService {
    rules: MfaRules,
    require_for_staff: bool,
    store: Arc<dyn MfaStore>,
    users: Arc<UserService>,
    /// Seals secrets at rest.
    seal: SealKey,
}

impl MfaService {
    pub fn new(
        rules: MfaRules,
        require_for_staff: bool,
        store: Arc<dyn MfaStore>,
        users: Arc<UserService>,
        seal: SealKey,
    ) -> Self {
        Self {
            rules,
            require_for_staff,
            store,
            users,
            seal,
        }
    }

    fn on(&self) -> Result<(), DomainError> {
        if self.rules.enabled {
            Ok(())
        } else {
            Err(MfaError::Disabled.into())
        }
    }

    /// Whether `user` has a confirmed factor (false while second factors are off).
    pub async fn active(&self, user: Uuid) -> Result<bool, DomainError> {
        if !self.rules.enabled {
            return Ok(false);
        }
        Ok(self.store.factor(user).await?.is_some_and(|f| f.confirmed))
    }

    /// `accounts.require_mfa_for_staff` refuses `user` the staff endpoints.
    pub async fn staff_must_enrol(&self, user: &User) -> Result<bool, DomainError> {
        Ok(self.require_for_staff && user.is_staff && !self.active(user.id).await?)
    }

    /// The password step of every login: a user with an active factor gets
    /// [`MfaError::Required`] with a fresh mfa_token instead of the user; a wrong password
    /// answers exactly as without second factors.
    pub async fn password_login(
        &self,
        username: &str,
        password: &str,
        ip: Option<IpAddr>,
        kind: LoginKind,
    ) -> Result<User, DomainError> {
        let user = self.users.first_factor(username, password, ip).await?;
        if !self.active(user.id).await? {
            self.users.finish_login(username).await;
            return Ok(user);
        }
        // 256 bits from the CSPRNG; only its SHA-256 is stored.
        let token = random_hex(32);
        self.store
            .insert_token(&MfaToken {
                token_sha256: sha256_hex(&token),
                user_id: user.id,
                kind,
                credential_version: user.credential_version,
                expires_at: Utc::now() + self.rules.token_lifetime,
            })
            .await?;
        tracing::info!(target: "tessera::audit", user_id = %user.id, kind = kind.as_str(), "password right, second factor required");
        Err(MfaError::Required { token }.into())
    }

    /// The second step: the user whose `mfa_token` (of this `kind`) and code are right. The
    /// code counts toward the account's lockout; the token is used up by the first success.
    pub async fn complete(
        &self,
        mfa_token: &str,
        code: &str,
        kind: LoginKind,
        ip: Option<IpAddr>,
    ) -> Result<User, DomainError> {
        self.on()?;
        let invalid_token = || DomainError::field("mfa_token", MSG_INVALID_MFA_TOKEN);
        if mfa_token.len() > MAX_TOKEN_LEN {
            return Err(invalid_token());
        }
        let hash = sha256_hex(mfa_token);
        let Some(pending) = self.store.token(&hash).await? else {
            return Err(invalid_token());
        };
        if pending.kind != kind || pending.expires_at <= Utc::now() {
            return Err(invalid_token());
        }
        let user = match self.users.find(pending.user_id).await? {
            Some(u) if u.is_active && u.credential_version == pending.credential_version => u,
            // Deactivated, deleted, or its password changed since: the login is void.
            _ => {
                self.store.consume_token(&hash).await?;
                return Err(invalid_token());
            }
        };
        let Some(factor) = self.store.factor(user.id).await?.filter(|f| f.confirmed) else {
            return Err(invalid_token());
        };
        self.users.second_factor_attempt(&user, ip).await?;
        if !self.code_is_right(&user, &factor, code).await? {
            tracing::info!(target: "tessera::audit", user_id = %user.id, "second factor refused");
            return Err(DomainError::field("code", MSG_INVALID_CODE));
        }
        if !self.store.consume_token(&hash).await? {
            return Err(invalid_token());
        }
        self.users.second_factor_passed(&user, ip).await;
        tracing::info!(target: "tessera::audit", user_id = %user.id, kind = kind.as_str(), "login completed with a second factor");
        Ok(user)
    }

    /// Starts (or restarts) an enrolment: a fresh secret, pending until confirmed.
    pub async fn start(&self, user: &User) -> Result<Enrolment, DomainError> {
        self.on()?;
        let secret = random_bytes(SECRET_BYTES);
        let totp = self.totp(secret.clone(), &user.username)?;
        let factor = TotpFactor {
            user_id: user.id,
            secret_sealed: self.sealed(&secret, user.id)?,
            confirmed: false,
            last_step: 0,
            created_at: Utc::now(),
        };
        if !self.store.put_pending(&factor).await? {
            return Err(DomainError::field("non_field_errors", MSG_ALREADY_ACTIVE));
        }
        let uri = totp
            .to_url()
            .map_err(|e| DomainError::Internal(format!("otpauth URI: {e}")))?;
        Ok(Enrolment {
            secret: Secret::from(secret).to_base32(),
            uri,
        })
    }

    /// Confirms the pending enrolment with a first code: the factor is active from now on, and
    /// the answer holds the recovery codes (shown this once; only their hashes are kept).
    pub async fn confirm(&self, user: &User, code: &str) -> Result<Vec<String>, DomainError> {
        self.on()?;
        let factor = match self.store.factor(user.id).await? {
            Some(f) if f.confirmed => {
                return Err(DomainError::field("non_field_errors", MSG_ALREADY_ACTIVE));
            }
            Some(f) => f,
            None => return Err(DomainError::field("non_field_errors", MSG_NOT_ENROLLING)),
        };
        let step = match self.opened(&factor) {
            Some(secret) => matching_step(&self.totp(secret, &user.username)?, code, now_secs()),
            None => None,
        };
        let Some(step) = step else {
            return Err(DomainError::field("code", MSG_INVALID_CODE));
        };
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
        let hashes: Vec<String> = codes
            .iter()
            .filter_map(|c| normalize_recovery_code(c))
            .map(|c| sha256_hex(&c))
            .collect();
        if !self
            .store
            .confirm(user.id, &factor.secret_sealed, step, &hashes)
            .await?
        {
            // Another request restarted or confirmed the enrolment meanwhile.
            return Err(DomainError::field("non_field_errors", MSG_NOT_ENROLLING));
        }
        tracing::info!(target: "tessera::audit", user_id = %user.id, "TOTP enabled");
        Ok(codes)
    }

    /// Removes the factor: the code (or a recovery code) first, counted toward the lockout,
    /// then the password, so a known password never clears the count of code guesses.
    pub async fn remove(
        &self,
        user: &User,
        current_password: &str,
        code: &str,
    ) -> Result<(), DomainError> {
        self.on()?;
        let Some(factor) = self.store.factor(user.id).await?.filter(|f| f.confirmed) else {
            return Err(DomainError::field("non_field_errors", MSG_NOT_ACTIVE));
        };
        self.users.second_factor_attempt(user, None).await?;
        if !self.code_is_right(user, &factor, code).await? {
            return Err(DomainError::field("code", MSG_INVALID_CODE));
        }
        self.users
            .check_current_password(user, current_password)
            .await?;
        self.store.remove(user.id).await?;
        tracing::info!(target: "tessera::audit", user_id = %user.id, "TOTP removed by its user");
        Ok(())
    }

    /// Deletes the pending logins (mfa_tokens) that expired, whether or not `[mfa]` is on now;
    /// returns how many (`tessera flush-expired-tokens` and the periodic prune).
    pub async fn prune(&self) -> Result<u64, DomainError> {
        Ok(self.store.prune_tokens(Utc::now()).await?)
    }

    /// An operator's reset (`tessera mfa reset`): the factor, recovery codes and pending logins
    /// of `user` are gone; false when it had none.
    pub async fn reset(&self, user: &User) -> Result<bool, DomainError> {
        let removed = self.store.remove(user.id).await?;
        tracing::info!(target: "tessera::audit", user_id = %user.id, removed, "TOTP reset by an operator");
        Ok(removed)
    }

    /// A TOTP code of a step later than the last one accepted (claimed atomically), or an
    /// unused recovery code (used up atomically).
    async fn code_is_right(
        &self,
        user: &User,
        factor: &TotpFactor,
        code: &str,
    ) -> Result<bool, DomainError> {
        if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            let Some(secret) = self.opened(factor) else {
                return Ok(false);
            };
            let totp = self.totp(secret, &user.username)?;
            return match matching_step(&totp, code, now_secs()) {
                Some(step) if step > factor.last_step => {
                    Ok(self.store.advance_step(user.id, step).await?)
                }
                _ => Ok(false),
            };
        }
        match normalize_recovery_code(code) {
            Some(code) => Ok(self
                .store
                .use_recovery_code(user.id, &sha256_hex(&code))
                .await?),
            None => Ok(false),
        }
    }

    fn totp(&self, secret: Vec<u8>, account: &str) -> Result<Totp, DomainError> {
        Builder::new()
            .with_secret(secret)
            .with_issuer(Some(self.rules.issuer.as_str()))
            .with_account_name(account)
            .build()
            .map_err(|e| DomainError::Internal(format!("TOTP setup: {e}")))
    }

    fn sealed(&self, secret: &[u8], user: Uuid) -> Result<String, DomainError> {
        self.seal
            .seal(secret, user.as_bytes())
            .map_err(|e| DomainError::Internal(e.to_string()))
    }

    /// The factor's secret; None when it does not open (a row copied from another user, or
    /// sealed under another key): no code matches it then, and the operator is told.
    fn opened(&self, factor: &TotpFactor) -> Option<Vec<u8>> {
        let secret = self
            .seal
            .open(&factor.secret_sealed, factor.user_id.as_bytes());
        if secret.is_none() {
            tracing::error!(user_id = %factor.user_id, "a TOTP secret does not open: altered, copied from another user, or sealed under another key (tessera mfa reset)");
        }
        secret
    }
}

fn now_secs() -> u64 {
    u64::try_from(Utc::now().timestamp()).unwrap_or(0)
}

/// The latest time-step within ±1 of `now` whose code is `code` (RFC 6238's recommended
/// skew). Every candidate is compared, in constant time.
fn matching_step(totp: &Totp, code: &str, now: u64) -> Option<i64> {
    let current = now / STEP_SECS;
    let mut found = None;
    for step in current.saturating_sub(1)..=current + 1 {
        let expected = totp.generate(step * STEP_SECS).to_string();
        if ct_eq(expected.as_bytes(), code.as_bytes()) {
            found = i64::try_from(step).ok();
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totp() -> Totp {
        Builder::new()
            .with_secret(b"12345678901234567890".to_vec())
            .build()
            .unwrap()
    }

    #[test]
    fn a_code_matches_its_step_and_the_neighbours_only() {
        let t = totp();
        let now = 1_800_000_015;
        let step = (now / STEP_SECS) as i64;
        for (offset, expected) in [
            (-30i64, Some(step - 1)),
            (0, Some(step)),
            (30, Some(step + 1)),
        ] {
            let code = t.generate((now as i64 + offset) as u64).to_string();
            assert_eq!(matching_step(&t, &code, now), expected, "{offset}");
        }
        for offset in [-60i64, 60] {
            let code = t.generate((now as i64 + offset) as u64).to_string();
            assert_eq!(matching_step(&t, &code, now), None, "{offset}");
        }
        assert_eq!(matching_step(&t, "", now), None);
    }
}

//! Tokens as SimpleJWT writes them: claim order, lifetimes, the user facts of `[jwt.claims]`
//! and the credential version.
use super::*;

/// The claim that carries the user's credential version (security stamp) in tokens Tessera
/// mints (written by tessera-verify's encoder). Tokens minted elsewhere (adopted from a Django
/// service) have none and are ended by the per-user cut-off instead.
pub use tessera_verify::CREDENTIAL_VERSION_CLAIM;

/// The credential version a token was issued under; None for tokens without the claim.
pub(super) fn stamp_of(claims: &Claims) -> Result<Option<i64>, TokenError> {
    match claims.raw.get(CREDENTIAL_VERSION_CLAIM) {
        None => Ok(None),
        Some(value) => value.as_i64().map(Some).ok_or(VerifyError::Invalid.into()),
    }
}

/// The claim naming a token's session (OpenID Connect's session id), written by Tessera when
/// `sessions.enabled`: the session's id, which is its family's.
pub const SESSION_CLAIM: &str = "sid";

/// The session a token names; None without a `sid` or with one that is no UUID.
pub(super) fn session_of(claims: &Claims) -> Option<Uuid> {
    claims
        .raw
        .get(SESSION_CLAIM)
        .and_then(Value::as_str)
        .and_then(|sid| Uuid::parse_str(sid).ok())
}

/// Refuses a token issued under an older credential version than the user's: a login that
/// raced a password change, logout everywhere or deactivation ends with the sessions it ended.
pub(super) fn check_stamp(claims: &Claims, user: &User) -> Result<(), TokenError> {
    match stamp_of(claims)? {
        Some(stamp) if stamp != user.credential_version => Err(TokenError::Blacklisted),
        _ => Ok(()),
    }
}

/// Claims Tessera writes itself, or may (the `[jwt.claims]` user facts): a refresh token's
/// value for one of them is never carried into a new token, so a forged or stale `is_staff`
/// cannot outlive the database. The configured names are added by [`TokenService::carried`].
const MANAGED_CLAIMS: [&str; 15] = [
    "token_type",
    "exp",
    "iat",
    "nbf",
    "jti",
    "user_id",
    "aud",
    "iss",
    CREDENTIAL_VERSION_CLAIM,
    SESSION_CLAIM,
    "groups",
    "username",
    "email",
    "is_staff",
    "is_superuser",
];

/// An access token's claims beyond SimpleJWT's: the carried ones, then the user facts.
pub(super) fn access_extra(
    carried: &Map<String, Value>,
    facts: &Map<String, Value>,
) -> Map<String, Value> {
    let mut extra = carried.clone();
    extra.extend(facts.iter().map(|(k, v)| (k.clone(), v.clone())));
    extra
}

/// When a token's `exp` falls, as a timestamp for the ledger and the revocation list.
pub(super) fn expires_at(claims: &Claims) -> DateTime<Utc> {
    Utc.timestamp_opt(claims.exp, 0)
        .single()
        .unwrap_or_else(Utc::now)
}

impl TokenService {
    /// Signs a token with SimpleJWT's header and claim order (no ledger record; see `obtain`).
    pub fn encode(
        &self,
        token_type: TokenType,
        user: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(String, String, DateTime<Utc>), DomainError> {
        self.encode_with(token_type, UserRef::Id(user), None, now, &Map::new())
    }

    /// The claims of a refresh token that the tokens made from it carry on, as SimpleJWT's
    /// `RefreshToken.access_token` copies every claim but `token_type`, `exp`, `jti` and `iat`
    /// (and its rotation keeps them in the new refresh token): a Django project's own claims
    /// (`tenant`...) survive the move to Tessera. Unlike SimpleJWT, the claims Tessera manages
    /// come from Tessera, never from the token.
    pub(super) fn carried(&self, claims: &Claims) -> Map<String, Value> {
        let p = &self.policy;
        let configured = [&p.token_type_claim, &p.jti_claim, &p.user_id_claim];
        claims
            .raw
            .iter()
            .filter(|(name, _)| {
                !MANAGED_CLAIMS.contains(&name.as_str()) && !configured.contains(name)
            })
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }

    /// The `sid` claim of a session's tokens, when sessions are recorded (else none: the tokens
    /// stay exactly SimpleJWT's).
    pub(super) fn session_claim(&self, family: Uuid) -> Map<String, Value> {
        let mut claims = Map::new();
        if self.sessions.enabled() {
            claims.insert(SESSION_CLAIM.into(), family.to_string().into());
        }
        claims
    }

    /// The user facts `jwt.claims` asks for in access tokens; none by default.
    pub(super) async fn access_claims(
        &self,
        user: &User,
    ) -> Result<Map<String, Value>, DomainError> {
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

    pub(super) fn encode_with(
        &self,
        token_type: TokenType,
        subject: UserRef,
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
        // SimpleJWT 5.5 writes the id as a string, integers included ("2").
        let user_id = subject.to_string();
        let draft = tessera_verify::Draft {
            token_type,
            user_id: &user_id,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            jti: &jti,
            credential_version: stamp,
            extra,
        };
        let token = tessera_verify::encode(
            &self.policy,
            self.keys.signing_key(),
            self.keys.signing_kid(),
            &draft,
        )
        .map_err(|e| DomainError::Internal(format!("signing failed: {e}")))?;
        Ok((token, jti, expires_at))
    }

    /// A new pair in `family`, and the ledger row describing its refresh token. Both tokens
    /// carry `carried` (see [`TokenService::carried`]); the access token also the user facts
    /// `facts`.
    pub(super) fn mint(
        &self,
        user: &User,
        carried: &Map<String, Value>,
        facts: &Map<String, Value>,
        family: Uuid,
        parent_jti: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(TokenPair, OutstandingToken), DomainError> {
        let stamp = Some(user.credential_version);
        let subject = self.users.public_id(user);
        let (access, access_jti, access_expires_at) = self.encode_with(
            TokenType::Access,
            subject,
            stamp,
            now,
            &access_extra(carried, facts),
        )?;
        let (refresh, jti, expires_at) =
            self.encode_with(TokenType::Refresh, subject, stamp, now, carried)?;
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
}

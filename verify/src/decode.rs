//! The verification itself: signature under the pinned algorithm, then the claims.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{
    Algorithm, AlgorithmFamily, DecodingKey,
    jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm},
};
use serde_json::{Map, Value};

use crate::{Claims, TokenType, VerifyError};

/// What a token must satisfy besides its signature. The defaults are SimpleJWT's and Tessera's.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The only algorithm accepted (the token's `alg` header must name it).
    pub algorithm: Algorithm,
    /// Required `iss`, when set (Tessera's `jwt.issuer`).
    pub issuer: Option<String>,
    /// Required `aud` (a string, or one entry of a list), when set (Tessera's `jwt.audience`).
    pub audience: Option<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// SimpleJWT's USER_ID_CLAIM.
    pub user_id_claim: String,
    /// SimpleJWT's TOKEN_TYPE_CLAIM.
    pub token_type_claim: String,
    /// SimpleJWT's JTI_CLAIM.
    pub jti_claim: String,
}

impl Policy {
    /// SimpleJWT's defaults with `algorithm` pinned: no issuer, no audience, no leeway.
    pub fn new(algorithm: Algorithm) -> Self {
        Self {
            algorithm,
            issuer: None,
            audience: None,
            leeway: Duration::ZERO,
            user_id_claim: "user_id".into(),
            token_type_claim: "token_type".into(),
            jti_claim: "jti".into(),
        }
    }
}

/// A key tokens may be signed with, named by its `kid` (asymmetric keys) or not (HMAC secrets).
pub struct Key {
    /// The key id tokens name in their header.
    pub kid: Option<String>,
    /// The verifying key.
    pub key: DecodingKey,
}

/// The keys one verifier accepts (several during a key rotation).
#[derive(Default)]
pub struct KeySet {
    /// Each key with, for an HMAC secret, its key state prepared once: jsonwebtoken derives it
    /// from the secret on every verification (two more SHA-256 blocks and an allocation, a
    /// tenth of the work of verifying a request).
    keys: Vec<(Key, Option<Prepared>)>,
}

/// An HMAC secret ready for each HMAC algorithm.
struct Prepared {
    hs256: hmac::Key,
    hs384: hmac::Key,
    hs512: hmac::Key,
}

impl Prepared {
    fn of(key: &DecodingKey) -> Option<Self> {
        if key.family() != AlgorithmFamily::Hmac {
            return None;
        }
        let secret = key.try_get_as_bytes().ok()?;
        Some(Self {
            hs256: hmac::Key::new(hmac::HMAC_SHA256, secret),
            hs384: hmac::Key::new(hmac::HMAC_SHA384, secret),
            hs512: hmac::Key::new(hmac::HMAC_SHA512, secret),
        })
    }

    fn for_algorithm(&self, algorithm: Algorithm) -> Option<&hmac::Key> {
        match algorithm {
            Algorithm::HS256 => Some(&self.hs256),
            Algorithm::HS384 => Some(&self.hs384),
            Algorithm::HS512 => Some(&self.hs512),
            _ => None,
        }
    }
}

impl KeySet {
    /// A set of these keys.
    pub fn new(keys: Vec<Key>) -> Self {
        let keys = keys
            .into_iter()
            .map(|key| {
                let prepared = Prepared::of(&key.key);
                (key, prepared)
            })
            .collect();
        Self { keys }
    }

    /// The asymmetric keys of a JWKS usable with `algorithm`: a key without a `kid`, of another
    /// key type, or marked for another algorithm is left out.
    pub fn from_jwks(set: &JwkSet, algorithm: Algorithm) -> Self {
        let family = algorithm.family();
        let keys = set
            .keys
            .iter()
            .filter(|jwk| {
                // Only public keys: a JWKS never carries a secret worth trusting.
                let kind = match jwk.algorithm {
                    AlgorithmParameters::RSA(_) => Some(AlgorithmFamily::Rsa),
                    AlgorithmParameters::EllipticCurve(_) => Some(AlgorithmFamily::Ec),
                    AlgorithmParameters::OctetKeyPair(_) => Some(AlgorithmFamily::Ed),
                    _ => None,
                };
                kind == Some(family)
                    && jwk
                        .common
                        .key_algorithm
                        .is_none_or(|a| a == KeyAlgorithm::from(algorithm))
            })
            .filter_map(|jwk| {
                Some(Key {
                    kid: Some(jwk.common.key_id.clone()?),
                    key: DecodingKey::from_jwk(jwk).ok()?,
                })
            })
            .collect();
        Self::new(keys)
    }

    /// The keys to try for a token with this `kid` header: the named one, or every key without
    /// an id. An unknown `kid` yields nothing.
    pub fn candidates<'a>(&'a self, kid: Option<&'a str>) -> impl Iterator<Item = &'a Key> + 'a {
        self.named(kid).map(|(key, _)| key)
    }

    /// The candidates with their prepared HMAC state.
    fn named<'a>(
        &'a self,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a (Key, Option<Prepared>)> + 'a {
        self.keys
            .iter()
            .filter(move |(key, _)| key.kid.as_deref() == kid)
    }

    /// Whether `signature` (base64url) signs `message` under one of the candidate keys.
    fn verifies(
        &self,
        kid: Option<&str>,
        message: &[u8],
        signature: &str,
        algorithm: Algorithm,
    ) -> bool {
        if algorithm.family() == AlgorithmFamily::Hmac {
            let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
                return false;
            };
            // hmac::verify compares in constant time.
            return self
                .named(kid)
                .filter_map(|(_, prepared)| prepared.as_ref()?.for_algorithm(algorithm))
                .any(|key| hmac::verify(key, message, &signature).is_ok());
        }
        self.candidates(kid).any(|k| {
            jsonwebtoken::crypto::verify(signature, message, &k.key, algorithm).unwrap_or(false)
        })
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The latest instant a token may name: 9999-12-31T23:59:59Z, what Python's datetime (and so
/// SimpleJWT) and every store can hold. A timestamp beyond it is forged or broken, never
/// "valid forever".
const MAX_TIMESTAMP: f64 = 253_402_300_799.0;

/// SimpleJWT keeps a `jti` in a 255-character column; anything longer is refused, not stored.
const MAX_JTI_BYTES: usize = 255;

/// A numeric date claim (seconds since the epoch, integer or float) within the range above.
fn timestamp(value: &Value) -> Result<f64, VerifyError> {
    value
        .as_f64()
        .filter(|t| t.is_finite() && t.abs() <= MAX_TIMESTAMP)
        .ok_or(VerifyError::Invalid)
}

/// Verifies `token` under `policy` with `keys`; `expected` None accepts access and refresh tokens.
pub fn decode(
    token: &str,
    policy: &Policy,
    keys: &KeySet,
    expected: Option<TokenType>,
) -> Result<Claims, VerifyError> {
    let raw = verified_payload(token, policy.algorithm, keys)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        .floor();
    let leeway = policy.leeway.as_secs_f64();
    let exp = match raw.get("exp") {
        None => return Err(VerifyError::MissingClaim("exp")),
        Some(v) => timestamp(v)?,
    };
    if exp + leeway <= now {
        return Err(VerifyError::Expired);
    }
    // Not yet valid, or issued in the future: refused, as is a non-numeric value.
    for name in ["nbf", "iat"] {
        if let Some(v) = raw.get(name)
            && timestamp(v)? > now + leeway
        {
            return Err(VerifyError::Invalid);
        }
    }
    if let Some(issuer) = &policy.issuer
        && raw.get("iss").and_then(Value::as_str) != Some(issuer.as_str())
    {
        return Err(VerifyError::Invalid);
    }
    if let Some(audience) = &policy.audience {
        let matches = match raw.get("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience.as_str())),
            _ => false,
        };
        if !matches {
            return Err(VerifyError::Invalid);
        }
    }
    let jti = match raw.get(&policy.jti_claim) {
        None => return Err(VerifyError::NoId),
        Some(Value::String(s)) if s.len() <= MAX_JTI_BYTES => s.clone(),
        Some(_) => return Err(VerifyError::Invalid),
    };
    let token_type = match raw.get(&policy.token_type_claim) {
        None => return Err(VerifyError::NoType),
        Some(v) if v == "access" => TokenType::Access,
        Some(v) if v == "refresh" => TokenType::Refresh,
        Some(_) => return Err(VerifyError::WrongType),
    };
    if expected.is_some_and(|e| e != token_type) {
        return Err(VerifyError::WrongType);
    }
    let user_id = match raw.get(&policy.user_id_claim) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let iat = raw.get("iat").and_then(Value::as_f64).map(|v| v as i64);
    Claims {
        token_type,
        exp: exp as i64,
        iat,
        jti,
        user_id,
        username: None,
        email: None,
        groups: Vec::new(),
        is_staff: false,
        is_superuser: false,
        raw,
    }
    .with_facts()
}

/// The `kid` header of a token, if it has a readable one (JWKS keys are looked up by it).
#[cfg(feature = "jwks")]
pub(crate) fn kid_of(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok()?.kid
}

/// The payload of a token whose header and signature check out under the pinned algorithm.
fn verified_payload(
    token: &str,
    algorithm: Algorithm,
    keys: &KeySet,
) -> Result<Map<String, Value>, VerifyError> {
    let mut parts = token.split('.');
    let (Some(header64), Some(payload64), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Invalid);
    };
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Invalid)?;
    // Keys named or carried by the token itself are never trusted (RFC 8725 3.10).
    if header.alg != algorithm
        || header.jku.is_some()
        || header.jwk.is_some()
        || header.x5u.is_some()
        || header.x5c.is_some()
        || header.crit.is_some()
    {
        return Err(VerifyError::Invalid);
    }
    let message = &token[..header64.len() + 1 + payload64.len()];
    if !keys.verifies(
        header.kid.as_deref(),
        message.as_bytes(),
        signature,
        algorithm,
    ) {
        return Err(VerifyError::Invalid);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(payload64)
        .map_err(|_| VerifyError::Invalid)?;
    match serde_json::from_slice(&payload) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(VerifyError::Invalid),
    }
}

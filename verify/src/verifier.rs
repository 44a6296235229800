//! The verifier a downstream service keeps: a policy and where its keys come from.
use jsonwebtoken::{AlgorithmFamily, DecodingKey};

use crate::{Claims, Key, KeySet, Policy, TokenType, VerifyError, decode};

enum Keys {
    Fixed(KeySet),
    #[cfg(feature = "jwks")]
    Jwks(crate::Jwks),
}

/// Verifies access tokens offline. Share it behind an `Arc`.
pub struct Verifier {
    policy: Policy,
    keys: Keys,
}

impl Verifier {
    /// HMAC: the shared signing key (Tessera's `jwt.signing_key`, Django's `SIGNING_KEY`).
    pub fn hmac(policy: Policy, secret: impl AsRef<[u8]>) -> Self {
        Self::with_keys(
            policy,
            KeySet::new(vec![Key {
                kid: None,
                key: DecodingKey::from_secret(secret.as_ref()),
            }]),
        )
    }

    /// Fixed keys, e.g. several HMAC secrets during a rotation or keys read from PEM files.
    pub fn with_keys(policy: Policy, keys: KeySet) -> Self {
        Self {
            policy,
            keys: Keys::Fixed(keys),
        }
    }

    /// One public key in PEM, for tokens without a `kid` header or naming `kid`.
    pub fn public_pem(
        policy: Policy,
        pem: &[u8],
        kid: Option<String>,
    ) -> Result<Self, VerifyError> {
        let bad = |e: jsonwebtoken::errors::Error| VerifyError::Config(e.to_string());
        let key = match policy.algorithm.family() {
            AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
            AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
            AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem),
            AlgorithmFamily::Hmac => {
                return Err(VerifyError::Config(
                    "an HMAC algorithm takes a secret, not a PEM".into(),
                ));
            }
        }
        .map_err(bad)?;
        Ok(Self::with_keys(policy, KeySet::new(vec![Key { kid, key }])))
    }

    /// Keys from a JWKS URL such as `https://tessera.example/.well-known/jwks.json`.
    #[cfg(feature = "jwks")]
    pub fn jwks(
        policy: Policy,
        url: impl Into<String>,
        options: crate::JwksOptions,
    ) -> Result<Self, VerifyError> {
        let jwks = crate::Jwks::new(url, policy.algorithm, options)?;
        Ok(Self {
            policy,
            keys: Keys::Jwks(jwks),
        })
    }

    /// An access token with a user id: what a protected endpoint accepts.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let claims = self.verify_any(token, Some(TokenType::Access)).await?;
        claims.user()?;
        Ok(claims)
    }

    /// A token of `expected` type (None: access or refresh), user id not required.
    pub async fn verify_any(
        &self,
        token: &str,
        expected: Option<TokenType>,
    ) -> Result<Claims, VerifyError> {
        match &self.keys {
            Keys::Fixed(keys) => decode(token, &self.policy, keys, expected),
            #[cfg(feature = "jwks")]
            Keys::Jwks(jwks) => {
                // Every JWKS key has a `kid`: a token without one (or unreadable) fails at once,
                // without a fetch.
                let Some(kid) = crate::decode::kid_of(token) else {
                    return decode(token, &self.policy, &KeySet::default(), expected);
                };
                let keys = jwks.keys_for(&kid).await?;
                decode(token, &self.policy, &keys, expected)
            }
        }
    }
}

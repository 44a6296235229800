//! The key ring: sign with the first key, accept every listed key (rotation), publish the public
//! ones as a JWKS. Asymmetric keys are named by their RFC 7638 thumbprint (`kid`).
use jsonwebtoken::{
    Algorithm, AlgorithmFamily, DecodingKey, EncodingKey,
    jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash},
};
use tessera_verify::{Key, KeySet};

/// Shortest HMAC secret accepted outside `--dev` (RFC 7518: at least the hash size).
pub const MIN_HMAC_KEY_BYTES: usize = 32;

/// Words of HMAC secrets that were published as examples or placeholders: the key the old
/// docker-compose.yml fell back to ("change-me-change-me-..."), "changeme"/"change this"/
/// "replace me"/"your secret" templates, and Django's startproject development keys
/// ("django-insecure-..."). Compared case-insensitively on letters and digits only, so
/// "CHANGE_ME" and "change-me" are the same word. Refused even with `--dev`.
pub const PLACEHOLDER_KEY_WORDS: [&str; 5] = [
    "changeme",
    "changethis",
    "replaceme",
    "yoursecret",
    "djangoinsecure",
];

/// Whether an HMAC secret is a published placeholder rather than a secret.
pub fn is_placeholder_key(key: &[u8]) -> bool {
    let folded: String = key
        .iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(|b| char::from(b.to_ascii_lowercase()))
        .collect();
    PLACEHOLDER_KEY_WORDS
        .iter()
        .any(|word| folded.contains(word))
}

/// Why keys could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("jwt keys: {0}")]
pub struct KeyError(pub String);

pub struct KeyRing {
    pub algorithm: Algorithm,
    signing: EncodingKey,
    signing_kid: Option<String>,
    verifying: KeySet,
    /// The public keys of `verifying` (none for HMAC).
    jwks: JwkSet,
}

impl KeyRing {
    /// `signing` is an HMAC secret or a private key in PEM; `others` are older HMAC secrets or
    /// public keys in PEM, still accepted for verification.
    pub fn new(
        algorithm: Algorithm,
        signing: &[u8],
        others: &[Vec<u8>],
        dev: bool,
    ) -> Result<Self, KeyError> {
        let bad = |e: jsonwebtoken::errors::Error| KeyError(e.to_string());
        let family = algorithm.family();
        if family == AlgorithmFamily::Hmac {
            for key in std::iter::once(signing).chain(others.iter().map(Vec::as_slice)) {
                if is_placeholder_key(key) {
                    return Err(KeyError(
                        "jwt.signing_key / jwt.verifying_keys: a published placeholder key (e.g. \"change-me\") is not a secret; generate one with `openssl rand -hex 32`".into(),
                    ));
                }
                if key.len() < MIN_HMAC_KEY_BYTES && !dev {
                    return Err(KeyError(format!(
                        "HMAC keys must be at least {MIN_HMAC_KEY_BYTES} bytes (run with --dev to allow shorter ones)"
                    )));
                }
            }
            let verifying = std::iter::once(signing)
                .chain(others.iter().map(Vec::as_slice))
                .map(|k| Key {
                    kid: None,
                    key: DecodingKey::from_secret(k),
                })
                .collect();
            return Ok(Self {
                algorithm,
                signing: EncodingKey::from_secret(signing),
                signing_kid: None,
                verifying: KeySet::new(verifying),
                jwks: JwkSet { keys: Vec::new() },
            });
        }
        let encoding = match family {
            AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(signing),
            AlgorithmFamily::Ec => EncodingKey::from_ec_pem(signing),
            _ => EncodingKey::from_ed_pem(signing),
        }
        // The bare "InvalidKeyFormat" does not say what is expected: a SEC1 EC key ("BEGIN EC
        // PRIVATE KEY") is the usual mistake.
        .map_err(|e| {
            KeyError(format!(
                "the signing key is not a {algorithm:?} private key in PKCS#8 PEM \
                 (\"-----BEGIN PRIVATE KEY-----\"; convert with `openssl pkcs8 -topk8 -nocrypt`): {e}"
            ))
        })?;
        let own = public_key(
            Jwk::from_encoding_key(&encoding, algorithm).map_err(bad)?,
            algorithm,
        )?;
        let signing_kid = own.common.key_id.clone();
        let mut public = vec![own];
        for pem in others {
            let decoding = match family {
                AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
                AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
                _ => DecodingKey::from_ed_pem(pem),
            }
            .map_err(bad)?;
            public.push(public_key(
                Jwk::from_decoding_key(&decoding, Some(algorithm)).map_err(bad)?,
                algorithm,
            )?);
        }
        let jwks = JwkSet { keys: public };
        Ok(Self {
            algorithm,
            signing: encoding,
            signing_kid,
            verifying: KeySet::from_jwks(&jwks, algorithm),
            jwks,
        })
    }

    pub fn signing_key(&self) -> &EncodingKey {
        &self.signing
    }

    pub fn signing_kid(&self) -> Option<&str> {
        self.signing_kid.as_deref()
    }

    /// Every key a token may be signed with (the same set downstream services get from the JWKS).
    pub fn verifying(&self) -> &KeySet {
        &self.verifying
    }

    /// The public keys, for `/.well-known/jwks.json` (empty for HMAC).
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }
}

/// The public JWK named by its RFC 7638 thumbprint, marked for signatures with `algorithm`.
fn public_key(mut jwk: Jwk, algorithm: Algorithm) -> Result<Jwk, KeyError> {
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| KeyError(e.to_string()))?;
    jwk.common.key_id = Some(kid);
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(algorithm.into());
    // The key must load back from its JWK, as downstream services will load it.
    DecodingKey::from_jwk(&jwk).map_err(|e| KeyError(e.to_string()))?;
    Ok(jwk)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/api/keys/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn loads_asymmetric_keys_with_thumbprint_kids() {
        for (alg, private, public) in [
            (Algorithm::RS256, "rsa1.pem", "rsa2.pub.pem"),
            (Algorithm::EdDSA, "ed1.pem", "ed1.pub.pem"),
        ] {
            let ring = KeyRing::new(alg, &fixture(private), &[fixture(public)], false).unwrap();
            assert_eq!(ring.jwks().keys.len(), 2);
            assert_eq!(ring.verifying().len(), 2);
            assert!(ring.signing_kid().is_some_and(|k| k.len() == 43));
        }
    }

    #[test]
    fn refuses_placeholder_keys_even_in_dev() {
        for key in [
            "change-me-change-me-change-me-change-me",
            "CHANGE_ME_TO_A_LONG_RANDOM_SECRET_PLEASE",
            "django-insecure-0123456789abcdefghijklmnopqrstuvwxyz",
            "replace me with your own very long secret key",
        ] {
            for dev in [false, true] {
                let err = KeyRing::new(Algorithm::HS256, key.as_bytes(), &[], dev)
                    .err()
                    .unwrap_or_else(|| panic!("{key} accepted"));
                assert!(err.to_string().contains("placeholder"), "{err}");
            }
        }
        let real = b"0f3a9c1e7b2d4a6f8e0c2b4d6f8a0c2e";
        assert!(KeyRing::new(Algorithm::HS256, real, &[], false).is_ok());
        let err = KeyRing::new(
            Algorithm::HS256,
            real,
            &[b"change-me-change-me-change-me-change-me".to_vec()],
            false,
        )
        .err()
        .unwrap_or_else(|| panic!("placeholder verifying key accepted"));
        assert!(err.to_string().contains("placeholder"), "{err}");
    }

    #[test]
    fn refuses_short_hmac_keys_outside_dev() {
        assert!(KeyRing::new(Algorithm::HS256, b"short", &[], false).is_err());
        assert!(KeyRing::new(Algorithm::HS256, b"short", &[], true).is_ok());
        assert!(
            KeyRing::new(
                Algorithm::HS256,
                &crate::crypto::random_secret(),
                &[b"old".to_vec()],
                false
            )
            .is_err()
        );
        assert!(
            KeyRing::new(
                Algorithm::HS256,
                &crate::crypto::random_secret(),
                &[],
                false
            )
            .unwrap()
            .jwks()
            .keys
            .is_empty()
        );
    }
}

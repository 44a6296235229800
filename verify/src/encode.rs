//! The other half of the codec: a token written the way [`decode`](crate::decode) reads it and
//! SimpleJWT writes it (header `alg`, `kid`, `typ`; claims `token_type, exp, iat, jti, user_id`,
//! then `aud`, `iss`, the credential version and the issuer's further claims). Tessera signs
//! with it; keeping both halves here means the layout is defined once.
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::EncodingKey;
use serde_json::{Map, Value};

use crate::{Policy, TokenType};

/// The claim Tessera puts its credential version (security stamp) in.
pub const CREDENTIAL_VERSION_CLAIM: &str = "cv";

/// What one token says; the claim names and `iss`/`aud` come from the [`Policy`].
pub struct Draft<'a> {
    /// Access or refresh.
    pub token_type: TokenType,
    /// The user id claim's value.
    pub user_id: &'a str,
    /// Issue time, seconds since the epoch.
    pub iat: i64,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// The token's id.
    pub jti: &'a str,
    /// The user's credential version, when the issuer tracks one.
    pub credential_version: Option<i64>,
    /// Further claims, after the ones above (Tessera's user facts in access tokens, claims a
    /// refresh token carries on). One named like a claim above (`aud`, `iss` and the
    /// credential version included) is left out: they cannot be overridden through it.
    pub extra: &'a Map<String, Value>,
}

/// Signs `draft` under `policy`'s algorithm with `key`, naming `kid` in the header when given.
pub fn encode(
    policy: &Policy,
    key: &EncodingKey,
    kid: Option<&str>,
    draft: &Draft<'_>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Map::new();
    header.insert("alg".into(), format!("{:?}", policy.algorithm).into());
    if let Some(kid) = kid {
        header.insert("kid".into(), kid.into());
    }
    header.insert("typ".into(), "JWT".into());
    // Written by hand: serde_json's map would sort the claims, SimpleJWT's order is kept.
    let mut payload = String::from("{");
    let mut field = |name: &str, value: Value| {
        if payload.len() > 1 {
            payload.push(',');
        }
        payload.push_str(&Value::from(name).to_string());
        payload.push(':');
        payload.push_str(&value.to_string());
    };
    field(&policy.token_type_claim, draft.token_type.as_str().into());
    field("exp", draft.exp.into());
    field("iat", draft.iat.into());
    field(&policy.jti_claim, draft.jti.into());
    field(&policy.user_id_claim, draft.user_id.into());
    if let Some(aud) = &policy.audience {
        field("aud", aud.clone().into());
    }
    if let Some(iss) = &policy.issuer {
        field("iss", iss.clone().into());
    }
    if let Some(version) = draft.credential_version {
        field(CREDENTIAL_VERSION_CLAIM, version.into());
    }
    // A name twice in one JSON object is read differently by different parsers: the claims
    // above are the issuer's, whatever `extra` holds.
    let own = [
        policy.token_type_claim.as_str(),
        "exp",
        "iat",
        policy.jti_claim.as_str(),
        policy.user_id_claim.as_str(),
        "aud",
        "iss",
        CREDENTIAL_VERSION_CLAIM,
    ];
    for (name, value) in draft.extra {
        if !own.contains(&name.as_str()) {
            field(name, value.clone());
        }
    }
    payload.push('}');
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(Value::Object(header).to_string()),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, policy.algorithm)?;
    Ok(format!("{message}.{signature}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Key, KeySet, decode};
    use jsonwebtoken::{Algorithm, DecodingKey};

    #[test]
    fn what_is_encoded_decodes_to_the_same_claims_in_simplejwts_order() {
        let secret = b"a shared secret of at least 32 bytes!";
        let policy = Policy::new(Algorithm::HS256);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let extra = Map::from_iter([("groups".to_owned(), Value::from(vec!["ops"]))]);
        let token = encode(
            &policy,
            &EncodingKey::from_secret(secret),
            None,
            &Draft {
                token_type: TokenType::Access,
                user_id: "u-1",
                iat: now - 10,
                exp: now + 300,
                jti: "0123456789abcdef0123456789abcdef",
                credential_version: Some(3),
                extra: &extra,
            },
        )
        .unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let start = format!(
            r#"{{"token_type":"access","exp":{},"iat":{},"jti":"#,
            now + 300,
            now - 10
        );
        assert!(payload.starts_with(&start), "{payload}");
        assert!(
            payload.ends_with(r#","cv":3,"groups":["ops"]}"#),
            "{payload}"
        );
        let keys = KeySet::new(vec![Key {
            kid: None,
            key: DecodingKey::from_secret(secret),
        }]);
        let claims = decode(&token, &policy, &keys, Some(TokenType::Access)).unwrap();
        assert_eq!(claims.user_id.as_deref(), Some("u-1"));
        assert_eq!(claims.groups, ["ops"]);
        assert_eq!(claims.raw[CREDENTIAL_VERSION_CLAIM], 3);
    }

    #[test]
    fn further_claims_never_replace_the_issuers_own() {
        let secret = b"a shared secret of at least 32 bytes!";
        let policy = Policy::new(Algorithm::HS256);
        let extra = Map::from_iter([
            ("tenant".to_owned(), Value::from("acme")),
            ("exp".to_owned(), Value::from(253_402_300_799i64)),
            ("user_id".to_owned(), Value::from("someone-else")),
            ("token_type".to_owned(), Value::from("access")),
            ("cv".to_owned(), Value::from(0)),
        ]);
        let token = encode(
            &policy,
            &EncodingKey::from_secret(secret),
            None,
            &Draft {
                token_type: TokenType::Refresh,
                user_id: "u-1",
                iat: 1_000,
                exp: 2_000,
                jti: "0123456789abcdef0123456789abcdef",
                credential_version: Some(3),
                extra: &extra,
            },
        )
        .unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(
            payload,
            r#"{"token_type":"refresh","exp":2000,"iat":1000,"jti":"0123456789abcdef0123456789abcdef","user_id":"u-1","cv":3,"tenant":"acme"}"#
        );
    }
}

//! The downstream service's routes and configuration (also run by Tessera's tests).
use std::sync::Arc;

use poem::{
    Endpoint, EndpointExt, Route, get, handler,
    web::{Data, Json},
};
use serde_json::{Value, json};
use tessera_verify::{
    Claims, JwksOptions, Policy, Verifier, VerifyError, jsonwebtoken::Algorithm, poem::VerifyAccess,
};

/// The verifier from settings read by `var`: `TESSERA_JWKS_URL` (public keys, algorithm
/// `TESSERA_ALGORITHM`, default RS256) or `TESSERA_SIGNING_KEY` (the shared HMAC key, HS256),
/// plus optional `TESSERA_ISSUER` and `TESSERA_AUDIENCE`.
pub fn verifier_from(var: impl Fn(&str) -> Option<String>) -> Result<Verifier, VerifyError> {
    let config = |e: String| VerifyError::Config(e);
    let jwks_url = var("TESSERA_JWKS_URL");
    let default_alg = if jwks_url.is_some() { "RS256" } else { "HS256" };
    let algorithm: Algorithm = var("TESSERA_ALGORITHM")
        .as_deref()
        .unwrap_or(default_alg)
        .parse()
        .map_err(|e| config(format!("TESSERA_ALGORITHM: {e}")))?;
    let policy = Policy {
        issuer: var("TESSERA_ISSUER"),
        audience: var("TESSERA_AUDIENCE"),
        ..Policy::new(algorithm)
    };
    match (jwks_url, var("TESSERA_SIGNING_KEY")) {
        (Some(url), _) => Verifier::jwks(policy, url, JwksOptions::default()),
        (None, Some(key)) => Ok(Verifier::hmac(policy, key)),
        (None, None) => Err(config("set TESSERA_JWKS_URL or TESSERA_SIGNING_KEY".into())),
    }
}

/// `GET /whoami` for any valid access token; `GET /reports` only for members of `group`.
pub fn app(verifier: Arc<Verifier>, group: &str) -> impl Endpoint + use<> {
    Route::new()
        .at(
            "/whoami",
            get(whoami).with(VerifyAccess::new(verifier.clone())),
        )
        .at(
            "/reports",
            get(reports).with(VerifyAccess::new(verifier).require_group(group)),
        )
        .data(Arc::new(group.to_owned()))
}

#[handler]
fn whoami(claims: Claims) -> Json<Value> {
    Json(json!({
        "user_id": claims.user_id,
        "username": claims.username,
        "groups": claims.groups,
    }))
}

#[handler]
fn reports(claims: Claims, group: Data<&Arc<String>>) -> Json<Value> {
    Json(json!({
        "group": group.as_str(),
        "reports": [format!("quarterly figures, for {}", claims.username.unwrap_or_default())],
    }))
}

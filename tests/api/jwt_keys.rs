//! Signing keys: asymmetric algorithms with JWKS, key rotation, key confusion, refused keys.
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    forge::{claims_of, header_segment},
    helpers::{Backend, TestApp, answer, forge, key},
};

on_every_backend!(
    rs256_tokens_carry_a_kid_published_in_the_jwks,
    eddsa_tokens_verify_offline_with_the_jwks,
    a_rotated_key_still_verifies_while_it_is_listed,
    hmac_signed_with_the_public_key_is_refused,
);

async fn asymmetric(
    backend: Backend,
    algorithm: &str,
    signing: &str,
    verifying: &[&str],
) -> TestApp {
    let files: Vec<String> = verifying.iter().map(|k| key(k)).collect();
    let files = files.join(",");
    let signing = key(signing);
    let mut settings = vec![
        ("TESSERA__JWT__ALGORITHM", algorithm),
        ("TESSERA__JWT__SIGNING_KEY_FILE", signing.as_str()),
    ];
    if !files.is_empty() {
        settings.push(("TESSERA__JWT__VERIFYING_KEY_FILES", files.as_str()));
    }
    TestApp::spawn_with(backend, &settings).await
}

fn header_of(token: &str) -> Value {
    let raw = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        header_segment(token),
    )
    .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

async fn jwks(app: &TestApp) -> jsonwebtoken::jwk::JwkSet {
    let response = app
        .request(Method::GET, "/.well-known/jwks.json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Verifies like a downstream service would: key picked by `kid` from the JWKS, algorithm pinned.
fn verify_offline(
    token: &str,
    set: &jsonwebtoken::jwk::JwkSet,
    algorithm: jsonwebtoken::Algorithm,
) -> Value {
    let kid = header_of(token)["kid"].as_str().unwrap().to_owned();
    let jwk = set.find(&kid).expect("kid published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    jsonwebtoken::decode::<Value>(token, &key, &jsonwebtoken::Validation::new(algorithm))
        .unwrap()
        .claims
}

async fn rs256_tokens_carry_a_kid_published_in_the_jwks(backend: Backend) {
    let app = asymmetric(backend, "RS256", "rsa1.pem", &[]).await;
    let user = app.register("rsa").await;
    let (access, refresh) = app.login(&user).await;
    let header = header_of(&access);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    let set = jwks(&app).await;
    assert_eq!(set.keys.len(), 1);
    assert_eq!(set.keys[0].common.key_id.as_deref(), header["kid"].as_str());
    assert_eq!(
        verify_offline(&access, &set, jsonwebtoken::Algorithm::RS256)["user_id"],
        json!(user.id)
    );
    let response = app
        .request(Method::GET, "/auth/users/me/")
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.post_json("/api/token/refresh/", json!({"refresh": refresh}))
            .await
            .status(),
        StatusCode::OK
    );
    // A token naming a kid Tessera does not know is refused.
    let mut forged = header.clone();
    forged["kid"] = json!("not-a-known-kid");
    let parts: Vec<&str> = access.split('.').collect();
    let renamed = format!(
        "{}.{}.{}",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            forged.to_string()
        ),
        parts[1],
        parts[2]
    );
    assert_eq!(
        app.post_json("/api/token/verify/", json!({"token": renamed}))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn eddsa_tokens_verify_offline_with_the_jwks(backend: Backend) {
    let app = asymmetric(backend, "EdDSA", "ed1.pem", &[]).await;
    let user = app.register("ed").await;
    let (access, _) = app.login(&user).await;
    assert_eq!(header_of(&access)["alg"], "EdDSA");
    let set = jwks(&app).await;
    assert_eq!(
        verify_offline(&access, &set, jsonwebtoken::Algorithm::EdDSA)["token_type"],
        "access"
    );
    let (status, body) = answer(
        app.post_json("/api/token/verify/", json!({"token": access}))
            .await,
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
}

async fn a_rotated_key_still_verifies_while_it_is_listed(backend: Backend) {
    let old = asymmetric(backend, "RS256", "rsa1.pem", &[]).await;
    let user = old.register("rot").await;
    let (access_old, _) = old.login(&user).await;

    let rotated = asymmetric(backend, "RS256", "rsa2.pem", &["rsa1.pub.pem"]).await;
    let set = jwks(&rotated).await;
    assert_eq!(
        set.keys.len(),
        2,
        "the new key and the old one are published"
    );
    assert_eq!(
        rotated
            .post_json("/api/token/verify/", json!({"token": access_old}))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        verify_offline(&access_old, &set, jsonwebtoken::Algorithm::RS256)["jti"],
        claims_of(&access_old)["jti"]
    );

    let dropped = asymmetric(backend, "RS256", "rsa2.pem", &[]).await;
    assert_eq!(jwks(&dropped).await.keys.len(), 1);
    let (status, body) = answer(
        dropped
            .post_json("/api/token/verify/", json!({"token": access_old}))
            .await,
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Token is invalid", "code": "token_not_valid"})
        )
    );
}

async fn hmac_signed_with_the_public_key_is_refused(backend: Backend) {
    let app = asymmetric(backend, "RS256", "rsa1.pem", &[]).await;
    let user = app.register("conf").await;
    let (access, _) = app.login(&user).await;
    let kid = header_of(&access)["kid"].clone();
    let public_pem = std::fs::read(key("rsa1.pub.pem")).unwrap();
    let confused = forge(
        &json!({"alg": "HS256", "kid": kid, "typ": "JWT"}),
        &claims_of(&access),
        &public_pem,
    );
    let (status, body) = answer(
        app.post_json("/api/token/verify/", json!({"token": confused}))
            .await,
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Token is invalid", "code": "token_not_valid"})
        )
    );
    // And an HMAC deployment publishes no keys at all.
    let hmac = TestApp::spawn(backend).await;
    assert!(jwks(&hmac).await.keys.is_empty());
}

#[tokio::test]
async fn short_or_missing_signing_keys_stop_the_start() {
    let settings = |pairs: &[(&str, &str)]| {
        let mut env: std::collections::HashMap<String, String> = [
            (
                "TESSERA__SERVER__BIND".to_string(),
                "127.0.0.1:0".to_string(),
            ),
            ("DATABASE_URL".into(), "sqlite::memory:".into()),
        ]
        .into();
        env.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        tessera::Settings::load_from(env).unwrap()
    };
    let err = tessera::Application::build(settings(&[("TESSERA__JWT__SIGNING_KEY", "short")]))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("at least 32 bytes"), "{err}");
    let err = tessera::Application::build(settings(&[]))
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("TESSERA__JWT__SIGNING_KEY"),
        "{err}"
    );
    let dev = tessera::Settings {
        dev: true,
        ..settings(&[("TESSERA__JWT__SIGNING_KEY", "short")])
    };
    assert!(
        tessera::Application::build(dev).await.is_ok(),
        "--dev allows a short key"
    );
    let dev = tessera::Settings {
        dev: true,
        ..settings(&[])
    };
    assert!(
        tessera::Application::build(dev).await.is_ok(),
        "--dev makes an ephemeral key"
    );
}

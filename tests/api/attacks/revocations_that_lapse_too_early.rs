//! Getting a revoked refresh token accepted again: presenting it after Redis let its entry
//! expire but while it is still valid (within the leeway), or presenting the token a
//! blacklisted one replaced while its reuse grace is open.
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp, post};

on_every_backend!(
    a_blacklisted_refresh_token_stays_refused_through_the_leeway,
    blacklisting_a_child_ends_the_grace_of_its_parent,
);

async fn a_blacklisted_refresh_token_stays_refused_through_the_leeway(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("TESSERA__JWT__REFRESH_TOKEN_LIFETIME", "2s"),
            ("TESSERA__JWT__LEEWAY", "30s"),
        ],
    )
    .await;
    let user = app.register("leeway").await;
    let (_, refresh) = app.login(&user).await;
    let (status, _) = post(&app, "/api/token/blacklist/", json!({"refresh": refresh})).await;
    assert_eq!(status, StatusCode::OK);
    // Past `exp`, still within the leeway: the token itself is still valid.
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "token_not_valid", "{body}");
}

async fn blacklisting_a_child_ends_the_grace_of_its_parent(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("TESSERA__JWT__REUSE_GRACE", "60s")]).await;
    let user = app.register("grace").await;
    let (_, parent) = app.login(&user).await;
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": parent})).await;
    assert_eq!(status, StatusCode::OK);
    let child = body["refresh"].as_str().unwrap().to_owned();
    // The user logs out with the newest token...
    let (status, _) = post(&app, "/api/token/blacklist/", json!({"refresh": child})).await;
    assert_eq!(status, StatusCode::OK);
    // ...and the one it replaced, still within its grace, must not log them back in.
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": parent})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = post(&app, "/api/token/refresh/", json!({"refresh": child})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

//! Completing a login that is no longer the one the password started: another user's code,
//! an expired mfa_token, one from before a password change, deactivation or the removal of
//! the factor.
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{
    helpers::{Backend, PASSWORD, TestApp, answer},
    mfa::{MFA_ON, code, complete, enrolled, mfa_token},
};

on_every_backend!(
    a_code_of_another_user_completes_nothing,
    an_expired_mfa_token_is_refused,
    a_password_change_voids_pending_logins,
    deactivation_voids_pending_logins,
    removing_the_factor_voids_pending_logins,
);

async fn a_code_of_another_user_completes_nothing(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[MFA_ON]).await;
    let (alice, _, _) = enrolled(&app, "alice").await;
    let (_, bobs_app, bobs_codes) = enrolled(&app, "bob").await;
    let token = mfa_token(&app, &alice, "/api/token/").await;
    let (status, body) = complete(&app, &token, &code(&bobs_app, 0).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body, json!({"code": ["Invalid code."]}));
    let (status, _) = complete(&app, &token, &bobs_codes[0]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn an_expired_mfa_token_is_refused(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[MFA_ON, ("TESSERA__MFA__TOKEN_LIFETIME", "1s")]).await;
    let (user, totp, _) = enrolled(&app, "late").await;
    let token = mfa_token(&app, &user, "/api/token/").await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (status, body) = complete(&app, &token, &code(&totp, 0).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["mfa_token"].is_array(), "{body}");
}

async fn a_password_change_voids_pending_logins(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[MFA_ON]).await;
    let (user, totp, _) = enrolled(&app, "changed").await;
    let stolen = mfa_token(&app, &user, "/api/token/").await;
    let own = mfa_token(&app, &user, "/api/token/").await;
    let (status, pair) = complete(&app, &own, &code(&totp, 0).await).await;
    assert_eq!(status, StatusCode::OK);
    let change = app
        .request(Method::POST, "/auth/users/set_password/")
        .bearer_auth(pair["access"].as_str().unwrap())
        .json(&json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer(change).await.0, StatusCode::NO_CONTENT);
    let (status, body) = complete(&app, &stolen, &code(&totp, 1).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["mfa_token"].is_array(), "{body}");
}

async fn deactivation_voids_pending_logins(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[MFA_ON]).await;
    let (user, totp, _) = enrolled(&app, "deactivated").await;
    let pending = mfa_token(&app, &user, "/api/token/").await;
    let change = tessera::domain::users::UserChange {
        is_active: Some(false),
        ..Default::default()
    };
    let id = user.id.parse().unwrap();
    app.app_state.users.apply(id, &change).await.unwrap();
    let (status, body) = complete(&app, &pending, &code(&totp, 0).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["mfa_token"].is_array(), "{body}");
}

async fn removing_the_factor_voids_pending_logins(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[MFA_ON]).await;
    let (user, totp, codes) = enrolled(&app, "removed").await;
    let pending = mfa_token(&app, &user, "/api/token/").await;
    let own = mfa_token(&app, &user, "/api/token/").await;
    let (_, pair) = complete(&app, &own, &code(&totp, 0).await).await;
    let remove = app
        .request(Method::DELETE, "/auth/mfa/totp/")
        .bearer_auth(pair["access"].as_str().unwrap())
        .json(&json!({"current_password": PASSWORD, "code": codes[0]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer(remove).await.0, StatusCode::NO_CONTENT);
    let (status, _) = complete(&app, &pending, &code(&totp, 1).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

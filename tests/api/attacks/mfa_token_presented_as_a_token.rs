//! Using the mfa_token of a right password as something it is not: an access token (Bearer),
//! an opaque key (Token), a refresh token, a token to verify or blacklist, or the completion of
//! the other login kind. It is good for its own completion only.
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{
    helpers::{Backend, TestApp, answer, me, post},
    mfa::{MFA_ON, code, complete, enrolled, mfa_token},
};

on_every_backend!(an_mfa_token_works_nowhere_but_at_its_completion);

async fn an_mfa_token_works_nowhere_but_at_its_completion(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[MFA_ON]).await;
    let (user, totp, _) = enrolled(&app, "misuse").await;
    let token = mfa_token(&app, &user, "/api/token/").await;
    for header in [format!("Bearer {token}"), format!("Token {token}")] {
        let (status, body) = me(&app, &header).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header}: {body}");
    }
    let (status, _) = post(&app, "/api/token/refresh/", json!({"refresh": token})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = post(&app, "/api/token/verify/", json!({"token": token})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = post(&app, "/api/token/blacklist/", json!({"refresh": token})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let body = json!({"mfa_token": token, "code": code(&totp, 0).await});
    let (status, _) = post(&app, "/auth/token/login/mfa/", body).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a pair login's token at the key completion"
    );
    // A pair is no mfa_token either.
    let (status, pair) = complete(&app, &token, &code(&totp, 0).await).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    for other in [&pair["access"], &pair["refresh"]] {
        let (status, body) = complete(&app, other.as_str().unwrap(), &code(&totp, 1).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["mfa_token"].is_array(), "{body}");
    }
    // And the used token still opens nothing.
    let response = app
        .request(Method::GET, "/auth/users/me/")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer(response).await.0, StatusCode::UNAUTHORIZED);
}

//! Every endpoint that takes credentials becomes a password-guessing oracle (and an argon2 cost
//! per request) when it accepts HTTP Basic. Basic is opt-in (`auth.basic`); off, a Basic header
//! is an unknown scheme: no password is checked, so no guess counts or costs anything.
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp, answer};

on_every_backend!(
    a_basic_header_is_ignored_and_checks_no_password_while_basic_auth_is_off,
    basic_auth_works_and_counts_failures_when_enabled,
);

async fn app(backend: Backend, basic: &str) -> TestApp {
    TestApp::spawn_with(
        backend,
        &[
            // The harness turns Basic on for the other tests; this is the shipped default.
            ("TESSERA__AUTH__BASIC", basic),
            ("TESSERA__THROTTLE__ENABLED", "true"),
            ("TESSERA__THROTTLE__LOCKOUT_FAILURES", "3"),
            ("TESSERA__THROTTLE__LOCKOUT_WINDOW", "1h"),
        ],
    )
    .await
}

async fn me_with_basic(app: &TestApp, username: &str, password: &str) -> (StatusCode, Value) {
    answer(
        app.request(Method::GET, "/auth/users/me/")
            .basic_auth(username, Some(password))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn login_status(app: &TestApp, username: &str, password: &str) -> StatusCode {
    let body = json!({"username": username, "password": password});
    app.post_json("/api/token/", body).await.status()
}

async fn documented_schemes(app: &TestApp) -> Value {
    let (status, doc) = answer(
        app.request(Method::GET, "/openapi.json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    doc["components"]["securitySchemes"].clone()
}

async fn a_basic_header_is_ignored_and_checks_no_password_while_basic_auth_is_off(
    backend: Backend,
) {
    let app = app(backend, "false").await;
    let user = app.register("basicoff").await;
    let not_provided = json!({"detail": "Authentication credentials were not provided.", "code": "not_authenticated"});
    let (status, body) = me_with_basic(&app, &user.username, PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, not_provided, "the right password opens nothing");
    for n in 0..20 {
        let (status, body) = me_with_basic(&app, &user.username, &format!("guess-{n}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "guess {n}");
        assert_eq!(body, not_provided, "a wrong password is not even checked");
    }
    // Twenty guesses past a lockout of three: none was a password check, so none counted.
    assert_eq!(
        login_status(&app, &user.username, PASSWORD).await,
        StatusCode::OK
    );
    let (access, _) = app.login(&user).await;
    let (status, body) = answer(
        app.request(Method::GET, "/auth/users/me/")
            .bearer_auth(&access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["username"], user.username.as_str());
    let schemes = documented_schemes(&app).await;
    assert!(schemes.get("basicAuth").is_none(), "{schemes}");
    assert!(schemes.get("bearerAuth").is_some() && schemes.get("tokenAuth").is_some());
}

async fn basic_auth_works_and_counts_failures_when_enabled(backend: Backend) {
    let app = app(backend, "true").await;
    let user = app.register("basicon").await;
    let (status, body) = me_with_basic(&app, &user.username, PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["username"], user.username.as_str());
    for n in 0..3 {
        let (status, body) = me_with_basic(&app, &user.username, &format!("guess-{n}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "guess {n}");
        assert_eq!(
            body,
            json!({"detail": "Invalid username/password.", "code": "authentication_failed"})
        );
    }
    // Those were password checks: the account is locked out everywhere now.
    assert_eq!(
        login_status(&app, &user.username, PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let schemes = documented_schemes(&app).await;
    assert_eq!(schemes["basicAuth"]["scheme"], "basic", "{schemes}");
}

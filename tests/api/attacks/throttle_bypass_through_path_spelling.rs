//! Getting around the rates: other spellings of a throttled path (doubled or trailing slashes),
//! and an `Authorization` header that does not authenticate, to escape the anonymous rate.
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Backend, TestApp};

on_every_backend!(
    login_rate_holds_for_every_spelling_of_the_path,
    a_header_that_fails_to_authenticate_counts_as_anonymous,
);

async fn login_rate_holds_for_every_spelling_of_the_path(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("TESSERA__THROTTLE__ENABLED", "true"),
            ("TESSERA__THROTTLE__SCOPES__LOGIN", "3/min"),
        ],
    )
    .await;
    let attempt = |path: &'static str| {
        app.post_json(path, json!({"username": "nobody", "password": "guess"}))
    };
    // The first three guesses use odd spellings: each one still counts.
    for path in ["//api/token/", "/api//token/", "/auth//jwt/create//"] {
        assert_eq!(
            attempt(path).await.status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    for path in [
        "/api/token/",
        "/api/token",
        "//api/token/",
        "/api//token/",
        "/api/token//",
        "///api///token",
        "/auth/jwt/create/",
        "//auth/token/login",
        "/api/token/?next=/",
    ] {
        let response = attempt(path).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert!(response.headers().contains_key("retry-after"), "{path}");
    }
}

async fn a_header_that_fails_to_authenticate_counts_as_anonymous(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("TESSERA__THROTTLE__ENABLED", "true"),
            ("TESSERA__THROTTLE__ANON", "3/min"),
            ("TESSERA__THROTTLE__USER", "1000/min"),
        ],
    )
    .await;
    let user = app.register("honest").await;
    let (access, _) = app.login(&user).await;
    let me = |authorization: Option<&str>| {
        let mut request = app.request(Method::GET, "//auth/users//me");
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        request.send()
    };
    let tampered = format!("Bearer {}x", access);
    let headers = [
        Some("x"),
        Some("Bearer not-a-jwt"),
        Some(tampered.as_str()),
        Some("Token 0000000000000000000000000000000000000000"),
        Some("Basic Z2hvc3Q6Z3Vlc3M="),
        None,
    ];
    let mut statuses = Vec::new();
    for header in headers {
        statuses.push(me(header).await.unwrap().status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
        ],
        "one anonymous budget for every header that does not authenticate"
    );
    // The anonymous rate is spent, yet an authenticated caller is counted by user.
    let response = me(Some(&format!("Bearer {access}"))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-ratelimit-limit"], "1000");
}

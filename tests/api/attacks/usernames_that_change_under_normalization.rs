//! Taking over a name through another spelling of it (fullwidth letters, ligatures), and
//! making the server fail with a name whose case-insensitive key is longer than the name.
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, PASSWORD, TestApp, post};

on_every_backend!(
    compatibility_spellings_are_one_name,
    names_that_grow_when_lowercased_are_stored_or_refused_never_a_500,
);

async fn register(app: &TestApp, username: &str) -> (StatusCode, serde_json::Value) {
    post(
        app,
        "/auth/users/",
        json!({"username": username, "password": PASSWORD}),
    )
    .await
}

async fn compatibility_spellings_are_one_name(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = register(&app, "admin").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for lookalike in ["ａｄｍｉｎ", "ＡＤＭＩＮ", "ａdmin"] {
        let (status, body) = register(&app, lookalike).await;
        assert_eq!(
            (status, body),
            (
                StatusCode::BAD_REQUEST,
                json!({"username": ["A user with that username already exists."]})
            ),
            "{lookalike}"
        );
    }
    // Stored as Django stores it: normalized.
    let (status, body) = register(&app, "ｂｏｂ").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["username"], "bob");
    let (status, _) = post(
        &app,
        "/api/token/",
        json!({"username": "bob", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Renaming to a lookalike of a taken name is refused too.
    let carol = app.register("carol").await;
    let (access, _) = app.login(&carol).await;
    let response = app
        .request(reqwest::Method::POST, "/auth/users/set_username/")
        .bearer_auth(&access)
        .json(&json!({"current_password": PASSWORD, "new_username": "ＡＤＭＩＮ"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

async fn names_that_grow_when_lowercased_are_stored_or_refused_never_a_500(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (name, expected) in [
        ("İ".repeat(100), StatusCode::CREATED),
        ("İ".repeat(150), StatusCode::CREATED),
        ("İ".repeat(151), StatusCode::BAD_REQUEST),
        // NFKC makes this 180 characters with spaces: refused, not truncated or stored.
        ("ﷺ".repeat(10), StatusCode::BAD_REQUEST),
    ] {
        let (status, body) = register(&app, &name).await;
        assert_eq!(status, expected, "{} chars: {body}", name.chars().count());
    }
}

//! Every `{"detail": ...}` answer carries a stable machine-readable `code` beside DRF's text
//! (docs/api.md, "Error codes"); field errors keep DRF's exact `{"field": ["message"]}` shape.
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp, answer};

on_every_backend!(
    every_kind_of_error_answer_carries_its_code,
    throttled_answers_carry_the_throttled_code,
    saturated_password_hashing_answers_503_service_unavailable,
);

/// The status and `code` of a `{"detail": "...", "code": "..."}` answer, checking its shape.
async fn status_and_code(response: reqwest::Response) -> (StatusCode, String) {
    let (status, body) = answer(response).await;
    assert!(body["detail"].is_string(), "{status}: {body}");
    let code = body["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code: {body}"));
    (status, code.to_owned())
}

async fn every_kind_of_error_answer_carries_its_code(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("TESSERA__SERVER__BODY_LIMIT", "4096")]).await;
    let alice = app.register("alice").await;
    let admin = app.staff().await;
    let me = || app.request(Method::GET, "/auth/users/me/");
    let post_users = |content_type: &str, body: Vec<u8>| {
        app.request(Method::POST, "/auth/users/")
            .header("Content-Type", content_type)
            .body(body)
    };
    let cases = [
        (me(), StatusCode::UNAUTHORIZED, "not_authenticated"),
        (
            me().header(
                "Authorization",
                "Token 0123456789abcdef0123456789abcdef01234567",
            ),
            StatusCode::UNAUTHORIZED,
            "authentication_failed",
        ),
        (
            me().basic_auth(&alice.username, Some("wrong")),
            StatusCode::UNAUTHORIZED,
            "authentication_failed",
        ),
        (
            me().header("Authorization", "Bearer not-a-jwt"),
            StatusCode::UNAUTHORIZED,
            "token_not_valid",
        ),
        (
            me().header("Authorization", "Bearer a b"),
            StatusCode::UNAUTHORIZED,
            "bad_authorization_header",
        ),
        (
            app.request(Method::POST, "/api/token/")
                .json(&json!({"username": alice.username, "password": "wrong"})),
            StatusCode::UNAUTHORIZED,
            "no_active_account",
        ),
        (
            alice.auth(app.request(Method::GET, "/auth/groups/")),
            StatusCode::FORBIDDEN,
            "permission_denied",
        ),
        (
            app.request(Method::GET, "/nowhere/"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            admin.auth(app.request(
                Method::GET,
                &format!("/auth/users/{}/", uuid::Uuid::new_v4()),
            )),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            app.request(Method::PUT, "/auth/users/"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            post_users("application/json", b"{\"a\":".to_vec()),
            StatusCode::BAD_REQUEST,
            "parse_error",
        ),
        (
            post_users("application/json", vec![b' '; 5000]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            post_users("text/plain", b"hello".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ];
    for (request, status, code) in cases {
        let request = request.build().unwrap();
        let what = format!("{} {}", request.method(), request.url().path());
        let response = app.client.execute(request).await.unwrap();
        assert_eq!(
            status_and_code(response).await,
            (status, code.to_owned()),
            "{what}"
        );
    }

    // Field errors keep DRF's exact shape: no `detail`, no `code`.
    let (status, body) = answer(
        app.post_json("/auth/users/", json!({"password": PASSWORD}))
            .await,
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"username": ["This field is required."]})
        )
    );
}

async fn throttled_answers_carry_the_throttled_code(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("TESSERA__THROTTLE__ENABLED", "true"),
            ("TESSERA__THROTTLE__ANON", "1/min"),
        ],
    )
    .await;
    let me = || app.request(Method::GET, "/auth/users/me/").send();
    assert_eq!(
        status_and_code(me().await.unwrap()).await,
        (StatusCode::UNAUTHORIZED, "not_authenticated".to_owned())
    );
    let refused = me().await.unwrap();
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        status_and_code(refused).await,
        (StatusCode::TOO_MANY_REQUESTS, "throttled".to_owned())
    );
}

/// One hashing thread and no queue: of registrations sent at once, those that find the thread
/// busy are answered 503 `service_unavailable` with `Retry-After`, the others succeed.
async fn saturated_password_hashing_answers_503_service_unavailable(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("TESSERA__PASSWORDS__WORKERS", "1"),
            ("TESSERA__PASSWORDS__QUEUE", "0"),
            // A hash long enough (~100 ms) that the registrations sent at once overlap.
            ("TESSERA__PASSWORDS__MEMORY_KIB", "65536"),
            ("TESSERA__PASSWORDS__ITERATIONS", "3"),
        ],
    )
    .await;
    let mut registrations = tokio::task::JoinSet::new();
    for n in 0..16 {
        let body = json!({"username": format!("busy{n}"), "password": PASSWORD});
        registrations.spawn(app.request(Method::POST, "/auth/users/").json(&body).send());
    }
    let mut refused = 0;
    while let Some(response) = registrations.join_next().await {
        let response = response.unwrap().unwrap();
        if response.status() == StatusCode::CREATED {
            continue;
        }
        assert_eq!(response.headers()["retry-after"], "1");
        let (status, body): (StatusCode, Value) = answer(response).await;
        assert_eq!(
            (status, body),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"detail": "Service temporarily unavailable, try again later.", "code": "service_unavailable"})
            )
        );
        refused += 1;
    }
    assert!(
        refused > 0,
        "16 registrations at once on one hashing thread"
    );
}

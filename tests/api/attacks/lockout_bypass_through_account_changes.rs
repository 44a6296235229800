//! A stolen session guesses the current password through set_password / set_username: once the
//! account is locked, a wrong guess must never replace the password or the username.
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp, answer};

on_every_backend!(
    set_password_stops_at_the_lockout_even_with_a_wrong_current_password,
    set_username_stops_at_the_lockout_even_with_a_wrong_current_password,
);

const FAILURES: &str = "3";

async fn locking_app(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        &[
            ("TESSERA__THROTTLE__ENABLED", "true"),
            ("TESSERA__THROTTLE__LOCKOUT_FAILURES", FAILURES),
            ("TESSERA__THROTTLE__LOCKOUT_WINDOW", "1h"),
        ],
    )
    .await
}

async fn post(app: &TestApp, access: &str, path: &str, body: Value) -> (StatusCode, Value) {
    answer(
        app.request(Method::POST, path)
            .bearer_auth(access)
            .json(&body)
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

async fn set_password_stops_at_the_lockout_even_with_a_wrong_current_password(backend: Backend) {
    let app = locking_app(backend).await;
    let user = app.register("victim").await;
    let (access, _) = app.login(&user).await;
    let hash_before = app.stored_password_hash(&user.username).await;
    let guess = |n: usize| json!({"current_password": format!("guess-{n}"), "new_password": "attacker owns this 1"});
    for n in 0..3 {
        let (status, body) = post(&app, &access, "/auth/users/set_password/", guess(n)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, json!({"current_password": ["Invalid password."]}));
    }
    for n in 3..6 {
        let response = app
            .request(Method::POST, "/auth/users/set_password/")
            .bearer_auth(&access)
            .json(&guess(n))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "guess {n}"
        );
        assert!(response.headers().contains_key("retry-after"));
    }
    // Even the right current password is refused while locked: the lockout is not an oracle.
    let right = json!({"current_password": PASSWORD, "new_password": "attacker owns this 1"});
    let (status, _) = post(&app, &access, "/auth/users/set_password/", right).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        app.stored_password_hash(&user.username).await,
        hash_before,
        "the password was never replaced"
    );
    assert_eq!(
        login_status(&app, &user.username, "attacker owns this 1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn set_username_stops_at_the_lockout_even_with_a_wrong_current_password(backend: Backend) {
    let app = locking_app(backend).await;
    let user = app.register("victim").await;
    let (access, _) = app.login(&user).await;
    for n in 0..6 {
        let body =
            json!({"current_password": format!("guess-{n}"), "new_username": format!("stolen{n}")});
        let (status, _) = post(&app, &access, "/auth/users/set_username/", body).await;
        let expected = if n < 3 {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(status, expected, "guess {n}");
    }
    let (status, me) = answer(
        app.request(Method::GET, "/auth/users/me/")
            .bearer_auth(&access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me["username"],
        json!(user.username),
        "the username was kept"
    );
}

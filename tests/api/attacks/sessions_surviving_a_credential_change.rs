//! Keeping a session alive through a change that must end it: logging out everywhere, a
//! password change by the operator, a deactivation, and a login that races one of them (it read
//! the user before the change and mints after it).
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestUser, me, post};

on_every_backend!(
    logging_out_everywhere_ends_keys_and_refresh_tokens_too,
    the_operators_password_change_ends_every_session,
    a_deactivation_ends_every_session,
    a_login_racing_a_logout_everywhere_is_refused,
);

/// Every kind of session `user` can hold: an access token, a refresh token and an opaque key.
struct Sessions {
    access: String,
    refresh: String,
    key: String,
}

async fn token_login(app: &TestApp, user: &TestUser) -> String {
    let (status, body) = post(
        app,
        "/auth/token/login/",
        json!({"username": user.username, "password": user.password}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["auth_token"].as_str().unwrap().to_owned()
}

async fn sessions(app: &TestApp, user: &TestUser) -> Sessions {
    let (access, refresh) = app.login(user).await;
    let key = token_login(app, user).await;
    Sessions {
        access,
        refresh,
        key,
    }
}

/// Asserts that none of `s` is accepted any more.
async fn all_refused(app: &TestApp, s: &Sessions) {
    assert_eq!(
        me(app, &format!("Bearer {}", s.access)).await.0,
        StatusCode::UNAUTHORIZED,
        "access token"
    );
    let (status, body) = post(app, "/api/token/refresh/", json!({"refresh": s.refresh})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "refresh token: {body}");
    assert_eq!(
        me(app, &format!("Token {}", s.key)).await.0,
        StatusCode::UNAUTHORIZED,
        "opaque key"
    );
}

async fn logging_out_everywhere_ends_keys_and_refresh_tokens_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("everywhere").await;
    let phone = sessions(&app, &user).await;
    let laptop = sessions(&app, &user).await;
    let response = app
        .request(reqwest::Method::POST, "/api/token/revoke_all/")
        .bearer_auth(&laptop.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    all_refused(&app, &phone).await;
    all_refused(&app, &laptop).await;
    // The user can log in again.
    let again = sessions(&app, &user).await;
    assert_eq!(
        me(&app, &format!("Token {}", again.key)).await.0,
        StatusCode::OK
    );
}

async fn the_operators_password_change_ends_every_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut user = app.register("operated").await;
    let before = sessions(&app, &user).await;
    // What `tessera changepassword` calls once it has read the password twice.
    let row = app
        .app_state
        .users
        .find(user.id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    app.app_state
        .accounts
        .set_password_as_operator(row, "a brand new passphrase")
        .await
        .unwrap();
    all_refused(&app, &before).await;
    user.password = "a brand new passphrase".into();
    let after = sessions(&app, &user).await;
    assert_eq!(
        me(&app, &format!("Bearer {}", after.access)).await.0,
        StatusCode::OK
    );
}

async fn a_deactivation_ends_every_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("leaver").await;
    let before = sessions(&app, &user).await;
    app.app_state
        .accounts
        .deactivate(user.id.parse().unwrap())
        .await
        .unwrap();
    all_refused(&app, &before).await;
    // Reactivated, the old sessions stay ended.
    app.app_state
        .users
        .activate(user.id.parse().unwrap())
        .await
        .unwrap();
    all_refused(&app, &before).await;
}

/// The victim's logins wait in the one-worker hashing queue behind other users' logins, long
/// after they read the victim's row; meanwhile the victim logs out everywhere. The logins then
/// mint a token and a key under the credentials that logout ended: both must be refused.
async fn a_login_racing_a_logout_everywhere_is_refused(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("TESSERA__PASSWORDS__WORKERS", "1"),
            ("TESSERA__PASSWORDS__QUEUE", "256"),
            ("TESSERA__PASSWORDS__MEMORY_KIB", "32768"),
            ("TESSERA__PASSWORDS__ITERATIONS", "3"),
        ],
    )
    .await;
    let victim = app.register("victim").await;
    let bystander = app.register("bystander").await;
    let (access, _) = app.login(&victim).await;
    // Sent requests own their data, so they can run as tasks.
    let login = |path: &str, u: &TestUser| {
        let body = json!({"username": u.username, "password": u.password});
        tokio::spawn(app.request(reqwest::Method::POST, path).json(&body).send())
    };

    // Fill the queue with other users' logins: several seconds of hashing on one worker.
    let mut fillers = Vec::new();
    for _ in 0..48 {
        fillers.push(login("/api/token/", &bystander));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let jwt_login = login("/api/token/", &victim);
    let key_login = login("/auth/token/login/", &victim);
    // Both have read the victim's row and wait for the worker; now the victim logs out.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logout = app
        .request(reqwest::Method::POST, "/api/token/revoke_all/")
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let logged_out = Instant::now();

    let jwt = jwt_login.await.unwrap().unwrap();
    let key = key_login.await.unwrap().unwrap();
    assert!(
        logged_out.elapsed() > Duration::from_millis(50),
        "the race was not staged: the logins finished before the logout did"
    );
    assert_eq!(jwt.status(), StatusCode::OK);
    assert_eq!(key.status(), StatusCode::OK);
    let jwt: Value = jwt.json().await.unwrap();
    let key: Value = key.json().await.unwrap();
    for filler in fillers {
        filler.await.unwrap().unwrap();
    }
    all_refused(
        &app,
        &Sessions {
            access: jwt["access"].as_str().unwrap().to_owned(),
            refresh: jwt["refresh"].as_str().unwrap().to_owned(),
            key: key["auth_token"].as_str().unwrap().to_owned(),
        },
    )
    .await;
}

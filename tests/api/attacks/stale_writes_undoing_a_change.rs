//! Undoing a security change with a write from an older read: a login that read the user
//! before a deactivation or a password reset, then stamps `last_login` (or a profile change made
//! from a cached row) must not write the old `is_active` or password back.
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, PASSWORD, TestApp, post};

on_every_backend!(a_write_from_an_older_read_keeps_a_deactivation_and_a_new_password);

async fn a_write_from_an_older_read_keeps_a_deactivation_and_a_new_password(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("TESSERA__JWT__UPDATE_LAST_LOGIN", "true")]).await;
    let users = &app.app_state.users;
    let accounts = &app.app_state.accounts;

    // A password reset lands between a login's read and its last_login stamp.
    let user = app.register("stale").await;
    let id = user.id.parse().unwrap();
    let mut read_before = users.find(id).await.unwrap().unwrap();
    accounts
        .set_password_as_operator(read_before.clone(), "the new passphrase 1")
        .await
        .unwrap();
    users.record_login(&mut read_before).await.unwrap();
    let login = |password: &str| {
        post(
            &app,
            "/api/token/",
            json!({"username": user.username, "password": password}),
        )
    };
    assert_eq!(
        login(PASSWORD).await.0,
        StatusCode::UNAUTHORIZED,
        "old password"
    );
    assert_eq!(login("the new passphrase 1").await.0, StatusCode::OK);

    // A deactivation lands between the read and the stamp.
    let mut read_before = users.find(id).await.unwrap().unwrap();
    accounts.deactivate(id).await.unwrap();
    users.record_login(&mut read_before).await.unwrap();
    let now = users.find(id).await.unwrap().unwrap();
    assert!(!now.is_active, "the deactivation stands");
    assert!(now.last_login.is_some(), "the stamp was written");
    assert_eq!(
        login("the new passphrase 1").await.0,
        StatusCode::UNAUTHORIZED
    );
}

//! Stored hashes no Django writes (an import gone wrong, a row edited by hand, a hostile one with
//! a cost meant to pin the hashing threads): each is a plain failed login, never a match, a 500
//! or a hang, and the service keeps logging others in.
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, PASSWORD, TestApp, post};

on_every_backend!(garbled_or_hostile_stored_hashes_are_plain_login_failures);

/// A valid key and salt of the Django vectors, to build hashes whose only fault is elsewhere.
const PBKDF2_KEY: &str = "nbzzDE4b8vulwvHIqLHruiTX1NoZDRiLc2EqS2Don+s=";
const SCRYPT_KEY: &str =
    "6OIFNwMLlh7IxywPnQ+cJdADUAX7d4N9/lwiG4yt9V4RpEQT3NBJcWRvXwszbukID/Fr1XKwFdGJBwi2OYNmgA==";
const BCRYPT_TAIL: &str = "2Dvm3Q9BS147DpDXQG6oD.2v2Ez3TUertqhpIVA4QPql0byZqBLUW";
const ARGON2_TAIL: &str = "czRsdHNhbHRzNGx0c2FsdA$aF9IBsiIjodmO2lSa4e45X1l9o+q3tfQQSYdy1JYBhc";

fn garbled() -> Vec<String> {
    vec![
        // Costs meant to take hours (or memory the machine does not have).
        "pbkdf2_sha256$999999999999$x$y".into(),
        format!("pbkdf2_sha256$4294967295$s4ltsalt${PBKDF2_KEY}"),
        format!("pbkdf2_sha256$10000001$s4ltsalt${PBKDF2_KEY}"),
        format!("bcrypt_sha256$$2b$31${BCRYPT_TAIL}"),
        format!("scrypt$1073741824$s4ltsalt$8$1${SCRYPT_KEY}"),
        format!("scrypt$1024$s4ltsalt$8$4294967295${SCRYPT_KEY}"),
        format!("argon2$argon2id$v=19$m=4294967295,t=1,p=1${ARGON2_TAIL}"),
        format!("$argon2id$v=19$m=1024,t=4294967295,p=1${ARGON2_TAIL}"),
        format!("$argon2id$v=19$m=1024,t=1,p=16777215${ARGON2_TAIL}"),
        // Empty or missing parts.
        "pbkdf2_sha256$$$".into(),
        "pbkdf2_sha256$1000$$".into(),
        "pbkdf2_sha1$1000$s4ltsalt$".into(),
        "bcrypt$$2b$04$".into(),
        "scrypt$$$$$".into(),
        "argon2$".into(),
        "$argon2id$v=19$m=1024,t=1,p=2$$".into(),
        "$".into(),
        String::new(),
        // Not base64, not numbers, not what Django writes.
        "pbkdf2_sha256$1000$s4ltsalt$***not base64***".into(),
        format!("pbkdf2_sha256$-1000$s4ltsalt${PBKDF2_KEY}"),
        format!("pbkdf2_sha256$１０００$s4ltsalt${PBKDF2_KEY}"),
        format!("pbkdf2_sha256$1000$s4ltsalt${PBKDF2_KEY}\n"),
        format!("scrypt$1000$s4ltsalt$8$1${SCRYPT_KEY}"),
        "md5$s4ltsalt$3f0d2a9d3c8f1e5b7a6c4d2e1f0a9b8c".into(),
        // The password itself, stored in clear by a broken import.
        PASSWORD.into(),
    ]
}

async fn garbled_or_hostile_stored_hashes_are_plain_login_failures(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let no_account = json!({"detail": "No active account found with the given credentials", "code": "no_active_account"});
    for hash in garbled() {
        let user = app.imported("garbled", &hash).await;
        let started = Instant::now();
        let (status, body) = post(
            &app,
            "/api/token/",
            json!({"username": user.username, "password": PASSWORD}),
        )
        .await;
        assert_eq!(
            (status, body),
            (StatusCode::UNAUTHORIZED, no_account.clone()),
            "{hash:?}"
        );
        let (status, _) = post(
            &app,
            "/auth/token/login/",
            json!({"username": user.username, "password": PASSWORD}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{hash:?}");
        // Two dummy checks at the test apps' cost: far below a second, whatever the row says.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{hash:?} took {:?}",
            started.elapsed()
        );
        assert_eq!(app.stored_password_hash(&user.username).await, hash);
    }
    // Nothing was left pinned: a real login still goes through.
    let user = app.register("after").await;
    app.login(&user).await;
}

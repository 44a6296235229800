//! Getting more second-factor guesses than the lockout allows by spreading them over every
//! way to reach a completion: both completion endpoints, without the trailing slash, doubled
//! slashes, a `[paths]` alias, and fresh mfa_tokens from new password logins.
use reqwest::StatusCode;
use serde_json::json;

use crate::{
    helpers::{Backend, PASSWORD, TestApp, post},
    mfa::{MFA_ON, code, enrolled},
};

on_every_backend!(guesses_over_every_path_share_one_lockout);

async fn guesses_over_every_path_share_one_lockout(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            MFA_ON,
            ("TESSERA__THROTTLE__LOCKOUT_FAILURES", "6"),
            ("TESSERA__PATHS__ALIASES", "/api/jwt/mfa/=/api/token/mfa/"),
        ],
    )
    .await;
    let (user, totp, _) = enrolled(&app, "spread").await;
    let right = code(&totp, 0).await;
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let paths = [
        ("/api/token/", "/api/token/mfa/"),
        ("/api/token/", "/api/token/mfa"),
        ("/auth/token/login/", "/auth/token/login/mfa/"),
        ("/auth/token/login/", "//auth/token/login//mfa"),
        ("/auth/jwt/create/", "/api/jwt/mfa/"),
        ("/api/api-token-auth/", "/auth/token/login/mfa"),
    ];
    // Each round: a fresh password login (counted once) and one wrong code on another path.
    let mut checked = 0;
    let mut locked = false;
    for (login, completion) in paths.iter().cycle().take(12) {
        let body = json!({"username": user.username, "password": PASSWORD});
        let (status, answer) = post(&app, login, body).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            locked = true;
            break;
        }
        assert_eq!(answer["code"], "mfa_required", "{login}: {answer}");
        let token = answer["mfa_token"].as_str().unwrap();
        let body = json!({"mfa_token": token, "code": wrong});
        let (status, answer) = post(&app, completion, body).await;
        match status {
            StatusCode::BAD_REQUEST => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                locked = true;
                break;
            }
            other => panic!("{completion}: {other} {answer}"),
        }
    }
    assert!(locked, "never locked");
    // Six attempts in all: three passwords and three codes.
    assert_eq!(checked, 3, "wrong codes checked");
    let body = json!({"username": user.username, "password": PASSWORD});
    let (status, _) = post(&app, "/api/token/", body).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

//! Getting more than one login out of one second-factor secret: the same TOTP code, the same
//! recovery code or the same mfa_token sent in a parallel burst, each request checked before
//! any other had used it up.
use reqwest::StatusCode;

use crate::{
    helpers::{Backend, TestApp},
    mfa::{MFA_ON, code, complete, enrolled, mfa_token},
};

on_every_backend!(
    one_code_in_a_burst_of_ten_completions_logs_in_once,
    one_recovery_code_in_a_burst_logs_in_once,
    one_mfa_token_in_a_burst_gives_one_pair,
);

/// The statuses of `completions` run all at once.
async fn burst(app: &TestApp, completions: Vec<(String, String)>) -> Vec<StatusCode> {
    let requests = completions
        .iter()
        .map(|(token, code)| complete(app, token, code));
    futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|(status, body)| {
            assert!(
                matches!(status, StatusCode::OK | StatusCode::BAD_REQUEST),
                "{status}: {body}"
            );
            status
        })
        .collect()
}

fn successes(statuses: &[StatusCode]) -> usize {
    statuses.iter().filter(|s| **s == StatusCode::OK).count()
}

async fn one_code_in_a_burst_of_ten_completions_logs_in_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[MFA_ON]).await;
    let (user, totp, _) = enrolled(&app, "burst").await;
    let mut tokens = Vec::new();
    for _ in 0..10 {
        tokens.push(mfa_token(&app, &user, "/api/token/").await);
    }
    let code = code(&totp, 0).await;
    let statuses = burst(
        &app,
        tokens.into_iter().map(|t| (t, code.clone())).collect(),
    )
    .await;
    assert_eq!(successes(&statuses), 1, "{statuses:?}");
}

async fn one_recovery_code_in_a_burst_logs_in_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[MFA_ON]).await;
    let (user, _, codes) = enrolled(&app, "burst").await;
    let mut tokens = Vec::new();
    for _ in 0..10 {
        tokens.push(mfa_token(&app, &user, "/api/token/").await);
    }
    let statuses = burst(
        &app,
        tokens.into_iter().map(|t| (t, codes[0].clone())).collect(),
    )
    .await;
    assert_eq!(successes(&statuses), 1, "{statuses:?}");
}

async fn one_mfa_token_in_a_burst_gives_one_pair(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[MFA_ON]).await;
    let (user, _, codes) = enrolled(&app, "burst").await;
    let token = mfa_token(&app, &user, "/api/token/").await;
    // Ten different right codes: only the token's single use stands between them and ten pairs.
    let statuses = burst(
        &app,
        codes.iter().map(|c| (token.clone(), c.clone())).collect(),
    )
    .await;
    assert_eq!(successes(&statuses), 1, "{statuses:?}");
}

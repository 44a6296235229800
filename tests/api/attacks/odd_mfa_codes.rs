//! Odd input where a code or an mfa_token goes: too long, padded, non-ASCII digits, numbers,
//! null, ten thousand characters. Each is a 400 in DRF's shape, never a 500 nor a login.
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    helpers::{Backend, PASSWORD, TestApp, answer, call, post},
    mfa::{MFA_ON, complete, enrolled, mfa_token},
};

on_every_backend!(odd_codes_and_tokens_are_plain_400s);

fn odd_codes() -> Vec<Value> {
    vec![
        json!("1234567"),
        json!("12345"),
        json!(" 123456"),
        json!(" 123456 x"),
        json!("+12345"),
        json!("-12345"),
        json!("١٢٣٤٥٦"),
        json!("１２３４５６"),
        json!("12345\u{0}"),
        json!("9".repeat(10_000)),
        json!("a-".repeat(5_000)),
        json!(""),
        json!(123456),
        json!(null),
        json!(["123456"]),
        json!({"code": "123456"}),
    ]
}

async fn odd_codes_and_tokens_are_plain_400s(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[MFA_ON]).await;
    let (user, _, recovery) = enrolled(&app, "odd").await;
    let token = mfa_token(&app, &user, "/api/token/").await;
    for code in odd_codes() {
        let body = json!({"mfa_token": token, "code": code});
        let (status, answer) = post(&app, "/api/token/mfa/", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{code:.40}: {answer}");
        assert!(answer["code"].is_array(), "{answer}");
    }
    for odd in [json!("x".repeat(10_000)), json!("é"), json!(7), json!("")] {
        let body = json!({"mfa_token": odd, "code": "123456"});
        let (status, answer) = post(&app, "/api/token/mfa/", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer["mfa_token"].is_array(), "{answer}");
    }
    let (status, _) = complete(&app, &token, "000000").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the token survived all that"
    );
    // The same at confirmation (a pending enrolment) and removal.
    let other = app.register("odd").await;
    let (status, _) = call(&app, &other, Method::POST, "/auth/mfa/totp/", None).await;
    assert_eq!(status, StatusCode::OK);
    for code in odd_codes() {
        let body = Some(json!({"code": code}));
        let (status, answer) =
            call(&app, &other, Method::POST, "/auth/mfa/totp/confirm/", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    }
    let own = mfa_token(&app, &user, "/api/token/").await;
    let (status, pair) = complete(&app, &own, &recovery[0]).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let access = pair["access"].as_str().unwrap().to_owned();
    for code in odd_codes() {
        let response = app
            .request(Method::DELETE, "/auth/mfa/totp/")
            .bearer_auth(&access)
            .json(&json!({"current_password": PASSWORD, "code": code}))
            .send()
            .await
            .unwrap();
        let (status, answer) = answer(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    }
}

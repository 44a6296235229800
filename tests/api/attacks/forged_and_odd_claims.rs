//! Tokens signed with the real key but with claims no issuer writes: an `exp` beyond any
//! calendar (so a revocation of it would expire at once), a megabyte `jti`, a user id that is
//! null or of the wrong shape, a refresh token claiming roles its user does not have.
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, SIGNING_KEY, TestApp, forge, me, post};

on_every_backend!(
    timestamps_beyond_the_calendar_are_refused,
    oversized_token_ids_are_refused,
    user_ids_that_name_no_user_answer_user_not_found,
    refresh_tokens_cannot_carry_roles_into_access_tokens,
);

fn token(claims: Value) -> String {
    forge(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &claims,
        SIGNING_KEY.as_bytes(),
    )
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(user: &str, token_type: &str) -> Value {
    json!({"token_type": token_type, "exp": now() + 300, "iat": now(), "jti": "0123456789abcdef0123456789abcdef", "user_id": user})
}

async fn refused_everywhere(app: &TestApp, access: &str, refresh: &str) {
    let (status, body) = post(app, "/api/token/verify/", json!({"token": access})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "verify: {body}");
    assert_eq!(body["code"], "token_not_valid", "{body}");
    let (status, body) = me(app, &format!("Bearer {access}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "bearer: {body}");
    assert_eq!(body["code"], "token_not_valid", "{body}");
    let (status, body) = post(app, "/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "refresh: {body}");
    let (status, body) = post(app, "/api/token/blacklist/", json!({"refresh": refresh})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "blacklist: {body}");
}

async fn timestamps_beyond_the_calendar_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("forever").await;
    // The control: the same claims with a sane exp are accepted.
    let sane = token(claims(&user.id, "access"));
    assert_eq!(me(&app, &format!("Bearer {sane}")).await.0, StatusCode::OK);
    let huge: [Value; 4] = [
        json!(10_000_000_000_000_000_000u64),
        json!(9_223_372_036_854_775_807i64),
        json!(1.0e300),
        json!(253_402_300_800i64),
    ];
    for exp in huge {
        let mut access = claims(&user.id, "access");
        access["exp"] = exp.clone();
        let mut refresh = claims(&user.id, "refresh");
        refresh["exp"] = exp;
        refused_everywhere(&app, &token(access), &token(refresh)).await;
    }
    // A float exp in range is a timestamp like any other (PyJWT accepts it too).
    let mut float = claims(&user.id, "access");
    float["exp"] = json!(now() as f64 + 300.5);
    assert_eq!(
        me(&app, &format!("Bearer {}", token(float))).await.0,
        StatusCode::OK
    );
}

async fn oversized_token_ids_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("bigjti").await;
    for jti in ["x".repeat(256), "y".repeat(300_000)] {
        let mut access = claims(&user.id, "access");
        access["jti"] = json!(jti);
        let mut refresh = claims(&user.id, "refresh");
        refresh["jti"] = json!(jti);
        let access = token(access);
        let refresh = token(refresh);
        let (status, body) = post(&app, "/api/token/verify/", json!({"token": access})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let (status, _) = post(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = post(&app, "/api/token/blacklist/", json!({"refresh": refresh})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let mut longest = claims(&user.id, "access");
    longest["jti"] = json!("z".repeat(255));
    assert_eq!(
        me(&app, &format!("Bearer {}", token(longest))).await.0,
        StatusCode::OK
    );
}

async fn user_ids_that_name_no_user_answer_user_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let not_found = json!({"detail": "User not found", "code": "user_not_found"});
    for user_id in [
        Value::Null,
        json!(42),
        json!("not-a-uuid"),
        json!(["list"]),
        json!(uuid::Uuid::now_v7().to_string()),
    ] {
        let mut access = claims("", "access");
        access["user_id"] = user_id.clone();
        let (status, body) = me(&app, &format!("Bearer {}", token(access))).await;
        assert_eq!(
            (status, body),
            (StatusCode::UNAUTHORIZED, not_found.clone()),
            "{user_id}"
        );
        let mut refresh = claims("", "refresh");
        refresh["user_id"] = user_id.clone();
        let (status, body) = post(
            &app,
            "/api/token/refresh/",
            json!({"refresh": token(refresh)}),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{user_id}: {body}");
    }
}

/// Refresh carries a refresh token's own claims on (SimpleJWT does), but not the ones Tessera
/// manages: a refresh token minted (or stolen and edited, with a leaked Django key) with
/// `is_staff: true` must not make a non-staff user staff for a downstream service that reads
/// the claims offline, whether or not `[jwt.claims]` puts the facts in.
async fn refresh_tokens_cannot_carry_roles_into_access_tokens(backend: Backend) {
    for facts in ["true", "false"] {
        let app = TestApp::spawn_with(
            backend,
            &[
                ("TESSERA__JWT__CLAIMS__IS_STAFF", facts),
                ("TESSERA__JWT__CLAIMS__IS_SUPERUSER", facts),
                ("TESSERA__JWT__CLAIMS__GROUPS", facts),
                ("TESSERA__JWT__CLAIMS__USERNAME", facts),
                ("TESSERA__JWT__CLAIMS__EMAIL", facts),
            ],
        )
        .await;
        let user = app.register("plain").await;
        let mut refresh = claims(&user.id, "refresh");
        refresh["exp"] = json!(now() + 86_400);
        refresh["iat"] = json!(now() - 1_000);
        refresh["nbf"] = json!(now() - 1_000);
        for (name, value) in [
            ("is_staff", json!(true)),
            ("is_superuser", json!(true)),
            ("groups", json!(["admins"])),
            ("username", json!("root")),
            ("email", json!("root@example.com")),
            ("aud", json!("billing")),
            ("iss", json!("https://django.example")),
            ("tenant", json!("acme")),
        ] {
            refresh[name] = value;
        }
        let (status, body) = post(
            &app,
            "/api/token/refresh/",
            json!({"refresh": token(refresh)}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for issued in ["access", "refresh"] {
            let claims = crate::forge::claims_of(body[issued].as_str().unwrap());
            assert_eq!(claims["tenant"], "acme", "the control: {claims}");
            for managed in ["aud", "iss", "nbf"] {
                assert!(
                    claims.get(managed).is_none(),
                    "{issued} {managed}: {claims}"
                );
            }
            assert!(claims["iat"].as_i64().unwrap() >= now() - 5, "{claims}");
            let facts_expected = facts == "true" && issued == "access";
            let expected = |value: Value| if facts_expected { value } else { Value::Null };
            assert_eq!(
                claims["is_staff"],
                expected(json!(false)),
                "{issued}: {claims}"
            );
            assert_eq!(
                claims["is_superuser"],
                expected(json!(false)),
                "{issued}: {claims}"
            );
            assert_eq!(claims["groups"], expected(json!([])), "{issued}: {claims}");
            assert_eq!(
                claims["username"],
                expected(json!(user.username)),
                "{claims}"
            );
            assert_eq!(
                claims["email"],
                expected(json!(format!("{}@example.com", user.username))),
                "{claims}"
            );
        }
        // What a downstream service reads from the access token offline.
        let verifier = tessera_verify::Verifier::hmac(
            tessera_verify::Policy::new(jsonwebtoken::Algorithm::HS256),
            SIGNING_KEY.as_bytes(),
        );
        let read = verifier
            .verify(body["access"].as_str().unwrap())
            .await
            .unwrap();
        assert!(!read.is_staff && !read.is_superuser && read.groups.is_empty());
    }
}

//! SimpleJWT's endpoints, Bearer authentication, rotation, revocation; on every backend.
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    forge::{claims_of, header_segment},
    helpers::{Backend, SIGNING_KEY, TestApp, answer, eventually, forge, me, post},
};

on_every_backend!(
    obtain_issues_a_pair_shaped_like_simplejwts,
    obtain_refuses_bad_credentials_and_inactive_users_alike,
    bearer_access_tokens_authenticate_and_bad_ones_get_simplejwts_answers,
    refresh_rotates_and_a_reused_token_revokes_its_family,
    concurrent_refreshes_of_one_token_let_exactly_one_through,
    a_burst_of_refreshes_within_the_grace_never_answers_500,
    grace_lets_the_immediate_parent_through_once_never_a_grandparent,
    blacklist_revokes_the_refresh_token_and_its_access_token,
    verify_accepts_valid_tokens_and_names_what_is_wrong_with_others,
    forged_tokens_are_refused,
    leeway_tolerates_recent_expiry,
    revoke_all_logs_the_caller_out_everywhere,
    refresh_tokens_minted_elsewhere_with_the_shared_key_start_a_family,
    refresh_of_a_deleted_or_inactive_user_is_refused,
    an_unreachable_redis_falls_back_to_sql_and_never_accepts_a_revoked_token,
    expired_records_are_pruned,
    issuer_audience_and_claim_names_follow_the_settings,
    refresh_without_rotation_answers_only_an_access_token,
    refresh_carries_a_django_projects_own_claims_like_simplejwt,
);

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A SimpleJWT-style token signed with the test key.
fn token(claims: Value) -> String {
    forge(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &claims,
        SIGNING_KEY.as_bytes(),
    )
}

fn access_claims(user_id: &str) -> Value {
    json!({"token_type": "access", "exp": now() + 300, "iat": now(), "jti": uuid::Uuid::new_v4().simple().to_string(), "user_id": user_id})
}

fn invalid(message: &str) -> Value {
    json!({"detail": message, "code": "token_not_valid"})
}

async fn obtain_issues_a_pair_shaped_like_simplejwts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("alice").await;
    for path in ["/api/token/", "/auth/jwt/create/", "/auth/jwt/create"] {
        let (status, body) = post(
            &app,
            path,
            json!({"username": user.username, "password": user.password}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 2);
        for (kind, lifetime) in [("access", 300), ("refresh", 86400)] {
            let token = body[kind].as_str().unwrap();
            assert_eq!(
                header_segment(token),
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
                "byte-identical header"
            );
            let claims = claims_of(token);
            let names: Vec<&String> = claims.as_object().unwrap().keys().collect();
            // SimpleJWT's five, and the credential version that ends the token with the
            // user's sessions.
            assert_eq!(names.len(), 6, "{claims}");
            assert_eq!(claims["cv"], json!(0));
            assert_eq!(claims["token_type"], kind);
            assert_eq!(claims["user_id"], json!(user.id));
            assert_eq!(
                claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
                lifetime
            );
            let jti = claims["jti"].as_str().unwrap();
            assert!(
                jti.len() == 32
                    && jti
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
            // Claim order is SimpleJWT's.
            let payload = String::from_utf8(
                base64::Engine::decode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    token.split('.').nth(1).unwrap(),
                )
                .unwrap(),
            )
            .unwrap();
            assert!(
                payload.starts_with(&format!("{{\"token_type\":\"{kind}\",\"exp\":")),
                "{payload}"
            );
        }
    }
    // Form bodies work too.
    let response = app
        .request(Method::POST, "/api/token/")
        .form(&[
            ("username", user.username.as_str()),
            ("password", user.password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn obtain_refuses_bad_credentials_and_inactive_users_alike(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("bob").await;
    let inactive = app.register("ina").await;
    let accounts = &app.app_state.accounts;
    accounts
        .deactivate(inactive.id.parse().unwrap())
        .await
        .unwrap();
    let refused = json!({"detail": "No active account found with the given credentials", "code": "no_active_account"});
    for (username, password) in [
        (&user.username, "wrong"),
        (&"nobody".to_string(), "whatever1"),
        (&inactive.username, &inactive.password),
    ] {
        let response = app
            .post_json(
                "/api/token/",
                json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="api""#
        );
        assert_eq!(
            answer(response).await,
            (StatusCode::UNAUTHORIZED, refused.clone()),
            "{username}"
        );
    }
    let (status, body) = post(&app, "/api/token/", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"username": ["This field is required."], "password": ["This field is required."]})
    );
    let (_, body) = post(
        &app,
        "/api/token/",
        json!({"username": "", "password": null}),
    )
    .await;
    assert_eq!(
        body,
        json!({"username": ["This field may not be blank."], "password": ["This field may not be null."]})
    );
    let (_, body) = post(
        &app,
        "/api/token/",
        json!({"username": [1], "password": "x"}),
    )
    .await;
    assert_eq!(body, json!({"username": ["Not a valid string."]}));
}

async fn bearer_access_tokens_authenticate_and_bad_ones_get_simplejwts_answers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("carol").await;
    let (access, refresh) = app.login(&user).await;
    let (status, body) = me(&app, &format!("Bearer {access}")).await;
    assert_eq!(
        (status, body["id"].clone()),
        (StatusCode::OK, json!(user.id))
    );

    let not_valid = |message: &str| {
        json!({
            "detail": "Given token not valid for any token type",
            "code": "token_not_valid",
            "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}],
        })
    };
    let mut expired = access_claims(&user.id);
    expired["exp"] = json!(now() - 10);
    let mut untyped = access_claims(&user.id);
    untyped.as_object_mut().unwrap().remove("token_type");
    let mut anonymous = access_claims(&user.id);
    anonymous.as_object_mut().unwrap().remove("user_id");
    let cases = [
        (
            format!("Bearer {refresh}"),
            not_valid("Token has wrong type"),
        ),
        (
            "Bearer abc.def.ghi".to_string(),
            not_valid("Token is invalid"),
        ),
        (
            format!("Bearer {}", token(expired)),
            not_valid("Token is expired"),
        ),
        (
            format!("Bearer {}", token(untyped)),
            not_valid("Token has no type"),
        ),
        (
            format!("Bearer {}x", &access[..access.len() - 1]),
            not_valid("Token is invalid"),
        ),
        (
            "Bearer".to_string(),
            json!({"detail": "Authorization header must contain two space-delimited values", "code": "bad_authorization_header"}),
        ),
        (
            "Bearer a b".to_string(),
            json!({"detail": "Authorization header must contain two space-delimited values", "code": "bad_authorization_header"}),
        ),
        (
            format!("bearer {access}"),
            json!({"detail": "Authentication credentials were not provided.", "code": "not_authenticated"}),
        ),
        (
            format!("JWT {access}"),
            json!({"detail": "Authentication credentials were not provided.", "code": "not_authenticated"}),
        ),
        (
            format!("Bearer {}", token(anonymous)),
            invalid("Token contained no recognizable user identification"),
        ),
        (
            format!(
                "Bearer {}",
                token(access_claims(&uuid::Uuid::now_v7().to_string()))
            ),
            json!({"detail": "User not found", "code": "user_not_found"}),
        ),
    ];
    for (header, expected) in cases {
        let (status, body) = me(&app, &header).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header}");
        assert_eq!(body, expected, "{header}");
    }
}

async fn refresh_rotates_and_a_reused_token_revokes_its_family(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("dave").await;
    let (_, refresh1) = app.login(&user).await;
    for path in ["/api/token/refresh/", "/auth/jwt/refresh/"] {
        let (status, body) = post(&app, path, json!({"refresh": "x"})).await;
        assert_eq!(
            (status, body),
            (StatusCode::UNAUTHORIZED, invalid("Token is invalid")),
            "{path}"
        );
    }
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": refresh1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access2 = body["access"].as_str().unwrap().to_owned();
    let refresh2 = body["refresh"].as_str().unwrap().to_owned();
    assert_ne!(refresh1, refresh2);
    let (status, body) = post(&app, "/auth/jwt/refresh/", json!({"refresh": refresh2})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let refresh3 = body["refresh"].as_str().unwrap().to_owned();
    let access3 = body["access"].as_str().unwrap().to_owned();

    // refresh1 was rotated: presenting it again is reuse and revokes the family.
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": refresh1})).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, invalid("Token is blacklisted"))
    );
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": refresh3})).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, invalid("Token is blacklisted")),
        "the newest refresh token dies too"
    );
    for access in [access2, access3] {
        assert_eq!(
            me(&app, &format!("Bearer {access}")).await.0,
            StatusCode::UNAUTHORIZED,
            "and its access tokens"
        );
        let (status, body) = post(&app, "/api/token/verify/", json!({"token": access})).await;
        assert_eq!(
            (status, body),
            (
                StatusCode::BAD_REQUEST,
                json!({"non_field_errors": ["Token is blacklisted"]})
            )
        );
    }
    // An access token is not a refresh token.
    let (access, _) = app.login(&user).await;
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": access})).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, invalid("Token has wrong type"))
    );
    let (status, body) = post(&app, "/api/token/refresh/", json!({})).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"refresh": ["This field is required."]})
        )
    );
}

/// Two tabs' worth and more at once, with the reuse grace on: SQLite's writers collide here
/// (a read-then-write transaction loses to a concurrent writer); that is a 503 to retry, never
/// a 500, and the grace still lets at most one more through.
async fn a_burst_of_refreshes_within_the_grace_never_answers_500(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("TESSERA__JWT__REUSE_GRACE", "30s")]).await;
    let user = app.register("burst").await;
    for _ in 0..3 {
        let (_, refresh) = app.login(&user).await;
        let url = format!("{}/api/token/refresh/", app.base);
        let attempts = (0..40).map(|_| {
            app.client
                .post(url.clone())
                .json(&json!({"refresh": refresh}))
                .send()
        });
        let statuses: Vec<StatusCode> = futures_join(attempts)
            .await
            .into_iter()
            .map(|r| r.status())
            .collect();
        assert!(
            statuses.iter().all(|s| [
                StatusCode::OK,
                StatusCode::UNAUTHORIZED,
                StatusCode::SERVICE_UNAVAILABLE
            ]
            .contains(s)),
            "{statuses:?}"
        );
        let through = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert!((1..=2).contains(&through), "{statuses:?}");
    }
}

async fn concurrent_refreshes_of_one_token_let_exactly_one_through(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("tabs").await;
    let (_, refresh) = app.login(&user).await;
    let url = format!("{}/api/token/refresh/", app.base);
    let attempts = (0..6).map(|_| {
        app.client
            .post(url.clone())
            .json(&json!({"refresh": refresh}))
            .send()
    });
    let statuses: Vec<StatusCode> = futures_join(attempts)
        .await
        .into_iter()
        .map(|r| r.status())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
}

/// Runs the futures concurrently and collects their results.
async fn futures_join<
    F: std::future::Future<Output = reqwest::Result<reqwest::Response>> + Send + 'static,
>(
    futures: impl Iterator<Item = F>,
) -> Vec<reqwest::Response> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap().unwrap());
    }
    out
}

async fn grace_lets_the_immediate_parent_through_once_never_a_grandparent(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("TESSERA__JWT__REUSE_GRACE", "30s")]).await;
    let user = app.register("grace").await;
    let (_, parent) = app.login(&user).await;
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": parent})).await;
    assert_eq!(status, StatusCode::OK);
    let child = body["refresh"].as_str().unwrap().to_owned();
    let (status, _) = post(&app, "/api/token/refresh/", json!({"refresh": parent})).await;
    assert_eq!(status, StatusCode::OK, "the second tab gets through once");
    let (status, _) = post(&app, "/api/token/refresh/", json!({"refresh": parent})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "but only once");

    let (_, parent) = app.login(&user).await;
    let (_, body) = post(&app, "/api/token/refresh/", json!({"refresh": parent})).await;
    let child2 = body["refresh"].as_str().unwrap().to_owned();
    let (status, _) = post(&app, "/api/token/refresh/", json!({"refresh": child2})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": parent})).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, invalid("Token is blacklisted")),
        "a grandparent never passes"
    );
    drop(child);
}

async fn blacklist_revokes_the_refresh_token_and_its_access_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("erin").await;
    let (access, refresh) = app.login(&user).await;
    let (status, body) = post(&app, "/api/token/blacklist/", json!({"refresh": refresh})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, invalid("Token is blacklisted"))
    );
    let (status, body) = post(&app, "/api/token/blacklist/", json!({"refresh": refresh})).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, invalid("Token is blacklisted"))
    );
    let (status, body) = post(&app, "/api/token/verify/", json!({"token": refresh})).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"non_field_errors": ["Token is blacklisted"]})
        )
    );
    assert_eq!(
        me(&app, &format!("Bearer {access}")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = post(&app, "/api/token/blacklist/", json!({"refresh": access})).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, invalid("Token has wrong type"))
    );
    let (status, body) = post(&app, "/api/token/blacklist/", json!({})).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"refresh": ["This field is required."]})
        )
    );
}

async fn verify_accepts_valid_tokens_and_names_what_is_wrong_with_others(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("frank").await;
    let (access, refresh) = app.login(&user).await;
    for path in [
        "/api/token/verify/",
        "/auth/jwt/verify/",
        "/auth/jwt/verify",
    ] {
        for t in [&access, &refresh] {
            assert_eq!(
                post(&app, path, json!({"token": t})).await,
                (StatusCode::OK, json!({})),
                "{path}"
            );
        }
    }
    let base = access_claims(&user.id);
    let with = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut claims = base.clone();
        f(claims.as_object_mut().unwrap());
        token(claims)
    };
    let cases = [
        (
            with(&|c| {
                c.insert("exp".into(), json!(now() - 1));
            }),
            "Token is expired",
        ),
        (
            with(&|c| {
                c.insert("exp".into(), json!((now() - 100) as f64 + 0.5));
            }),
            "Token is expired",
        ),
        (
            with(&|c| {
                c.insert("exp".into(), json!("9999999999"));
            }),
            "Token is invalid",
        ),
        (
            with(&|c| {
                c.remove("exp");
            }),
            "Token has no 'exp' claim",
        ),
        (
            with(&|c| {
                c.remove("jti");
            }),
            "Token has no id",
        ),
        (
            with(&|c| {
                c.remove("token_type");
            }),
            "Token has no type",
        ),
        (
            with(&|c| {
                c.insert("token_type".into(), json!("sliding"));
            }),
            "Token has wrong type",
        ),
        (
            with(&|c| {
                c.insert("iat".into(), json!(now() + 3600));
            }),
            "Token is invalid",
        ),
        (
            with(&|c| {
                c.insert("nbf".into(), json!(now() + 3600));
            }),
            "Token is invalid",
        ),
        ("not-a-token".to_string(), "Token is invalid"),
    ];
    for (t, message) in cases {
        let (status, body) = post(&app, "/api/token/verify/", json!({"token": t})).await;
        assert_eq!(
            (status, body),
            (StatusCode::UNAUTHORIZED, invalid(message)),
            "{}",
            claims_of_or_raw(&t)
        );
    }
    let (status, body) = post(&app, "/api/token/verify/", json!({"token": ""})).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"token": ["This field may not be blank."]})
        )
    );
}

fn claims_of_or_raw(t: &str) -> String {
    if t.split('.').count() == 3 {
        claims_of(t).to_string()
    } else {
        t.to_owned()
    }
}

async fn forged_tokens_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("gina").await;
    let claims = access_claims(&user.id);
    let hs = json!({"alg": "HS256", "typ": "JWT"});
    let cases = [
        forge(&json!({"alg": "none", "typ": "JWT"}), &claims, b""),
        forge(&hs, &claims, b"some-other-key-that-is-long-enough-000"),
        forge(
            &json!({"alg": "HS512", "typ": "JWT"}),
            &claims,
            SIGNING_KEY.as_bytes(),
        ),
        forge(
            &json!({"alg": "HS256", "typ": "JWT", "kid": "unknown"}),
            &claims,
            SIGNING_KEY.as_bytes(),
        ),
        forge(
            &json!({"alg": "HS256", "typ": "JWT", "jku": "https://evil.example/jwks.json"}),
            &claims,
            SIGNING_KEY.as_bytes(),
        ),
        forge(
            &json!({"alg": "HS256", "typ": "JWT", "x5u": "https://evil.example/cert.pem"}),
            &claims,
            SIGNING_KEY.as_bytes(),
        ),
        forge(
            &json!({"alg": "HS256", "typ": "JWT", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
            &claims,
            SIGNING_KEY.as_bytes(),
        ),
    ];
    for t in cases {
        let (status, body) = post(&app, "/api/token/verify/", json!({"token": t})).await;
        assert_eq!(
            (status, body),
            (StatusCode::UNAUTHORIZED, invalid("Token is invalid")),
            "{}",
            header_segment(&t)
        );
        assert_eq!(
            me(&app, &format!("Bearer {t}")).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // The same claims signed properly pass: the cases above fail for their forgery alone.
    assert_eq!(
        me(&app, &format!("Bearer {}", token(claims))).await.0,
        StatusCode::OK
    );
}

async fn leeway_tolerates_recent_expiry(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("TESSERA__JWT__LEEWAY", "60s")]).await;
    let user = app.register("hank").await;
    let mut claims = access_claims(&user.id);
    claims["exp"] = json!(now() - 30);
    assert_eq!(
        post(
            &app,
            "/api/token/verify/",
            json!({"token": token(claims.clone())})
        )
        .await
        .0,
        StatusCode::OK
    );
    claims["exp"] = json!(now() - 90);
    assert_eq!(
        post(&app, "/api/token/verify/", json!({"token": token(claims)}))
            .await
            .1,
        invalid("Token is expired")
    );
}

async fn revoke_all_logs_the_caller_out_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("ivy").await;
    let (access1, refresh1) = app.login(&user).await;
    let (access2, refresh2) = app.login(&user).await;
    let response = app
        .request(Method::POST, "/api/token/revoke_all/")
        .header("Authorization", format!("Bearer {access1}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for access in [&access1, &access2] {
        assert_eq!(
            me(&app, &format!("Bearer {access}")).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // Every session's refresh token dies too, not only the caller's.
    for (session, refresh) in [("the caller's", &refresh1), ("another", &refresh2)] {
        let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
        assert_eq!(
            (status, body),
            (StatusCode::UNAUTHORIZED, invalid("Token is blacklisted")),
            "{session} session's refresh token"
        );
    }
    // A login right after the call is unaffected.
    let (access3, refresh3) = app.login(&user).await;
    assert_eq!(
        me(&app, &format!("Bearer {access3}")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        post(&app, "/api/token/refresh/", json!({"refresh": refresh3}))
            .await
            .0,
        StatusCode::OK
    );
    let response = app
        .request(Method::POST, "/api/token/revoke_all/")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

async fn refresh_tokens_minted_elsewhere_with_the_shared_key_start_a_family(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("jack").await;
    let mut claims = access_claims(&user.id);
    claims["token_type"] = json!("refresh");
    claims["exp"] = json!(now() + 86400);
    let django = token(claims);
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": django})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let child = body["refresh"].as_str().unwrap().to_owned();
    let (status, _) = post(&app, "/api/token/refresh/", json!({"refresh": django})).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "its reuse is detected like any other"
    );
    assert_eq!(
        post(&app, "/api/token/refresh/", json!({"refresh": child}))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

async fn refresh_of_a_deleted_or_inactive_user_is_refused(backend: Backend) {
    // No user cache: the deactivation below bypasses it, as another system's would.
    let app = TestApp::spawn_with(backend, &[("TESSERA__USERS__CACHE_TTL", "0s")]).await;
    let user = app.register("kim").await;
    let (_, refresh) = app.login(&user).await;
    let id: uuid::Uuid = user.id.parse().unwrap();
    // Deactivated outside Tessera (Django's admin, a script): no session was ended, so the
    // refresh reaches the user check. (Tessera's own deactivation ends sessions first.)
    let sql = tessera::store::users::SqlUserStore::new(app.app_state.database.clone());
    let deactivate = tessera::domain::users::UserChange {
        is_active: Some(false),
        ..Default::default()
    };
    tessera::domain::users::UserStore::change(&sql, id, &deactivate)
        .await
        .unwrap();
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"detail": "User is inactive", "code": "user_inactive"})
        )
    );
    let admin = app.staff().await;
    let deleted = admin
        .auth(app.request(Method::DELETE, &format!("/auth/users/{id}/")))
        .json(&json!({"current_password": admin.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"detail": "User not found", "code": "user_not_found"})
        )
    );
}

/// On PostgreSQL+Redis, Redis answers revocation checks (an entry only Redis holds refuses a
/// token), loses everything in a flush without a revoked token coming back (SQL answers
/// meanwhile), and is rebuilt from SQL. SQLite has no Redis: the blacklist test covers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_survive_a_redis_flush() {
    if !crate::helpers::postgres_available().await {
        crate::helpers::skip(
            "jwt::revocations_survive_a_redis_flush",
            "PostgreSQL or Redis unreachable",
        );
        return;
    }
    // The Redis path itself (the fallback of the in-memory copy, tested in memory_copies.rs).
    let app = TestApp::spawn_with(
        Backend::Postgres,
        &[("TESSERA__MEMORY__REVOCATION_ENTRIES", "0")],
    )
    .await;
    let mut redis = app.redis().await;
    let user = app.register("liz").await;
    let (access, refresh) = app.login(&user).await;
    let (spare, _) = app.login(&user).await;
    let revoked = |token: &str| {
        format!(
            "revoked:{}",
            claims_of(token)["jti"].as_str().expect("a jti")
        )
    };
    let spare_key = format!(
        "{}{}",
        app.redis_prefix.as_deref().unwrap(),
        revoked(&spare)
    );
    let me_status = |token: String| {
        let app = &app;
        async move { me(app, &format!("Bearer {token}")).await.0 }
    };

    // A fresh app answers from SQL and fills Redis in the background: its epoch marker appears.
    assert_eq!(me_status(spare.clone()).await, StatusCode::OK);
    eventually(
        Duration::from_secs(10),
        "Redis rebuilt at start",
        || async { app.redis_keys().await.contains(&"epoch".to_owned()) },
    )
    .await;
    // Redis is consulted: an entry written to Redis alone (SQL knows nothing of it) refuses the
    // token, and removing it lets the token through again.
    redis::cmd("SET")
        .arg(&spare_key)
        .arg(1)
        .arg("EX")
        .arg(60)
        .query_async::<()>(&mut redis)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "a Redis-only revocation refuses",
        || {
            let spare = spare.clone();
            async { me_status(spare).await == StatusCode::UNAUTHORIZED }
        },
    )
    .await;
    redis::cmd("DEL")
        .arg(&spare_key)
        .query_async::<()>(&mut redis)
        .await
        .unwrap();
    assert_eq!(me_status(spare.clone()).await, StatusCode::OK);

    assert_eq!(
        post(&app, "/api/token/blacklist/", json!({"refresh": refresh}))
            .await
            .0,
        StatusCode::OK
    );
    let keys = app.redis_keys().await;
    for token in [&refresh, &access] {
        assert!(
            keys.contains(&revoked(token)),
            "the blacklist wrote {} to Redis: {keys:?}",
            revoked(token)
        );
    }

    app.flush_redis().await;
    assert_eq!(app.redis_keys().await, Vec::<String>::new(), "flushed");
    let (status, body) = post(&app, "/api/token/verify/", json!({"token": refresh})).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"non_field_errors": ["Token is blacklisted"]})
        ),
        "Redis empty: SQL answers"
    );
    assert_eq!(me_status(access.clone()).await, StatusCode::UNAUTHORIZED);

    // The loss was noticed and Redis rebuilt from SQL (checks keep arriving meanwhile: a rebuild
    // is attempted at most once a second).
    let wanted = [revoked(&refresh), revoked(&access), "epoch".to_owned()];
    eventually(
        Duration::from_secs(10),
        "Redis rebuilt after the flush",
        || async {
            assert_eq!(me_status(access.clone()).await, StatusCode::UNAUTHORIZED);
            let keys = app.redis_keys().await;
            wanted.iter().all(|k| keys.contains(k))
        },
    )
    .await;
    assert_eq!(
        post(&app, "/api/token/refresh/", json!({"refresh": refresh}))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(me_status(spare.clone()).await, StatusCode::OK);
    // And Redis answers again, no longer SQL.
    redis::cmd("SET")
        .arg(&spare_key)
        .arg(1)
        .arg("EX")
        .arg(60)
        .query_async::<()>(&mut redis)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "Redis consulted after the rebuild",
        || {
            let spare = spare.clone();
            async { me_status(spare).await == StatusCode::UNAUTHORIZED }
        },
    )
    .await;
}

async fn an_unreachable_redis_falls_back_to_sql_and_never_accepts_a_revoked_token(
    backend: Backend,
) {
    // Port 9 (discard) is closed here: every Redis call fails fast.
    let app = TestApp::spawn_with(backend, &[("REDIS_URL", "redis://127.0.0.1:9/0")]).await;
    let user = app.register("nora").await;
    let (access, refresh) = app.login(&user).await;
    assert_eq!(
        me(&app, &format!("Bearer {access}")).await.0,
        StatusCode::OK
    );
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, invalid("Token is blacklisted"))
    );
    let (status, body) = post(&app, "/api/token/verify/", json!({"token": access})).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"non_field_errors": ["Token is blacklisted"]})
        )
    );
    let (status, body) = answer(
        app.request(Method::GET, "/health/ready")
            .send()
            .await
            .unwrap(),
    )
    .await;
    // Still serving, from SQL: degraded, not unready (health.redis_required is off).
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"status": "degraded", "database": "ok", "redis": "unavailable"}),
        "readiness names the failed dependency"
    );
}

async fn expired_records_are_pruned(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("TESSERA__JWT__ACCESS_TOKEN_LIFETIME", "4s"),
            ("TESSERA__JWT__REFRESH_TOKEN_LIFETIME", "4s"),
        ],
    )
    .await;
    let user = app.register("max").await;
    let (_, refresh) = app.login(&user).await;
    assert_eq!(
        post(&app, "/api/token/blacklist/", json!({"refresh": refresh}))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.app_state.tokens.prune().await.unwrap(),
        0,
        "nothing has expired yet"
    );
    tokio::time::sleep(Duration::from_millis(5100)).await;
    assert_eq!(
        app.app_state.tokens.prune().await.unwrap(),
        1,
        "the ledger row; the revocations outlive the tokens by a margin"
    );
    let past_the_margin = chrono::Utc::now() + chrono::TimeDelta::seconds(61);
    assert_eq!(
        app.app_state
            .tokens
            .prune_as_of(past_the_margin)
            .await
            .unwrap(),
        2,
        "both revocations"
    );
}

async fn issuer_audience_and_claim_names_follow_the_settings(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("TESSERA__JWT__ISSUER", "https://id.example"),
            ("TESSERA__JWT__AUDIENCE", "shop"),
            ("TESSERA__JWT__USER_ID_CLAIM", "sub"),
            ("TESSERA__JWT__TOKEN_TYPE_CLAIM", "typ"),
            ("TESSERA__JWT__UPDATE_LAST_LOGIN", "true"),
            ("TESSERA__JWT__AUTH_HEADER_TYPES", "JWT,Bearer"),
        ],
    )
    .await;
    let user = app.register("olga").await;
    let (access, _) = app.login(&user).await;
    let claims = claims_of(&access);
    assert_eq!(claims["iss"], "https://id.example");
    assert_eq!(claims["aud"], "shop");
    assert_eq!(claims["sub"], json!(user.id));
    assert_eq!(claims["typ"], "access");
    assert!(claims.get("user_id").is_none() && claims.get("token_type").is_none());
    assert_eq!(
        me(&app, &format!("JWT {access}")).await.0,
        StatusCode::OK,
        "every configured header type works"
    );
    assert_eq!(
        me(&app, &format!("Bearer {access}")).await.0,
        StatusCode::OK
    );
    let stored = app
        .app_state
        .users
        .find(user.id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.last_login.is_some(),
        "update_last_login stamps the login"
    );

    let mut other = claims.clone();
    other["aud"] = json!("elsewhere");
    let mut untrusted = claims.clone();
    untrusted["iss"] = json!("https://evil.example");
    let mut missing = claims.clone();
    missing.as_object_mut().unwrap().remove("aud");
    for forged in [other, untrusted, missing] {
        let (status, body) =
            post(&app, "/api/token/verify/", json!({"token": token(forged)})).await;
        assert_eq!(
            (status, body),
            (StatusCode::UNAUTHORIZED, invalid("Token is invalid"))
        );
    }
    assert_eq!(
        post(&app, "/api/token/verify/", json!({"token": token(claims)}))
            .await
            .0,
        StatusCode::OK
    );
}

async fn refresh_without_rotation_answers_only_an_access_token(backend: Backend) {
    let app =
        TestApp::spawn_with(backend, &[("TESSERA__JWT__ROTATE_REFRESH_TOKENS", "false")]).await;
    let user = app.register("norot").await;
    let (_, refresh) = app.login(&user).await;
    for _ in 0..2 {
        let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body.as_object().unwrap().keys().collect::<Vec<_>>(),
            vec!["access"],
            "SimpleJWT's body"
        );
    }
}

/// A Django project that added claims to its refresh tokens (`token["tenant"] = ...` in its
/// TokenObtainPairSerializer) keeps them: SimpleJWT copies every claim of the refresh token but
/// `token_type`, `exp`, `jti` and `iat` into the access token, and rotation keeps them in the
/// new refresh token.
async fn refresh_carries_a_django_projects_own_claims_like_simplejwt(backend: Backend) {
    for rotate in ["true", "false"] {
        let app =
            TestApp::spawn_with(backend, &[("TESSERA__JWT__ROTATE_REFRESH_TOKENS", rotate)]).await;
        let user = app.register("tenant").await;
        let issued = now() - 100;
        let django_refresh = token(json!({
            "token_type": "refresh", "exp": issued + 86_400, "iat": issued,
            "jti": "5f0c1e2d3c4b5a69788796a5b4c3d2e1", "user_id": user.id,
            "tenant": "acme", "plan": {"seats": 5, "tags": ["beta"]},
        }));
        let (status, body) = post(
            &app,
            "/api/token/refresh/",
            json!({"refresh": django_refresh}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let access = claims_of(body["access"].as_str().unwrap());
        assert_eq!(access["tenant"], "acme", "{access}");
        assert_eq!(access["plan"], json!({"seats": 5, "tags": ["beta"]}));
        // SimpleJWT's own claims are the new token's, not the refresh token's.
        assert_eq!(access["token_type"], "access");
        assert!(access["iat"].as_i64().unwrap() >= now() - 5, "{access}");
        assert_ne!(access["jti"], "5f0c1e2d3c4b5a69788796a5b4c3d2e1");
        assert!(access["exp"].as_i64().unwrap() <= now() + 300);
        assert_eq!(access["user_id"], json!(user.id));
        assert_eq!(
            me(
                &app,
                &format!("Bearer {}", body["access"].as_str().unwrap())
            )
            .await
            .0,
            StatusCode::OK
        );
        if rotate == "false" {
            continue;
        }
        // The rotated refresh token keeps them, so the next refresh still has them.
        let child = body["refresh"].as_str().unwrap().to_owned();
        assert_eq!(claims_of(&child)["tenant"], "acme");
        assert_eq!(claims_of(&child)["token_type"], "refresh");
        let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": child})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            claims_of(body["access"].as_str().unwrap())["tenant"],
            "acme"
        );
        assert_eq!(
            claims_of(body["refresh"].as_str().unwrap())["plan"]["seats"],
            5
        );
        // A login's own tokens carry nothing of the kind.
        let (access, refresh) = app.login(&user).await;
        assert!(claims_of(&access).get("tenant").is_none());
        assert!(claims_of(&refresh).get("tenant").is_none());
    }
}

/// Instances starting together on one PostgreSQL migrate one after the other (advisory lock).
#[tokio::test]
async fn instances_starting_together_migrate_safely() {
    if !crate::helpers::postgres_available().await {
        crate::helpers::skip(
            "jwt::instances_starting_together_migrate_safely",
            "PostgreSQL or Redis unreachable",
        );
        return;
    }
    let url = crate::helpers::fresh_postgres_database().await;
    let settings = || {
        tessera::Settings::load_from(
            [
                ("DATABASE_URL".to_string(), url.clone()),
                (
                    "TESSERA__SERVER__BIND".to_string(),
                    "127.0.0.1:0".to_string(),
                ),
                (
                    "TESSERA__JWT__SIGNING_KEY".to_string(),
                    SIGNING_KEY.to_string(),
                ),
            ]
            .into(),
        )
        .unwrap()
    };
    let (a, b, c) = tokio::join!(
        tessera::Application::build(settings()),
        tessera::Application::build(settings()),
        tessera::Application::build(settings())
    );
    for app in [a, b, c] {
        assert!(app.is_ok(), "{:?}", app.err());
    }
}

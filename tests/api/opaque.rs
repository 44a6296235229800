//! Opaque keys: Djoser's /auth/token/, DRF's obtain_auth_token and TokenAuthentication.
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Backend, TestApp, TestUser, answer, me};

on_every_backend!(
    login_returns_one_key_per_user_until_logout,
    the_database_holds_only_a_hash_of_the_key,
    login_failures_answer_non_field_errors,
    the_token_scheme_answers_drfs_messages,
    several_keys_per_user_are_listed_and_revoked_one_by_one,
    keys_expire_after_their_lifetime,
);

async fn token_login(app: &TestApp, user: &TestUser) -> String {
    let (status, body) = answer(
        app.post_json(
            "/auth/token/login/",
            json!({"username": user.username, "password": user.password}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let key = body["auth_token"].as_str().unwrap().to_owned();
    assert!(
        key.len() == 40 && key.chars().all(|c| c.is_ascii_hexdigit()),
        "{key}"
    );
    key
}

async fn logout(app: &TestApp, authorization: &str) -> StatusCode {
    app.request(Method::POST, "/auth/token/logout/")
        .header("Authorization", authorization)
        .send()
        .await
        .unwrap()
        .status()
}

async fn login_returns_one_key_per_user_until_logout(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("tok").await;
    let key = token_login(&app, &user).await;
    assert_eq!(
        token_login(&app, &user).await,
        key,
        "DRF: the same key on every login"
    );
    let (status, body) = answer(
        app.post_json(
            "/api/api-token-auth/",
            json!({"username": user.username, "password": user.password}),
        )
        .await,
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"token": key})));
    let (status, body) = me(&app, &format!("Token {key}")).await;
    assert_eq!(
        (status, body["id"].clone()),
        (StatusCode::OK, json!(user.id))
    );
    assert_eq!(
        me(&app, &format!("token {key}")).await.0,
        StatusCode::OK,
        "the word is case-insensitive"
    );

    assert_eq!(
        logout(&app, &format!("Token {key}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        me(&app, &format!("Token {key}")).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Invalid token.", "code": "authentication_failed"})
        )
    );
    let second = token_login(&app, &user).await;
    assert_ne!(second, key, "a logged-out key never comes back");

    // Logging out with a JWT removes the user's key too (Djoser).
    let (access, _) = app.login(&user).await;
    assert_eq!(
        logout(&app, &format!("Bearer {access}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        me(&app, &format!("Token {second}")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.request(Method::POST, "/auth/token/logout/")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn the_database_holds_only_a_hash_of_the_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("hash").await;
    let key = token_login(&app, &user).await;
    let rows = app
        .app_state
        .opaque
        .sessions(user.id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let row = format!("{:?}", rows[0]);
    assert!(
        !row.contains(&key),
        "the key itself is stored nowhere: {row}"
    );
    assert_eq!(rows[0].key_sha256, tessera::crypto::sha256_hex(&key));
}

async fn login_failures_answer_non_field_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("fail").await;
    let unable = json!({"non_field_errors": ["Unable to log in with provided credentials."]});
    for body in [
        json!({"username": user.username, "password": "wrong"}),
        json!({"username": "nobody", "password": "whatever"}),
        json!({"username": user.username}),
        json!({}),
    ] {
        let (status, answer_body) =
            answer(app.post_json("/auth/token/login/", body.clone()).await).await;
        assert_eq!(
            (status, answer_body),
            (StatusCode::BAD_REQUEST, unable.clone()),
            "{body}"
        );
    }
    // Djoser trims the password; DRF's obtain_auth_token does not.
    let padded = format!("  {}  ", user.password);
    let (status, _) = answer(
        app.post_json(
            "/auth/token/login/",
            json!({"username": user.username, "password": padded}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = answer(
        app.post_json(
            "/api/api-token-auth/",
            json!({"username": user.username, "password": padded}),
        )
        .await,
    )
    .await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, unable.clone()));
    let (status, body) = answer(app.post_json("/api/api-token-auth/", json!({})).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"username": ["This field is required."], "password": ["This field is required."]})
    );
}

async fn the_token_scheme_answers_drfs_messages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (header, message) in [
        ("Token", "Invalid token header. No credentials provided."),
        (
            "Token a b",
            "Invalid token header. Token string should not contain spaces.",
        ),
        (
            "Token 0123456789abcdef0123456789abcdef01234567",
            "Invalid token.",
        ),
    ] {
        let response = app
            .request(Method::GET, "/auth/users/me/")
            .header("Authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="api""#
        );
        assert_eq!(
            answer(response).await,
            (
                StatusCode::UNAUTHORIZED,
                json!({"detail": message, "code": "authentication_failed"})
            ),
            "{header}"
        );
    }
}

async fn several_keys_per_user_are_listed_and_revoked_one_by_one(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("TESSERA__TOKENS__MULTIPLE", "true")]).await;
    let user = app.register("multi").await;
    let phone = app
        .request(Method::POST, "/auth/token/login/")
        .header("User-Agent", "phone")
        .json(&json!({"username": user.username, "password": user.password}))
        .send()
        .await
        .unwrap();
    let phone = answer(phone).await.1["auth_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let laptop = token_login(&app, &user).await;
    assert_ne!(phone, laptop);
    let (status, list) = answer(
        app.request(Method::GET, "/auth/token/sessions/")
            .header("Authorization", format!("Token {laptop}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["name"], "phone");
    assert_eq!(
        (list[0]["current"].clone(), list[1]["current"].clone()),
        (json!(false), json!(true))
    );

    assert_eq!(
        logout(&app, &format!("Token {laptop}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        me(&app, &format!("Token {laptop}")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        me(&app, &format!("Token {phone}")).await.0,
        StatusCode::OK,
        "only the presented key is gone"
    );

    let id = list[0]["id"].as_str().unwrap();
    let delete = |id: String| {
        app.request(Method::DELETE, &format!("/auth/token/sessions/{id}/"))
            .header("Authorization", format!("Token {phone}"))
            .send()
    };
    assert_eq!(
        delete("0000000000000000".into()).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        delete(id.to_owned()).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        me(&app, &format!("Token {phone}")).await.0,
        StatusCode::UNAUTHORIZED
    );

    let (a, b) = (
        token_login(&app, &user).await,
        token_login(&app, &user).await,
    );
    let response = app
        .request(Method::DELETE, "/auth/token/sessions/")
        .header("Authorization", format!("Token {a}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for key in [a, b] {
        assert_eq!(
            me(&app, &format!("Token {key}")).await.0,
            StatusCode::UNAUTHORIZED,
            "every device is logged out"
        );
    }
}

async fn keys_expire_after_their_lifetime(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("TESSERA__TOKENS__TOKEN_LIFETIME", "2s")]).await;
    let user = app.register("exp").await;
    let key = token_login(&app, &user).await;
    assert_eq!(me(&app, &format!("Token {key}")).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        me(&app, &format!("Token {key}")).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Invalid token.", "code": "authentication_failed"})
        )
    );
    assert_ne!(
        token_login(&app, &user).await,
        key,
        "an expired key is replaced"
    );
}

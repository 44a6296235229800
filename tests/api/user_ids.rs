//! Integer user ids (`accounts.user_id = "integer"`): Django's pk in bodies, paths, uids and
//! tokens; tokens minted by the Django service being replaced (integer `user_id`) accepted in
//! both modes; numbers never reused.
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::forge::{claims_of, forge};
use crate::helpers::*;
use crate::smtp_sink::SmtpSink;

on_every_backend!(
    integer_ids_are_public_in_bodies_paths_and_tokens,
    tokens_minted_by_django_with_integer_ids_are_accepted_in_both_modes,
    numbers_are_never_reused_so_old_tokens_never_name_a_new_user,
    odd_spellings_of_an_id_name_nobody,
    concurrent_registrations_get_distinct_numbers,
    emailed_uids_carry_the_integer_id,
);

const INTEGER: &[(&str, &str)] = &[("TESSERA__ACCOUNTS__USER_ID", "integer")];

/// The number behind a user's public id in integer mode.
fn number(user: &TestUser) -> i64 {
    user.id.parse().expect("an integer id")
}

/// A SimpleJWT 5.5 token as the Django service minted it (no credential version), for `user_id`.
fn django_token(token_type: &str, user_id: Value) -> String {
    let now = chrono::Utc::now().timestamp();
    forge(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({
            "token_type": token_type,
            "exp": now + 300,
            "iat": now,
            "jti": uuid::Uuid::new_v4().simple().to_string(),
            "user_id": user_id,
        }),
        SIGNING_KEY.as_bytes(),
    )
}

async fn integer_ids_are_public_in_bodies_paths_and_tokens(backend: Backend) {
    let app = TestApp::spawn_with(backend, INTEGER).await;
    let (status, body) = post(
        &app,
        "/auth/users/",
        json!({"username": "first", "password": PASSWORD, "email": "first@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["id"].is_i64(), "an integer id: {body}");
    let alice = app.register("alice").await;
    assert_eq!(
        number(&alice),
        body["id"].as_i64().unwrap() + 1,
        "continues"
    );

    let (access, refresh) = app.login(&alice).await;
    // SimpleJWT 5.5 writes the id as a string.
    assert_eq!(claims_of(&access)["user_id"], json!(alice.id));
    assert_eq!(claims_of(&refresh)["user_id"], json!(alice.id));
    let (status, me_body) = me(&app, &format!("Bearer {access}")).await;
    assert_eq!(status, StatusCode::OK, "{me_body}");
    assert_eq!(me_body["id"], json!(number(&alice)));

    let path = format!("/auth/users/{}/", alice.id);
    let (status, found) = call(&app, &alice, Method::GET, &path, None).await;
    assert_eq!(
        (status, found["username"].clone()),
        (StatusCode::OK, json!(alice.username))
    );
    let (status, refreshed) = post(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(
        claims_of(refreshed["access"].as_str().unwrap())["user_id"],
        json!(alice.id)
    );

    // Staff reach others by number; the list is in number order.
    let admin = app.staff().await;
    let (status, list) = call(&app, &admin, Method::GET, "/auth/users/", None).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert!(ids.contains(&number(&alice)));
}

async fn tokens_minted_by_django_with_integer_ids_are_accepted_in_both_modes(backend: Backend) {
    for mode in ["uuid", "integer"] {
        let app = TestApp::spawn_with(backend, &[("TESSERA__ACCOUNTS__USER_ID", mode)]).await;
        let alice = app.register("alice").await;
        let number = app
            .app_state
            .users
            .named(&alice.username)
            .await
            .unwrap()
            .unwrap()
            .number;
        for user_id in [json!(number), json!(number.to_string())] {
            let access = django_token("access", user_id.clone());
            let (status, body) = me(&app, &format!("Bearer {access}")).await;
            assert_eq!(status, StatusCode::OK, "{mode} {user_id}: {body}");
            assert_eq!(body["username"], json!(alice.username));
            let (status, _) = post(&app, "/api/token/verify/", json!({"token": access})).await;
            assert_eq!(status, StatusCode::OK);
            let refresh = django_token("refresh", user_id.clone());
            let (status, body) =
                post(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
            assert_eq!(status, StatusCode::OK, "{mode} {user_id}: {body}");
            let (status, body) = me(
                &app,
                &format!("Bearer {}", body["access"].as_str().unwrap()),
            )
            .await;
            assert_eq!(
                (status, body["username"].clone()),
                (StatusCode::OK, json!(alice.username))
            );
        }
        // Logging out everywhere ends the Django-minted tokens too (the cut-off is by user).
        let access = django_token("access", json!(number));
        let (status, _) = answer(
            app.request(Method::POST, "/api/token/revoke_all/")
                .bearer_auth(&access)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{mode}");
        let (status, _) = me(&app, &format!("Bearer {access}")).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{mode}: revoked by number too"
        );
    }
}

async fn numbers_are_never_reused_so_old_tokens_never_name_a_new_user(backend: Backend) {
    let app = TestApp::spawn_with(backend, INTEGER).await;
    let doomed = app.register("doomed").await;
    let old_token = django_token("access", json!(doomed.id));
    let (status, _) = call(
        &app,
        &doomed,
        Method::DELETE,
        "/auth/users/me/",
        Some(json!({"current_password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // The deleted user held the highest number: the next registration must not get it again.
    let next = app.register("next").await;
    assert!(
        number(&next) > number(&doomed),
        "{} after {}",
        next.id,
        doomed.id
    );
    let (status, body) = me(&app, &format!("Bearer {old_token}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], json!("user_not_found"), "{body}");
}

async fn odd_spellings_of_an_id_name_nobody(backend: Backend) {
    let app = TestApp::spawn_with(backend, INTEGER).await;
    let alice = app.register("alice").await;
    let n = number(&alice);
    for spelling in [
        json!(format!("+{n}")),
        json!(format!(" {n}")),
        json!(format!("{n}.0")),
        json!(-n),
        json!(0),
        json!(n as f64 + 0.5),
        json!("99999999999999999999999"),
        json!(""),
        json!(null),
        json!([n]),
    ] {
        let token = django_token("access", spelling.clone());
        let (status, body) = me(&app, &format!("Bearer {token}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{spelling}: {body}");
    }
    // Leading zeros are the same pk to Django's int(): the same user, not another one.
    let token = django_token("access", json!(format!("0{n}")));
    let (status, body) = me(&app, &format!("Bearer {token}")).await;
    assert_eq!(
        (status, body["username"].clone()),
        (StatusCode::OK, json!(alice.username))
    );
    for path in [
        format!("+{n}"),
        format!("{n}.0"),
        format!("-{n}"),
        "0".into(),
        "1e3".into(),
    ] {
        let (status, _) = call(
            &app,
            &alice,
            Method::GET,
            &format!("/auth/users/{path}/"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

async fn concurrent_registrations_get_distinct_numbers(backend: Backend) {
    let app = TestApp::spawn_with(backend, INTEGER).await;
    let spawned: Vec<_> = (0..16)
        .map(|i| {
            let request = app
                .request(Method::POST, "/auth/users/")
                .json(&json!({"username": format!("burst{i}"), "password": PASSWORD}));
            tokio::spawn(async move { answer(request.send().await.unwrap()).await })
        })
        .collect();
    let mut ids = Vec::new();
    for handle in spawned {
        let (status, body) = handle.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(body["id"].as_i64().unwrap());
    }
    ids.sort();
    let first = ids[0];
    assert_eq!(
        ids,
        (first..first + 16).collect::<Vec<_>>(),
        "distinct and without gaps"
    );
}

async fn emailed_uids_carry_the_integer_id(backend: Backend) {
    let sink = SmtpSink::start().await;
    let port = sink.port.to_string();
    let app = TestApp::spawn_with(
        backend,
        &[
            ("TESSERA__ACCOUNTS__USER_ID", "integer"),
            ("TESSERA__EMAIL__BACKEND", "smtp"),
            ("TESSERA__EMAIL__SMTP_HOST", "127.0.0.1"),
            ("TESSERA__EMAIL__SMTP_PORT", port.as_str()),
            ("TESSERA__EMAIL__SMTP_SECURITY", "none"),
        ],
    )
    .await;
    let alice = app.register("alice").await;
    let email = format!("{}@example.com", alice.username);
    let (status, _) = post(&app, "/auth/users/reset_password/", json!({"email": email})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (uid, token) = sink.link(1, "#/password/reset/confirm/").await;
    // Djoser's urlsafe_base64_encode(force_bytes(pk)).
    use base64::Engine;
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&alice.id);
    assert_eq!(uid, expected);
    let (status, body) = post(
        &app,
        "/auth/users/reset_password_confirm/",
        json!({"uid": uid, "token": token, "new_password": "a brand new passphrase"}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

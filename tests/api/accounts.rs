//! Djoser's account flows end to end through the emailed links, over real SMTP to a sink.
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    helpers::{Backend, PASSWORD, TestApp, TestUser, answer, post},
    smtp_sink::SmtpSink,
};

on_every_backend!(
    register_activate_then_log_in,
    activation_errors_and_purpose_binding,
    password_reset_flow_revokes_old_tokens,
    reset_password_reveals_no_unknown_email_unless_configured,
    set_password_checks_and_logs_out_everywhere,
    set_password_can_leave_tokens_alone,
    set_username_and_reset_username,
    expired_reset_tokens_fail,
    users_can_be_visible_to_each_other,
    users_can_log_in_with_their_email,
    a_dead_mail_server_blocks_nothing,
    mailed_links_in_files_are_readable_by_the_owner_only,
);

const NEW_PASSWORD: &str = "staple battery horse";

/// An app mailing through SMTP to a fresh sink.
pub async fn app_with_mail(backend: Backend, extra: &[(&str, &str)]) -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start().await;
    let port = sink.port.to_string();
    let mut settings = vec![
        ("TESSERA__EMAIL__BACKEND", "smtp"),
        ("TESSERA__EMAIL__SMTP_HOST", "127.0.0.1"),
        ("TESSERA__EMAIL__SMTP_PORT", port.as_str()),
        ("TESSERA__EMAIL__SMTP_SECURITY", "none"),
        ("TESSERA__ACCOUNTS__DOMAIN", "app.example"),
        ("TESSERA__ACCOUNTS__PROTOCOL", "https"),
    ];
    settings.extend_from_slice(extra);
    (TestApp::spawn_with(backend, &settings).await, sink)
}

async fn post_as(app: &TestApp, user: &TestUser, path: &str, body: Value) -> (StatusCode, Value) {
    answer(
        user.auth(app.request(Method::POST, path))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn jwt_login(app: &TestApp, username: &str, password: &str) -> StatusCode {
    app.post_json(
        "/api/token/",
        json!({"username": username, "password": password}),
    )
    .await
    .status()
}

/// Proves no mail beyond the first `sent` was queued so far, without waiting a margin: the queue
/// is delivered in order by one worker, so a mail queued now for a fresh user (its activation
/// mail, or a password reset) must arrive as message `sent + 1`.
async fn no_mail_beyond(app: &TestApp, sink: &SmtpSink, sent: usize) {
    let sentinel = app.register("sentinel").await;
    let address = format!("{}@example.com", sentinel.username);
    let users = &app.app_state.users;
    users.activate(sentinel.id.parse().unwrap()).await.unwrap();
    let (status, _) = post(
        app,
        "/auth/users/reset_password/",
        json!({"email": address}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let next = sink.message(sent + 1).await;
    assert!(
        next.contains(&address),
        "message #{} is the sentinel's, nothing came before it: {next}",
        sent + 1
    );
}

async fn register_activate_then_log_in(backend: Backend) {
    let (app, sink) = app_with_mail(
        backend,
        &[
            ("TESSERA__ACCOUNTS__SEND_ACTIVATION_EMAIL", "true"),
            ("TESSERA__ACCOUNTS__SEND_CONFIRMATION_EMAIL", "true"),
        ],
    )
    .await;
    let (status, _) = post(
        &app,
        "/auth/users/",
        json!({"username": "newbie", "password": PASSWORD, "email": "newbie@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        jwt_login(&app, "newbie", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "inactive until activated"
    );
    let (status, body) = post(
        &app,
        "/auth/token/login/",
        json!({"username": "newbie", "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"non_field_errors": ["Unable to log in with provided credentials."]})
        )
    );

    let mail = sink.message(1).await;
    assert!(mail.contains("To: newbie@example.com"), "{mail}");
    assert!(mail.contains("https://app.example/#/activate/"), "{mail}");
    let (uid, token) = sink.link(1, "#/activate/").await;
    assert_eq!(
        post(
            &app,
            "/auth/users/activation/",
            json!({"uid": uid, "token": token})
        )
        .await,
        (StatusCode::NO_CONTENT, Value::Null)
    );
    assert_eq!(jwt_login(&app, "newbie", PASSWORD).await, StatusCode::OK);
    let (status, body) = post(
        &app,
        "/auth/users/activation/",
        json!({"uid": uid, "token": token}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::FORBIDDEN,
            json!({"detail": "Stale token for given user.", "code": "stale_token"})
        )
    );
    assert!(
        sink.message(2)
            .await
            .contains("successfully created and activated"),
        "a confirmation follows"
    );

    // resend_activation: nothing for active or unknown accounts.
    assert_eq!(
        post(
            &app,
            "/auth/users/resend_activation/",
            json!({"email": "newbie@example.com"})
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        post(
            &app,
            "/auth/users/resend_activation/",
            json!({"email": "nobody@example.com"})
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    no_mail_beyond(&app, &sink, 2).await;
}

async fn activation_errors_and_purpose_binding(backend: Backend) {
    let (app, sink) = app_with_mail(
        backend,
        &[("TESSERA__ACCOUNTS__SEND_ACTIVATION_EMAIL", "true")],
    )
    .await;
    let (status, body) = post(&app, "/auth/users/activation/", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"uid": ["This field is required."], "token": ["This field is required."]})
    );
    let (_, body) = post(
        &app,
        "/auth/users/activation/",
        json!({"uid": "", "token": "x"}),
    )
    .await;
    assert_eq!(body, json!({"uid": ["This field may not be blank."]}));
    let (_, body) = post(
        &app,
        "/auth/users/activation/",
        json!({"uid": "bm9wZQ", "token": "x"}),
    )
    .await;
    assert_eq!(
        body,
        json!({"uid": ["Invalid user id or user doesn't exist."]})
    );

    post(
        &app,
        "/auth/users/",
        json!({"username": "late", "password": PASSWORD, "email": "late@example.com"}),
    )
    .await;
    let (uid, token) = sink.link(1, "#/activate/").await;
    let (status, body) = post(
        &app,
        "/auth/users/activation/",
        json!({"uid": uid, "token": format!("{token}0")}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"token": ["Invalid token for given user."]})
        )
    );
    // The activation token is no password-reset token.
    let (status, body) = post(
        &app,
        "/auth/users/reset_password_confirm/",
        json!({"uid": uid, "token": token, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"token": ["Invalid token for given user."]})
        )
    );
    // A resend mails a fresh link.
    assert_eq!(
        post(
            &app,
            "/auth/users/resend_activation/",
            json!({"email": "late@example.com"})
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let (uid2, token2) = sink.link(2, "#/activate/").await;
    assert_eq!(
        post(
            &app,
            "/auth/users/activation/",
            json!({"uid": uid2, "token": token2})
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );

    // Djoser's EmailField checks come first, in both modes.
    let (plain, _) = app_with_mail(backend, &[]).await;
    for target in [&app, &plain] {
        for (body, error) in [
            (json!({}), "This field is required."),
            (
                json!({"email": "not-an-address"}),
                "Enter a valid email address.",
            ),
        ] {
            let (status, answer) = post(target, "/auth/users/resend_activation/", body).await;
            assert_eq!(
                (status, answer),
                (StatusCode::BAD_REQUEST, json!({"email": [error]}))
            );
        }
    }
    // With activation emails off: Djoser's bare 400, no body and no content type.
    let response = plain
        .post_json(
            "/auth/users/resend_activation/",
            json!({"email": "late@example.com"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("content-type").is_none());
    assert_eq!(
        response.text().await.unwrap(),
        "",
        "activation emails are off"
    );
}

async fn password_reset_flow_revokes_old_tokens(backend: Backend) {
    let (app, sink) = app_with_mail(
        backend,
        &[(
            "TESSERA__ACCOUNTS__PASSWORD_CHANGED_EMAIL_CONFIRMATION",
            "true",
        )],
    )
    .await;
    let user = app.register("forgetful").await;
    let (access, refresh) = app.login(&user).await;
    let key = post(
        &app,
        "/auth/token/login/",
        json!({"username": user.username, "password": PASSWORD}),
    )
    .await
    .1["auth_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let email = format!("{}@example.com", user.username);
    assert_eq!(
        post(
            &app,
            "/auth/users/reset_password/",
            json!({"email": email.to_uppercase()})
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let (uid, token) = sink.link(1, "#/password/reset/confirm/").await;

    let confirm = |password: &str| json!({"uid": uid, "token": token, "new_password": password});
    let (status, body) = post(&app, "/auth/users/reset_password_confirm/", confirm("123")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"new_password": [
            "This password is too short. It must contain at least 8 characters.",
            "This password is too common.",
            "This password is entirely numeric."
        ]})
    );
    assert_eq!(
        post(
            &app,
            "/auth/users/reset_password_confirm/",
            confirm(NEW_PASSWORD)
        )
        .await
        .0,
        StatusCode::NO_CONTENT,
        "the token survived"
    );
    assert_eq!(
        jwt_login(&app, &user.username, PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        jwt_login(&app, &user.username, NEW_PASSWORD).await,
        StatusCode::OK
    );
    let me = |auth: String| {
        app.request(Method::GET, "/auth/users/me/")
            .header("Authorization", auth)
            .send()
    };
    assert_eq!(
        me(format!("Bearer {access}")).await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "earlier JWTs are revoked"
    );
    assert_eq!(
        me(format!("Token {key}")).await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "and opaque keys"
    );
    assert_eq!(
        app.post_json("/api/token/refresh/", json!({"refresh": refresh}))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = post(
        &app,
        "/auth/users/reset_password_confirm/",
        confirm("another good pass"),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"token": ["Invalid token for given user."]})
        ),
        "used once only"
    );
    assert!(
        sink.message(2)
            .await
            .contains("password has been successfully changed")
    );
}

async fn reset_password_reveals_no_unknown_email_unless_configured(backend: Backend) {
    let (app, sink) = app_with_mail(backend, &[]).await;
    assert_eq!(
        post(
            &app,
            "/auth/users/reset_password/",
            json!({"email": "ghost@example.com"})
        )
        .await,
        (StatusCode::NO_CONTENT, Value::Null)
    );
    let (status, body) = post(
        &app,
        "/auth/users/reset_password/",
        json!({"email": "not-an-email"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"email": ["Enter a valid email address."]})
        )
    );
    no_mail_beyond(&app, &sink, 0).await;
    let (app, _) = app_with_mail(
        backend,
        &[(
            "TESSERA__ACCOUNTS__PASSWORD_RESET_SHOW_EMAIL_NOT_FOUND",
            "true",
        )],
    )
    .await;
    let (status, body) = post(
        &app,
        "/auth/users/reset_password/",
        json!({"email": "ghost@example.com"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"email": ["User with given email does not exist."]})
        )
    );
}

async fn set_password_checks_and_logs_out_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut user = app.register("changer").await;
    let (access, refresh) = app.login(&user).await;
    // Another session (another device) of the same user.
    let (other_access, other_refresh) = app.login(&user).await;
    let (status, body) = post_as(
        &app,
        &user,
        "/auth/users/set_password/",
        json!({"current_password": "wrong", "new_password": "123"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // DRF checks fields before validate(): the new password's problems wait for the right one.
    assert_eq!(body, json!({"current_password": ["Invalid password."]}));
    let (status, body) = post_as(
        &app,
        &user,
        "/auth/users/set_password/",
        json!({"current_password": PASSWORD, "new_password": "123"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["new_password"].as_array().unwrap().len(), 3);
    let (status, body) = post_as(&app, &user, "/auth/users/set_password/", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"current_password": ["This field is required."], "new_password": ["This field is required."]})
    );
    let (status, _) = post_as(
        &app,
        &user,
        "/auth/users/set_password/",
        json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let response = app
        .request(Method::GET, "/auth/users/me/")
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "logout_on_password_change"
    );
    let response = app
        .request(Method::GET, "/auth/users/me/")
        .bearer_auth(&other_access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "the other session's access token"
    );
    // No session can mint new access tokens either.
    for (session, refresh) in [("this", &refresh), ("the other", &other_refresh)] {
        let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
        assert_eq!(
            (status, body["code"].clone()),
            (StatusCode::UNAUTHORIZED, json!("token_not_valid")),
            "{session} session's refresh token: {body}"
        );
    }
    user.password = NEW_PASSWORD.into();
    assert_eq!(
        jwt_login(&app, &user.username, NEW_PASSWORD).await,
        StatusCode::OK
    );

    let retype = TestApp::spawn_with(
        backend,
        &[("TESSERA__ACCOUNTS__SET_PASSWORD_RETYPE", "true")],
    )
    .await;
    let user = retype.register("retype").await;
    let body = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD, "re_new_password": "something else"});
    let (status, body) = post_as(&retype, &user, "/auth/users/set_password/", body).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"non_field_errors": ["The two password fields didn't match."]})
        )
    );

    let retype = TestApp::spawn_with(
        backend,
        &[("TESSERA__ACCOUNTS__USER_CREATE_PASSWORD_RETYPE", "true")],
    )
    .await;
    let (status, body) = post(
        &retype,
        "/auth/users/",
        json!({"username": "twice", "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"re_password": ["This field is required."]})
        )
    );
    let (status, body) = post(
        &retype,
        "/auth/users/",
        json!({"username": "twice", "password": PASSWORD, "re_password": "other one"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"non_field_errors": ["The two password fields didn't match."]})
        )
    );
    let (status, _) = post(
        &retype,
        "/auth/users/",
        json!({"username": "twice", "password": PASSWORD, "re_password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn set_password_can_leave_tokens_alone(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[("TESSERA__ACCOUNTS__LOGOUT_ON_PASSWORD_CHANGE", "false")],
    )
    .await;
    let user = app.register("keeper").await;
    let (access, _) = app.login(&user).await;
    let (status, _) = post_as(
        &app,
        &user,
        "/auth/users/set_password/",
        json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let response = app
        .request(Method::GET, "/auth/users/me/")
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "as in Djoser");
}

async fn set_username_and_reset_username(backend: Backend) {
    let (app, sink) = app_with_mail(
        backend,
        &[(
            "TESSERA__ACCOUNTS__USERNAME_CHANGED_EMAIL_CONFIRMATION",
            "true",
        )],
    )
    .await;
    let mut user = app.register("renamer").await;
    let other = app.register("taken").await;
    let taken = json!({"current_password": "wrong", "new_username": other.username.to_uppercase()});
    let (status, body) = post_as(&app, &user, "/auth/users/set_username/", taken).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"current_password": ["Invalid password."], "new_username": ["A user with that username already exists."]})
    );
    let (_, body) = post_as(
        &app,
        &user,
        "/auth/users/set_username/",
        json!({"current_password": PASSWORD, "new_username": "a b"}),
    )
    .await;
    assert_eq!(
        body,
        json!({"new_username": ["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."]})
    );
    let (status, _) = post_as(
        &app,
        &user,
        "/auth/users/set_username/",
        json!({"current_password": PASSWORD, "new_username": "renamed1"}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    user.username = "renamed1".into();
    assert_eq!(jwt_login(&app, "renamed1", PASSWORD).await, StatusCode::OK);
    assert!(
        sink.message(1)
            .await
            .contains("username has been successfully changed")
    );

    let address = app
        .app_state
        .users
        .find(user.id.parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .email;
    assert_eq!(
        post(
            &app,
            "/auth/users/reset_username/",
            json!({"email": address})
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let (uid, token) = sink.link(2, "#/username/reset/confirm/").await;
    let (status, body) = post(
        &app,
        "/auth/users/reset_username_confirm/",
        json!({"uid": uid, "token": "bad", "new_username": other.username}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"new_username": ["A user with that username already exists."]})
        ),
        "a taken name is reported before the token"
    );
    let (status, _) = post(
        &app,
        "/auth/users/reset_username_confirm/",
        json!({"uid": uid, "token": token, "new_username": "renamed2"}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(jwt_login(&app, "renamed2", PASSWORD).await, StatusCode::OK);
    let (status, body) = post(
        &app,
        "/auth/users/reset_username_confirm/",
        json!({"uid": uid, "token": token, "new_username": "renamed3"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"token": ["Invalid token for given user."]})
        ),
        "used once only"
    );
}

async fn expired_reset_tokens_fail(backend: Backend) {
    let (app, sink) = app_with_mail(
        backend,
        &[("TESSERA__ACCOUNTS__PASSWORD_RESET_TIMEOUT", "1s")],
    )
    .await;
    let user = app.register("slow").await;
    post(
        &app,
        "/auth/users/reset_password/",
        json!({"email": format!("{}@example.com", user.username)}),
    )
    .await;
    let (uid, token) = sink.link(1, "#/password/reset/confirm/").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, body) = post(
        &app,
        "/auth/users/reset_password_confirm/",
        json!({"uid": uid, "token": token, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"token": ["Invalid token for given user."]})
        )
    );
}

async fn users_can_be_visible_to_each_other(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("TESSERA__ACCOUNTS__HIDE_USERS", "false")]).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let (status, list) = answer(
        alice
            .auth(app.request(Method::GET, "/auth/users/"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, list.as_array().unwrap().len()),
        (StatusCode::OK, 2)
    );
    let (status, body) = answer(
        alice
            .auth(app.request(Method::GET, &format!("/auth/users/{}/", bob.id)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::FORBIDDEN,
            json!({"detail": "You do not have permission to perform this action.", "code": "permission_denied"})
        )
    );
}

async fn users_can_log_in_with_their_email(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("TESSERA__ACCOUNTS__LOGIN_FIELD", "email")]).await;
    let (status, body) = post(
        &app,
        "/auth/users/",
        json!({"username": "mailer", "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"email": ["This field is required."]})
        )
    );
    let (status, _) = post(
        &app,
        "/auth/users/",
        json!({"username": "mailer", "password": PASSWORD, "email": "m@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = post(
        &app,
        "/auth/users/",
        json!({"username": "other", "password": PASSWORD, "email": "M@example.com"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"email": ["User with this Email address already exists."]})
        )
    );

    let (status, body) = post(
        &app,
        "/api/token/",
        json!({"email": "m@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post(
        &app,
        "/api/token/",
        json!({"username": "mailer", "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"email": ["This field is required."]})
        )
    );
    let (status, body) = post(
        &app,
        "/auth/token/login/",
        json!({"email": "m@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = post(
        &app,
        "/auth/token/login/",
        json!({"username": "mailer", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let response = app
        .request(Method::GET, "/auth/users/me/")
        .basic_auth("m@example.com", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "Basic takes the email too"
    );
}

async fn a_dead_mail_server_blocks_nothing(backend: Backend) {
    // A mail server that accepts connections and never says a word (no SMTP greeting): the
    // delivery hangs in the background until its timeout, the answer does not wait for it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port().to_string();
    let (accepted_tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
    let _silent_server = AbortOnDrop(tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
            let _ = accepted_tx.send(());
        }
    }));
    let dead = TestApp::spawn_with(
        backend,
        &[
            ("TESSERA__ACCOUNTS__SEND_ACTIVATION_EMAIL", "true"),
            ("TESSERA__EMAIL__BACKEND", "smtp"),
            ("TESSERA__EMAIL__SMTP_HOST", "127.0.0.1"),
            ("TESSERA__EMAIL__SMTP_PORT", silent_port.as_str()),
            ("TESSERA__EMAIL__SMTP_SECURITY", "none"),
        ],
    )
    .await;
    let started = std::time::Instant::now();
    let (status, _) = post(
        &dead,
        "/auth/users/",
        json!({"username": "nomail", "password": PASSWORD, "email": "n@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The delivery did reach the silent server (so the answer above came while it hung).
    tokio::time::timeout(std::time::Duration::from_secs(10), accepted.recv())
        .await
        .expect("the app connected to the mail server within 10 s")
        .expect("the silent server is still running");
}

/// Aborts a background task when the test ends, even by a failed assertion.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The `file` backend's messages carry activation and reset links: owner-only files in an
/// owner-only folder (when Tessera creates it), never readable by other local users.
async fn mailed_links_in_files_are_readable_by_the_owner_only(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let folder = outbox.join("mail");
    let app = TestApp::spawn_with(
        backend,
        &[
            ("TESSERA__EMAIL__BACKEND", "file"),
            ("TESSERA__EMAIL__FILE_PATH", folder.to_str().unwrap()),
            ("TESSERA__ACCOUNTS__SEND_ACTIVATION_EMAIL", "true"),
        ],
    )
    .await;
    let user = app.register("mailfile").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let eml = loop {
        let written: Vec<_> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "eml"))
            .collect();
        if let [one] = written.as_slice() {
            break one.clone();
        }
        assert!(written.is_empty(), "one message expected: {written:?}");
        assert!(std::time::Instant::now() < deadline, "no .eml written");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let text = std::fs::read_to_string(&eml).unwrap();
    assert!(text.contains(&user.username), "{text}");
    assert!(text.contains("/activate/"), "{text}");
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&eml), 0o600, "{}", eml.display());
    assert_eq!(mode(&folder), 0o700);
    assert_eq!(mode(&outbox), 0o700, "created parents are owner-only too");
}

//! The TOTP second factor: enrolment, confirmation, logins completed with a code (pair and key),
//! replay, the skew window, recovery codes, the lockout, staff enforcement, removal, the
//! operator's reset, and nothing changed while `[mfa]` is off.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use totp_rs::{Builder, Secret, Totp};

use crate::helpers::{Backend, PASSWORD, TestApp, TestUser, answer, call, post};

on_every_backend!(
    enrolment_answers_a_secret_its_uri_and_a_qr_code,
    restarting_an_enrolment_replaces_the_pending_secret,
    confirmation_activates_totp_and_answers_ten_recovery_codes_once,
    the_secret_is_stored_sealed_and_bound_to_its_user,
    a_right_password_answers_mfa_required_and_a_wrong_one_answers_as_before,
    a_pair_login_completes_with_a_code,
    a_key_login_completes_with_a_code,
    the_cookie_mode_applies_to_the_completed_pair,
    a_code_is_accepted_once,
    codes_of_the_neighbouring_steps_pass_and_two_steps_off_do_not,
    a_recovery_code_works_once,
    wrong_codes_lock_the_account_and_then_the_password_login_too,
    http_basic_cannot_stand_in_for_the_second_factor,
    staff_must_enrol_before_using_staff_endpoints,
    expired_pending_logins_are_flushed,
    removal_needs_the_password_and_a_code,
    an_operator_reset_removes_totp,
    with_the_feature_off_nothing_changes,
);

/// Settings that turn second factors on.
pub const MFA_ON: (&str, &str) = ("TESSERA__MFA__ENABLED", "true");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The code of the time-step `offset` steps from now (0: current, -1: previous...). Waits out
/// the last seconds of a step first, so the server sees the same step as the test.
pub async fn code(totp: &Totp, offset: i64) -> String {
    let into_step = now() % 30;
    if into_step >= 27 {
        tokio::time::sleep(Duration::from_millis((30 - into_step) * 1000 + 200)).await;
    }
    let at = now() as i64 + offset * 30;
    totp.generate(at as u64).to_string()
}

/// The authenticator app's view of an enrolment answer.
pub fn app_of(enrolment: &Value) -> Totp {
    let secret = Secret::try_from_base32(enrolment["secret"].as_str().unwrap()).unwrap();
    Builder::new().with_secret(secret).build().unwrap()
}

/// A user with TOTP active: its authenticator and its recovery codes. The confirmation used
/// the previous step's code, so the current and next steps' codes are still unused.
pub async fn enrolled(app: &TestApp, prefix: &str) -> (TestUser, Totp, Vec<String>) {
    let user = app.register(prefix).await;
    let (status, enrolment) = call(app, &user, Method::POST, "/auth/mfa/totp/", None).await;
    assert_eq!(status, StatusCode::OK, "{enrolment}");
    let totp = app_of(&enrolment);
    let body = json!({"code": code(&totp, -1).await});
    let (status, confirmed) = call(
        app,
        &user,
        Method::POST,
        "/auth/mfa/totp/confirm/",
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    let codes = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (user, totp, codes)
}

/// Logs in with the password at `path`; the `mfa_token` of its 401 `mfa_required` answer.
pub async fn mfa_token(app: &TestApp, user: &TestUser, path: &str) -> String {
    let body = json!({"username": user.username, "password": user.password});
    let (status, answer) = post(app, path, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!(answer["code"], "mfa_required", "{answer}");
    answer["mfa_token"].as_str().unwrap().to_owned()
}

/// `POST /api/token/mfa/`.
pub async fn complete(app: &TestApp, mfa_token: &str, code: &str) -> (StatusCode, Value) {
    post(
        app,
        "/api/token/mfa/",
        json!({"mfa_token": mfa_token, "code": code}),
    )
    .await
}

async fn mfa_app(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, &[MFA_ON]).await
}

async fn bearer_me(app: &TestApp, access: &str) -> StatusCode {
    crate::helpers::me(app, &format!("Bearer {access}")).await.0
}

async fn enrolment_answers_a_secret_its_uri_and_a_qr_code(backend: Backend) {
    let app = mfa_app(backend).await;
    let user = app.register("enrol").await;
    let (status, body) = call(&app, &user, Method::POST, "/auth/mfa/totp/", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let secret = Secret::try_from_base32(body["secret"].as_str().unwrap()).unwrap();
    assert!(secret.len() >= 20, "at least 160 bits");
    let uri = body["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Tessera:"), "{uri}");
    assert!(uri.contains(&user.username), "{uri}");
    assert!(uri.contains("issuer=Tessera"), "{uri}");
    assert!(uri.contains(body["secret"].as_str().unwrap()), "{uri}");
    let svg = body["qr_svg"].as_str().unwrap();
    assert!(
        svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
        "{svg:.80}"
    );
    // Two users never share a secret.
    let other = app.register("enrol").await;
    let (_, second) = call(&app, &other, Method::POST, "/auth/mfa/totp/", None).await;
    assert_ne!(second["secret"], body["secret"]);
    // Pending only: the password alone still logs in.
    app.login(&user).await;
    // Anonymous callers cannot enrol.
    let (status, _) = post(&app, "/auth/mfa/totp/", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn restarting_an_enrolment_replaces_the_pending_secret(backend: Backend) {
    let app = mfa_app(backend).await;
    let user = app.register("restart").await;
    let (_, first) = call(&app, &user, Method::POST, "/auth/mfa/totp/", None).await;
    let (_, second) = call(&app, &user, Method::POST, "/auth/mfa/totp/", None).await;
    assert_ne!(first["secret"], second["secret"]);
    let stale = json!({"code": code(&app_of(&first), 0).await});
    let (status, body) = call(
        &app,
        &user,
        Method::POST,
        "/auth/mfa/totp/confirm/",
        Some(stale),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body, json!({"code": ["Invalid code."]}));
    let fresh = json!({"code": code(&app_of(&second), 0).await});
    let (status, _) = call(
        &app,
        &user,
        Method::POST,
        "/auth/mfa/totp/confirm/",
        Some(fresh),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

async fn confirmation_activates_totp_and_answers_ten_recovery_codes_once(backend: Backend) {
    let app = mfa_app(backend).await;
    let user = app.register("confirm").await;
    // Nothing to confirm before an enrolment starts.
    let body = json!({"code": "123456"});
    let (status, refused) = call(
        &app,
        &user,
        Method::POST,
        "/auth/mfa/totp/confirm/",
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        refused["non_field_errors"][0]
            .as_str()
            .unwrap()
            .contains("No TOTP enrolment")
    );
    let (_, enrolment) = call(&app, &user, Method::POST, "/auth/mfa/totp/", None).await;
    let totp = app_of(&enrolment);
    let body = json!({"code": code(&totp, 0).await});
    let (status, confirmed) = call(
        &app,
        &user,
        Method::POST,
        "/auth/mfa/totp/confirm/",
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    let codes = confirmed["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    assert!(codes.iter().all(|c| c.as_str().unwrap().len() == 19));
    // Active now: Basic no longer works for this user, so confirm again as a Bearer caller.
    let token = mfa_token(&app, &user, "/api/token/").await;
    let (status, pair) = complete(&app, &token, &code(&totp, 1).await).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let again = app
        .request(Method::POST, "/auth/mfa/totp/confirm/")
        .bearer_auth(pair["access"].as_str().unwrap())
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, refused) = answer(again).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        refused,
        json!({"non_field_errors": ["TOTP is already active: remove it first."]})
    );
    // And a new enrolment is refused while TOTP is active: the codes are shown once only.
    let restart = app
        .request(Method::POST, "/auth/mfa/totp/")
        .bearer_auth(pair["access"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let (status, refused) = answer(restart).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
}

async fn the_secret_is_stored_sealed_and_bound_to_its_user(backend: Backend) {
    use sea_orm::{ConnectionTrait, Statement};
    let app = mfa_app(backend).await;
    let user = app.register("sealed").await;
    let (_, enrolment) = call(&app, &user, Method::POST, "/auth/mfa/totp/", None).await;
    let secret = Secret::try_from_base32(enrolment["secret"].as_str().unwrap()).unwrap();
    let raw_hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let db = &app.app_state.database;
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT secret_sealed FROM mfa_totp",
        ))
        .await
        .unwrap();
    let sealed: String = rows[0].try_get("", "secret_sealed").unwrap();
    assert!(!sealed.contains(&raw_hex), "the raw secret is not stored");
    assert!(
        !sealed
            .to_lowercase()
            .contains(&enrolment["secret"].as_str().unwrap().to_lowercase())
    );
    // The row copied to another user does not open for that user: its codes never match.
    let victim = app.register("copied").await;
    let (_, own) = call(&app, &victim, Method::POST, "/auth/mfa/totp/", None).await;
    let copy =
        format!("UPDATE mfa_totp SET secret_sealed = '{sealed}' WHERE secret_sealed <> '{sealed}'");
    db.execute_unprepared(&copy).await.unwrap();
    let totp = app_of(&enrolment);
    let body = json!({"code": code(&totp, 0).await});
    let (status, answer) = call(
        &app,
        &victim,
        Method::POST,
        "/auth/mfa/totp/confirm/",
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let body = json!({"code": code(&app_of(&own), 0).await});
    let (status, _) = call(
        &app,
        &victim,
        Method::POST,
        "/auth/mfa/totp/confirm/",
        Some(body),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "its own secret was overwritten"
    );
}

async fn a_right_password_answers_mfa_required_and_a_wrong_one_answers_as_before(backend: Backend) {
    let app = mfa_app(backend).await;
    let (user, _, _) = enrolled(&app, "required").await;
    let plain = app.register("plain").await;
    for path in ["/api/token/", "/auth/jwt/create/", "/auth/jwt/create"] {
        let right = json!({"username": user.username, "password": PASSWORD});
        let response = app.post_json(path, right).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="api""#
        );
        let (status, body) = answer(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body["code"], "mfa_required");
        assert!(body["detail"].as_str().unwrap().contains("second factor"));
        assert_eq!(body["mfa_token"].as_str().unwrap().len(), 64);
        assert!(body.get("access").is_none() && body.get("refresh").is_none());
        // A wrong password: the very answer a user without TOTP gets.
        let wrong = |u: &TestUser| json!({"username": u.username, "password": "wrong password"});
        let (s1, b1) = post(&app, path, wrong(&user)).await;
        let (s2, b2) = post(&app, path, wrong(&plain)).await;
        assert_eq!((s1, &b1), (s2, &b2));
        assert_eq!(b1["code"], "no_active_account");
    }
    for path in ["/auth/token/login/", "/api/api-token-auth/"] {
        let token = mfa_token(&app, &user, path).await;
        assert_eq!(token.len(), 64);
        let wrong = |u: &TestUser| json!({"username": u.username, "password": "wrong password"});
        let (s1, b1) = post(&app, path, wrong(&user)).await;
        let (s2, b2) = post(&app, path, wrong(&plain)).await;
        assert_eq!((s1, &b1), (s2, &b2));
        assert_eq!(s1, StatusCode::BAD_REQUEST);
    }
    // Users without TOTP log in as ever.
    app.login(&plain).await;
}

async fn a_pair_login_completes_with_a_code(backend: Backend) {
    let app = mfa_app(backend).await;
    let (user, totp, _) = enrolled(&app, "pair").await;
    let token = mfa_token(&app, &user, "/auth/jwt/create/").await;
    let (status, pair) = complete(&app, &token, &code(&totp, 0).await).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let access = pair["access"].as_str().unwrap();
    assert_eq!(bearer_me(&app, access).await, StatusCode::OK);
    let refresh = pair["refresh"].as_str().unwrap();
    let (status, _) = post(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(status, StatusCode::OK);
    // The mfa_token is used up.
    let (status, body) = complete(&app, &token, &code(&totp, 1).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["mfa_token"].is_array(), "{body}");
}

async fn a_key_login_completes_with_a_code(backend: Backend) {
    let app = mfa_app(backend).await;
    let (user, totp, _) = enrolled(&app, "key").await;
    let token = mfa_token(&app, &user, "/auth/token/login/").await;
    // A key login's token does not complete at the pair endpoint.
    let (status, body) = complete(&app, &token, &code(&totp, 0).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["mfa_token"].is_array(), "{body}");
    let body = json!({"mfa_token": token, "code": code(&totp, 0).await});
    let (status, key) = post(&app, "/auth/token/login/mfa/", body).await;
    assert_eq!(status, StatusCode::OK, "{key}");
    let key = key["auth_token"].as_str().unwrap();
    assert_eq!(key.len(), 40);
    let (status, me) = crate::helpers::me(&app, &format!("Token {key}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], user.username.as_str());
    // And a pair login's token does not complete at the key endpoint.
    let token = mfa_token(&app, &user, "/api/token/").await;
    let body = json!({"mfa_token": token, "code": code(&totp, 1).await});
    let (status, _) = post(&app, "/auth/token/login/mfa/", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn the_cookie_mode_applies_to_the_completed_pair(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            MFA_ON,
            ("TESSERA__JWT__COOKIE__ENABLED", "true"),
            ("TESSERA__JWT__COOKIE__OMIT_FROM_BODY", "true"),
        ],
    )
    .await;
    let (user, totp, _) = enrolled(&app, "cookie").await;
    let token = mfa_token(&app, &user, "/api/token/").await;
    let body = json!({"mfa_token": token, "code": code(&totp, 0).await});
    let response = app.post_json("/api/token/mfa/", body).await;
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let (status, pair) = answer(response).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    assert!(
        pair.get("refresh").is_none(),
        "omitted from the body: {pair}"
    );
    let refresh = cookies
        .iter()
        .find(|c| c.starts_with("refresh_token="))
        .expect("the refresh cookie");
    assert!(refresh.contains("HttpOnly"), "{refresh}");
    assert!(cookies.iter().any(|c| c.starts_with("csrftoken=")));
}

async fn a_code_is_accepted_once(backend: Backend) {
    let app = mfa_app(backend).await;
    let (user, totp, _) = enrolled(&app, "replay").await;
    let current = code(&totp, 0).await;
    let first = mfa_token(&app, &user, "/api/token/").await;
    let (status, _) = complete(&app, &first, &current).await;
    assert_eq!(status, StatusCode::OK);
    let second = mfa_token(&app, &user, "/api/token/").await;
    let (status, body) = complete(&app, &second, &current).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "replayed");
    assert_eq!(body, json!({"code": ["Invalid code."]}));
    // An earlier step than the last accepted is no good either; a later one is.
    let (status, _) = complete(&app, &second, &code(&totp, -1).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = complete(&app, &second, &code(&totp, 1).await).await;
    assert_eq!(status, StatusCode::OK, "the token survived the wrong codes");
}

async fn codes_of_the_neighbouring_steps_pass_and_two_steps_off_do_not(backend: Backend) {
    let app = mfa_app(backend).await;
    let user = app.register("skew").await;
    let (_, enrolment) = call(&app, &user, Method::POST, "/auth/mfa/totp/", None).await;
    let totp = app_of(&enrolment);
    let confirm = |code: String| {
        call(
            &app,
            &user,
            Method::POST,
            "/auth/mfa/totp/confirm/",
            Some(json!({"code": code})),
        )
    };
    for off in [-2, 2, -3, 3] {
        let (status, _) = confirm(code(&totp, off).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{off} steps off");
    }
    let (status, _) = confirm(code(&totp, -1).await).await;
    assert_eq!(status, StatusCode::OK, "the previous step");
    let token = mfa_token(&app, &user, "/api/token/").await;
    for off in [2, -2] {
        let (status, _) = complete(&app, &token, &code(&totp, off).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{off} steps off");
    }
    let (status, body) = complete(&app, &token, &code(&totp, 1).await).await;
    assert_eq!(status, StatusCode::OK, "the next step: {body}");
}

async fn a_recovery_code_works_once(backend: Backend) {
    let app = mfa_app(backend).await;
    let (user, _, codes) = enrolled(&app, "recovery").await;
    let token = mfa_token(&app, &user, "/api/token/").await;
    // Typed in capitals and without dashes: still the code.
    let typed = codes[0].to_uppercase().replace('-', "");
    let (status, pair) = complete(&app, &token, &typed).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let token = mfa_token(&app, &user, "/api/token/").await;
    let (status, body) = complete(&app, &token, &codes[0]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "used up");
    assert_eq!(body, json!({"code": ["Invalid code."]}));
    let (status, _) = complete(&app, &token, &codes[1]).await;
    assert_eq!(status, StatusCode::OK, "another code still works");
    // Another user's recovery code is no code of this user.
    let (other, _, other_codes) = enrolled(&app, "recovery").await;
    let token = mfa_token(&app, &user, "/api/token/").await;
    let (status, _) = complete(&app, &token, &other_codes[0]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let token = mfa_token(&app, &other, "/api/token/").await;
    let (status, _) = complete(&app, &token, &other_codes[0]).await;
    assert_eq!(status, StatusCode::OK, "unspent by the failed try");
}

async fn wrong_codes_lock_the_account_and_then_the_password_login_too(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[MFA_ON, ("TESSERA__THROTTLE__LOCKOUT_FAILURES", "3")],
    )
    .await;
    let (user, totp, _) = enrolled(&app, "locked").await;
    let token = mfa_token(&app, &user, "/api/token/").await;
    let right = code(&totp, 0).await;
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let mut refused = 0;
    let mut locked = false;
    for _ in 0..6 {
        let (status, body) = complete(&app, &token, wrong).await;
        match status {
            StatusCode::BAD_REQUEST => refused += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(body["code"], "throttled");
                locked = true;
                break;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(locked, "the lockout never came");
    // The password check counted once, the codes after it.
    assert_eq!(refused, 2, "wrong codes checked before the lockout");
    let (status, _) = complete(&app, &token, &right).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "even the right code");
    let body = json!({"username": user.username, "password": PASSWORD});
    let (status, _) = post(&app, "/api/token/", body).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "and the password login"
    );
}

async fn http_basic_cannot_stand_in_for_the_second_factor(backend: Backend) {
    let app = mfa_app(backend).await;
    let (user, _, _) = enrolled(&app, "basic").await;
    let (status, body) = call(&app, &user, Method::GET, "/auth/users/me/", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "authentication_failed");
}

async fn staff_must_enrol_before_using_staff_endpoints(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            MFA_ON,
            ("TESSERA__ACCOUNTS__REQUIRE_MFA_FOR_STAFF", "true"),
            ("TESSERA__SESSIONS__ENABLED", "true"),
        ],
    )
    .await;
    let admin = app.staff().await;
    let member = app.register("member").await;
    // The staff views of sessions too.
    let sessions = format!("/auth/users/{}/sessions/", member.id);
    let (status, body) = call(&app, &admin, Method::GET, &sessions, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "mfa_enrolment_required");
    let (status, body) = call(&app, &admin, Method::GET, "/auth/groups/", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "mfa_enrolment_required");
    assert!(body["detail"].as_str().unwrap().contains("second factor"));
    let (status, _) = call(&app, &admin, Method::GET, "/auth/groups", None).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "without the trailing slash too"
    );
    let new_group = Some(json!({"name": "ops"}));
    let (status, _) = call(&app, &admin, Method::POST, "/auth/groups/", new_group).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Elsewhere it acts as non-staff: other users stay hidden.
    let (status, list) = call(&app, &admin, Method::GET, "/auth/users/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let path = format!("/auth/users/{}/", member.id);
    let (status, _) = call(&app, &admin, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Its own account and the enrolment stay reachable; once enrolled, staff it is.
    let (status, _) = call(&app, &admin, Method::GET, "/auth/users/me/", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, enrolment) = call(&app, &admin, Method::POST, "/auth/mfa/totp/", None).await;
    assert_eq!(status, StatusCode::OK);
    let totp = app_of(&enrolment);
    let body = Some(json!({"code": code(&totp, 0).await}));
    let (status, _) = call(&app, &admin, Method::POST, "/auth/mfa/totp/confirm/", body).await;
    assert_eq!(status, StatusCode::OK);
    let token = mfa_token(&app, &admin, "/api/token/").await;
    let (status, pair) = complete(&app, &token, &code(&totp, 1).await).await;
    assert_eq!(status, StatusCode::OK);
    let access = pair["access"].as_str().unwrap();
    let groups = app
        .request(Method::GET, "/auth/groups/")
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(groups.status(), StatusCode::OK);
    let users = app
        .request(Method::GET, &path)
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(users.status(), StatusCode::OK);
    // Without the policy, staff need no second factor.
    let relaxed = mfa_app(backend).await;
    let admin = relaxed.staff().await;
    let (status, _) = call(&relaxed, &admin, Method::GET, "/auth/groups/", None).await;
    assert_eq!(status, StatusCode::OK);
}

async fn removal_needs_the_password_and_a_code(backend: Backend) {
    let app = mfa_app(backend).await;
    let (user, totp, codes) = enrolled(&app, "remove").await;
    let token = mfa_token(&app, &user, "/api/token/").await;
    let (_, pair) = complete(&app, &token, &code(&totp, 0).await).await;
    let access = pair["access"].as_str().unwrap().to_owned();
    let remove = |body: Value| {
        let request = app
            .request(Method::DELETE, "/auth/mfa/totp/")
            .bearer_auth(&access)
            .json(&body);
        async move { answer(request.send().await.unwrap()).await }
    };
    let (status, body) = remove(json!({"current_password": PASSWORD, "code": "000000"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"code": ["Invalid code."]}));
    let (status, body) = remove(json!({"current_password": "wrong", "code": codes[0]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"current_password": ["Invalid password."]}));
    let (status, body) = remove(json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"current_password": ["This field is required."], "code": ["This field is required."]})
    );
    let (status, body) = remove(json!({"current_password": PASSWORD, "code": codes[1]})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // Gone: the password alone logs in again, and there is nothing left to remove.
    app.login(&user).await;
    let (status, body) = remove(json!({"current_password": PASSWORD, "code": codes[2]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"non_field_errors": ["TOTP is not active."]}));
}

async fn an_operator_reset_removes_totp(backend: Backend) {
    let app = mfa_app(backend).await;
    let (user, _, _) = enrolled(&app, "reset").await;
    let run = |username: &str| app.cli(&["mfa", "reset", username], &[MFA_ON]);
    let out = run(&user.username);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("TOTP removed"));
    app.login(&user).await;
    let again = run(&user.username);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("had no TOTP"));
    let unknown = run("nobody-at-all");
    assert!(!unknown.status.success());
}

/// Pending logins nobody completed are deleted once expired by `tessera flush-expired-tokens`,
/// not only at their user's next login; live ones stay.
async fn expired_pending_logins_are_flushed(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[MFA_ON]).await;
    let (gone, _, _) = enrolled(&app, "abandoned").await;
    let (kept, totp, _) = enrolled(&app, "pending").await;
    mfa_token(&app, &gone, "/api/token/").await;
    let live = mfa_token(&app, &kept, "/api/token/").await;
    use sea_orm::ConnectionTrait;
    let db = &app.app_state.database;
    // The abandoned one is made to expire a minute ago (written as the service writes times);
    // the live one keeps its five minutes, which no slow run of the command outlasts.
    let expired = chrono::Utc::now() - chrono::Duration::minutes(1);
    let backend_kind = db.get_database_backend();
    let update = match backend_kind {
        sea_orm::DatabaseBackend::Postgres => {
            "UPDATE mfa_tokens SET expires_at = $1 WHERE user_id = (SELECT id FROM users WHERE username = $2)"
        }
        _ => {
            "UPDATE mfa_tokens SET expires_at = ? WHERE user_id = (SELECT id FROM users WHERE username = ?)"
        }
    };
    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        backend_kind,
        update,
        [expired.into(), gone.username.clone().into()],
    ))
    .await
    .unwrap();
    let out = app.cli(&["flush-expired-tokens"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pending = |user: &TestUser| {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM mfa_tokens t JOIN users u ON u.id = t.user_id \
             WHERE u.username = '{}'",
            user.username
        );
        async move {
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(
                    db.get_database_backend(),
                    sql,
                ))
                .await
                .unwrap()
                .unwrap();
            row.try_get::<i64>("", "n").unwrap()
        }
    };
    assert_eq!(pending(&gone).await, 0, "the expired one is flushed");
    assert_eq!(pending(&kept).await, 1, "the live one stays");
    let (status, _) = complete(&app, &live, &code(&totp, 0).await).await;
    assert_eq!(status, StatusCode::OK);
}

async fn with_the_feature_off_nothing_changes(backend: Backend) {
    let on = mfa_app(backend).await;
    let (user, totp, _) = enrolled(&on, "off").await;
    // The same database with `[mfa]` off: the enrolled user logs in with the password alone.
    let url = secrecy::ExposeSecret::expose_secret(&on.app_state.settings.database.url).to_owned();
    let mut settings = vec![("DATABASE_URL", url.as_str())];
    let prefix = on.redis_prefix.clone();
    if let Some(prefix) = &prefix {
        settings.push(("TESSERA__REDIS__KEY_PREFIX", prefix));
    }
    let off = TestApp::spawn_with(backend, &settings).await;
    let (access, _) = off.login(&user).await;
    for path in ["/auth/token/login/", "/api/api-token-auth/"] {
        let body = json!({"username": user.username, "password": PASSWORD});
        let (status, body) = post(&off, path, body).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (status, _) = call(&off, &user, Method::GET, "/auth/users/me/", None).await;
    assert_eq!(status, StatusCode::OK, "Basic works again");
    for (method, path) in [
        (Method::POST, "/auth/mfa/totp/"),
        (Method::POST, "/auth/mfa/totp/confirm/"),
        (Method::DELETE, "/auth/mfa/totp/"),
    ] {
        let body = json!({"code": code(&totp, 0).await, "current_password": PASSWORD});
        let response = off
            .request(method.clone(), path)
            .bearer_auth(&access)
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, body) = answer(response).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        assert_eq!(body["code"], "not_found");
    }
    for path in ["/api/token/mfa/", "/auth/token/login/mfa/"] {
        let body = json!({"mfa_token": "0".repeat(64), "code": "123456"});
        let (status, _) = post(&off, path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

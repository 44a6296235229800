//! Sessions (`sessions.enabled`): every login listed with where and when it logged in and was
//! last used, ended one at a time, all but the current one, or by staff.
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::forge::claims_of;
use crate::helpers::*;

on_every_backend!(
    sessions_are_listed_with_where_and_when_they_logged_in,
    an_ended_session_is_refused_while_the_others_still_work,
    all_sessions_but_the_current_one_end,
    staff_list_and_end_another_users_sessions,
    non_staff_are_refused_the_staff_views,
    a_refreshed_session_stays_the_same_session,
    a_refresh_without_rotation_stays_the_same_session,
    the_opaque_key_list_is_unchanged,
    sessions_are_off_by_default,
    logins_from_before_sessions_are_listed_without_details,
    a_password_change_ends_the_listed_sessions,
    drfs_one_key_is_one_session_noting_its_use,
    staff_name_users_by_number_with_integer_ids,
);

/// Settings that turn sessions on, with one opaque key per login.
pub const SESSIONS_ON: [(&str, &str); 2] = [
    ("TESSERA__SESSIONS__ENABLED", "true"),
    ("TESSERA__TOKENS__MULTIPLE", "true"),
];

pub async fn sessions_app(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, &SESSIONS_ON).await
}

/// A password login at `path` from a device; the answer's body.
async fn login_from(app: &TestApp, user: &TestUser, device: &str, path: &str) -> Value {
    let response = app
        .request(Method::POST, path)
        .header("User-Agent", device)
        .json(&json!({"username": user.username, "password": user.password}))
        .send()
        .await
        .unwrap();
    let (status, body) = answer(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// A JWT login from a device; (access, refresh).
pub async fn jwt_login(app: &TestApp, user: &TestUser, device: &str) -> (String, String) {
    let body = login_from(app, user, device, "/api/token/").await;
    (
        body["access"].as_str().unwrap().to_owned(),
        body["refresh"].as_str().unwrap().to_owned(),
    )
}

/// An opaque-key login from a device; the key.
pub async fn key_login(app: &TestApp, user: &TestUser, device: &str) -> String {
    let body = login_from(app, user, device, "/auth/token/login/").await;
    body["auth_token"].as_str().unwrap().to_owned()
}

/// A refresh from a device; the answer.
pub async fn refresh_from(app: &TestApp, refresh: &str, device: &str) -> (StatusCode, Value) {
    let response = app
        .request(Method::POST, "/api/token/refresh/")
        .header("User-Agent", device)
        .json(&json!({"refresh": refresh}))
        .send()
        .await
        .unwrap();
    answer(response).await
}

/// `method path` with this `Authorization` header.
pub async fn with_auth(
    app: &TestApp,
    authorization: &str,
    method: Method,
    path: &str,
) -> (StatusCode, Value) {
    answer(
        app.request(method, path)
            .header("Authorization", authorization)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The sessions listed for this `Authorization`.
pub async fn sessions_of(app: &TestApp, authorization: &str) -> Vec<Value> {
    let (status, body) = with_auth(app, authorization, Method::GET, "/auth/sessions/").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

pub fn bearer(access: &str) -> String {
    format!("Bearer {access}")
}

pub fn token(key: &str) -> String {
    format!("Token {key}")
}

/// The id of the session a JWT belongs to (its `sid`).
pub fn sid(token: &str) -> String {
    claims_of(token)["sid"].as_str().expect("a sid").to_owned()
}

/// Whether every use of a JWT session is refused: its refresh token, its access token as
/// Bearer and at verify.
pub async fn jwt_refused(app: &TestApp, access: &str, refresh: &str) {
    let (status, body) = post(app, "/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "refresh: {body}");
    let (status, body) = me(app, &bearer(access)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "Bearer: {body}");
    let (status, body) = post(app, "/api/token/verify/", json!({"token": access})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "verify: {body}");
    assert_eq!(body, json!({"non_field_errors": ["Token is blacklisted"]}));
}

/// Whether a JWT session still works: Bearer, verify and a refresh (whose new pair is returned).
pub async fn jwt_works(app: &TestApp, access: &str, refresh: &str) -> (String, String) {
    assert_eq!(me(app, &bearer(access)).await.0, StatusCode::OK);
    let (status, _) = post(app, "/api/token/verify/", json!({"token": access})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = post(app, "/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["access"].as_str().unwrap().to_owned(),
        body["refresh"].as_str().unwrap().to_owned(),
    )
}

fn ids(sessions: &[Value]) -> Vec<&str> {
    sessions.iter().map(|s| s["id"].as_str().unwrap()).collect()
}

async fn sessions_are_listed_with_where_and_when_they_logged_in(backend: Backend) {
    let app = sessions_app(backend).await;
    let user = app.register("lister").await;
    let (access, _) = jwt_login(&app, &user, "Phone/1.0").await;
    let key = key_login(&app, &user, "Laptop/2.0").await;

    let listed = sessions_of(&app, &bearer(&access)).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let jwt = &listed[0];
    let mut fields: Vec<&str> = jwt
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "created",
            "current",
            "expires",
            "id",
            "ip",
            "kind",
            "last_ip",
            "last_used",
            "last_user_agent",
            "user_agent"
        ]
    );
    assert_eq!(jwt["kind"], "jwt");
    assert_eq!(jwt["id"].as_str().unwrap(), sid(&access));
    assert_eq!(jwt["ip"], "127.0.0.1");
    assert_eq!(jwt["user_agent"], "Phone/1.0");
    assert_eq!(jwt["last_ip"], "127.0.0.1");
    assert_eq!(jwt["last_user_agent"], "Phone/1.0");
    assert_eq!(jwt["current"], true);
    assert!(jwt["expires"].is_string() && jwt["created"].is_string());
    let opaque = &listed[1];
    assert_eq!(opaque["kind"], "token");
    assert_eq!(opaque["user_agent"], "Laptop/2.0");
    assert_eq!(opaque["ip"], "127.0.0.1");
    assert_eq!(opaque["current"], false);
    assert!(opaque["expires"].is_null(), "keys never expire by default");

    // The key's own request marks the key's session as current.
    let as_key = sessions_of(&app, &token(&key)).await;
    assert_eq!(ids(&as_key), ids(&listed));
    assert_eq!(as_key[0]["current"], false);
    assert_eq!(as_key[1]["current"], true);
    // Basic credentials belong to no session.
    let (status, body) = call(&app, &user, Method::GET, "/auth/sessions/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.as_array()
            .unwrap()
            .iter()
            .all(|s| s["current"] == false)
    );
    // Unauthenticated: DRF's 401.
    let (status, body) = answer(
        app.request(Method::GET, "/auth/sessions/")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body["detail"],
        "Authentication credentials were not provided."
    );
}

async fn an_ended_session_is_refused_while_the_others_still_work(backend: Backend) {
    let app = sessions_app(backend).await;
    let user = app.register("ender").await;
    let (access1, refresh1) = jwt_login(&app, &user, "One").await;
    let (access2, refresh2) = jwt_login(&app, &user, "Two").await;
    let key = key_login(&app, &user, "Three").await;
    let other_key = key_login(&app, &user, "Four").await;

    let path = format!("/auth/sessions/{}/", sid(&access1));
    let (status, body) = with_auth(&app, &bearer(&access2), Method::DELETE, &path).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    jwt_refused(&app, &access1, &refresh1).await;
    let (access2, refresh2) = jwt_works(&app, &access2, &refresh2).await;
    assert_eq!(me(&app, &token(&key)).await.0, StatusCode::OK);

    // Ending it again: it is no session any more.
    let (status, body) = with_auth(&app, &bearer(&access2), Method::DELETE, &path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"detail": "No Session matches the given query.", "code": "not_found"})
    );

    // An opaque key's session: the key is refused, the others work.
    let listed = sessions_of(&app, &token(&key)).await;
    let key_session = listed.iter().find(|s| s["current"] == true).unwrap();
    let path = format!("/auth/sessions/{}/", key_session["id"].as_str().unwrap());
    let (status, _) = with_auth(&app, &bearer(&access2), Method::DELETE, &path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = me(&app, &token(&key)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "Invalid token.");
    assert_eq!(me(&app, &token(&other_key)).await.0, StatusCode::OK);
    jwt_works(&app, &access2, &refresh2).await;

    let left = sessions_of(&app, &token(&other_key)).await;
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(left[0]["user_agent"], "Two");
    assert_eq!(left[1]["user_agent"], "Four");
}

async fn all_sessions_but_the_current_one_end(backend: Backend) {
    let app = sessions_app(backend).await;
    let user = app.register("allbut").await;
    let (access1, refresh1) = jwt_login(&app, &user, "One").await;
    let (access2, refresh2) = jwt_login(&app, &user, "Two").await;
    let key = key_login(&app, &user, "Three").await;
    let other = app.register("bystander").await;
    let (other_access, other_refresh) = jwt_login(&app, &other, "Else").await;

    let (status, body) =
        with_auth(&app, &bearer(&access2), Method::DELETE, "/auth/sessions/").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    jwt_refused(&app, &access1, &refresh1).await;
    assert_eq!(me(&app, &token(&key)).await.0, StatusCode::UNAUTHORIZED);
    let (access2, _) = jwt_works(&app, &access2, &refresh2).await;
    let left = sessions_of(&app, &bearer(&access2)).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["current"], true);
    // Another user's sessions are not touched.
    jwt_works(&app, &other_access, &other_refresh).await;

    // From a key: the key stays, the JWT goes.
    let key = key_login(&app, &user, "Four").await;
    let (status, _) = with_auth(&app, &token(&key), Method::DELETE, "/auth/sessions/").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(me(&app, &token(&key)).await.0, StatusCode::OK);
    assert_eq!(
        me(&app, &bearer(&access2)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn staff_list_and_end_another_users_sessions(backend: Backend) {
    let app = sessions_app(backend).await;
    let admin = app.staff().await;
    let user = app.register("watched").await;
    let (access1, refresh1) = jwt_login(&app, &user, "One").await;
    let (access2, refresh2) = jwt_login(&app, &user, "Two").await;
    let key = key_login(&app, &user, "Three").await;

    let path = format!("/auth/users/{}/sessions/", user.id);
    let (status, body) = call(&app, &admin, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed = body.as_array().unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|s| s["current"] == false));
    assert_eq!(listed[0]["id"].as_str().unwrap(), sid(&access1));

    let one = format!("{path}{}/", sid(&access1));
    let (status, body) = call(&app, &admin, Method::DELETE, &one, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    jwt_refused(&app, &access1, &refresh1).await;
    let (access2, refresh2) = jwt_works(&app, &access2, &refresh2).await;

    let (status, _) = call(&app, &admin, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    jwt_refused(&app, &access2, &refresh2).await;
    assert_eq!(me(&app, &token(&key)).await.0, StatusCode::UNAUTHORIZED);
    let (_, body) = call(&app, &admin, Method::GET, &path, None).await;
    assert_eq!(body, json!([]));

    // An unknown user, a malformed id: the user paths' answers.
    let unknown = format!("/auth/users/{}/sessions/", uuid::Uuid::new_v4());
    let (status, body) = call(&app, &admin, Method::GET, &unknown, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["detail"], "No User matches the given query.");
    let (status, body) = call(
        &app,
        &admin,
        Method::GET,
        "/auth/users/nobody/sessions/",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["detail"], "Not found.");
}

async fn non_staff_are_refused_the_staff_views(backend: Backend) {
    let app = sessions_app(backend).await;
    let user = app.register("victim").await;
    let (access, refresh) = jwt_login(&app, &user, "One").await;
    let intruder = app.register("intruder").await;
    let forbidden = json!({"detail": "You do not have permission to perform this action.", "code": "permission_denied"});
    let base = format!("/auth/users/{}/sessions/", user.id);
    let one = format!("{base}{}/", sid(&access));
    for (method, path) in [
        (Method::GET, base.as_str()),
        (Method::DELETE, base.as_str()),
        (Method::DELETE, one.as_str()),
        // The own id too: the staff views are staff's.
        (
            Method::GET,
            &format!("/auth/users/{}/sessions/", intruder.id),
        ),
        // An id that names nobody is not looked up first.
        (Method::GET, "/auth/users/nobody/sessions/"),
    ] {
        let (status, body) = call(&app, &intruder, method.clone(), path, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
        assert_eq!(body, forbidden);
    }
    jwt_works(&app, &access, &refresh).await;
}

async fn a_refreshed_session_stays_the_same_session(backend: Backend) {
    let app = sessions_app(backend).await;
    let user = app.register("refresher").await;
    let (access, refresh) = jwt_login(&app, &user, "Phone/1.0").await;
    let before = sessions_of(&app, &bearer(&access)).await;
    // Times are stored with at least a second's precision everywhere.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let (status, body) = refresh_from(&app, &refresh, "Phone/2.0").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["access"].as_str().unwrap();
    let refresh = body["refresh"].as_str().unwrap();
    assert_eq!(sid(access), before[0]["id"].as_str().unwrap());
    assert_eq!(sid(refresh), sid(access));

    let after = sessions_of(&app, &bearer(access)).await;
    assert_eq!(after.len(), 1, "{after:?}");
    let (was, is) = (&before[0], &after[0]);
    assert_eq!(is["id"], was["id"]);
    assert_eq!(is["created"], was["created"]);
    assert_eq!(is["current"], true);
    assert_eq!(is["user_agent"], "Phone/1.0");
    assert_eq!(is["last_user_agent"], "Phone/2.0");
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert!(
        time(&is["last_used"]) > time(&was["last_used"]),
        "{was} {is}"
    );
    assert!(time(&is["expires"]) > time(&was["expires"]));
}

async fn a_refresh_without_rotation_stays_the_same_session(backend: Backend) {
    let mut settings = SESSIONS_ON.to_vec();
    settings.push(("TESSERA__JWT__ROTATE_REFRESH_TOKENS", "false"));
    let app = TestApp::spawn_with(backend, &settings).await;
    let user = app.register("steady").await;
    let (access, refresh) = jwt_login(&app, &user, "Desk").await;
    let (status, body) = refresh_from(&app, &refresh, "Desk/2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("refresh").is_none());
    let fresh = body["access"].as_str().unwrap();
    assert_eq!(sid(fresh), sid(&access));
    let listed = sessions_of(&app, &bearer(fresh)).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["current"], true);
    assert_eq!(listed[0]["last_user_agent"], "Desk/2");

    // Ending it refuses the refresh token and the access token issued at login.
    let path = format!("/auth/sessions/{}/", sid(&access));
    let (status, _) = with_auth(&app, &bearer(fresh), Method::DELETE, &path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    jwt_refused(&app, &access, &refresh).await;
}

async fn the_opaque_key_list_is_unchanged(backend: Backend) {
    let app = sessions_app(backend).await;
    let user = app.register("keys").await;
    let (access, _) = jwt_login(&app, &user, "Phone").await;
    let key = key_login(&app, &user, "Laptop").await;
    let (status, body) = with_auth(&app, &token(&key), Method::GET, "/auth/token/sessions/").await;
    assert_eq!(status, StatusCode::OK);
    let listed = body.as_array().unwrap();
    assert_eq!(listed.len(), 1, "JWT sessions are not keys: {body}");
    let mut fields: Vec<&str> = listed[0]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        ["created", "current", "expires", "id", "last_used", "name"]
    );
    assert_eq!(listed[0]["id"].as_str().unwrap().len(), 16);
    assert_eq!(listed[0]["name"], "Laptop");
    assert_eq!(listed[0]["current"], true);
    // Its DELETE by the 16-hex id still works, and the key's session goes with it.
    let path = format!(
        "/auth/token/sessions/{}/",
        listed[0]["id"].as_str().unwrap()
    );
    let (status, _) = with_auth(&app, &bearer(&access), Method::DELETE, &path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(sessions_of(&app, &bearer(&access)).await.len(), 1);
}

async fn sessions_are_off_by_default(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("plain").await;
    let (access, refresh) = app.login(&user).await;
    for token in [&access, &refresh] {
        let claims = claims_of(token);
        assert!(
            claims.get("sid").is_none(),
            "SimpleJWT's claims only: {claims}"
        );
    }
    let (status, body) = with_auth(&app, &bearer(&access), Method::GET, "/auth/sessions/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["detail"], "Not found.");
    let (status, _) = with_auth(&app, &bearer(&access), Method::DELETE, "/auth/sessions/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let admin = app.staff().await;
    let path = format!("/auth/users/{}/sessions/", user.id);
    assert_eq!(
        call(&app, &admin, Method::GET, &path, None).await.0,
        StatusCode::NOT_FOUND
    );
    // Nothing recorded while off.
    use sea_orm::ConnectionTrait;
    let db = &app.app_state.database;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM sessions".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<i64>("", "n").unwrap(), 0);
}

/// Families and keys issued before sessions were recorded (before the migration, or while
/// `sessions.enabled` was off) have no details: they are listed, without them, and end.
async fn logins_from_before_sessions_are_listed_without_details(backend: Backend) {
    let before = TestApp::spawn_with(backend, &[("TESSERA__TOKENS__MULTIPLE", "true")]).await;
    let user = before.register("veteran").await;
    let (old_access, old_refresh) = jwt_login(&before, &user, "Old phone").await;
    let old_key = key_login(&before, &user, "Old laptop").await;
    let url =
        secrecy::ExposeSecret::expose_secret(&before.app_state.settings.database.url).to_owned();
    let mut settings = SESSIONS_ON.to_vec();
    settings.push(("DATABASE_URL", &url));
    let app = TestApp::spawn_with(backend, &settings).await;
    let (access, _) = jwt_login(&app, &user, "New phone").await;

    let listed = sessions_of(&app, &bearer(&access)).await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    let old_jwt = listed
        .iter()
        .find(|s| s["kind"] == "jwt" && s["current"] == false)
        .unwrap();
    assert_eq!(old_jwt["user_agent"], "");
    assert!(old_jwt["ip"].is_null());
    let old_opaque = listed.iter().find(|s| s["kind"] == "token").unwrap();
    assert_eq!(
        old_opaque["user_agent"], "Old laptop",
        "the key's own device name"
    );
    // The old token names no session: none of them is current for it.
    let as_old = sessions_of(&app, &bearer(&old_access)).await;
    assert!(as_old.iter().all(|s| s["current"] == false));

    for session in [old_jwt, old_opaque] {
        let path = format!("/auth/sessions/{}/", session["id"].as_str().unwrap());
        let (status, body) = with_auth(&app, &bearer(&access), Method::DELETE, &path).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    jwt_refused(&app, &old_access, &old_refresh).await;
    assert_eq!(me(&app, &token(&old_key)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(sessions_of(&app, &bearer(&access)).await.len(), 1);
}

async fn a_password_change_ends_the_listed_sessions(backend: Backend) {
    let app = sessions_app(backend).await;
    let user = app.register("changer").await;
    jwt_login(&app, &user, "One").await;
    key_login(&app, &user, "Two").await;
    let (status, body) = call(
        &app,
        &user,
        Method::POST,
        "/auth/users/set_password/",
        Some(json!({"current_password": user.password, "new_password": "another horse battery"})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let changed = TestUser {
        id: user.id.clone(),
        username: user.username.clone(),
        password: "another horse battery".into(),
    };
    let (access, _) = jwt_login(&app, &changed, "Three").await;
    let listed = sessions_of(&app, &bearer(&access)).await;
    assert_eq!(
        listed.len(),
        1,
        "only the login after the change: {listed:?}"
    );
    assert_eq!(listed[0]["user_agent"], "Three");

    // Pruning drops the records of the ended ones.
    let pruned = app.app_state.tokens.prune().await.unwrap();
    assert!(pruned >= 1, "{pruned}");
    assert_eq!(sessions_of(&app, &bearer(&access)).await.len(), 1);
}

/// DRF's one key per user: every login answers the same key, which stays one session; its
/// first use is noted as its last use (later ones at most once a minute).
async fn drfs_one_key_is_one_session_noting_its_use(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("TESSERA__SESSIONS__ENABLED", "true")]).await;
    let user = app.register("drf").await;
    let key = key_login(&app, &user, "First").await;
    assert_eq!(key_login(&app, &user, "Second").await, key);
    let response = app
        .request(Method::GET, "/auth/users/me/")
        .header("Authorization", token(&key))
        .header("User-Agent", "Reader/3")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let listed = sessions_of(&app, &token(&key)).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["kind"], "token");
    assert_eq!(listed[0]["user_agent"], "First");
    assert_eq!(listed[0]["last_user_agent"], "Reader/3");
    assert!(listed[0]["last_used"].is_string());
    assert_eq!(listed[0]["current"], true);
}

/// With Django's integer ids the staff views take the number, as the user paths do.
async fn staff_name_users_by_number_with_integer_ids(backend: Backend) {
    let mut settings = SESSIONS_ON.to_vec();
    settings.push(("TESSERA__ACCOUNTS__USER_ID", "integer"));
    let app = TestApp::spawn_with(backend, &settings).await;
    let admin = app.staff().await;
    let user = app.register("numbered").await;
    assert!(user.id.parse::<i64>().is_ok(), "{}", user.id);
    let (access, refresh) = jwt_login(&app, &user, "One").await;
    let path = format!("/auth/users/{}/sessions/", user.id);
    let (status, body) = call(&app, &admin, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body[0]["id"].as_str().unwrap(), sid(&access));
    let (status, _) = call(
        &app,
        &admin,
        Method::DELETE,
        &format!("{path}{}/", sid(&access)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    jwt_refused(&app, &access, &refresh).await;
}

/// Three instances on one database and Redis: a session ended on one is refused by the others
/// at once (the family's revocation and the key's deletion travel the usual way).
#[tokio::test]
async fn a_session_ended_on_one_instance_is_refused_by_the_others() {
    if !postgres_available().await {
        skip(
            "sessions::a_session_ended_on_one_instance_is_refused_by_the_others",
            "PostgreSQL or Redis unreachable",
        );
        return;
    }
    let apps = TestApp::spawn_instances(3, &SESSIONS_ON).await;
    let user = apps[0].register("spread").await;
    let (access, refresh) = jwt_login(&apps[1], &user, "One").await;
    let key = key_login(&apps[2], &user, "Two").await;
    let (keeper, _) = jwt_login(&apps[0], &user, "Three").await;
    // Every instance has seen (and may remember) both.
    for app in &apps {
        assert_eq!(me(app, &bearer(&access)).await.0, StatusCode::OK);
        assert_eq!(me(app, &token(&key)).await.0, StatusCode::OK);
    }
    let (status, _) = with_auth(
        &apps[0],
        &bearer(&keeper),
        Method::DELETE,
        "/auth/sessions/",
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for app in &apps {
        eventually(Duration::from_secs(2), "refused everywhere", || async {
            me(app, &bearer(&access)).await.0 == StatusCode::UNAUTHORIZED
                && me(app, &token(&key)).await.0 == StatusCode::UNAUTHORIZED
        })
        .await;
        let (status, _) = post(app, "/api/token/refresh/", json!({"refresh": refresh})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(me(app, &bearer(&keeper)).await.0, StatusCode::OK);
    }
}

/// Each end of a session is an audit event naming the session, who ended it and how, with no
/// token in it; the SQL copy keeps the event with the user and the actor.
#[tokio::test]
async fn ending_a_session_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
    command
        .current_dir(dir.path())
        .env("TESSERA__LOG__FORMAT", "json")
        .env("TESSERA__AUDIT__STORE_IN_SQL", "true")
        .env("TESSERA__SESSIONS__ENABLED", "true")
        .env("TESSERA__PASSWORDS__MEMORY_KIB", "4096")
        .env("TESSERA__PASSWORDS__ITERATIONS", "1");
    let mut server = ServerProcess::start(command);
    let client = client();
    let base = server.base.clone();
    let credentials = json!({"username": "audited", "password": PASSWORD});
    let response = client
        .post(format!("{base}/auth/users/"))
        .json(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let mut pairs = Vec::new();
    for _ in 0..2 {
        let pair: Value = client
            .post(format!("{base}/api/token/"))
            .json(&credentials)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pairs.push(pair);
    }
    let ended = sid(pairs[0]["access"].as_str().unwrap());
    let response = client
        .delete(format!("{base}/auth/sessions/{ended}/"))
        .bearer_auth(pairs[1]["access"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    server.terminate();
    assert!(
        server
            .exited_within(Duration::from_secs(10))
            .await
            .is_some()
    );
    let text = server.log();
    let line = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["target"] == "tessera::audit" && e["message"] == "session ended")
        .unwrap_or_else(|| panic!("no `session ended` in {text}"));
    let field = |name: &str| line.get(name).or_else(|| line["fields"].get(name)).cloned();
    assert_eq!(field("session_id"), Some(json!(ended)), "{line}");
    assert_eq!(field("ended_by"), Some(json!("self")), "{line}");
    assert_eq!(field("kind"), Some(json!("jwt")), "{line}");
    assert_eq!(field("user_id"), field("actor_id"), "{line}");
    for pair in &pairs {
        for token in [&pair["access"], &pair["refresh"]] {
            assert!(
                !text.contains(token.as_str().unwrap()),
                "a token in the log"
            );
        }
    }
    let rows = crate::helpers::server_rows(
        dir.path(),
        "SELECT user_id, actor_id FROM audit_events WHERE event = 'session ended'",
    )
    .await;
    assert_eq!(rows.len(), 1);
    let user: Option<String> = rows[0].try_get("", "user_id").unwrap();
    let actor: Option<String> = rows[0].try_get("", "actor_id").unwrap();
    assert!(user.is_some() && user == actor);
}

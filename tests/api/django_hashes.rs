//! Accounts imported from Django keep their passwords: the hashes Django stores verify, and the
//! login that proves a password replaces its hash with argon2id without ending any session.
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    Backend, PASSWORD, SIGNING_KEY, TestApp, TestUser, answer, call, forge, me, post,
};

on_every_backend!(
    django_hashes_log_in_and_are_upgraded_to_argon2id,
    every_login_path_upgrades_the_hash,
    sessions_from_before_the_upgrade_keep_working,
    a_wrong_password_against_a_django_hash_fails_and_keeps_the_hash,
    an_unusable_password_never_logs_in,
);

/// [`PASSWORD`] as Django 5.2.19 hashed it (argon2-cffi 25.1, bcrypt 5.0), with low costs so the
/// suite stays fast: `PBKDF2PasswordHasher().encode(password, "s4ltsalt", 1000)`, subclasses of
/// the other hashers with `rounds = 4`, `time_cost = 1, memory_cost = 1024, parallelism = 2`,
/// and `ScryptPasswordHasher().encode(password, "s4ltsalt", n=1024, r=8, p=1)`. Django's
/// default costs are checked by the unit tests in `src/domain/passwords/`.
pub const DJANGO_HASHES: [&str; 6] = [
    "pbkdf2_sha256$1000$s4ltsalt$nbzzDE4b8vulwvHIqLHruiTX1NoZDRiLc2EqS2Don+s=",
    "pbkdf2_sha1$1000$s4ltsalt$9Kh1nw1EZh9LEy/vKwDckm4iu6M=",
    "argon2$argon2id$v=19$m=1024,t=1,p=2$czRsdHNhbHRzNGx0c2FsdA$aF9IBsiIjodmO2lSa4e45X1l9o+q3tfQQSYdy1JYBhc",
    "bcrypt_sha256$$2b$04$2Dvm3Q9BS147DpDXQG6oD.2v2Ez3TUertqhpIVA4QPql0byZqBLUW",
    "bcrypt$$2b$04$hzYSTm9bwqXMhCeyKpE3o.reqm8jb.IS0URHY6tJlfLkkFlORkd9K",
    "scrypt$1024$s4ltsalt$8$1$6OIFNwMLlh7IxywPnQ+cJdADUAX7d4N9/lwiG4yt9V4RpEQT3NBJcWRvXwszbukID/Fr1XKwFdGJBwi2OYNmgA==",
];

/// What the test apps hash new passwords with (helpers: 4096 KiB, one pass).
const TESSERAS_FORM: &str = "$argon2id$v=19$m=4096,t=1,p=1$";

async fn jwt_login(app: &TestApp, user: &TestUser, password: &str) -> (StatusCode, Value) {
    post(
        app,
        "/api/token/",
        json!({"username": user.username, "password": password}),
    )
    .await
}

async fn token_login(app: &TestApp, user: &TestUser, password: &str) -> (StatusCode, Value) {
    post(
        app,
        "/auth/token/login/",
        json!({"username": user.username, "password": password}),
    )
    .await
}

fn credential_version(body: &Value) -> i64 {
    let access = body["access"].as_str().unwrap();
    crate::forge::claims_of(access)["cv"].as_i64().unwrap()
}

async fn django_hashes_log_in_and_are_upgraded_to_argon2id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for hash in DJANGO_HASHES {
        let user = app.imported("dj", hash).await;
        let (status, body) = jwt_login(&app, &user, PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{hash}: {body}");
        assert_eq!(credential_version(&body), 0, "{hash}");
        let access = body["access"].as_str().unwrap();
        assert_eq!(
            me(&app, &format!("Bearer {access}")).await.0,
            StatusCode::OK
        );
        let stored = app.stored_password_hash(&user.username).await;
        assert!(stored.starts_with(TESSERAS_FORM), "{hash} became {stored}");
        // The new hash is the same password, and is not replaced again.
        let (status, body) = jwt_login(&app, &user, PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{hash}: {body}");
        assert_eq!(app.stored_password_hash(&user.username).await, stored);
    }
}

async fn every_login_path_upgrades_the_hash(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let djoser = app.imported("djoser", DJANGO_HASHES[0]).await;
    let (status, body) = token_login(&app, &djoser, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let key = body["auth_token"].as_str().unwrap().to_owned();
    assert_eq!(me(&app, &format!("Token {key}")).await.0, StatusCode::OK);

    let drf = app.imported("drf", DJANGO_HASHES[3]).await;
    let (status, body) = post(
        &app,
        "/api/api-token-auth/",
        json!({"username": drf.username, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let basic = app.imported("basic", DJANGO_HASHES[5]).await;
    let (status, body) = call(&app, &basic, Method::GET, "/auth/users/me/", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for user in [&djoser, &drf, &basic] {
        let stored = app.stored_password_hash(&user.username).await;
        assert!(
            stored.starts_with(TESSERAS_FORM),
            "{}: {stored}",
            user.username
        );
    }
    // Basic keeps working on the new hash.
    let (status, _) = call(&app, &basic, Method::GET, "/auth/users/me/", None).await;
    assert_eq!(status, StatusCode::OK);
}

async fn sessions_from_before_the_upgrade_keep_working(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("keep").await;
    let (access, refresh) = app.login(&user).await;
    let (status, body) = token_login(&app, &user, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let key = body["auth_token"].as_str().unwrap().to_owned();
    // An access token the Django service minted before the cutover (same key, no `cv`).
    let now = chrono::Utc::now().timestamp();
    let django_access = forge(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"token_type": "access", "exp": now + 300, "iat": now, "jti": "d1a6e0e5c0ffee00d1a6e0e5c0ffee00", "user_id": user.id}),
        SIGNING_KEY.as_bytes(),
    );
    // The users table is imported again from Django, with the account's Django hash.
    let id: uuid::Uuid = user.id.parse().unwrap();
    let reimport = tessera::domain::users::UserChange {
        password_hash: Some(DJANGO_HASHES[2].into()),
        ..Default::default()
    };
    use tessera::domain::users::UserStore;
    tessera::store::users::SqlUserStore::new(app.app_state.database.clone())
        .change(id, &reimport)
        .await
        .unwrap();
    let version = |app: &TestApp| {
        let users = app.app_state.users.clone();
        async move { users.find(id).await.unwrap().unwrap().credential_version }
    };
    let before = version(&app).await;

    let (status, body) = jwt_login(&app, &user, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        app.stored_password_hash(&user.username)
            .await
            .starts_with(TESSERAS_FORM)
    );
    assert_eq!(version(&app).await, before, "the upgrade ends no session");
    for authorization in [
        format!("Bearer {access}"),
        format!("Bearer {django_access}"),
        format!("Token {key}"),
    ] {
        let (status, body) = me(&app, &authorization).await;
        assert_eq!(status, StatusCode::OK, "{authorization}: {body}");
    }
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post(&app, "/api/token/verify/", json!({"token": access})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn a_wrong_password_against_a_django_hash_fails_and_keeps_the_hash(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let no_account = json!({"detail": "No active account found with the given credentials", "code": "no_active_account"});
    let bad = json!({"non_field_errors": ["Unable to log in with provided credentials."]});
    for hash in DJANGO_HASHES {
        let user = app.imported("wrong", hash).await;
        for password in ["correct horse batterY", "x", hash] {
            assert_eq!(
                jwt_login(&app, &user, password).await,
                (StatusCode::UNAUTHORIZED, no_account.clone()),
                "{hash} with {password:?}"
            );
            assert_eq!(
                token_login(&app, &user, password).await,
                (StatusCode::BAD_REQUEST, bad.clone()),
                "{hash} with {password:?}"
            );
        }
        let wrong = TestUser {
            password: "correct horse batterY".into(),
            ..user
        };
        let (status, _) = call(&app, &wrong, Method::GET, "/auth/users/me/", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{hash}");
        assert_eq!(app.stored_password_hash(&wrong.username).await, hash);
    }
}

async fn an_unusable_password_never_logs_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Django's set_unusable_password(): "!" and 40 random characters.
    let unusable = "!SXgf6zlqXvlY4bzkKwPnohjpqRYPsWPNiq1svUfJ";
    let user = app.imported("unusable", unusable).await;
    for password in [
        PASSWORD,
        unusable,
        "SXgf6zlqXvlY4bzkKwPnohjpqRYPsWPNiq1svUfJ",
        "!",
    ] {
        let (status, body) = jwt_login(&app, &user, password).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{password:?}: {body}");
        assert_eq!(body["code"], "no_active_account");
        assert_eq!(
            token_login(&app, &user, password).await.0,
            StatusCode::BAD_REQUEST
        );
        let guess = app
            .request(Method::GET, "/auth/users/me/")
            .basic_auth(&user.username, Some(password));
        assert_eq!(
            answer(guess.send().await.unwrap()).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(app.stored_password_hash(&user.username).await, unusable);
}

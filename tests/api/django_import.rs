//! `tessera import-django`: a Django project's users keep their ids, passwords, groups, DRF keys
//! and SimpleJWT sessions; a second run changes nothing; collisions and odd rows are reported.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::django_hashes::DJANGO_HASHES;
use crate::forge::forge;
use crate::helpers::*;

on_every_backend!(
    an_imported_project_keeps_its_users_keys_and_sessions,
    collisions_are_reported_or_suffixed_and_dry_runs_write_nothing,
);

const KEY: &str = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b";

/// A refresh token as SimpleJWT 5.5 minted it with the shared key (`user_id` a string).
fn django_refresh(user_id: i64) -> (String, String) {
    let now = chrono::Utc::now().timestamp();
    let jti = uuid::Uuid::new_v4().simple().to_string();
    let token = forge(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"token_type": "refresh", "exp": now + 86_400, "iat": now, "jti": jti, "user_id": user_id.to_string()}),
        SIGNING_KEY.as_bytes(),
    );
    (jti, token)
}

fn user(pk: i64, username: &str, password: &str, extra: Value) -> Value {
    let mut fields = json!({
        "password": password, "last_login": null, "is_superuser": false, "username": username,
        "first_name": "", "last_name": "", "email": format!("{}@example.com", username.to_lowercase()),
        "is_staff": false, "is_active": true, "date_joined": "2025-01-02T03:04:05.678Z",
        "groups": [], "user_permissions": []
    });
    fields
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"model": "auth.user", "pk": pk, "fields": fields})
}

/// What `manage.py dumpdata auth authtoken token_blacklist --natural-foreign` writes for a
/// small project (the shape was taken from Django 5.2's output).
fn dump(alice_email: &str, live: &(String, String), revoked: &(String, String)) -> Value {
    json!([
        {"model": "auth.group", "pk": 1, "fields": {"name": "managers", "permissions": []}},
        user(3, "alice", DJANGO_HASHES[0], json!({"is_staff": true, "email": alice_email, "groups": [["managers"]], "first_name": "Alice"})),
        user(5, "Bob", DJANGO_HASHES[2], json!({})),
        user(7, "bob", DJANGO_HASHES[3], json!({})),
        user(9, "dave", DJANGO_HASHES[5], json!({"is_active": false})),
        user(4, "erin", "!unusableXYZ", json!({})),
        {"model": "authtoken.token", "pk": KEY, "fields": {"user": ["alice"], "created": "2025-02-03T04:05:06.789Z"}},
        {"model": "token_blacklist.outstandingtoken", "pk": 1, "fields": {"user": ["alice"], "jti": live.0, "token": live.1, "created_at": "2025-02-03T04:05:06.789Z", "expires_at": "2099-01-01T00:00:00Z"}},
        {"model": "token_blacklist.outstandingtoken", "pk": 2, "fields": {"user": ["alice"], "jti": revoked.0, "token": revoked.1, "created_at": "2025-02-03T04:05:06.789Z", "expires_at": "2099-01-01T00:00:00Z"}},
        {"model": "token_blacklist.blacklistedtoken", "pk": 1, "fields": {"token": 2, "blacklisted_at": "2025-02-03T04:05:07Z"}}
    ])
}

/// Runs `tessera import-django --dumpdata FILE ARGS` against `app`'s database and Redis.
fn import(app: &TestApp, dump: &Value, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dump.json");
    std::fs::write(&file, dump.to_string()).unwrap();
    let file = file.display().to_string();
    let mut all = vec!["--dumpdata", file.as_str()];
    all.extend_from_slice(args);
    import_django(app, &all)
}

/// Runs `tessera import-django ARGS` against `app`'s database and Redis; its report.
pub fn import_django(app: &TestApp, args: &[&str]) -> String {
    let args = [&["import-django"][..], args].concat();
    let out = app.cli(&args, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn login(app: &TestApp, username: &str) -> (StatusCode, Value) {
    post(
        app,
        "/api/token/",
        json!({"username": username, "password": PASSWORD}),
    )
    .await
}

async fn an_imported_project_keeps_its_users_keys_and_sessions(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("TESSERA__ACCOUNTS__USER_ID", "integer")]).await;
    let (live, revoked) = (django_refresh(3), django_refresh(3));
    let source = dump("alice@example.com", &live, &revoked);
    let report = import(&app, &source, &[]);
    assert!(
        report.contains("users: created 4, updated 0, unchanged 0, skipped 1"),
        "{report}"
    );
    assert!(report.contains("groups: created 1"), "{report}");
    assert!(report.contains("token keys: created 1"), "{report}");
    assert!(report.contains("refresh tokens: created 2"), "{report}");
    assert!(
        report.contains("user 7 \"bob\": the username is taken (ignoring case) by user 5"),
        "{report}"
    );

    // Old passwords work, ids are Django's, the hash becomes Tessera's.
    let (status, pair) = login(&app, "alice").await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let (status, me_body) = me(
        &app,
        &format!("Bearer {}", pair["access"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me_body["id"], json!(3));
    assert!(
        app.stored_password_hash("alice")
            .await
            .starts_with("$argon2id$")
    );
    assert_eq!(
        login(&app, "Bob").await.0,
        StatusCode::OK,
        "Django's argon2 form"
    );
    assert_eq!(
        login(&app, "dave").await.0,
        StatusCode::UNAUTHORIZED,
        "inactive in Django"
    );
    assert_eq!(
        login(&app, "erin").await.0,
        StatusCode::UNAUTHORIZED,
        "unusable password"
    );
    // The DRF key, the live refresh token and the blacklist come over.
    let (status, body) = me(&app, &format!("Token {KEY}")).await;
    assert_eq!(
        (status, body["username"].clone()),
        (StatusCode::OK, json!("alice"))
    );
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": live.1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": revoked.1})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // A token login keeps the imported key usable.
    let (status, _) = post(
        &app,
        "/auth/token/login/",
        json!({"username": "alice", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me(&app, &format!("Token {KEY}")).await.0, StatusCode::OK);
    // Groups and staff flags.
    let (status, members) = answer(
        app.request(Method::GET, "/auth/groups/managers/users/")
            .bearer_auth(pair["access"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "alice is staff: {members}");
    assert_eq!(members[0]["username"], json!("alice"));
    // New users continue after the highest Django id.
    let newcomer = app.register("newcomer").await;
    assert_eq!(newcomer.id, "10");

    // Again: nothing changes, not even the upgraded hash.
    let hash = app.stored_password_hash("alice").await;
    let again = import(&app, &source, &[]);
    assert!(
        again.contains("users: created 0, updated 0, unchanged 4, skipped 1"),
        "{again}"
    );
    assert!(
        again.contains("token keys: created 0, updated 0, unchanged 1"),
        "{again}"
    );
    assert!(
        again.contains("refresh tokens: created 0, updated 0, unchanged 2"),
        "{again}"
    );
    assert_eq!(app.stored_password_hash("alice").await, hash);
    // A change in Django comes over; a password changed there replaces the upgraded one.
    let mut changed = dump("alice@new.example", &live, &revoked);
    changed[1]["fields"]["password"] = json!(DJANGO_HASHES[1]);
    let third = import(&app, &changed, &[]);
    assert!(
        third.contains("users: created 0, updated 1, unchanged 3"),
        "{third}"
    );
    assert_eq!(app.stored_password_hash("alice").await, DJANGO_HASHES[1]);
    assert_eq!(login(&app, "alice").await.0, StatusCode::OK);
}

async fn collisions_are_reported_or_suffixed_and_dry_runs_write_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let source = dump("alice@example.com", &django_refresh(3), &django_refresh(3));
    let dry = import(&app, &source, &["--dry-run", "--on-collision", "suffix"]);
    assert!(dry.contains("(dry run) users: created 5"), "{dry}");
    assert!(dry.contains("dry run: nothing was written"), "{dry}");
    assert_eq!(
        login(&app, "alice").await.0,
        StatusCode::UNAUTHORIZED,
        "nothing written"
    );
    let report = import(&app, &source, &["--on-collision", "suffix"]);
    assert!(
        report.contains("users: created 5, updated 0, unchanged 0, skipped 0"),
        "{report}"
    );
    assert_eq!(login(&app, "bob-7").await.0, StatusCode::OK);
    assert_eq!(login(&app, "Bob").await.0, StatusCode::OK);
    let again = import(&app, &source, &["--on-collision", "suffix"]);
    assert!(
        again.contains("users: created 0, updated 0, unchanged 5"),
        "{again}"
    );
    // A Tessera user already holding a Django username (any case) is never overwritten.
    let other = TestApp::spawn(backend).await;
    let (status, _) = post(
        &other,
        "/auth/users/",
        json!({"username": "ALICE", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let report = import(&other, &source, &[]);
    assert!(
        report.contains("user 3 \"alice\": the username is taken"),
        "{report}"
    );
    assert_eq!(
        login(&other, "ALICE").await.0,
        StatusCode::OK,
        "the Tessera user is untouched"
    );
}

/// The same import from a Django project's PostgreSQL database: Django's column types
/// (`boolean`, `timestamptz`, `integer` ids), and a server whose time zone is not UTC.
#[tokio::test]
async fn a_postgresql_django_database_is_read_with_its_types() {
    use sea_orm::{ConnectionTrait, Database};
    if !postgres_available().await {
        return skip(
            "django_import::a_postgresql_django_database_is_read_with_its_types",
            "PostgreSQL unreachable",
        );
    }
    let url = fresh_postgres_database().await;
    let db = Database::connect(&url).await.unwrap();
    let name = url.rsplit('/').next().unwrap().to_owned();
    for sql in [
        format!("ALTER DATABASE \"{name}\" SET timezone TO 'Asia/Kolkata'"),
        "CREATE TABLE auth_user (id integer PRIMARY KEY, password varchar(128) NOT NULL, last_login timestamptz NULL, is_superuser boolean NOT NULL, username varchar(150) NOT NULL UNIQUE, first_name varchar(150) NOT NULL, last_name varchar(150) NOT NULL, email varchar(254) NOT NULL, is_staff boolean NOT NULL, is_active boolean NOT NULL, date_joined timestamptz NOT NULL)".into(),
        "CREATE TABLE auth_group (id integer PRIMARY KEY, name varchar(150) NOT NULL UNIQUE)".into(),
        "CREATE TABLE auth_user_groups (id bigint PRIMARY KEY, user_id integer NOT NULL, group_id integer NOT NULL)".into(),
        format!("INSERT INTO auth_user VALUES (12, '{}', '2025-03-04 05:06:07.123456+00', false, 'priya', 'Priya', '', 'priya@example.com', true, true, '2025-01-02 03:04:05.678+00')", DJANGO_HASHES[0]),
        "INSERT INTO auth_group VALUES (1, 'editors')".into(),
        "INSERT INTO auth_user_groups VALUES (1, 12, 1)".into(),
    ] {
        db.execute_unprepared(&sql).await.unwrap();
    }
    drop(db);
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("TESSERA__ACCOUNTS__USER_ID", "integer")],
    )
    .await;
    let report = import_django(&app, &["--from", &url]);
    assert!(
        report.contains("users: created 1, updated 0, unchanged 0, skipped 0"),
        "{report}"
    );
    assert!(report.contains("not in the source: authtoken"), "{report}");
    let user = app.app_state.users.named("priya").await.unwrap().unwrap();
    assert_eq!(user.number, 12);
    assert!(user.is_staff && user.is_active && !user.is_superuser);
    assert_eq!(
        user.date_joined.to_rfc3339(),
        "2025-01-02T03:04:05.678+00:00"
    );
    assert_eq!(
        user.last_login.unwrap().to_rfc3339(),
        "2025-03-04T05:06:07.123+00:00"
    );
    let (status, _) = login(&app, "priya").await;
    assert_eq!(status, StatusCode::OK);
    let again = import_django(&app, &["--from", &url]);
    assert!(
        again.contains("users: created 0, updated 0, unchanged 1"),
        "{again}"
    );
}

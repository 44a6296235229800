//! `[paths]`: the Django project's paths served as Tessera's endpoints, never around their limits.
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

on_every_backend!(
    aliases_and_prefixes_serve_the_endpoints_they_name,
    aliases_share_the_rate_and_lockout_of_their_endpoint,
);

const ALIASES: &str = "/api/jwt/token/=/api/token/,/api/jwt/token/refresh=/api/token/refresh/,/api/login/=/auth/token/login/";

fn settings<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut s = vec![
        ("TESSERA__PATHS__ALIASES", ALIASES),
        ("TESSERA__PATHS__PREFIXES", "/api/auth/=/auth/"),
    ];
    s.extend_from_slice(extra);
    s
}

async fn aliases_and_prefixes_serve_the_endpoints_they_name(backend: Backend) {
    let app = TestApp::spawn_with(backend, &settings(&[("TESSERA__USERS__PAGE_SIZE", "1")])).await;
    let user = app.register("aliased").await;
    let credentials = json!({"username": user.username, "password": PASSWORD});
    let mut refresh = String::new();
    for path in ["/api/jwt/token/", "/api/jwt/token"] {
        let (status, body) = post(&app, path, credentials.clone()).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        refresh = body["refresh"].as_str().unwrap().to_owned();
    }
    let (status, body) = post(&app, "/api/jwt/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["access"].as_str().unwrap().to_owned();
    let (status, body) = post(&app, "/api/login", credentials.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["auth_token"].is_string());
    let (status, body) = answer(
        app.request(Method::GET, "/api/auth/users/me/")
            .bearer_auth(&access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["username"].clone()),
        (StatusCode::OK, json!(user.username))
    );
    // The query string goes along.
    let admin = app.staff().await;
    let (status, page) = call(&app, &admin, Method::GET, "/api/auth/users/?page=2", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page["previous"].is_string(), "{page}");
    // OPTIONS answers on aliases too.
    let response = app
        .request(Method::OPTIONS, "/api/jwt/token/")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Beside a prefix, nothing else is invented.
    let (status, _) = post(&app, "/api/auth/nothing/", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let doc: Value = app
        .request(Method::GET, "/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/jwt/token/",
        "/api/login/",
        "/api/auth/users/me/",
        "/api/token/",
    ] {
        assert!(paths.contains_key(path), "{path} documented");
    }
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "operationIds stay unique");
}

async fn aliases_share_the_rate_and_lockout_of_their_endpoint(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &settings(&[
            ("TESSERA__THROTTLE__ENABLED", "true"),
            ("TESSERA__THROTTLE__SCOPES__LOGIN", "4/min"),
            ("TESSERA__THROTTLE__LOCKOUT_FAILURES", "0"),
        ]),
    )
    .await;
    let wrong = json!({"username": "nobody", "password": "wrong"});
    let mut statuses = Vec::new();
    for path in [
        "/api/token/",
        "/api/jwt/token/",
        "/api/jwt/token",
        "/api/auth/jwt/create/",
        "/api/jwt/token/",
    ] {
        statuses.push(post(&app, path, wrong.clone()).await.0);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "one login rate, whatever the spelling"
    );

    let locking = TestApp::spawn_with(
        backend,
        &settings(&[
            ("TESSERA__THROTTLE__ENABLED", "true"),
            ("TESSERA__THROTTLE__LOCKOUT_FAILURES", "3"),
        ]),
    )
    .await;
    let victim = locking.register("victim").await;
    let guess = json!({"username": victim.username, "password": "guess"});
    for path in ["/api/jwt/token/", "/api/login/", "/api/auth/token/login/"] {
        let (status, _) = post(&locking, path, guess.clone()).await;
        assert!(status.is_client_error(), "{path}: {status}");
    }
    let right = json!({"username": victim.username, "password": PASSWORD});
    for path in ["/api/token/", "/api/jwt/token/"] {
        let (status, body) = post(&locking, path, right.clone()).await;
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "{path}: locked out: {body}"
        );
    }
}

#[tokio::test]
async fn bad_aliases_stop_the_start_with_a_message() {
    for (aliases, prefixes, expected) in [
        (
            "/api/x/=/api/nowhere/",
            "",
            "not one of Tessera's endpoints",
        ),
        (
            "/auth/users/me/=/api/token/",
            "",
            "already one of Tessera's paths",
        ),
        (
            "/auth/users/anything/=/api/token/",
            "",
            "already one of Tessera's paths",
        ),
        (
            "/api/a/=/api/token/,/api/a=/api/token/refresh/",
            "",
            "overlaps",
        ),
        ("/api/v1/token/=/api/token/", "/api/v1/=/auth/", "overlaps"),
        ("api/x=/api/token/", "", "paths start with /"),
        ("/api/x", "", "is not"),
        ("", "/api/v2/=/nothing/", "holds none"),
        (
            "/docs/x=/api/token/,/docs=/api/token/",
            "",
            "already one of",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut env = std::collections::HashMap::from([
            ("TESSERA__SERVER__BIND".to_owned(), "127.0.0.1:0".to_owned()),
            (
                "DATABASE_URL".to_owned(),
                format!("sqlite://{}/t.db", dir.path().display()),
            ),
            (
                "TESSERA__JWT__SIGNING_KEY".to_owned(),
                SIGNING_KEY.to_owned(),
            ),
        ]);
        for (key, value) in [
            ("TESSERA__PATHS__ALIASES", aliases),
            ("TESSERA__PATHS__PREFIXES", prefixes),
        ] {
            if !value.is_empty() {
                env.insert(key.to_owned(), value.to_owned());
            }
        }
        let settings = tessera::Settings::load_from(env).unwrap();
        let err = match tessera::Application::build(settings).await {
            Ok(_) => panic!("{aliases} {prefixes}: started"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(expected), "{aliases} {prefixes}: {err}");
    }
}

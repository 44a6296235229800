//! OPTIONS (DRF's metadata) on every endpoint, and CORS as django-cors-headers gives it: off by
//! default, listed origins only, whole-origin regexes.
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

on_every_backend!(
    options_answers_drfs_metadata_on_every_documented_path,
    cors_is_off_by_default,
    listed_origins_get_preflights_and_headers_others_get_none,
    origin_regexes_match_the_whole_origin,
);

const APP: &str = "https://app.example.com";

fn with_cors<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut settings = vec![
        ("TESSERA__CORS__ALLOWED_ORIGINS", APP),
        ("TESSERA__CORS__ALLOW_CREDENTIALS", "true"),
    ];
    settings.extend_from_slice(extra);
    settings
}

async fn preflight(app: &TestApp, path: &str, origin: &str) -> reqwest::Response {
    app.request(Method::OPTIONS, path)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "content-type, authorization",
        )
        .send()
        .await
        .unwrap()
}

fn header<'r>(response: &'r reqwest::Response, name: &str) -> Option<&'r str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

async fn options_answers_drfs_metadata_on_every_documented_path(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let doc: Value = app
        .request(Method::GET, "/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() > 20);
    for (path, item) in paths {
        let concrete = path
            .replace("{id}", "7")
            .replace("{name}", "staff")
            .replace("{key}", "k");
        for spelling in [concrete.clone(), concrete.trim_end_matches('/').to_owned()] {
            if spelling.is_empty() {
                continue;
            }
            let response = app
                .request(Method::OPTIONS, &spelling)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "OPTIONS {spelling}");
            let allow = header(&response, "allow").unwrap().to_owned();
            for method in item.as_object().unwrap().keys() {
                assert!(
                    allow.contains(&method.to_uppercase()),
                    "{spelling}: {allow}"
                );
            }
            assert!(allow.contains("OPTIONS"));
            let body: Value = response.json().await.unwrap();
            assert!(
                body["name"].as_str().is_some_and(|n| !n.is_empty()),
                "{spelling}: {body}"
            );
            assert!(body["description"].is_string());
            assert_eq!(body["renders"], json!(["application/json"]));
            assert_eq!(
                body["parses"],
                json!([
                    "application/json",
                    "application/x-www-form-urlencoded",
                    "multipart/form-data"
                ])
            );
        }
    }
    let (status, _) = answer(
        app.request(Method::OPTIONS, "/auth/nowhere/")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn cors_is_off_by_default(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = preflight(&app, "/api/token/", APP).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "still DRF's OPTIONS answer"
    );
    assert!(
        !response
            .headers()
            .keys()
            .any(|k| k.as_str().starts_with("access-control-")),
        "{:?}",
        response.headers()
    );
    let response = app
        .request(Method::POST, "/api/token/")
        .header("Origin", APP)
        .json(&json!({"username": "x", "password": "y"}))
        .send()
        .await
        .unwrap();
    assert!(
        !response
            .headers()
            .keys()
            .any(|k| k.as_str().starts_with("access-control-"))
    );
    assert!(response.headers().get("vary").is_none());
}

async fn listed_origins_get_preflights_and_headers_others_get_none(backend: Backend) {
    let app = TestApp::spawn_with(backend, &with_cors(&[])).await;
    let response = preflight(&app, "/api/token/", APP).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "access-control-allow-origin"), Some(APP));
    assert_eq!(
        header(&response, "access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(header(&response, "access-control-max-age"), Some("86400"));
    assert!(
        header(&response, "access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    let allowed = header(&response, "access-control-allow-headers").unwrap();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));
    assert!(
        header(&response, "vary")
            .unwrap()
            .to_lowercase()
            .contains("origin")
    );

    // A real request, and an error answer, carry the headers too (the page reads the 401).
    let user = app.register("corsy").await;
    let response = app
        .request(Method::POST, "/api/token/")
        .header("Origin", APP)
        .json(&json!({"username": user.username, "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&response, "access-control-allow-origin"), Some(APP));
    let exposed = header(&response, "access-control-expose-headers").unwrap();
    assert!(exposed.contains("Retry-After") && exposed.contains("X-Request-Id"));

    // Lookalikes of the listed origin get nothing, on preflights and on answers.
    for other in [
        "https://evil.example",
        "http://app.example.com",
        "https://app.example.com.evil.net",
        "https://app.example.com:8443",
        "https://xapp.example.com",
        "null",
    ] {
        let response = preflight(&app, "/api/token/", other).await;
        assert!(
            header(&response, "access-control-allow-origin").is_none(),
            "{other}"
        );
        assert!(
            header(&response, "access-control-allow-credentials").is_none(),
            "{other}"
        );
        let response = app
            .request(Method::GET, "/auth/users/me/")
            .header("Origin", other)
            .send()
            .await
            .unwrap();
        assert!(
            header(&response, "access-control-allow-origin").is_none(),
            "{other}"
        );
    }
}

async fn origin_regexes_match_the_whole_origin(backend: Backend) {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "[cors]\nallowed_origin_regexes = ['https://[a-z0-9-]+\\.example\\.com']\n",
    )
    .unwrap();
    let path = config.path().display().to_string();
    let app = TestApp::spawn_with(backend, &[("TESSERA_CONFIG", path.as_str())]).await;
    let ok = preflight(&app, "/auth/users/", "https://shop.example.com").await;
    assert_eq!(
        header(&ok, "access-control-allow-origin"),
        Some("https://shop.example.com")
    );
    for other in [
        "https://shop.example.com.evil.net",
        "https://evil.net/https://shop.example.com",
        "xhttps://shop.example.com",
    ] {
        let response = preflight(&app, "/auth/users/", other).await;
        assert!(
            header(&response, "access-control-allow-origin").is_none(),
            "{other}"
        );
    }
}

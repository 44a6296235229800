//! Using someone's refresh cookie without their page asking for it, or planting one: a body
//! token beside the cookie, look-alike cookie names, a huge cookie, the CSRF cookie on its own,
//! and a cross-site login that would log the browser into the attacker's account.
use reqwest::StatusCode;
use serde_json::json;

use crate::{
    cookie::{APP_ORIGIN, COOKIE_MODE, Jar, login, post_with, refresh_with_cookie, set_cookies},
    helpers::{Backend, TestApp},
};

on_every_backend!(
    a_body_token_beside_the_cookie_wins_and_leaves_the_cookie_alone,
    cookie_names_are_matched_exactly,
    a_huge_cookie_is_refused_without_being_decoded,
    the_csrf_cookie_alone_is_no_credential,
    a_cross_site_login_plants_no_cookie,
);

async fn cookie_app(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        &[COOKIE_MODE, ("TESSERA__CORS__ALLOWED_ORIGINS", APP_ORIGIN)],
    )
    .await
}

async fn a_body_token_beside_the_cookie_wins_and_leaves_the_cookie_alone(backend: Backend) {
    let app = cookie_app(backend).await;
    let victim = login(&app, &app.register("victim").await).await;
    let attacker_user = app.register("attacker").await;
    // A cross-site form carries the victim's cookie and the attacker's own token in the body.
    // The body wins (as in SimpleJWT) and needs no CSRF proof: it is no ambient credential.
    // But its answer must not plant the attacker's rotated token in the victim's browser.
    for path in ["/api/token/refresh/", "/api/token/blacklist/"] {
        let attacker = login(&app, &attacker_user).await;
        let (status, body, cookies) = post_with(
            &app,
            path,
            &victim.header(),
            &[("Origin", "https://evil.example")],
            Some(json!({"refresh": attacker.refresh})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(cookies.is_empty(), "{path}: {cookies:#?}");
    }
    // The victim's cookie was neither rotated nor revoked.
    let (status, body, cookies) = refresh_with_cookie(&app, &victim).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let victim = Jar {
        refresh: cookies
            .iter()
            .find(|c| c.name == "refresh_token")
            .unwrap()
            .value
            .clone(),
        ..victim
    };
    // The cookie's own token in the body proves the caller holds it (a page cannot read an
    // HttpOnly cookie): the answer manages the cookie as if it had been sent alone.
    let (status, body, cookies) = post_with(
        &app,
        "/api/token/refresh/",
        &victim.header(),
        &[],
        Some(json!({"refresh": victim.refresh})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rotated = cookies.iter().find(|c| c.name == "refresh_token").unwrap();
    assert_eq!(rotated.value, body["refresh"].as_str().unwrap());
}

async fn cookie_names_are_matched_exactly(backend: Backend) {
    let app = cookie_app(backend).await;
    let jar = login(&app, &app.register("cookie").await).await;
    let csrf = format!("csrftoken={}", jar.csrf);
    for name in [
        "Refresh_Token",
        "REFRESH_TOKEN",
        "refresh-token",
        "refresh_token_",
        "xrefresh_token",
        "refresh_token ;",
    ] {
        let cookie = format!("{name}={}; {csrf}", jar.refresh);
        let (status, body, _) = post_with(
            &app,
            "/api/token/refresh/",
            &cookie,
            &[("X-CSRF-Token", &jar.csrf)],
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_eq!(body, json!({"refresh": ["This field is required."]}));
    }
    // Nor does the CSRF cookie's name match in another case.
    let cookie = format!("refresh_token={}; CSRFTOKEN={}", jar.refresh, jar.csrf);
    let (status, body, _) = post_with(
        &app,
        "/api/token/refresh/",
        &cookie,
        &[("X-CSRF-Token", &jar.csrf)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["detail"], "CSRF Failed: CSRF cookie not set.");
    // Spaces around the pairs are the browser's, not part of the name.
    let cookie = format!("theme=dark;   refresh_token={} ;{csrf}", jar.refresh);
    let (status, body, _) = post_with(
        &app,
        "/api/token/refresh/",
        &cookie,
        &[("X-CSRF-Token", &jar.csrf)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn a_huge_cookie_is_refused_without_being_decoded(backend: Backend) {
    let app = cookie_app(backend).await;
    let jar = login(&app, &app.register("cookie").await).await;
    let huge = Jar {
        refresh: format!("{}.{}", jar.refresh, "A".repeat(64 * 1024)),
        ..jar.clone()
    };
    let started = std::time::Instant::now();
    let (status, body, _) = refresh_with_cookie(&app, &huge).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"detail": "Token is invalid", "code": "token_not_valid"})
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // Without the CSRF proof it is refused before anything else.
    let (status, _, _) = post_with(&app, "/api/token/refresh/", &huge.header(), &[], None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A huge CSRF cookie never matches.
    let big = "f".repeat(8 * 1024);
    let cookie = format!("refresh_token={}; csrftoken={big}", jar.refresh);
    let (status, body, _) = post_with(
        &app,
        "/api/token/refresh/",
        &cookie,
        &[("X-CSRF-Token", &big)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Headers beyond the server's limit are refused by the HTTP layer itself.
    let enormous = format!("refresh_token={}", "A".repeat(1024 * 1024));
    let response = app
        .request(reqwest::Method::POST, "/api/token/refresh/")
        .header("Cookie", enormous)
        .header("X-CSRF-Token", &jar.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    // And the real cookie still works.
    let (status, body, _) = refresh_with_cookie(&app, &jar).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn the_csrf_cookie_alone_is_no_credential(backend: Backend) {
    let app = cookie_app(backend).await;
    let jar = login(&app, &app.register("cookie").await).await;
    let cookie = format!("csrftoken={}", jar.csrf);
    for path in ["/api/token/refresh/", "/api/token/blacklist/"] {
        for headers in [
            vec![("X-CSRF-Token", jar.csrf.as_str())],
            vec![("Origin", APP_ORIGIN)],
        ] {
            let (status, body, cookies) = post_with(&app, path, &cookie, &headers, None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
            assert_eq!(body, json!({"refresh": ["This field is required."]}));
            assert!(cookies.is_empty());
        }
    }
}

async fn a_cross_site_login_plants_no_cookie(backend: Backend) {
    let app = cookie_app(backend).await;
    let attacker = app.register("attacker").await;
    let credentials = json!({"username": attacker.username, "password": attacker.password});
    let login_from = |origin: Option<&'static str>| {
        let mut request = app.request(reqwest::Method::POST, "/api/token/");
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        request.form(&[
            ("username", credentials["username"].as_str().unwrap()),
            ("password", credentials["password"].as_str().unwrap()),
        ])
    };
    // A form on a foreign site logging the victim's browser into the attacker's account: the
    // login answers as SimpleJWT does (the page cannot read it), but sets no cookie.
    for origin in ["https://evil.example", "null"] {
        let response = login_from(Some(origin)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(set_cookies(&response).is_empty(), "{origin}");
    }
    // A trusted page and a client that sends no Origin (no browser) get the cookies.
    for origin in [Some(APP_ORIGIN), Some("http://localhost:8000"), None] {
        let response = login_from(origin).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(set_cookies(&response).len(), 2, "{origin:?}");
    }
}

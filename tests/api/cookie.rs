//! The refresh token in an HttpOnly cookie (`[jwt.cookie]`): set on login, read by refresh and
//! blacklist when the body has none, rotated and cleared, and the CSRF rules of the requests the
//! cookie authenticates. The browser's side is in `browser/cookie.rs`; attacks in
//! `attacks/refresh_cookie_without_consent.rs`.
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestUser, answer, post};

on_every_backend!(
    login_sets_an_httponly_refresh_cookie_and_a_readable_csrf_cookie,
    the_cookie_mode_is_off_by_default,
    omit_from_body_leaves_refresh_out_of_the_answers_that_set_the_cookie,
    refresh_from_the_cookie_rotates_it_and_the_old_value_is_reuse,
    blacklist_from_the_cookie_revokes_it_and_clears_both_cookies,
    revoke_all_clears_the_cookies,
    cookie_authenticated_calls_without_csrf_proof_are_refused_like_drf,
    a_matching_header_or_a_trusted_origin_lets_the_cookie_through,
    djoser_paths_and_aliases_read_the_cookie_where_its_path_covers_them,
    start_refuses_cookie_settings_a_browser_would_not_honour,
);

/// Cookie mode with the defaults (name `refresh_token`, path `/api/token/`, Lax, Secure).
pub const COOKIE_MODE: (&str, &str) = ("TESSERA__JWT__COOKIE__ENABLED", "true");
/// A page Tessera trusts in these tests (`cors.allowed_origins`).
pub const APP_ORIGIN: &str = "https://app.example.com";

/// One `Set-Cookie` line, parsed.
#[derive(Debug, Clone)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    /// Attribute names lower-cased, with their values.
    pub attributes: Vec<(String, Option<String>)>,
}

impl SetCookie {
    fn parse(line: &str) -> Self {
        let mut parts = line.split(';').map(str::trim);
        let (name, value) = parts.next().unwrap().split_once('=').unwrap();
        let attributes = parts
            .map(|a| match a.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_owned())),
                None => (a.to_ascii_lowercase(), None),
            })
            .collect();
        Self {
            name: name.into(),
            value: value.into(),
            attributes,
        }
    }

    pub fn attribute(&self, name: &str) -> Option<Option<&str>> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_deref())
    }

    pub fn has(&self, flag: &str) -> bool {
        self.attribute(flag).is_some()
    }
}

/// Every `Set-Cookie` of an answer, by name.
pub fn set_cookies(response: &reqwest::Response) -> Vec<SetCookie> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| SetCookie::parse(v.to_str().unwrap()))
        .collect()
}

fn named<'c>(cookies: &'c [SetCookie], name: &str) -> &'c SetCookie {
    cookies
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} cookie in {cookies:#?}"))
}

/// What a browser holds after a login: the two cookie values.
#[derive(Debug, Clone)]
pub struct Jar {
    pub refresh: String,
    pub csrf: String,
}

impl Jar {
    /// The `Cookie` header a browser sends to the refresh path.
    pub fn header(&self) -> String {
        format!("refresh_token={}; csrftoken={}", self.refresh, self.csrf)
    }

    fn from(cookies: &[SetCookie]) -> Self {
        Self {
            refresh: named(cookies, "refresh_token").value.clone(),
            csrf: named(cookies, "csrftoken").value.clone(),
        }
    }
}

/// Logs in at `path`; the answer's body and cookies.
async fn login_at(app: &TestApp, path: &str, user: &TestUser) -> (Value, Vec<SetCookie>) {
    let response = app
        .post_json(
            path,
            json!({"username": user.username, "password": user.password}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookies = set_cookies(&response);
    (response.json().await.unwrap(), cookies)
}

/// Logs in; the browser's cookies.
pub async fn login(app: &TestApp, user: &TestUser) -> Jar {
    Jar::from(&login_at(app, "/api/token/", user).await.1)
}

/// A POST with a `Cookie` header, extra headers and an optional JSON body.
pub async fn post_with(
    app: &TestApp,
    path: &str,
    cookie: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, Value, Vec<SetCookie>) {
    let mut request = app.request(Method::POST, path);
    if !cookie.is_empty() {
        request = request.header("Cookie", cookie);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let cookies = set_cookies(&response);
    let (status, body) = answer(response).await;
    (status, body, cookies)
}

/// Refresh from the cookie with the double-submit header.
pub async fn refresh_with_cookie(app: &TestApp, jar: &Jar) -> (StatusCode, Value, Vec<SetCookie>) {
    post_with(
        app,
        "/api/token/refresh/",
        &jar.header(),
        &[("X-CSRF-Token", &jar.csrf)],
        None,
    )
    .await
}

fn csrf_failed(reason: &str) -> Value {
    json!({"detail": format!("CSRF Failed: {reason}"), "code": "permission_denied"})
}

async fn login_sets_an_httponly_refresh_cookie_and_a_readable_csrf_cookie(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[COOKIE_MODE]).await;
    let user = app.register("cookie").await;
    for path in ["/api/token/", "/auth/jwt/create/", "/auth/jwt/create"] {
        let (body, cookies) = login_at(&app, path, &user).await;
        assert_eq!(cookies.len(), 2, "{cookies:#?}");
        let refresh = named(&cookies, "refresh_token");
        assert_eq!(refresh.value, body["refresh"].as_str().unwrap(), "{path}");
        assert!(body["access"].is_string());
        assert!(
            refresh.has("httponly") && refresh.has("secure"),
            "{refresh:?}"
        );
        assert_eq!(refresh.attribute("samesite"), Some(Some("Lax")));
        assert_eq!(refresh.attribute("path"), Some(Some("/api/token/")));
        assert_eq!(refresh.attribute("max-age"), Some(Some("86400")));
        assert_eq!(refresh.attribute("domain"), None, "host-only by default");
        let csrf = named(&cookies, "csrftoken");
        assert!(!csrf.has("httponly"), "the page must read it: {csrf:?}");
        assert!(csrf.has("secure"));
        assert_eq!(csrf.attribute("samesite"), Some(Some("Lax")));
        assert_eq!(csrf.attribute("path"), Some(Some("/")));
        assert_eq!(csrf.attribute("max-age"), Some(Some("86400")));
        assert_eq!(csrf.value.len(), 64, "256 bits in hex");
        assert!(csrf.value.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    // Each login draws its own CSRF token.
    let (a, b) = (login(&app, &user).await, login(&app, &user).await);
    assert_ne!(a.csrf, b.csrf);
    // Other settings show in the attributes.
    let app = TestApp::spawn_with(
        backend,
        &[
            COOKIE_MODE,
            ("TESSERA__JWT__COOKIE__NAME", "__Secure-rt"),
            ("TESSERA__JWT__COOKIE__CSRF_COOKIE_NAME", "xsrf"),
            ("TESSERA__JWT__COOKIE__SAME_SITE", "strict"),
            ("TESSERA__JWT__COOKIE__DOMAIN", "example.com"),
            ("TESSERA__JWT__COOKIE__PATH", "/api/token/refresh/"),
            ("TESSERA__JWT__REFRESH_TOKEN_LIFETIME", "2h"),
        ],
    )
    .await;
    let user = app.register("cookie").await;
    let (_, cookies) = login_at(&app, "/api/token/", &user).await;
    let refresh = named(&cookies, "__Secure-rt");
    assert_eq!(refresh.attribute("samesite"), Some(Some("Strict")));
    assert_eq!(refresh.attribute("path"), Some(Some("/api/token/refresh/")));
    assert_eq!(refresh.attribute("domain"), Some(Some("example.com")));
    assert_eq!(refresh.attribute("max-age"), Some(Some("7200")));
    let csrf = named(&cookies, "xsrf");
    assert_eq!(csrf.attribute("path"), Some(Some("/")));
    assert_eq!(csrf.attribute("domain"), Some(Some("example.com")));
}

async fn the_cookie_mode_is_off_by_default(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("cookie").await;
    let (body, cookies) = login_at(&app, "/api/token/", &user).await;
    assert!(cookies.is_empty(), "{cookies:#?}");
    // A refresh cookie (a browser's leftover, or forged) is not read at all.
    let jar = Jar {
        refresh: body["refresh"].as_str().unwrap().into(),
        csrf: "x".repeat(64),
    };
    let (status, body, cookies) = refresh_with_cookie(&app, &jar).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"refresh": ["This field is required."]}));
    assert!(cookies.is_empty());
    let (status, body) = post(&app, "/api/token/blacklist/", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"refresh": ["This field is required."]}));
}

async fn omit_from_body_leaves_refresh_out_of_the_answers_that_set_the_cookie(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            COOKIE_MODE,
            ("TESSERA__JWT__COOKIE__OMIT_FROM_BODY", "true"),
        ],
    )
    .await;
    let user = app.register("cookie").await;
    let (body, cookies) = login_at(&app, "/api/token/", &user).await;
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access"], "{body}");
    let jar = Jar::from(&cookies);
    let (status, body, cookies) = refresh_with_cookie(&app, &jar).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access"], "{body}");
    let rotated = named(&cookies, "refresh_token");
    assert_ne!(rotated.value, jar.refresh);
    assert!(rotated.has("httponly"));
    // A client that sends the token in the body holds it already, and gets the new one back.
    let (status, body, cookies) = post_with(
        &app,
        "/api/token/refresh/",
        "",
        &[],
        Some(json!({"refresh": rotated.value})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["refresh"].is_string() && body["access"].is_string());
    assert!(cookies.is_empty(), "{cookies:#?}");
}

async fn refresh_from_the_cookie_rotates_it_and_the_old_value_is_reuse(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[COOKIE_MODE]).await;
    let user = app.register("cookie").await;
    let first = login(&app, &user).await;
    let (status, body, cookies) = refresh_with_cookie(&app, &first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = Jar::from(&cookies);
    assert_ne!(second.refresh, first.refresh);
    assert_eq!(body["refresh"], second.refresh.as_str());
    // The CSRF token stays what the page (and its other tabs) read; only its life is renewed.
    assert_eq!(second.csrf, first.csrf);
    let rotated = named(&cookies, "refresh_token");
    assert!(rotated.has("httponly") && rotated.has("secure"));
    assert_eq!(rotated.attribute("max-age"), Some(Some("86400")));
    assert_eq!(rotated.attribute("path"), Some(Some("/api/token/")));
    // The access token works.
    let (status, _) = crate::helpers::me(
        &app,
        &format!("Bearer {}", body["access"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, cookies) = refresh_with_cookie(&app, &second).await;
    assert_eq!(status, StatusCode::OK);
    let third = Jar::from(&cookies);
    // The first cookie again (a stolen copy, say): reuse, the family is revoked.
    let (status, body, cookies) = refresh_with_cookie(&app, &first).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"detail": "Token is blacklisted", "code": "token_not_valid"})
    );
    assert!(cookies.is_empty());
    let (status, _, _) = refresh_with_cookie(&app, &third).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the whole family ends");
}

async fn blacklist_from_the_cookie_revokes_it_and_clears_both_cookies(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[COOKIE_MODE]).await;
    let user = app.register("cookie").await;
    let jar = login(&app, &user).await;
    let (status, body, cookies) = post_with(
        &app,
        "/api/token/blacklist/",
        &jar.header(),
        &[("X-CSRF-Token", &jar.csrf)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({}));
    assert_eq!(cookies.len(), 2, "{cookies:#?}");
    for (name, path) in [("refresh_token", "/api/token/"), ("csrftoken", "/")] {
        let cleared = named(&cookies, name);
        assert_eq!(cleared.value, "");
        assert_eq!(cleared.attribute("max-age"), Some(Some("0")));
        // The same path (and domain) as when set, or the browser keeps the old cookie.
        assert_eq!(cleared.attribute("path"), Some(Some(path)));
        assert!(cleared.has("expires"));
    }
    let (status, body, _) = refresh_with_cookie(&app, &jar).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "Token is blacklisted");
    // A body token is blacklisted as before; the cookie (not this token) is left alone.
    let other = login(&app, &user).await;
    let (status, _, cookies) = post_with(
        &app,
        "/api/token/blacklist/",
        "",
        &[],
        Some(json!({"refresh": other.refresh})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(cookies.is_empty());
}

async fn revoke_all_clears_the_cookies(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[COOKIE_MODE]).await;
    let user = app.register("cookie").await;
    let jar = login(&app, &user).await;
    let (status, body, _) = refresh_with_cookie(&app, &jar).await;
    assert_eq!(status, StatusCode::OK);
    let access = body["access"].as_str().unwrap().to_owned();
    let jar = Jar {
        refresh: body["refresh"].as_str().unwrap().into(),
        ..jar
    };
    let (status, _, cookies) = post_with(
        &app,
        "/api/token/revoke_all/",
        &jar.header(),
        &[("Authorization", &format!("Bearer {access}"))],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for name in ["refresh_token", "csrftoken"] {
        let cleared = named(&cookies, name);
        assert_eq!(cleared.value, "");
        assert_eq!(cleared.attribute("max-age"), Some(Some("0")));
    }
    let (status, _, _) = refresh_with_cookie(&app, &jar).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn cookie_authenticated_calls_without_csrf_proof_are_refused_like_drf(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[COOKIE_MODE, ("TESSERA__CORS__ALLOWED_ORIGINS", APP_ORIGIN)],
    )
    .await;
    let user = app.register("cookie").await;
    let jar = login(&app, &user).await;
    let wrong = "0".repeat(64);
    let only_refresh = format!("refresh_token={}", jar.refresh);
    // (case, Cookie header, other headers, answer)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Value);
    let refused: [Case; 6] = [
        (
            "no header, no Origin",
            &jar.header(),
            vec![],
            csrf_failed("CSRF token missing."),
        ),
        (
            "wrong header",
            &jar.header(),
            vec![("X-CSRF-Token", &wrong)],
            csrf_failed("CSRF token incorrect."),
        ),
        (
            "empty header",
            &jar.header(),
            vec![("X-CSRF-Token", "")],
            csrf_failed("CSRF token incorrect."),
        ),
        (
            "header without the csrftoken cookie",
            &only_refresh,
            vec![("X-CSRF-Token", &jar.csrf)],
            csrf_failed("CSRF cookie not set."),
        ),
        (
            "foreign Origin",
            &jar.header(),
            vec![("Origin", "https://evil.example")],
            csrf_failed(
                "Origin checking failed - https://evil.example does not match any trusted origins.",
            ),
        ),
        (
            "foreign Origin and a wrong header",
            &jar.header(),
            vec![("Origin", "null"), ("X-CSRF-Token", &wrong)],
            csrf_failed("Origin checking failed - null does not match any trusted origins."),
        ),
    ];
    for path in ["/api/token/refresh/", "/api/token/blacklist/"] {
        for (case, cookie, headers, expected) in &refused {
            let (status, body, cookies) = post_with(&app, path, cookie, headers, None).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}, {case}: {body}");
            assert_eq!(&body, expected, "{path}, {case}");
            assert!(cookies.is_empty(), "{path}, {case}");
        }
    }
    // Nothing was consumed or revoked by the refused calls.
    let (status, body, _) = refresh_with_cookie(&app, &jar).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn a_matching_header_or_a_trusted_origin_lets_the_cookie_through(backend: Backend) {
    // Regexes come from a file (a comma is part of many).
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "[cors]\nallowed_origin_regexes = ['https://[a-z]+\\.preview\\.example\\.com']\n",
    )
    .unwrap();
    let config = config.path().display().to_string();
    let app = TestApp::spawn_with(
        backend,
        &[
            COOKIE_MODE,
            ("TESSERA_CONFIG", &config),
            ("TESSERA__CORS__ALLOWED_ORIGINS", APP_ORIGIN),
            ("TESSERA__ACCOUNTS__PROTOCOL", "https"),
            ("TESSERA__ACCOUNTS__DOMAIN", "id.example.com"),
        ],
    )
    .await;
    let user = app.register("cookie").await;
    let mut jar = login(&app, &user).await;
    let csrf = jar.csrf.clone();
    let accepted: [(&str, Vec<(&str, &str)>); 6] = [
        ("matching header", vec![("X-CSRF-Token", &csrf)]),
        ("Django's header name", vec![("X-CSRFToken", &csrf)]),
        // Whatever the Origin: a foreign page cannot set the header (CORS preflight).
        (
            "matching header, another Origin",
            vec![("X-CSRF-Token", &csrf), ("Origin", "https://other.example")],
        ),
        ("listed Origin", vec![("Origin", APP_ORIGIN)]),
        (
            "Origin matching a regex",
            vec![("Origin", "https://pr.preview.example.com")],
        ),
        (
            "the service's own Origin",
            vec![("Origin", "https://id.example.com")],
        ),
    ];
    for (case, headers) in &accepted {
        let (status, body, cookies) =
            post_with(&app, "/api/token/refresh/", &jar.header(), headers, None).await;
        assert_eq!(status, StatusCode::OK, "{case}: {body}");
        jar = Jar::from(&cookies);
    }
    let (status, _, cookies) = post_with(
        &app,
        "/api/token/blacklist/",
        &jar.header(),
        &[("Origin", APP_ORIGIN)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(named(&cookies, "refresh_token").value, "");
    // The regex matches whole origins only.
    let jar = login(&app, &user).await;
    let (status, _, _) = post_with(
        &app,
        "/api/token/refresh/",
        &jar.header(),
        &[("Origin", "https://pr.preview.example.com.evil.net")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn djoser_paths_and_aliases_read_the_cookie_where_its_path_covers_them(backend: Backend) {
    // Djoser's paths: a cookie for /auth/jwt/, and an alias so logout is under it too.
    let app = TestApp::spawn_with(
        backend,
        &[
            COOKIE_MODE,
            ("TESSERA__JWT__COOKIE__PATH", "/auth/jwt/"),
            (
                "TESSERA__PATHS__ALIASES",
                "/auth/jwt/blacklist/=/api/token/blacklist/",
            ),
        ],
    )
    .await;
    let user = app.register("cookie").await;
    let (_, cookies) = login_at(&app, "/auth/jwt/create/", &user).await;
    assert_eq!(
        named(&cookies, "refresh_token").attribute("path"),
        Some(Some("/auth/jwt/"))
    );
    let jar = Jar::from(&cookies);
    let proof = [("X-CSRF-Token", jar.csrf.as_str())];
    let (status, body, cookies) =
        post_with(&app, "/auth/jwt/refresh", &jar.header(), &proof, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let jar = Jar::from(&cookies);
    let proof = [("X-CSRF-Token", jar.csrf.as_str())];
    let (status, _, cookies) =
        post_with(&app, "/auth/jwt/blacklist/", &jar.header(), &proof, None).await;
    assert_eq!(status, StatusCode::OK);
    let cleared = named(&cookies, "refresh_token");
    assert_eq!(cleared.attribute("path"), Some(Some("/auth/jwt/")));
    assert_eq!(cleared.attribute("max-age"), Some(Some("0")));
    // A Django project's own refresh path, as an alias under its own cookie path.
    let app = TestApp::spawn_with(
        backend,
        &[
            COOKIE_MODE,
            ("TESSERA__JWT__COOKIE__PATH", "/api/jwt/"),
            (
                "TESSERA__PATHS__ALIASES",
                "/api/jwt/refresh/=/api/token/refresh/,/api/jwt/logout/=/api/token/blacklist/",
            ),
        ],
    )
    .await;
    let user = app.register("cookie").await;
    let jar = login(&app, &user).await;
    let proof = [("X-CSRF-Token", jar.csrf.as_str())];
    let (status, body, _) = post_with(&app, "/api/jwt/refresh/", &jar.header(), &proof, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn start_refuses_cookie_settings_a_browser_would_not_honour(backend: Backend) {
    // Settings checked as they are read.
    let refusals: [(&[(&str, &str)], &str); 7] = [
        (
            &[
                ("TESSERA__JWT__COOKIE__SECURE", "false"),
                ("TESSERA__ACCOUNTS__DOMAIN", "id.example.com"),
            ],
            "jwt.cookie.secure: false is allowed only while accounts.domain is localhost",
        ),
        (
            &[("TESSERA__JWT__COOKIE__SAME_SITE", "none")],
            "jwt.cookie.same_site",
        ),
        (
            &[("TESSERA__JWT__COOKIE__NAME", "refresh token")],
            "jwt.cookie.name: \"refresh token\" is not a cookie name",
        ),
        (
            &[("TESSERA__JWT__COOKIE__CSRF_COOKIE_NAME", "refresh_token")],
            "jwt.cookie.csrf_cookie_name: must differ from jwt.cookie.name",
        ),
        (
            &[("TESSERA__JWT__COOKIE__PATH", "api/token")],
            "jwt.cookie.path: \"api/token\" is not a path",
        ),
        (
            &[("TESSERA__JWT__COOKIE__DOMAIN", "example.com; Path=/")],
            "jwt.cookie.domain",
        ),
        (
            &[("TESSERA__JWT__COOKIE__NAME", "__Host-rt")],
            "browsers need Path=/ and no Domain for __Host- cookies",
        ),
    ];
    for (settings, expected) in refusals {
        let mut env: std::collections::HashMap<String, String> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.insert(COOKIE_MODE.0.into(), COOKIE_MODE.1.into());
        let error = tessera::Settings::load_from(env)
            .err()
            .unwrap_or_else(|| panic!("{settings:?} accepted"))
            .to_string();
        assert!(error.contains(expected), "{settings:?}: {error}");
    }
    // A path under which browsers would never send the cookie to a refresh endpoint.
    for path in ["/auth/users/", "/api/tok", "/api/token/verify/"] {
        let error = TestApp::try_spawn_with(
            backend,
            &[COOKIE_MODE, ("TESSERA__JWT__COOKIE__PATH", path)],
        )
        .await
        .err()
        .unwrap_or_else(|| panic!("{path} started"));
        assert!(
            error.contains(&format!(
                "jwt.cookie.path: {path:?} covers none of the refresh paths"
            )),
            "{error}"
        );
    }
    // Plain HTTP on the loopback is development, and allowed.
    let app = TestApp::spawn_with(
        backend,
        &[
            COOKIE_MODE,
            ("TESSERA__JWT__COOKIE__SECURE", "false"),
            ("TESSERA__ACCOUNTS__DOMAIN", "127.0.0.1:8000"),
        ],
    )
    .await;
    let user = app.register("cookie").await;
    let (_, cookies) = login_at(&app, "/api/token/", &user).await;
    let refresh = named(&cookies, "refresh_token");
    assert!(!refresh.has("secure") && refresh.has("httponly"));
}

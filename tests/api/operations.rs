//! Observability: Prometheus metrics.
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Backend, PASSWORD, TestApp};

async fn metrics(app: &TestApp) -> String {
    let response = app.request(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    response.text().await.unwrap()
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_requests_by_route_logins_and_tokens() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.register("metered").await;
    let before = metrics(&app).await;
    app.login(&user).await;
    app.post_json(
        "/api/token/",
        json!({"username": user.username, "password": "wrong"}),
    )
    .await;
    let by_id = app
        .request(Method::GET, &format!("/auth/users/{}/", user.id))
        .basic_auth(&user.username, Some(PASSWORD));
    assert_eq!(by_id.send().await.unwrap().status(), StatusCode::OK);
    let after = metrics(&app).await;
    for (series, delta) in [
        ("tessera_logins_total{outcome=\"success\"}", 2.0),
        ("tessera_logins_total{outcome=\"failure\"}", 1.0),
        ("tessera_tokens_issued_total{kind=\"login\"}", 1.0),
    ] {
        assert!(
            value(&after, series) >= value(&before, series) + delta,
            "{series}\n{after}"
        );
    }
    assert!(
        after.contains("route=\"/auth/users/{id}/\""),
        "ids are folded into the route label"
    );
    assert!(!after.contains(&user.id), "no user id in any label");
    assert!(after.contains("tessera_http_request_duration_seconds_bucket"));
    assert!(after.contains("tessera_build_info{version=\""));
}

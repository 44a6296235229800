//! Growing the metrics without bound: every request to a made-up path (or with a made-up
//! method) used to create a series of its own, forever.
use reqwest::{Method, StatusCode};

use crate::helpers::{Backend, TestApp};

on_every_backend!(
    made_up_paths_share_one_series,
    made_up_methods_share_one_series
);

async fn made_up_paths_share_one_series(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let marker = format!("probe-{}", uuid::Uuid::new_v4().simple());
    for path in [
        format!("/{marker}"),
        format!("/auth/{marker}/"),
        format!("/api/token/{marker}"),
        format!("/auth/users/{marker}/extra/segments/"),
    ] {
        let status = app
            .request(Method::GET, &path)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let metrics = app
        .request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains(&marker),
        "a made-up path became a label:\n{metrics}"
    );
    assert!(
        metrics.contains(r#"route="other",status="404""#),
        "unmatched requests are counted under `other`"
    );
}

async fn made_up_methods_share_one_series(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let marker = format!("PROBE{}", uuid::Uuid::new_v4().simple()).to_uppercase();
    for path in ["/api/token/verify/", "/auth/users/me/", "/nowhere"] {
        let method = Method::from_bytes(marker.as_bytes()).unwrap();
        let status = app.request(method, path).send().await.unwrap().status();
        assert!(status.is_client_error(), "{path}: {status}");
    }
    let metrics = app
        .request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains(&marker),
        "a made-up method became a label:\n{metrics}"
    );
    assert!(
        metrics.contains(r#"method="other""#),
        "made-up methods are counted under `other`"
    );
}

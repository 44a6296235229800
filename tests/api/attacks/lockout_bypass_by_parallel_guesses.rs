//! Getting more guesses than the lockout allows: a burst of parallel wrong passwords (each was
//! checked before any had failed), and addresses from one IPv6 /64.
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, PASSWORD, TestApp};

on_every_backend!(
    a_parallel_burst_gets_no_more_guesses_than_the_threshold,
    one_ipv6_prefix_is_one_address,
    one_ipv6_prefix_shares_one_rate,
);

async fn a_parallel_burst_gets_no_more_guesses_than_the_threshold(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("TESSERA__THROTTLE__ENABLED", "true"),
            ("TESSERA__THROTTLE__LOCKOUT_FAILURES", "3"),
            ("TESSERA__THROTTLE__SCOPES__LOGIN", "100000/min"),
            ("TESSERA__PASSWORDS__QUEUE", "256"),
        ],
    )
    .await;
    let victim = app.register("burst").await;
    let guesses: Vec<_> = (0..40)
        .map(|n| {
            let body = json!({"username": victim.username, "password": format!("guess-{n}")});
            tokio::spawn(
                app.request(reqwest::Method::POST, "/api/token/")
                    .json(&body)
                    .send(),
            )
        })
        .collect();
    let mut checked = 0;
    for guess in guesses {
        match guess.await.unwrap().unwrap().status() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(checked, 3, "guesses whose password was checked");
    let right = json!({"username": victim.username, "password": PASSWORD});
    let status = app.post_json("/api/token/", right).await.status();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "locked");
}

async fn one_ipv6_prefix_is_one_address(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("TESSERA__THROTTLE__ENABLED", "true"),
            ("TESSERA__THROTTLE__LOCKOUT_FAILURES", "10"),
            ("TESSERA__THROTTLE__LOCKOUT_IP_FAILURES", "3"),
            ("TESSERA__THROTTLE__TRUSTED_PROXIES", "127.0.0.1/32"),
        ],
    )
    .await;
    let login = |from: &str, n: usize| {
        app.request(reqwest::Method::POST, "/api/token/")
            .header("X-Forwarded-For", from)
            .json(&json!({"username": format!("nobody{n}"), "password": "guess"}))
            .send()
    };
    // Every guess from a fresh address of one /64, against a fresh account.
    for n in 0..3 {
        let from = format!("2001:db8:7:9::{:x}", n + 1);
        assert_eq!(
            login(&from, n).await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let next = login("2001:db8:7:9:dead:beef::1", 3).await.unwrap();
    assert_eq!(next.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another /64 is another address.
    let elsewhere = login("2001:db8:7:a::1", 4).await.unwrap();
    assert_eq!(elsewhere.status(), StatusCode::UNAUTHORIZED);
}

async fn one_ipv6_prefix_shares_one_rate(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("TESSERA__THROTTLE__ENABLED", "true"),
            ("TESSERA__THROTTLE__SCOPES__LOGIN", "2/min"),
            ("TESSERA__THROTTLE__TRUSTED_PROXIES", "127.0.0.1/32"),
        ],
    )
    .await;
    let login = |from: String| {
        app.request(reqwest::Method::POST, "/api/token/")
            .header("X-Forwarded-For", from)
            .json(&json!({"username": "nobody", "password": "guess"}))
            .send()
    };
    let mut statuses = Vec::new();
    for n in 1..=3 {
        statuses.push(
            login(format!("2001:db8:5:6::{n:x}"))
                .await
                .unwrap()
                .status(),
        );
    }
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "fresh addresses of one /64 share the login rate"
    );
}

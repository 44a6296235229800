//! A login flood whose clients give up as soon as their requests are sent: every request would
//! otherwise leave an argon2 job in the hashing queue that nobody waits for, keeping the threads
//! busy and the queue full (503) for the honest logins behind it. A job whose request has gone
//! is dropped unrun. Checked on a server process of the test's own, so the metrics are exact.
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, PASSWORD, ServerProcess, client, eventually, metric_value, metrics};

on_every_backend!(queued_logins_whose_clients_gave_up_are_not_hashed);

const FLOOD: usize = 10;

/// The value of an unlabelled metric on the server's `/metrics`; 0 when absent.
async fn metric(base: &str, name: &str) -> f64 {
    metric_value(&metrics(&client(), base).await, name, &[])
}

async fn queued_logins_whose_clients_gave_up_are_not_hashed(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
    if matches!(backend, Backend::Postgres) {
        // The lockout's counts then live in Redis.
        command
            .env(
                "DATABASE_URL",
                crate::helpers::fresh_postgres_database().await,
            )
            .env("REDIS_URL", crate::helpers::redis_url())
            .env("TESSERA__JWT__SIGNING_KEY", crate::helpers::SIGNING_KEY)
            .env(
                "TESSERA__REDIS__KEY_PREFIX",
                format!("tessera-test:flood-{}:", uuid::Uuid::new_v4().simple()),
            );
    }
    command
        .current_dir(dir.path())
        // No rate turns the flood away before the pool; the lockout stays on (10 failures).
        .env("TESSERA__THROTTLE__ENABLED", "false")
        // One thread and a hash long enough (several hundred ms) that the flood is all queued
        // while the first guess is hashed.
        .env("TESSERA__PASSWORDS__WORKERS", "1")
        .env("TESSERA__PASSWORDS__QUEUE", "64")
        .env("TESSERA__PASSWORDS__MEMORY_KIB", "65536")
        .env("TESSERA__PASSWORDS__ITERATIONS", "10");
    let server = ServerProcess::start(command);
    let base = server.base.as_str();
    let registered = client()
        .post(format!("{base}/auth/users/"))
        .json(&json!({"username": "flooded", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);

    // Over HTTP/2 a client that gives up resets its stream, and the server drops the request.
    // (Over HTTP/1, poem's server does not notice a hang-up before it answers; see
    // docs/performance.md.)
    let h2 = crate::helpers::client_builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let flood: Vec<_> = (0..FLOOD)
        .map(|_| {
            tokio::spawn(
                h2.post(format!("{base}/api/token/"))
                    .json(&json!({"username": "flooded", "password": "a guess"}))
                    .send(),
            )
        })
        .collect();
    // Every guess is in the pool (one hashing, the rest queued) before the clients give up.
    eventually(
        std::time::Duration::from_secs(10),
        "the flood queued",
        || async { metric(base, "tessera_password_hashing_in_flight").await >= FLOOD as f64 },
    )
    .await;
    for request in &flood {
        request.abort();
    }

    // At most the guess being hashed and the one the thread takes next can be done before the
    // server sees the resets; every other one is dropped unrun, and the pool empties.
    eventually(
        std::time::Duration::from_secs(30),
        "the abandoned guesses dropped",
        || async {
            metric(base, "tessera_password_hashing_in_flight").await == 0.0
                && metric(base, "tessera_password_hashing_abandoned_total").await
                    >= (FLOOD - 2) as f64
        },
    )
    .await;
    // Giving up is no way around the lockout either: the guesses dropped unrun were counted
    // when they came in, so the account (10 failures by default) is locked now.
    let login = client()
        .post(format!("{base}/api/token/"))
        .json(&json!({"username": "flooded", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::TOO_MANY_REQUESTS);
}

//! Micro-benchmarks of the token hot path: issuing a token and verifying one (signature + claims).
//! `cargo bench --bench tokens`
#![allow(clippy::expect_used)] // a benchmark that cannot set up has nothing to measure
use std::collections::HashMap;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera::{AppState, Settings, domain::tokens::TokenType};

fn state(runtime: &tokio::runtime::Runtime) -> AppState {
    state_with(
        runtime,
        &[(
            "TESSERA__JWT__SIGNING_KEY",
            "bench-signing-key-0123456789abcdef0123456789",
        )],
    )
}

fn state_with(runtime: &tokio::runtime::Runtime, extra: &[(&str, &str)]) -> AppState {
    let env: HashMap<String, String> = [("DATABASE_URL", "sqlite::memory:")]
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let settings = Settings::load_from(env).expect("settings");
    runtime
        .block_on(AppState::connect(settings))
        .expect("state")
}

fn tokens(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let state = state(&runtime);
    let user = uuid::Uuid::now_v7();
    let (token, _, _) = state
        .tokens
        .encode(TokenType::Access, user, chrono::Utc::now())
        .expect("token");
    c.bench_function("issue access token (HS256)", |b| {
        b.iter(|| {
            state
                .tokens
                .encode(TokenType::Access, user, chrono::Utc::now())
                .expect("token")
        })
    });
    c.bench_function("verify access token (HS256, signature + claims)", |b| {
        b.iter(|| {
            state
                .tokens
                .decode(&token, Some(TokenType::Access))
                .expect("valid")
        })
    });
}

/// Signing and verifying with each asymmetric algorithm, on jsonwebtoken's aws-lc-rs backend
/// (test keys from tests/api/keys).
fn asymmetric(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/keys");
    let user = uuid::Uuid::now_v7();
    for (algorithm, file) in [
        ("RS256", "rsa1.pem"),
        ("ES256", "ec1.pem"),
        ("EdDSA", "ed1.pem"),
    ] {
        let path = format!("{keys}/{file}");
        let state = state_with(
            &runtime,
            &[
                ("TESSERA__JWT__ALGORITHM", algorithm),
                ("TESSERA__JWT__SIGNING_KEY_FILE", &path),
            ],
        );
        let (token, _, _) = state
            .tokens
            .encode(TokenType::Access, user, chrono::Utc::now())
            .expect("token");
        c.bench_function(&format!("sign access token ({algorithm})"), |b| {
            b.iter(|| {
                state
                    .tokens
                    .encode(TokenType::Access, user, chrono::Utc::now())
                    .expect("token")
            })
        });
        c.bench_function(&format!("verify access token ({algorithm})"), |b| {
            b.iter(|| {
                state
                    .tokens
                    .decode(&token, Some(TokenType::Access))
                    .expect("valid")
            })
        });
    }
}

/// One argon2id verification with the default (OWASP) cost: what a login costs a core.
fn passwords(c: &mut Criterion) {
    use argon2::{PasswordHasher, PasswordVerifier};
    let argon = argon2::Argon2::default();
    let hash = argon
        .hash_password(b"correct horse battery")
        .expect("hash")
        .to_string();
    let mut group = c.benchmark_group("passwords");
    group.sample_size(20);
    group.bench_function("argon2id verify (m=19456 KiB, t=2, p=1)", |b| {
        b.iter(|| {
            argon
                .verify_password(b"correct horse battery", hash.as_str())
                .is_ok()
        })
    });
    group.finish();
}

criterion_group!(benches, tokens, asymmetric, passwords);
criterion_main!(benches);

//! How long a revocation on one instance takes to be refused by the others: three instances in
//! this process on one PostgreSQL database and one Redis (as a deployment runs them), each
//! answering checks from its in-memory copy. Prints p50 / p99 / max over 300 revocations.
//! `DATABASE_URL` (a server where a scratch database may be created; default
//! postgres://postgres@127.0.0.1:5432/test) and `REDIS_URL` (default redis://127.0.0.1:6379/0).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database};
use tessera::{Application, Settings, domain::users::Registration};

const KEY: &str = "propagation-bench-signing-key-0123456789abcdef";

#[tokio::main]
async fn main() {
    let admin = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    let name = format!("tessera_bench_{}", std::process::id());
    let db = Database::connect(&admin).await.expect("postgres");
    db.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create database");
    let url = format!("{}/{name}", &admin[..admin.rfind('/').expect("a path")]);
    let prefix = format!("bench:{}:", std::process::id());
    let mut states = Vec::new();
    for _ in 0..3 {
        let env: HashMap<String, String> = HashMap::from([
            ("TESSERA__SERVER__BIND".into(), "127.0.0.1:0".into()),
            ("DATABASE_URL".into(), url.clone()),
            ("REDIS_URL".into(), redis.clone()),
            ("TESSERA__REDIS__KEY_PREFIX".into(), prefix.clone()),
            ("TESSERA__JWT__SIGNING_KEY".into(), KEY.into()),
            ("TESSERA__PASSWORDS__MEMORY_KIB".into(), "1024".into()),
            ("TESSERA__PASSWORDS__ITERATIONS".into(), "1".into()),
            ("TESSERA__LOG__LEVEL".into(), "warn".into()),
        ]);
        let app = Application::build(Settings::load_from(env).expect("settings"))
            .await
            .expect("app");
        states.push(app.state().clone());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !states
        .iter()
        .all(|s| s.memory.as_ref().is_some_and(|m| m.is_trusted()))
    {
        assert!(Instant::now() < deadline, "copies trusted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    states[0]
        .users
        .register(Registration {
            username: "bench".into(),
            email: String::new(),
            password: "correct horse battery".into(),
            is_staff: false,
            is_superuser: false,
            is_active: true,
        })
        .await
        .expect("user");
    let mut took = Vec::new();
    for i in 0..300 {
        let user = states[i % 3]
            .users
            .authenticate("bench", "correct horse battery", None)
            .await
            .expect("user");
        let pair = states[i % 3]
            .tokens
            .issue_pair(user, &Default::default())
            .await
            .expect("pair");
        states[i % 3]
            .tokens
            .blacklist(&pair.refresh)
            .await
            .expect("blacklist");
        let revoked = Instant::now();
        for other in [(i + 1) % 3, (i + 2) % 3] {
            while states[other].tokens.verify(&pair.refresh).await.is_ok() {
                tokio::task::yield_now().await;
            }
        }
        took.push(revoked.elapsed());
    }
    took.sort();
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    println!(
        "revocation refused by the 2 other instances: p50 {:?}, p99 {:?}, max {:?} ({} revocations)",
        at(0.5),
        at(0.99),
        took[took.len() - 1],
        took.len()
    );
    drop(states);
    let _ = db
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await;
}

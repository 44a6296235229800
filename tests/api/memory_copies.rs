//! Each instance's in-memory copy of the revocation list and of seen opaque keys: exact across
//! instances through Redis pub/sub, and never the reason a revoked token or a logged-out key is
//! accepted, whatever happens to the subscription.
use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

on_every_backend!(the_memory_cap_falls_back_and_never_forgets);

async fn all_trusted(apps: &[TestApp]) {
    eventually(Duration::from_secs(10), "every copy trusted", || async {
        apps.iter().all(TestApp::memory_trusted)
    })
    .await;
}

async fn token_key(app: &TestApp, user: &TestUser) -> String {
    let (status, body) = post(
        app,
        "/auth/token/login/",
        json!({"username": user.username, "password": user.password}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["auth_token"].as_str().unwrap().to_owned()
}

/// What a refusal looks like.
enum Refusal {
    /// `/api/token/verify/` answers 400 (blacklisted).
    Verify(String),
    /// `/auth/users/me/` with this `Authorization` answers 401.
    Me(String),
}

impl Refusal {
    async fn holds(&self, app: &TestApp) -> bool {
        match self {
            Refusal::Verify(token) => {
                post(app, "/api/token/verify/", json!({"token": token}))
                    .await
                    .0
                    == StatusCode::BAD_REQUEST
            }
            Refusal::Me(authorization) => {
                me(app, authorization).await.0 == StatusCode::UNAUTHORIZED
            }
        }
    }
}

/// Polls until every app refuses; the time it took.
async fn refused_everywhere(apps: &[&TestApp], what: &str, refusal: Refusal) -> Duration {
    let started = Instant::now();
    loop {
        let mut all = true;
        for app in apps {
            all &= refusal.holds(app).await;
        }
        if all {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{what}: not refused everywhere within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn a_revocation_on_one_instance_is_refused_by_the_others_at_once() {
    if !postgres_available().await {
        return skip(
            "memory_copies::a_revocation_on_one_instance",
            "PostgreSQL or Redis unreachable",
        );
    }
    let apps = TestApp::spawn_instances(3, &[]).await;
    all_trusted(&apps).await;
    let user = apps[0].register("spread").await;
    let (access, refresh) = apps[0].login(&user).await;
    let key = token_key(&apps[0], &user).await;
    for app in &apps {
        assert_eq!(me(app, &format!("Bearer {access}")).await.0, StatusCode::OK);
        // Seen once: cached by every instance from now on.
        assert_eq!(me(app, &format!("Token {key}")).await.0, StatusCode::OK);
    }
    // Blacklisted on one: refused by the others.
    let (status, _) = post(
        &apps[0],
        "/api/token/blacklist/",
        json!({"refresh": refresh}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let took = refused_everywhere(
        &[&apps[1], &apps[2]],
        "blacklisted refresh",
        Refusal::Verify(refresh.clone()),
    )
    .await;
    eprintln!("blacklist reached the other instances in {took:?}");
    // A key logged out on one: refused by the others, which had it cached.
    let (status, _) = answer(
        apps[2]
            .request(Method::POST, "/auth/token/logout/")
            .header("Authorization", format!("Token {key}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    refused_everywhere(
        &[&apps[0], &apps[1]],
        "logged-out key",
        Refusal::Me(format!("Token {key}")),
    )
    .await;
    // Logged out everywhere from one: every instance refuses the access token.
    let (access, _) = apps[0].login(&user).await;
    for app in &apps {
        assert_eq!(me(app, &format!("Bearer {access}")).await.0, StatusCode::OK);
    }
    let (status, _) = answer(
        apps[1]
            .request(Method::POST, "/api/token/revoke_all/")
            .bearer_auth(&access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    refused_everywhere(
        &[&apps[0], &apps[2]],
        "cut-off",
        Refusal::Me(format!("Bearer {access}")),
    )
    .await;
    assert!(
        apps.iter().all(TestApp::memory_trusted),
        "answered from memory throughout"
    );
}

/// Hammers every instance with the revoked tokens and keys; counts any acceptance after its
/// revocation returned.
struct Watch {
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    checks: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// (scheme, credential, when its revocation returned)
type Revoked = Arc<std::sync::Mutex<Vec<(String, String, Instant)>>>;

/// The stated bound: a revocation reaches every instance within this.
const PROPAGATION: Duration = Duration::from_millis(100);

impl Watch {
    fn start(apps: &[TestApp], revoked: Revoked) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let checks = Arc::new(AtomicUsize::new(0));
        let tasks = apps
            .iter()
            .map(|app| {
                let (client, base) = (app.client.clone(), app.base.clone());
                let (stop, accepted, checks, revoked) = (
                    stop.clone(),
                    accepted.clone(),
                    checks.clone(),
                    revoked.clone(),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let list = revoked.lock().unwrap().clone();
                        for (kind, credential, revoked_at) in list {
                            let status = client
                                .get(format!("{base}/auth/users/me/"))
                                .header("Authorization", format!("{kind} {credential}"))
                                .send()
                                .await
                                .map(|r| r.status());
                            checks.fetch_add(1, Ordering::SeqCst);
                            let late = revoked_at.elapsed() > PROPAGATION;
                            if late && matches!(status, Ok(s) if s == StatusCode::OK) {
                                accepted.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                })
            })
            .collect();
        Self {
            stop,
            accepted,
            checks,
            tasks,
        }
    }

    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.unwrap();
        }
        (
            self.accepted.load(Ordering::SeqCst),
            self.checks.load(Ordering::SeqCst),
        )
    }
}

/// Revokes on `app`: an access token (blacklisting its refresh token) and a key (logout); both
/// join the watched list once the answers are back.
async fn revoke_some(app: &TestApp, others: &[TestApp], user: &TestUser, revoked: &Revoked) {
    let (access, refresh) = app.login(user).await;
    let key = token_key(app, user).await;
    for other in others {
        // Seen (and cached) everywhere first.
        assert_eq!(me(other, &format!("Token {key}")).await.0, StatusCode::OK);
        assert_eq!(
            me(other, &format!("Bearer {access}")).await.0,
            StatusCode::OK
        );
    }
    let (status, _) = post(app, "/api/token/blacklist/", json!({"refresh": refresh})).await;
    assert_eq!(status, StatusCode::OK);
    revoked
        .lock()
        .unwrap()
        .push(("Bearer".into(), access, Instant::now()));
    let (status, _) = answer(
        app.request(Method::POST, "/auth/token/logout/")
            .header("Authorization", format!("Token {key}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    revoked
        .lock()
        .unwrap()
        .push(("Token".into(), key, Instant::now()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_subscriptions_gaps_and_a_restarted_redis_never_let_a_revocation_through() {
    if !postgres_available().await {
        return skip(
            "memory_copies::dropped_subscriptions",
            "PostgreSQL or Redis unreachable",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(redis) = OwnRedis::start(dir.path()) else {
        return skip(
            "memory_copies::dropped_subscriptions",
            "no redis-server binary",
        );
    };
    redis.answers().await;
    let url = redis.url();
    // Several keys per user, so a logout drops one key, not every key of the user.
    let apps = TestApp::spawn_instances(
        3,
        &[("REDIS_URL", &url), ("TESSERA__TOKENS__MULTIPLE", "true")],
    )
    .await;
    all_trusted(&apps).await;
    let user = apps[0].register("weather").await;
    let revoked: Revoked = Arc::default();
    let watch = Watch::start(&apps, revoked.clone());

    // 1. Every subscriber killed: the copies stop being trusted at once; revocations made
    //    meanwhile are refused through Redis/SQL, and the copies come back complete.
    redis
        .cmd(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .await
        .unwrap();
    revoke_some(&apps[1], &apps, &user, &revoked).await;
    all_trusted(&apps).await;
    revoke_some(&apps[2], &apps, &user, &revoked).await;

    // 2. A gap: a number that never comes. The copies wait briefly, stop trusting, reload.
    let sequence = apps[0].app_state.memory.as_ref().unwrap().seen();
    let phantom = json!({"seq": sequence + 5, "event": {"kind": "jtis", "jtis": [["phantom", chrono::Utc::now().timestamp() + 60]]}});
    let channel = format!("{}events", apps[0].redis_prefix.as_deref().unwrap());
    redis
        .cmd(&["PUBLISH", &channel, &phantom.to_string()])
        .await
        .unwrap();
    revoke_some(&apps[0], &apps, &user, &revoked).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    all_trusted(&apps).await;

    // 3. Redis restarted empty: subscriptions drop, a revocation made while it is down reaches
    //    SQL only, and once Redis is back every copy reloads it.
    drop(redis);
    let (access, refresh) = apps[1].login(&user).await;
    for app in &apps {
        assert_eq!(me(app, &format!("Bearer {access}")).await.0, StatusCode::OK);
    }
    let (status, _) = post(
        &apps[1],
        "/api/token/blacklist/",
        json!({"refresh": refresh}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    revoked
        .lock()
        .unwrap()
        .push(("Bearer".into(), access, Instant::now()));
    let restarted = OwnRedis::start(dir.path()).unwrap();
    restarted.answers().await;
    all_trusted(&apps).await;
    revoke_some(&apps[2], &apps, &user, &revoked).await;

    let (accepted, checks) = watch.finish().await;
    assert!(checks > 100, "the watch ran ({checks} checks)");
    assert_eq!(
        accepted, 0,
        "a revoked token or key was accepted over {PROPAGATION:?} after its revocation ({checks} checks)"
    );
}

async fn the_memory_cap_falls_back_and_never_forgets(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("TESSERA__MEMORY__REVOCATION_ENTRIES", "3")]).await;
    eventually(Duration::from_secs(10), "the copy is trusted", || async {
        app.memory_trusted() || app.app_state.memory.is_none()
    })
    .await;
    let user = app.register("capped").await;
    let mut sessions = Vec::new();
    for _ in 0..6 {
        sessions.push(app.login(&user).await);
    }
    for (_, refresh) in &sessions {
        let (status, _) = post(&app, "/api/token/blacklist/", json!({"refresh": refresh})).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert!(!app.memory_trusted(), "over the cap: the copy is not used");
    for (access, refresh) in &sessions {
        assert_eq!(
            me(&app, &format!("Bearer {access}")).await.0,
            StatusCode::UNAUTHORIZED
        );
        let (status, _) = post(&app, "/api/token/verify/", json!({"token": refresh})).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "every revocation is still refused"
        );
    }
}

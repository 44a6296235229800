//! Observability: Prometheus metrics.
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{
    Backend, PASSWORD, ServerProcess, TestApp, eventually, metric_value, metrics,
};

/// The metrics facade has one recorder per process, shared by every test app of this test
/// binary: the counts are checked on a server process of this test's own, so they are exact and
/// no other test can make them true.
#[tokio::test]
async fn metrics_count_requests_by_route_logins_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
    command
        .current_dir(dir.path())
        .env("TESSERA__LOG__LEVEL", "info")
        .env("TESSERA__AUTH__BASIC", "true")
        .env("TESSERA__PASSWORDS__MEMORY_KIB", "4096")
        .env("TESSERA__PASSWORDS__ITERATIONS", "1");
    let server = ServerProcess::start(command);
    let base = server.base.as_str();
    let client = crate::helpers::client();
    let created: serde_json::Value = client
        .post(format!("{base}/auth/users/"))
        .json(&json!({"username": "metered", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().expect("registered").to_owned();
    let before = metrics(&client, base).await;
    let login = |password: &'static str| {
        client
            .post(format!("{base}/api/token/"))
            .json(&json!({"username": "metered", "password": password}))
            .send()
    };
    assert_eq!(login(PASSWORD).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        login("wrong").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    for _ in 0..2 {
        let by_id = client
            .get(format!("{base}/auth/users/{id}/"))
            .basic_auth("metered", Some(PASSWORD));
        assert_eq!(by_id.send().await.unwrap().status(), StatusCode::OK);
    }
    // Answered before routing, yet labelled with its route.
    let options = client.request(reqwest::Method::OPTIONS, format!("{base}/auth/users/{id}/"));
    assert_eq!(options.send().await.unwrap().status(), StatusCode::OK);
    // The pages beside the API, in either spelling, are answered and labelled as themselves.
    for page in ["/docs", "/docs/", "/openapi.json"] {
        let answer = client.get(format!("{base}{page}")).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{page}");
    }
    let posted = client.post(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(posted.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: serde_json::Value = posted.json().await.unwrap();
    assert_eq!(body["code"], "method_not_allowed");
    let after = metrics(&client, base).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        metric_value(&after, name, labels) - metric_value(&before, name, labels)
    };
    for (name, labels, expected) in [
        // The JWT login and the two Basic-authenticated requests.
        ("tessera_logins_total", &[("outcome", "success")][..], 3.0),
        ("tessera_logins_total", &[("outcome", "failure")], 1.0),
        ("tessera_tokens_issued_total", &[("kind", "login")], 1.0),
        ("tessera_tokens_issued_total", &[("kind", "refresh")], 0.0),
        (
            "tessera_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/api/token/"),
                ("status", "200"),
            ],
            1.0,
        ),
        (
            "tessera_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/api/token/"),
                ("status", "401"),
            ],
            1.0,
        ),
        (
            "tessera_http_requests_total",
            &[
                ("method", "GET"),
                ("route", "/auth/users/{id}/"),
                ("status", "200"),
            ],
            2.0,
        ),
        (
            "tessera_http_request_duration_seconds_count",
            &[("method", "GET"), ("route", "/auth/users/{id}/")],
            2.0,
        ),
        (
            "tessera_http_requests_total",
            &[
                ("method", "OPTIONS"),
                ("route", "/auth/users/{id}/"),
                ("status", "200"),
            ],
            1.0,
        ),
        (
            "tessera_http_requests_total",
            &[("method", "GET"), ("route", "/docs"), ("status", "200")],
            2.0,
        ),
        (
            "tessera_http_requests_total",
            &[
                ("method", "GET"),
                ("route", "/openapi.json"),
                ("status", "200"),
            ],
            1.0,
        ),
        (
            "tessera_http_requests_total",
            &[("method", "POST"), ("route", "/metrics"), ("status", "405")],
            1.0,
        ),
    ] {
        assert_eq!(delta(name, labels), expected, "{name} {labels:?}\n{after}");
    }
    assert!(
        after.contains("route=\"/auth/users/{id}/\""),
        "ids are folded into the route label"
    );
    assert!(!after.contains(&id), "no user id in any label");
    assert!(after.contains("tessera_http_request_duration_seconds_bucket"));
    assert!(after.contains("tessera_build_info{version=\""));
}

/// Three instances on one PostgreSQL and one Redis behave as one service.
#[tokio::test]
async fn three_instances_share_revocations_rotations_and_throttles() {
    if !crate::helpers::postgres_available().await {
        crate::helpers::skip(
            "operations::three_instances_share_revocations_rotations_and_throttles",
            "PostgreSQL or Redis unreachable",
        );
        return;
    }
    let url = crate::helpers::fresh_postgres_database().await;
    let prefix = format!("tessera-test:trio-{}:", uuid::Uuid::new_v4().simple());
    let shared: Vec<(&str, &str)> = vec![
        ("DATABASE_URL", Box::leak(url.into_boxed_str())),
        (
            "TESSERA__REDIS__KEY_PREFIX",
            Box::leak(prefix.into_boxed_str()),
        ),
        ("TESSERA__THROTTLE__ENABLED", "true"),
        ("TESSERA__THROTTLE__SCOPES__REGISTER", "4/min"),
    ];
    let a = TestApp::spawn_with(Backend::Postgres, &shared).await;
    let b = TestApp::spawn_with(Backend::Postgres, &shared).await;
    let c = TestApp::spawn_with(Backend::Postgres, &shared).await;

    let user = a.register("trio").await;
    let (_, refresh) = b.login(&user).await;
    assert_eq!(
        a.post_json("/api/token/blacklist/", json!({"refresh": refresh}))
            .await
            .status(),
        StatusCode::OK
    );
    for other in [&b, &c] {
        let response = other
            .post_json("/api/token/refresh/", json!({"refresh": refresh}))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "blacklisted via A, refused everywhere"
        );
    }
    // Reuse detection across instances: rotate on B, replay on C, the new token dies on A.
    let (_, refresh) = a.login(&user).await;
    let rotated = b
        .post_json("/api/token/refresh/", json!({"refresh": refresh}))
        .await;
    let newer: serde_json::Value = rotated.json().await.unwrap();
    assert_eq!(
        c.post_json("/api/token/refresh/", json!({"refresh": refresh}))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        a.post_json("/api/token/refresh/", json!({"refresh": newer["refresh"]}))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // The register scope (4/min, one used above) is shared: the fifth registration is refused.
    for (app, n) in [(&a, 1), (&b, 2), (&c, 3)] {
        let body = json!({"username": format!("trio{n}"), "password": PASSWORD});
        assert_eq!(
            app.post_json("/auth/users/", body).await.status(),
            StatusCode::CREATED
        );
    }
    let body = json!({"username": "trio4", "password": PASSWORD});
    assert_eq!(
        b.post_json("/auth/users/", body).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // One instance gone, the others serve.
    drop(a);
    let (access, _) = c.login(&user).await;
    let me = b
        .request(Method::GET, "/auth/users/me/")
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
}

/// SIGTERM: a request the server is working on when the signal arrives still completes, then
/// the process exits 0.
#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
    command
        .current_dir(dir.path())
        .env("TESSERA__LOG__FORMAT", "json")
        // A slow hash keeps the registration in flight while the signal arrives.
        .env("TESSERA__PASSWORDS__MEMORY_KIB", "65536")
        .env("TESSERA__PASSWORDS__ITERATIONS", "16");
    let mut server = ServerProcess::start(command);
    let base = server.base.clone();
    let client = crate::helpers::client();
    let hashing = || async {
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .any(|l| l.starts_with("tessera_password_hashing_in_flight "))
    };
    assert!(!hashing().await, "no password hashed yet in this process");
    // A registration (an argon2 hash) in flight while the signal arrives still completes.
    let in_flight = tokio::spawn({
        let client = client.clone();
        let base = base.clone();
        async move {
            let response = client
                .post(format!("{base}/auth/users/"))
                .json(&json!({"username": "last", "password": PASSWORD}))
                .send()
                .await;
            (response, std::time::Instant::now())
        }
    });
    // The server has the request: its hash has started.
    eventually(
        std::time::Duration::from_secs(10),
        "the registration reached the hasher",
        hashing,
    )
    .await;
    server.terminate();
    let signalled = std::time::Instant::now();
    let (response, answered) = in_flight.await.unwrap();
    assert!(
        answered > signalled,
        "the answer came after the signal: the request was in flight"
    );
    assert_eq!(
        response.unwrap().status(),
        StatusCode::CREATED,
        "the in-flight request finished"
    );
    // Idle keep-alive connections would hold the drain open until server.shutdown_timeout.
    drop(client);
    let exited = server
        .exited_within(std::time::Duration::from_secs(15))
        .await;
    let log = server.log();
    assert_eq!(
        exited.and_then(|s| s.code()),
        Some(0),
        "exited 0 within 15 s: {log}"
    );
    // The server's own order of events: the signal was handled, then the registration answered.
    let events: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let position = |found: &dyn Fn(&serde_json::Value) -> bool| events.iter().position(found);
    let shutdown = position(&|e| {
        e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("shutting down"))
    })
    .unwrap_or_else(|| panic!("no shutdown event: {log}"));
    let registered = position(&|e| {
        e["message"] == "answered" && e["status"] == 201 && e["span"]["path"] == "/auth/users/"
    })
    .unwrap_or_else(|| panic!("no answered registration: {log}"));
    assert!(
        shutdown < registered,
        "the registration was answered after the shutdown began: {log}"
    );
}

/// A PostgreSQL of this test's own (never the machine's shared one), stopped and started at will.
/// It listens on a Unix socket in its own folder only, so no TCP port is picked and raced for.
struct PrivatePostgres {
    dir: tempfile::TempDir,
}

impl PrivatePostgres {
    fn bin(name: &str) -> Option<std::path::PathBuf> {
        let root = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .next()?
            .path();
        Some(root.join("bin").join(name)).filter(|p| p.exists())
    }

    fn as_postgres(args: &[&str]) -> bool {
        std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// None where PostgreSQL's binaries or `runuser` are missing (required under CI=true).
    fn start() -> Option<Self> {
        let initdb = Self::bin("initdb")?;
        let dir = tempfile::tempdir().ok()?;
        std::process::Command::new("chown")
            .args(["postgres", dir.path().to_str()?])
            .status()
            .ok()?;
        let data = dir.path().join("data");
        if !Self::as_postgres(&[
            initdb.to_str()?,
            "-D",
            data.to_str()?,
            "-A",
            "trust",
            "-U",
            "postgres",
        ]) {
            return None;
        }
        let pg = Self { dir };
        pg.up().then_some(pg)
    }

    fn ctl(&self, action: &[&str]) -> bool {
        let Some(pg_ctl) = Self::bin("pg_ctl") else {
            return false;
        };
        let data = self.dir.path().join("data");
        let options = format!(
            "-p {} -k {} -c listen_addresses=",
            Self::PORT,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log");
        let mut args = vec![
            pg_ctl.to_str().unwrap_or(""),
            "-D",
            data.to_str().unwrap_or(""),
            "-w",
        ];
        args.extend_from_slice(action);
        if action[0] == "start" {
            args.extend_from_slice(&["-o", &options, "-l", log.to_str().unwrap_or("")]);
            return Self::as_postgres(&args);
        }
        Self::as_postgres(&args)
    }

    fn up(&self) -> bool {
        self.ctl(&["start"])
    }

    fn down(&self) -> bool {
        self.ctl(&["stop", "-m", "immediate"])
    }

    /// Only names the socket file (`.s.PGSQL.5432`) in the private folder.
    const PORT: u16 = 5432;

    fn url(&self) -> String {
        format!(
            "postgres://postgres@localhost:{}/postgres?host={}",
            Self::PORT,
            self.dir.path().display()
        )
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.down();
    }
}

/// PostgreSQL down: a quick 503 in DRF's shape with Retry-After, never a 500 or a hang; back up:
/// the service recovers by itself and nothing acknowledged was lost.
#[tokio::test]
async fn a_database_outage_answers_503_and_recovers() {
    let Some(pg) = PrivatePostgres::start() else {
        crate::helpers::skip(
            "operations::a_database_outage_answers_503_and_recovers",
            "no private PostgreSQL (PostgreSQL's binaries and runuser)",
        );
        return;
    };
    let url: &'static str = Box::leak(pg.url().into_boxed_str());
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("DATABASE_URL", url),
            ("TESSERA__DATABASE__ACQUIRE_TIMEOUT", "1s"),
        ],
    )
    .await;
    let user = app.register("durable").await;

    assert!(pg.down(), "stopped the private PostgreSQL");
    let started = std::time::Instant::now();
    let response = app
        .post_json(
            "/auth/users/",
            json!({"username": "during", "password": PASSWORD}),
        )
        .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "answered in {:?}",
        started.elapsed()
    );
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"detail": "Service temporarily unavailable, try again later.", "code": "service_unavailable"})
    );
    // Readiness may answer from its last check for a moment; it notices within seconds.
    eventually(
        std::time::Duration::from_secs(5),
        "readiness reports the outage",
        || async {
            app.request(Method::GET, "/health/ready")
                .send()
                .await
                .unwrap()
                .status()
                == StatusCode::SERVICE_UNAVAILABLE
        },
    )
    .await;

    assert!(pg.up(), "restarted the private PostgreSQL");
    let mut recovered = false;
    for _ in 0..30 {
        let response = app
            .post_json(
                "/api/token/",
                json!({"username": user.username, "password": PASSWORD}),
            )
            .await;
        if response.status() == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        recovered,
        "the acknowledged user logs in again after the outage"
    );
}

/// The audit log: JSON events on their own target, with the request's id, peer and User-Agent,
/// and never a password or a token.
#[tokio::test]
async fn audit_events_carry_context_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
    command
        .current_dir(dir.path())
        .env("TESSERA__LOG__FORMAT", "json")
        .env("TESSERA__AUDIT__STORE_IN_SQL", "true")
        .env("TESSERA__LOG__LEVEL", "info")
        .env("TESSERA__PASSWORDS__MEMORY_KIB", "4096")
        .env("TESSERA__PASSWORDS__ITERATIONS", "1");
    let mut server = ServerProcess::start(command);
    let base = server.base.clone();
    let client = crate::helpers::client_builder()
        .user_agent("audit-test-agent")
        .build()
        .unwrap();
    let post = |path: &str, body: serde_json::Value| {
        client.post(format!("{base}{path}")).json(&body).send()
    };
    post(
        "/auth/users/",
        json!({"username": "audited", "password": PASSWORD}),
    )
    .await
    .unwrap();
    post(
        "/api/token/",
        json!({"username": "audited", "password": "wrong-secret-guess"}),
    )
    .await
    .unwrap();
    let pair: serde_json::Value = post(
        "/api/token/",
        json!({"username": "audited", "password": PASSWORD}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let refreshed: serde_json::Value =
        post("/api/token/refresh/", json!({"refresh": pair["refresh"]}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let response = client
        .post(format!("{base}/auth/users/set_password/"))
        .header("X-Request-Id", "audit-request-1")
        .bearer_auth(refreshed["access"].as_str().unwrap())
        .json(&json!({"current_password": PASSWORD, "new_password": "staple battery horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // The last event comes right before the shutdown: it must reach SQL all the same.
    let last = client
        .post(format!("{base}/api/token/"))
        .header("X-Request-Id", "audit-request-last")
        .header("User-Agent", "audit-test-agent")
        .json(&json!({"username": "audited", "password": "one-more-wrong-guess"}))
        .send()
        .await
        .unwrap();
    assert_eq!(last.status(), StatusCode::UNAUTHORIZED);
    drop(client);
    server.terminate();
    assert!(
        server
            .exited_within(std::time::Duration::from_secs(10))
            .await
            .is_some(),
        "exited within 10 s"
    );
    let text = server.log();
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let audit: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["target"] == "tessera::audit")
        .collect();
    for message in [
        "user registered",
        "login failed",
        "login succeeded",
        "refresh token rotated",
        "password changed",
    ] {
        assert!(
            audit.iter().any(|e| e["message"] == message),
            "no `{message}` in {text}"
        );
    }
    // The SQL copy holds the same events with their request context.
    let rows = crate::helpers::server_rows(
        dir.path(),
        "SELECT event, request_id, user_agent FROM audit_events ORDER BY at",
    )
    .await;
    let stored: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get("", "event").unwrap(),
                r.try_get("", "request_id").unwrap(),
                r.try_get("", "user_agent").unwrap(),
            )
        })
        .collect();
    assert!(
        stored.iter().any(|(e, _, _)| e == "login failed"),
        "{stored:?}"
    );
    assert!(
        stored.contains(&(
            "login failed".to_owned(),
            "audit-request-last".to_owned(),
            "audit-test-agent".to_owned()
        )),
        "the event queued just before the shutdown was written: {stored:?}"
    );
    assert!(
        stored.contains(&(
            "password changed".to_owned(),
            "audit-request-1".to_owned(),
            "audit-test-agent".to_owned()
        )),
        "{stored:?}"
    );
    let changed = audit
        .iter()
        .find(|e| e["message"] == "password changed")
        .unwrap();
    assert_eq!(changed["span"]["id"], "audit-request-1", "{changed}");
    assert_eq!(changed["span"]["user_agent"], "audit-test-agent");
    assert_eq!(changed["span"]["peer"], "127.0.0.1");
    for secret in [
        PASSWORD,
        "wrong-secret-guess",
        "staple battery horse",
        pair["access"].as_str().unwrap(),
        pair["refresh"].as_str().unwrap(),
        refreshed["refresh"].as_str().unwrap(),
    ] {
        assert!(!text.contains(secret), "a secret reached the log");
    }
}

/// A redis-server of this test's own, flushed, then killed and restarted empty: revoked tokens stay revoked
/// throughout, and Redis is rebuilt from SQL once it is back.
#[tokio::test]
async fn a_killed_and_restarted_redis_never_lets_a_revoked_token_back() {
    let dir = tempfile::tempdir().unwrap();
    let Some(redis) = crate::helpers::OwnRedis::start(dir.path()) else {
        crate::helpers::skip(
            "operations::a_killed_and_restarted_redis_never_lets_a_revoked_token_back",
            "no redis-server binary",
        );
        return;
    };
    redis.answers().await;
    let url = redis.url();
    let url = url.as_str();
    let app = TestApp::spawn_with(Backend::Sqlite, &[("REDIS_URL", url)]).await;
    let user = app.register("redisfault").await;
    let (access, refresh) = app.login(&user).await;
    assert_eq!(
        app.post_json("/api/token/blacklist/", json!({"refresh": refresh}))
            .await
            .status(),
        StatusCode::OK
    );
    let refused = || async {
        let verify = app
            .post_json("/api/token/verify/", json!({"token": refresh}))
            .await
            .status();
        let me = app
            .request(Method::GET, "/auth/users/me/")
            .bearer_auth(&access)
            .send()
            .await
            .unwrap()
            .status();
        (verify, me)
    };
    assert_eq!(
        refused().await,
        (StatusCode::BAD_REQUEST, StatusCode::UNAUTHORIZED)
    );

    // FLUSHALL: the epoch marker goes with the data, so the loss is noticed and SQL answers.
    redis.cmd(&["FLUSHALL"]).await.unwrap();
    assert_eq!(
        refused().await,
        (StatusCode::BAD_REQUEST, StatusCode::UNAUTHORIZED),
        "flushed: still refused"
    );

    drop(redis);
    // A revocation made during the outage reaches SQL, and Redis after the rebuild.
    let (_, during) = app.login(&user).await;
    assert_eq!(
        app.post_json("/api/token/blacklist/", json!({"refresh": during}))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        refused().await,
        (StatusCode::BAD_REQUEST, StatusCode::UNAUTHORIZED),
        "Redis dead: SQL answers"
    );

    let redis = crate::helpers::OwnRedis::start(dir.path()).unwrap();
    redis.answers().await;
    assert_eq!(
        refused().await,
        (StatusCode::BAD_REQUEST, StatusCode::UNAUTHORIZED),
        "Redis empty: still refused"
    );
    // The rebuild put the revocations back into the new Redis.
    let client = redis::Client::open(url).unwrap();
    let mut rebuilt = false;
    for _ in 0..30 {
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*revoked:*")
            .query_async(&mut conn)
            .await
            .unwrap();
        if keys.len() >= 4 {
            rebuilt = true;
            break;
        }
        refused().await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    drop(redis);
    assert!(
        rebuilt,
        "both revocations (refresh and access JTIs), also the one made during the outage, are in Redis"
    );
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Three redis-server nodes in cluster mode on loopback ports of this test.
struct RedisCluster {
    _nodes: Vec<KillOnDrop>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    /// A cluster on free ports. The ports are picked by binding and releasing them, so another
    /// process may take one first (or its bus port, +10000): a failed start is retried on new
    /// ports.
    fn start() -> Option<Self> {
        (0..3).find_map(|_| Self::try_start())
    }

    fn try_start() -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let ports: Vec<u16> = (0..3)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0").map(|l| l.local_addr().map(|a| a.port()))
            })
            .collect::<Result<Result<_, _>, _>>()
            .ok()?
            .ok()?;
        let mut nodes = Vec::new();
        for port in &ports {
            let child = std::process::Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                ])
                .args([
                    "--cluster-config-file",
                    &format!("nodes-{port}.conf"),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .current_dir(dir.path())
                .stdout(std::process::Stdio::null())
                .spawn()
                .ok()?;
            nodes.push(KillOnDrop(child));
        }
        let answers = |port: &u16| {
            std::process::Command::new("redis-cli")
                .args(["-p", &port.to_string(), "ping"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !ports.iter().all(answers) {
            if std::time::Instant::now() > deadline
                || nodes
                    .iter_mut()
                    .any(|n| n.0.try_wait().ok().flatten().is_some())
            {
                return None; // a node died (its port was taken) or never answered
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = std::process::Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        if !created.success() {
            return None;
        }
        for _ in 0..50 {
            let info = std::process::Command::new("redis-cli")
                .args(["-p", &ports[0].to_string(), "cluster", "info"])
                .output()
                .ok()?;
            if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                return Some(Self {
                    _nodes: nodes,
                    ports,
                    _dir: dir,
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        None
    }

    fn nodes(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Revocation and throttling against a 3-node Redis Cluster.
#[tokio::test]
async fn revocation_and_throttles_work_on_a_redis_cluster() {
    let Some(cluster) = RedisCluster::start() else {
        crate::helpers::skip(
            "operations::revocation_and_throttles_work_on_a_redis_cluster",
            "no local Redis Cluster (redis-server, redis-cli)",
        );
        return;
    };
    let nodes: &'static str = Box::leak(cluster.nodes().into_boxed_str());
    let settings = [
        ("TESSERA__REDIS__CLUSTER_NODES", nodes),
        ("TESSERA__THROTTLE__ENABLED", "true"),
        // Blacklist, verify and the refused `me` below are anonymous too: 3 of the 6 go there.
        ("TESSERA__THROTTLE__ANON", "6/min"),
        ("TESSERA__THROTTLE__SCOPES__REGISTER", "100/min"),
        ("TESSERA__THROTTLE__SCOPES__LOGIN", "100/min"),
        ("TESSERA__REDIS__KEY_PREFIX", "cluster-test:"),
    ];
    let a = TestApp::spawn_with(Backend::Sqlite, &settings).await;
    let user = a.register("clustered").await;
    let (access, refresh) = a.login(&user).await;
    assert_eq!(
        a.post_json("/api/token/blacklist/", json!({"refresh": refresh}))
            .await
            .status(),
        StatusCode::OK
    );
    let verify = a
        .post_json("/api/token/verify/", json!({"token": refresh}))
        .await;
    assert_eq!(verify.status(), StatusCode::BAD_REQUEST);
    let me = a
        .request(Method::GET, "/auth/users/me/")
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    // The revocation keys share one hash tag, so the check's MGET is a single-slot command.
    let client =
        redis::cluster::ClusterClient::new(cluster.nodes().split(',').collect::<Vec<_>>()).unwrap();
    let mut conn = client.get_async_connection().await.unwrap();
    let epoch: Option<i64> = redis::cmd("GET")
        .arg("{cluster-test:}epoch")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        epoch.is_some(),
        "Tessera wrote its epoch marker into the cluster"
    );

    let b = TestApp::spawn_with(Backend::Sqlite, &settings).await;
    let anon = |app: &TestApp| app.request(Method::GET, "/auth/users/me/").send();
    let statuses = [
        anon(&a).await.unwrap().status(),
        anon(&b).await.unwrap().status(),
        anon(&a).await.unwrap().status(),
    ];
    assert!(
        statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert_eq!(
        anon(&b).await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS,
        "counts shared through the cluster"
    );
}

/// With `server.metrics_bind`, /metrics lives only on its own address.
#[tokio::test]
async fn metrics_can_have_an_address_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let settings = tessera::Settings::load_from(
        [
            (
                "DATABASE_URL".to_string(),
                format!("sqlite://{}/t.db", dir.path().display()),
            ),
            (
                "TESSERA__SERVER__BIND".to_string(),
                "127.0.0.1:0".to_string(),
            ),
            (
                "TESSERA__SERVER__METRICS_BIND".to_string(),
                "127.0.0.1:0".to_string(),
            ),
        ]
        .into(),
    )
    .unwrap();
    let app = tessera::Application::build(settings).await.unwrap();
    let (api, metrics) = (app.local_addr().unwrap(), app.metrics_addr().unwrap());
    tokio::spawn(app.run_until(std::future::pending()));
    let client = crate::helpers::client();
    let on_api = client
        .get(format!("http://{api}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(on_api.status(), StatusCode::NOT_FOUND);
    let own = client
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    assert!(own.text().await.unwrap().contains("tessera_build_info"));
}

/// The server asks the kernel for ordinary pages: with transparent huge pages on, every 2 MiB
/// stretch of heap it touched stayed resident whole (docs/performance.md, idle memory).
#[tokio::test]
async fn the_server_runs_without_transparent_huge_pages() {
    let flag = |status: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("THP_enabled:"))
            .map(|v| v.trim().to_owned())
    };
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let Some(inherited) = flag(&own) else {
        // A kernel that does not show the flag: nothing to read.
        return;
    };
    // The server inherits this process's flag, so its own must differ to prove anything.
    assert_eq!(inherited, "1", "the test runs with the kernel's default");
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
    command.current_dir(dir.path());
    let server = ServerProcess::start(command);
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    assert_eq!(flag(&status).as_deref(), Some("0"));
}

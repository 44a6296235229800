//! Test harness: an app per test on 127.0.0.1:0, on SQLite (always) and PostgreSQL (when
//! reachable; required under CI=true), each with a fresh database.
use std::{
    collections::HashMap,
    io::Write,
    sync::{
        OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};

pub use crate::forge::forge;
use sea_orm::{ConnectionTrait, Database};
use serde_json::Value;
use tessera::{Application, Settings, domain::users::Registration};
use tokio::sync::oneshot;
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery";
/// The HMAC key test apps sign with, so tests can forge tokens.
pub const SIGNING_KEY: &str = "tessera-test-signing-key-0123456789abcdef";

/// Where a test app keeps its data.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one `#[tokio::test]` per backend for each named `async fn(Backend)`.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::helpers::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() {
                   if $crate::helpers::postgres_available().await {
                       super::$name($crate::helpers::Backend::Postgres).await
                   } else {
                       $crate::helpers::skip(
                           concat!(module_path!(), "::", stringify!($name)),
                           "PostgreSQL or Redis unreachable",
                       );
                   }
               } )*
        }
    };
}

fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

/// Whether the PostgreSQL+Redis backend runs; under `CI=true` an unreachable server fails the test.
pub async fn postgres_available() -> bool {
    static REACHABLE: OnceLock<bool> = OnceLock::new();
    if let Some(r) = REACHABLE.get() {
        return *r;
    }
    let postgres = match Database::connect(admin_url()).await {
        Ok(db) => db.execute_unprepared("SELECT 1").await.is_ok(),
        Err(_) => false,
    };
    let redis = match redis::Client::open(redis_url()) {
        Ok(client) => match client.get_multiplexed_async_connection().await {
            Ok(mut conn) => redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .is_ok(),
            Err(_) => false,
        },
        Err(_) => false,
    };
    let reachable = postgres && redis;
    if !reachable && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true but PostgreSQL ({}) or Redis ({}) is unreachable",
            admin_url(),
            redis_url()
        );
    }
    *REACHABLE.get_or_init(|| reachable)
}

/// How many tests of this run skipped their checks (see [`skip`]).
static SKIPPED: AtomicUsize = AtomicUsize::new(0);

/// Records that `test` checked nothing because `reason`: under `CI=true` that fails the test;
/// elsewhere one line goes straight to the terminal's stderr (past libtest's output capture, so
/// a passing run still shows it) with the running count of skips. Such a test reports "ok" but
/// asserted nothing: count the SKIPPED lines before trusting a local run.
pub fn skip(test: &str, reason: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true: {test} may not be skipped ({reason})"
    );
    let test = test.strip_prefix("api::").unwrap_or(test);
    let n = SKIPPED.fetch_add(1, Ordering::SeqCst) + 1;
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED (#{n} in this run) {test}: {reason}; it checked nothing (set CI=true to make this an error)"
    );
}

/// A fresh PostgreSQL database for one test app; leftovers of dead test runs are dropped.
pub async fn fresh_postgres_database() -> String {
    let admin = Database::connect(admin_url())
        .await
        .expect("postgres admin connection");
    static SWEPT: OnceLock<()> = OnceLock::new();
    if SWEPT.set(()).is_ok() {
        let rows = admin
            .query_all_raw(sea_orm::Statement::from_string(
                admin.get_database_backend(),
                "SELECT datname FROM pg_database WHERE datname LIKE 'tessera_t_%'",
            ))
            .await
            .unwrap_or_default();
        for row in rows {
            let name: String = row.try_get("", "datname").unwrap_or_default();
            let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
                let _ = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
            }
        }
    }
    let name = format!(
        "tessera_t_{}_{}",
        std::process::id(),
        Uuid::new_v4().simple()
    );
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create test database");
    let base = admin_url();
    let server = &base[..base.rfind('/').expect("database url has a path")];
    format!("{server}/{name}")
}

/// An HTTP client for tests. reqwest here has no TLS provider of its own (the kit's JWKS
/// client takes the process's), so ring's is installed first.
pub fn client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
}

pub fn client() -> Client {
    client_builder().build().expect("http client")
}

/// A running app and a client for it.
pub struct TestApp {
    pub base: String,
    /// The Redis key prefix of this app (PostgreSQL+Redis backend only).
    pub redis_prefix: Option<String>,
    pub client: Client,
    pub app_state: tessera::AppState,
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, &[]).await
    }

    /// Starts an app with extra `TESSERA__...` settings.
    pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> Self {
        Self::try_spawn_with(backend, extra)
            .await
            .unwrap_or_else(|e| panic!("app starts: {e}"))
    }

    /// Like [`TestApp::spawn_with`], with the reason the app refused to start as the error.
    pub async fn try_spawn_with(backend: Backend, extra: &[(&str, &str)]) -> Result<Self, String> {
        let dir = tempfile::tempdir().unwrap();
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}/tessera.db", dir.path().display()),
            Backend::Postgres => fresh_postgres_database().await,
        };
        let redis_prefix = matches!(backend, Backend::Postgres)
            .then(|| format!("tessera-test:{}:", Uuid::new_v4().simple()));
        let mut env: HashMap<String, String> = HashMap::from([
            ("TESSERA__SERVER__BIND".into(), "127.0.0.1:0".into()),
            ("DATABASE_URL".into(), database_url),
            // Cheaper hashing keeps the suite fast; the cost is a setting like any other.
            ("TESSERA__PASSWORDS__MEMORY_KIB".into(), "4096".into()),
            ("TESSERA__PASSWORDS__ITERATIONS".into(), "1".into()),
        ]);
        if let Some(prefix) = &redis_prefix {
            env.insert("REDIS_URL".into(), redis_url());
            env.insert("TESSERA__REDIS__KEY_PREFIX".into(), prefix.clone());
        }
        // Tests authenticate with Basic credentials (TestUser::auth); the default (off) is tested
        // in attacks/basic_auth_is_no_password_oracle.rs.
        env.insert("TESSERA__AUTH__BASIC".into(), "true".into());
        // Throttles and lockouts are tested on their own (tests/api/throttle.rs).
        env.insert("TESSERA__THROTTLE__ENABLED".into(), "false".into());
        env.insert("TESSERA__THROTTLE__LOCKOUT_FAILURES".into(), "0".into());
        // Mail goes to files in the test's own folder unless a test says otherwise.
        env.insert(
            "TESSERA__EMAIL__FILE_PATH".into(),
            dir.path().join("mail").display().to_string(),
        );
        if !extra
            .iter()
            .any(|(k, _)| *k == "TESSERA__JWT__SIGNING_KEY_FILE")
        {
            env.insert("TESSERA__JWT__SIGNING_KEY".into(), SIGNING_KEY.into());
        }
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let settings = Settings::load_from(env).expect("test settings");
        let app = Application::build(settings)
            .await
            .map_err(|e| e.to_string())?;
        let addr = app.local_addr().expect("bound address");
        let app_state = app.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            base: format!("http://{addr}"),
            redis_prefix,
            client: client(),
            app_state,
            _dir: dir,
            _stop: stop,
        })
    }

    /// `count` instances on one PostgreSQL database and one Redis key prefix, as a deployment
    /// runs them; `extra` settings for all.
    pub async fn spawn_instances(count: usize, extra: &[(&str, &str)]) -> Vec<Self> {
        let first = Self::spawn_with(Backend::Postgres, extra).await;
        let url =
            secrecy::ExposeSecret::expose_secret(&first.app_state.settings.database.url).to_owned();
        let prefix = first.redis_prefix.clone().expect("a Redis prefix");
        let mut shared: Vec<(&str, &str)> = extra.to_vec();
        shared.push(("DATABASE_URL", &url));
        shared.push(("TESSERA__REDIS__KEY_PREFIX", &prefix));
        let mut all = vec![first];
        for _ in 1..count {
            let mut next = Self::spawn_with(Backend::Postgres, &shared).await;
            next.redis_prefix = Some(prefix.clone());
            all.push(next);
        }
        all
    }

    /// Whether this instance answers revocation checks from memory now.
    pub fn memory_trusted(&self) -> bool {
        self.app_state
            .memory
            .as_ref()
            .is_some_and(|m| m.is_trusted())
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.base, path))
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Registers a user through the API; names are unique per call.
    pub async fn register(&self, prefix: &str) -> TestUser {
        let username = format!("{prefix}{}", &Uuid::new_v4().simple().to_string()[..8]);
        let response = self
            .post_json("/auth/users/", serde_json::json!({"username": username, "password": PASSWORD, "email": format!("{username}@example.com")}))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{}",
            response.text().await.unwrap()
        );
        let body: Value = response.json().await.unwrap();
        TestUser {
            // A UUID string, or a number under `accounts.user_id = "integer"`.
            id: match &body["id"] {
                Value::String(id) => id.clone(),
                other => other.as_i64().expect("an id").to_string(),
            },
            username,
            password: PASSWORD.into(),
        }
    }

    /// Creates a staff user directly through the service (no public API makes staff).
    pub async fn staff(&self) -> TestUser {
        let username = format!("admin{}", &Uuid::new_v4().simple().to_string()[..8]);
        let user = self
            .app_state
            .users
            .register(Registration {
                username: username.clone(),
                email: String::new(),
                password: PASSWORD.into(),
                is_staff: true,
                is_superuser: true,
                is_active: true,
            })
            .await
            .unwrap();
        TestUser {
            id: user.id.to_string(),
            username,
            password: PASSWORD.into(),
        }
    }
}

impl TestApp {
    /// Runs the `tessera` binary with `args` and `env` against this app's database (and its
    /// Redis, under its prefix), as an operator would on the same deployment.
    pub fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "DATABASE_URL",
                secrecy::ExposeSecret::expose_secret(&self.app_state.settings.database.url),
            )
            .env("TESSERA__JWT__SIGNING_KEY", SIGNING_KEY)
            .env("TESSERA__LOG__LEVEL", "warn")
            .envs(env.iter().copied())
            .args(args);
        if let Some(prefix) = &self.redis_prefix {
            cmd.env("REDIS_URL", redis_url())
                .env("TESSERA__REDIS__KEY_PREFIX", prefix);
        }
        cmd.output().unwrap()
    }

    /// A user written straight into the store with `password_hash` as it is, as an import of a
    /// Django project's users table would (no validation, no hashing). The password is
    /// [`PASSWORD`], which is what the Django vectors the tests use were made from.
    pub async fn imported(&self, prefix: &str, password_hash: &str) -> TestUser {
        use tessera::domain::users::{Numbering, User, UserStore};
        let username = format!("{prefix}{}", &Uuid::new_v4().simple().to_string()[..8]);
        let user = User {
            id: Uuid::now_v7(),
            username: username.clone(),
            email: format!("{username}@example.com"),
            password_hash: password_hash.to_owned(),
            first_name: String::new(),
            last_name: String::new(),
            is_active: true,
            is_staff: false,
            is_superuser: false,
            date_joined: chrono::Utc::now(),
            last_login: None,
            credential_version: 0,
            number: 0,
        };
        tessera::store::users::SqlUserStore::new(self.app_state.database.clone())
            .insert(&user, Numbering::Next)
            .await
            .unwrap();
        TestUser {
            id: user.id.to_string(),
            username,
            password: PASSWORD.into(),
        }
    }
}

impl TestApp {
    /// Logs in through `/api/token/`; returns (access, refresh).
    pub async fn login(&self, user: &TestUser) -> (String, String) {
        let (status, body) = answer(
            self.post_json(
                "/api/token/",
                serde_json::json!({"username": user.username, "password": user.password}),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (
            body["access"].as_str().unwrap().to_owned(),
            body["refresh"].as_str().unwrap().to_owned(),
        )
    }

    /// Puts `username` into group `name` (created if needed) through the staff API.
    pub async fn add_to_group(&self, username: &str, name: &str) {
        let admin = self.staff().await;
        let create = admin.auth(self.request(Method::POST, "/auth/groups/"));
        create
            .json(&serde_json::json!({"name": name}))
            .send()
            .await
            .unwrap();
        let path = format!("/auth/groups/{name}/users/");
        let add = admin.auth(self.request(Method::POST, &path));
        let body = serde_json::json!({"username": username});
        let response = add.json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }

    /// The password hash stored for `username`, read straight from SQL (no cache, no service).
    pub async fn stored_password_hash(&self, username: &str) -> String {
        assert!(username.bytes().all(|b| b.is_ascii_alphanumeric()));
        let db = &self.app_state.database;
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                format!("SELECT password FROM users WHERE username = '{username}'"),
            ))
            .await
            .unwrap()
            .expect("the user exists");
        row.try_get("", "password").unwrap()
    }

    /// A connection to this app's Redis (PostgreSQL+Redis backend only).
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        assert!(self.redis_prefix.is_some(), "this app has no Redis");
        let client = redis::Client::open(redis_url()).unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    }

    /// This app's Redis keys, sorted, without the app's prefix.
    pub async fn redis_keys(&self) -> Vec<String> {
        let prefix = self.redis_prefix.as_deref().expect("this app has no Redis");
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut self.redis().await)
            .await
            .unwrap();
        keys.sort();
        keys.into_iter()
            .map(|k| k[prefix.len()..].to_owned())
            .collect()
    }

    /// Deletes this app's Redis keys, as a FLUSHALL or a restart without persistence would.
    pub async fn flush_redis(&self) {
        let Some(prefix) = &self.redis_prefix else {
            return;
        };
        let client = redis::Client::open(redis_url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            redis::cmd("DEL")
                .arg(keys)
                .query_async::<()>(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// A user the test created, with its password.
pub struct TestUser {
    pub id: String,
    pub username: String,
    pub password: String,
}

impl TestUser {
    /// Adds this user's Basic credentials to a request.
    pub fn auth(&self, rb: RequestBuilder) -> RequestBuilder {
        rb.basic_auth(&self.username, Some(&self.password))
    }
}

/// Status and JSON body of a response.
pub async fn answer(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// `POST path` with a JSON body, anonymously.
pub async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    answer(app.post_json(path, body).await).await
}

/// `GET /auth/users/me/` with this `Authorization` header.
pub async fn me(app: &TestApp, authorization: &str) -> (StatusCode, Value) {
    answer(
        app.request(Method::GET, "/auth/users/me/")
            .header("Authorization", authorization)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// A request as `who` (Basic credentials), with an optional JSON body.
pub async fn call(
    app: &TestApp,
    who: &TestUser,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = who.auth(app.request(method, path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    answer(request.send().await.unwrap()).await
}

/// The path of a test key file in tests/api/keys.
pub fn key(name: &str) -> String {
    format!("{}/tests/api/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Polls `check` every 50 ms until it holds; fails after `within`.
pub async fn eventually<F, Fut>(within: std::time::Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The `tessera` binary serving in a child process on a port it picked itself (bind
/// 127.0.0.1:0, address read from its "serving" log line: no port is released and reused), with
/// its stderr collected. Killed when dropped.
pub struct ServerProcess {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ServerProcess {
    /// Runs `command` (the tessera binary with its settings) on 127.0.0.1:0 and waits (at most
    /// 30 s) for it to serve. The log level is `info` unless the command sets one.
    pub fn start(mut command: std::process::Command) -> Self {
        use std::io::BufRead;
        command
            .env("TESSERA__SERVER__BIND", "127.0.0.1:0")
            .stderr(std::process::Stdio::piped());
        if !command.get_envs().any(|(k, _)| k == "TESSERA__LOG__LEVEL") {
            command.env("TESSERA__LOG__LEVEL", "info");
        }
        let mut child = command.spawn().expect("the tessera binary starts");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (found, address) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn({
            let log = log.clone();
            move || {
                let mut found = Some(found);
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("serving; docs at http://") {
                        let start = line.find("http://").unwrap() + "http://".len();
                        let len = line[start..].find("/docs").unwrap_or(0);
                        if let Some(sender) = found.take() {
                            let _ = sender.send(line[start..start + len].to_owned());
                        }
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let addr = match address.recv_timeout(std::time::Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(e) => {
                let _ = child.kill();
                panic!(
                    "tessera did not report serving ({e}): {}",
                    log.lock().unwrap()
                );
            }
        };
        Self {
            child,
            base: format!("http://{addr}"),
            log,
            reader: Some(reader),
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM");
    }

    /// The exit status, if the process exits within `within`.
    pub async fn exited_within(
        &mut self,
        within: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Its stderr so far; once it has exited, all of it.
    pub fn log(&mut self) -> String {
        if self.child.try_wait().unwrap().is_some()
            && let Some(reader) = self.reader.take()
        {
            let _ = reader.join();
        }
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis of a test's own, on a Unix socket in `dir` (no TCP port to pick and race for), so
/// killing its clients or the server itself touches no other test. Killed when dropped; starting
/// it again on the same `dir` gives the same URL, empty.
pub struct OwnRedis {
    child: std::process::Child,
    socket: String,
}

impl OwnRedis {
    /// None when there is no `redis-server` binary.
    pub fn start(dir: &std::path::Path) -> Option<Self> {
        let socket = dir.join("redis.sock").display().to_string();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--unixsocket",
                &socket,
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        Some(Self { child, socket })
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket)
    }

    /// One command on a fresh connection.
    pub async fn cmd(&self, args: &[&str]) -> redis::RedisResult<redis::Value> {
        let client = redis::Client::open(self.url())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut conn).await
    }

    /// Waits (at most 10 s) until it answers PING.
    pub async fn answers(&self) {
        eventually(
            std::time::Duration::from_secs(10),
            "redis-server answers",
            || async { self.cmd(&["PING"]).await.is_ok() },
        )
        .await;
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The rows `sql` selects from the SQLite database of a server process started in `dir` (its
/// default `data/tessera.db`).
pub async fn server_rows(dir: &std::path::Path, sql: &str) -> Vec<sea_orm::QueryResult> {
    let db = sea_orm::Database::connect(format!("sqlite://{}/data/tessera.db", dir.display()))
        .await
        .unwrap();
    sea_orm::ConnectionTrait::query_all_raw(
        &db,
        sea_orm::Statement::from_string(sea_orm::DatabaseBackend::Sqlite, sql),
    )
    .await
    .unwrap()
}

/// The text of `GET {base}/metrics`, checked to be Prometheus' text format.
pub async fn metrics(client: &reqwest::Client, base: &str) -> String {
    let response = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    response.text().await.unwrap()
}

/// The value of the series `name` whose labels include every one of `labels`; 0 when absent.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

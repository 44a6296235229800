//! The real Python stack (PyJWT, DRF + SimpleJWT) accepts Tessera's tokens, and the downstream
//! examples of docs/tokens.md run as written. Runs when `TESSERA_INTEROP_PYTHON` names a Python with
//! django, djangorestframework, djangorestframework-simplejwt, pyjwt and cryptography (`.ci/run`
//! makes one); required under `CI=true`.
use std::process::{Command, Output};

use crate::helpers::{Backend, PASSWORD, SIGNING_KEY, TestApp};

on_every_backend!(a_project_made_by_real_django_moves_to_tessera_unchanged);

fn interop_python(test: &str) -> Option<String> {
    let python = std::env::var("TESSERA_INTEROP_PYTHON").ok();
    if python.is_none() {
        crate::helpers::skip(test, "TESSERA_INTEROP_PYTHON unset");
    }
    python
}

fn interop_script(name: &str) -> String {
    format!("{}/tests/interop/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn run(python: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(python);
    command.args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn succeeded(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The code block under `<!-- doc-test: NAME -->` in docs/tokens.md.
fn readme_block(name: &str) -> String {
    let readme = include_str!("../../docs/tokens.md");
    let marker = format!("<!-- doc-test: {name} -->\n```python\n");
    let start = readme.find(&marker).expect("README block") + marker.len();
    let len = readme[start..].find("\n```").expect("closed block");
    readme[start..start + len].to_owned()
}

#[tokio::test]
async fn simplejwt_and_pyjwt_accept_tessera_access_tokens_and_refuse_refresh_tokens() {
    let Some(python) = interop_python(
        "interop::simplejwt_and_pyjwt_accept_tessera_access_tokens_and_refuse_refresh_tokens",
    ) else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = app.register("py").await;
    let (access, refresh) = app.login(&user).await;
    let script = interop_script("simplejwt_accepts_tessera_tokens.py");
    let out = run(&python, &[&script, SIGNING_KEY, &access, &refresh], &[]);
    assert!(succeeded(&out).contains("interop ok"));
}

// Multi-threaded: the Python process blocks one worker while the app answers its JWKS fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_downstream_examples_run_as_written() {
    let Some(python) = interop_python("interop::the_readme_downstream_examples_run_as_written")
    else {
        return;
    };
    let claims = [
        ("TESSERA__JWT__CLAIMS__GROUPS", "true"),
        ("TESSERA__JWT__CLAIMS__USERNAME", "true"),
    ];
    let drf = interop_script("drf_runs_readme_settings.py");

    // HS256 with the shared key: PyJWT, DRF, the group permission.
    let app = TestApp::spawn_with(Backend::Sqlite, &claims).await;
    let member = app.register("member").await;
    let outsider = app.register("outsider").await;
    app.add_to_group(&member.username, "manager").await;
    let (access, refresh) = app.login(&member).await;
    let (outsider_access, _) = app.login(&outsider).await;
    let pyjwt = readme_block("pyjwt-hmac");
    let key = ("TESSERA_SIGNING_KEY", SIGNING_KEY);
    let out = succeeded(&run(&python, &["-c", &pyjwt], &[key, ("TOKEN", &access)]));
    assert_eq!(out.trim(), format!("{} ['manager']", member.id));
    let refused = run(&python, &["-c", &pyjwt], &[key, ("TOKEN", &refresh)]);
    assert!(failed(&refused).contains("Token has wrong type"));
    let signature = outsider_access.rsplit('.').next().unwrap();
    let tampered = format!("{}.{signature}", access.rsplit_once('.').unwrap().0);
    let refused = run(&python, &["-c", &pyjwt], &[key, ("TOKEN", &tampered)]);
    assert!(failed(&refused).contains("Signature verification failed"));
    let tokens = [
        ("TOKEN", access.as_str()),
        ("REFRESH_TOKEN", &refresh),
        ("OUTSIDER_TOKEN", &outsider_access),
    ];
    let settings = readme_block("drf-hmac");
    let permission = readme_block("drf-group-permission");
    let out = run(
        &python,
        &[&drf, &settings, &permission],
        &[&tokens[..], &[key]].concat(),
    );
    let out = succeeded(&out);
    assert!(out.contains(&format!("admitted {} {}", member.id, member.username)));
    assert!(out.contains("group permission ok"), "{out}");

    // RS256 and EdDSA from the JWKS: PyJWT's PyJWKClient and SimpleJWT's JWK_URL.
    for (algorithm, signing_key) in [("RS256", "rsa1.pem"), ("EdDSA", "ed1.pem")] {
        let signing_key = format!(
            "{}/tests/api/keys/{signing_key}",
            env!("CARGO_MANIFEST_DIR")
        );
        let app = TestApp::spawn_with(
            Backend::Sqlite,
            &[
                ("TESSERA__JWT__ALGORITHM", algorithm),
                ("TESSERA__JWT__SIGNING_KEY_FILE", &signing_key),
                claims[0],
            ],
        )
        .await;
        let user = app.register("jwks").await;
        let (access, refresh) = app.login(&user).await;
        let url = format!("{}/.well-known/jwks.json", app.base);
        let jwks = [
            ("TESSERA_JWKS_URL", url.as_str()),
            ("TESSERA_ALGORITHM", algorithm),
        ];
        let pyjwt = readme_block("pyjwt-jwks");
        let out = run(
            &python,
            &["-c", &pyjwt],
            &[&jwks[..], &[("TOKEN", &access)]].concat(),
        );
        assert_eq!(
            succeeded(&out).trim(),
            format!("{} []", user.id),
            "{algorithm}"
        );
        let refused = run(
            &python,
            &["-c", &pyjwt],
            &[&jwks[..], &[("TOKEN", &refresh)]].concat(),
        );
        assert!(
            failed(&refused).contains("Token has wrong type"),
            "{algorithm}"
        );
        let settings = readme_block("drf-jwks");
        let env = [("TOKEN", access.as_str()), ("REFRESH_TOKEN", &refresh)];
        let out = run(&python, &[&drf, &settings], &[&env[..], &jwks[..]].concat());
        assert!(succeeded(&out).contains("drf ok"), "{algorithm}");
    }
}

/// The cutover, end to end: a project made by Django, DRF and SimpleJWT is imported; its users
/// log in with their old passwords, its DRF key and refresh tokens keep working (the blacklisted
/// one stays refused), and a DRF service verifying offline sees the same integer ids.
async fn a_project_made_by_real_django_moves_to_tessera_unchanged(backend: Backend) {
    use reqwest::StatusCode;
    use serde_json::{Value, json};
    let Some(python) =
        interop_python("interop::a_project_made_by_real_django_moves_to_tessera_unchanged")
    else {
        return;
    };
    let script = interop_script("django_project.py");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("django.sqlite3").display().to_string();
    let made: Value = serde_json::from_str(&succeeded(&run(
        &python,
        &[&script, "create", &db, SIGNING_KEY],
        &[],
    )))
    .unwrap();
    let app = TestApp::spawn_with(backend, &[("TESSERA__ACCOUNTS__USER_ID", "integer")]).await;
    let source = format!("sqlite://{db}");
    let report = crate::django_import::import_django(&app, &["--from", &source]);
    assert!(
        report.contains("users: created 3, updated 0, unchanged 0, skipped 0"),
        "{report}"
    );

    for name in ["alice", "bob", "carol"] {
        let (status, pair) = crate::helpers::post(
            &app,
            "/api/token/",
            json!({"username": name, "password": PASSWORD}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{name}: {pair}");
        assert!(
            app.stored_password_hash(name)
                .await
                .starts_with("$argon2id$"),
            "{name}"
        );
        let id = made["users"][name]["id"].as_i64().unwrap().to_string();
        let access = pair["access"].as_str().unwrap();
        let verify = interop_script("django_project.py");
        let out = succeeded(&run(
            &python,
            &[&verify, "verify", SIGNING_KEY, access, &id],
            &[],
        ));
        assert!(out.contains("ok"), "{out}");
    }
    let key = made["key"].as_str().unwrap();
    let (status, me) = crate::helpers::me(&app, &format!("Token {key}")).await;
    assert_eq!(
        (status, me["username"].clone()),
        (StatusCode::OK, json!("alice"))
    );
    assert_eq!(me["id"], made["users"]["alice"]["id"]);
    let live = made["live_refresh"].as_str().unwrap();
    let (status, body) =
        crate::helpers::post(&app, "/api/token/refresh/", json!({"refresh": live})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let blacklisted = made["blacklisted_refresh"].as_str().unwrap();
    let (status, body) =
        crate::helpers::post(&app, "/api/token/refresh/", json!({"refresh": blacklisted})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let again = crate::django_import::import_django(&app, &["--from", &source]);
    for line in [
        "users: created 0, updated 0, unchanged 3, skipped 0",
        "groups: created 0, updated 0, unchanged 1, skipped 0",
        "token keys: created 0, updated 0, unchanged 1, skipped 0",
        "refresh tokens: created 0, updated 0, unchanged 2, skipped 0",
    ] {
        assert!(again.contains(line), "{again}");
    }
}

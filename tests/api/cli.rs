//! The `tessera` binary: settings errors and the management commands.
use std::process::Command;

use reqwest::StatusCode;

fn tessera(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TESSERA__PASSWORDS__MEMORY_KIB", "4096")
        .env("TESSERA__PASSWORDS__ITERATIONS", "1");
    cmd
}

#[test]
fn invalid_settings_stop_the_start_with_a_message_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(dir.path())
        .env("TESSERA__SERVER__BIND", "nowhere")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.bind"), "{stderr}");
    let out = tessera(dir.path())
        .env("TESSERA__PASSWORDS__WORKRES", "2")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("workres"));
}

#[test]
fn migrate_creates_the_embedded_database_relative_to_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(dir.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("data/tessera.db").exists());
}

#[tokio::test]
async fn createsuperuser_without_input_makes_a_staff_user_that_can_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(dir.path())
        .args([
            "createsuperuser",
            "--username",
            "root",
            "--email",
            "root@example.com",
            "--no-input",
        ])
        .env("TESSERA_SUPERUSER_PASSWORD", "correct horse battery")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tessera(dir.path())
        .args(["createsuperuser", "--username", "ROOT", "--no-input"])
        .env("TESSERA_SUPERUSER_PASSWORD", "correct horse battery")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = tessera(dir.path())
        .args(["createsuperuser", "--username", "weak", "--no-input"])
        .env("TESSERA_SUPERUSER_PASSWORD", "123")
        .output()
        .unwrap();
    assert!(!out.status.success(), "weak passwords are refused");

    // drf_create_token: the same key until -r replaces it.
    let token = |args: &[&str]| {
        let out = tessera(dir.path())
            .arg("create-token")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(2)
            .unwrap()
            .to_owned()
    };
    let key = token(&["root"]);
    assert_eq!(key.len(), 40);
    assert_eq!(token(&["root"]), key);
    let reset = token(&["root", "-r"]);
    assert_ne!(reset, key);

    // Serve the same database and list users as the superuser.
    let url = format!("sqlite://{}/data/tessera.db", dir.path().display());
    let settings = tessera::Settings::load_from(
        [
            ("DATABASE_URL".to_string(), url),
            (
                "TESSERA__SERVER__BIND".to_string(),
                "127.0.0.1:0".to_string(),
            ),
        ]
        .into(),
    )
    .unwrap();
    let app = tessera::Application::build(settings).await.unwrap();
    let base = format!("http://{}", app.local_addr().unwrap());
    tokio::spawn(app.run_until(std::future::pending()));
    let response = crate::helpers::client()
        .get(format!("{base}/auth/users/"))
        .basic_auth("root", Some("correct horse battery"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let users: serde_json::Value = response.json().await.unwrap();
    assert_eq!(users.as_array().unwrap().len(), 1);
    let response = crate::helpers::client()
        .get(format!("{base}/auth/users/me/"))
        .header("Authorization", format!("Token {reset}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the CLI's key authenticates"
    );
}

#[test]
fn openapi_command_prints_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(dir.path()).arg("openapi").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        tessera::http::openapi_json().trim_end()
    );
}

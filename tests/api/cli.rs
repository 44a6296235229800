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
fn a_published_placeholder_signing_key_or_an_endless_duration_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    // The key the old docker-compose.yml fell back to: long enough, but public.
    let out = tessera(dir.path())
        .env("TESSERA__SERVER__BIND", "127.0.0.1:0")
        .env(
            "TESSERA__JWT__SIGNING_KEY",
            "change-me-change-me-change-me-change-me",
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("placeholder"), "{stderr}");
    assert!(stderr.contains("jwt.signing_key"), "{stderr}");
    let out = tessera(dir.path())
        .env("TESSERA__JWT__REFRESH_TOKEN_LIFETIME", "300000y")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("jwt.refresh_token_lifetime"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
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
    // It holds password hashes: owner only, the folder Tessera made too.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        std::fs::metadata(dir.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("data/tessera.db"), 0o600);
    assert_eq!(mode("data"), 0o700);
    // A file left readable by others (an older version made it so) is tightened.
    let db = dir.path().join("data/tessera.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = tessera(dir.path()).arg("migrate").output().unwrap();
    assert!(out.status.success());
    assert_eq!(mode("data/tessera.db"), 0o600);
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
            ("TESSERA__AUTH__BASIC".to_string(), "true".to_string()),
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

on_every_backend!(group_commands_manage_groups_and_members_as_the_operator);

/// Runs `tessera group ARGS` against `app`'s database: (success, stdout, the `tessera:` line).
fn group(app: &crate::helpers::TestApp, args: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(dir.path())
        .env(
            "DATABASE_URL",
            secrecy::ExposeSecret::expose_secret(&app.app_state.settings.database.url),
        )
        .env("TESSERA__JWT__SIGNING_KEY", crate::helpers::SIGNING_KEY)
        .arg("group")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("tessera: "))
        .collect();
    assert!(errors.len() <= 1, "one error line at most: {stderr}");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        errors.first().copied().unwrap_or_default().to_owned(),
    )
}

async fn group_commands_manage_groups_and_members_as_the_operator(
    backend: crate::helpers::Backend,
) {
    // Roles in user bodies are opt-in; this test reads the groups back through `me`.
    let app = crate::helpers::TestApp::spawn_with(
        backend,
        &[("TESSERA__ACCOUNTS__SHOW_USER_ROLES", "true")],
    )
    .await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let ok = |args: &[&str]| {
        let (success, stdout, error) = group(&app, args);
        assert!(success, "{args:?}: {error}");
        stdout
    };
    assert_eq!(ok(&["list"]), "");
    assert_eq!(
        ok(&["create", "manager", "--description", "Can approve orders"]),
        "Group 'manager' created.\n"
    );
    ok(&["create", "auditor"]);
    assert_eq!(
        ok(&["add-user", "manager", &alice.username]),
        format!("User '{}' added to group 'manager'.\n", alice.username)
    );
    ok(&["add-user", "manager", &bob.username]);
    ok(&["add-user", "auditor", &alice.username]);
    assert_eq!(
        ok(&["list"]),
        "auditor\t1\t\nmanager\t2\tCan approve orders\n"
    );
    assert_eq!(
        ok(&["list", "manager"]),
        format!("{}\n{}\n", alice.username, bob.username)
    );

    // The API sees the operator's changes.
    let (status, me) = crate::helpers::answer(
        alice
            .auth(app.request(reqwest::Method::GET, "/auth/users/me/"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["groups"], serde_json::json!(["auditor", "manager"]));

    let failures: [(&[&str], String); 6] = [
        (
            &["create", "manager"],
            "tessera: name: group with this name already exists.".into(),
        ),
        (
            &["add-user", "ghosts", &alice.username],
            "tessera: group 'ghosts' does not exist".into(),
        ),
        (
            &["add-user", "manager", "nobody"],
            "tessera: user 'nobody' does not exist".into(),
        ),
        (
            &["remove-user", "auditor", &bob.username],
            format!(
                "tessera: user '{}' is not a member of group 'auditor'",
                bob.username
            ),
        ),
        (
            &["delete", "ghosts"],
            "tessera: group 'ghosts' does not exist".into(),
        ),
        (
            &["list", "ghosts"],
            "tessera: group 'ghosts' does not exist".into(),
        ),
    ];
    for (args, expected) in failures {
        let (success, _, error) = group(&app, args);
        assert!(!success, "{args:?} fails");
        assert_eq!(error, expected, "{args:?}");
    }

    assert_eq!(
        ok(&["remove-user", "manager", &alice.username]),
        format!("User '{}' removed from group 'manager'.\n", alice.username)
    );
    assert_eq!(ok(&["list", "manager"]), format!("{}\n", bob.username));
    assert_eq!(ok(&["delete", "manager"]), "Group 'manager' deleted.\n");
    assert_eq!(ok(&["list"]), "auditor\t1\t\n");
}

#[test]
fn an_unmigrated_database_stops_the_start_when_migrating_on_start_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        tessera(dir.path())
            .env("TESSERA__DATABASE__MIGRATE_ON_START", "false")
            .env("TESSERA_SUPERUSER_PASSWORD", "correct horse battery")
            .args(args)
            .output()
            .unwrap()
    };
    let refused = run(&["createsuperuser", "--username", "admin", "--no-input"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("run `tessera migrate`"), "{stderr}");
    assert!(run(&["migrate"]).status.success());
    let created = run(&["createsuperuser", "--username", "admin", "--no-input"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
}

//! Settings: loading, validation and redaction.
use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_load() {
    let s = Settings::load_from(env(&[])).unwrap();
    assert_eq!(s.server.bind.to_string(), "127.0.0.1:8000");
    assert_eq!(s.database.url.expose_secret(), "sqlite://data/tessera.db");
    assert_eq!(s.server.shutdown_timeout, Duration::from_secs(10));
    assert!(!s.auth.basic, "Basic authentication is opt-in");
    assert!(
        !s.health.redis_required,
        "a Redis outage degrades readiness, it does not fail it"
    );
}

#[test]
fn env_overrides_and_database_url() {
    let s = Settings::load_from(env(&[
        ("TESSERA__SERVER__BIND", "0.0.0.0:9000"),
        ("TESSERA__PASSWORDS__QUEUE", "3"),
        ("DATABASE_URL", "postgres://x@localhost/y"),
    ]))
    .unwrap();
    assert_eq!(s.server.bind.port(), 9000);
    assert_eq!(s.passwords.queue, 3);
    assert_eq!(s.database.url.expose_secret(), "postgres://x@localhost/y");
    let s = Settings::load_from(env(&[
        ("REDIS_URL", "redis://127.0.0.1:6379/0"),
        ("TESSERA__JWT__VERIFYING_KEY_FILES", "a.pem,b.pem"),
        ("TESSERA__JWT__ACCESS_TOKEN_LIFETIME", "90s"),
    ]))
    .unwrap();
    assert_eq!(s.redis.url, "redis://127.0.0.1:6379/0");
    assert_eq!(s.jwt.verifying_key_files, vec!["a.pem", "b.pem"]);
    assert_eq!(s.jwt.rules.access_lifetime, Duration::from_secs(90));
    assert_eq!(s.jwt.algorithm, jsonwebtoken::Algorithm::HS256);
}

#[test]
fn errors_name_the_key() {
    let err = Settings::load_from(env(&[("TESSERA__SERVER__BIND", "nowhere")])).unwrap_err();
    assert!(err.to_string().contains("server.bind"), "{err}");
    let err =
        Settings::load_from(env(&[("TESSERA__SERVER__SHUTDOWN_TIMEOUT", "soon")])).unwrap_err();
    assert!(err.to_string().contains("shutdown_timeout"), "{err}");
    let err = Settings::load_from(env(&[("TESSERA__SERVER__BINDD", "x")])).unwrap_err();
    assert!(err.to_string().contains("bindd"), "{err}");
    let err = Settings::load_from(env(&[("TESSERA__JWT__ALGORITHM", "none")])).unwrap_err();
    assert!(err.to_string().contains("jwt.algorithm"), "{err}");
    for (var, key) in [
        (
            "TESSERA__JWT__REFRESH_TOKEN_LIFETIME",
            "jwt.refresh_token_lifetime",
        ),
        (
            "TESSERA__ACCOUNTS__PASSWORD_RESET_TIMEOUT",
            "accounts.password_reset_timeout",
        ),
        ("TESSERA__TOKENS__TOKEN_LIFETIME", "tokens.token_lifetime"),
        ("TESSERA__AUDIT__RETENTION", "audit.retention"),
    ] {
        let err = Settings::load_from(env(&[(var, "300000y")])).unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
        assert!(err.to_string().contains("longer than 100 years"), "{err}");
    }
    let err = Settings::load_from(env(&[("DATABASE_URL", "mysql://x")])).unwrap_err();
    assert!(err.to_string().contains("database.url"), "{err}");
}

#[test]
fn typed_values_are_parsed_once_and_errors_name_the_key() {
    for (var, value, key) in [
        (
            "TESSERA__JWT__ACCESS_TOKEN_LIFETIME",
            "soon",
            "jwt.access_token_lifetime",
        ),
        ("TESSERA__JWT__CLAIMS__GROUPS", "maybe", "jwt.claims.groups"),
        ("TESSERA__JWT__SURPRISE", "x", "surprise"),
        (
            "TESSERA__ACCOUNTS__LOGIN_FIELD",
            "phone",
            "accounts.login_field",
        ),
        ("TESSERA__ACCOUNTS__SURPRISE", "x", "surprise"),
        (
            "TESSERA__ACCOUNTS__PASSWORD_RESET_TIMEOUT",
            "later",
            "accounts.password_reset_timeout",
        ),
        ("TESSERA__THROTTLE__ANON", "lots", "throttle.anon"),
        (
            "TESSERA__THROTTLE__SCOPES__LOGIN",
            "5/fortnight",
            "throttle.scopes.login",
        ),
        (
            "TESSERA__THROTTLE__SCOPES__LOGOUT",
            "5/min",
            "throttle.scopes.logout",
        ),
        (
            "TESSERA__THROTTLE__TRUSTED_PROXIES",
            "10.0.0.0/8,proxy",
            "throttle.trusted_proxies",
        ),
        (
            "TESSERA__SERVER__METRICS_BIND",
            "9100",
            "server.metrics_bind",
        ),
        (
            "TESSERA__TOKENS__TOKEN_LIFETIME",
            "forever",
            "tokens.token_lifetime",
        ),
        (
            "TESSERA__EMAIL__SMTP_SECURITY",
            "ssl",
            "email.smtp_security",
        ),
        ("TESSERA__PASSWORDS__QUEUE", "many", "passwords.queue"),
        ("TESSERA__EMAIL__FROM", "nobody", "email.from"),
        (
            "TESSERA__CORS__ALLOWED_ORIGINS",
            "*",
            "cors.allowed_origins",
        ),
        (
            "TESSERA__CORS__ALLOWED_ORIGINS",
            "null",
            "cors.allowed_origins",
        ),
        (
            "TESSERA__CORS__ALLOWED_ORIGINS",
            "https://ok.example,https://app.example.com/path",
            "cors.allowed_origins",
        ),
        ("TESSERA__CORS__MAX_AGE", "a while", "cors.max_age"),
    ] {
        let err = Settings::load_from(env(&[(var, value)])).unwrap_err();
        assert!(err.to_string().contains(key), "{var}: {err}");
    }
    let s = Settings::load_from(env(&[
        ("TESSERA__THROTTLE__ANON", "5/hour"),
        ("TESSERA__THROTTLE__TRUSTED_PROXIES", "10.0.0.0/8,192.0.2.7"),
        ("TESSERA__SERVER__METRICS_BIND", "127.0.0.1:9100"),
        ("TESSERA__TOKENS__TOKEN_LIFETIME", "2h"),
        ("TESSERA__JWT__ISSUER", "https://id.example.com"),
        ("TESSERA__ACCOUNTS__PROTOCOL", "https"),
        ("TESSERA__ACCOUNTS__DOMAIN", "app.example.com"),
        ("TESSERA__ACCOUNTS__LOGIN_FIELD", "email"),
    ]))
    .unwrap();
    assert_eq!(s.throttle.anon, Rate::parse("5/hour").unwrap());
    assert_eq!(
        s.throttle.trusted_proxies,
        vec![
            "10.0.0.0/8".parse::<ipnet::IpNet>().unwrap(),
            "192.0.2.7/32".parse().unwrap()
        ]
    );
    assert_eq!(
        s.server.metrics_bind,
        Some("127.0.0.1:9100".parse().unwrap())
    );
    assert_eq!(s.tokens.lifetime, Some(Duration::from_secs(7200)));
    assert_eq!(
        s.jwt.rules.issuer.as_deref(),
        Some("https://id.example.com")
    );
    assert_eq!(s.accounts.site_url(), "https://app.example.com");
    assert_eq!(s.accounts.users.login_field, LoginField::Email);
    let defaults = Settings::load_from(env(&[])).unwrap();
    assert_eq!(defaults.server.metrics_bind, None);
    assert_eq!(defaults.tokens.lifetime, None);
    assert_eq!(defaults.jwt.rules.issuer, None);
    assert_eq!(defaults.jwt.rules.audience, None);
    assert_eq!(defaults.email.smtp_security, SmtpSecurity::Starttls);
    assert_eq!(defaults.accounts.site_url(), "http://localhost:8000");
    assert_eq!(
        defaults.throttle.scopes["login"],
        Rate::parse("30/min").unwrap()
    );
    // Environment values that look like numbers stay text where text is expected.
    let numeric = Settings::load_from(env(&[
        ("TESSERA__JWT__AUDIENCE", "12345"),
        ("TESSERA__JWT__USER_ID_CLAIM", "42"),
    ]))
    .unwrap();
    assert_eq!(numeric.jwt.rules.audience.as_deref(), Some("12345"));
    assert_eq!(numeric.jwt.rules.user_id_claim, "42");
}

#[test]
fn debug_never_prints_secrets() {
    let s = Settings::load_from(env(&[
        (
            "DATABASE_URL",
            "postgres://tessera:db-hunter2@db.internal/tessera",
        ),
        ("REDIS_URL", "redis://:redis-hunter2@cache.internal:6379/0"),
        (
            "TESSERA__JWT__SIGNING_KEY",
            "sk-0f3a9c1e7b2d4a6f8e0c2b4d6f8a0c2e",
        ),
        (
            "TESSERA__JWT__VERIFYING_KEYS",
            "vk-9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d",
        ),
        ("TESSERA__EMAIL__SMTP_USERNAME", "mailer"),
        ("TESSERA__EMAIL__SMTP_PASSWORD", "smtp-hunter2"),
        (
            "TESSERA__MFA__ENCRYPTION_KEY",
            "mfa-hunter2-0123456789abcdef01234567",
        ),
    ]))
    .unwrap();
    let printed = format!("{s:?} {s:#?}");
    for secret in [
        "db-hunter2",
        "redis-hunter2",
        "sk-0f3a9c1e7b2d4a6f8e0c2b4d6f8a0c2e",
        "vk-9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d",
        "smtp-hunter2",
        "mfa-hunter2",
    ] {
        assert!(!printed.contains(secret), "{secret} printed in {printed}");
    }
    // The rest still shows, so Debug stays useful.
    assert!(printed.contains("access_lifetime"), "{printed}");
    assert!(printed.contains("mailer"), "{printed}");
    let key = s.jwt.signing_key.as_ref().unwrap();
    assert_eq!(key.expose_secret(), "sk-0f3a9c1e7b2d4a6f8e0c2b4d6f8a0c2e");
}

#[test]
fn config_file_is_layered_under_env() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.toml");
    std::fs::write(
        &path,
        "[users]\npage_size = 5\n[server]\nbody_limit = 2048\n",
    )
    .unwrap();
    let s = Settings::load_from(env(&[
        ("TESSERA_CONFIG", path.to_str().unwrap()),
        ("TESSERA__SERVER__BODY_LIMIT", "4096"),
    ]))
    .unwrap();
    assert_eq!(s.users.page_size, 5);
    assert_eq!(s.server.body_limit, 4096);
}

#[test]
fn second_factors_are_off_by_default_and_their_settings_are_checked() {
    let s = Settings::load_from(env(&[])).unwrap();
    assert!(!s.mfa.rules.enabled, "off: Djoser's contract unchanged");
    assert!(!s.accounts.require_mfa_for_staff);
    assert_eq!(s.mfa.rules.token_lifetime, Duration::from_secs(300));
    assert_eq!(s.mfa.rules.issuer, "Tessera");
    assert!(s.mfa.encryption_key.is_none());
    for (var, value, key) in [
        ("TESSERA__MFA__ISSUER", "Acme:Corp", "mfa.issuer"),
        ("TESSERA__MFA__ISSUER", "", "mfa.issuer"),
        ("TESSERA__MFA__TOKEN_LIFETIME", "0s", "mfa.token_lifetime"),
        ("TESSERA__MFA__TOKEN_LIFETIME", "soon", "token_lifetime"),
        (
            "TESSERA__MFA__ENCRYPTION_KEY",
            "short",
            "mfa.encryption_key",
        ),
        ("TESSERA__MFA__ENABLD", "true", "enabld"),
    ] {
        let err = Settings::load_from(env(&[(var, value)])).unwrap_err();
        assert!(err.to_string().contains(key), "{var}={value}: {err}");
    }
}

/// Compose files and shells set unused list variables to nothing (`VAR=`): an empty list, as
/// unset would be, not one empty entry that stops the start.
#[test]
fn a_list_variable_set_to_nothing_is_an_empty_list() {
    let s = Settings::load_from(env(&[
        ("TESSERA__JWT__VERIFYING_KEYS", ""),
        ("TESSERA__JWT__VERIFYING_KEY_FILES", " "),
        ("TESSERA__CORS__ALLOWED_ORIGINS", ""),
        ("TESSERA__THROTTLE__TRUSTED_PROXIES", ""),
        ("TESSERA__PATHS__ALIASES", ""),
    ]))
    .unwrap();
    assert!(s.jwt.verifying_key_files.is_empty());
    assert!(s.cors.allowed_origins.is_empty());
    assert!(s.throttle.trusted_proxies.is_empty());
    // A value that is not empty is still read, and still checked.
    let s = Settings::load_from(env(&[(
        "TESSERA__CORS__ALLOWED_ORIGINS",
        "https://a.example",
    )]))
    .unwrap();
    assert_eq!(s.cors.allowed_origins, vec!["https://a.example".to_owned()]);
    assert!(Settings::load_from(env(&[("TESSERA__CORS__ALLOWED_ORIGINS", "*")])).is_err());
}

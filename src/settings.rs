//! Typed settings: `config/default.toml` (compiled in), then the file named by `TESSERA_CONFIG`,
//! then `TESSERA__SECTION__KEY` variables, then `DATABASE_URL` / `REDIS_URL`.
use std::{collections::HashMap, net::SocketAddr, time::Duration};

use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, Deserializer};

const DEFAULTS: &str = include_str!("../config/default.toml");

/// Everything Tessera can be told, validated once at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub log: LogSettings,
    pub passwords: PasswordSettings,
    pub users: UserSettings,
    pub jwt: JwtSettings,
    pub redis: RedisSettings,
    pub tokens: TokenSettings,
    pub accounts: AccountSettings,
    pub email: EmailSettings,
    pub throttle: ThrottleSettings,
    pub audit: AuditSettings,
    /// `--dev`: allows an ephemeral or short signing key. Not a config key.
    #[serde(skip)]
    pub dev: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    pub metrics_bind: String,
    pub body_limit: usize,
    #[serde(deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub migrate_on_start: bool,
    pub max_connections: u32,
    #[serde(deserialize_with = "duration")]
    pub acquire_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordSettings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub workers: usize,
    pub queue: usize,
    pub min_length: usize,
    pub max_similarity: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSettings {
    pub page_size: u64,
    #[serde(deserialize_with = "duration")]
    pub cache_ttl: Duration,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    pub algorithm: String,
    #[serde(default)]
    pub signing_key: String,
    pub signing_key_file: String,
    pub verifying_keys: Vec<String>,
    pub verifying_key_files: Vec<String>,
    #[serde(deserialize_with = "duration")]
    pub access_token_lifetime: Duration,
    #[serde(deserialize_with = "duration")]
    pub refresh_token_lifetime: Duration,
    pub rotate_refresh_tokens: bool,
    pub blacklist_after_rotation: bool,
    pub update_last_login: bool,
    #[serde(deserialize_with = "duration")]
    pub reuse_grace: Duration,
    #[serde(deserialize_with = "duration")]
    pub leeway: Duration,
    pub audience: String,
    pub issuer: String,
    pub user_id_claim: String,
    pub token_type_claim: String,
    pub jti_claim: String,
    pub auth_header_types: Vec<String>,
    #[serde(deserialize_with = "duration")]
    pub prune_interval: Duration,
    pub claims: ClaimSettings,
}

/// `[jwt.claims]`: user facts added to access tokens (none by default: SimpleJWT's tokens).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimSettings {
    pub groups: bool,
    pub username: bool,
    pub email: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    pub store_in_sql: bool,
    #[serde(deserialize_with = "duration")]
    pub retention: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleSettings {
    pub enabled: bool,
    pub anon: String,
    pub user: String,
    pub trusted_proxies: Vec<String>,
    pub lockout_failures: u32,
    pub lockout_ip_failures: u32,
    #[serde(deserialize_with = "duration")]
    pub lockout_window: Duration,
    pub scopes: HashMap<String, String>,
}

/// The endpoint groups that may have a rate of their own.
pub const THROTTLE_SCOPES: [&str; 4] = ["login", "register", "refresh", "password_reset"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSettings {
    pub login_field: LoginField,
    pub hide_users: bool,
    pub show_user_roles: bool,
    pub user_create_password_retype: bool,
    pub set_password_retype: bool,
    pub password_reset_confirm_retype: bool,
    pub send_activation_email: bool,
    pub send_confirmation_email: bool,
    pub password_changed_email_confirmation: bool,
    pub username_changed_email_confirmation: bool,
    pub activation_url: String,
    pub password_reset_confirm_url: String,
    pub username_reset_confirm_url: String,
    pub protocol: String,
    pub domain: String,
    pub password_reset_show_email_not_found: bool,
    pub username_reset_show_email_not_found: bool,
    pub logout_on_password_change: bool,
    #[serde(deserialize_with = "duration")]
    pub password_reset_timeout: Duration,
}

pub use crate::domain::users::LoginField;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailBackend {
    Smtp,
    File,
    Console,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    pub backend: EmailBackend,
    pub from: String,
    pub site_name: String,
    pub file_path: String,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_security: String,
    pub smtp_username: String,
    #[serde(default)]
    pub smtp_password: String,
    pub templates_dir: String,
}

impl std::fmt::Debug for EmailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSettings")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    pub multiple: bool,
    #[serde(deserialize_with = "duration")]
    pub token_lifetime: Duration,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: String,
    pub cluster_nodes: Vec<String>,
    pub key_prefix: String,
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
}

impl std::fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("JwtSettings")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

/// Why the settings could not be loaded; the message names the offending key.
#[derive(Debug, thiserror::Error)]
#[error("invalid settings: {0}")]
pub struct SettingsError(String);

impl Settings {
    /// Loads from the process environment.
    pub fn load() -> Result<Self, SettingsError> {
        Self::load_from(std::env::vars().collect())
    }

    /// Loads with `env` standing in for the process environment (tests use this).
    pub fn load_from(env: HashMap<String, String>) -> Result<Self, SettingsError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = env.get("TESSERA_CONFIG") {
            builder = builder.add_source(File::with_name(path).format(FileFormat::Toml));
        }
        let tessera_vars: HashMap<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("TESSERA__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        builder = builder.add_source(
            Environment::with_prefix("TESSERA")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("jwt.verifying_keys")
                .with_list_parse_key("jwt.verifying_key_files")
                .with_list_parse_key("jwt.auth_header_types")
                .with_list_parse_key("throttle.trusted_proxies")
                .with_list_parse_key("redis.cluster_nodes")
                .source(Some(tessera_vars)),
        );
        let fail = |e: config::ConfigError| SettingsError(e.to_string());
        builder = builder
            .set_override_option("database.url", env.get("DATABASE_URL").cloned())
            .map_err(fail)?
            .set_override_option("redis.url", env.get("REDIS_URL").cloned())
            .map_err(fail)?;
        let settings: Settings = builder
            .build()
            .map_err(fail)?
            .try_deserialize()
            .map_err(fail)?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let bad = |key: &str, why: &str| Err(SettingsError(format!("{key}: {why}")));
        let db = &self.database.url;
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return bad(
                "database.url",
                "must start with sqlite:, postgres:// or postgresql://",
            );
        }
        if !self.server.metrics_bind.is_empty()
            && self.server.metrics_bind.parse::<SocketAddr>().is_err()
        {
            return bad(
                "server.metrics_bind",
                "must be an address like 127.0.0.1:9100, or empty",
            );
        }
        if self.database.max_connections == 0 {
            return bad("database.max_connections", "must be at least 1");
        }
        if self.server.body_limit < 1024 {
            return bad("server.body_limit", "must be at least 1024 bytes");
        }
        let p = &self.passwords;
        if argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, None).is_err() {
            return bad(
                "passwords.memory_kib",
                "argon2 parameters out of range (memory_kib >= 8 * parallelism, iterations >= 1, parallelism >= 1)",
            );
        }
        if !(0.1..=1.0).contains(&p.max_similarity) {
            return bad("passwords.max_similarity", "must be between 0.1 and 1.0");
        }
        let j = &self.jwt;
        if self.jwt_algorithm().is_none() {
            return bad(
                "jwt.algorithm",
                "must be one of HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384, EdDSA",
            );
        }
        if !j.signing_key.is_empty() && !j.signing_key_file.is_empty() {
            return bad(
                "jwt.signing_key",
                "set either jwt.signing_key or jwt.signing_key_file, not both",
            );
        }
        if j.access_token_lifetime.is_zero() || j.refresh_token_lifetime.is_zero() {
            return bad(
                "jwt.access_token_lifetime",
                "token lifetimes must be positive",
            );
        }
        for (key, name) in [
            ("jwt.user_id_claim", &j.user_id_claim),
            ("jwt.token_type_claim", &j.token_type_claim),
            ("jwt.jti_claim", &j.jti_claim),
        ] {
            if name.is_empty() || ["exp", "iat", "nbf", "iss", "aud"].contains(&name.as_str()) {
                return bad(
                    key,
                    "must be a non-empty name other than exp, iat, nbf, iss and aud",
                );
            }
        }
        if j.auth_header_types.is_empty()
            || j.auth_header_types
                .iter()
                .any(|t| t.is_empty() || t.contains(' '))
        {
            return bad(
                "jwt.auth_header_types",
                "must list at least one single word",
            );
        }
        let t = &self.throttle;
        for (key, rate) in [("throttle.anon", &t.anon), ("throttle.user", &t.user)] {
            if crate::domain::throttle::Rate::parse(rate).is_none() {
                return bad(
                    key,
                    "must look like \"100/min\" (units second, minute, hour, day)",
                );
            }
        }
        for (scope, rate) in &t.scopes {
            if !THROTTLE_SCOPES.contains(&scope.as_str()) {
                return bad(
                    &format!("throttle.scopes.{scope}"),
                    "unknown scope (login, register, refresh, password_reset)",
                );
            }
            if crate::domain::throttle::Rate::parse(rate).is_none() {
                return bad(
                    &format!("throttle.scopes.{scope}"),
                    "must look like \"10/min\"",
                );
            }
        }
        if let Some(p) = t
            .trusted_proxies
            .iter()
            .find(|p| parse_network(p).is_none())
        {
            return bad(
                "throttle.trusted_proxies",
                &format!("`{p}` is not an address or CIDR"),
            );
        }
        if !["starttls", "tls", "none"].contains(&self.email.smtp_security.as_str()) {
            return bad("email.smtp_security", "must be starttls, tls or none");
        }
        if self.email.from.parse::<lettre::message::Mailbox>().is_err() {
            return bad(
                "email.from",
                "is not an email address (e.g. \"Site <noreply@example.com>\")",
            );
        }
        if !self.redis.url.is_empty() && !self.redis.cluster_nodes.is_empty() {
            return bad(
                "redis.cluster_nodes",
                "set either redis.url (REDIS_URL) or redis.cluster_nodes, not both",
            );
        }
        if self
            .redis
            .cluster_nodes
            .iter()
            .any(|n| redis::Client::open(n.as_str()).is_err())
        {
            return bad("redis.cluster_nodes", "every node must be a redis:// URL");
        }
        if !self.redis.url.is_empty() && redis::Client::open(self.redis.url.as_str()).is_err() {
            return bad("redis.url", "is not a valid redis:// or rediss:// URL");
        }
        Ok(())
    }
}

impl Settings {
    /// The configured JWT algorithm (validated at load).
    pub fn jwt_algorithm(&self) -> Option<jsonwebtoken::Algorithm> {
        use jsonwebtoken::Algorithm::*;
        [
            HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384, EdDSA,
        ]
        .into_iter()
        .find(|a| format!("{a:?}") == self.jwt.algorithm)
    }
}

/// An address (a /32 or /128) or a CIDR.
pub fn parse_network(text: &str) -> Option<ipnet::IpNet> {
    text.parse::<ipnet::IpNet>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration ({e})")))
}

#[cfg(test)]
mod tests {
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
        assert_eq!(s.database.url, "sqlite://data/tessera.db");
        assert_eq!(s.server.shutdown_timeout, Duration::from_secs(10));
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
        assert_eq!(s.database.url, "postgres://x@localhost/y");
        let s = Settings::load_from(env(&[
            ("REDIS_URL", "redis://127.0.0.1:6379/0"),
            ("TESSERA__JWT__VERIFYING_KEY_FILES", "a.pem,b.pem"),
            ("TESSERA__JWT__ACCESS_TOKEN_LIFETIME", "90s"),
        ]))
        .unwrap();
        assert_eq!(s.redis.url, "redis://127.0.0.1:6379/0");
        assert_eq!(s.jwt.verifying_key_files, vec!["a.pem", "b.pem"]);
        assert_eq!(s.jwt.access_token_lifetime, Duration::from_secs(90));
        assert_eq!(s.jwt_algorithm(), Some(jsonwebtoken::Algorithm::HS256));
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
        let err = Settings::load_from(env(&[("DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(err.to_string().contains("database.url"), "{err}");
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
}

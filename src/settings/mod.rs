//! Typed settings: `config/default.toml` (compiled in), then the file named by `TESSERA_CONFIG`,
//! then `TESSERA__SECTION__KEY` variables, then `DATABASE_URL` / `REDIS_URL`.
use std::{collections::HashMap, net::SocketAddr, time::Duration};

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, de::Error as _};

use crate::domain::{
    accounts::AccountRules,
    mfa::MfaRules,
    opaque::OpaqueRules,
    setting_values::{duration, optional_text},
    throttle::Rate,
    tokens::JwtRules,
    users::UserRules,
};
pub use crate::domain::{passwords::PasswordSettings, users::LoginField};

const DEFAULTS: &str = include_str!("../../config/default.toml");

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
    pub tokens: OpaqueRules,
    pub sessions: SessionSettings,
    pub accounts: AccountRules,
    pub email: EmailSettings,
    pub throttle: ThrottleSettings,
    pub audit: AuditSettings,
    pub auth: AuthSettings,
    pub cors: crate::http::cors::CorsSettings,
    pub paths: crate::http::aliases::PathSettings,
    pub memory: MemorySettings,
    pub health: HealthSettings,
    pub mfa: MfaSettings,
    /// `--dev`: allows an ephemeral or short signing key. Not a config key.
    #[serde(skip)]
    pub dev: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    /// None ("") serves /metrics beside the API.
    #[serde(deserialize_with = "optional_address")]
    pub metrics_bind: Option<SocketAddr>,
    pub body_limit: usize,
    #[serde(deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// May hold a password: Debug prints it redacted.
    pub url: SecretString,
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
pub struct UserSettings {
    pub page_size: u64,
    #[serde(deserialize_with = "duration")]
    pub cache_ttl: Duration,
}

/// The `[jwt]` section: the keys and what the HTTP layer and the server need around the token
/// rules, which are the domain's [`JwtRules`] read from the same section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    #[serde(deserialize_with = "jwt_algorithm")]
    pub algorithm: jsonwebtoken::Algorithm,
    /// From the environment only; None when unset or "".
    #[serde(default, deserialize_with = "optional_secret")]
    pub signing_key: Option<SecretString>,
    /// None when "".
    #[serde(deserialize_with = "optional_text")]
    pub signing_key_file: Option<String>,
    /// Older HMAC secrets (secrets too) or public keys.
    pub verifying_keys: Vec<SecretString>,
    pub verifying_key_files: Vec<String>,
    pub auth_header_types: Vec<String>,
    #[serde(deserialize_with = "duration")]
    pub prune_interval: Duration,
    /// `[jwt.cookie]`: the refresh token in an HttpOnly cookie.
    pub cookie: crate::http::cookie::CookieSettings,
    #[serde(flatten)]
    pub rules: JwtRules,
}

/// The `[mfa]` section: the domain's [`MfaRules`] and the optional sealing key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaSettings {
    /// From the environment only; None (the signing key's subkey) when unset or "".
    #[serde(default, deserialize_with = "optional_secret")]
    pub encryption_key: Option<SecretString>,
    #[serde(flatten)]
    pub rules: MfaRules,
}

/// `[auth]`: which authentication schemes requests may use besides `Bearer` and `Token`
/// (a Djoser project's DEFAULT_AUTHENTICATION_CLASSES).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// HTTP Basic (DRF's BasicAuthentication): a full password check per request, so off by
    /// default; off, a `Basic` header is ignored like any unknown scheme.
    pub basic: bool,
}

/// `[sessions]`: every login recorded as a session the user can list and end.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    /// Records sessions, serves `/auth/sessions/` and writes `sid` into JWTs.
    pub enabled: bool,
}

/// `[health]`: what `/health/ready` counts as not ready.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    /// An unreachable Redis answers 503 instead of 200 "degraded".
    pub redis_required: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    pub store_in_sql: bool,
    #[serde(deserialize_with = "duration")]
    pub retention: Duration,
}

/// `[memory]`: how much of the revocation list and of seen opaque keys each instance keeps.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemorySettings {
    /// Revoked JTIs and cut-offs held; 0 turns the in-memory copy off.
    pub revocation_entries: usize,
    pub opaque_keys: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleSettings {
    pub enabled: bool,
    pub anon: Rate,
    pub user: Rate,
    /// Proxies whose X-Forwarded-For is believed.
    #[serde(deserialize_with = "networks")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub lockout_failures: u32,
    pub lockout_ip_failures: u32,
    #[serde(deserialize_with = "duration")]
    pub lockout_window: Duration,
    pub scopes: HashMap<String, Rate>,
}

/// The endpoint groups that may have a rate of their own.
pub const THROTTLE_SCOPES: [&str; 4] = ["login", "register", "refresh", "password_reset"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailBackend {
    Smtp,
    File,
    Console,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
    /// No encryption: loopback relays only.
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    pub backend: EmailBackend,
    #[serde(deserialize_with = "mailbox")]
    pub from: lettre::message::Mailbox,
    pub site_name: String,
    pub file_path: String,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_security: SmtpSecurity,
    pub smtp_username: String,
    /// From the environment only; None when unset or "".
    #[serde(default, deserialize_with = "optional_secret")]
    pub smtp_password: Option<SecretString>,
    /// Folder of template overrides; None when "".
    #[serde(deserialize_with = "optional_text")]
    pub templates_dir: Option<String>,
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

impl std::fmt::Debug for RedisSettings {
    // URLs may hold a password: only the prefix is shown.
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

/// The settings that are lists, read from variables as comma-separated values. Not the CORS
/// regexes: a comma is part of many (`{2,63}`); a file sets those.
const LIST_KEYS: [&str; 10] = [
    "jwt.verifying_keys",
    "jwt.verifying_key_files",
    "jwt.auth_header_types",
    "throttle.trusted_proxies",
    "redis.cluster_nodes",
    "cors.allowed_origins",
    "cors.allowed_headers",
    "cors.expose_headers",
    "paths.aliases",
    "paths.prefixes",
];

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
        // A list variable set to nothing is an empty list (the config crate would read one
        // empty entry, which no list accepts): set as such below, not passed on.
        let mut empty_lists = Vec::new();
        let mut tessera_vars = HashMap::new();
        for (name, value) in env.iter().filter(|(k, _)| k.starts_with("TESSERA__")) {
            let key = name["TESSERA__".len()..]
                .to_ascii_lowercase()
                .replace("__", ".");
            if value.trim().is_empty() && LIST_KEYS.contains(&key.as_str()) {
                empty_lists.push(key);
            } else {
                tessera_vars.insert(name.clone(), value.clone());
            }
        }
        let mut variables = Environment::with_prefix("TESSERA")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",");
        for key in LIST_KEYS {
            variables = variables.with_list_parse_key(key);
        }
        builder = builder.add_source(variables.source(Some(tessera_vars)));
        let fail = |e: config::ConfigError| SettingsError(e.to_string());
        for key in empty_lists {
            builder = builder
                .set_override(key, Vec::<String>::new())
                .map_err(fail)?;
        }
        builder = builder
            .set_override_option("database.url", env.get("DATABASE_URL").cloned())
            .map_err(fail)?
            .set_override_option("redis.url", env.get("REDIS_URL").cloned())
            .map_err(fail)?;
        let config = builder.build().map_err(fail)?;
        // serde's flatten forgets which field failed: reading the flattened rules alone first
        // makes their errors name the key (e.g. `jwt.access_token_lifetime`).
        check_flattened::<JwtRules>(&config, "jwt").map_err(fail)?;
        check_flattened::<UserRules>(&config, "accounts").map_err(fail)?;
        check_flattened::<MfaRules>(&config, "mfa").map_err(fail)?;
        let settings: Settings = config.try_deserialize().map_err(fail)?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let bad = |key: &str, why: &str| Err(SettingsError(format!("{key}: {why}")));
        let db = self.database.url.expose_secret();
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return bad(
                "database.url",
                "must start with sqlite:, postgres:// or postgresql://",
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
        if j.signing_key.is_some() && j.signing_key_file.is_some() {
            return bad(
                "jwt.signing_key",
                "set either jwt.signing_key or jwt.signing_key_file, not both",
            );
        }
        if j.rules.access_lifetime.is_zero() || j.rules.refresh_lifetime.is_zero() {
            return bad(
                "jwt.access_token_lifetime",
                "token lifetimes must be positive",
            );
        }
        for (key, name) in [
            ("jwt.user_id_claim", &j.rules.user_id_claim),
            ("jwt.token_type_claim", &j.rules.token_type_claim),
            ("jwt.jti_claim", &j.rules.jti_claim),
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
        if let Err((key, why)) = j.cookie.check(&self.accounts) {
            return bad(key, &why);
        }
        let m = &self.mfa;
        if m.rules.issuer.is_empty() || m.rules.issuer.contains(':') {
            return bad("mfa.issuer", "must be a non-empty name without \":\"");
        }
        if m.rules.token_lifetime.is_zero() {
            return bad("mfa.token_lifetime", "must be positive");
        }
        if m.encryption_key
            .as_ref()
            .is_some_and(|k| k.expose_secret().len() < 32)
        {
            return bad("mfa.encryption_key", "must be at least 32 bytes");
        }
        for scope in self.throttle.scopes.keys() {
            if !THROTTLE_SCOPES.contains(&scope.as_str()) {
                return bad(
                    &format!("throttle.scopes.{scope}"),
                    "unknown scope (login, register, refresh, password_reset)",
                );
            }
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

/// A sender like "Site <noreply@example.com>".
fn mailbox<'de, D: Deserializer<'de>>(d: D) -> Result<lettre::message::Mailbox, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|e| {
        D::Error::custom(format!(
            "`{text}` is not an email address like \"Site <noreply@example.com>\" ({e})"
        ))
    })
}

/// A secret where "" means "none".
fn optional_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    let text = String::deserialize(d)?;
    Ok((!text.is_empty()).then(|| SecretString::from(text)))
}

/// Reads `section` as a `T` alone, so an error names `section.field`.
fn check_flattened<T: serde::de::DeserializeOwned>(
    config: &Config,
    section: &str,
) -> Result<(), config::ConfigError> {
    let table = config.get_table(section)?;
    let wrapped = config::Map::from([(
        section.to_owned(),
        config::Value::new(None, config::ValueKind::Table(table)),
    )]);
    HashMap::<String, T>::deserialize(config::Value::new(None, config::ValueKind::Table(wrapped)))
        .map(drop)
}

/// The algorithms Tessera signs with (`jwt.algorithm`).
fn jwt_algorithm<'de, D: Deserializer<'de>>(d: D) -> Result<jsonwebtoken::Algorithm, D::Error> {
    use jsonwebtoken::Algorithm::*;
    let text = String::deserialize(d)?;
    [
        HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384, EdDSA,
    ]
    .into_iter()
    .find(|a| format!("{a:?}") == text)
    .ok_or_else(|| {
        D::Error::custom(format!(
            "`{text}` is not one of HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384, EdDSA"
        ))
    })
}

/// An address like 127.0.0.1:9100, or "" for none.
fn optional_address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        D::Error::custom(format!(
            "`{text}` is not an address like 127.0.0.1:9100 (or \"\" for none)"
        ))
    })
}

/// Addresses (each a /32 or /128) or CIDRs.
fn networks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|text| {
            text.parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| D::Error::custom(format!("`{text}` is not an address or CIDR")))
        })
        .collect()
}
#[cfg(test)]
mod tests;

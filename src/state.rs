//! The services every request may use, behind `Arc`s: cheap to clone into each request.
use std::{path::PathBuf, sync::Arc};

use sea_orm::DatabaseConnection;
use secrecy::ExposeSecret;

use crate::{
    StartError,
    crypto::{self, SealKey, Subkey},
    domain::{
        account_tokens::AccountTokens,
        accounts::AccountService,
        groups::{GroupService, GroupStore},
        health::Readiness,
        import::Importer,
        keys::{KeyError, KeyRing},
        mfa::MfaService,
        opaque::{OpaqueTokenService, OpaqueTokenStore},
        passwords::{PasswordHasher, PasswordRules},
        revocation::RevocationStore,
        roles::RoleView,
        sessions::{SessionLog, SessionService},
        throttle::{LoginGuard, Throttle},
        tokens::{TokenService, revocation_margin},
        users::{UserService, UserStore},
    },
    mail::MailQueue,
    settings::Settings,
    store::{
        database,
        groups::{CachedGroupStore, SqlGroupStore},
        import::SqlImportStore,
        mfa::SqlMfaStore,
        opaque::{MirroredOpaqueStore, SqlOpaqueTokenStore},
        redis_conn::{RedisConn, redis_connection, warn_unless_noeviction},
        revocation::{
            MemoryRevocations, RedisRevocations, SqlRevocations,
            bus::{self, Bus},
            mirror::Mirror,
        },
        sessions::SqlSessionStore,
        throttle::{MemoryCounters, RateLimiterAndCounter, RedisCounters},
        tokens::SqlTokenLedger,
        users::{CachedUserStore, SqlUserStore},
    },
};

/// The services, shared by every request. One `Arc` around them all: every request puts the
/// state into its extensions, and cloning fifteen `Arc`s there (and dropping them) was two dozen
/// atomic operations on cache lines both cores write.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

pub struct Services {
    pub settings: Arc<Settings>,
    pub users: Arc<UserService>,
    /// How user bodies show roles.
    pub roles: Arc<RoleView>,
    pub tokens: Arc<TokenService>,
    pub opaque: Arc<OpaqueTokenService>,
    pub sessions: Arc<SessionService>,
    pub accounts: Arc<AccountService>,
    /// The TOTP second factor (every login's password step goes through it).
    pub mfa: Arc<MfaService>,
    pub groups: Arc<GroupService>,
    pub readiness: Arc<Readiness>,
    /// Rate limits; None when `throttle.enabled` is off.
    pub throttle: Option<Arc<Throttle>>,
    /// `tessera import-django`.
    pub importer: Arc<Importer>,
    /// This instance's in-memory copy of the revocation list, when it keeps one.
    pub memory: Option<Arc<Mirror>>,
    /// The pool, for the audit writer and operators' tooling.
    pub database: DatabaseConnection,
}

impl AppState {
    /// Connects to the database (migrating when configured) and wires the stores into the services.
    pub async fn connect(settings: Settings) -> Result<Self, StartError> {
        let db = database::connect(&settings.database).await?;
        if settings.database.migrate_on_start {
            database::migrate(&db).await?;
        } else {
            database::ensure_migrated(&db).await?;
        }
        let r = &settings.redis;
        let redis = if r.url.is_empty() && r.cluster_nodes.is_empty() {
            None
        } else {
            let redis =
                redis_connection(&r.url, &r.cluster_nodes, &r.key_prefix, r.timeout).await?;
            warn_unless_noeviction(&redis.0).await;
            Some(redis)
        };
        let bus = start_bus(&settings, &db, redis.as_ref()).await?;
        Self::wire(settings, db, redis, bus)
    }

    fn wire(
        settings: Settings,
        db: DatabaseConnection,
        redis: Option<(RedisConn, String)>,
        bus: Option<Bus>,
    ) -> Result<Self, StartError> {
        let hasher = PasswordHasher::new(&settings.passwords)?;
        let rules = PasswordRules::new(&settings.passwords);
        let (user_store, sql_groups, group_store) = user_stores(&settings, &db);
        let roles = RoleView::new(
            settings
                .accounts
                .show_user_roles
                .then(|| group_store.clone()),
            settings.accounts.users.user_id,
        );

        let sql_revocations = SqlRevocations::new(db.clone());
        let revocations: Arc<dyn RevocationStore> = match (&redis, &bus) {
            (Some((conn, prefix)), bus) => {
                let store = RedisRevocations::new(
                    sql_revocations.clone(),
                    conn.clone(),
                    prefix,
                    bus.clone(),
                );
                if let Some(bus) = bus {
                    bus::start_listener(
                        settings.redis.url.clone(),
                        bus.clone(),
                        sql_revocations,
                        store.clone(),
                    );
                }
                Arc::new(store)
            }
            (None, Some(bus)) => Arc::new(MemoryRevocations::new(sql_revocations, bus.clone())),
            (None, None) => Arc::new(sql_revocations),
        };
        let memory = bus.as_ref().map(|b| b.mirror.clone());
        let (throttle, guard) = limits(&settings, redis.as_ref());
        let users = Arc::new(UserService::new(
            user_store.clone(),
            Arc::new(hasher),
            rules,
            settings.accounts.users,
            guard,
        ));
        let readiness = Readiness::new(
            user_store.clone(),
            redis.as_ref().map(|_| revocations.clone()),
            settings.health.redis_required,
        );
        let (keys, signing_material) = load_keys(&settings)?;
        let importer = Importer::new(
            Arc::new(SqlImportStore::new(db.clone())),
            revocations.clone(),
            revocation_margin(settings.jwt.rules.leeway),
        );
        let session_log = Arc::new(SessionLog::new(
            Some(Arc::new(SqlSessionStore::new(db.clone()))),
            settings.sessions.enabled,
        ));
        let tokens = TokenService::new(
            settings.jwt.rules.clone(),
            keys,
            Arc::new(SqlTokenLedger::new(db.clone())),
            revocations,
            users.clone(),
            Some(sql_groups),
            session_log.clone(),
        );
        // Opaque keys are derived under a subkey of the signing key: no second secret to manage.
        let opaque_secret = crypto::derive(&signing_material, Subkey::OpaqueKeys)?;
        let opaque_store: Arc<dyn OpaqueTokenStore> = match bus {
            Some(bus) => Arc::new(MirroredOpaqueStore::new(
                SqlOpaqueTokenStore::new(db.clone()),
                bus,
            )),
            None => Arc::new(SqlOpaqueTokenStore::new(db.clone())),
        };
        let opaque = OpaqueTokenService::new(
            opaque_store,
            users.clone(),
            opaque_secret,
            settings.tokens.clone(),
            session_log.clone(),
        );
        let tokens = Arc::new(tokens);
        let opaque = Arc::new(opaque);
        let sessions =
            SessionService::new(session_log, tokens.clone(), opaque.clone(), users.clone());
        let mailer = MailQueue::start(settings.email.clone())?;
        let a = &settings.accounts;
        let links = AccountTokens::new(
            crypto::derive(&signing_material, Subkey::AccountTokens)?,
            a.password_reset_timeout,
        );
        // TOTP secrets are sealed under their own key, or a subkey of the signing key.
        let seal_master = match &settings.mfa.encryption_key {
            Some(key) => key.expose_secret().as_bytes().to_vec(),
            None => signing_material.clone(),
        };
        let mfa = MfaService::new(
            settings.mfa.rules.clone(),
            settings.accounts.require_mfa_for_staff,
            Arc::new(SqlMfaStore::new(db.clone())),
            users.clone(),
            SealKey::derive(&seal_master, Subkey::TotpSecrets)?,
        );
        let groups = GroupService::new(group_store, user_store);
        let accounts = AccountService::new(
            users.clone(),
            tokens.clone(),
            opaque.clone(),
            Arc::new(mailer),
            links,
            settings.accounts.clone(),
        );
        Ok(Self(Arc::new(Services {
            settings: Arc::new(settings),
            users,
            roles: Arc::new(roles),
            tokens,
            opaque,
            sessions: Arc::new(sessions),
            accounts: Arc::new(accounts),
            mfa: Arc::new(mfa),
            groups: Arc::new(groups),
            readiness: Arc::new(readiness),
            throttle,
            importer: Arc::new(importer),
            memory,
            database: db,
        })))
    }
}

/// The in-memory copy of the revocation list and of seen opaque keys, and how it stays exact:
/// Redis pub/sub between instances, or (embedded SQLite, one process) the process itself.
/// None: turned off, a Redis Cluster, or PostgreSQL without Redis (several instances could
/// write with nothing to tell the others); checks then take the Redis/SQL path.
async fn start_bus(
    settings: &Settings,
    db: &DatabaseConnection,
    redis: Option<&(RedisConn, String)>,
) -> Result<Option<Bus>, StartError> {
    let m = &settings.memory;
    if m.revocation_entries == 0 {
        return Ok(None);
    }
    let r = &settings.redis;
    match redis {
        Some((conn, prefix)) if r.cluster_nodes.is_empty() => {
            // Listening starts once the Redis store exists (see `wire`): it repairs Redis too.
            let mirror = Mirror::new(m.revocation_entries, m.opaque_keys, false);
            Ok(Some(Bus::redis(
                mirror,
                conn.clone(),
                format!("{prefix}events"),
            )))
        }
        Some(_) => Ok(None),
        None if settings.database.url.expose_secret().starts_with("sqlite:") => {
            let bus = Bus::embedded(Mirror::new(m.revocation_entries, m.opaque_keys, true));
            bus::start_embedded(&bus, SqlRevocations::new(db.clone())).await?;
            Ok(Some(bus))
        }
        None => Ok(None),
    }
}

/// The user store and the group store behind `users.cache_ttl`'s caches, and the group store
/// without one (token claims read SQL: a token outlives any cache).
fn user_stores(
    settings: &Settings,
    db: &DatabaseConnection,
) -> (Arc<dyn UserStore>, Arc<dyn GroupStore>, Arc<dyn GroupStore>) {
    let ttl = settings.users.cache_ttl;
    let sql_users: Arc<dyn UserStore> = Arc::new(SqlUserStore::new(db.clone()));
    let sql_groups: Arc<dyn GroupStore> = Arc::new(SqlGroupStore::new(db.clone()));
    if ttl.is_zero() {
        return (sql_users, sql_groups.clone(), sql_groups);
    }
    let users = Arc::new(CachedUserStore::new(sql_users, ttl, 10_000));
    let groups = Arc::new(CachedGroupStore::new(sql_groups.clone(), ttl, 10_000));
    (users, sql_groups, groups)
}

/// The rate limits (None when throttling is off) and the login lockout (None when
/// `lockout_failures` is 0). Counters are shared in Redis when there is one, in this process's
/// memory otherwise; memory is also the lockout's fallback while Redis is down.
fn limits(
    settings: &Settings,
    redis: Option<&(RedisConn, String)>,
) -> (Option<Arc<Throttle>>, Option<Arc<LoginGuard>>) {
    let memory = Arc::new(MemoryCounters::new(100_000));
    let shared: Arc<dyn RateLimiterAndCounter> = match redis {
        None => memory.clone(),
        Some((conn, prefix)) => Arc::new(RedisCounters::new(conn.clone(), prefix)),
    };
    let t = &settings.throttle;
    let throttle = t.enabled.then(|| {
        Arc::new(Throttle::new(
            shared.clone().as_limiter(),
            t.anon,
            t.user,
            t.scopes.clone(),
        ))
    });
    let guard = (t.lockout_failures > 0).then(|| {
        Arc::new(LoginGuard::new(
            shared.as_counter(),
            memory,
            t.lockout_failures,
            t.lockout_ip_failures,
            t.lockout_window,
        ))
    });
    (throttle, guard)
}

/// The signing key from the environment or a file; on the embedded SQLite setup a generated
/// key file next to the database; with `--dev` an ephemeral one. Otherwise starting fails.
fn load_keys(settings: &Settings) -> Result<(KeyRing, Vec<u8>), StartError> {
    let j = &settings.jwt;
    let algorithm = j.algorithm;
    let read =
        |path: &str| std::fs::read(path).map_err(|e| KeyError(format!("cannot read {path}: {e}")));
    let hmac = algorithm.family() == jsonwebtoken::AlgorithmFamily::Hmac;
    let signing = if let Some(key) = &j.signing_key {
        key.expose_secret().as_bytes().to_vec()
    } else if let Some(path) = &j.signing_key_file {
        trim_secret(read(path)?, hmac)
    } else if let (true, Some(path)) = (hmac, embedded_key_path(settings)) {
        embedded_key(&path)?
    } else if settings.dev && hmac {
        tracing::warn!("--dev: signing tokens with an ephemeral key; they die with this process");
        crypto::random_secret()
    } else {
        return Err(KeyError(
            "jwt.signing_key (TESSERA__JWT__SIGNING_KEY) or jwt.signing_key_file is required"
                .into(),
        )
        .into());
    };
    let mut others: Vec<Vec<u8>> = j
        .verifying_keys
        .iter()
        .map(|k| k.expose_secret().as_bytes().to_vec())
        .collect();
    for path in &j.verifying_key_files {
        others.push(trim_secret(read(path)?, hmac));
    }
    let ring = KeyRing::new(algorithm, &signing, &others, settings.dev)?;
    Ok((ring, signing))
}

/// A secret file's trailing newline is not part of the secret.
fn trim_secret(mut bytes: Vec<u8>, hmac: bool) -> Vec<u8> {
    if hmac {
        while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
            bytes.pop();
        }
    }
    bytes
}

/// `<folder of the SQLite file>/jwt-signing.key` for the embedded default; None for PostgreSQL.
fn embedded_key_path(settings: &Settings) -> Option<PathBuf> {
    let url = settings.database.url.expose_secret();
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    let folder = std::path::Path::new(path)
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    Some(folder.join("jwt-signing.key"))
}

/// Reads the embedded key file, creating it (owner-only) on first start.
fn embedded_key(path: &std::path::Path) -> Result<Vec<u8>, KeyError> {
    if let Ok(bytes) = std::fs::read(path) {
        return Ok(trim_secret(bytes, true));
    }
    let secret = crypto::random_secret();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    use std::io::Write;
    options
        .open(path)
        .and_then(|mut f| f.write_all(&secret))
        .map_err(|e| KeyError(format!("cannot create {}: {e}", path.display())))?;
    tracing::warn!(path = %path.display(), "generated a JWT signing key for the embedded setup; set TESSERA__JWT__SIGNING_KEY to share one");
    Ok(secret)
}

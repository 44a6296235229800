//! Opening the database: the embedded SQLite file (folder created) or PostgreSQL.
use std::path::Path;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, TransactionTrait};
use secrecy::ExposeSecret;

use crate::{domain::StoreError, settings::DatabaseSettings};

/// Connects with short timeouts so an outage answers 503 quickly instead of hanging.
pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, StoreError> {
    let url = sqlite_url_with_folder(settings.url.expose_secret())?;
    // Every connection to `sqlite::memory:` is a database of its own: keep one.
    let max = if url.contains(":memory:") {
        1
    } else {
        settings.max_connections
    };
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(max)
        .min_connections(0)
        .acquire_timeout(settings.acquire_timeout)
        .connect_timeout(settings.acquire_timeout)
        .sqlx_logging(false)
        // WAL lets readers run beside the writer; NORMAL sync is durable across process crashes
        // (SQLite's recommendation for WAL); the busy timeout queues writers instead of failing.
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(std::time::Duration::from_secs(5))
        });
    Database::connect(options).await.map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot open {}: {e}",
            redact(settings.url.expose_secret())
        ))
    })
}

/// Applies pending migrations. On PostgreSQL an advisory lock, held by a transaction for the
/// duration, makes instances that start together migrate one after the other.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), StoreError> {
    let failed = |e: sea_orm::DbErr| StoreError::Internal(format!("migration failed: {e}"));
    if db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        return Migrator::up(db, None).await.map_err(failed);
    }
    let lock = db.begin().await.map_err(failed)?;
    lock.execute_unprepared("SELECT pg_advisory_xact_lock(7236151522)")
        .await
        .map_err(failed)?;
    Migrator::up(db, None).await.map_err(failed)?;
    lock.commit().await.map_err(failed)
}

/// Refuses to serve on a schema older than this binary (`database.migrate_on_start` off and
/// `tessera migrate` not run): every request would fail with a 500 while readiness said 200.
pub async fn ensure_migrated(db: &DatabaseConnection) -> Result<(), StoreError> {
    let pending = Migrator::get_pending_migrations(db)
        .await
        .map_err(|e| super::store_error(e, ""))?;
    if pending.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Internal(format!(
            "the database schema is {} migration(s) behind this binary: run `tessera migrate` \
             (or set database.migrate_on_start)",
            pending.len()
        )))
    }
}

/// A cheap round trip for readiness checks.
pub async fn ping(db: &DatabaseConnection) -> Result<(), StoreError> {
    db.execute_unprepared("SELECT 1")
        .await
        .map(|_| ())
        .map_err(|e| super::store_error(e, ""))
}

/// For `sqlite://path`, creates the file's folder (0700) and the file itself (0600, see
/// [`owner_only`]), and keeps `mode=rwc` for SQLite.
fn sqlite_url_with_folder(url: &str) -> Result<String, StoreError> {
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Ok(url.to_owned());
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" {
        return Ok(url.to_owned());
    }
    if let Some(folder) = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty() && !p.exists())
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(folder)
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", folder.display()))
            })?;
    }
    if !query.contains("mode=ro") {
        owner_only(Path::new(path))?;
    }
    let query = if query.contains("mode=") {
        query.to_owned()
    } else if query.is_empty() {
        "mode=rwc".to_owned()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}

/// The database holds password hashes: it is created readable by its owner only, and an older
/// file readable by others is made so (SQLite gives its -wal and -shm files the same mode).
fn owner_only(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let failed = |e: std::io::Error| {
        StoreError::Unavailable(format!("cannot create {}: {e}", path.display()))
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = std::fs::metadata(path)
                .map_err(failed)?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))
                    .map_err(failed)?;
            }
            Ok(())
        }
        Err(e) => Err(failed(e)),
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// A migrated in-memory SQLite database, for the stores' unit tests.
#[cfg(test)]
pub(crate) async fn in_memory() -> DatabaseConnection {
    let db = connect(&DatabaseSettings {
        url: "sqlite::memory:".into(),
        migrate_on_start: true,
        max_connections: 1,
        acquire_timeout: std::time::Duration::from_secs(2),
    })
    .await
    .unwrap();
    migrate(&db).await.unwrap();
    db
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        // The file is created (owner-only) as a side effect: in a folder of the test's own.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db").display().to_string();
        assert_eq!(
            sqlite_url_with_folder(&format!("sqlite://{path}")).unwrap(),
            format!("sqlite://{path}?mode=rwc")
        );
        assert!(dir.path().join("x.db").exists());
        assert_eq!(
            sqlite_url_with_folder("sqlite::memory:").unwrap(),
            "sqlite::memory:"
        );
        assert_eq!(
            sqlite_url_with_folder("postgres://a@b/c").unwrap(),
            "postgres://a@b/c"
        );
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
    }
}

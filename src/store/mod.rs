//! Persistence adapters: sea-orm (and later Redis) behind the domain's traits.
pub(crate) mod audit;
pub mod database;
pub mod django;
pub mod entities;
pub(crate) mod groups;
pub mod import;
pub(crate) mod mfa;
pub(crate) mod opaque;
pub(crate) mod redis_conn;
pub mod revocation;
pub(crate) mod sessions;
pub(crate) mod throttle;
pub(crate) mod tokens;
pub mod users;

use sea_orm::{DbErr, RuntimeErr, SqlErr};

use crate::domain::StoreError;

/// Sorts a database error into the store contract: outages become `Unavailable` (503), never
/// "not found"; unique violations become `Conflict`.
/// SQLite's BUSY and LOCKED (with their extended codes, e.g. 517 BUSY_SNAPSHOT: a transaction
/// that read before another one wrote cannot write in WAL mode): a concurrent writer won, the
/// request may be retried, so it is a 503 with `Retry-After`, never a 500.
fn sqlite_busy(e: &sea_orm::sqlx::Error) -> bool {
    e.as_database_error()
        .filter(|d| {
            d.try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
                .is_some()
        })
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, 5 | 6))
}

/// PostgreSQL's serialization failure and deadlock: a concurrent transaction won; retryable.
fn lost_to_a_concurrent_transaction(e: &sea_orm::sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "40001" || c == "40P01")
}

pub(crate) fn store_error(err: DbErr, unique_field: &'static str) -> StoreError {
    if let Some(SqlErr::UniqueConstraintViolation(_)) = err.sql_err() {
        return StoreError::Conflict(unique_field);
    }
    let unavailable = match &err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            matches!(
                e.as_ref(),
                sea_orm::sqlx::Error::Io(_)
                    | sea_orm::sqlx::Error::PoolTimedOut
                    | sea_orm::sqlx::Error::PoolClosed
                    | sea_orm::sqlx::Error::Tls(_)
                    | sea_orm::sqlx::Error::WorkerCrashed
            ) || sqlite_busy(e)
                || lost_to_a_concurrent_transaction(e)
        }
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Internal(err.to_string())
    }
}

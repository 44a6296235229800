//! Persistence adapters: sea-orm (and later Redis) behind the domain's traits.
pub(crate) mod audit;
pub mod database;
pub mod django;
pub mod entities;
pub(crate) mod groups;
pub mod import;
pub(crate) mod opaque;
pub(crate) mod redis_conn;
pub mod revocation;
pub(crate) mod throttle;
pub(crate) mod tokens;
pub mod users;

use sea_orm::{DbErr, RuntimeErr, SqlErr};

use crate::domain::StoreError;

/// Sorts a database error into the store contract: outages become `Unavailable` (503), never
/// "not found"; unique violations become `Conflict`.
pub(crate) fn store_error(err: DbErr, unique_field: &'static str) -> StoreError {
    if let Some(SqlErr::UniqueConstraintViolation(_)) = err.sql_err() {
        return StoreError::Conflict(unique_field);
    }
    let unavailable = match &err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => matches!(
            e.as_ref(),
            sea_orm::sqlx::Error::Io(_)
                | sea_orm::sqlx::Error::PoolTimedOut
                | sea_orm::sqlx::Error::PoolClosed
                | sea_orm::sqlx::Error::Tls(_)
                | sea_orm::sqlx::Error::WorkerCrashed
        ),
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Internal(err.to_string())
    }
}

//! The SQL `TokenLedger`: issued refresh tokens, their families and rotations.
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, IntoActiveModel,
    QueryFilter, TransactionTrait, UpdateMany,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use super::{entities::outstanding_token as row, store_error};
use crate::domain::{
    StoreError,
    revocation::{OutstandingToken, TokenLedger},
};

pub struct SqlTokenLedger {
    db: DatabaseConnection,
}

impl SqlTokenLedger {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn err(e: sea_orm::DbErr) -> StoreError {
    store_error(e, "jti")
}

pub(super) fn to_model(t: &OutstandingToken) -> row::Model {
    row::Model {
        jti: t.jti.clone(),
        user_id: t.user_id,
        family: t.family,
        parent_jti: t.parent_jti.clone(),
        access_jti: t.access_jti.clone(),
        access_expires_at: t.access_expires_at,
        token_sha256: t.token_sha256.clone(),
        created_at: t.created_at,
        expires_at: t.expires_at,
        rotated_at: t.rotated_at,
        grace_used: t.grace_used,
    }
}

fn to_domain(m: row::Model) -> OutstandingToken {
    OutstandingToken {
        jti: m.jti,
        user_id: m.user_id,
        family: m.family,
        parent_jti: m.parent_jti,
        access_jti: m.access_jti,
        access_expires_at: m.access_expires_at,
        token_sha256: m.token_sha256,
        created_at: m.created_at,
        expires_at: m.expires_at,
        rotated_at: m.rotated_at,
        grace_used: m.grace_used,
    }
}

#[async_trait::async_trait]
impl TokenLedger for SqlTokenLedger {
    async fn record(&self, token: &OutstandingToken) -> Result<(), StoreError> {
        row::Entity::insert(to_model(token).into_active_model())
            .exec_without_returning(&self.db)
            .await
            .map(|_| ())
            .map_err(err)
    }

    async fn find(&self, jti: &str) -> Result<Option<OutstandingToken>, StoreError> {
        Ok(row::Entity::find_by_id(jti.to_owned())
            .one(&self.db)
            .await
            .map_err(err)?
            .map(to_domain))
    }

    async fn rotate(
        &self,
        parent_jti: &str,
        child: &OutstandingToken,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let txn = self.db.begin().await.map_err(err)?;
        let claim = row::Entity::update_many()
            .col_expr(row::Column::RotatedAt, Expr::value(now))
            .filter(row::Column::Jti.eq(parent_jti))
            .filter(row::Column::RotatedAt.is_null());
        claim_then_record(txn, claim, child).await
    }

    async fn rotate_in_grace(
        &self,
        parent_jti: &str,
        child: &OutstandingToken,
        rotated_since: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let txn = self.db.begin().await.map_err(err)?;
        // A parent whose child was itself rotated is a grandparent: never let it through.
        let grandparent = row::Entity::find()
            .filter(row::Column::ParentJti.eq(parent_jti))
            .filter(row::Column::RotatedAt.is_not_null())
            .one(&txn)
            .await
            .map_err(err)?
            .is_some();
        if grandparent {
            return Ok(false);
        }
        let claim = row::Entity::update_many()
            .col_expr(row::Column::GraceUsed, Expr::value(true))
            .filter(row::Column::Jti.eq(parent_jti))
            .filter(row::Column::RotatedAt.gte(rotated_since))
            .filter(row::Column::GraceUsed.eq(false));
        claim_then_record(txn, claim, child).await
    }

    async fn close_family(
        &self,
        family: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<OutstandingToken>, StoreError> {
        let txn = self.db.begin().await.map_err(err)?;
        // A rotation that claimed a row of the family before this transaction locked it inserts
        // its child once it commits, and a statement cannot see rows committed after it began
        // (PostgreSQL, read committed): the pass that waited for that rotation misses the child.
        // So passes repeat until one closes nothing; a rotation that comes after a pass finds
        // its parent closed (locked until the commit, then rotated) and inserts nothing.
        // SQLite runs one writer at a time, so there one pass does it and the second is a check.
        let mut settled = false;
        for _ in 0..CLOSE_PASSES {
            let closed = row::Entity::update_many()
                .col_expr(row::Column::GraceUsed, Expr::value(true))
                .col_expr(
                    row::Column::RotatedAt,
                    Expr::col(row::Column::RotatedAt).if_null(now),
                )
                .filter(row::Column::Family.eq(family))
                .filter(
                    row::Column::GraceUsed
                        .eq(false)
                        .or(row::Column::RotatedAt.is_null()),
                )
                .exec(&txn)
                .await
                .map_err(err)?;
            if closed.rows_affected == 0 {
                settled = true;
                break;
            }
        }
        if !settled {
            // Rotations kept landing: closing now could leave one open. Nothing is committed;
            // the caller answers 503 and the client tries again.
            return Err(StoreError::Unavailable(format!(
                "family {family} kept rotating while it was closed"
            )));
        }
        let rows = row::Entity::find()
            .filter(row::Column::Family.eq(family))
            .all(&txn)
            .await
            .map_err(err)?;
        txn.commit().await.map_err(err)?;
        Ok(rows.into_iter().map(to_domain).collect())
    }

    async fn close(&self, jtis: &[String], now: DateTime<Utc>) -> Result<(), StoreError> {
        if jtis.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin().await.map_err(err)?;
        row::Entity::update_many()
            .col_expr(row::Column::GraceUsed, Expr::value(true))
            .filter(row::Column::Jti.is_in(jtis.iter().cloned()))
            .exec(&txn)
            .await
            .map_err(err)?;
        row::Entity::update_many()
            .col_expr(row::Column::RotatedAt, Expr::value(now))
            .filter(row::Column::Jti.is_in(jtis.iter().cloned()))
            .filter(row::Column::RotatedAt.is_null())
            .exec(&txn)
            .await
            .map_err(err)?;
        txn.commit().await.map_err(err)
    }

    async fn prune(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = row::Entity::delete_many()
            .filter(row::Column::ExpiresAt.lt(now))
            .exec(&self.db)
            .await
            .map_err(err)?;
        Ok(done.rows_affected)
    }

    async fn live_for_user(
        &self,
        user: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<OutstandingToken>, StoreError> {
        let rows = row::Entity::find()
            .filter(row::Column::UserId.eq(user))
            .filter(row::Column::RotatedAt.is_null())
            .filter(row::Column::ExpiresAt.gt(now))
            .all(&self.db)
            .await
            .map_err(err)?;
        Ok(rows.into_iter().map(to_domain).collect())
    }
}

/// At most this many closing passes over a family (each one waits for the rotations holding a
/// row of it; a chain of rotations racing one close is a few links long).
const CLOSE_PASSES: usize = 16;

/// Runs the conditional `claim` in `txn`; when it changed exactly one row (the parent is ours),
/// records `child` and commits. The conditional update is the lock: of two concurrent refreshes
/// only one changes the row; the other's transaction rolls back when dropped.
async fn claim_then_record(
    txn: DatabaseTransaction,
    claim: UpdateMany<row::Entity>,
    child: &OutstandingToken,
) -> Result<bool, StoreError> {
    if claim.exec(&txn).await.map_err(err)?.rows_affected != 1 {
        return Ok(false);
    }
    row::Entity::insert(to_model(child).into_active_model())
        .exec_without_returning(&txn)
        .await
        .map_err(err)?;
    txn.commit().await.map_err(err)?;
    Ok(true)
}

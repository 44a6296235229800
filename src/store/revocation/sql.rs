//! The record: revoked JTIs, per-user cut-offs and the revocation sequence in SQL.
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter, TransactionTrait,
    sea_query::{Expr, OnConflict},
};
use uuid::Uuid;

use crate::{
    domain::{
        StoreError,
        revocation::{RevocationStore, RevokedJti},
    },
    store::{
        entities::{revocation_sequence, revoked_jti, user_cutoff},
        store_error,
    },
};

fn err(e: sea_orm::DbErr) -> StoreError {
    store_error(e, "jti")
}

/// Raises the revocation sequence inside `txn` and returns its new value (opaque key deletions
/// count too: they travel to the other instances' memory with these numbers).
pub(crate) async fn next_sequence(txn: &sea_orm::DatabaseTransaction) -> Result<i64, StoreError> {
    revocation_sequence::Entity::update_many()
        .col_expr(
            revocation_sequence::Column::Value,
            sea_orm::sea_query::ExprTrait::add(Expr::col(revocation_sequence::Column::Value), 1),
        )
        .filter(revocation_sequence::Column::Id.eq(1))
        .exec(txn)
        .await
        .map_err(err)?;
    revocation_sequence::Entity::find_by_id(1)
        .one(txn)
        .await
        .map_err(err)?
        .map(|row| row.value)
        .ok_or_else(|| StoreError::Internal("the revocation sequence row is missing".into()))
}

/// The record: revoked JTIs and per-user cut-offs in SQL.
#[derive(Clone)]
pub struct SqlRevocations {
    db: DatabaseConnection,
}

impl SqlRevocations {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// The number of revocations SQL has recorded.
    pub async fn sequence(&self) -> Result<i64, StoreError> {
        revocation_sequence::Entity::find_by_id(1)
            .one(&self.db)
            .await
            .map_err(err)?
            .map(|row| row.value)
            .ok_or_else(|| StoreError::Internal("the revocation sequence row is missing".into()))
    }

    /// Writes the revocations and raises the sequence in one transaction; returns the new
    /// sequence number.
    pub(super) async fn revoke_counted(&self, jtis: &[RevokedJti]) -> Result<i64, StoreError> {
        if jtis.is_empty() {
            return self.sequence().await;
        }
        let now = Utc::now();
        let rows = jtis.iter().map(|r| {
            revoked_jti::Model {
                jti: r.jti.clone(),
                user_id: r.user_id,
                revoked_at: now,
                expires_at: r.expires_at,
            }
            .into_active_model()
        });
        let txn = self.db.begin().await.map_err(err)?;
        // The sequence row first: concurrent revocations queue on its lock instead of locking
        // overlapping JTIs in different orders (a deadlock under a burst of reuse detections).
        let seq = next_sequence(&txn).await?;
        revoked_jti::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(revoked_jti::Column::Jti)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(err)?;
        txn.commit().await.map_err(err)?;
        Ok(seq)
    }

    /// Sets the cut-off (forward only) and raises the sequence in one transaction.
    pub(super) async fn revoke_user_counted(
        &self,
        user: Uuid,
        cutoff: i64,
        until: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let row = user_cutoff::Model {
            user_id: user,
            not_before: cutoff,
            expires_at: until,
        }
        .into_active_model();
        let txn = self.db.begin().await.map_err(err)?;
        let seq = next_sequence(&txn).await?;
        user_cutoff::Entity::insert(row)
            .on_conflict(
                OnConflict::column(user_cutoff::Column::UserId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(err)?;
        // Each column only moves forward: a late, older cut-off changes nothing.
        user_cutoff::Entity::update_many()
            .col_expr(user_cutoff::Column::NotBefore, Expr::value(cutoff))
            .filter(user_cutoff::Column::UserId.eq(user))
            .filter(user_cutoff::Column::NotBefore.lt(cutoff))
            .exec(&txn)
            .await
            .map_err(err)?;
        user_cutoff::Entity::update_many()
            .col_expr(user_cutoff::Column::ExpiresAt, Expr::value(until))
            .filter(user_cutoff::Column::UserId.eq(user))
            .filter(user_cutoff::Column::ExpiresAt.lt(until))
            .exec(&txn)
            .await
            .map_err(err)?;
        txn.commit().await.map_err(err)?;
        Ok(seq)
    }

    pub(super) async fn live_entries(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(Vec<revoked_jti::Model>, Vec<user_cutoff::Model>), StoreError> {
        let jtis = revoked_jti::Entity::find()
            .filter(revoked_jti::Column::ExpiresAt.gt(now))
            .all(&self.db)
            .await
            .map_err(err)?;
        let cutoffs = user_cutoff::Entity::find()
            .filter(user_cutoff::Column::ExpiresAt.gt(now))
            .all(&self.db)
            .await
            .map_err(err)?;
        Ok((jtis, cutoffs))
    }
}

#[async_trait::async_trait]
impl RevocationStore for SqlRevocations {
    async fn revoke(&self, jtis: &[RevokedJti]) -> Result<(), StoreError> {
        self.revoke_counted(jtis).await.map(|_| ())
    }

    async fn revoke_user(
        &self,
        user: Uuid,
        cutoff: i64,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.revoke_user_counted(user, cutoff, until)
            .await
            .map(|_| ())
    }

    async fn is_revoked(
        &self,
        jti: Option<&str>,
        user: Option<Uuid>,
        iat: i64,
    ) -> Result<bool, StoreError> {
        if let Some(jti) = jti
            && revoked_jti::Entity::find_by_id(jti.to_owned())
                .one(&self.db)
                .await
                .map_err(err)?
                .is_some()
        {
            return Ok(true);
        }
        let Some(user) = user else { return Ok(false) };
        let cutoff = user_cutoff::Entity::find_by_id(user)
            .one(&self.db)
            .await
            .map_err(err)?;
        Ok(cutoff.is_some_and(|c| iat < c.not_before))
    }

    async fn prune(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let a = revoked_jti::Entity::delete_many()
            .filter(revoked_jti::Column::ExpiresAt.lt(now))
            .exec(&self.db)
            .await
            .map_err(err)?;
        let b = user_cutoff::Entity::delete_many()
            .filter(user_cutoff::Column::ExpiresAt.lt(now))
            .exec(&self.db)
            .await
            .map_err(err)?;
        Ok(a.rows_affected + b.rows_affected)
    }
}

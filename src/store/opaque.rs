//! The SQL `OpaqueTokenStore`.
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder,
};
use uuid::Uuid;

use super::revocation::{
    bus::Bus,
    mirror::{Event, Message},
};
use super::{entities::auth_token as row, store_error};
use crate::domain::{
    StoreError,
    opaque::{OpaqueToken, OpaqueTokenStore},
};

pub struct SqlOpaqueTokenStore {
    db: DatabaseConnection,
}

impl SqlOpaqueTokenStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn err(e: sea_orm::DbErr) -> StoreError {
    store_error(e, "key")
}

fn to_domain(m: row::Model) -> OpaqueToken {
    OpaqueToken {
        key_sha256: m.key_sha256,
        user_id: m.user_id,
        nonce: m.nonce,
        name: m.name,
        created_at: m.created_at,
        last_used_at: m.last_used_at,
        expires_at: m.expires_at,
        credential_version: m.credential_version,
    }
}

pub(super) fn to_model(t: &OpaqueToken) -> row::Model {
    row::Model {
        key_sha256: t.key_sha256.clone(),
        user_id: t.user_id,
        nonce: t.nonce.clone(),
        name: t.name.clone(),
        created_at: t.created_at,
        last_used_at: t.last_used_at,
        expires_at: t.expires_at,
        credential_version: t.credential_version,
    }
}

#[async_trait::async_trait]
impl OpaqueTokenStore for SqlOpaqueTokenStore {
    async fn insert(&self, t: &OpaqueToken) -> Result<(), StoreError> {
        row::Entity::insert(to_model(t).into_active_model())
            .exec_without_returning(&self.db)
            .await
            .map(|_| ())
            .map_err(err)
    }

    async fn by_hash(&self, key_sha256: &str) -> Result<Option<OpaqueToken>, StoreError> {
        Ok(row::Entity::find_by_id(key_sha256.to_owned())
            .one(&self.db)
            .await
            .map_err(err)?
            .map(to_domain))
    }

    async fn for_user(&self, user: Uuid) -> Result<Vec<OpaqueToken>, StoreError> {
        let rows = row::Entity::find()
            .filter(row::Column::UserId.eq(user))
            .order_by_asc(row::Column::CreatedAt)
            .all(&self.db)
            .await
            .map_err(err)?;
        Ok(rows.into_iter().map(to_domain).collect())
    }

    async fn delete(&self, key_sha256: &str) -> Result<(), StoreError> {
        row::Entity::delete_by_id(key_sha256.to_owned())
            .exec(&self.db)
            .await
            .map(|_| ())
            .map_err(err)
    }

    async fn delete_for_user(&self, user: Uuid) -> Result<u64, StoreError> {
        let done = row::Entity::delete_many()
            .filter(row::Column::UserId.eq(user))
            .exec(&self.db)
            .await
            .map_err(err)?;
        Ok(done.rows_affected)
    }

    async fn touch(&self, key_sha256: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let change = row::ActiveModel {
            key_sha256: Set(key_sha256.to_owned()),
            last_used_at: Set(Some(at)),
            ..Default::default()
        };
        row::Entity::update(change)
            .exec(&self.db)
            .await
            .map(|_| ())
            .or_else(|e| match e {
                // Deleted meanwhile (logout): nothing to touch.
                sea_orm::DbErr::RecordNotUpdated => Ok(()),
                e => Err(err(e)),
            })
    }
}

impl SqlOpaqueTokenStore {
    /// Deletes the key (or every key of a user) and raises the revocation sequence in one
    /// transaction; the sequence number the deletion got.
    async fn delete_counted(
        &self,
        filter: sea_orm::sea_query::SimpleExpr,
    ) -> Result<(u64, i64), StoreError> {
        use sea_orm::TransactionTrait;
        let txn = self.db.begin().await.map_err(err)?;
        // The sequence row first, as every revocation takes it (one lock order).
        let seq = super::revocation::next_sequence(&txn).await?;
        let done = row::Entity::delete_many()
            .filter(filter)
            .exec(&txn)
            .await
            .map_err(err)?;
        txn.commit().await.map_err(err)?;
        Ok((done.rows_affected, seq))
    }
}

/// Opaque keys answered from this instance's memory while its revocation copy is trusted: a
/// key seen once is not read from SQL again until it is deleted here or anywhere (the deletion
/// travels with a revocation sequence number, so a lost one stops the trust like any other).
pub struct MirroredOpaqueStore {
    sql: SqlOpaqueTokenStore,
    bus: Bus,
}

impl MirroredOpaqueStore {
    pub fn new(sql: SqlOpaqueTokenStore, bus: Bus) -> Self {
        Self { sql, bus }
    }

    async fn deleted(&self, seq: i64, hashes: Vec<String>, user: Option<Uuid>) {
        self.bus
            .announce(Message {
                seq,
                event: Event::Keys { hashes, user },
            })
            .await;
    }
}

#[async_trait::async_trait]
impl OpaqueTokenStore for MirroredOpaqueStore {
    async fn insert(&self, t: &OpaqueToken) -> Result<(), StoreError> {
        self.sql.insert(t).await
    }

    async fn by_hash(&self, key_sha256: &str) -> Result<Option<OpaqueToken>, StoreError> {
        let mirror = &self.bus.mirror;
        if let Some(row) = mirror.key(key_sha256) {
            metrics::counter!("tessera_opaque_key_checks_total", "answered_by" => "memory")
                .increment(1);
            return Ok(Some(row));
        }
        let epoch = mirror.key_epoch();
        let found = self.sql.by_hash(key_sha256).await?;
        if let Some(row) = &found
            && mirror.is_trusted()
        {
            mirror.remember_key(row, epoch);
        }
        Ok(found)
    }

    async fn for_user(&self, user: Uuid) -> Result<Vec<OpaqueToken>, StoreError> {
        self.sql.for_user(user).await
    }

    async fn delete(&self, key_sha256: &str) -> Result<(), StoreError> {
        let (_, seq) = self
            .sql
            .delete_counted(row::Column::KeySha256.eq(key_sha256.to_owned()))
            .await?;
        self.deleted(seq, vec![key_sha256.to_owned()], None).await;
        Ok(())
    }

    async fn delete_for_user(&self, user: Uuid) -> Result<u64, StoreError> {
        let (n, seq) = self
            .sql
            .delete_counted(row::Column::UserId.eq(user))
            .await?;
        self.deleted(seq, Vec::new(), Some(user)).await;
        Ok(n)
    }

    async fn touch(&self, key_sha256: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.sql.touch(key_sha256, at).await?;
        // The cached row carries the new time, so the next minute's touch is not repeated.
        let mirror = &self.bus.mirror;
        if let Some(mut row) = mirror.key(key_sha256) {
            let epoch = mirror.key_epoch();
            row.last_used_at = Some(at);
            mirror.remember_key(&row, epoch);
        }
        Ok(())
    }
}

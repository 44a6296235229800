//! The SQL `OpaqueTokenStore`.
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder,
};
use uuid::Uuid;

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

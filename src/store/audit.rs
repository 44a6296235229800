//! The SQL copy of the audit log.
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter};

use super::{entities::audit_event as row, store_error};
use crate::domain::StoreError;

/// One audit event as stored.
#[derive(Debug, Clone, Default)]
pub struct AuditRecord {
    pub at: Option<DateTime<Utc>>,
    pub event: String,
    pub user_id: Option<String>,
    pub actor_id: Option<String>,
    pub request_id: String,
    pub peer: String,
    pub user_agent: String,
}

pub struct SqlAuditLog {
    db: DatabaseConnection,
}

impl SqlAuditLog {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    pub async fn insert(&self, r: AuditRecord) -> Result<(), StoreError> {
        let clip = |s: String, n: usize| s.chars().take(n).collect::<String>();
        let model = row::Model {
            id: uuid::Uuid::now_v7(),
            at: r.at.unwrap_or_else(Utc::now),
            event: clip(r.event, 100),
            user_id: r.user_id.map(|s| clip(s, 64)),
            actor_id: r.actor_id.map(|s| clip(s, 64)),
            request_id: clip(r.request_id, 64),
            peer: clip(r.peer, 64),
            user_agent: clip(r.user_agent, 300),
        };
        row::Entity::insert(model.into_active_model())
            .exec_without_returning(&self.db)
            .await
            .map(|_| ())
            .map_err(|e| store_error(e, "id"))
    }

    /// Deletes events older than `before`; returns how many.
    pub async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = row::Entity::delete_many()
            .filter(row::Column::At.lt(before))
            .exec(&self.db)
            .await
            .map_err(|e| store_error(e, "id"))?;
        Ok(done.rows_affected)
    }
}

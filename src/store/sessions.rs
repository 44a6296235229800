//! The SQL `SessionStore`: the details of each login.
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
};
use uuid::Uuid;

use super::{entities::session as row, store_error};
use crate::domain::{
    StoreError,
    sessions::{Seen, SessionKind, SessionRecord, SessionStore},
};

pub struct SqlSessionStore {
    db: DatabaseConnection,
}

impl SqlSessionStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn err(e: sea_orm::DbErr) -> StoreError {
    store_error(e, "session")
}

fn to_model(s: &SessionRecord) -> row::Model {
    row::Model {
        id: s.id,
        user_id: s.user_id,
        kind: s.kind.as_str().to_owned(),
        key_sha256: s.key_sha256.clone(),
        created_at: s.created_at,
        last_used_at: s.last_used_at,
        login_ip: s.login.ip.clone(),
        login_user_agent: s.login.user_agent.clone(),
        last_ip: s.last.ip.clone(),
        last_user_agent: s.last.user_agent.clone(),
        expires_at: s.expires_at,
        credential_version: s.credential_version,
    }
}

fn to_domain(m: row::Model) -> SessionRecord {
    SessionRecord {
        id: m.id,
        user_id: m.user_id,
        kind: match m.kind.as_str() {
            "token" => SessionKind::Token,
            _ => SessionKind::Jwt,
        },
        key_sha256: m.key_sha256,
        created_at: m.created_at,
        last_used_at: m.last_used_at,
        login: Seen {
            ip: m.login_ip,
            user_agent: m.login_user_agent,
        },
        last: Seen {
            ip: m.last_ip,
            user_agent: m.last_user_agent,
        },
        expires_at: m.expires_at,
        credential_version: m.credential_version,
    }
}

/// Records whose family, key or user is gone, or from before the user's credential change.
const ORPHANS: &str = "DELETE FROM sessions WHERE \
     (kind = 'jwt' AND NOT EXISTS (SELECT 1 FROM jwt_outstanding o WHERE o.family = sessions.id)) \
     OR (kind = 'token' AND NOT EXISTS (SELECT 1 FROM auth_tokens k WHERE k.key_sha256 = sessions.key_sha256)) \
     OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = sessions.user_id \
         AND u.credential_version = sessions.credential_version)";

#[async_trait::async_trait]
impl SessionStore for SqlSessionStore {
    async fn insert(&self, s: &SessionRecord) -> Result<(), StoreError> {
        row::Entity::insert(to_model(s).into_active_model())
            .exec_without_returning(&self.db)
            .await
            .map(|_| ())
            .map_err(err)
    }

    async fn used(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        client: &Seen,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let change = row::ActiveModel {
            last_used_at: Set(at),
            last_ip: Set(client.ip.clone()),
            last_user_agent: Set(client.user_agent.clone()),
            expires_at: expires_at.map_or(NotSet, |e| Set(Some(e))),
            ..Default::default()
        };
        // update_many: a session without a record (issued before sessions were recorded)
        // simply stays without one.
        row::Entity::update_many()
            .set(change)
            .filter(row::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map(|_| ())
            .map_err(err)
    }

    async fn for_user(&self, user: Uuid) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = row::Entity::find()
            .filter(row::Column::UserId.eq(user))
            .order_by_asc(row::Column::CreatedAt)
            .all(&self.db)
            .await
            .map_err(err)?;
        Ok(rows.into_iter().map(to_domain).collect())
    }

    async fn delete(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        row::Entity::delete_many()
            .filter(row::Column::Id.is_in(ids.iter().copied()))
            .exec(&self.db)
            .await
            .map(|_| ())
            .map_err(err)
    }

    async fn prune(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        use sea_orm::ConnectionTrait;
        let expired = row::Entity::delete_many()
            .filter(row::Column::ExpiresAt.lt(now))
            .exec(&self.db)
            .await
            .map_err(err)?;
        let orphans = self.db.execute_unprepared(ORPHANS).await.map_err(err)?;
        Ok(expired.rows_affected + orphans.rows_affected())
    }
}

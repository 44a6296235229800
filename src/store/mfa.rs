//! The SQL `MfaStore`. Every one-time rule (a time-step, a recovery code, an mfa_token) is a
//! single conditional statement, so parallel requests cannot both pass it.
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter, TransactionTrait,
    sea_query::Expr,
};
use uuid::Uuid;

use super::{
    entities::{mfa_recovery_code as code, mfa_token as token, mfa_totp as totp},
    store_error,
};
use crate::domain::{
    StoreError,
    mfa::{LoginKind, MfaStore, MfaToken, TotpFactor},
};

pub struct SqlMfaStore {
    db: DatabaseConnection,
}

impl SqlMfaStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn err(e: sea_orm::DbErr) -> StoreError {
    store_error(e, "user_id")
}

fn kind_of(text: &str) -> Option<LoginKind> {
    [LoginKind::Pair, LoginKind::Key]
        .into_iter()
        .find(|k| k.as_str() == text)
}

#[async_trait::async_trait]
impl MfaStore for SqlMfaStore {
    async fn factor(&self, user: Uuid) -> Result<Option<TotpFactor>, StoreError> {
        Ok(totp::Entity::find_by_id(user)
            .one(&self.db)
            .await
            .map_err(err)?
            .map(|m| TotpFactor {
                user_id: m.user_id,
                secret_sealed: m.secret_sealed,
                confirmed: m.confirmed,
                last_step: m.last_step,
                created_at: m.created_at,
            }))
    }

    async fn put_pending(&self, f: &TotpFactor) -> Result<bool, StoreError> {
        totp::Entity::delete_many()
            .filter(totp::Column::UserId.eq(f.user_id))
            .filter(totp::Column::Confirmed.eq(false))
            .exec(&self.db)
            .await
            .map_err(err)?;
        let row = totp::Model {
            user_id: f.user_id,
            secret_sealed: f.secret_sealed.clone(),
            confirmed: false,
            last_step: f.last_step,
            created_at: f.created_at,
        };
        match totp::Entity::insert(row.into_active_model())
            .exec_without_returning(&self.db)
            .await
            .map_err(err)
        {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => match self.factor(f.user_id).await? {
                Some(existing) if existing.confirmed => Ok(false),
                // Another enrolment of the same user landed between the two statements.
                _ => Err(StoreError::Unavailable(
                    "a concurrent TOTP enrolment of the same user".into(),
                )),
            },
            Err(e) => Err(e),
        }
    }

    async fn confirm(
        &self,
        user: Uuid,
        sealed: &str,
        step: i64,
        recovery_sha256: &[String],
    ) -> Result<bool, StoreError> {
        let txn = self.db.begin().await.map_err(err)?;
        let done = totp::Entity::update_many()
            .col_expr(totp::Column::Confirmed, Expr::value(true))
            .col_expr(totp::Column::LastStep, Expr::value(step))
            .filter(totp::Column::UserId.eq(user))
            .filter(totp::Column::Confirmed.eq(false))
            .filter(totp::Column::SecretSealed.eq(sealed))
            .exec(&txn)
            .await
            .map_err(err)?;
        if done.rows_affected != 1 {
            return Ok(false);
        }
        code::Entity::delete_many()
            .filter(code::Column::UserId.eq(user))
            .exec(&txn)
            .await
            .map_err(err)?;
        let rows = recovery_sha256.iter().map(|h| {
            code::Model {
                code_sha256: h.clone(),
                user_id: user,
            }
            .into_active_model()
        });
        code::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await
            .map_err(err)?;
        txn.commit().await.map_err(err)?;
        Ok(true)
    }

    async fn advance_step(&self, user: Uuid, step: i64) -> Result<bool, StoreError> {
        let done = totp::Entity::update_many()
            .col_expr(totp::Column::LastStep, Expr::value(step))
            .filter(totp::Column::UserId.eq(user))
            .filter(totp::Column::Confirmed.eq(true))
            .filter(totp::Column::LastStep.lt(step))
            .exec(&self.db)
            .await
            .map_err(err)?;
        Ok(done.rows_affected == 1)
    }

    async fn use_recovery_code(&self, user: Uuid, code_sha256: &str) -> Result<bool, StoreError> {
        let done = code::Entity::delete_many()
            .filter(code::Column::CodeSha256.eq(code_sha256))
            .filter(code::Column::UserId.eq(user))
            .exec(&self.db)
            .await
            .map_err(err)?;
        Ok(done.rows_affected == 1)
    }

    async fn remove(&self, user: Uuid) -> Result<bool, StoreError> {
        let txn = self.db.begin().await.map_err(err)?;
        let done = totp::Entity::delete_many()
            .filter(totp::Column::UserId.eq(user))
            .exec(&txn)
            .await
            .map_err(err)?;
        code::Entity::delete_many()
            .filter(code::Column::UserId.eq(user))
            .exec(&txn)
            .await
            .map_err(err)?;
        token::Entity::delete_many()
            .filter(token::Column::UserId.eq(user))
            .exec(&txn)
            .await
            .map_err(err)?;
        txn.commit().await.map_err(err)?;
        Ok(done.rows_affected > 0)
    }

    async fn prune_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = token::Entity::delete_many()
            .filter(token::Column::ExpiresAt.lt(now))
            .exec(&self.db)
            .await
            .map_err(err)?;
        Ok(done.rows_affected)
    }

    async fn insert_token(&self, t: &MfaToken) -> Result<(), StoreError> {
        // The user's expired pending logins go first, so abandoned ones do not pile up.
        token::Entity::delete_many()
            .filter(token::Column::UserId.eq(t.user_id))
            .filter(token::Column::ExpiresAt.lt(Utc::now()))
            .exec(&self.db)
            .await
            .map_err(err)?;
        let row = token::Model {
            token_sha256: t.token_sha256.clone(),
            user_id: t.user_id,
            kind: t.kind.as_str().to_owned(),
            credential_version: t.credential_version,
            expires_at: t.expires_at,
        };
        token::Entity::insert(row.into_active_model())
            .exec_without_returning(&self.db)
            .await
            .map(|_| ())
            .map_err(err)
    }

    async fn token(&self, token_sha256: &str) -> Result<Option<MfaToken>, StoreError> {
        let Some(m) = token::Entity::find_by_id(token_sha256.to_owned())
            .one(&self.db)
            .await
            .map_err(err)?
        else {
            return Ok(None);
        };
        let kind = kind_of(&m.kind)
            .ok_or_else(|| StoreError::Internal(format!("unknown mfa_token kind {:?}", m.kind)))?;
        Ok(Some(MfaToken {
            token_sha256: m.token_sha256,
            user_id: m.user_id,
            kind,
            credential_version: m.credential_version,
            expires_at: m.expires_at,
        }))
    }

    async fn consume_token(&self, token_sha256: &str) -> Result<bool, StoreError> {
        let done = token::Entity::delete_many()
            .filter(token::Column::TokenSha256.eq(token_sha256))
            .exec(&self.db)
            .await
            .map_err(err)?;
        Ok(done.rows_affected == 1)
    }
}

//! The SQL side of `tessera import-django`: reads of what is already here, and each batch
//! written in one transaction.
use std::collections::{BTreeSet, HashMap, HashSet};

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect,
    TransactionTrait,
};
use uuid::Uuid;

use super::{
    entities::{auth_token, django_import, group, outstanding_token, user, user_group},
    store_error,
};
use crate::domain::{
    StoreError,
    import::{Batch, ImportStore, ImportedUser},
};

pub struct SqlImportStore {
    db: DatabaseConnection,
}

impl SqlImportStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn err(e: sea_orm::DbErr) -> StoreError {
    store_error(e, "username")
}

/// Bounded statements whatever the size of the import.
const CHUNK: usize = 500;

#[async_trait::async_trait]
impl ImportStore for SqlImportStore {
    async fn users_by_number(
        &self,
        numbers: &[i64],
    ) -> Result<HashMap<i64, ImportedUser>, StoreError> {
        let mut found = HashMap::new();
        for chunk in numbers.chunks(CHUNK) {
            let rows = user::Entity::find()
                .filter(user::Column::Number.is_in(chunk.iter().copied()))
                .all(&self.db)
                .await
                .map_err(err)?;
            let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
            let seen: HashMap<Uuid, String> = django_import::Entity::find()
                .filter(django_import::Column::UserId.is_in(ids))
                .all(&self.db)
                .await
                .map_err(err)?
                .into_iter()
                .map(|r| (r.user_id, r.password_seen))
                .collect();
            for row in rows {
                let password_seen = seen.get(&row.id).cloned();
                found.insert(
                    row.number,
                    ImportedUser {
                        user: super::users::to_domain(row),
                        password_seen,
                    },
                );
            }
        }
        Ok(found)
    }

    async fn username_owner(&self, key: &str) -> Result<Option<i64>, StoreError> {
        user::Entity::find()
            .select_only()
            .column(user::Column::Number)
            .filter(user::Column::UsernameKey.eq(key))
            .into_tuple::<i64>()
            .one(&self.db)
            .await
            .map_err(err)
    }

    async fn group_names(&self) -> Result<HashSet<String>, StoreError> {
        Ok(group::Entity::find()
            .all(&self.db)
            .await
            .map_err(err)?
            .into_iter()
            .map(|g| g.name)
            .collect())
    }

    async fn memberships(
        &self,
        users: &[Uuid],
    ) -> Result<HashMap<Uuid, BTreeSet<String>>, StoreError> {
        use crate::domain::groups::GroupStore;
        let names = super::groups::SqlGroupStore::new(self.db.clone())
            .names_of_many(users)
            .await?;
        Ok(names
            .into_iter()
            .map(|(user, names)| (user, names.into_iter().collect()))
            .collect())
    }

    async fn known_keys(&self, hashes: &[String]) -> Result<HashSet<String>, StoreError> {
        let mut found = HashSet::new();
        for chunk in hashes.chunks(CHUNK) {
            let rows = auth_token::Entity::find()
                .select_only()
                .column(auth_token::Column::KeySha256)
                .filter(auth_token::Column::KeySha256.is_in(chunk.iter().cloned()))
                .into_tuple::<String>()
                .all(&self.db)
                .await
                .map_err(err)?;
            found.extend(rows);
        }
        Ok(found)
    }

    async fn known_jtis(&self, jtis: &[String]) -> Result<HashMap<String, bool>, StoreError> {
        let mut found = HashMap::new();
        for chunk in jtis.chunks(CHUNK) {
            let rows = outstanding_token::Entity::find()
                .filter(outstanding_token::Column::Jti.is_in(chunk.iter().cloned()))
                .all(&self.db)
                .await
                .map_err(err)?;
            found.extend(rows.into_iter().map(|r| (r.jti, r.rotated_at.is_some())));
        }
        Ok(found)
    }

    async fn apply(&self, batch: &Batch) -> Result<(), StoreError> {
        let txn = self.db.begin().await.map_err(err)?;
        let now = chrono::Utc::now();
        for name in &batch.new_groups {
            let row = group::Model {
                id: Uuid::now_v7(),
                name: name.clone(),
                description: String::new(),
            };
            group::Entity::insert(row.into_active_model())
                .on_conflict(
                    OnConflict::column(group::Column::Name)
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(err)?;
        }
        for u in &batch.new_users {
            super::users::keep_number(&txn, u.number).await?;
            user::Entity::insert(super::users::to_model(u).into_active_model())
                .exec_without_returning(&txn)
                .await
                .map_err(err)?;
        }
        for u in &batch.changed_users {
            let row = super::users::to_model(u);
            user::Entity::update_many()
                .col_expr(user::Column::Username, Expr::value(row.username))
                .col_expr(user::Column::UsernameKey, Expr::value(row.username_key))
                .col_expr(user::Column::Email, Expr::value(row.email))
                .col_expr(user::Column::Password, Expr::value(row.password))
                .col_expr(user::Column::FirstName, Expr::value(row.first_name))
                .col_expr(user::Column::LastName, Expr::value(row.last_name))
                .col_expr(user::Column::IsActive, Expr::value(row.is_active))
                .col_expr(user::Column::IsStaff, Expr::value(row.is_staff))
                .col_expr(user::Column::IsSuperuser, Expr::value(row.is_superuser))
                .col_expr(user::Column::DateJoined, Expr::value(row.date_joined))
                .col_expr(user::Column::LastLogin, Expr::value(row.last_login))
                .filter(user::Column::Id.eq(u.id))
                .exec(&txn)
                .await
                .map_err(err)?;
        }
        if !batch.ended.is_empty() {
            user::Entity::update_many()
                .col_expr(
                    user::Column::CredentialVersion,
                    Expr::col(user::Column::CredentialVersion).add(1),
                )
                .filter(user::Column::Id.is_in(batch.ended.iter().copied()))
                .exec(&txn)
                .await
                .map_err(err)?;
        }
        for (id, hash) in &batch.passwords_seen {
            let row = django_import::Model {
                user_id: *id,
                password_seen: hash.clone(),
            };
            django_import::Entity::insert(row.into_active_model())
                .on_conflict(
                    OnConflict::column(django_import::Column::UserId)
                        .update_column(django_import::Column::PasswordSeen)
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(err)?;
        }
        if !batch.memberships.is_empty() {
            let ids: HashMap<String, Uuid> = group::Entity::find()
                .all(&txn)
                .await
                .map_err(err)?
                .into_iter()
                .map(|g| (g.name, g.id))
                .collect();
            for (user_id, names) in &batch.memberships {
                user_group::Entity::delete_many()
                    .filter(user_group::Column::UserId.eq(*user_id))
                    .exec(&txn)
                    .await
                    .map_err(err)?;
                for name in names {
                    let group_id = *ids.get(name).ok_or_else(|| {
                        StoreError::Internal(format!("group {name:?} was not created"))
                    })?;
                    let row = user_group::Model {
                        user_id: *user_id,
                        group_id,
                    };
                    user_group::Entity::insert(row.into_active_model())
                        .exec_without_returning(&txn)
                        .await
                        .map_err(err)?;
                }
            }
        }
        for key in &batch.keys {
            auth_token::Entity::insert(super::opaque::to_model(key).into_active_model())
                .on_conflict(
                    OnConflict::column(auth_token::Column::KeySha256)
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(err)?;
        }
        for token in &batch.outstanding {
            outstanding_token::Entity::insert(super::tokens::to_model(token).into_active_model())
                .on_conflict(
                    OnConflict::column(outstanding_token::Column::Jti)
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(err)?;
        }
        if !batch.closed.is_empty() {
            // Closed like a blacklisted token: a refresh with it is refused by the ledger too.
            outstanding_token::Entity::update_many()
                .col_expr(outstanding_token::Column::RotatedAt, Expr::value(now))
                .col_expr(outstanding_token::Column::GraceUsed, Expr::value(true))
                .filter(outstanding_token::Column::Jti.is_in(batch.closed.iter().cloned()))
                .filter(outstanding_token::Column::RotatedAt.is_null())
                .exec(&txn)
                .await
                .map_err(err)?;
        }
        txn.commit().await.map_err(err)
    }
}

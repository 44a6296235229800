//! The SQL `UserStore`, and a short-lived cache in front of it.
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::{
    entities::{auth_token, user, user_group},
    store_error,
};
use crate::domain::{
    StoreError,
    users::{User, UserPage, UserStore},
    validation::username_key,
};

pub struct SqlUserStore {
    db: DatabaseConnection,
}

impl SqlUserStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn err(e: sea_orm::DbErr) -> StoreError {
    store_error(e, "username")
}

fn to_domain(m: user::Model) -> User {
    User {
        id: m.id,
        username: m.username,
        email: m.email,
        password_hash: m.password,
        first_name: m.first_name,
        last_name: m.last_name,
        is_active: m.is_active,
        is_staff: m.is_staff,
        is_superuser: m.is_superuser,
        date_joined: m.date_joined,
        last_login: m.last_login,
    }
}

fn to_model(u: &User) -> user::Model {
    user::Model {
        id: u.id,
        username: u.username.clone(),
        username_key: username_key(&u.username),
        email: u.email.clone(),
        password: u.password_hash.clone(),
        first_name: u.first_name.clone(),
        last_name: u.last_name.clone(),
        is_active: u.is_active,
        is_staff: u.is_staff,
        is_superuser: u.is_superuser,
        date_joined: u.date_joined,
        last_login: u.last_login,
    }
}

#[async_trait::async_trait]
impl UserStore for SqlUserStore {
    async fn insert(&self, u: &User) -> Result<(), StoreError> {
        user::Entity::insert(to_model(u).into_active_model())
            .exec_without_returning(&self.db)
            .await
            .map(|_| ())
            .map_err(err)
    }

    async fn by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        Ok(user::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(err)?
            .map(to_domain))
    }

    async fn by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let found = user::Entity::find()
            .filter(user::Column::Username.eq(username))
            .one(&self.db)
            .await
            .map_err(err)?;
        Ok(found.map(to_domain))
    }

    async fn by_email(&self, email: &str) -> Result<Vec<User>, StoreError> {
        let found = user::Entity::find()
            // Django's email__iexact.
            .filter(ExprTrait::eq(
                Expr::expr(Func::lower(Expr::col(user::Column::Email))),
                email.to_lowercase(),
            ))
            .order_by_asc(user::Column::Id)
            .all(&self.db)
            .await
            .map_err(err)?;
        Ok(found.into_iter().map(to_domain).collect())
    }

    async fn username_taken(&self, username: &str) -> Result<bool, StoreError> {
        let n = user::Entity::find()
            .filter(user::Column::UsernameKey.eq(username_key(username)))
            .count(&self.db)
            .await
            .map_err(err)?;
        Ok(n > 0)
    }

    async fn list(&self, offset: u64, limit: Option<u64>) -> Result<UserPage, StoreError> {
        let total = user::Entity::find().count(&self.db).await.map_err(err)?;
        let mut query = user::Entity::find().order_by_asc(user::Column::Id);
        // SQLite has no OFFSET without LIMIT; an unlimited listing starts at the beginning.
        if let Some(limit) = limit {
            query = query.offset(offset).limit(limit);
        }
        let users = query.all(&self.db).await.map_err(err)?;
        Ok(UserPage {
            users: users.into_iter().map(to_domain).collect(),
            total,
        })
    }

    async fn update(&self, u: &User) -> Result<(), StoreError> {
        let mut active = to_model(u).into_active_model();
        // Every column but the key is rewritten; `reset_all` marks them changed.
        active = active.reset_all();
        active.update(&self.db).await.map(|_| ()).map_err(err)
    }

    async fn delete(&self, id: Uuid) -> Result<(), StoreError> {
        // Like Django's cascades: the user's group memberships and opaque keys go with it.
        let txn = self.db.begin().await.map_err(err)?;
        user_group::Entity::delete_many()
            .filter(user_group::Column::UserId.eq(id))
            .exec(&txn)
            .await
            .map_err(err)?;
        auth_token::Entity::delete_many()
            .filter(auth_token::Column::UserId.eq(id))
            .exec(&txn)
            .await
            .map_err(err)?;
        user::Entity::delete_by_id(id)
            .exec(&txn)
            .await
            .map_err(err)?;
        txn.commit().await.map_err(err)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        super::database::ping(&self.db).await
    }
}

/// Keeps users read by id for a short time, so an authenticated request costs no SQL round trip.
/// Writes through this store drop the entry; a change made by another instance shows within
/// the TTL (access tokens themselves live minutes without any lookup in SimpleJWT).
pub struct CachedUserStore {
    inner: Arc<dyn UserStore>,
    cache: quick_cache::sync::Cache<Uuid, (Instant, User)>,
    ttl: Duration,
}

impl CachedUserStore {
    pub fn new(inner: Arc<dyn UserStore>, ttl: Duration, capacity: usize) -> Self {
        Self {
            inner,
            cache: quick_cache::sync::Cache::new(capacity),
            ttl,
        }
    }
}

#[async_trait::async_trait]
impl UserStore for CachedUserStore {
    async fn insert(&self, user: &User) -> Result<(), StoreError> {
        self.inner.insert(user).await
    }

    async fn by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        if let Some((at, user)) = self.cache.get(&id)
            && at.elapsed() < self.ttl
        {
            return Ok(Some(user));
        }
        let found = self.inner.by_id(id).await?;
        match &found {
            Some(user) => self.cache.insert(id, (Instant::now(), user.clone())),
            None => {
                self.cache.remove(&id);
            }
        }
        Ok(found)
    }

    async fn by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.inner.by_username(username).await
    }

    async fn by_email(&self, email: &str) -> Result<Vec<User>, StoreError> {
        self.inner.by_email(email).await
    }

    async fn username_taken(&self, username: &str) -> Result<bool, StoreError> {
        self.inner.username_taken(username).await
    }

    async fn list(&self, offset: u64, limit: Option<u64>) -> Result<UserPage, StoreError> {
        self.inner.list(offset, limit).await
    }

    async fn update(&self, user: &User) -> Result<(), StoreError> {
        // Dropped once written, so a read racing the write cannot keep the old row.
        let done = self.inner.update(user).await;
        self.cache.remove(&user.id);
        done
    }

    async fn delete(&self, id: Uuid) -> Result<(), StoreError> {
        let done = self.inner.delete(id).await;
        self.cache.remove(&id);
        done
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

//! The SQL `UserStore`, and a short-lived cache in front of it.
use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::{
    entities::{
        auth_token, django_import, mfa_recovery_code, mfa_token, mfa_totp, user, user_group,
        user_numbers,
    },
    store_error,
};
use crate::domain::{
    StoreError,
    users::{Numbering, User, UserChange, UserPage, UserStore},
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

pub(super) fn to_domain(m: user::Model) -> User {
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
        credential_version: m.credential_version,
        number: m.number,
    }
}

pub(super) fn to_model(u: &User) -> user::Model {
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
        credential_version: u.credential_version,
        number: u.number,
    }
}

/// Takes the next user number inside `txn` (the counter's row lock orders concurrent
/// registrations on PostgreSQL; a rolled-back insert gives its number back).
async fn next_number(txn: &sea_orm::DatabaseTransaction) -> Result<i64, StoreError> {
    user_numbers::Entity::update_many()
        .col_expr(
            user_numbers::Column::Last,
            Expr::col(user_numbers::Column::Last).add(1),
        )
        .filter(user_numbers::Column::Id.eq(1))
        .exec(txn)
        .await
        .map_err(err)?;
    user_numbers::Entity::find_by_id(1)
        .one(txn)
        .await
        .map_err(err)?
        .map(|row| row.last)
        .ok_or_else(|| StoreError::Internal("the user number counter row is missing".into()))
}

/// Raises the counter to at least `number`, so later users continue after a kept one.
pub(super) async fn keep_number(
    txn: &sea_orm::DatabaseTransaction,
    number: i64,
) -> Result<(), StoreError> {
    let taken = user::Entity::find()
        .filter(user::Column::Number.eq(number))
        .count(txn)
        .await
        .map_err(err)?;
    if taken > 0 {
        return Err(StoreError::Conflict("number"));
    }
    user_numbers::Entity::update_many()
        .col_expr(user_numbers::Column::Last, Expr::value(number))
        .filter(user_numbers::Column::Id.eq(1))
        .filter(user_numbers::Column::Last.lt(number))
        .exec(txn)
        .await
        .map(|_| ())
        .map_err(err)
}

/// The `UPDATE` of the columns `change` names for user `id`; None when it names none.
fn update_of(id: Uuid, change: &UserChange) -> Option<sea_orm::UpdateMany<user::Entity>> {
    if *change == UserChange::default() {
        return None;
    }
    // Only the named columns are written: a concurrent change to another column stands.
    let mut update = user::Entity::update_many().filter(user::Column::Id.eq(id));
    if let Some(username) = &change.username {
        update = update
            .col_expr(user::Column::Username, Expr::value(username.clone()))
            .col_expr(
                user::Column::UsernameKey,
                Expr::value(username_key(username)),
            );
    }
    if let Some(email) = &change.email {
        update = update.col_expr(user::Column::Email, Expr::value(email.clone()));
    }
    if let Some(hash) = &change.password_hash {
        update = update.col_expr(user::Column::Password, Expr::value(hash.clone()));
    }
    if let Some(active) = change.is_active {
        update = update.col_expr(user::Column::IsActive, Expr::value(active));
    }
    if let Some(at) = change.last_login {
        update = update.col_expr(user::Column::LastLogin, Expr::value(at));
    }
    if change.end_sessions {
        update = update.col_expr(
            user::Column::CredentialVersion,
            Expr::col(user::Column::CredentialVersion).add(1),
        );
    }
    Some(update)
}

#[async_trait::async_trait]
impl UserStore for SqlUserStore {
    async fn insert(&self, u: &User, numbering: Numbering) -> Result<i64, StoreError> {
        let txn = self.db.begin().await.map_err(err)?;
        let number = match numbering {
            Numbering::Next => next_number(&txn).await?,
            Numbering::Keep if u.number > 0 => {
                keep_number(&txn, u.number).await?;
                u.number
            }
            Numbering::Keep => {
                return Err(StoreError::Internal(format!(
                    "user number {} cannot be kept",
                    u.number
                )));
            }
        };
        let mut row = to_model(u);
        row.number = number;
        user::Entity::insert(row.into_active_model())
            .exec_without_returning(&txn)
            .await
            .map_err(err)?;
        txn.commit().await.map_err(err)?;
        Ok(number)
    }

    async fn by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        Ok(user::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(err)?
            .map(to_domain))
    }

    async fn by_number(&self, number: i64) -> Result<Option<User>, StoreError> {
        Ok(user::Entity::find()
            .filter(user::Column::Number.eq(number))
            .one(&self.db)
            .await
            .map_err(err)?
            .map(to_domain))
    }

    async fn by_ids(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, User>, StoreError> {
        let mut found = HashMap::new();
        // Bounded statements: a few hundred parameters each, whatever the number of ids.
        for chunk in ids.chunks(500) {
            let rows = user::Entity::find()
                .filter(user::Column::Id.is_in(chunk.iter().copied()))
                .all(&self.db)
                .await
                .map_err(err)?;
            found.extend(rows.into_iter().map(|m| (m.id, to_domain(m))));
        }
        Ok(found)
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
            .order_by_asc(user::Column::Number)
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
        let mut query = user::Entity::find().order_by_asc(user::Column::Number);
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

    async fn change(&self, id: Uuid, change: &UserChange) -> Result<(), StoreError> {
        match update_of(id, change) {
            None => Ok(()),
            Some(update) => update.exec(&self.db).await.map(|_| ()).map_err(err),
        }
    }

    async fn change_if_password_unchanged(
        &self,
        id: Uuid,
        seen_hash: &str,
        change: &UserChange,
    ) -> Result<bool, StoreError> {
        let Some(update) = update_of(id, change) else {
            return Ok(false);
        };
        // One conditional statement: of a login's upgrade and a concurrent password change,
        // the change is never overwritten, whichever commits first.
        let done = update
            .filter(user::Column::Password.eq(seen_hash))
            .exec(&self.db)
            .await
            .map_err(err)?;
        Ok(done.rows_affected == 1)
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
        // Its second factor, recovery codes and pending logins.
        mfa_totp::Entity::delete_by_id(id)
            .exec(&txn)
            .await
            .map_err(err)?;
        mfa_recovery_code::Entity::delete_many()
            .filter(mfa_recovery_code::Column::UserId.eq(id))
            .exec(&txn)
            .await
            .map_err(err)?;
        mfa_token::Entity::delete_many()
            .filter(mfa_token::Column::UserId.eq(id))
            .exec(&txn)
            .await
            .map_err(err)?;
        django_import::Entity::delete_by_id(id)
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
    /// Number to id: both never change and numbers are never reused, so an entry stays true
    /// (a deleted user's number leads to an id that is no longer found).
    numbers: quick_cache::sync::Cache<i64, Uuid>,
    ttl: Duration,
    /// Counts writes through this store. A read that started before a write must not put the
    /// row it read into the cache after the write dropped the entry: it would bring back the
    /// old row for a whole TTL.
    writes: AtomicU64,
}

impl CachedUserStore {
    pub fn new(inner: Arc<dyn UserStore>, ttl: Duration, capacity: usize) -> Self {
        Self {
            inner,
            cache: quick_cache::sync::Cache::new(capacity),
            numbers: quick_cache::sync::Cache::new(capacity),
            ttl,
            writes: AtomicU64::new(0),
        }
    }

    /// Marks a write to `id` done: later reads go to the inner store.
    fn written(&self, id: Uuid) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.cache.remove(&id);
    }
}

#[async_trait::async_trait]
impl UserStore for CachedUserStore {
    async fn insert(&self, user: &User, numbering: Numbering) -> Result<i64, StoreError> {
        self.inner.insert(user, numbering).await
    }

    async fn by_number(&self, number: i64) -> Result<Option<User>, StoreError> {
        if let Some(id) = self.numbers.get(&number) {
            return self.by_id(id).await;
        }
        let found = self.inner.by_number(number).await?;
        if let Some(user) = &found {
            self.numbers.insert(number, user.id);
        }
        Ok(found)
    }

    async fn by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        if let Some((at, user)) = self.cache.get(&id)
            && at.elapsed() < self.ttl
        {
            return Ok(Some(user));
        }
        let writes_before = self.writes.load(Ordering::SeqCst);
        let found = self.inner.by_id(id).await?;
        match &found {
            Some(user) if self.writes.load(Ordering::SeqCst) == writes_before => {
                self.cache.insert(id, (Instant::now(), user.clone()));
            }
            _ => {
                self.cache.remove(&id);
            }
        }
        Ok(found)
    }

    async fn by_ids(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, User>, StoreError> {
        self.inner.by_ids(ids).await
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

    async fn change(&self, id: Uuid, change: &UserChange) -> Result<(), StoreError> {
        let done = self.inner.change(id, change).await;
        self.written(id);
        done
    }

    async fn change_if_password_unchanged(
        &self,
        id: Uuid,
        seen_hash: &str,
        change: &UserChange,
    ) -> Result<bool, StoreError> {
        let done = self
            .inner
            .change_if_password_unchanged(id, seen_hash, change)
            .await;
        self.written(id);
        done
    }

    async fn delete(&self, id: Uuid) -> Result<(), StoreError> {
        let done = self.inner.delete(id).await;
        self.written(id);
        done
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    async fn sql() -> SqlUserStore {
        SqlUserStore::new(crate::store::database::in_memory().await)
    }

    fn user(name: &str) -> User {
        User {
            id: Uuid::now_v7(),
            username: name.into(),
            email: format!("{name}@example.com"),
            password_hash: "hash-1".into(),
            first_name: String::new(),
            last_name: String::new(),
            is_active: true,
            is_staff: false,
            is_superuser: false,
            date_joined: Utc::now(),
            last_login: None,
            credential_version: 0,
            number: 0,
        }
    }

    #[tokio::test]
    async fn a_write_from_a_stale_read_leaves_other_columns_as_they_are() {
        let store = sql().await;
        let u = user("stale");
        store.insert(&u, Numbering::Next).await.unwrap();
        // A login read `u` (active), then a reset and a deactivation landed, then the login
        // stamps last_login: the reset and the deactivation stand.
        let reset = UserChange {
            password_hash: Some("hash-2".into()),
            is_active: Some(false),
            ..UserChange::default()
        };
        store.change(u.id, &reset).await.unwrap();
        let stamp = UserChange {
            last_login: Some(Utc::now()),
            ..UserChange::default()
        };
        store.change(u.id, &stamp).await.unwrap();
        let now = store.by_id(u.id).await.unwrap().unwrap();
        assert_eq!(now.password_hash, "hash-2");
        assert!(!now.is_active);
        assert!(now.last_login.is_some());
    }

    #[tokio::test]
    async fn kept_numbers_are_kept_and_later_users_continue_after_the_highest() {
        let store = sql().await;
        let first = store.insert(&user("first"), Numbering::Next).await.unwrap();
        let imported = User {
            number: 500,
            ..user("imported")
        };
        assert_eq!(store.insert(&imported, Numbering::Keep).await.unwrap(), 500);
        let lower = User {
            number: first + 1,
            ..user("lower")
        };
        assert_eq!(
            store.insert(&lower, Numbering::Keep).await.unwrap(),
            first + 1
        );
        assert_eq!(
            store.insert(&user("next"), Numbering::Next).await.unwrap(),
            501
        );
        let clash = User {
            number: 500,
            ..user("clash")
        };
        assert!(matches!(
            store.insert(&clash, Numbering::Keep).await,
            Err(StoreError::Conflict("number"))
        ));
        assert!(store.by_username("clash").await.unwrap().is_none());
        let found = store.by_number(500).await.unwrap().unwrap();
        assert_eq!(found.username, "imported");
        // A taken name gives its number back (the transaction rolls back).
        assert!(matches!(
            store.insert(&user("next"), Numbering::Next).await,
            Err(StoreError::Conflict("username"))
        ));
        assert_eq!(
            store.insert(&user("after"), Numbering::Next).await.unwrap(),
            502
        );
    }

    #[tokio::test]
    async fn a_conditional_password_write_leaves_a_changed_password_as_it_is() {
        let store = sql().await;
        let u = user("upgrade");
        store.insert(&u, Numbering::Next).await.unwrap();
        let version_before = u.credential_version;
        // A login checked "hash-1"; a password change to "hash-2" landed before its upgrade.
        let change_password = UserChange {
            password_hash: Some("hash-2".into()),
            end_sessions: true,
            ..UserChange::default()
        };
        store.change(u.id, &change_password).await.unwrap();
        let upgrade = UserChange {
            password_hash: Some("argon2-of-1".into()),
            ..UserChange::default()
        };
        let written = store
            .change_if_password_unchanged(u.id, "hash-1", &upgrade)
            .await
            .unwrap();
        assert!(!written);
        let now = store.by_id(u.id).await.unwrap().unwrap();
        assert_eq!(now.password_hash, "hash-2", "the change stands");
        // Unchanged since the check: written, and the credential version stays.
        let upgrade = UserChange {
            password_hash: Some("argon2-of-2".into()),
            ..UserChange::default()
        };
        let written = store
            .change_if_password_unchanged(u.id, "hash-2", &upgrade)
            .await
            .unwrap();
        assert!(written);
        let now = store.by_id(u.id).await.unwrap().unwrap();
        assert_eq!(now.password_hash, "argon2-of-2");
        assert_eq!(
            now.credential_version,
            version_before + 1,
            "only the change bumped it"
        );
        let unknown = Uuid::now_v7();
        assert!(
            !store
                .change_if_password_unchanged(unknown, "argon2-of-2", &upgrade)
                .await
                .unwrap()
        );
    }

    /// A store where a password change lands while a login checks the old hash: right before
    /// the login's conditional upgrade.
    struct PasswordChangedDuringLogin(SqlUserStore);

    #[async_trait::async_trait]
    impl UserStore for PasswordChangedDuringLogin {
        async fn insert(&self, user: &User, numbering: Numbering) -> Result<i64, StoreError> {
            self.0.insert(user, numbering).await
        }
        async fn by_number(&self, number: i64) -> Result<Option<User>, StoreError> {
            self.0.by_number(number).await
        }
        async fn by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
            self.0.by_id(id).await
        }
        async fn by_ids(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, User>, StoreError> {
            self.0.by_ids(ids).await
        }
        async fn by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
            self.0.by_username(username).await
        }
        async fn by_email(&self, email: &str) -> Result<Vec<User>, StoreError> {
            self.0.by_email(email).await
        }
        async fn username_taken(&self, username: &str) -> Result<bool, StoreError> {
            self.0.username_taken(username).await
        }
        async fn list(&self, offset: u64, limit: Option<u64>) -> Result<UserPage, StoreError> {
            self.0.list(offset, limit).await
        }
        async fn change(&self, id: Uuid, change: &UserChange) -> Result<(), StoreError> {
            self.0.change(id, change).await
        }
        async fn change_if_password_unchanged(
            &self,
            id: Uuid,
            seen_hash: &str,
            change: &UserChange,
        ) -> Result<bool, StoreError> {
            let password_change = UserChange {
                password_hash: Some("set by a password change".into()),
                end_sessions: true,
                ..UserChange::default()
            };
            self.0.change(id, &password_change).await?;
            self.0
                .change_if_password_unchanged(id, seen_hash, change)
                .await
        }
        async fn delete(&self, id: Uuid) -> Result<(), StoreError> {
            self.0.delete(id).await
        }
        async fn ping(&self) -> Result<(), StoreError> {
            self.0.ping().await
        }
    }

    fn users_over(store: Arc<dyn UserStore>) -> crate::domain::users::UserService {
        use crate::domain::passwords::{PasswordHasher, PasswordRules, PasswordSettings};
        let settings = PasswordSettings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            workers: 1,
            queue: 4,
            nice: 0,
            min_length: 8,
            max_similarity: 0.7,
        };
        crate::domain::users::UserService::new(
            store,
            Arc::new(PasswordHasher::new(&settings).unwrap()),
            PasswordRules::new(&settings),
            crate::domain::users::UserRules {
                hide_users: true,
                login_field: crate::domain::users::LoginField::Username,
                user_id: crate::domain::users::IdKind::Uuid,
            },
            None,
        )
    }

    /// "correct horse battery" as Django 5.2 hashes it with 1,000 PBKDF2 rounds.
    const DJANGO_HASH: &str =
        "pbkdf2_sha256$1000$s4ltsalt$nbzzDE4b8vulwvHIqLHruiTX1NoZDRiLc2EqS2Don+s=";

    #[tokio::test]
    async fn a_login_upgrades_a_django_hash_without_ending_sessions() {
        let store = Arc::new(sql().await);
        let mut u = user("imported");
        u.password_hash = DJANGO_HASH.into();
        u.credential_version = 3;
        store.insert(&u, Numbering::Next).await.unwrap();
        let users = users_over(store.clone());
        let logged_in = users
            .authenticate("imported", "correct horse battery", None)
            .await
            .unwrap();
        let now = store.by_id(u.id).await.unwrap().unwrap();
        assert!(
            now.password_hash
                .starts_with("$argon2id$v=19$m=64,t=1,p=1$")
        );
        assert_eq!(logged_in.password_hash, now.password_hash);
        assert_eq!(now.credential_version, 3, "no session ended");
        // The new hash is the same password.
        users
            .authenticate("imported", "correct horse battery", None)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_login_upgrade_racing_a_password_change_keeps_the_new_password() {
        let racing = Arc::new(PasswordChangedDuringLogin(sql().await));
        let mut u = user("changing");
        u.password_hash = DJANGO_HASH.into();
        racing.insert(&u, Numbering::Next).await.unwrap();
        let users = users_over(racing.clone());
        // The login proved the password it was given against the hash it read; the change
        // ends the sessions it mints through the credential version, not here.
        users
            .authenticate("changing", "correct horse battery", None)
            .await
            .unwrap();
        let now = racing.by_id(u.id).await.unwrap().unwrap();
        assert_eq!(now.password_hash, "set by a password change");
        assert_eq!(now.credential_version, 1);
    }

    /// An inner store whose reads return the row as it was when they started, and finish only
    /// once told to: a read that races a write.
    struct SlowReads {
        inner: SqlUserStore,
        read_done: tokio::sync::Notify,
        release: tokio::sync::Notify,
    }

    #[async_trait::async_trait]
    impl UserStore for SlowReads {
        async fn insert(&self, user: &User, numbering: Numbering) -> Result<i64, StoreError> {
            self.inner.insert(user, numbering).await
        }
        async fn by_number(&self, number: i64) -> Result<Option<User>, StoreError> {
            self.inner.by_number(number).await
        }
        async fn by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
            let read = self.inner.by_id(id).await;
            self.read_done.notify_one();
            self.release.notified().await;
            read
        }
        async fn by_ids(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, User>, StoreError> {
            self.inner.by_ids(ids).await
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
        async fn change(&self, id: Uuid, change: &UserChange) -> Result<(), StoreError> {
            self.inner.change(id, change).await
        }
        async fn change_if_password_unchanged(
            &self,
            id: Uuid,
            seen_hash: &str,
            change: &UserChange,
        ) -> Result<bool, StoreError> {
            self.inner
                .change_if_password_unchanged(id, seen_hash, change)
                .await
        }
        async fn delete(&self, id: Uuid) -> Result<(), StoreError> {
            self.inner.delete(id).await
        }
        async fn ping(&self) -> Result<(), StoreError> {
            self.inner.ping().await
        }
    }

    #[tokio::test]
    async fn a_read_that_started_before_a_write_does_not_cache_the_old_row() {
        let slow = Arc::new(SlowReads {
            inner: sql().await,
            read_done: tokio::sync::Notify::new(),
            release: tokio::sync::Notify::new(),
        });
        let u = user("raced");
        slow.insert(&u, Numbering::Next).await.unwrap();
        let cached = Arc::new(CachedUserStore::new(
            slow.clone(),
            Duration::from_secs(3600),
            16,
        ));
        let reader = tokio::spawn({
            let cached = cached.clone();
            async move { cached.by_id(u.id).await }
        });
        // Let the read fetch the active row, then deactivate before it finishes.
        slow.read_done.notified().await;
        let deactivate = UserChange {
            is_active: Some(false),
            ..UserChange::default()
        };
        cached.change(u.id, &deactivate).await.unwrap();
        slow.release.notify_one();
        let raced = reader.await.unwrap().unwrap().unwrap();
        assert!(raced.is_active, "the racing read saw the old row");
        // The next read must not be served the old row from the cache.
        slow.release.notify_one();
        let next = cached.by_id(u.id).await.unwrap().unwrap();
        assert!(!next.is_active, "the old row was cached after the write");
    }
}

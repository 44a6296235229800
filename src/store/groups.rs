//! The SQL `GroupStore`, and a short-lived cache of each user's group names in front of it.
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, JoinType,
    QueryFilter, QueryOrder, QuerySelect, RelationTrait, TransactionTrait,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use super::{
    entities::{group as row, user_group as member},
    store_error,
};
use crate::domain::{
    StoreError,
    groups::{Group, GroupStore},
};

/// Users per `IN (...)` list: far below every backend's bind-parameter limit (SQLite's can be
/// as low as 999), so a listing of all users never fails for its size.
const IDS_PER_QUERY: usize = 500;

pub struct SqlGroupStore {
    db: DatabaseConnection,
}

impl SqlGroupStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn err(e: sea_orm::DbErr) -> StoreError {
    store_error(e, "name")
}

fn to_model(g: &Group) -> row::Model {
    row::Model {
        id: g.id,
        name: g.name.clone(),
        description: g.description.clone(),
    }
}

#[async_trait::async_trait]
impl GroupStore for SqlGroupStore {
    async fn create(&self, group: &Group) -> Result<(), StoreError> {
        row::Entity::insert(to_model(group).into_active_model())
            .exec_without_returning(&self.db)
            .await
            .map(|_| ())
            .map_err(err)
    }

    async fn all(&self) -> Result<Vec<Group>, StoreError> {
        let rows = row::Entity::find()
            .order_by_asc(row::Column::Name)
            .all(&self.db)
            .await
            .map_err(err)?;
        Ok(rows
            .into_iter()
            .map(|m| Group {
                id: m.id,
                name: m.name,
                description: m.description,
            })
            .collect())
    }

    async fn by_name(&self, name: &str) -> Result<Option<Group>, StoreError> {
        let found = row::Entity::find()
            .filter(row::Column::Name.eq(name))
            .one(&self.db)
            .await
            .map_err(err)?;
        Ok(found.map(|m| Group {
            id: m.id,
            name: m.name,
            description: m.description,
        }))
    }

    async fn update(&self, group: &Group) -> Result<(), StoreError> {
        to_model(group)
            .into_active_model()
            .reset_all()
            .update(&self.db)
            .await
            .map(|_| ())
            .map_err(err)
    }

    async fn delete(&self, id: Uuid) -> Result<(), StoreError> {
        let txn = self.db.begin().await.map_err(err)?;
        member::Entity::delete_many()
            .filter(member::Column::GroupId.eq(id))
            .exec(&txn)
            .await
            .map_err(err)?;
        row::Entity::delete_by_id(id)
            .exec(&txn)
            .await
            .map_err(err)?;
        txn.commit().await.map_err(err)
    }

    async fn members(&self, group: Uuid) -> Result<Vec<Uuid>, StoreError> {
        let rows = member::Entity::find()
            .filter(member::Column::GroupId.eq(group))
            .order_by_asc(member::Column::UserId)
            .all(&self.db)
            .await
            .map_err(err)?;
        Ok(rows.into_iter().map(|m| m.user_id).collect())
    }

    async fn add_member(&self, group: Uuid, user: Uuid) -> Result<(), StoreError> {
        let row = member::Model {
            user_id: user,
            group_id: group,
        }
        .into_active_model();
        member::Entity::insert(row)
            .on_conflict(
                sea_orm::sea_query::OnConflict::columns([
                    member::Column::UserId,
                    member::Column::GroupId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await
            .map(|_| ())
            .map_err(err)
    }

    async fn names_of_many(
        &self,
        users: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<String>>, StoreError> {
        let mut names: HashMap<Uuid, Vec<String>> = HashMap::new();
        for chunk in users.chunks(IDS_PER_QUERY) {
            let rows: Vec<(Uuid, String)> = member::Entity::find()
                .select_only()
                .column(member::Column::UserId)
                .column(row::Column::Name)
                .join(JoinType::InnerJoin, member::Relation::Group.def())
                .filter(member::Column::UserId.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(&self.db)
                .await
                .map_err(err)?;
            for (user, name) in rows {
                names.entry(user).or_default().push(name);
            }
        }
        // Sorted here rather than in SQL: PostgreSQL's collation and SQLite's byte order
        // would disagree on case and accents.
        for list in names.values_mut() {
            list.sort_unstable();
        }
        Ok(names)
    }

    async fn member_counts(&self) -> Result<HashMap<Uuid, u64>, StoreError> {
        let rows: Vec<(Uuid, i64)> = member::Entity::find()
            .select_only()
            .column(member::Column::GroupId)
            .column_as(Expr::col(member::Column::UserId).count(), "members")
            .group_by(member::Column::GroupId)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(err)?;
        Ok(rows
            .into_iter()
            .map(|(group, count)| (group, u64::try_from(count).unwrap_or(0)))
            .collect())
    }

    async fn remove_member(&self, group: Uuid, user: Uuid) -> Result<bool, StoreError> {
        let done = member::Entity::delete_many()
            .filter(member::Column::GroupId.eq(group))
            .filter(member::Column::UserId.eq(user))
            .exec(&self.db)
            .await
            .map_err(err)?;
        Ok(done.rows_affected > 0)
    }
}

/// Keeps each user's group names for a short time (`users.cache_ttl`, like user rows), so a
/// `me` answer costs no extra SQL round trip (token claims read the SQL store itself). Writes
/// through this store drop the entries they touch once written, so a read racing the write
/// cannot keep the old names; changes made by another instance show within the TTL.
pub struct CachedGroupStore {
    inner: Arc<dyn GroupStore>,
    names: quick_cache::sync::Cache<Uuid, (Instant, Vec<String>)>,
    ttl: Duration,
}

impl CachedGroupStore {
    pub fn new(inner: Arc<dyn GroupStore>, ttl: Duration, capacity: usize) -> Self {
        Self {
            inner,
            names: quick_cache::sync::Cache::new(capacity),
            ttl,
        }
    }
}

#[async_trait::async_trait]
impl GroupStore for CachedGroupStore {
    async fn create(&self, group: &Group) -> Result<(), StoreError> {
        self.inner.create(group).await
    }

    async fn all(&self) -> Result<Vec<Group>, StoreError> {
        self.inner.all().await
    }

    async fn by_name(&self, name: &str) -> Result<Option<Group>, StoreError> {
        self.inner.by_name(name).await
    }

    async fn update(&self, group: &Group) -> Result<(), StoreError> {
        let done = self.inner.update(group).await;
        // A rename changes the names of every member.
        self.names.clear();
        done
    }

    async fn delete(&self, id: Uuid) -> Result<(), StoreError> {
        let done = self.inner.delete(id).await;
        self.names.clear();
        done
    }

    async fn members(&self, group: Uuid) -> Result<Vec<Uuid>, StoreError> {
        self.inner.members(group).await
    }

    async fn add_member(&self, group: Uuid, user: Uuid) -> Result<(), StoreError> {
        let done = self.inner.add_member(group, user).await;
        self.names.remove(&user);
        done
    }

    async fn remove_member(&self, group: Uuid, user: Uuid) -> Result<bool, StoreError> {
        let done = self.inner.remove_member(group, user).await;
        self.names.remove(&user);
        done
    }

    async fn names_of_many(
        &self,
        users: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<String>>, StoreError> {
        self.inner.names_of_many(users).await
    }

    async fn names_of(&self, user: Uuid) -> Result<Vec<String>, StoreError> {
        if let Some((at, names)) = self.names.get(&user)
            && at.elapsed() < self.ttl
        {
            return Ok(names);
        }
        let names = self.inner.names_of(user).await?;
        self.names.insert(user, (Instant::now(), names.clone()));
        Ok(names)
    }

    async fn member_counts(&self) -> Result<HashMap<Uuid, u64>, StoreError> {
        self.inner.member_counts().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> SqlGroupStore {
        SqlGroupStore::new(crate::store::database::in_memory().await)
    }

    #[tokio::test]
    async fn names_and_counts_for_many_users_cross_query_chunks() {
        let store = store().await;
        let mut groups = Vec::new();
        for name in ["manager", "Zeta", "auditor"] {
            let group = Group {
                id: Uuid::now_v7(),
                name: name.into(),
                description: String::new(),
            };
            store.create(&group).await.unwrap();
            groups.push(group);
        }
        // More users than two chunks hold; every third is in no group.
        let users: Vec<Uuid> = (0..IDS_PER_QUERY * 2 + 1).map(|_| Uuid::now_v7()).collect();
        for (i, user) in users.iter().enumerate() {
            match i % 3 {
                0 => {}
                1 => store.add_member(groups[0].id, *user).await.unwrap(),
                _ => {
                    for g in &groups {
                        store.add_member(g.id, *user).await.unwrap();
                    }
                }
            }
        }
        let names = store.names_of_many(&users).await.unwrap();
        assert_eq!(names.len(), users.len() - users.len().div_ceil(3));
        for (i, user) in users.iter().enumerate() {
            let expected: Option<Vec<&str>> = match i % 3 {
                0 => None,
                1 => Some(vec!["manager"]),
                // Byte order on every backend: capitals first.
                _ => Some(vec!["Zeta", "auditor", "manager"]),
            };
            let got: Option<Vec<&str>> = names
                .get(user)
                .map(|n| n.iter().map(String::as_str).collect());
            assert_eq!(got, expected, "user {i}");
        }
        assert_eq!(store.names_of(users[2]).await.unwrap().len(), 3);
        assert!(store.names_of_many(&[]).await.unwrap().is_empty());

        let counts = store.member_counts().await.unwrap();
        let in_all = (0..users.len()).filter(|i| i % 3 == 2).count() as u64;
        let only_manager = (0..users.len()).filter(|i| i % 3 == 1).count() as u64;
        assert_eq!(counts[&groups[0].id], in_all + only_manager);
        assert_eq!(counts[&groups[1].id], in_all);
        assert_eq!(counts[&groups[2].id], in_all);
    }
}

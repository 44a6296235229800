//! The SQL `GroupStore`.
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, TransactionTrait,
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

    async fn names_of(&self, user: Uuid) -> Result<Vec<String>, StoreError> {
        let ids: Vec<Uuid> = member::Entity::find()
            .filter(member::Column::UserId.eq(user))
            .all(&self.db)
            .await
            .map_err(err)?
            .into_iter()
            .map(|m| m.group_id)
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let groups = row::Entity::find()
            .filter(row::Column::Id.is_in(ids))
            .order_by_asc(row::Column::Name)
            .all(&self.db)
            .await
            .map_err(err)?;
        Ok(groups.into_iter().map(|g| g.name).collect())
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

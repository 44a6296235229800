//! Groups (Django's auth groups): named sets of users that staff (or the operator at the CLI)
//! manage; downstream services read them to authorize.
use std::{collections::HashMap, sync::Arc};

use uuid::Uuid;

use super::{
    DomainError, StoreError,
    users::{User, UserStore},
};

pub const MSG_GROUP_TAKEN: &str = "group with this name already exists.";

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: Uuid,
    pub name: String,
    pub description: String,
}

#[async_trait::async_trait]
pub trait GroupStore: Send + Sync {
    /// Fails with `Conflict("name")` when the name is taken.
    async fn create(&self, group: &Group) -> Result<(), StoreError>;
    /// Every group, by name.
    async fn all(&self) -> Result<Vec<Group>, StoreError>;
    async fn by_name(&self, name: &str) -> Result<Option<Group>, StoreError>;
    async fn update(&self, group: &Group) -> Result<(), StoreError>;
    /// Deletes the group and its memberships.
    async fn delete(&self, id: Uuid) -> Result<(), StoreError>;
    async fn members(&self, group: Uuid) -> Result<Vec<Uuid>, StoreError>;
    /// Adds a membership (nothing when it exists).
    async fn add_member(&self, group: Uuid, user: Uuid) -> Result<(), StoreError>;
    /// False when the user was not a member.
    async fn remove_member(&self, group: Uuid, user: Uuid) -> Result<bool, StoreError>;
    /// The names of each user's groups, sorted; users in no group have no entry. A bounded
    /// number of queries however many users are asked for (never one per user).
    async fn names_of_many(&self, users: &[Uuid])
    -> Result<HashMap<Uuid, Vec<String>>, StoreError>;
    /// The names of the user's groups, sorted.
    async fn names_of(&self, user: Uuid) -> Result<Vec<String>, StoreError> {
        Ok(self
            .names_of_many(&[user])
            .await?
            .remove(&user)
            .unwrap_or_default())
    }
    /// The number of members of every group that has any.
    async fn member_counts(&self) -> Result<HashMap<Uuid, u64>, StoreError>;
}

/// Who manages groups.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// A signed-in user; only staff may (DRF's IsAdminUser).
    User(&'a User),
    /// The operator at the command line, who holds the database already and needs no account.
    Operator,
}

impl Actor<'_> {
    /// The acting user's id, for audit events; None for the operator.
    fn user_id(&self) -> Option<Uuid> {
        match self {
            Actor::User(user) => Some(user.id),
            Actor::Operator => None,
        }
    }
}

/// Why a group operation found nothing. Over HTTP each is a plain 404 (the names are the
/// caller's own input); the CLI prints the message.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("group '{0}' does not exist")]
    UnknownGroup(String),
    #[error("user '{0}' does not exist")]
    UnknownUser(String),
    #[error("user '{user}' is not a member of group '{group}'")]
    NotMember { group: String, user: String },
}

/// Management of groups and their members, by staff or the operator.
pub struct GroupService {
    store: Arc<dyn GroupStore>,
    users: Arc<dyn UserStore>,
}

impl GroupService {
    pub fn new(store: Arc<dyn GroupStore>, users: Arc<dyn UserStore>) -> Self {
        Self { store, users }
    }

    /// Every group, by name.
    pub async fn list(&self, actor: Actor<'_>) -> Result<Vec<Group>, DomainError> {
        staff(actor)?;
        Ok(self.store.all().await?)
    }

    /// Every group, by name, with its number of members (two queries in all).
    pub async fn list_with_member_counts(
        &self,
        actor: Actor<'_>,
    ) -> Result<Vec<(Group, u64)>, DomainError> {
        let groups = self.list(actor).await?;
        let counts = self.store.member_counts().await?;
        Ok(groups
            .into_iter()
            .map(|g| {
                let count = counts.get(&g.id).copied().unwrap_or(0);
                (g, count)
            })
            .collect())
    }

    pub async fn get(&self, actor: Actor<'_>, name: &str) -> Result<Group, DomainError> {
        staff(actor)?;
        self.store
            .by_name(name)
            .await?
            .ok_or_else(|| GroupError::UnknownGroup(name.to_owned()).into())
    }

    pub async fn create(
        &self,
        actor: Actor<'_>,
        name: &str,
        description: &str,
    ) -> Result<Group, DomainError> {
        staff(actor)?;
        check_name(name)?;
        let group = Group {
            id: Uuid::now_v7(),
            name: name.to_owned(),
            description: description.to_owned(),
        };
        match self.store.create(&group).await {
            Err(StoreError::Conflict(_)) => Err(DomainError::field("name", MSG_GROUP_TAKEN)),
            other => other.map(|()| group).map_err(Into::into),
        }
    }

    /// Renames and/or re-describes a group (None keeps the field).
    pub async fn update(
        &self,
        actor: Actor<'_>,
        name: &str,
        new_name: Option<&str>,
        description: Option<&str>,
    ) -> Result<Group, DomainError> {
        let mut group = self.get(actor, name).await?;
        if let Some(new_name) = new_name {
            check_name(new_name)?;
            group.name = new_name.to_owned();
        }
        if let Some(description) = description {
            group.description = description.to_owned();
        }
        match self.store.update(&group).await {
            Err(StoreError::Conflict(_)) => Err(DomainError::field("name", MSG_GROUP_TAKEN)),
            other => other.map(|()| group).map_err(Into::into),
        }
    }

    pub async fn delete(&self, actor: Actor<'_>, name: &str) -> Result<(), DomainError> {
        let group = self.get(actor, name).await?;
        self.store.delete(group.id).await?;
        tracing::info!(target: "tessera::audit", actor_id = actor.user_id().map(tracing::field::display), group = %group.name, "group deleted");
        Ok(())
    }

    pub async fn members(&self, actor: Actor<'_>, name: &str) -> Result<Vec<User>, DomainError> {
        let group = self.get(actor, name).await?;
        let ids = self.store.members(group.id).await?;
        let mut found = self.users.by_ids(&ids).await?;
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    pub async fn add_member(
        &self,
        actor: Actor<'_>,
        name: &str,
        username: &str,
    ) -> Result<User, DomainError> {
        let group = self.get(actor, name).await?;
        let user = self.user_named(username).await?;
        self.store.add_member(group.id, user.id).await?;
        tracing::info!(target: "tessera::audit", actor_id = actor.user_id().map(tracing::field::display), user_id = %user.id, group = %group.name, "user added to group");
        Ok(user)
    }

    pub async fn remove_member(
        &self,
        actor: Actor<'_>,
        name: &str,
        username: &str,
    ) -> Result<User, DomainError> {
        let group = self.get(actor, name).await?;
        let user = self.user_named(username).await?;
        if !self.store.remove_member(group.id, user.id).await? {
            return Err(GroupError::NotMember {
                group: group.name,
                user: user.username,
            }
            .into());
        }
        tracing::info!(target: "tessera::audit", actor_id = actor.user_id().map(tracing::field::display), user_id = %user.id, group = %group.name, "user removed from group");
        Ok(user)
    }

    async fn user_named(&self, username: &str) -> Result<User, DomainError> {
        self.users
            .by_username(username)
            .await?
            .ok_or_else(|| GroupError::UnknownUser(username.to_owned()).into())
    }
}

/// DRF's IsAdminUser for users; the operator may always.
fn staff(actor: Actor<'_>) -> Result<(), DomainError> {
    match actor {
        Actor::User(user) if !user.is_staff => Err(DomainError::Forbidden),
        _ => Ok(()),
    }
}

fn check_name(name: &str) -> Result<(), DomainError> {
    // Over HTTP the body parser refuses blanks first; this guards the CLI.
    if name.trim().is_empty() {
        return Err(DomainError::field("name", "This field may not be blank."));
    }
    if name.chars().count() > 150 {
        return Err(DomainError::field(
            "name",
            &super::validation::max_chars_message(150),
        ));
    }
    if name.contains('/') {
        return Err(DomainError::field(
            "name",
            "Group names may not contain \"/\".",
        ));
    }
    Ok(())
}

//! How user bodies show roles: Djoser's `{email, id, username}` plus read-only groups and staff
//! flags when `accounts.show_user_roles` is on.
use std::{collections::HashMap, sync::Arc};

use uuid::Uuid;

use super::{
    DomainError,
    groups::GroupStore,
    users::{IdKind, User, UserRef},
};

/// What a user body shows besides Djoser's keys (read-only: no profile change touches them).
#[derive(Debug, Clone, PartialEq)]
pub struct Roles {
    /// Names of the user's groups, sorted.
    pub groups: Vec<String>,
    pub is_staff: bool,
    pub is_superuser: bool,
}

/// A user as the API shows it; `roles` is None when roles are not shown.
#[derive(Debug, Clone)]
pub struct ShownUser {
    pub user: User,
    /// The public id under `accounts.user_id`.
    pub id: UserRef,
    pub roles: Option<Roles>,
}

/// Puts roles beside users, reading group names from `groups` (None: roles are not shown).
pub struct RoleView {
    groups: Option<Arc<dyn GroupStore>>,
    ids: IdKind,
}

impl RoleView {
    pub fn new(groups: Option<Arc<dyn GroupStore>>, ids: IdKind) -> Self {
        Self { groups, ids }
    }

    /// `users` as the API shows them, in the same order; the group names of all of them are
    /// read at once.
    pub async fn shown(&self, users: Vec<User>) -> Result<Vec<ShownUser>, DomainError> {
        let mut names = match &self.groups {
            None => HashMap::new(),
            Some(groups) => {
                let ids: Vec<Uuid> = users.iter().map(|u| u.id).collect();
                groups.names_of_many(&ids).await?
            }
        };
        Ok(users
            .into_iter()
            .map(|user| {
                let groups = names.remove(&user.id).unwrap_or_default();
                self.show(user, groups)
            })
            .collect())
    }

    /// One user as the API shows it.
    pub async fn shown_one(&self, user: User) -> Result<ShownUser, DomainError> {
        let groups = match &self.groups {
            None => Vec::new(),
            Some(store) => store.names_of(user.id).await?,
        };
        Ok(self.show(user, groups))
    }

    fn show(&self, user: User, groups: Vec<String>) -> ShownUser {
        let roles = self.groups.is_some().then_some(Roles {
            groups,
            is_staff: user.is_staff,
            is_superuser: user.is_superuser,
        });
        ShownUser {
            id: user.public_id(self.ids),
            user,
            roles,
        }
    }
}

//! User accounts: registration, lookup with Djoser's visibility rules, profile changes, deletion.
use std::{collections::HashMap, net::IpAddr, sync::Arc};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    DomainError, FieldErrors, StoreError,
    groups::GroupStore,
    passwords::{MAX_PASSWORD_BYTES, PasswordHasher, PasswordRules, UserAttribute},
    throttle::LoginGuard,
    validation::{MSG_USERNAME_TAKEN, email_errors, username_errors},
};

/// A stored account.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub first_name: String,
    pub last_name: String,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub date_joined: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
}

/// One page of users and the total count.
pub struct UserPage {
    pub users: Vec<User>,
    pub total: u64,
}

/// Persistence of users; usernames are unique case-insensitively.
#[async_trait::async_trait]
pub trait UserStore: Send + Sync {
    /// Fails with `Conflict("username")` when the name is taken in any case.
    async fn insert(&self, user: &User) -> Result<(), StoreError>;
    async fn by_id(&self, id: Uuid) -> Result<Option<User>, StoreError>;
    /// Exact, case-sensitive match (logins match exactly, like Django).
    async fn by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// Users with this email address (case-insensitive), oldest first.
    async fn by_email(&self, email: &str) -> Result<Vec<User>, StoreError>;
    /// True when the name is taken in any case.
    async fn username_taken(&self, username: &str) -> Result<bool, StoreError>;
    /// Users ordered by id (creation order: UUIDv7); `limit` None means all.
    async fn list(&self, offset: u64, limit: Option<u64>) -> Result<UserPage, StoreError>;
    /// Writes every mutable field of `user`.
    async fn update(&self, user: &User) -> Result<(), StoreError>;
    async fn delete(&self, id: Uuid) -> Result<(), StoreError>;
    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// What users log in with (Djoser's LOGIN_FIELD / Django's USERNAME_FIELD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginField {
    Username,
    Email,
}

impl LoginField {
    /// The request field that carries it.
    pub fn name(self) -> &'static str {
        match self {
            LoginField::Username => "username",
            LoginField::Email => "email",
        }
    }
}

pub const MSG_EMAIL_TAKEN: &str = "User with this Email address already exists.";

/// What a registration supplies.
pub struct Registration {
    pub username: String,
    pub email: String,
    pub password: String,
    pub is_staff: bool,
    pub is_superuser: bool,
    /// False when the account waits for email activation.
    pub is_active: bool,
}

/// What a user body shows besides Djoser's `{email, id, username}` (read-only: no profile
/// change touches them).
#[derive(Debug, Clone, PartialEq)]
pub struct Roles {
    /// Names of the user's groups, sorted.
    pub groups: Vec<String>,
    pub is_staff: bool,
    pub is_superuser: bool,
}

/// A user as the API shows it; `roles` is None when `accounts.show_user_roles` is off.
#[derive(Debug, Clone)]
pub struct ShownUser {
    pub user: User,
    pub roles: Option<Roles>,
}

/// Profile fields a user may change; `None` leaves the field as it is.
#[derive(Default)]
pub struct ProfileChange {
    pub email: Option<String>,
}

/// The rules around accounts.
pub struct UserService {
    store: Arc<dyn UserStore>,
    hasher: Arc<PasswordHasher>,
    rules: PasswordRules,
    hide_users: bool,
    login_field: LoginField,
    guard: Option<Arc<LoginGuard>>,
    /// Where group names come from when user bodies show roles; None: they do not.
    roles_from: Option<Arc<dyn GroupStore>>,
}

impl UserService {
    pub fn new(
        store: Arc<dyn UserStore>,
        hasher: Arc<PasswordHasher>,
        rules: PasswordRules,
    ) -> Self {
        Self {
            store,
            hasher,
            rules,
            hide_users: true,
            login_field: LoginField::Username,
            guard: None,
            roles_from: None,
        }
    }

    pub fn store(&self) -> &Arc<dyn UserStore> {
        &self.store
    }

    /// Validates like Djoser's UserCreateSerializer and stores the new, active user.
    pub async fn register(&self, r: Registration) -> Result<User, DomainError> {
        let mut errors = FieldErrors::new();
        push(
            &mut errors,
            "username",
            self.username_problems(&r.username).await?,
        );
        push(
            &mut errors,
            "email",
            self.email_problems(&r.email, None).await?,
        );
        if errors.is_empty() {
            let attributes = [
                UserAttribute {
                    verbose_name: "username",
                    value: &r.username,
                },
                UserAttribute {
                    verbose_name: "email address",
                    value: &r.email,
                },
            ];
            push(
                &mut errors,
                "password",
                self.rules.check(&r.password, &attributes),
            );
        }
        if !errors.is_empty() {
            return Err(DomainError::Invalid(errors));
        }
        let user = User {
            id: Uuid::now_v7(),
            username: r.username,
            email: r.email,
            password_hash: self.hasher.hash(r.password).await?,
            first_name: String::new(),
            last_name: String::new(),
            is_active: r.is_active,
            is_staff: r.is_staff,
            is_superuser: r.is_superuser,
            date_joined: Utc::now(),
            last_login: None,
        };
        match self.store.insert(&user).await {
            // Lost a race with a concurrent registration of the same name.
            Err(StoreError::Conflict(_)) => Err(DomainError::field("username", MSG_USERNAME_TAKEN)),
            other => other.map(|()| user).map_err(Into::into),
        }
    }

    /// The active user with this exact username and password. Unknown users cost a dummy
    /// verification so the answer time does not reveal which usernames exist.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
        ip: Option<IpAddr>,
    ) -> Result<User, DomainError> {
        if let Some(guard) = &self.guard {
            guard.check(username, ip).await?;
        }
        let outcome = self.check_credentials(username, password).await;
        let label = match &outcome {
            Ok(user) => {
                tracing::info!(target: "tessera::audit", user_id = %user.id, "login succeeded");
                "success"
            }
            Err(DomainError::InvalidCredentials) => {
                tracing::info!(target: "tessera::audit", "login failed");
                "failure"
            }
            Err(_) => "error",
        };
        metrics::counter!("tessera_logins_total", "outcome" => label).increment(1);
        if let Some(guard) = &self.guard {
            match &outcome {
                Ok(_) => guard.succeeded(username).await,
                Err(DomainError::InvalidCredentials) => guard.failed(username, ip).await,
                Err(_) => {}
            }
        }
        outcome
    }

    async fn check_credentials(&self, username: &str, password: &str) -> Result<User, DomainError> {
        if password.len() >= MAX_PASSWORD_BYTES {
            return Err(DomainError::InvalidCredentials);
        }
        let user = match self.login_field {
            LoginField::Username => self.store.by_username(username).await?,
            // Emails are unique in this mode; an ambiguous one (from before it) logs no one in.
            LoginField::Email => match self.store.by_email(username).await?.as_slice() {
                [only] => Some(only.clone()),
                _ => None,
            },
        };
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        if !self.hasher.verify(password.to_owned(), stored).await? {
            return Err(DomainError::InvalidCredentials);
        }
        match user {
            Some(user) if user.is_active => Ok(user),
            _ => Err(DomainError::InvalidCredentials),
        }
    }

    /// The user `id` as seen by `actor`: staff see everyone, others only themselves.
    pub async fn get(&self, actor: &User, id: Uuid) -> Result<User, DomainError> {
        let user = self.store.by_id(id).await?.ok_or(DomainError::NotFound)?;
        match (actor.is_staff || actor.id == user.id, self.hide_users) {
            (true, _) => Ok(user),
            (false, true) => Err(DomainError::Hidden),
            (false, false) => Err(DomainError::Forbidden),
        }
    }

    /// What `user` logs in with under the configured login field.
    fn login_of<'u>(&self, user: &'u User) -> &'u str {
        match self.login_field {
            LoginField::Username => &user.username,
            LoginField::Email => &user.email,
        }
    }

    /// Brute-force protection for every password check by login.
    pub fn set_login_guard(&mut self, guard: Arc<LoginGuard>) {
        self.guard = Some(guard);
    }

    /// What users log in with; with email, emails are required and unique.
    pub fn set_login_field(&mut self, field: LoginField) {
        self.login_field = field;
    }

    pub fn login_field(&self) -> LoginField {
        self.login_field
    }

    /// Messages for `email` as `user`'s (or a new user's) address under the login-field rules.
    async fn email_problems(
        &self,
        email: &str,
        user: Option<Uuid>,
    ) -> Result<Vec<String>, DomainError> {
        let mut problems = email_errors(email);
        if problems.is_empty() && self.login_field == LoginField::Email {
            if email.is_empty() {
                problems.push("This field is required.".to_owned());
            } else if self
                .store
                .by_email(email)
                .await?
                .iter()
                .any(|u| Some(u.id) != user)
            {
                problems.push(MSG_EMAIL_TAKEN.to_owned());
            }
        }
        Ok(problems)
    }

    /// Djoser's HIDE_USERS: whether non-staff callers see only themselves.
    pub fn set_hide_users(&mut self, hide: bool) {
        self.hide_users = hide;
    }

    /// User bodies show groups and staff flags (`accounts.show_user_roles`), group names
    /// read from `groups`.
    pub fn show_roles(&mut self, groups: Arc<dyn GroupStore>) {
        self.roles_from = Some(groups);
    }

    /// `users` as the API shows them, in the same order; the group names of all of them are
    /// read at once.
    pub async fn shown(&self, users: Vec<User>) -> Result<Vec<ShownUser>, DomainError> {
        let mut names = match &self.roles_from {
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
        let groups = match &self.roles_from {
            None => Vec::new(),
            Some(store) => store.names_of(user.id).await?,
        };
        Ok(self.show(user, groups))
    }

    fn show(&self, user: User, groups: Vec<String>) -> ShownUser {
        let roles = self.roles_from.is_some().then_some(Roles {
            groups,
            is_staff: user.is_staff,
            is_superuser: user.is_superuser,
        });
        ShownUser { user, roles }
    }

    /// Staff list everyone (optionally one page); others get only themselves.
    pub async fn list(
        &self,
        actor: &User,
        offset: u64,
        limit: Option<u64>,
    ) -> Result<UserPage, DomainError> {
        if actor.is_staff || !self.hide_users {
            return Ok(self.store.list(offset, limit).await?);
        }
        let users = if offset == 0 {
            vec![actor.clone()]
        } else {
            vec![]
        };
        Ok(UserPage { users, total: 1 })
    }

    /// Applies a profile change to `id` (self or staff).
    pub async fn update(
        &self,
        actor: &User,
        id: Uuid,
        change: ProfileChange,
    ) -> Result<User, DomainError> {
        let mut user = self.get(actor, id).await?;
        if let Some(email) = change.email {
            let problems = self.email_problems(&email, Some(user.id)).await?;
            if !problems.is_empty() {
                return Err(DomainError::Invalid(FieldErrors::from([(
                    "email".to_owned(),
                    problems,
                )])));
            }
            user.email = email;
        }
        self.store.update(&user).await?;
        if actor.id != user.id {
            tracing::info!(target: "tessera::audit", actor_id = %actor.id, user_id = %user.id, "user updated by staff");
        }
        Ok(user)
    }

    /// Deletes `id` (self, or staff for anyone) once the actor's own password is confirmed.
    pub async fn delete(
        &self,
        actor: &User,
        id: Uuid,
        current_password: &str,
    ) -> Result<(), DomainError> {
        let target = self.store.by_id(id).await?.ok_or(DomainError::NotFound)?;
        if !(actor.is_staff || actor.id == target.id) {
            return Err(DomainError::Forbidden);
        }
        self.check_current_password(actor, current_password).await?;
        self.store.delete(target.id).await?;
        tracing::info!(target: "tessera::audit", actor_id = %actor.id, user_id = %target.id, "user deleted");
        Ok(())
    }

    /// Sets a new password after the validators pass (the CLI's changepassword).
    pub async fn set_password(
        &self,
        user: &mut User,
        new_password: &str,
    ) -> Result<(), DomainError> {
        self.check_new_password(user, new_password, "password")?;
        self.store_password(user, new_password).await
    }

    /// Django's validators for `password` as `user`'s new password, errors under `field`.
    pub fn check_new_password(
        &self,
        user: &User,
        password: &str,
        field: &str,
    ) -> Result<(), DomainError> {
        let attributes = [
            UserAttribute {
                verbose_name: "username",
                value: &user.username,
            },
            UserAttribute {
                verbose_name: "first name",
                value: &user.first_name,
            },
            UserAttribute {
                verbose_name: "last name",
                value: &user.last_name,
            },
            UserAttribute {
                verbose_name: "email address",
                value: &user.email,
            },
        ];
        let problems = self.rules.check(password, &attributes);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Invalid(FieldErrors::from([(
                field.to_owned(),
                problems,
            )])))
        }
    }

    /// Hashes and stores a new password (already validated).
    pub async fn store_password(&self, user: &mut User, password: &str) -> Result<(), DomainError> {
        user.password_hash = self.hasher.hash(password.to_owned()).await?;
        self.store.update(user).await?;
        Ok(())
    }

    /// Messages for `username` as a new name: Django's rules, then uniqueness in any case.
    pub async fn username_problems(&self, username: &str) -> Result<Vec<String>, DomainError> {
        let mut problems = username_errors(username);
        if problems.is_empty() && self.store.username_taken(username).await? {
            problems.push(MSG_USERNAME_TAKEN.to_owned());
        }
        Ok(problems)
    }

    /// `Invalid password.` under `current_password` unless `password` is the actor's.
    pub async fn check_current_password(
        &self,
        actor: &User,
        password: &str,
    ) -> Result<(), DomainError> {
        // A stolen session must not become a password oracle: these checks count toward the
        // account's lockout like logins do.
        if let Some(guard) = &self.guard {
            guard.check(self.login_of(actor), None).await?;
        }
        let ok = password.len() < MAX_PASSWORD_BYTES
            && self
                .hasher
                .verify(password.to_owned(), Some(actor.password_hash.clone()))
                .await?;
        if let Some(guard) = &self.guard {
            if ok {
                guard.succeeded(self.login_of(actor)).await;
            } else {
                guard.failed(self.login_of(actor), None).await;
            }
        }
        if ok {
            Ok(())
        } else {
            Err(DomainError::field("current_password", "Invalid password."))
        }
    }
}

fn push(errors: &mut FieldErrors, field: &str, messages: Vec<String>) {
    if !messages.is_empty() {
        errors.insert(field.to_owned(), messages);
    }
}

//! User accounts: registration, lookup with Djoser's visibility rules, profile changes, deletion.
mod model;
mod store;

use std::{net::IpAddr, sync::Arc};

use chrono::Utc;
use uuid::Uuid;

pub use model::{
    IdKind, LoginField, Numbering, ProfileChange, Registration, User, UserChange, UserPage, UserRef,
};
pub use store::UserStore;

use super::{
    DomainError, FieldErrors, StoreError,
    passwords::{
        MAX_PASSWORD_BYTES, PasswordHasher, PasswordRules, UnreadableHash, UserAttribute, Verdict,
    },
    throttle::LoginGuard,
    validation::{MSG_USERNAME_TAKEN, email_errors, normalize_username, username_errors},
};

pub const MSG_EMAIL_TAKEN: &str = "User with this Email address already exists.";

/// Djoser's settings that shape who sees whom and what users log in with (read from the
/// `[accounts]` section).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct UserRules {
    /// HIDE_USERS: non-staff callers see only themselves.
    pub hide_users: bool,
    /// With email, emails are required and unique.
    pub login_field: LoginField,
    /// The public id in bodies and tokens: the UUID, or the integer (Django's `pk`).
    pub user_id: IdKind,
}

/// The rules around accounts.
pub struct UserService {
    store: Arc<dyn UserStore>,
    hasher: Arc<PasswordHasher>,
    passwords: PasswordRules,
    rules: UserRules,
    /// Brute-force protection for every password check by login; None: off.
    guard: Option<Arc<LoginGuard>>,
}

impl UserService {
    pub fn new(
        store: Arc<dyn UserStore>,
        hasher: Arc<PasswordHasher>,
        passwords: PasswordRules,
        rules: UserRules,
        guard: Option<Arc<LoginGuard>>,
    ) -> Self {
        Self {
            store,
            hasher,
            passwords,
            rules,
            guard,
        }
    }

    /// Validates like Djoser's UserCreateSerializer and stores the new, active user.
    pub async fn register(&self, mut r: Registration) -> Result<User, DomainError> {
        r.username = normalize_username(&r.username);
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
                self.passwords.check(&r.password, &attributes),
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
            credential_version: 0,
            number: 0,
        };
        match self.store.insert(&user, Numbering::Next).await {
            // Lost a race with a concurrent registration of the same name.
            Err(StoreError::Conflict(_)) => Err(DomainError::field("username", MSG_USERNAME_TAKEN)),
            Err(e) => Err(e.into()),
            Ok(number) => Ok(User { number, ..user }),
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
        let user = self.first_factor(username, password, ip).await?;
        self.finish_login(username).await;
        Ok(user)
    }

    /// The password step of a login that may go on with a second factor: like
    /// [`UserService::authenticate`], but a right password leaves the account's failure count
    /// as it is (only [`UserService::finish_login`] or a right second factor clears it), so
    /// knowing the password never buys fresh guesses at the second factor.
    pub async fn first_factor(
        &self,
        username: &str,
        password: &str,
        ip: Option<IpAddr>,
    ) -> Result<User, DomainError> {
        // A password no one can have is no guess: refused before it is counted or hashed.
        if password.len() >= MAX_PASSWORD_BYTES {
            return Err(DomainError::InvalidCredentials);
        }
        if let Some(guard) = &self.guard {
            guard.attempt(username, ip).await?;
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
                Ok(_) => guard.right_password(ip).await,
                // Counted before the check.
                Err(DomainError::InvalidCredentials) => {}
                Err(_) => guard.not_checked(username, ip).await,
            }
        }
        outcome
    }

    /// The login of `username` is complete: its account's failure count is cleared.
    pub async fn finish_login(&self, username: &str) {
        if let Some(guard) = &self.guard {
            guard.clear_account(username).await;
        }
    }

    /// Counts a second-factor code of `user` toward the account's (and the address's) lockout
    /// before it is checked, like a password guess; a locked account is refused.
    pub async fn second_factor_attempt(
        &self,
        user: &User,
        ip: Option<IpAddr>,
    ) -> Result<(), DomainError> {
        match &self.guard {
            Some(guard) => guard.attempt(self.login_of(user), ip).await,
            None => Ok(()),
        }
    }

    /// A right second-factor code: the login is complete, the counts are cleared.
    pub async fn second_factor_passed(&self, user: &User, ip: Option<IpAddr>) {
        if let Some(guard) = &self.guard {
            guard.succeeded(self.login_of(user), ip).await;
        }
    }

    async fn check_credentials(&self, username: &str, password: &str) -> Result<User, DomainError> {
        let user = match self.rules.login_field {
            LoginField::Username => self.store.by_username(username).await?,
            // Emails are unique in this mode; an ambiguous one (from before it) logs no one in.
            LoginField::Email => match self.store.by_email(username).await?.as_slice() {
                [only] => Some(only.clone()),
                _ => None,
            },
        };
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let verdict = self.hasher.check(password.to_owned(), stored).await?;
        if let (Verdict::Unreadable(why), Some(user)) = (verdict, &user)
            && why != UnreadableHash::Unusable
        {
            // An import gone wrong locks the account out: say so (never the hash itself).
            tracing::warn!(user_id = %user.id, reason = %why, "stored password hash can never match");
        }
        if !verdict.matches() {
            return Err(DomainError::InvalidCredentials);
        }
        match user {
            Some(mut user) if user.is_active => {
                if verdict == Verdict::Outdated {
                    self.upgrade_hash(&mut user, password).await;
                }
                Ok(user)
            }
            _ => Err(DomainError::InvalidCredentials),
        }
    }

    /// The user `id` names, by UUID or by number.
    pub async fn lookup(&self, id: UserRef) -> Result<Option<User>, DomainError> {
        Ok(match id {
            UserRef::Id(id) => self.store.by_id(id).await?,
            UserRef::Number(n) => self.store.by_number(n).await?,
        })
    }

    /// The id bodies and tokens show for `user`.
    pub fn public_id(&self, user: &User) -> UserRef {
        user.public_id(self.rules.user_id)
    }

    /// Replaces a hash in an older form (imported from Django, or argon2 with other costs) with
    /// Tessera's argon2id, in the login that just proved the password (the only moment Tessera
    /// has it). Only the hash column is written, without ending sessions: the credential
    /// version stays, so tokens and keys issued before keep working. The write happens only
    /// while the hash just checked is still stored, so a password changed meanwhile stands.
    ///
    /// A failure (hashing saturated, the write refused) is logged and the login goes on: the
    /// old hash still verifies and the next login tries again, while failing would turn a
    /// bookkeeping write into a lockout.
    async fn upgrade_hash(&self, user: &mut User, password: &str) {
        let new_hash = match self.hasher.hash(password.to_owned()).await {
            Ok(hash) => hash,
            Err(e) => {
                tracing::warn!(user_id = %user.id, error = %e, "password hash not upgraded");
                return;
            }
        };
        let change = UserChange {
            password_hash: Some(new_hash.clone()),
            ..UserChange::default()
        };
        match self
            .store
            .change_if_password_unchanged(user.id, &user.password_hash, &change)
            .await
        {
            Ok(true) => {
                user.password_hash = new_hash;
                tracing::info!(target: "tessera::audit", user_id = %user.id, "password hash upgraded to argon2id");
            }
            Ok(false) => {
                tracing::info!(user_id = %user.id, "password changed during the login: hash not upgraded");
            }
            Err(e) => {
                tracing::warn!(user_id = %user.id, error = %e, "password hash not upgraded");
            }
        }
    }

    /// The user `id` as seen by `actor`: staff see everyone, others only themselves.
    pub async fn get(&self, actor: &User, id: UserRef) -> Result<User, DomainError> {
        let user = self.lookup(id).await?.ok_or(DomainError::NotFound)?;
        match (actor.is_staff || actor.id == user.id, self.rules.hide_users) {
            (true, _) => Ok(user),
            (false, true) => Err(DomainError::Hidden),
            (false, false) => Err(DomainError::Forbidden),
        }
    }

    /// What `user` logs in with under the configured login field.
    fn login_of<'u>(&self, user: &'u User) -> &'u str {
        match self.rules.login_field {
            LoginField::Username => &user.username,
            LoginField::Email => &user.email,
        }
    }

    pub fn login_field(&self) -> LoginField {
        self.rules.login_field
    }

    /// Messages for `email` as `user`'s (or a new user's) address under the login-field rules.
    async fn email_problems(
        &self,
        email: &str,
        user: Option<Uuid>,
    ) -> Result<Vec<String>, DomainError> {
        let mut problems = email_errors(email);
        if problems.is_empty() && self.rules.login_field == LoginField::Email {
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

    /// Staff list everyone (optionally one page); others get only themselves.
    pub async fn list(
        &self,
        actor: &User,
        offset: u64,
        limit: Option<u64>,
    ) -> Result<UserPage, DomainError> {
        if actor.is_staff || !self.rules.hide_users {
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
        id: UserRef,
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
            let change = UserChange {
                email: Some(email.clone()),
                ..UserChange::default()
            };
            self.store.change(user.id, &change).await?;
            user.email = email;
        }
        if actor.id != user.id {
            tracing::info!(target: "tessera::audit", actor_id = %actor.id, user_id = %user.id, "user updated by staff");
        }
        Ok(user)
    }

    /// Deletes `id` (self, or staff for anyone) once the actor's own password is confirmed.
    pub async fn delete(
        &self,
        actor: &User,
        id: UserRef,
        current_password: &str,
    ) -> Result<(), DomainError> {
        let target = self.lookup(id).await?.ok_or(DomainError::NotFound)?;
        if !(actor.is_staff || actor.id == target.id) {
            return Err(DomainError::Forbidden);
        }
        self.check_current_password(actor, current_password).await?;
        self.store.delete(target.id).await?;
        tracing::info!(target: "tessera::audit", actor_id = %actor.id, user_id = %target.id, "user deleted");
        Ok(())
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
        let problems = self.passwords.check(password, &attributes);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Invalid(FieldErrors::from([(
                field.to_owned(),
                problems,
            )])))
        }
    }

    /// The stored form of a new (already validated) password.
    pub async fn hash_password(&self, password: &str) -> Result<String, DomainError> {
        self.hasher.hash(password.to_owned()).await
    }

    /// Writes `change` to `id`; with `change.end_sessions` the credential version is bumped in
    /// the same statement.
    pub async fn apply(&self, id: Uuid, change: &UserChange) -> Result<(), DomainError> {
        Ok(self.store.change(id, change).await?)
    }

    /// The user with this id, active or not.
    pub async fn find(&self, id: Uuid) -> Result<Option<User>, DomainError> {
        Ok(self.store.by_id(id).await?)
    }

    /// The users with this email address (case-insensitive), oldest first.
    pub async fn with_email(&self, email: &str) -> Result<Vec<User>, DomainError> {
        Ok(self.store.by_email(email).await?)
    }

    /// The user with exactly this username (the operator's lookups).
    pub async fn named(&self, username: &str) -> Result<Option<User>, DomainError> {
        Ok(self.store.by_username(username).await?)
    }

    /// Activates an account (deactivation ends sessions: `AccountService::deactivate`).
    pub async fn activate(&self, id: Uuid) -> Result<(), DomainError> {
        let change = UserChange {
            is_active: Some(true),
            ..UserChange::default()
        };
        Ok(self.store.change(id, &change).await?)
    }

    /// Gives `user` a new (validated) username; a name taken meanwhile is a field error.
    pub async fn rename(&self, user: &mut User, username: &str) -> Result<(), DomainError> {
        let change = UserChange {
            username: Some(username.to_owned()),
            ..UserChange::default()
        };
        match self.store.change(user.id, &change).await {
            Err(StoreError::Conflict(_)) => {
                Err(DomainError::field("new_username", MSG_USERNAME_TAKEN))
            }
            other => other.map_err(Into::into),
        }?;
        user.username = username.to_owned();
        Ok(())
    }

    /// Stamps the time of a login on `user`.
    pub async fn record_login(&self, user: &mut User) -> Result<(), DomainError> {
        let now = Utc::now();
        let change = UserChange {
            last_login: Some(now),
            ..UserChange::default()
        };
        self.store.change(user.id, &change).await?;
        user.last_login = Some(now);
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
        // account's lockout like logins do, before the hash is checked.
        if let Some(guard) = &self.guard {
            guard.attempt(self.login_of(actor), None).await?;
        }
        let checked = if password.len() < MAX_PASSWORD_BYTES {
            self.hasher
                .verify(password.to_owned(), Some(actor.password_hash.clone()))
                .await
        } else {
            Ok(false)
        };
        if let Some(guard) = &self.guard {
            match &checked {
                Ok(true) => guard.succeeded(self.login_of(actor), None).await,
                Ok(false) => {}
                Err(_) => guard.not_checked(self.login_of(actor), None).await,
            }
        }
        let ok = checked?;
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

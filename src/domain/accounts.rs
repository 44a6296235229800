//! Djoser's account lifecycle: activation, password and username change and reset, the emails
//! that carry their links, and logging out everywhere on a password change.
use std::sync::Arc;

use uuid::Uuid;

use super::{
    DomainError, FieldErrors,
    account_tokens::{AccountTokens, Purpose},
    mail::{Email, EmailKind, MailLink, MailUser, Mailer},
    opaque::OpaqueTokenService,
    tokens::TokenService,
    users::{Registration, User, UserChange, UserRules, UserService},
    validation::{email_errors, normalize_username},
};

pub const MSG_BAD_UID: &str = "Invalid user id or user doesn't exist.";
pub const MSG_BAD_TOKEN: &str = "Invalid token for given user.";
pub const MSG_PASSWORD_MISMATCH: &str = "The two password fields didn't match.";
pub const MSG_EMAIL_NOT_FOUND: &str = "User with given email does not exist.";
const MSG_REQUIRED: &str = "This field is required.";

/// Djoser's settings that shape the flows: the `[accounts]` section, read from it by serde.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountRules {
    /// `hide_users` and `login_field`, which the user service applies.
    #[serde(flatten)]
    pub users: UserRules,
    /// User bodies also show groups, is_staff and is_superuser.
    pub show_user_roles: bool,
    pub user_create_password_retype: bool,
    pub set_password_retype: bool,
    pub password_reset_confirm_retype: bool,
    pub send_activation_email: bool,
    pub send_confirmation_email: bool,
    pub password_changed_email_confirmation: bool,
    pub username_changed_email_confirmation: bool,
    pub activation_url: String,
    pub password_reset_confirm_url: String,
    pub username_reset_confirm_url: String,
    /// The scheme and host of emailed links (see [`AccountRules::site_url`]).
    pub protocol: String,
    pub domain: String,
    pub password_reset_show_email_not_found: bool,
    pub username_reset_show_email_not_found: bool,
    pub logout_on_password_change: bool,
    /// How long an emailed token (activation, reset) stays valid.
    #[serde(deserialize_with = "super::setting_values::duration")]
    pub password_reset_timeout: std::time::Duration,
    /// Staff accounts must enable TOTP before they may use staff endpoints (with `[mfa]` on).
    pub require_mfa_for_staff: bool,
}

impl AccountRules {
    /// `{protocol}://{domain}`, put before the routes of emailed links.
    pub fn site_url(&self) -> String {
        format!("{}://{}", self.protocol, self.domain)
    }
}

/// Why an account action is refused beyond field errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// Activation of an account that is already active.
    #[error("Stale token for given user.")]
    Stale,
    /// resend_activation while activation emails are off.
    #[error("activation emails are off")]
    ActivationOff,
}

pub struct AccountService {
    users: Arc<UserService>,
    tokens: Arc<TokenService>,
    opaque: Arc<OpaqueTokenService>,
    mailer: Arc<dyn Mailer>,
    links: AccountTokens,
    rules: AccountRules,
}

impl AccountService {
    pub fn new(
        users: Arc<UserService>,
        tokens: Arc<TokenService>,
        opaque: Arc<OpaqueTokenService>,
        mailer: Arc<dyn Mailer>,
        links: AccountTokens,
        rules: AccountRules,
    ) -> Self {
        Self {
            users,
            tokens,
            opaque,
            mailer,
            links,
            rules,
        }
    }

    /// Registration; with activation emails the user stays inactive until the link is followed.
    pub async fn register(
        &self,
        mut r: Registration,
        re_password: Option<&str>,
    ) -> Result<User, DomainError> {
        if self.rules.user_create_password_retype {
            retyped("re_password", &r.password, re_password)?;
        }
        r.is_active = !self.rules.send_activation_email;
        let user = self.users.register(r).await?;
        tracing::info!(target: "tessera::audit", user_id = %user.id, "user registered");
        if self.rules.send_activation_email {
            self.mail(
                EmailKind::Activation,
                &user,
                Some((Purpose::Activation, &self.rules.activation_url)),
            );
        } else if self.rules.send_confirmation_email {
            self.mail(EmailKind::Confirmation, &user, None);
        }
        Ok(user)
    }

    pub async fn activate(&self, uid: &str, token: &str) -> Result<(), DomainError> {
        let mut user = self.user_by_uid(uid).await?;
        if user.is_active {
            return Err(AccountError::Stale.into());
        }
        self.check_token(Purpose::Activation, &user, token)?;
        self.users.activate(user.id).await?;
        user.is_active = true;
        tracing::info!(target: "tessera::audit", user_id = %user.id, "account activated");
        if self.rules.send_confirmation_email {
            self.mail(EmailKind::Confirmation, &user, None);
        }
        Ok(())
    }

    pub async fn resend_activation(&self, email: &str) -> Result<(), DomainError> {
        if !self.rules.send_activation_email {
            return Err(AccountError::ActivationOff.into());
        }
        for user in self
            .users
            .with_email(email)
            .await?
            .into_iter()
            .filter(|u| !u.is_active)
        {
            self.mail(
                EmailKind::Activation,
                &user,
                Some((Purpose::Activation, &self.rules.activation_url)),
            );
        }
        Ok(())
    }

    pub async fn set_password(
        &self,
        user: &User,
        current: &str,
        new: &str,
        re_new: Option<&str>,
    ) -> Result<(), DomainError> {
        // DRF runs field checks (current password, required fields) before `validate()` (the
        // new password's validators), so a wrong current password hides those. Any error other
        // than a field error (lockout, hashing pool, store) stops the flow with its own status.
        let mut errors = match self.users.check_current_password(user, current).await {
            Ok(()) => FieldErrors::new(),
            Err(DomainError::Invalid(e)) => e,
            Err(other) => return Err(other),
        };
        if self.rules.set_password_retype && re_new.is_none() {
            errors.insert("re_new_password".into(), vec![MSG_REQUIRED.into()]);
        }
        if !errors.is_empty() {
            return Err(DomainError::Invalid(errors));
        }
        if self.rules.set_password_retype {
            retyped("re_new_password", new, re_new)?;
        }
        self.users.check_new_password(user, new, "new_password")?;
        self.change_password(user.clone(), new).await
    }

    /// Mails a reset link to the active users with this email; unknown emails answer the same
    /// unless `password_reset_show_email_not_found`.
    pub async fn reset_password(&self, email: &str) -> Result<(), DomainError> {
        let users = self
            .active_users_with_email(email, self.rules.password_reset_show_email_not_found)
            .await?;
        for user in users {
            self.mail(
                EmailKind::PasswordReset,
                &user,
                Some((
                    Purpose::PasswordReset,
                    &self.rules.password_reset_confirm_url,
                )),
            );
        }
        Ok(())
    }

    pub async fn reset_password_confirm(
        &self,
        uid: &str,
        token: &str,
        new: &str,
        re_new: Option<&str>,
    ) -> Result<(), DomainError> {
        let user = self.user_by_uid(uid).await?;
        self.check_token(Purpose::PasswordReset, &user, token)?;
        if self.rules.password_reset_confirm_retype {
            retyped("re_new_password", new, re_new)?;
        }
        // A rejected password leaves the token usable: nothing is written before this passes.
        self.users.check_new_password(&user, new, "new_password")?;
        self.change_password(user, new).await
    }

    pub async fn set_username(
        &self,
        user: &User,
        current: &str,
        new_username: &str,
    ) -> Result<(), DomainError> {
        let new_username = &normalize_username(new_username);
        // Both are field checks in Djoser, reported together; every other error stops the flow.
        let mut errors = match self.users.check_current_password(user, current).await {
            Ok(()) => FieldErrors::new(),
            Err(DomainError::Invalid(e)) => e,
            Err(other) => return Err(other),
        };
        let problems = self.users.username_problems(new_username).await?;
        if !problems.is_empty() {
            errors.insert("new_username".into(), problems);
        }
        if !errors.is_empty() {
            return Err(DomainError::Invalid(errors));
        }
        self.change_username(user.clone(), new_username).await
    }

    pub async fn reset_username(&self, email: &str) -> Result<(), DomainError> {
        let users = self
            .active_users_with_email(email, self.rules.username_reset_show_email_not_found)
            .await?;
        for user in users {
            self.mail(
                EmailKind::UsernameReset,
                &user,
                Some((
                    Purpose::UsernameReset,
                    &self.rules.username_reset_confirm_url,
                )),
            );
        }
        Ok(())
    }

    /// A taken or invalid new username is reported before the token is checked (as Djoser does).
    pub async fn reset_username_confirm(
        &self,
        uid: &str,
        token: &str,
        new_username: &str,
    ) -> Result<(), DomainError> {
        let new_username = &normalize_username(new_username);
        let problems = self.users.username_problems(new_username).await?;
        if !problems.is_empty() {
            return Err(DomainError::Invalid(FieldErrors::from([(
                "new_username".to_owned(),
                problems,
            )])));
        }
        let user = self.user_by_uid(uid).await?;
        self.check_token(Purpose::UsernameReset, &user, token)?;
        self.change_username(user, new_username).await
    }

    /// Sets a new password after Django's validators pass (the operator's changepassword):
    /// like every password change, it ends the user's sessions.
    pub async fn set_password_as_operator(&self, user: User, new: &str) -> Result<(), DomainError> {
        self.users.check_new_password(&user, new, "password")?;
        self.change_password(user, new).await
    }

    /// Log out everywhere: every JWT and opaque key of `user` issued until now stops working.
    pub async fn logout_everywhere(&self, user: Uuid) -> Result<(), DomainError> {
        self.end_sessions(user, UserChange::default(), "logged out everywhere")
            .await
    }

    /// Deactivates an account and ends its sessions.
    pub async fn deactivate(&self, user: Uuid) -> Result<(), DomainError> {
        let change = UserChange {
            is_active: Some(false),
            ..UserChange::default()
        };
        self.end_sessions(user, change, "account deactivated").await
    }

    /// The one path for changes that end every earlier session: the change and the bump of
    /// the credential version in one statement (a login racing it mints under the old version
    /// and is refused), then the opaque keys go and the per-user cut-off is set (it ends
    /// tokens without a version claim, adopted from a Django service).
    /// `event` is audited once the change is written, before the revocations (the cut-off
    /// waits for the next second).
    async fn end_sessions(
        &self,
        user: Uuid,
        mut change: UserChange,
        event: &'static str,
    ) -> Result<(), DomainError> {
        change.end_sessions = true;
        self.users.apply(user, &change).await?;
        tracing::info!(target: "tessera::audit", user_id = %user, "{event}");
        self.opaque.revoke_all(user).await?;
        self.tokens.revoke_all(user).await
    }

    async fn change_password(&self, user: User, new: &str) -> Result<(), DomainError> {
        let change = UserChange {
            password_hash: Some(self.users.hash_password(new).await?),
            ..UserChange::default()
        };
        if self.rules.logout_on_password_change {
            self.end_sessions(user.id, change, "password changed")
                .await?;
        } else {
            self.users.apply(user.id, &change).await?;
            tracing::info!(target: "tessera::audit", user_id = %user.id, "password changed");
        }
        if self.rules.password_changed_email_confirmation {
            self.mail(EmailKind::PasswordChanged, &user, None);
        }
        Ok(())
    }

    async fn change_username(&self, mut user: User, new_username: &str) -> Result<(), DomainError> {
        self.users.rename(&mut user, new_username).await?;
        tracing::info!(target: "tessera::audit", user_id = %user.id, "username changed");
        if self.rules.username_changed_email_confirmation {
            self.mail(EmailKind::UsernameChanged, &user, None);
        }
        Ok(())
    }

    async fn active_users_with_email(
        &self,
        email: &str,
        show_not_found: bool,
    ) -> Result<Vec<User>, DomainError> {
        let problems = email_errors(email);
        if !problems.is_empty() {
            return Err(DomainError::Invalid(FieldErrors::from([(
                "email".to_owned(),
                problems,
            )])));
        }
        let users: Vec<User> = self
            .users
            .with_email(email)
            .await?
            .into_iter()
            .filter(|u| u.is_active)
            .collect();
        if users.is_empty() && show_not_found {
            return Err(DomainError::field("email", MSG_EMAIL_NOT_FOUND));
        }
        Ok(users)
    }

    async fn user_by_uid(&self, uid: &str) -> Result<User, DomainError> {
        match AccountTokens::parse_uid(uid) {
            Some(id) => self
                .users
                .lookup(id)
                .await?
                .ok_or(DomainError::field("uid", MSG_BAD_UID)),
            None => Err(DomainError::field("uid", MSG_BAD_UID)),
        }
    }

    fn check_token(&self, purpose: Purpose, user: &User, token: &str) -> Result<(), DomainError> {
        if self.links.check(purpose, user, token) {
            Ok(())
        } else {
            Err(DomainError::field("token", MSG_BAD_TOKEN))
        }
    }

    /// Queues `kind` for `user`; with a purpose, the link carries a fresh uid/token pair.
    fn mail(&self, kind: EmailKind, user: &User, link: Option<(Purpose, &String)>) {
        if user.email.is_empty() {
            return;
        }
        let id = self.users.public_id(user);
        let link = link.map(|(purpose, route)| {
            let uid = AccountTokens::uid(id);
            let token = self.links.make(purpose, user);
            let url = route
                .replace("{uid}", &uid)
                .replace("{token}", &token)
                .trim_start_matches('/')
                .to_owned();
            MailLink { uid, token, url }
        });
        self.mailer.send(Email {
            kind,
            to: user.email.clone(),
            user: MailUser {
                id,
                username: user.username.clone(),
                email: user.email.clone(),
                first_name: user.first_name.clone(),
                last_name: user.last_name.clone(),
            },
            protocol: self.rules.protocol.clone(),
            domain: self.rules.domain.clone(),
            link,
        });
    }
}

/// Djoser's retype check: the retyped field is required and must match.
fn retyped(field: &str, value: &str, retyped: Option<&str>) -> Result<(), DomainError> {
    match retyped {
        None => Err(DomainError::field(field, MSG_REQUIRED)),
        Some(r) if r != value => Err(DomainError::field(
            "non_field_errors",
            MSG_PASSWORD_MISMATCH,
        )),
        Some(_) => Ok(()),
    }
}

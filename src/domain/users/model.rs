//! What a user is, and the values that create or change one.
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A stored account. The hash is never printed (`Debug` redacts it).
#[derive(Clone, PartialEq)]
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
    /// The security stamp: bumped by every change that ends earlier sessions (password change
    /// or reset, logout everywhere, deactivation); tokens and keys issued under an older one
    /// are refused.
    pub credential_version: i64,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("email", &self.email)
            .field("password_hash", &"[redacted]")
            .field("is_active", &self.is_active)
            .field("is_staff", &self.is_staff)
            .field("is_superuser", &self.is_superuser)
            .finish_non_exhaustive()
    }
}

/// The columns one write changes; the others are left as they are in the store, so a write
/// never undoes a concurrent change to another column (no full-row rewrites from a stale read).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct UserChange {
    pub username: Option<String>,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub is_active: Option<bool>,
    pub last_login: Option<DateTime<Utc>>,
    /// Bumps the credential version in the same statement: every earlier session ends.
    pub end_sessions: bool,
}

/// One page of users and the total count.
pub struct UserPage {
    pub users: Vec<User>,
    pub total: u64,
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

/// Profile fields a user may change; `None` leaves the field as it is.
#[derive(Default)]
pub struct ProfileChange {
    pub email: Option<String>,
}

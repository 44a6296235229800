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
    /// The integer id (Django's `pk`): public in `integer` mode, and what tokens minted by a
    /// Django service name in either mode. Never reused.
    pub number: i64,
}

impl User {
    /// The id bodies and tokens show under `accounts.user_id`.
    pub fn public_id(&self, kind: IdKind) -> UserRef {
        match kind {
            IdKind::Uuid => UserRef::Id(self.id),
            IdKind::Integer => UserRef::Number(self.number),
        }
    }
}

/// What `accounts.user_id` makes the public id: the UUID, or an integer like Django's `pk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdKind {
    Uuid,
    Integer,
}

/// How a path or a token names a user: by UUID or by number. Both are understood in either
/// mode, so tokens minted by the old Django service (integer `user_id`) keep working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRef {
    Id(Uuid),
    Number(i64),
}

impl UserRef {
    /// A UUID, or a positive integer written in ASCII digits (as Django's `int()` reads a pk,
    /// leading zeros included; no sign, no spaces). Anything else names nobody.
    pub fn parse(text: &str) -> Option<Self> {
        if let Ok(id) = Uuid::parse_str(text) {
            return Some(Self::Id(id));
        }
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Self::Number)
    }
}

impl std::fmt::Display for UserRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserRef::Id(id) => id.fmt(f),
            UserRef::Number(n) => n.fmt(f),
        }
    }
}

/// Which number a new row gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbering {
    /// The next after the highest ever given out.
    Next,
    /// The one the user carries (an import keeps Django's id); later ones continue after it.
    Keep,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("number", &self.number)
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

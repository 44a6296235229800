//! The rules, and the small traits they need from storage. No HTTP, no SQL, no Redis here.
pub(crate) mod account_tokens;
pub mod accounts;
pub mod groups;
pub mod health;
pub mod import;
pub(crate) mod keys;
pub(crate) mod mail;
pub mod mfa;
pub mod opaque;
pub(crate) mod passwords;
pub(crate) mod revocation;
pub mod roles;
pub mod sessions;
pub mod setting_values;
pub mod throttle;
pub mod tokens;
pub mod users;
pub(crate) mod validation;

use std::collections::BTreeMap;

/// Field name → messages, in DRF's `{"field": ["message", ...]}` shape.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// What went wrong in a domain operation; `http/error.rs` maps each to one answer.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("invalid input")]
    Invalid(FieldErrors),
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("no such object")]
    NotFound,
    /// The object exists but the caller may not see it (Djoser's HIDE_USERS answer).
    #[error("object hidden from the caller")]
    Hidden,
    #[error("permission denied")]
    Forbidden,
    /// The password-hashing queue is full: retry shortly.
    #[error("password hashing is saturated")]
    Busy,
    /// Too many requests or failed logins: retry after this many seconds.
    #[error("throttled")]
    Throttled { retry_after_secs: u64 },
    /// A backing store is unreachable: retry shortly.
    #[error("a backing store is unavailable")]
    Unavailable,
    /// An account action was refused (stale activation, activation emails off).
    #[error(transparent)]
    Account(#[from] accounts::AccountError),
    /// A group, user or membership named in a group operation does not exist.
    #[error(transparent)]
    Group(#[from] groups::GroupError),
    /// A second-factor step was refused or is still due.
    #[error(transparent)]
    Mfa(#[from] mfa::MfaError),
    /// An opaque key was refused (DRF's reasons).
    #[error(transparent)]
    Opaque(#[from] opaque::OpaqueError),
    /// A session operation was refused (unknown session, sessions off).
    #[error(transparent)]
    Session(#[from] sessions::SessionError),
    /// A JWT was refused (SimpleJWT's reasons).
    #[error(transparent)]
    Token(#[from] tokens::TokenError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    /// One field error, e.g. `field("current_password", "Invalid password.")`.
    pub fn field(name: &str, message: &str) -> Self {
        DomainError::Invalid(FieldErrors::from([(
            name.to_owned(),
            vec![message.to_owned()],
        )]))
    }
}

/// The error contract of every store trait.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; names the constrained field.
    #[error("conflict on {0}")]
    Conflict(&'static str),
    /// The database could not be reached in time.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store failure: {0}")]
    Internal(String),
}

impl From<StoreError> for DomainError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(field) => {
                DomainError::Internal(format!("unexpected conflict on {field}"))
            }
            StoreError::Unavailable(why) => {
                tracing::warn!(error = %why, "store unavailable");
                metrics::counter!("tessera_store_unavailable_total").increment(1);
                DomainError::Unavailable
            }
            StoreError::Internal(why) => DomainError::Internal(why),
        }
    }
}

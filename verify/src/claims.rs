//! The claims of a verified token, typed.
use serde_json::{Map, Value};

use crate::VerifyError;

/// The `token_type` claim's two values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// Sent as Bearer to services.
    Access,
    /// Exchanged at Tessera for new access tokens.
    Refresh,
}

impl TokenType {
    /// The claim's value: `access` or `refresh`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Access => "access",
            TokenType::Refresh => "refresh",
        }
    }
}

/// What a verified token says. The optional user facts are there when Tessera's `[jwt.claims]`
/// puts them in access tokens; `raw` holds every claim as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// The token type claim.
    pub token_type: TokenType,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issue time, seconds since the epoch.
    pub iat: Option<i64>,
    /// The token's id (what revocation lists name).
    pub jti: String,
    /// The user id claim as text (a UUID for Tessera; a number from a Django service is kept).
    pub user_id: Option<String>,
    /// The username, when `[jwt.claims] username` puts it in.
    pub username: Option<String>,
    /// The email address, when `[jwt.claims] email` puts it in.
    pub email: Option<String>,
    /// Group names; empty when the token carries none.
    pub groups: Vec<String>,
    /// Django's is_staff; false when the token does not say.
    pub is_staff: bool,
    /// Django's is_superuser; false when the token does not say.
    pub is_superuser: bool,
    /// Every claim as sent.
    pub raw: Map<String, Value>,
}

impl Claims {
    /// Whether the token names `group` among the user's groups.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The user id, required: SimpleJWT's "no recognizable user identification" otherwise.
    pub fn user(&self) -> Result<&str, VerifyError> {
        self.user_id.as_deref().ok_or(VerifyError::NoUser)
    }

    /// Fills the user facts from `raw`. A wrongly typed one makes the token invalid rather than
    /// silently empty, so an authorization decision never rests on a misread claim.
    pub(crate) fn with_facts(mut self) -> Result<Self, VerifyError> {
        // One pass over the few claims rather than a lookup per fact: this is the hot path.
        for (name, value) in &self.raw {
            match (name.as_str(), value) {
                ("groups", Value::Array(list)) => {
                    self.groups = list
                        .iter()
                        .map(|g| g.as_str().map(str::to_owned).ok_or(VerifyError::Invalid))
                        .collect::<Result<_, _>>()?;
                }
                ("username", Value::String(s)) => self.username = Some(s.clone()),
                ("email", Value::String(s)) => self.email = Some(s.clone()),
                ("is_staff", Value::Bool(b)) => self.is_staff = *b,
                ("is_superuser", Value::Bool(b)) => self.is_superuser = *b,
                ("groups" | "username" | "email" | "is_staff" | "is_superuser", _) => {
                    return Err(VerifyError::Invalid);
                }
                _ => {}
            }
        }
        Ok(self)
    }
}

//! The claims of a verified token, typed.
use serde_json::{Map, Value};

use crate::VerifyError;

/// The `token_type` claim's two values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Access,
    Refresh,
}

impl TokenType {
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
    pub token_type: TokenType,
    pub exp: i64,
    pub iat: Option<i64>,
    pub jti: String,
    /// The user id claim as text (a UUID for Tessera; a number from a Django service is kept).
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub email: Option<String>,
    /// Group names; empty when the token carries none.
    pub groups: Vec<String>,
    pub is_staff: bool,
    pub is_superuser: bool,
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
        let raw = &self.raw;
        let text = |name: &str| match raw.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(VerifyError::Invalid),
        };
        let flag = |name: &str| match raw.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(VerifyError::Invalid),
        };
        self.groups = match raw.get("groups") {
            None => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|g| g.as_str().map(str::to_owned).ok_or(VerifyError::Invalid))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(VerifyError::Invalid),
        };
        self.username = text("username")?;
        self.email = text("email")?;
        self.is_staff = flag("is_staff")?;
        self.is_superuser = flag("is_superuser")?;
        Ok(self)
    }
}

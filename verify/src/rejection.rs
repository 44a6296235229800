//! Refusals in Tessera's (DRF's and SimpleJWT's) body shape, for the poem and tower adapters.
use serde_json::{Value, json};

use crate::{BearerError, VerifyError};

/// An HTTP refusal: status, JSON body, and whether it carries `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The HTTP status: 401, 403 or 503.
    pub status: u16,
    /// The JSON body.
    pub body: Value,
}

impl Rejection {
    /// 401 "Authentication credentials were not provided."
    pub fn not_authenticated() -> Self {
        Self::detail(
            401,
            "Authentication credentials were not provided.",
            "not_authenticated",
        )
    }

    /// 403 "You do not have permission to perform this action." (DRF's permission denied)
    pub fn forbidden() -> Self {
        Self::detail(
            403,
            "You do not have permission to perform this action.",
            "permission_denied",
        )
    }

    /// The user must be in `group`, else 403.
    pub fn require_group(claims: &crate::Claims, group: &str) -> Result<(), Self> {
        if claims.in_group(group) {
            Ok(())
        } else {
            Err(Self::forbidden())
        }
    }

    /// SimpleJWT's 401 for a refused access token, naming why (`message`, e.g. "Token is
    /// expired"). Tessera answers the same body, built here.
    pub fn token_not_valid(message: &str) -> Self {
        Self {
            status: 401,
            body: json!({
                "detail": "Given token not valid for any token type",
                "code": "token_not_valid",
                "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}],
            }),
        }
    }

    /// DRF's `{"detail": ...}` with the stable `code` Tessera answers beside it.
    fn detail(status: u16, detail: &str, code: &str) -> Self {
        Self {
            status,
            body: json!({ "detail": detail, "code": code }),
        }
    }

    /// `WWW-Authenticate` value for 401s, as Tessera and DRF send it.
    pub fn www_authenticate(&self) -> Option<&'static str> {
        (self.status == 401).then_some("Bearer realm=\"api\"")
    }

    /// `Retry-After` (seconds) for 503s.
    pub fn retry_after(&self) -> Option<&'static str> {
        (self.status == 503).then_some("1")
    }
}

impl From<BearerError> for Rejection {
    fn from(e: BearerError) -> Self {
        match e {
            BearerError::Missing => Self::not_authenticated(),
            BearerError::Malformed => Self {
                status: 401,
                body: json!({
                    "detail": "Authorization header must contain two space-delimited values",
                    "code": "bad_authorization_header",
                }),
            },
        }
    }
}

impl From<VerifyError> for Rejection {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::KeysUnavailable(_) | VerifyError::Config(_) => Self::detail(
                503,
                "Service temporarily unavailable, try again later.",
                "service_unavailable",
            ),
            VerifyError::NoUser => Self {
                status: 401,
                body: json!({ "detail": e.to_string(), "code": "token_not_valid" }),
            },
            e => Self::token_not_valid(&e.to_string()),
        }
    }
}

//! The one mapping from failures to DRF-shaped answers: `{"detail": ..., "code": ...}` or
//! `{"field": [...]}`.
use poem::{
    Response,
    error::ResponseError,
    http::{HeaderValue, StatusCode, header},
};
use serde_json::{Value, json};

use crate::domain::{
    DomainError, FieldErrors,
    accounts::AccountError,
    mfa::{MSG_MFA_REQUIRED, MfaError},
    sessions::SessionError,
    tokens::TokenError,
};

/// The challenge sent with every 401, as SimpleJWT's JWTAuthentication sends it.
pub const WWW_AUTHENTICATE: &str = r#"Bearer realm="api""#;
/// Seconds a client should wait after a 503.
const RETRY_AFTER_SECS: &str = "1";

/// The stable machine-readable `code` beside every `detail`: DRF's (or SimpleJWT's, Djoser's)
/// name where they have one. Clients may match on these; the `detail` text may change.
/// docs/api.md lists them ("Error codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 400: a body that is not valid JSON or form data, or could not be read (DRF's ParseError).
    ParseError,
    /// 401: no credentials, or a scheme this server does not accept (DRF's NotAuthenticated).
    NotAuthenticated,
    /// 401: credentials that do not authenticate (DRF's AuthenticationFailed).
    AuthenticationFailed,
    /// 401: wrong credentials at a JWT login (SimpleJWT's `no_active_account`).
    NoActiveAccount,
    /// 401: a JWT refused for its signature, claims, type or revocation (SimpleJWT).
    TokenNotValid,
    /// 401: a valid JWT whose user no longer exists (SimpleJWT).
    UserNotFound,
    /// 401: a valid JWT whose user is inactive (SimpleJWT).
    UserInactive,
    /// 401: `Authorization: Bearer` without exactly one token (SimpleJWT).
    BadAuthorizationHeader,
    /// 403: authenticated but not allowed (DRF's PermissionDenied).
    PermissionDenied,
    /// 401: a right password of a user with TOTP; the body carries the `mfa_token`.
    MfaRequired,
    /// 403: a staff account without TOTP under `accounts.require_mfa_for_staff`.
    MfaEnrolmentRequired,
    /// 403: activation of an account that is already active (Djoser's `stale_token`).
    StaleToken,
    /// 404: no such object or page, or not visible to the caller (DRF's NotFound).
    NotFound,
    /// 405: the path exists, the method does not (DRF's MethodNotAllowed).
    MethodNotAllowed,
    /// 413: the body exceeds `server.max_body_bytes`.
    PayloadTooLarge,
    /// 415: a body neither JSON nor form-encoded (DRF's UnsupportedMediaType).
    UnsupportedMediaType,
    /// 429: a rate limit or the login lockout; carries `Retry-After` (DRF's Throttled).
    Throttled,
    /// 500: an unexpected failure, logged with the request id.
    ServerError,
    /// 503: a dependency is down or password hashing is saturated; carries `Retry-After`.
    ServiceUnavailable,
    /// Any other status poem itself raises (DRF's APIException default).
    Error,
}

impl Code {
    /// The code as sent in bodies.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ParseError => "parse_error",
            Self::NotAuthenticated => "not_authenticated",
            Self::AuthenticationFailed => "authentication_failed",
            Self::NoActiveAccount => "no_active_account",
            Self::TokenNotValid => "token_not_valid",
            Self::UserNotFound => "user_not_found",
            Self::UserInactive => "user_inactive",
            Self::BadAuthorizationHeader => "bad_authorization_header",
            Self::PermissionDenied => "permission_denied",
            Self::MfaRequired => "mfa_required",
            Self::MfaEnrolmentRequired => "mfa_enrolment_required",
            Self::StaleToken => "stale_token",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Throttled => "throttled",
            Self::ServerError => "server_error",
            Self::ServiceUnavailable => "service_unavailable",
            Self::Error => "error",
        }
    }
}

/// An HTTP error answer: status, DRF body and the headers that go with it.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
    /// Seconds for `Retry-After` (429); 503s say 1.
    retry_after: Option<u64>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.body)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// `{"detail": message, "code": code}` with `status`.
    pub fn detail(status: StatusCode, code: Code, message: &str) -> Self {
        Self {
            status,
            body: json!({ "detail": message, "code": code.as_str() }),
            retry_after: None,
        }
    }

    /// Any DRF body with `status`; a `detail` body must carry a [`Code`] too.
    pub fn body(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body,
            retry_after: None,
        }
    }

    /// 400 with field errors.
    pub fn fields(errors: FieldErrors) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            body: json!(errors),
            retry_after: None,
        }
    }

    /// 400 with one field error.
    pub fn field(name: &str, message: &str) -> Self {
        Self::fields(FieldErrors::from([(
            name.to_owned(),
            vec![message.to_owned()],
        )]))
    }

    /// SimpleJWT's `{"detail": ..., "code": ...}` for a refused token.
    pub fn token(e: &TokenError) -> Self {
        let code = match e {
            TokenError::UserNotFound => Code::UserNotFound,
            TokenError::UserInactive => Code::UserInactive,
            _ => Code::TokenNotValid,
        };
        Self::detail(StatusCode::UNAUTHORIZED, code, &e.to_string())
    }

    /// DRF's 429 with `Retry-After`.
    pub fn throttled(seconds: u64) -> Self {
        let message = format!("Request was throttled. Expected available in {seconds} seconds.");
        Self {
            retry_after: Some(seconds),
            ..Self::detail(StatusCode::TOO_MANY_REQUESTS, Code::Throttled, &message)
        }
    }

    /// DRF's 401 when no credentials came.
    pub fn not_authenticated() -> Self {
        Self::detail(
            StatusCode::UNAUTHORIZED,
            Code::NotAuthenticated,
            "Authentication credentials were not provided.",
        )
    }

    /// DRF's 401 when credentials came and were refused.
    pub fn authentication_failed(message: &str) -> Self {
        Self::detail(
            StatusCode::UNAUTHORIZED,
            Code::AuthenticationFailed,
            message,
        )
    }

    /// DRF's generic 404.
    pub fn not_found() -> Self {
        Self::detail(StatusCode::NOT_FOUND, Code::NotFound, "Not found.")
    }

    /// 400 for a body that cannot be parsed or read.
    pub fn parse_error(message: &str) -> Self {
        Self::detail(StatusCode::BAD_REQUEST, Code::ParseError, message)
    }

    /// 413 for a body over the limit.
    pub fn payload_too_large() -> Self {
        Self::detail(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::PayloadTooLarge,
            "Request body is too large.",
        )
    }

    /// 503 with `Retry-After`.
    pub fn unavailable() -> Self {
        Self::detail(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::ServiceUnavailable,
            "Service temporarily unavailable, try again later.",
        )
    }

    /// The generic 500; the cause is logged, never sent.
    pub fn internal() -> Self {
        Self::detail(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::ServerError,
            "A server error occurred.",
        )
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(errors) => Self::fields(errors),
            DomainError::InvalidCredentials => {
                Self::authentication_failed("Invalid username/password.")
            }
            DomainError::NotFound => Self::detail(
                StatusCode::NOT_FOUND,
                Code::NotFound,
                "No User matches the given query.",
            ),
            DomainError::Hidden | DomainError::Group(_) => Self::not_found(),
            DomainError::Forbidden => Self::detail(
                StatusCode::FORBIDDEN,
                Code::PermissionDenied,
                "You do not have permission to perform this action.",
            ),
            DomainError::Busy | DomainError::Unavailable => Self::unavailable(),
            DomainError::Token(e) => Self::token(&e),
            DomainError::Throttled { retry_after_secs } => Self::throttled(retry_after_secs),
            DomainError::Account(AccountError::Stale) => Self::detail(
                StatusCode::FORBIDDEN,
                Code::StaleToken,
                &AccountError::Stale.to_string(),
            ),
            // Djoser answers a bare 400 with no body at all; so does Tessera.
            DomainError::Account(AccountError::ActivationOff) => {
                Self::body(StatusCode::BAD_REQUEST, Value::Null)
            }
            DomainError::Opaque(e) => Self::authentication_failed(&e.to_string()),
            DomainError::Session(e @ SessionError::NotFound) => {
                Self::detail(StatusCode::NOT_FOUND, Code::NotFound, &e.to_string())
            }
            DomainError::Session(SessionError::Off) => Self::not_found(),
            DomainError::Mfa(MfaError::Disabled) => Self::not_found(),
            DomainError::Mfa(MfaError::Required { token }) => Self::body(
                StatusCode::UNAUTHORIZED,
                json!({
                    "detail": MSG_MFA_REQUIRED,
                    "code": Code::MfaRequired.as_str(),
                    "mfa_token": token,
                }),
            ),
            DomainError::Mfa(e @ MfaError::StaffMustEnrol) => Self::detail(
                StatusCode::FORBIDDEN,
                Code::MfaEnrolmentRequired,
                &e.to_string(),
            ),
            DomainError::Internal(why) => {
                tracing::error!(error = %why, "internal error");
                Self::internal()
            }
        }
    }
}

impl From<crate::domain::mfa::MfaError> for ApiError {
    fn from(e: crate::domain::mfa::MfaError) -> Self {
        DomainError::from(e).into()
    }
}

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        let mut response = if self.body.is_null() {
            Response::builder().status(self.status).body(())
        } else {
            Response::builder()
                .status(self.status)
                .content_type("application/json")
                .body(self.body.to_string())
        };
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(WWW_AUTHENTICATE),
            );
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        response
    }
}

/// Turns any error poem or poem-openapi raised outside our handlers into the DRF shape.
pub fn into_drf(err: poem::Error, method: &str) -> Response {
    if err.is::<ApiError>() {
        return err.into_response();
    }
    let status = err.status();
    let answer = match status {
        StatusCode::NOT_FOUND => ApiError::not_found(),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::detail(
            status,
            Code::MethodNotAllowed,
            &format!("Method \"{method}\" not allowed."),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::detail(status, Code::UnsupportedMediaType, &err.to_string())
        }
        StatusCode::BAD_REQUEST => ApiError::parse_error(&err.to_string()),
        s if s.is_server_error() => {
            tracing::error!(error = %err, "unhandled error");
            ApiError::internal()
        }
        s => ApiError::detail(s, Code::Error, &err.to_string()),
    };
    answer.as_response()
}

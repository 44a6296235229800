//! The one mapping from failures to DRF-shaped answers: `{"detail": ...}` or `{"field": [...]}`.
use poem::{
    Response,
    error::ResponseError,
    http::{HeaderValue, StatusCode, header},
};
use poem_openapi::{
    ApiResponse, Object,
    registry::{MetaMediaType, MetaResponse, MetaResponses, Registry},
    types::Type,
};
use serde_json::{Value, json};

use crate::domain::{DomainError, FieldErrors, accounts::AccountError, tokens::TokenError};

/// The challenge sent with every 401, as SimpleJWT's JWTAuthentication sends it.
pub const WWW_AUTHENTICATE: &str = r#"Bearer realm="api""#;
/// Seconds a client should wait after a 503.
const RETRY_AFTER_SECS: &str = "1";

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
    /// `{"detail": message}` with `status`.
    pub fn detail(status: StatusCode, message: &str) -> Self {
        Self {
            status,
            body: json!({ "detail": message }),
            retry_after: None,
        }
    }

    /// Any DRF body with `status`.
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
            TokenError::UserNotFound => "user_not_found",
            TokenError::UserInactive => "user_inactive",
            _ => "token_not_valid",
        };
        Self::body(
            StatusCode::UNAUTHORIZED,
            json!({ "detail": e.to_string(), "code": code }),
        )
    }

    /// DRF's 429 with `Retry-After`.
    pub fn throttled(seconds: u64) -> Self {
        let message = format!("Request was throttled. Expected available in {seconds} seconds.");
        Self {
            retry_after: Some(seconds),
            ..Self::detail(StatusCode::TOO_MANY_REQUESTS, &message)
        }
    }

    pub fn not_authenticated() -> Self {
        Self::detail(
            StatusCode::UNAUTHORIZED,
            "Authentication credentials were not provided.",
        )
    }

    pub fn not_found() -> Self {
        Self::detail(StatusCode::NOT_FOUND, "Not found.")
    }

    pub fn unavailable() -> Self {
        Self::detail(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service temporarily unavailable, try again later.",
        )
    }

    pub fn internal() -> Self {
        Self::detail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "A server error occurred.",
        )
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(errors) => Self::fields(errors),
            DomainError::InvalidCredentials => {
                Self::detail(StatusCode::UNAUTHORIZED, "Invalid username/password.")
            }
            DomainError::NotFound => {
                Self::detail(StatusCode::NOT_FOUND, "No User matches the given query.")
            }
            DomainError::Hidden | DomainError::Group(_) => Self::not_found(),
            DomainError::Forbidden => Self::detail(
                StatusCode::FORBIDDEN,
                "You do not have permission to perform this action.",
            ),
            DomainError::Busy | DomainError::Unavailable => Self::unavailable(),
            DomainError::Token(e) => Self::token(&e),
            DomainError::Throttled { retry_after_secs } => Self::throttled(retry_after_secs),
            DomainError::Account(AccountError::Stale) => {
                Self::detail(StatusCode::FORBIDDEN, &AccountError::Stale.to_string())
            }
            // Djoser answers a bare 400 here; an empty object is the DRF shape closest to it.
            DomainError::Account(AccountError::ActivationOff) => {
                Self::body(StatusCode::BAD_REQUEST, json!({}))
            }
            DomainError::Opaque(e) => Self::detail(StatusCode::UNAUTHORIZED, &e.to_string()),
            DomainError::Internal(why) => {
                tracing::error!(error = %why, "internal error");
                Self::internal()
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        let mut response = Response::builder()
            .status(self.status)
            .content_type("application/json")
            .body(self.body.to_string());
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

/// The error body as documented in the OpenAPI spec. Field errors add `{"<field>": ["..."]}` keys.
#[derive(Object)]
#[oai(rename = "Error")]
pub struct ErrorBody {
    /// A human-readable message (absent for field errors).
    pub detail: Option<String>,
    /// A stable machine-readable code, when there is one (e.g. `token_not_valid`).
    pub code: Option<String>,
}

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        let answer = |status: u16, description: &'static str| MetaResponse {
            description,
            status: Some(status),
            status_range: None,
            content: vec![MetaMediaType {
                content_type: "application/json",
                schema: ErrorBody::schema_ref(),
            }],
            headers: vec![],
        };
        MetaResponses {
            responses: vec![
                answer(
                    400,
                    "Invalid input: `{\"field\": [\"message\"]}` or `{\"non_field_errors\": [...]}`",
                ),
                answer(
                    401,
                    "Not authenticated or bad credentials; carries `WWW-Authenticate`",
                ),
                answer(403, "Authenticated but not allowed"),
                answer(404, "No such object, or not visible to the caller"),
                answer(415, "Body neither JSON nor form-encoded"),
                answer(
                    503,
                    "A dependency is down or password hashing is saturated; carries `Retry-After`",
                ),
            ],
        }
    }

    fn register(registry: &mut Registry) {
        ErrorBody::register(registry);
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
        StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::detail(status, &format!("Method \"{method}\" not allowed."))
        }
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::detail(status, "Request body is too large."),
        s if s.is_server_error() => {
            tracing::error!(error = %err, "unhandled error");
            ApiError::internal()
        }
        s => ApiError::detail(s, &err.to_string()),
    };
    answer.as_response()
}

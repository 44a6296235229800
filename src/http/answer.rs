//! What every operation answers, and how the OpenAPI document learns it.
//!
//! [`ApiError`] stays the one runtime error. An operation's signature names the refusals its
//! own code can answer, `Answer<Found, (NotFound, Unavailable)>`, and those marker types
//! document each status with its schema, headers and example body. The statuses that come from
//! elsewhere are documented where they come from: a `Body` extractor (400, 413, 415) and the
//! `Caller` extractor (401, 503) by [`Extracted`], the rate limiter (429, `X-RateLimit-*`) by
//! `throttle::Limited`, `X-Request-Id` by [`Documented`].
//!
//! Why types rather than one table that patches the generated document by operationId: the
//! statuses sit in the handler's signature, change in the same diff as its code, and a
//! misspelled refusal does not compile; a table would live far from the handlers and drift
//! silently. What the types cannot prove is checked at run time: in debug builds
//! [`Documented`] turns an answer whose status its operation does not document into a 500 that
//! names the gap, so every black-box test (and the schemathesis run in CI) checks the document
//! against the code.
use std::{collections::HashMap, marker::PhantomData, sync::Arc, sync::OnceLock};

use poem::{
    Endpoint, EndpointExt, IntoResponse, Request, Response,
    endpoint::BoxEndpoint,
    error::ResponseError,
    http::{Method, StatusCode},
};
use poem_openapi::{
    ApiResponse, OpenApi, OperationId,
    registry::{
        MetaApi, MetaHeader, MetaMediaType, MetaOperation, MetaResponse, MetaResponses, MetaSchema,
        MetaSchemaRef, Registry,
    },
};
use serde_json::{Value, json};

use super::error::{ApiError, Code, WWW_AUTHENTICATE};
use crate::domain::DomainError;

/// An operation's result: a documented success answer, or an [`ApiError`] documented as one of
/// the refusals `R` (a marker or a tuple of markers; `()` for none of its own).
pub type Answer<T, R = ()> = Result<T, Refused<R>>;

/// An [`ApiError`] answered by an operation that documents the refusals `R`.
pub struct Refused<R>(pub ApiError, PhantomData<fn() -> R>);

impl<R> From<ApiError> for Refused<R> {
    fn from(e: ApiError) -> Self {
        Self(e, PhantomData)
    }
}

impl<R> From<DomainError> for Refused<R> {
    fn from(e: DomainError) -> Self {
        ApiError::from(e).into()
    }
}

impl<R> From<Refused<R>> for poem::Error {
    fn from(r: Refused<R>) -> Self {
        r.0.into()
    }
}

impl<R: Refusals> ApiResponse for Refused<R> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: R::responses(),
        }
    }

    fn register(registry: &mut Registry) {
        register_schemas(registry);
    }
}

/// The refusals an operation documents: one marker, or a tuple of them.
pub trait Refusals {
    fn responses() -> Vec<MetaResponse>;
}

impl Refusals for () {
    fn responses() -> Vec<MetaResponse> {
        Vec::new()
    }
}

macro_rules! refusal_tuples {
    ($($t:ident),+) => {
        impl<$($t: Refusals),+> Refusals for ($($t,)+) {
            fn responses() -> Vec<MetaResponse> {
                let mut all = Vec::new();
                $( all.extend($t::responses()); )+
                all
            }
        }
    };
}
refusal_tuples!(A);
refusal_tuples!(A, B);
refusal_tuples!(A, B, C);
refusal_tuples!(A, B, C, D);
refusal_tuples!(A, B, C, D, E);

/// What an error answer's body looks like in the document.
enum Shape {
    /// `{"detail", "code"}`.
    Error,
    /// SimpleJWT's `{"detail", "code", "messages"}` or `{"detail", "code"}` (authentication).
    TokenOrError,
    /// DRF's field errors or a parse error's `{"detail", "code"}`.
    FieldsOrError,
    /// Field errors, or no body at all (Djoser's bare 400).
    FieldsOrNothing,
    /// `{"detail", "code": "mfa_required", "mfa_token"}`.
    Mfa,
    /// The second-factor answer or `{"detail", "code"}`.
    MfaOrError,
}

/// Declares refusal markers: status, body shape, description and the example body.
macro_rules! refusals {
    ($(
        $(#[$doc:meta])*
        $name:ident = $status:literal, $shape:ident, $description:literal, $example:tt;
    )*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl Refusals for $name {
            fn responses() -> Vec<MetaResponse> {
                vec![refusal($status, Shape::$shape, $description, json!($example))]
            }
        }
    )*};
}

refusals! {
    /// A body that does not parse or whose fields are refused (any operation reading a body).
    Invalid = 400, FieldsOrError,
        "Invalid input: DRF's field errors (`{\"field\": [\"message\"]}`, `non_field_errors`), or `{\"detail\", \"code\": \"parse_error\"}` for a body that does not parse.",
        {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]};
    /// Field errors, or Djoser's bare 400 (`resend_activation` while activation emails are off).
    InvalidOrBare = 400, FieldsOrNothing,
        "Invalid input: DRF's field errors (`{\"email\": [\"Enter a valid email address.\"]}`) or `{\"detail\", \"code\": \"parse_error\"}`, as JSON; or, while activation emails are off (`accounts.send_activation_email`), Djoser's bare 400 with no body (and no Content-Type), so the schema lists none.",
        null;
    /// No or refused credentials on an operation that authenticates its caller.
    Unauthenticated = 401, TokenOrError,
        "Not authenticated: no credentials, or credentials refused (SimpleJWT's token error with `messages` for a bad Bearer token). Carries `WWW-Authenticate`.",
        {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"};
    /// A pair login: wrong credentials, or a right password whose second factor is due.
    NoActiveAccountOrMfa = 401, MfaOrError,
        "Wrong password, unknown or inactive user (SimpleJWT's `no_active_account`); or, for a user with TOTP (`[mfa] enabled`), a right password: `code` `mfa_required` with the `mfa_token` to send with a code to `POST /api/token/mfa/`. Carries `WWW-Authenticate`.",
        {"detail": "No active account found with the given credentials", "code": "no_active_account"};
    /// An opaque-key login whose password was right and whose second factor is due.
    MfaRequired = 401, Mfa,
        "A user with TOTP (`[mfa] enabled`) gave the right password: send the `mfa_token` with a code to `POST /auth/token/login/mfa/`. Carries `WWW-Authenticate`.",
        {"detail": "A second factor is required: send a code from your authenticator app with this mfa_token.", "code": "mfa_required", "mfa_token": "5f2b8e0c4d7a9e1f3b6c8d0a2e4f6b8c5f2b8e0c4d7a9e1f3b6c8d0a2e4f6b8c"};
    /// A JWT in the body refused (signature, expiry, type, revocation, user).
    TokenRefused = 401, Error,
        "The token is refused: `Token is invalid`, `Token is expired`, `Token is blacklisted`, `Token has wrong type`... (SimpleJWT's `token_not_valid`; `user_not_found`, `user_inactive`). Carries `WWW-Authenticate`.",
        {"detail": "Token is blacklisted", "code": "token_not_valid"};
    /// Authenticated but not allowed (DRF's IsAdminUser, another user's account).
    Forbidden = 403, Error,
        "Authenticated but not allowed.",
        {"detail": "You do not have permission to perform this action.", "code": "permission_denied"};
    /// Activation of an account that is already active.
    Stale = 403, Error,
        "The account is already active (Djoser's stale token).",
        {"detail": "Stale token for given user.", "code": "stale_token"};
    /// A user or group named by the path or the body does not exist, or is hidden.
    NotFound = 404, Error,
        "No such object, or not visible to the caller.",
        {"detail": "Not found.", "code": "not_found"};
    /// No live session of the user has this id (another user's included), or sessions are off
    /// (`Not found.`).
    NoSession = 404, Error,
        "No live session of this user has this id (another user's session answers the same), or `sessions.enabled` is off (`Not found.`).",
        {"detail": "No Session matches the given query.", "code": "not_found"};
    /// The account that authenticated was deleted while the request ran.
    Gone = 404, Error,
        "The caller's account was deleted meanwhile (by another request).",
        {"detail": "No User matches the given query.", "code": "not_found"};
    /// A page number past the end or not a number (pagination on).
    InvalidPage = 404, Error,
        "`page` is not a page of this listing (pagination on).",
        {"detail": "Invalid page.", "code": "not_found"};
    /// A body over `server.body_limit`.
    TooLarge = 413, Error,
        "The body exceeds `server.body_limit`.",
        {"detail": "Request body is too large.", "code": "payload_too_large"};
    /// A body neither JSON, form-encoded nor multipart.
    Unsupported = 415, Error,
        "The body is neither JSON, form-encoded nor multipart.",
        {"detail": "Unsupported media type \"text/plain\" in request.", "code": "unsupported_media_type"};
    /// A rate limit or the login lockout.
    Throttled = 429, Error,
        "A rate limit or the login lockout. Carries `Retry-After` (seconds) and, with throttling on, `X-RateLimit-*`.",
        {"detail": "Request was throttled. Expected available in 60 seconds.", "code": "throttled"};
    /// SQL, Redis or the password-hashing pool refused in time.
    Unavailable = 503, Error,
        "A store (SQL, Redis) is unreachable or password hashing is saturated. Carries `Retry-After`.",
        {"detail": "Service temporarily unavailable, try again later.", "code": "service_unavailable"};
}

fn reference(name: &str) -> MetaSchemaRef {
    MetaSchemaRef::Reference(name.to_owned())
}

/// One error answer. The example rides on an inline schema; `openapi_json_for` moves it to the
/// media type, where generators and Swagger UI look for it.
fn refusal(status: u16, shape: Shape, description: &'static str, example: Value) -> MetaResponse {
    let schema = |all_of: Vec<MetaSchemaRef>, any_of: Vec<MetaSchemaRef>, one_of| {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            all_of,
            any_of,
            one_of,
            example: Some(example.clone()),
            ..MetaSchema::ANY
        }))
    };
    let schema = match shape {
        Shape::Error => Some(schema(vec![reference(ERROR)], vec![], vec![])),
        Shape::TokenOrError => Some(schema(
            vec![],
            vec![reference(TOKEN_ERROR), reference(ERROR)],
            vec![],
        )),
        Shape::FieldsOrError => Some(schema(
            vec![],
            vec![],
            vec![reference(VALIDATION_ERROR), reference(ERROR)],
        )),
        Shape::FieldsOrNothing => None,
        Shape::Mfa => Some(schema(vec![reference(MFA_REQUIRED)], vec![], vec![])),
        Shape::MfaOrError => Some(schema(
            vec![],
            vec![],
            vec![reference(MFA_REQUIRED), reference(ERROR)],
        )),
    };
    MetaResponse {
        description,
        status: Some(status),
        status_range: None,
        content: schema
            .into_iter()
            .map(|schema| MetaMediaType {
                content_type: "application/json",
                schema,
            })
            .collect(),
        headers: headers_for(status),
    }
}

fn header(name: &str, ty: &'static str, required: bool, description: &str) -> MetaHeader {
    MetaHeader {
        name: name.to_owned(),
        description: Some(description.to_owned()),
        required,
        deprecated: false,
        schema: MetaSchemaRef::Inline(Box::new(MetaSchema::new(ty))),
    }
}

/// The headers every answer with `status` carries (`error.rs` sets them).
fn headers_for(status: u16) -> Vec<MetaHeader> {
    match status {
        401 => vec![header(
            "WWW-Authenticate",
            "string",
            true,
            &format!("`{WWW_AUTHENTICATE}`, as SimpleJWT sends it."),
        )],
        429 => vec![header(
            "Retry-After",
            "integer",
            true,
            "Seconds until the request may be retried.",
        )],
        503 => vec![header(
            "Retry-After",
            "integer",
            true,
            "Seconds until the request may be retried.",
        )],
        _ => Vec::new(),
    }
}

/// `X-RateLimit-*` as `throttle.rs` sends them on every answer of a limited operation while
/// throttling is on (so never required).
pub fn rate_limit_headers() -> Vec<MetaHeader> {
    [
        ("X-RateLimit-Limit", "Requests allowed in the window."),
        ("X-RateLimit-Remaining", "Requests left in the window."),
        (
            "X-RateLimit-Reset",
            "Seconds until the window is full again.",
        ),
    ]
    .into_iter()
    .map(|(name, description)| {
        header(
            name,
            "integer",
            false,
            &format!("{description} Sent while throttling is on."),
        )
    })
    .collect()
}

/// Adds `response` unless the operation documents its status already (its own word wins).
pub fn document(operation: &mut MetaOperation, responses: Vec<MetaResponse>) {
    for response in responses {
        if !operation
            .responses
            .responses
            .iter()
            .any(|r| r.status == response.status)
        {
            operation.responses.responses.push(response);
        }
    }
}

/// Every operation of `apis`.
pub fn operations(apis: &mut [MetaApi]) -> impl Iterator<Item = &mut MetaOperation> {
    apis.iter_mut()
        .flat_map(|api| api.paths.iter_mut())
        .flat_map(|path| path.operations.iter_mut())
}

/// The API with the answers its extractors add to each operation: a body is read (400, 413,
/// 415), the caller is authenticated against the stores (401, 503).
pub struct Extracted<A>(pub A);

impl<A: OpenApi> OpenApi for Extracted<A> {
    fn meta() -> Vec<MetaApi> {
        let mut apis = A::meta();
        for operation in operations(&mut apis) {
            if operation.request.is_some() {
                document(operation, Invalid::responses());
                document(operation, TooLarge::responses());
                document(operation, Unsupported::responses());
            }
            if !operation.security.is_empty() {
                document(operation, Unauthenticated::responses());
                document(operation, Unavailable::responses());
            }
        }
        apis
    }

    fn register(registry: &mut Registry) {
        A::register(registry);
        register_schemas(registry);
    }

    fn add_routes(self, table: &mut HashMap<String, HashMap<Method, BoxEndpoint<'static>>>) {
        self.0.add_routes(table);
    }
}

/// The whole API as documented: `X-Request-Id` on every answer, answers in status order; in
/// debug builds every answer is checked against its operation's documented statuses.
pub struct Documented<A>(pub A);

impl<A: OpenApi> OpenApi for Documented<A> {
    fn meta() -> Vec<MetaApi> {
        let mut apis = A::meta();
        for operation in operations(&mut apis) {
            for response in &mut operation.responses.responses {
                response.headers.push(header(
                    "X-Request-Id",
                    "string",
                    true,
                    "The request's id (the client's own if it sent a sane one), also in the logs.",
                ));
            }
            operation.responses.responses.sort_by_key(|r| r.status);
        }
        apis
    }

    fn register(registry: &mut Registry) {
        A::register(registry);
    }

    fn add_routes(self, table: &mut HashMap<String, HashMap<Method, BoxEndpoint<'static>>>) {
        if !cfg!(debug_assertions) {
            return self.0.add_routes(table);
        }
        let mut routes = HashMap::new();
        self.0.add_routes(&mut routes);
        for (route, operations) in routes {
            let entry = table.entry(route).or_default();
            for (method, ep) in operations {
                entry.insert(method, ep.around(check_documented).boxed());
            }
        }
    }
}

/// Debug builds: an answer whose status its operation does not document becomes a 500 that
/// names the gap (a server error is never documented, and stays what it is).
async fn check_documented<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    match ep.call(req).await {
        Ok(r) => {
            let r = r.into_response();
            Ok(match undocumented(r.data::<OperationId>(), r.status()) {
                Some(gap) => gap.as_response(),
                None => r,
            })
        }
        Err(e) => Err(match undocumented(e.data::<OperationId>(), e.status()) {
            Some(gap) => gap.into(),
            None => e,
        }),
    }
}

const ERROR: &str = "Error";
const TOKEN_ERROR: &str = "TokenError";
const TOKEN_ERROR_MESSAGE: &str = "TokenErrorMessage";
const VALIDATION_ERROR: &str = "ValidationError";
const MFA_REQUIRED: &str = "MfaRequired";

/// The error bodies as named schemas (the names only tell `create_schema` apart).
struct ErrorSchema;
struct TokenErrorSchema;
struct TokenErrorMessageSchema;
struct ValidationErrorSchema;
struct MfaRequiredSchema;

fn string(description: &'static str) -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(MetaSchema {
        description: Some(description),
        ..MetaSchema::new("string")
    }))
}

fn strings(description: &'static str) -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(MetaSchema {
        description: Some(description),
        items: Some(Box::new(MetaSchemaRef::Inline(Box::new(MetaSchema::new(
            "string",
        ))))),
        ..MetaSchema::new("array")
    }))
}

const DETAIL: &str = "A human-readable message; it may change, match on `code`.";
const CODE: &str = "The stable machine-readable code (docs/api.md, \"Error codes\"): `not_authenticated`, `token_not_valid`, `not_found`, `throttled`...";

/// `Error`, `TokenError` (+ `TokenErrorMessage`) and `ValidationError`.
fn register_schemas(registry: &mut Registry) {
    registry.create_schema::<ErrorSchema, _>(ERROR.into(), |_| MetaSchema {
        title: Some(ERROR.into()),
        description: Some("DRF's error body with Tessera's stable `code`."),
        properties: vec![("detail", string(DETAIL)), ("code", string(CODE))],
        required: vec!["detail", "code"],
        example: Some(json!({"detail": "Not found.", "code": Code::NotFound.as_str()})),
        ..MetaSchema::new("object")
    });
    registry.create_schema::<TokenErrorMessageSchema, _>(TOKEN_ERROR_MESSAGE.into(), |_| {
        MetaSchema {
            title: Some(TOKEN_ERROR_MESSAGE.into()),
            description: Some("Why one token class refused the token (SimpleJWT)."),
            properties: vec![
                ("token_class", string("`AccessToken`.")),
                ("token_type", string("`access`.")),
                (
                    "message",
                    string("E.g. `Token is expired`, `Token is invalid`."),
                ),
            ],
            required: vec!["token_class", "token_type", "message"],
            ..MetaSchema::new("object")
        }
    });
    registry.create_schema::<TokenErrorSchema, _>(TOKEN_ERROR.into(), |_| MetaSchema {
        title: Some(TOKEN_ERROR.into()),
        description: Some(
            "SimpleJWT's refusal of a Bearer token: `token_not_valid` with one message per token class tried.",
        ),
        properties: vec![
            ("detail", string(DETAIL)),
            ("code", string("`token_not_valid`.")),
            (
                "messages",
                MetaSchemaRef::Inline(Box::new(MetaSchema {
                    items: Some(Box::new(reference(TOKEN_ERROR_MESSAGE))),
                    ..MetaSchema::new("array")
                })),
            ),
        ],
        required: vec!["detail", "code", "messages"],
        example: Some(tessera_verify::Rejection::token_not_valid("Token is expired").body),
        ..MetaSchema::new("object")
    });
    registry.create_schema::<MfaRequiredSchema, _>(MFA_REQUIRED.into(), |_| MetaSchema {
        title: Some(MFA_REQUIRED.into()),
        description: Some(
            "A right password of a user with TOTP: the login goes on at its completion endpoint with `mfa_token` and a code.",
        ),
        properties: vec![
            ("detail", string(DETAIL)),
            ("code", string("`mfa_required`.")),
            (
                "mfa_token",
                string("Single-use, short-lived (`mfa.token_lifetime`), good only at the completion endpoint of this login's kind."),
            ),
        ],
        required: vec!["detail", "code", "mfa_token"],
        ..MetaSchema::new("object")
    });
    registry.create_schema::<ValidationErrorSchema, _>(VALIDATION_ERROR.into(), |_| MetaSchema {
        title: Some(VALIDATION_ERROR.into()),
        description: Some(
            "DRF's field errors: each refused field names its messages; `non_field_errors` holds those about the body as a whole.",
        ),
        properties: vec![(
            "non_field_errors",
            strings("Messages about the body as a whole."),
        )],
        additional_properties: Some(Box::new(strings("The field's messages."))),
        example: Some(json!({"username": ["A user with that username already exists."]})),
        ..MetaSchema::new("object")
    });
}

/// The 500 to answer instead of `status` when `operation` does not document it.
fn undocumented(operation: Option<&OperationId>, status: StatusCode) -> Option<ApiError> {
    static DOCUMENTED: OnceLock<HashMap<&'static str, Vec<u16>>> = OnceLock::new();
    if status.is_server_error() {
        return None;
    }
    let operation = operation?.0;
    let documented = DOCUMENTED.get_or_init(|| {
        let mut apis = <super::Operations as OpenApi>::meta();
        operations(&mut apis)
            .filter_map(|op| {
                let statuses = op.responses.responses.iter().filter_map(|r| r.status);
                Some((op.operation_id?, statuses.collect()))
            })
            .collect()
    });
    let statuses = documented.get(operation)?;
    if statuses.contains(&status.as_u16()) {
        return None;
    }
    let message =
        format!("{operation} answered {status}, which its OpenAPI description does not list");
    tracing::error!("{message} (debug check)");
    Some(ApiError::detail(
        StatusCode::INTERNAL_SERVER_ERROR,
        Code::ServerError,
        &message,
    ))
}

/// `204 No Content`: the action is done and there is nothing to show.
#[derive(ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_builds_refuse_answers_their_operation_does_not_document() {
        let me = OperationId("auth_users_me_retrieve");
        assert!(undocumented(Some(&me), StatusCode::OK).is_none());
        assert!(undocumented(Some(&me), StatusCode::UNAUTHORIZED).is_none());
        assert!(undocumented(Some(&me), StatusCode::TOO_MANY_REQUESTS).is_none());
        // `me` never reads a body nor names another user.
        let gap = undocumented(Some(&me), StatusCode::NOT_FOUND).map(|e| e.to_string());
        assert!(gap.is_some_and(|e| e.starts_with("500") && e.contains("auth_users_me_retrieve")));
        assert!(undocumented(Some(&me), StatusCode::BAD_REQUEST).is_some());
        // Server errors are bugs, never documented: they stay what they are.
        assert!(undocumented(Some(&me), StatusCode::INTERNAL_SERVER_ERROR).is_none());
        assert!(undocumented(None, StatusCode::IM_A_TEAPOT).is_none());
    }
}

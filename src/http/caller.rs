//! Who is calling: the `Authorization` header checked against each enabled scheme in turn,
//! with DRF's messages. `Bearer <jwt>` and `Token <key>` plug in here.
use base64::{Engine, engine::general_purpose::STANDARD};
use poem::{Request, RequestBody, http::StatusCode};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    registry::{MetaSecurityScheme, Registry},
};

use std::net::IpAddr;

use uuid::Uuid;

use super::{
    error::{ApiError, Code},
    throttle::{Authenticated, client_ip},
};
use crate::{
    domain::{
        DomainError,
        groups::Actor,
        mfa::MfaError,
        sessions::{Client, Handle},
        tokens::{TokenError, VerifyError},
        users::User,
    },
    state::AppState,
};

/// The authenticated caller of an endpoint.
pub struct Caller {
    pub user: User,
    /// The SHA-256 of the opaque key presented, when the `Token` scheme was used.
    pub opaque_key: Option<String>,
    /// The session a Bearer token names (its `sid`).
    pub sid: Option<Uuid>,
    /// A staff account without TOTP under `accounts.require_mfa_for_staff`: `user` acts as
    /// non-staff, and the staff-only endpoints refuse it with a clear 403.
    pub staff_mfa_due: bool,
}

impl Caller {
    /// The session the credentials belong to: a JWT's `sid`, or the opaque key's session
    /// (derived only when asked: not on every `Token` request).
    pub fn session(&self) -> Option<Uuid> {
        self.sid.or_else(|| {
            self.opaque_key
                .as_ref()
                .map(|hash| Handle::Key(hash.clone()).session_id())
        })
    }
}

/// Where the request comes from: the client address (`throttle::client_ip`) and User-Agent.
pub fn client_of(request: &Request) -> Client<'_> {
    Client {
        ip: client_ip(request),
        user_agent: request
            .headers()
            .get(poem::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    }
}

const BASIC: &str = "basicAuth";
const BEARER: &str = "bearerAuth";
const TOKEN: &str = "tokenAuth";

impl Caller {
    /// The caller named by the request's `Authorization` header.
    pub async fn from_headers(state: &AppState, request: &Request) -> Result<Self, ApiError> {
        let header = request
            .headers()
            .get(poem::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let mut caller = Self::authenticate(state, header, &client_of(request)).await?;
        if state.mfa.staff_must_enrol(&caller.user).await? {
            caller.user.is_staff = false;
            caller.user.is_superuser = false;
            caller.staff_mfa_due = true;
        }
        Ok(caller)
    }

    /// The caller as the actor of a staff-only operation (DRF's IsAdminUser); a staff account
    /// that must enrol a second factor first is told so.
    pub fn staff_actor(&self) -> Result<Actor<'_>, ApiError> {
        if self.staff_mfa_due {
            return Err(MfaError::StaffMustEnrol.into());
        }
        Ok(Actor::User(&self.user))
    }

    /// Tries the schemes in DRF's order: JWT (`Bearer`, case-sensitive), `Token`, then Basic
    /// when `auth.basic` enables it (otherwise `Basic` is an unknown scheme: no password check).
    async fn authenticate(
        state: &AppState,
        header: Option<&str>,
        client: &Client<'_>,
    ) -> Result<Self, ApiError> {
        let header = header.unwrap_or("");
        // The header passed `to_str`, so it is visible ASCII, spaces and tabs: the ASCII split is
        // DRF's `split()`, without the Unicode test of every character of a 300-byte token.
        let parts: Vec<&str> = header.split_ascii_whitespace().collect();
        match parts.first() {
            Some(scheme)
                if state
                    .settings
                    .jwt
                    .auth_header_types
                    .iter()
                    .any(|t| t == scheme) =>
            {
                bearer(state, &parts).await
            }
            Some(scheme) if scheme.eq_ignore_ascii_case("token") => {
                opaque(state, &parts, client).await
            }
            Some(scheme) if scheme.eq_ignore_ascii_case("basic") && state.settings.auth.basic => {
                basic(state, &parts, client.ip).await
            }
            // No header, an unknown scheme, or Basic while `auth.basic` is off.
            _ => Err(ApiError::not_authenticated()),
        }
    }
}

/// SimpleJWT's JWTAuthentication.
async fn bearer(state: &AppState, parts: &[&str]) -> Result<Caller, ApiError> {
    if parts.len() != 2 {
        return Err(ApiError::detail(
            StatusCode::UNAUTHORIZED,
            Code::BadAuthorizationHeader,
            "Authorization header must contain two space-delimited values",
        ));
    }
    match state.tokens.authenticate(parts[1]).await {
        Ok((user, sid)) => Ok(Caller {
            user,
            opaque_key: None,
            sid,
            staff_mfa_due: false,
        }),
        Err(DomainError::Token(
            e @ (TokenError::Refused(VerifyError::NoUser)
            | TokenError::UserNotFound
            | TokenError::UserInactive),
        )) => Err(ApiError::token(&e)),
        // The body downstream services answer too (tessera-verify), defined once there.
        Err(DomainError::Token(e)) => Err(ApiError::body(
            StatusCode::UNAUTHORIZED,
            tessera_verify::Rejection::token_not_valid(&e.to_string()).body,
        )),
        Err(other) => Err(other.into()),
    }
}

/// DRF's TokenAuthentication.
async fn opaque(state: &AppState, parts: &[&str], client: &Client<'_>) -> Result<Caller, ApiError> {
    let failed = ApiError::authentication_failed;
    match parts.len() {
        1 => Err(failed("Invalid token header. No credentials provided.")),
        2 => {
            let (user, hash) = state.opaque.authenticate(parts[1], client).await?;
            Ok(Caller {
                user,
                opaque_key: Some(hash),
                sid: None,
                staff_mfa_due: false,
            })
        }
        _ => Err(failed(
            "Invalid token header. Token string should not contain spaces.",
        )),
    }
}

/// DRF's BasicAuthentication.
async fn basic(state: &AppState, parts: &[&str], ip: Option<IpAddr>) -> Result<Caller, ApiError> {
    let failed = ApiError::authentication_failed;
    match parts.len() {
        1 => return Err(failed("Invalid basic header. No credentials provided.")),
        2 => {}
        _ => {
            return Err(failed(
                "Invalid basic header. Credentials string should not contain spaces.",
            ));
        }
    }
    let decoded = STANDARD.decode(parts[1]).ok().map(|bytes| {
        String::from_utf8(bytes)
            .unwrap_or_else(|e| e.into_bytes().iter().map(|&b| b as char).collect())
    });
    let Some((username, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
        return Err(failed(
            "Invalid basic header. Credentials not correctly base64 encoded.",
        ));
    };
    let user = match state.users.first_factor(username, password, ip).await {
        Ok(user) => user,
        Err(DomainError::InvalidCredentials) => return Err(failed("Invalid username/password.")),
        Err(other) => return Err(other.into()),
    };
    // A password alone must not stand in for a login that needs a second factor.
    if state.mfa.active(user.id).await? {
        return Err(failed(
            "A second factor is required: log in at /api/token/ instead of HTTP Basic.",
        ));
    }
    state.users.finish_login(username).await;
    Ok(Caller {
        user,
        opaque_key: None,
        sid: None,
        staff_mfa_due: false,
    })
}

/// Removes the `basicAuth` scheme and every operation's mention of it from an OpenAPI document
/// (poem-openapi registers schemes statically; `auth.basic` is known only at start).
pub(super) fn forget_basic_scheme(doc: &mut serde_json::Value) {
    if let Some(schemes) = doc
        .pointer_mut("/components/securitySchemes")
        .and_then(|s| s.as_object_mut())
    {
        schemes.remove(BASIC);
    }
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for operation in paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
    {
        if let Some(security) = operation.get_mut("security").and_then(|s| s.as_array_mut()) {
            security.retain(|requirement| requirement.get(BASIC).is_none());
        }
    }
}

impl<'a> ApiExtractor<'a> for Caller {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            BEARER,
            MetaSecurityScheme {
                ty: "http",
                description: Some(
                    "An access token from POST /api/token/ (SimpleJWT's JWTAuthentication).",
                ),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: Some("JWT"),
                flows: None,
                openid_connect_url: None,
            },
        );
        registry.create_security_scheme(
            TOKEN,
            MetaSecurityScheme {
                ty: "apiKey",
                description: Some("`Token <key>` with a key from POST /auth/token/login/ (DRF's TokenAuthentication)."),
                name: Some("Authorization"),
                key_in: Some("header"),
                scheme: None,
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
        );
        registry.create_security_scheme(
            BASIC,
            MetaSecurityScheme {
                ty: "http",
                description: Some("Username and password (DRF's BasicAuthentication)."),
                name: None,
                key_in: None,
                scheme: Some("basic"),
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![BEARER, TOKEN, BASIC]
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        // The limiter authenticated this request already (and applied the user's rate).
        if let Some(outcome) = Authenticated::take(request) {
            return Ok(outcome?);
        }
        let state = request.data::<AppState>().ok_or_else(ApiError::internal)?;
        let caller = Self::from_headers(state, request).await?;
        // DRF's UserRateThrottle: authenticated callers are limited by user.
        if let Some(limiter) = &state.throttle {
            let decision = limiter
                .check_user(caller.user.id)
                .await
                .map_err(ApiError::from)?;
            super::throttle::report(request, decision);
        }
        Ok(caller)
    }
}

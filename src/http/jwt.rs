//! SimpleJWT's endpoints (`/api/token/...`) and Djoser's aliases (`/auth/jwt/...`), plus JWKS.
use poem::{Request, http::StatusCode, web::Data};
use poem_openapi::{ApiResponse, Object, OpenApi, Tags, payload::Json, types::Example};

use super::{
    answer::{Answer, Forbidden, NoActiveAccountOrMfa, NoContent, TokenRefused, Unavailable},
    body::Body,
    caller::{Caller, client_of},
    cookie::{self, CsrfHeader, RefreshCookie, WithCookies},
    error::{ApiError, Code},
};
use crate::{
    domain::{
        DomainError,
        mfa::LoginKind,
        tokens::{TokenError, TokenPair},
    },
    state::AppState,
};

#[derive(Tags)]
enum Tag {
    /// JSON Web Tokens (SimpleJWT's /api/token/ and Djoser's /auth/jwt/)
    Jwt,
}

const SAMPLE_JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwiZXhwIjoxNzk1MzMwMDA1LCJpYXQiOjE3OTUzMjk3MDUsImp0aSI6IjVlNmZmNWNjNDc1MTQ3MmY4ZjVkMDg1NDM5MTMwMWVmIiwidXNlcl9pZCI6IjAxOWFhN2M4LThkMzQtN2MxZS05YjNmLTJhMWQ1ZTZmN2E4YiJ9.c2lnbmF0dXJl";

request_body! {
    /// Credentials for a new token pair.
    #[oai(rename = "TokenObtain", example)]
    pub struct ObtainRequest {
        /// The username; named `email` and holding the email when `accounts.login_field = "email"`.
        pub username: String = |f| f.required(f.login_field()), example: "alice".into();
        #[oai(write_only)]
        pub password: String = |f| f.required("password"), example: "correct horse battery".into();
    }
}

/// A fresh access/refresh pair.
#[derive(Object)]
#[oai(rename = "TokenPair", example, skip_serializing_if_is_none)]
pub struct PairBody {
    /// Absent only with `jwt.cookie.omit_from_body` (the refresh token is then in the cookie).
    pub refresh: Option<String>,
    pub access: String,
}

impl Example for PairBody {
    fn example() -> Self {
        Self {
            refresh: Some(SAMPLE_JWT.into()),
            access: SAMPLE_JWT.into(),
        }
    }
}

request_body! {
    /// A refresh token.
    #[oai(rename = "TokenRefresh", example)]
    pub struct RefreshRequest {
        /// Required, unless `jwt.cookie.enabled` and the refresh cookie is sent instead.
        pub refresh: Option<String> = |f| f.optional("refresh", false), example: Some(SAMPLE_JWT.into());
    }
}

/// A new access token, and a new refresh token when rotation is on.
#[derive(Object)]
#[oai(rename = "TokenRefreshed", example, skip_serializing_if_is_none)]
pub struct RefreshedBody {
    pub access: String,
    pub refresh: Option<String>,
}

impl Example for RefreshedBody {
    fn example() -> Self {
        Self {
            access: SAMPLE_JWT.into(),
            refresh: Some(SAMPLE_JWT.into()),
        }
    }
}

request_body! {
    /// Any token to check.
    #[oai(rename = "TokenVerify", example)]
    pub struct VerifyRequest {
        pub token: String = |f| f.required("token"), example: SAMPLE_JWT.into();
    }
}

/// SimpleJWT's empty success body.
#[derive(Object)]
#[oai(rename = "Empty")]
pub struct EmptyBody {}

#[derive(ApiResponse)]
pub enum Pair {
    #[oai(status = 200)]
    Ok(Json<PairBody>),
}

#[derive(ApiResponse)]
pub enum Refreshed {
    #[oai(status = 200)]
    Ok(Json<RefreshedBody>),
}

#[derive(ApiResponse)]
pub enum Done {
    #[oai(status = 200)]
    Ok(Json<EmptyBody>),
}

#[derive(ApiResponse)]
pub enum Jwks {
    /// The public verifying keys (empty for HMAC algorithms).
    #[oai(status = 200)]
    Ok(Json<serde_json::Value>),
}

async fn obtain(
    state: &AppState,
    body: ObtainRequest,
    req: &Request,
) -> Answer<WithCookies<Pair>, (NoActiveAccountOrMfa, Unavailable)> {
    let login = state
        .mfa
        .password_login(
            &body.username,
            &body.password,
            client_of(req).ip,
            LoginKind::Pair,
        )
        .await;
    match login {
        Ok(user) => {
            let pair = state.tokens.issue_pair(user, &client_of(req)).await?;
            Ok(answer_pair(state, req, pair))
        }
        Err(DomainError::InvalidCredentials) => Err(ApiError::detail(
            StatusCode::UNAUTHORIZED,
            Code::NoActiveAccount,
            "No active account found with the given credentials",
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// A new pair as a login answers it: in the body, and with `jwt.cookie.enabled` the refresh
/// token also as a cookie (left out of the body with `omit_from_body`). Shared by the password
/// login and its second-factor completion.
pub(super) fn answer_pair(state: &AppState, req: &Request, pair: TokenPair) -> WithCookies<Pair> {
    let settings = &state.settings;
    let cookies = if cookie::may_set_on_login(settings, req) {
        cookie::issue(settings, req, &pair.refresh)
    } else {
        Vec::new()
    };
    let omit = cookie::enabled(settings).is_some_and(|c| c.omit_from_body);
    let body = PairBody {
        refresh: (!omit).then_some(pair.refresh),
        access: pair.access,
    };
    WithCookies::new(Pair::Ok(Json(body)), cookies)
}

/// The cookie parameters of refresh and blacklist.
struct FromCookie<'r> {
    req: &'r Request,
    cookie: RefreshCookie,
    csrf: CsrfHeader,
}

async fn refresh(
    state: &AppState,
    body: RefreshRequest,
    from: FromCookie<'_>,
) -> Answer<WithCookies<Refreshed>, (TokenRefused, Forbidden, Unavailable)> {
    let settings = &state.settings;
    let presented = cookie::presented(settings, from.req, body.refresh, &from.cookie, &from.csrf)?;
    let r = state
        .tokens
        .refresh(&presented.token, &client_of(from.req))
        .await?;
    let mut cookies = Vec::new();
    let mut refresh = r.refresh;
    if presented.from_cookie
        && let Some(rotated) = &refresh
    {
        cookies = cookie::issue(settings, from.req, rotated);
        if cookie::enabled(settings).is_some_and(|c| c.omit_from_body) {
            refresh = None;
        }
    }
    let body = RefreshedBody {
        access: r.access,
        refresh,
    };
    Ok(WithCookies::new(Refreshed::Ok(Json(body)), cookies))
}

async fn blacklist(
    state: &AppState,
    body: RefreshRequest,
    from: FromCookie<'_>,
) -> Answer<WithCookies<Done>, (TokenRefused, Forbidden, Unavailable)> {
    let settings = &state.settings;
    let presented = cookie::presented(settings, from.req, body.refresh, &from.cookie, &from.csrf)?;
    state.tokens.blacklist(&presented.token).await?;
    let cookies = if presented.from_cookie {
        cookie::clear(settings)
    } else {
        Vec::new()
    };
    Ok(WithCookies::new(Done::Ok(Json(EmptyBody {})), cookies))
}

async fn verify(
    state: &AppState,
    body: VerifyRequest,
) -> Answer<Done, (TokenRefused, Unavailable)> {
    match state.tokens.verify(&body.token).await {
        Ok(()) => Ok(Done::Ok(Json(EmptyBody {}))),
        // SimpleJWT answers a blacklisted token here with a validation error, not a 401.
        Err(DomainError::Token(TokenError::Blacklisted)) => {
            Err(ApiError::field("non_field_errors", "Token is blacklisted").into())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Default)]
pub struct JwtApi;

#[OpenApi(tag = "Tag::Jwt")]
impl JwtApi {
    /// Obtain an access/refresh pair
    ///
    /// SimpleJWT's TokenObtainPairView: `{username, password}` (the `accounts.login_field`)
    /// for `{refresh, access}`. A wrong password, an unknown or an inactive user answer the
    /// same 401; failed logins count toward the lockout (429). For a user with TOTP, a right
    /// password answers 401 `mfa_required` with an `mfa_token` for `POST /api/token/mfa/`
    /// (a wrong one answers as for anyone). With `jwt.cookie.enabled` the
    /// refresh token is also set as an HttpOnly cookie, beside a readable `csrftoken` cookie
    /// (not for a request whose `Origin` is not trusted).
    #[oai(path = "/api/token/", method = "post", operation_id = "token_create")]
    async fn token(
        &self,
        state: Data<&AppState>,
        body: Body<ObtainRequest>,
        req: &Request,
    ) -> Answer<WithCookies<Pair>, (NoActiveAccountOrMfa, Unavailable)> {
        obtain(&state, body.0, req).await
    }

    /// Obtain an access/refresh pair (Djoser's path)
    ///
    /// Djoser's alias of `POST /api/token/`: the same answers, limits and lockout.
    #[oai(
        path = "/auth/jwt/create/",
        method = "post",
        operation_id = "auth_jwt_create_create"
    )]
    async fn jwt_create(
        &self,
        state: Data<&AppState>,
        body: Body<ObtainRequest>,
        req: &Request,
    ) -> Answer<WithCookies<Pair>, (NoActiveAccountOrMfa, Unavailable)> {
        obtain(&state, body.0, req).await
    }

    /// Refresh an access token
    ///
    /// Exchanges a refresh token for a new access token and, with rotation on (the default), a
    /// new refresh token. Presenting a refresh token that was already rotated revokes its whole
    /// family (reuse detection). With `jwt.cookie.enabled` and no `refresh` in the body, the
    /// refresh cookie is used: the request then needs `X-CSRF-Token` equal to the `csrftoken`
    /// cookie or a trusted `Origin` (else 403 `CSRF Failed: ...`), and the rotated token is set
    /// as the new cookie.
    #[oai(
        path = "/api/token/refresh/",
        method = "post",
        operation_id = "token_refresh_create"
    )]
    async fn token_refresh(
        &self,
        state: Data<&AppState>,
        body: Body<RefreshRequest>,
        req: &Request,
        /// The refresh cookie (`jwt.cookie.name`), read when the body has no `refresh`.
        refresh_token: RefreshCookie,
        /// Equal to the `csrftoken` cookie, when the refresh token comes from the cookie.
        #[oai(name = "X-CSRF-Token")]
        csrf: CsrfHeader,
    ) -> Answer<WithCookies<Refreshed>, (TokenRefused, Forbidden, Unavailable)> {
        let from = FromCookie {
            req,
            cookie: refresh_token,
            csrf,
        };
        refresh(&state, body.0, from).await
    }

    /// Refresh an access token (Djoser's path)
    ///
    /// Djoser's alias of `POST /api/token/refresh/`: the same answers and limits.
    #[oai(
        path = "/auth/jwt/refresh/",
        method = "post",
        operation_id = "auth_jwt_refresh_create"
    )]
    async fn jwt_refresh(
        &self,
        state: Data<&AppState>,
        body: Body<RefreshRequest>,
        req: &Request,
        /// The refresh cookie (`jwt.cookie.name`), read when the body has no `refresh`.
        refresh_token: RefreshCookie,
        /// Equal to the `csrftoken` cookie, when the refresh token comes from the cookie.
        #[oai(name = "X-CSRF-Token")]
        csrf: CsrfHeader,
    ) -> Answer<WithCookies<Refreshed>, (TokenRefused, Forbidden, Unavailable)> {
        let from = FromCookie {
            req,
            cookie: refresh_token,
            csrf,
        };
        refresh(&state, body.0, from).await
    }

    /// Verify a token
    ///
    /// Checks an access or refresh token: signature, claims, type and revocation; 200 `{}`
    /// when valid. A revoked token is SimpleJWT's 400 `{"non_field_errors": ["Token is
    /// blacklisted"]}`, any other refusal a 401.
    #[oai(
        path = "/api/token/verify/",
        method = "post",
        operation_id = "token_verify_create"
    )]
    async fn token_verify(
        &self,
        state: Data<&AppState>,
        body: Body<VerifyRequest>,
    ) -> Answer<Done, (TokenRefused, Unavailable)> {
        verify(&state, body.0).await
    }

    /// Verify a token (Djoser's path)
    ///
    /// Djoser's alias of `POST /api/token/verify/`: the same answers and limits.
    #[oai(
        path = "/auth/jwt/verify/",
        method = "post",
        operation_id = "auth_jwt_verify_create"
    )]
    async fn jwt_verify(
        &self,
        state: Data<&AppState>,
        body: Body<VerifyRequest>,
    ) -> Answer<Done, (TokenRefused, Unavailable)> {
        verify(&state, body.0).await
    }

    /// Revoke a refresh token
    ///
    /// SimpleJWT's TokenBlacklistView (logout); needs no authentication. The access token
    /// issued with the refresh token is revoked too. With `jwt.cookie.enabled` and no
    /// `refresh` in the body, the refresh cookie is revoked (same CSRF rule as refresh) and
    /// both cookies are expired.
    #[oai(
        path = "/api/token/blacklist/",
        method = "post",
        operation_id = "token_blacklist_create"
    )]
    async fn token_blacklist(
        &self,
        state: Data<&AppState>,
        body: Body<RefreshRequest>,
        req: &Request,
        /// The refresh cookie (`jwt.cookie.name`), read when the body has no `refresh`.
        refresh_token: RefreshCookie,
        /// Equal to the `csrftoken` cookie, when the refresh token comes from the cookie.
        #[oai(name = "X-CSRF-Token")]
        csrf: CsrfHeader,
    ) -> Answer<WithCookies<Done>, (TokenRefused, Forbidden, Unavailable)> {
        let from = FromCookie {
            req,
            cookie: refresh_token,
            csrf,
        };
        blacklist(&state, body.0, from).await
    }

    /// Log out everywhere
    ///
    /// Revokes every JWT and opaque key of the caller issued until now (and, with
    /// `jwt.cookie.enabled`, expires the refresh and CSRF cookies).
    #[oai(
        path = "/api/token/revoke_all/",
        method = "post",
        operation_id = "token_revoke_all_create"
    )]
    async fn revoke_all(
        &self,
        state: Data<&AppState>,
        caller: Caller,
    ) -> Answer<WithCookies<NoContent>> {
        state.accounts.logout_everywhere(caller.user.id).await?;
        Ok(WithCookies::new(
            NoContent::Done,
            cookie::clear(&state.settings),
        ))
    }

    /// The public verifying keys
    ///
    /// A JSON Web Key Set (RFC 7517), each key with its `kid`; `{"keys": []}` with an HMAC
    /// algorithm, whose key is never published.
    #[oai(
        path = "/.well-known/jwks.json",
        method = "get",
        operation_id = "well_known_jwks_json_retrieve"
    )]
    async fn jwks(&self, state: Data<&AppState>) -> Jwks {
        let set = serde_json::to_value(state.tokens.keys().jwks())
            .unwrap_or_else(|_| serde_json::json!({"keys": []}));
        Jwks::Ok(Json(set))
    }
}

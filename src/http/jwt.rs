//! SimpleJWT's endpoints (`/api/token/...`) and Djoser's aliases (`/auth/jwt/...`), plus JWKS.
use poem::{Request, http::StatusCode, web::Data};
use poem_openapi::{ApiResponse, Object, OpenApi, Tags, payload::Json, types::Example};

use super::{
    answer::{Answer, NoActiveAccount, NoContent, TokenRefused, Unavailable},
    body::Body,
    caller::Caller,
    error::{ApiError, Code},
    throttle::client_ip,
};
use crate::{
    domain::{DomainError, tokens::TokenError},
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
#[oai(rename = "TokenPair", example)]
pub struct PairBody {
    pub refresh: String,
    pub access: String,
}

impl Example for PairBody {
    fn example() -> Self {
        Self {
            refresh: SAMPLE_JWT.into(),
            access: SAMPLE_JWT.into(),
        }
    }
}

request_body! {
    /// A refresh token.
    #[oai(rename = "TokenRefresh", example)]
    pub struct RefreshRequest {
        pub refresh: String = |f| f.required("refresh"), example: SAMPLE_JWT.into();
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
) -> Answer<Pair, (NoActiveAccount, Unavailable)> {
    match state
        .tokens
        .obtain(&body.username, &body.password, client_ip(req))
        .await
    {
        Ok(pair) => Ok(Pair::Ok(Json(PairBody {
            refresh: pair.refresh,
            access: pair.access,
        }))),
        Err(DomainError::InvalidCredentials) => Err(ApiError::detail(
            StatusCode::UNAUTHORIZED,
            Code::NoActiveAccount,
            "No active account found with the given credentials",
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}

async fn refresh(
    state: &AppState,
    body: RefreshRequest,
) -> Answer<Refreshed, (TokenRefused, Unavailable)> {
    let r = state.tokens.refresh(&body.refresh).await?;
    Ok(Refreshed::Ok(Json(RefreshedBody {
        access: r.access,
        refresh: r.refresh,
    })))
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

pub struct JwtApi;

#[OpenApi(tag = "Tag::Jwt")]
impl JwtApi {
    /// Obtain an access/refresh pair
    ///
    /// SimpleJWT's TokenObtainPairView: `{username, password}` (the `accounts.login_field`)
    /// for `{refresh, access}`. A wrong password, an unknown or an inactive user answer the
    /// same 401; failed logins count toward the lockout (429).
    #[oai(path = "/api/token/", method = "post", operation_id = "token_create")]
    async fn token(
        &self,
        state: Data<&AppState>,
        body: Body<ObtainRequest>,
        req: &Request,
    ) -> Answer<Pair, (NoActiveAccount, Unavailable)> {
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
    ) -> Answer<Pair, (NoActiveAccount, Unavailable)> {
        obtain(&state, body.0, req).await
    }

    /// Refresh an access token
    ///
    /// Exchanges a refresh token for a new access token and, with rotation on (the default), a
    /// new refresh token. Presenting a refresh token that was already rotated revokes its whole
    /// family (reuse detection).
    #[oai(
        path = "/api/token/refresh/",
        method = "post",
        operation_id = "token_refresh_create"
    )]
    async fn token_refresh(
        &self,
        state: Data<&AppState>,
        body: Body<RefreshRequest>,
    ) -> Answer<Refreshed, (TokenRefused, Unavailable)> {
        refresh(&state, body.0).await
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
    ) -> Answer<Refreshed, (TokenRefused, Unavailable)> {
        refresh(&state, body.0).await
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
    /// issued with the refresh token is revoked too.
    #[oai(
        path = "/api/token/blacklist/",
        method = "post",
        operation_id = "token_blacklist_create"
    )]
    async fn token_blacklist(
        &self,
        state: Data<&AppState>,
        body: Body<RefreshRequest>,
    ) -> Answer<Done, (TokenRefused, Unavailable)> {
        state.tokens.blacklist(&body.0.refresh).await?;
        Ok(Done::Ok(Json(EmptyBody {})))
    }

    /// Log out everywhere
    ///
    /// Revokes every JWT and opaque key of the caller issued until now.
    #[oai(
        path = "/api/token/revoke_all/",
        method = "post",
        operation_id = "token_revoke_all_create"
    )]
    async fn revoke_all(&self, state: Data<&AppState>, caller: Caller) -> Answer<NoContent> {
        state.accounts.logout_everywhere(caller.user.id).await?;
        Ok(NoContent::Done)
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

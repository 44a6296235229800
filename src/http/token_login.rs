//! Opaque keys: Djoser's `/auth/token/login/` and `/logout/`, DRF's `obtain_auth_token`, and the
//! caller's key list when several keys per user are allowed.
use chrono::{DateTime, Utc};
use poem::{Request, web::Data};
use poem_openapi::{
    ApiResponse, Object, OpenApi, Tags, param::Path, payload::Json, types::Example,
};

use super::{
    answer::{Answer, MfaRequired, NoContent, NotFound, Unavailable},
    body::Body,
    caller::{Caller, client_of},
    error::ApiError,
};
use crate::{
    domain::{DomainError, mfa::LoginKind, opaque::SESSION_ID_LEN},
    state::AppState,
};

#[derive(Tags)]
enum Tag {
    /// Opaque tokens (DRF's authtoken, Djoser's /auth/token/)
    Tokens,
}

const SAMPLE_KEY: &str = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b";
const UNABLE: &str = "Unable to log in with provided credentials.";

request_body! {
    /// Credentials; both are optional in the schema because Djoser answers their absence with
    /// `non_field_errors` like a wrong password.
    #[oai(rename = "TokenCreate", example)]
    pub struct LoginRequest {
        /// The username; named `email` and holding the email when `accounts.login_field = "email"`.
        pub username: Option<String> = |f| f.optional(f.login_field(), true), example: Some("alice".into());
        #[oai(write_only)]
        pub password: Option<String> = |f| f.optional("password", true), example: Some("correct horse battery".into());
    }
}

request_body! {
    /// DRF's AuthTokenSerializer: the password is taken as sent, spaces included.
    #[oai(rename = "AuthToken", example)]
    pub struct ObtainRequest {
        pub username: String = |f| f.required("username"), example: "alice".into();
        #[oai(write_only)]
        pub password: String = |f| f.required_untrimmed("password"), example: "correct horse battery".into();
    }
}

#[derive(Object)]
#[oai(rename = "TokenLogin", example)]
pub struct AuthTokenBody {
    pub auth_token: String,
}

impl Example for AuthTokenBody {
    fn example() -> Self {
        Self {
            auth_token: SAMPLE_KEY.into(),
        }
    }
}

#[derive(Object)]
#[oai(rename = "Token", example)]
pub struct TokenBody {
    pub token: String,
}

impl Example for TokenBody {
    fn example() -> Self {
        Self {
            token: SAMPLE_KEY.into(),
        }
    }
}

/// One of the caller's keys (never the key itself).
#[derive(Object)]
#[oai(rename = "TokenSession")]
pub struct SessionBody {
    /// Names the key for DELETE: the first 16 hex characters of its SHA-256.
    pub id: String,
    /// The User-Agent that logged in.
    pub name: String,
    pub created: DateTime<Utc>,
    /// `null` until the key is used.
    #[oai(nullable)]
    pub last_used: Option<DateTime<Utc>>,
    /// `null` when keys never expire (`tokens.token_lifetime = "0s"`).
    #[oai(nullable)]
    pub expires: Option<DateTime<Utc>>,
    /// Whether this is the key authenticating the request.
    pub current: bool,
}

#[derive(ApiResponse)]
pub enum LoggedIn {
    #[oai(status = 200)]
    Ok(Json<AuthTokenBody>),
}

#[derive(ApiResponse)]
pub enum Obtained {
    #[oai(status = 200)]
    Ok(Json<TokenBody>),
}

#[derive(ApiResponse)]
pub enum Sessions {
    #[oai(status = 200)]
    Ok(Json<Vec<SessionBody>>),
}

async fn login(
    state: &AppState,
    username: &str,
    password: &str,
    req: &Request,
) -> Result<String, ApiError> {
    let login = state
        .mfa
        .password_login(username, password, client_of(req).ip, LoginKind::Key)
        .await;
    match login {
        Ok(user) => Ok(state.opaque.key_for(&user, &client_of(req), false).await?),
        Err(DomainError::InvalidCredentials) => Err(ApiError::field("non_field_errors", UNABLE)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Default)]
pub struct TokenLoginApi;

#[OpenApi(tag = "Tag::Tokens")]
impl TokenLoginApi {
    /// Log in for an opaque key
    ///
    /// Djoser's TokenCreateView: `{username, password}` for `{"auth_token": ...}`. Wrong or
    /// missing credentials are DRF's 400 `non_field_errors` (not a 401); failed logins count
    /// toward the lockout (429). With one key per user (DRF), every login answers the same key
    /// until logout. For a user with TOTP, a right password answers 401 `mfa_required` with an
    /// `mfa_token` for `POST /auth/token/login/mfa/`.
    #[oai(
        path = "/auth/token/login/",
        method = "post",
        operation_id = "auth_token_login_create"
    )]
    async fn login(
        &self,
        state: Data<&AppState>,
        body: Body<LoginRequest>,
        req: &Request,
    ) -> Answer<LoggedIn, (MfaRequired, Unavailable)> {
        let (Some(username), Some(password)) = (body.0.username, body.0.password) else {
            return Err(ApiError::field("non_field_errors", UNABLE).into());
        };
        let key = login(&state, &username, &password, req).await?;
        Ok(LoggedIn::Ok(Json(AuthTokenBody { auth_token: key })))
    }

    /// Log out
    ///
    /// The presented key stops working (with one key per user, the user's key; with a JWT or
    /// Basic caller, every key of the user).
    #[oai(
        path = "/auth/token/logout/",
        method = "post",
        operation_id = "auth_token_logout_create"
    )]
    async fn logout(&self, state: Data<&AppState>, caller: Caller) -> Answer<NoContent> {
        state
            .opaque
            .logout(caller.user.id, caller.opaque_key.as_deref())
            .await?;
        Ok(NoContent::Done)
    }

    /// Obtain the opaque key (DRF's obtain_auth_token)
    ///
    /// The same key as `/auth/token/login/`, as `{"token": ...}`; the password is taken as
    /// sent, spaces included. Wrong credentials are DRF's 400 `non_field_errors`. For a user with
    /// TOTP, 401 `mfa_required` as at `/auth/token/login/`.
    #[oai(
        path = "/api/api-token-auth/",
        method = "post",
        operation_id = "api_token_auth_create"
    )]
    async fn obtain(
        &self,
        state: Data<&AppState>,
        body: Body<ObtainRequest>,
        req: &Request,
    ) -> Answer<Obtained, (MfaRequired, Unavailable)> {
        let key = login(&state, &body.0.username, &body.0.password, req).await?;
        Ok(Obtained::Ok(Json(TokenBody { token: key })))
    }

    /// The caller's opaque keys
    ///
    /// One per device when `tokens.multiple` is on: device, creation, last use and expiry,
    /// never the key itself.
    #[oai(
        path = "/auth/token/sessions/",
        method = "get",
        operation_id = "auth_token_sessions_list"
    )]
    async fn sessions(&self, state: Data<&AppState>, caller: Caller) -> Answer<Sessions> {
        let rows = state.opaque.sessions(caller.user.id).await?;
        let list = rows
            .into_iter()
            .map(|t| SessionBody {
                id: t.key_sha256[..SESSION_ID_LEN].to_owned(),
                current: caller.opaque_key.as_deref() == Some(t.key_sha256.as_str()),
                name: t.name,
                created: t.created_at,
                last_used: t.last_used_at,
                expires: t.expires_at,
            })
            .collect();
        Ok(Sessions::Ok(Json(list)))
    }

    /// Revoke every opaque key of the caller
    ///
    /// "Log out all devices"; JWTs are not affected (see `/api/token/revoke_all/`).
    #[oai(
        path = "/auth/token/sessions/",
        method = "delete",
        operation_id = "auth_token_sessions_destroy_all"
    )]
    async fn delete_sessions(&self, state: Data<&AppState>, caller: Caller) -> Answer<NoContent> {
        state.opaque.revoke_all(caller.user.id).await?;
        Ok(NoContent::Done)
    }

    /// Revoke one of the caller's keys
    ///
    /// By the `id` that the session list shows; another user's or an unknown id is 404.
    #[oai(
        path = "/auth/token/sessions/:id/",
        method = "delete",
        operation_id = "auth_token_sessions_destroy"
    )]
    async fn delete_session(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        id: Path<String>,
    ) -> Answer<NoContent, NotFound> {
        if !state.opaque.end_session(caller.user.id, &id.0).await? {
            return Err(ApiError::not_found().into());
        }
        Ok(NoContent::Done)
    }
}

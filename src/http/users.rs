//! Djoser's `/auth/users/` endpoints.
use poem::{Request, web::Data};
use poem_openapi::{
    ApiResponse, Object, OpenApi, Tags,
    param::{Path, Query},
    payload::Json,
    types::Example,
};
use uuid::Uuid;

use super::{
    body::{Body, Fields, FromFields},
    caller::Caller,
    error::ApiError,
};
use crate::{
    domain::{
        roles::ShownUser,
        users::{ProfileChange, Registration, User},
    },
    state::AppState,
};

#[derive(Tags)]
enum Tag {
    /// Accounts (Djoser's /auth/users/)
    Users,
}

/// A user as Djoser's UserSerializer shows it, with its roles unless
/// `accounts.show_user_roles` is off.
#[derive(Object)]
#[oai(rename = "User", example)]
pub struct UserBody {
    pub email: String,
    pub id: Uuid,
    pub username: String,
    /// Names of the user's groups, sorted. Absent when `accounts.show_user_roles` is off.
    #[oai(read_only, skip_serializing_if_is_none)]
    pub groups: Option<Vec<String>>,
    /// Absent when `accounts.show_user_roles` is off.
    #[oai(read_only, skip_serializing_if_is_none)]
    pub is_staff: Option<bool>,
    /// Absent when `accounts.show_user_roles` is off.
    #[oai(read_only, skip_serializing_if_is_none)]
    pub is_superuser: Option<bool>,
}

impl Example for UserBody {
    fn example() -> Self {
        let u = UserSummaryBody::example();
        Self {
            email: u.email,
            id: u.id,
            username: u.username,
            groups: Some(vec!["manager".into()]),
            is_staff: Some(false),
            is_superuser: Some(false),
        }
    }
}

impl From<ShownUser> for UserBody {
    fn from(shown: ShownUser) -> Self {
        let u = shown.user;
        let roles = shown.roles;
        Self {
            email: u.email,
            id: u.id,
            username: u.username,
            is_staff: roles.as_ref().map(|r| r.is_staff),
            is_superuser: roles.as_ref().map(|r| r.is_superuser),
            groups: roles.map(|r| r.groups),
        }
    }
}

/// A user's `{email, id, username}` only, as Djoser's UserCreateSerializer answers a
/// registration (also the members of a group).
#[derive(Object)]
#[oai(rename = "UserSummary", example)]
pub struct UserSummaryBody {
    pub email: String,
    pub id: Uuid,
    pub username: String,
}

impl Example for UserSummaryBody {
    fn example() -> Self {
        Self {
            email: "alice@example.com".into(),
            id: Uuid::from_u128(0x019a_a7c8_8d34_7c1e_9b3f_2a1d_5e6f_7a8b),
            username: "alice".into(),
        }
    }
}

impl From<User> for UserSummaryBody {
    fn from(u: User) -> Self {
        Self {
            email: u.email,
            id: u.id,
            username: u.username,
        }
    }
}

/// A registration (Djoser's UserCreateSerializer).
#[derive(Object)]
#[oai(rename = "UserCreate", example)]
pub struct RegisterRequest {
    /// Letters, digits and @/./+/-/_ only; at most 150; unique regardless of case.
    pub username: String,
    /// Checked by Django's four default validators.
    #[oai(write_only)]
    pub password: String,
    /// Optional; may be blank.
    pub email: Option<String>,
    /// Required when `accounts.user_create_password_retype` is on.
    #[oai(write_only)]
    pub re_password: Option<String>,
}

impl Example for RegisterRequest {
    fn example() -> Self {
        Self {
            username: "alice".into(),
            password: "correct horse battery".into(),
            email: Some("alice@example.com".into()),
            re_password: None,
        }
    }
}

impl FromFields for RegisterRequest {
    fn read(f: &mut Fields) -> Self {
        Self {
            username: f.required("username"),
            password: f.required("password"),
            email: f.optional("email", true),
            re_password: f.optional("re_password", true),
        }
    }
}

/// Profile changes; `id`, `username` and the roles are read-only and ignored.
#[derive(Object)]
#[oai(rename = "UserUpdate", example)]
pub struct UpdateRequest {
    pub email: Option<String>,
}

impl Example for UpdateRequest {
    fn example() -> Self {
        Self {
            email: Some("alice@example.org".into()),
        }
    }
}

impl FromFields for UpdateRequest {
    fn read(f: &mut Fields) -> Self {
        Self {
            email: f.optional("email", true),
        }
    }
}

/// Deletion needs the caller's own password.
#[derive(Object)]
#[oai(rename = "UserDelete", example)]
pub struct DeleteRequest {
    #[oai(write_only)]
    pub current_password: String,
}

impl Example for DeleteRequest {
    fn example() -> Self {
        Self {
            current_password: "correct horse battery".into(),
        }
    }
}

impl FromFields for DeleteRequest {
    fn read(f: &mut Fields) -> Self {
        Self {
            current_password: f.required("current_password"),
        }
    }
}

/// One page of users, like DRF's PageNumberPagination.
#[derive(Object)]
#[oai(rename = "PaginatedUserList")]
pub struct UserPageBody {
    pub count: u64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<UserBody>,
}

#[derive(ApiResponse)]
pub enum Created {
    /// The new user.
    #[oai(status = 201)]
    Created(Json<UserSummaryBody>),
}

#[derive(ApiResponse)]
pub enum Found {
    #[oai(status = 200)]
    Ok(Json<UserBody>),
}

#[derive(ApiResponse)]
pub enum Listed {
    /// All visible users (pagination off).
    #[oai(status = 200)]
    All(Json<Vec<UserBody>>),
    /// One page (pagination on, `users.page_size` > 0).
    #[oai(status = 200)]
    Page(Json<UserPageBody>),
}

#[derive(ApiResponse)]
pub enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    Deleted,
}

type Answer<T> = Result<T, ApiError>;

pub struct UsersApi;

#[OpenApi(tag = "Tag::Users")]
impl UsersApi {
    /// Register a new user (public).
    #[oai(path = "/auth/users/", method = "post")]
    async fn register(
        &self,
        state: Data<&AppState>,
        body: Body<RegisterRequest>,
    ) -> Answer<Created> {
        let r = body.0;
        let registration = Registration {
            username: r.username,
            email: r.email.unwrap_or_default(),
            password: r.password,
            is_staff: false,
            is_superuser: false,
            is_active: true,
        };
        let user = state
            .accounts
            .register(registration, r.re_password.as_deref())
            .await?;
        Ok(Created::Created(Json(user.into())))
    }

    /// List users: staff see everyone, others only themselves. `?page=N` when pagination is on.
    #[oai(path = "/auth/users/", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        page: Query<Option<String>>,
        req: &Request,
    ) -> Answer<Listed> {
        let page_size = state.settings.users.page_size;
        if page_size == 0 {
            let page = state.users.list(&caller.user, 0, None).await?;
            let shown = state.roles.shown(page.users).await?;
            return Ok(Listed::All(Json(
                shown.into_iter().map(Into::into).collect(),
            )));
        }
        let invalid = || ApiError::detail(poem::http::StatusCode::NOT_FOUND, "Invalid page.");
        let number: u64 = match page.0.as_deref() {
            None => 1,
            Some("last") => 0,
            Some(text) => text.parse().ok().filter(|n| *n >= 1).ok_or_else(invalid)?,
        };
        let first = state.users.list(&caller.user, 0, Some(0)).await?;
        let pages = first.total.div_ceil(page_size).max(1);
        let number = if number == 0 { pages } else { number };
        if number > pages {
            return Err(invalid());
        }
        let listed = state
            .users
            .list(&caller.user, (number - 1) * page_size, Some(page_size))
            .await?;
        let link = |n: u64| page_link(req, n);
        let shown = state.roles.shown(listed.users).await?;
        Ok(Listed::Page(Json(UserPageBody {
            count: listed.total,
            next: (number < pages).then(|| link(number + 1)),
            previous: (number > 1).then(|| link(number - 1)),
            results: shown.into_iter().map(Into::into).collect(),
        })))
    }

    /// The caller's own account.
    #[oai(path = "/auth/users/me/", method = "get")]
    async fn me(&self, state: Data<&AppState>, caller: Caller) -> Answer<Found> {
        let shown = state.roles.shown_one(caller.user).await?;
        Ok(Found::Ok(Json(shown.into())))
    }

    /// Replace the caller's profile (email); id and username are read-only.
    #[oai(path = "/auth/users/me/", method = "put")]
    async fn me_put(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<UpdateRequest>,
    ) -> Answer<Found> {
        update(&state, &caller, caller.user.id, body.0).await
    }

    /// Change part of the caller's profile.
    #[oai(path = "/auth/users/me/", method = "patch")]
    async fn me_patch(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<UpdateRequest>,
    ) -> Answer<Found> {
        update(&state, &caller, caller.user.id, body.0).await
    }

    /// Delete the caller's account (needs `current_password`).
    #[oai(path = "/auth/users/me/", method = "delete")]
    async fn me_delete(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<DeleteRequest>,
    ) -> Answer<Deleted> {
        state
            .users
            .delete(&caller.user, caller.user.id, &body.0.current_password)
            .await?;
        Ok(Deleted::Deleted)
    }

    /// One user: the caller itself, or anyone for staff.
    #[oai(path = "/auth/users/:id/", method = "get")]
    async fn get(&self, state: Data<&AppState>, caller: Caller, id: Path<String>) -> Answer<Found> {
        let user = state.users.get(&caller.user, parse_id(&id)?).await?;
        let shown = state.roles.shown_one(user).await?;
        Ok(Found::Ok(Json(shown.into())))
    }

    /// Replace a user's profile (self or staff).
    #[oai(path = "/auth/users/:id/", method = "put")]
    async fn put(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        id: Path<String>,
        body: Body<UpdateRequest>,
    ) -> Answer<Found> {
        update(&state, &caller, parse_id(&id)?, body.0).await
    }

    /// Change part of a user's profile (self or staff).
    #[oai(path = "/auth/users/:id/", method = "patch")]
    async fn patch(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        id: Path<String>,
        body: Body<UpdateRequest>,
    ) -> Answer<Found> {
        update(&state, &caller, parse_id(&id)?, body.0).await
    }

    /// Delete a user (self, or staff with their own `current_password`).
    #[oai(path = "/auth/users/:id/", method = "delete")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        id: Path<String>,
        body: Body<DeleteRequest>,
    ) -> Answer<Deleted> {
        state
            .users
            .delete(&caller.user, parse_id(&id)?, &body.0.current_password)
            .await?;
        Ok(Deleted::Deleted)
    }
}

/// Djoser's action bodies; each reads only its own fields.
#[derive(Object)]
#[oai(rename = "Activation", example)]
pub struct ActivationRequest {
    pub uid: String,
    pub token: String,
}

impl Example for ActivationRequest {
    fn example() -> Self {
        Self {
            uid: "MDE5YWE3YzgtOGQzNC03YzFlLTliM2YtMmExZDVlNmY3YThi".into(),
            token: "t5kq2s-0f6c2e7b4a1d9e8f3c5b7a6d4e2f1a0b".into(),
        }
    }
}

impl FromFields for ActivationRequest {
    fn read(f: &mut Fields) -> Self {
        Self {
            uid: f.required("uid"),
            token: f.required("token"),
        }
    }
}

#[derive(Object)]
#[oai(rename = "SendEmailReset", example)]
pub struct EmailRequest {
    pub email: String,
}

impl Example for EmailRequest {
    fn example() -> Self {
        Self {
            email: "alice@example.com".into(),
        }
    }
}

impl FromFields for EmailRequest {
    fn read(f: &mut Fields) -> Self {
        Self {
            email: f.required("email"),
        }
    }
}

#[derive(Object)]
#[oai(rename = "SetPassword", example)]
pub struct SetPasswordRequest {
    #[oai(write_only)]
    pub current_password: String,
    #[oai(write_only)]
    pub new_password: String,
    /// Required when `accounts.set_password_retype` is on.
    #[oai(write_only)]
    pub re_new_password: Option<String>,
}

impl Example for SetPasswordRequest {
    fn example() -> Self {
        Self {
            current_password: "correct horse battery".into(),
            new_password: "staple battery horse".into(),
            re_new_password: None,
        }
    }
}

impl FromFields for SetPasswordRequest {
    fn read(f: &mut Fields) -> Self {
        Self {
            current_password: f.required("current_password"),
            new_password: f.required("new_password"),
            re_new_password: f.optional("re_new_password", true),
        }
    }
}

#[derive(Object)]
#[oai(rename = "PasswordResetConfirm", example)]
pub struct ResetPasswordConfirmRequest {
    pub uid: String,
    pub token: String,
    #[oai(write_only)]
    pub new_password: String,
    /// Required when `accounts.password_reset_confirm_retype` is on.
    #[oai(write_only)]
    pub re_new_password: Option<String>,
}

impl Example for ResetPasswordConfirmRequest {
    fn example() -> Self {
        let a = ActivationRequest::example();
        Self {
            uid: a.uid,
            token: a.token,
            new_password: "staple battery horse".into(),
            re_new_password: None,
        }
    }
}

impl FromFields for ResetPasswordConfirmRequest {
    fn read(f: &mut Fields) -> Self {
        Self {
            uid: f.required("uid"),
            token: f.required("token"),
            new_password: f.required("new_password"),
            re_new_password: f.optional("re_new_password", true),
        }
    }
}

#[derive(Object)]
#[oai(rename = "SetUsername", example)]
pub struct SetUsernameRequest {
    #[oai(write_only)]
    pub current_password: String,
    pub new_username: String,
}

impl Example for SetUsernameRequest {
    fn example() -> Self {
        Self {
            current_password: "correct horse battery".into(),
            new_username: "alice2".into(),
        }
    }
}

impl FromFields for SetUsernameRequest {
    fn read(f: &mut Fields) -> Self {
        Self {
            current_password: f.required("current_password"),
            new_username: f.required("new_username"),
        }
    }
}

#[derive(Object)]
#[oai(rename = "UsernameResetConfirm", example)]
pub struct ResetUsernameConfirmRequest {
    pub uid: String,
    pub token: String,
    pub new_username: String,
}

impl Example for ResetUsernameConfirmRequest {
    fn example() -> Self {
        let a = ActivationRequest::example();
        Self {
            uid: a.uid,
            token: a.token,
            new_username: "alice2".into(),
        }
    }
}

impl FromFields for ResetUsernameConfirmRequest {
    fn read(f: &mut Fields) -> Self {
        Self {
            uid: f.required("uid"),
            token: f.required("token"),
            new_username: f.required("new_username"),
        }
    }
}

pub struct AccountsApi;

#[OpenApi(tag = "Tag::Users")]
impl AccountsApi {
    /// Activate an account with the uid and token from the activation email.
    #[oai(path = "/auth/users/activation/", method = "post")]
    async fn activation(
        &self,
        state: Data<&AppState>,
        body: Body<ActivationRequest>,
    ) -> Answer<Done> {
        state.accounts.activate(&body.0.uid, &body.0.token).await?;
        Ok(Done::Done)
    }

    /// Mail the activation link again (only to inactive accounts; 400 when activation is off).
    #[oai(path = "/auth/users/resend_activation/", method = "post")]
    async fn resend_activation(
        &self,
        state: Data<&AppState>,
        body: Body<EmailRequest>,
    ) -> Answer<Done> {
        state.accounts.resend_activation(&body.0.email).await?;
        Ok(Done::Done)
    }

    /// Change the caller's password; by default every earlier token of the caller is revoked.
    #[oai(path = "/auth/users/set_password/", method = "post")]
    async fn set_password(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<SetPasswordRequest>,
    ) -> Answer<Done> {
        let b = body.0;
        state
            .accounts
            .set_password(
                &caller.user,
                &b.current_password,
                &b.new_password,
                b.re_new_password.as_deref(),
            )
            .await?;
        Ok(Done::Done)
    }

    /// Mail a password reset link (204 for unknown emails too, unless configured otherwise).
    #[oai(path = "/auth/users/reset_password/", method = "post")]
    async fn reset_password(
        &self,
        state: Data<&AppState>,
        body: Body<EmailRequest>,
    ) -> Answer<Done> {
        state.accounts.reset_password(&body.0.email).await?;
        Ok(Done::Done)
    }

    /// Set a new password with the uid and token from the reset email.
    #[oai(path = "/auth/users/reset_password_confirm/", method = "post")]
    async fn reset_password_confirm(
        &self,
        state: Data<&AppState>,
        body: Body<ResetPasswordConfirmRequest>,
    ) -> Answer<Done> {
        let b = body.0;
        state
            .accounts
            .reset_password_confirm(
                &b.uid,
                &b.token,
                &b.new_password,
                b.re_new_password.as_deref(),
            )
            .await?;
        Ok(Done::Done)
    }

    /// Change the caller's username.
    #[oai(path = "/auth/users/set_username/", method = "post")]
    async fn set_username(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<SetUsernameRequest>,
    ) -> Answer<Done> {
        state
            .accounts
            .set_username(&caller.user, &body.0.current_password, &body.0.new_username)
            .await?;
        Ok(Done::Done)
    }

    /// Mail a username reset link.
    #[oai(path = "/auth/users/reset_username/", method = "post")]
    async fn reset_username(
        &self,
        state: Data<&AppState>,
        body: Body<EmailRequest>,
    ) -> Answer<Done> {
        state.accounts.reset_username(&body.0.email).await?;
        Ok(Done::Done)
    }

    /// Set a new username with the uid and token from the username reset email.
    #[oai(path = "/auth/users/reset_username_confirm/", method = "post")]
    async fn reset_username_confirm(
        &self,
        state: Data<&AppState>,
        body: Body<ResetUsernameConfirmRequest>,
    ) -> Answer<Done> {
        let b = body.0;
        state
            .accounts
            .reset_username_confirm(&b.uid, &b.token, &b.new_username)
            .await?;
        Ok(Done::Done)
    }
}

#[derive(ApiResponse)]
pub enum Done {
    /// Done.
    #[oai(status = 204)]
    Done,
}

async fn update(state: &AppState, caller: &Caller, id: Uuid, body: UpdateRequest) -> Answer<Found> {
    let user = state
        .users
        .update(&caller.user, id, ProfileChange { email: body.email })
        .await?;
    let shown = state.roles.shown_one(user).await?;
    Ok(Found::Ok(Json(shown.into())))
}

/// A malformed id is simply not found, as in Django.
fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found())
}

/// An absolute link to another page of the current listing, like DRF builds it.
fn page_link(req: &Request, page: u64) -> String {
    let host = req
        .headers()
        .get(poem::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let query = if page == 1 {
        String::new()
    } else {
        format!("?page={page}")
    };
    // The router trims trailing slashes; links use Djoser's canonical form.
    let path = req.uri().path().trim_end_matches('/');
    format!("http://{host}{path}/{query}")
}

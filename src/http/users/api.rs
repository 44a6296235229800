//! Djoser's `/auth/users/` CRUD: register, list, the caller's own account (`me`) and one user.
use poem::{Request, web::Data};
use std::borrow::Cow;

use poem_openapi::{
    ApiResponse, OpenApi,
    param::{Path, Query},
    payload::Json,
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::{ToJSON, Type},
};

use super::{
    Tag,
    bodies::{DeleteRequest, RegisterRequest, UpdateRequest, UserBody, UserSummaryBody},
    pagination::{UserPageBody, page_of_users},
};
use crate::{
    domain::users::{ProfileChange, Registration, UserRef},
    http::{
        answer::{Answer, Forbidden, Gone, InvalidPage, NoContent, NotFound, Unavailable},
        body::Body,
        caller::Caller,
        error::ApiError,
    },
    state::AppState,
};

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
    /// The visible users: all of them (pagination off), or one page (`users.page_size` > 0).
    #[oai(status = 200)]
    Ok(Json<UserList>),
}

/// The users list, paginated or not (its schema is the `oneOf` of both; poem-openapi's `Union`
/// would call it an object).
pub enum UserList {
    /// All visible users (pagination off).
    All(Vec<UserBody>),
    /// One page (pagination on, `users.page_size` > 0).
    Page(UserPageBody),
}

impl Type for UserList {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "UserList".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            one_of: vec![
                <Vec<UserBody> as Type>::schema_ref(),
                UserPageBody::schema_ref(),
            ],
            ..MetaSchema::ANY
        }))
    }

    fn register(registry: &mut Registry) {
        <Vec<UserBody> as Type>::register(registry);
        UserPageBody::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ToJSON for UserList {
    fn to_json(&self) -> Option<serde_json::Value> {
        match self {
            Self::All(users) => users.to_json(),
            Self::Page(page) => page.to_json(),
        }
    }
}

#[derive(Default)]
pub struct UsersApi;

#[OpenApi(tag = "Tag::Users")]
impl UsersApi {
    /// Register a new user
    ///
    /// Public (Djoser's UserCreateSerializer). The password is checked by Django's four default
    /// validators, the username must be unique regardless of case; refusals are DRF field
    /// errors. With `accounts.send_activation_email` on, the account starts inactive and the
    /// activation link is mailed.
    #[oai(
        path = "/auth/users/",
        method = "post",
        operation_id = "auth_users_create"
    )]
    async fn register(
        &self,
        state: Data<&AppState>,
        body: Body<RegisterRequest>,
    ) -> Answer<Created, Unavailable> {
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
        Ok(Created::Created(Json(UserSummaryBody::of(
            &state.users,
            user,
        ))))
    }

    /// List users
    ///
    /// Staff see everyone, others only themselves (Djoser's HIDE_USERS). A JSON array, or with
    /// `users.page_size` > 0 DRF's PageNumberPagination body, `?page=N` (or `last`).
    #[oai(
        path = "/auth/users/",
        method = "get",
        operation_id = "auth_users_list"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        page: Query<Option<String>>,
        req: &Request,
    ) -> Answer<Listed, InvalidPage> {
        let page_size = state.settings.users.page_size;
        if page_size == 0 {
            let page = state.users.list(&caller.user, 0, None).await?;
            let shown = state.roles.shown(page.users).await?;
            return Ok(Listed::Ok(Json(UserList::All(
                shown.into_iter().map(Into::into).collect(),
            ))));
        }
        let page = page_of_users(&state, &caller, page_size, page.0.as_deref(), req).await?;
        Ok(Listed::Ok(Json(UserList::Page(page))))
    }

    /// The caller's own account
    ///
    /// Djoser's `{email, id, username}`; with `accounts.show_user_roles` also the read-only
    /// `groups`, `is_staff` and `is_superuser`.
    #[oai(
        path = "/auth/users/me/",
        method = "get",
        operation_id = "auth_users_me_retrieve"
    )]
    async fn me(&self, state: Data<&AppState>, caller: Caller) -> Answer<Found> {
        let shown = state.roles.shown_one(caller.user).await?;
        Ok(Found::Ok(Json(shown.into())))
    }

    /// Replace the caller's profile
    ///
    /// Only `email` is writable; `id`, `username` and the roles are read-only and silently
    /// ignored, so a user never makes itself staff.
    #[oai(
        path = "/auth/users/me/",
        method = "put",
        operation_id = "auth_users_me_update"
    )]
    async fn me_put(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<UpdateRequest>,
    ) -> Answer<Found, Gone> {
        Ok(update(&state, &caller, UserRef::Id(caller.user.id), body.0).await?)
    }

    /// Change part of the caller's profile
    ///
    /// Like PUT: only `email` is writable, the other fields are ignored.
    #[oai(
        path = "/auth/users/me/",
        method = "patch",
        operation_id = "auth_users_me_partial_update"
    )]
    async fn me_patch(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<UpdateRequest>,
    ) -> Answer<Found, Gone> {
        Ok(update(&state, &caller, UserRef::Id(caller.user.id), body.0).await?)
    }

    /// Delete the caller's account
    ///
    /// Needs the caller's `current_password` (a wrong one is a field error and counts toward
    /// the login lockout).
    #[oai(
        path = "/auth/users/me/",
        method = "delete",
        operation_id = "auth_users_me_destroy"
    )]
    async fn me_delete(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<DeleteRequest>,
    ) -> Answer<NoContent, Gone> {
        state
            .users
            .delete(
                &caller.user,
                UserRef::Id(caller.user.id),
                &body.0.current_password,
            )
            .await?;
        Ok(NoContent::Done)
    }

    /// One user
    ///
    /// The caller itself, or anyone for staff. Another user's id answers 404 `Not found.`
    /// (Djoser's HIDE_USERS; 403 with `accounts.hide_users` off), an unknown one 404 `No User
    /// matches the given query.`
    #[oai(
        path = "/auth/users/:id/",
        method = "get",
        operation_id = "auth_users_retrieve"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        id: Path<String>,
    ) -> Answer<Found, (Forbidden, NotFound)> {
        let user = state.users.get(&caller.user, parse_id(&id)?).await?;
        let shown = state.roles.shown_one(user).await?;
        Ok(Found::Ok(Json(shown.into())))
    }

    /// Replace a user's profile
    ///
    /// The caller itself, or anyone for staff; only `email` is writable.
    #[oai(
        path = "/auth/users/:id/",
        method = "put",
        operation_id = "auth_users_update"
    )]
    async fn put(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        id: Path<String>,
        body: Body<UpdateRequest>,
    ) -> Answer<Found, (Forbidden, NotFound)> {
        Ok(update(&state, &caller, parse_id(&id)?, body.0).await?)
    }

    /// Change part of a user's profile
    ///
    /// The caller itself, or anyone for staff; only `email` is writable.
    #[oai(
        path = "/auth/users/:id/",
        method = "patch",
        operation_id = "auth_users_partial_update"
    )]
    async fn patch(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        id: Path<String>,
        body: Body<UpdateRequest>,
    ) -> Answer<Found, (Forbidden, NotFound)> {
        Ok(update(&state, &caller, parse_id(&id)?, body.0).await?)
    }

    /// Delete a user
    ///
    /// The caller itself, or anyone for staff, confirmed with the caller's own
    /// `current_password`; another user's account answers 403 to non-staff.
    #[oai(
        path = "/auth/users/:id/",
        method = "delete",
        operation_id = "auth_users_destroy"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        id: Path<String>,
        body: Body<DeleteRequest>,
    ) -> Answer<NoContent, (Forbidden, NotFound)> {
        state
            .users
            .delete(&caller.user, parse_id(&id)?, &body.0.current_password)
            .await?;
        Ok(NoContent::Done)
    }
}

async fn update(
    state: &AppState,
    caller: &Caller,
    id: UserRef,
    body: UpdateRequest,
) -> Result<Found, ApiError> {
    let user = state
        .users
        .update(&caller.user, id, ProfileChange { email: body.email })
        .await?;
    let shown = state.roles.shown_one(user).await?;
    Ok(Found::Ok(Json(shown.into())))
}

/// A UUID or an integer id, in either `accounts.user_id` mode; anything else is simply not
/// found, as in Django.
fn parse_id(id: &str) -> Result<UserRef, ApiError> {
    UserRef::parse(id).ok_or_else(ApiError::not_found)
}

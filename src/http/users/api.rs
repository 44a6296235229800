//! Djoser's `/auth/users/` CRUD: register, list, the caller's own account (`me`) and one user.
use poem::{Request, web::Data};
use poem_openapi::{
    ApiResponse, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use super::{
    Tag,
    bodies::{DeleteRequest, RegisterRequest, UpdateRequest, UserBody, UserSummaryBody},
    pagination::{UserPageBody, page_of_users},
};
use crate::{
    domain::users::{ProfileChange, Registration, UserRef},
    http::{
        answer::{Answer, NoContent},
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
    /// All visible users (pagination off).
    #[oai(status = 200)]
    All(Json<Vec<UserBody>>),
    /// One page (pagination on, `users.page_size` > 0).
    #[oai(status = 200)]
    Page(Json<UserPageBody>),
}

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
        Ok(Created::Created(Json(UserSummaryBody::of(
            &state.users,
            user,
        ))))
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
        let page = page_of_users(&state, &caller, page_size, page.0.as_deref(), req).await?;
        Ok(Listed::Page(Json(page)))
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
        update(&state, &caller, UserRef::Id(caller.user.id), body.0).await
    }

    /// Change part of the caller's profile.
    #[oai(path = "/auth/users/me/", method = "patch")]
    async fn me_patch(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<UpdateRequest>,
    ) -> Answer<Found> {
        update(&state, &caller, UserRef::Id(caller.user.id), body.0).await
    }

    /// Delete the caller's account (needs `current_password`).
    #[oai(path = "/auth/users/me/", method = "delete")]
    async fn me_delete(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<DeleteRequest>,
    ) -> Answer<NoContent> {
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
    ) -> Answer<NoContent> {
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
) -> Answer<Found> {
    let user = state
        .users
        .update(&caller.user, id, ProfileChange { email: body.email })
        .await?;
    let shown = state.roles.shown_one(user).await?;
    Ok(Found::Ok(Json(shown.into())))
}

/// A UUID or an integer id, in either `accounts.user_id` mode; anything else is simply not
/// found, as in Django.
fn parse_id(id: &str) -> Answer<UserRef> {
    UserRef::parse(id).ok_or_else(ApiError::not_found)
}

//! Staff-only group management: `/auth/groups/` and their members.
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi, Tags, param::Path, payload::Json, types::Example,
};

use super::{
    answer::{Answer, NoContent},
    body::Body,
    caller::Caller,
    error::ApiError,
    users::UserSummaryBody,
};
use crate::{
    domain::groups::{Actor, Group},
    state::AppState,
};

#[derive(Tags)]
enum Tag {
    /// Groups (staff only)
    Groups,
}

#[derive(Object)]
#[oai(rename = "Group", example)]
pub struct GroupBody {
    pub name: String,
    pub description: String,
}

impl Example for GroupBody {
    fn example() -> Self {
        Self {
            name: "manager".into(),
            description: "Can approve orders".into(),
        }
    }
}

impl From<Group> for GroupBody {
    fn from(g: Group) -> Self {
        Self {
            name: g.name,
            description: g.description,
        }
    }
}

request_body! {
    /// A new group, or (PATCH) the fields to change.
    #[oai(rename = "GroupWrite", example)]
    pub struct GroupRequest {
        pub name: Option<String> = |f| f.optional("name", false), example: Some("manager".into());
        pub description: Option<String> = |f| f.optional("description", true), example: Some("Can approve orders".into());
    }
}

request_body! {
    /// Who joins or leaves the group.
    #[oai(rename = "GroupMember", example)]
    pub struct MemberRequest {
        pub username: String = |f| f.required("username"), example: "alice".into();
    }
}

#[derive(ApiResponse)]
pub enum Groups {
    #[oai(status = 200)]
    Ok(Json<Vec<GroupBody>>),
}

#[derive(ApiResponse)]
pub enum One {
    #[oai(status = 200)]
    Ok(Json<GroupBody>),
    #[oai(status = 201)]
    Created(Json<GroupBody>),
}

#[derive(ApiResponse)]
pub enum Members {
    #[oai(status = 200)]
    Ok(Json<Vec<UserSummaryBody>>),
}

#[derive(ApiResponse)]
pub enum Member {
    /// Removed.
    #[oai(status = 200)]
    Removed(Json<UserSummaryBody>),
    /// Added.
    #[oai(status = 201)]
    Added(Json<UserSummaryBody>),
}

pub struct GroupsApi;

#[OpenApi(tag = "Tag::Groups")]
impl GroupsApi {
    /// Every group.
    #[oai(path = "/auth/groups/", method = "get")]
    async fn list(&self, state: Data<&AppState>, caller: Caller) -> Answer<Groups> {
        let groups = state.groups.list(Actor::User(&caller.user)).await?;
        Ok(Groups::Ok(Json(
            groups.into_iter().map(Into::into).collect(),
        )))
    }

    /// Create a group (`name` required).
    #[oai(path = "/auth/groups/", method = "post")]
    async fn create(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<GroupRequest>,
    ) -> Answer<One> {
        let Some(name) = body.0.name else {
            return Err(ApiError::field("name", "This field is required."));
        };
        let description = body.0.description.unwrap_or_default();
        let group = state
            .groups
            .create(Actor::User(&caller.user), &name, &description)
            .await?;
        Ok(One::Created(Json(group.into())))
    }

    /// One group.
    #[oai(path = "/auth/groups/:name/", method = "get")]
    async fn get(&self, state: Data<&AppState>, caller: Caller, name: Path<String>) -> Answer<One> {
        Ok(One::Ok(Json(
            state
                .groups
                .get(Actor::User(&caller.user), &name)
                .await?
                .into(),
        )))
    }

    /// Rename or re-describe a group.
    #[oai(path = "/auth/groups/:name/", method = "patch")]
    async fn patch(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        name: Path<String>,
        body: Body<GroupRequest>,
    ) -> Answer<One> {
        let b = body.0;
        let group = state
            .groups
            .update(
                Actor::User(&caller.user),
                &name,
                b.name.as_deref(),
                b.description.as_deref(),
            )
            .await?;
        Ok(One::Ok(Json(group.into())))
    }

    /// Delete a group and its memberships.
    #[oai(path = "/auth/groups/:name/", method = "delete")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        name: Path<String>,
    ) -> Answer<NoContent> {
        state
            .groups
            .delete(Actor::User(&caller.user), &name)
            .await?;
        Ok(NoContent::Done)
    }

    /// The group's members.
    #[oai(path = "/auth/groups/:name/users/", method = "get")]
    async fn members(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        name: Path<String>,
    ) -> Answer<Members> {
        let users = state
            .groups
            .members(Actor::User(&caller.user), &name)
            .await?;
        Ok(Members::Ok(Json(
            users
                .into_iter()
                .map(|u| UserSummaryBody::of(&state.users, u))
                .collect(),
        )))
    }

    /// Add a user (`{"username": ...}`): 201; 404 for an unknown user or group.
    #[oai(path = "/auth/groups/:name/users/", method = "post")]
    async fn add(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        name: Path<String>,
        body: Body<MemberRequest>,
    ) -> Answer<Member> {
        let user = state
            .groups
            .add_member(Actor::User(&caller.user), &name, &body.0.username)
            .await?;
        Ok(Member::Added(Json(UserSummaryBody::of(&state.users, user))))
    }

    /// Remove a user (`{"username": ...}`): 200; 404 when not a member.
    #[oai(path = "/auth/groups/:name/users/", method = "delete")]
    async fn remove(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        name: Path<String>,
        body: Body<MemberRequest>,
    ) -> Answer<Member> {
        let user = state
            .groups
            .remove_member(Actor::User(&caller.user), &name, &body.0.username)
            .await?;
        Ok(Member::Removed(Json(UserSummaryBody::of(
            &state.users,
            user,
        ))))
    }
}

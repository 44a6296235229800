//! Staff-only group management: `/auth/groups/` and their members.
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi, Tags, param::Path, payload::Json, types::Example,
};

use super::{
    answer::{Answer, Forbidden, NoContent, NotFound},
    body::Body,
    caller::Caller,
    error::ApiError,
    users::UserSummaryBody,
};
use crate::{domain::groups::Group, state::AppState};

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
    /// The group.
    #[oai(status = 200)]
    Ok(Json<GroupBody>),
}

#[derive(ApiResponse)]
pub enum Created {
    /// The new group.
    #[oai(status = 201)]
    Created(Json<GroupBody>),
}

#[derive(ApiResponse)]
pub enum Members {
    #[oai(status = 200)]
    Ok(Json<Vec<UserSummaryBody>>),
}

#[derive(ApiResponse)]
pub enum Added {
    /// The user, now a member.
    #[oai(status = 201)]
    Added(Json<UserSummaryBody>),
}

#[derive(ApiResponse)]
pub enum Removed {
    /// The user, no longer a member.
    #[oai(status = 200)]
    Removed(Json<UserSummaryBody>),
}

#[derive(Default)]
pub struct GroupsApi;

#[OpenApi(tag = "Tag::Groups")]
impl GroupsApi {
    /// List the groups
    ///
    /// Staff only (DRF's IsAdminUser: others 403), by name.
    #[oai(
        path = "/auth/groups/",
        method = "get",
        operation_id = "auth_groups_list"
    )]
    async fn list(&self, state: Data<&AppState>, caller: Caller) -> Answer<Groups, Forbidden> {
        let groups = state.groups.list(caller.staff_actor()?).await?;
        Ok(Groups::Ok(Json(
            groups.into_iter().map(Into::into).collect(),
        )))
    }

    /// Create a group
    ///
    /// Staff only. `name` is required and unique; `description` is optional.
    #[oai(
        path = "/auth/groups/",
        method = "post",
        operation_id = "auth_groups_create"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<GroupRequest>,
    ) -> Answer<Created, Forbidden> {
        let Some(name) = body.0.name else {
            return Err(ApiError::field("name", "This field is required.").into());
        };
        let description = body.0.description.unwrap_or_default();
        let group = state
            .groups
            .create(caller.staff_actor()?, &name, &description)
            .await?;
        Ok(Created::Created(Json(group.into())))
    }

    /// One group
    ///
    /// Staff only; 404 for an unknown name.
    #[oai(
        path = "/auth/groups/:name/",
        method = "get",
        operation_id = "auth_groups_retrieve"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        name: Path<String>,
    ) -> Answer<One, (Forbidden, NotFound)> {
        Ok(One::Ok(Json(
            state.groups.get(caller.staff_actor()?, &name).await?.into(),
        )))
    }

    /// Rename or re-describe a group
    ///
    /// Staff only; the fields sent are changed, a new `name` must be free.
    #[oai(
        path = "/auth/groups/:name/",
        method = "patch",
        operation_id = "auth_groups_partial_update"
    )]
    async fn patch(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        name: Path<String>,
        body: Body<GroupRequest>,
    ) -> Answer<One, (Forbidden, NotFound)> {
        let b = body.0;
        let group = state
            .groups
            .update(
                caller.staff_actor()?,
                &name,
                b.name.as_deref(),
                b.description.as_deref(),
            )
            .await?;
        Ok(One::Ok(Json(group.into())))
    }

    /// Delete a group
    ///
    /// Staff only; its memberships go with it.
    #[oai(
        path = "/auth/groups/:name/",
        method = "delete",
        operation_id = "auth_groups_destroy"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        name: Path<String>,
    ) -> Answer<NoContent, (Forbidden, NotFound)> {
        state.groups.delete(caller.staff_actor()?, &name).await?;
        Ok(NoContent::Done)
    }

    /// The group's members
    ///
    /// Staff only; each as `{email, id, username}`.
    #[oai(
        path = "/auth/groups/:name/users/",
        method = "get",
        operation_id = "auth_groups_users_list"
    )]
    async fn members(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        name: Path<String>,
    ) -> Answer<Members, (Forbidden, NotFound)> {
        let users = state.groups.members(caller.staff_actor()?, &name).await?;
        Ok(Members::Ok(Json(
            users
                .into_iter()
                .map(|u| UserSummaryBody::of(&state.users, u))
                .collect(),
        )))
    }

    /// Add a user to the group
    ///
    /// Staff only. `{"username": ...}` → 201 with the user; 404 for an unknown user or group.
    #[oai(
        path = "/auth/groups/:name/users/",
        method = "post",
        operation_id = "auth_groups_users_create"
    )]
    async fn add(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        name: Path<String>,
        body: Body<MemberRequest>,
    ) -> Answer<Added, (Forbidden, NotFound)> {
        let user = state
            .groups
            .add_member(caller.staff_actor()?, &name, &body.0.username)
            .await?;
        Ok(Added::Added(Json(UserSummaryBody::of(&state.users, user))))
    }

    /// Remove a user from the group
    ///
    /// Staff only. `{"username": ...}` → 200 with the user; 404 for an unknown user or group,
    /// or a user who is not a member.
    #[oai(
        path = "/auth/groups/:name/users/",
        method = "delete",
        operation_id = "auth_groups_users_destroy"
    )]
    async fn remove(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        name: Path<String>,
        body: Body<MemberRequest>,
    ) -> Answer<Removed, (Forbidden, NotFound)> {
        let user = state
            .groups
            .remove_member(caller.staff_actor()?, &name, &body.0.username)
            .await?;
        Ok(Removed::Removed(Json(UserSummaryBody::of(
            &state.users,
            user,
        ))))
    }
}

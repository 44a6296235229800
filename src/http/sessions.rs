//! Sessions (`sessions.enabled`): the caller's logins, listed and ended, and any user's for
//! staff. A session is a JWT family or an opaque key; ending one refuses its tokens everywhere.
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags, param::Path, payload::Json};
use uuid::Uuid;

use super::{
    answer::{Answer, Forbidden, NoContent, NoSession},
    caller::Caller,
    error::ApiError,
};
use crate::{
    domain::{
        DomainError,
        sessions::{SessionError, SessionView},
        users::{User, UserRef},
    },
    state::AppState,
};

#[derive(Tags)]
enum Tag {
    /// Sessions: every login, listed and ended (`sessions.enabled`)
    Sessions,
}

/// One login: a JWT pair and the tokens refreshed from it, or an opaque key.
#[derive(Object)]
#[oai(rename = "Session")]
pub struct SessionBody {
    /// Names the session in `DELETE /auth/sessions/{id}/` (a JWT session's is the `sid` claim
    /// of its tokens).
    pub id: Uuid,
    /// `jwt` (an access/refresh pair) or `token` (an opaque key).
    pub kind: String,
    /// The login (for a session issued before sessions were recorded: its oldest known token).
    pub created: DateTime<Utc>,
    /// The last refresh (JWT) or use (key, noted at most once a minute); `null` for a key
    /// never used.
    #[oai(nullable)]
    pub last_used: Option<DateTime<Utc>>,
    /// The client address at login; `null` when unknown.
    #[oai(nullable)]
    pub ip: Option<String>,
    /// The User-Agent at login (at most 256 bytes).
    pub user_agent: String,
    /// The client address at the last refresh or use; `null` when unknown.
    #[oai(nullable)]
    pub last_ip: Option<String>,
    /// The User-Agent at the last refresh or use.
    pub last_user_agent: String,
    /// When it ends unless refreshed; `null` for keys that never expire.
    #[oai(nullable)]
    pub expires: Option<DateTime<Utc>>,
    /// Whether the request is authenticated by this session.
    pub current: bool,
}

impl From<SessionView> for SessionBody {
    fn from(s: SessionView) -> Self {
        Self {
            id: s.id,
            kind: s.kind.as_str().to_owned(),
            created: s.created_at,
            last_used: s.last_used_at,
            ip: s.login.ip,
            user_agent: s.login.user_agent,
            last_ip: s.last.ip,
            last_user_agent: s.last.user_agent,
            expires: s.expires_at,
            current: s.current,
        }
    }
}

#[derive(ApiResponse)]
pub enum Listed {
    /// The live sessions, oldest first.
    #[oai(status = 200)]
    Ok(Json<Vec<SessionBody>>),
}

/// A session id from the path: not a UUID is simply no session.
fn session_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| DomainError::from(SessionError::NotFound).into())
}

async fn listed(state: &AppState, user: &User, caller: &Caller) -> Result<Listed, ApiError> {
    let sessions = state.sessions.list(user, caller.session()).await?;
    Ok(Listed::Ok(Json(
        sessions.into_iter().map(Into::into).collect(),
    )))
}

#[derive(Default)]
pub struct SessionsApi;

#[OpenApi(tag = "Tag::Sessions")]
impl SessionsApi {
    /// The caller's sessions
    ///
    /// Every login that can still be used: a JWT family (its refresh-token chain) or an
    /// opaque key, with where and when it logged in and was last used; `current` marks the
    /// one authenticating the request. 404 while `sessions.enabled` is off.
    #[oai(
        path = "/auth/sessions/",
        method = "get",
        operation_id = "auth_sessions_list"
    )]
    async fn list(&self, state: Data<&AppState>, caller: Caller) -> Answer<Listed, NoSession> {
        Ok(listed(&state, &caller.user, &caller).await?)
    }

    /// End all sessions but the current one
    ///
    /// Every other family is revoked and every other key deleted, on every instance at once.
    /// A caller whose token names no session (a JWT minted before sessions were recorded)
    /// ends all of its sessions.
    #[oai(
        path = "/auth/sessions/",
        method = "delete",
        operation_id = "auth_sessions_destroy_all"
    )]
    async fn end_others(
        &self,
        state: Data<&AppState>,
        caller: Caller,
    ) -> Answer<NoContent, NoSession> {
        state
            .sessions
            .end_all(&caller.user, caller.session(), &caller.user)
            .await?;
        Ok(NoContent::Done)
    }

    /// End one of the caller's sessions
    ///
    /// Its refresh and access tokens (or its key) are refused everywhere from now on. Another
    /// user's session or an unknown id answers 404.
    #[oai(
        path = "/auth/sessions/:id/",
        method = "delete",
        operation_id = "auth_sessions_destroy"
    )]
    async fn end(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        id: Path<String>,
    ) -> Answer<NoContent, NoSession> {
        let id = session_id(&id.0)?;
        state.sessions.end(&caller.user, id, &caller.user).await?;
        Ok(NoContent::Done)
    }

    /// A user's sessions (staff)
    ///
    /// As `GET /auth/sessions/` for the user `id` (the user paths' id). 403 for non-staff.
    #[oai(
        path = "/auth/users/:id/sessions/",
        method = "get",
        operation_id = "auth_users_sessions_list"
    )]
    async fn user_list(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        id: Path<String>,
    ) -> Answer<Listed, (Forbidden, NoSession)> {
        let user = staff_view(&state, &caller, &id.0).await?;
        Ok(listed(&state, &user, &caller).await?)
    }

    /// End all of a user's sessions (staff)
    ///
    /// Every family and key of the user `id`, the staff member's own current one included
    /// when it is theirs. 403 for non-staff.
    #[oai(
        path = "/auth/users/:id/sessions/",
        method = "delete",
        operation_id = "auth_users_sessions_destroy_all"
    )]
    async fn user_end_all(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        id: Path<String>,
    ) -> Answer<NoContent, (Forbidden, NoSession)> {
        let user = staff_view(&state, &caller, &id.0).await?;
        state.sessions.end_all(&user, None, &caller.user).await?;
        Ok(NoContent::Done)
    }

    /// End one of a user's sessions (staff)
    ///
    /// 404 when the user `id` has no such live session. 403 for non-staff.
    #[oai(
        path = "/auth/users/:id/sessions/:sid/",
        method = "delete",
        operation_id = "auth_users_sessions_destroy"
    )]
    async fn user_end(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        id: Path<String>,
        sid: Path<String>,
    ) -> Answer<NoContent, (Forbidden, NoSession)> {
        let user = staff_view(&state, &caller, &id.0).await?;
        let sid = session_id(&sid.0)?;
        state.sessions.end(&user, sid, &caller.user).await?;
        Ok(NoContent::Done)
    }
}

/// The user a staff view names, by the user paths' id.
async fn staff_view(state: &AppState, caller: &Caller, id: &str) -> Result<User, ApiError> {
    // A staff account that must enrol a second factor first is told so (not a plain 403).
    caller.staff_actor()?;
    Ok(state
        .sessions
        .user_for_staff(&caller.user, UserRef::parse(id))
        .await?)
}

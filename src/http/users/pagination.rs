//! DRF's PageNumberPagination for the user list: `?page=N` (or `last`), absolute links.
use poem::{Request, http::StatusCode};
use poem_openapi::Object;

use super::bodies::UserBody;
use crate::{
    http::{
        caller::Caller,
        error::{ApiError, Code},
    },
    state::AppState,
};

/// One page of users, like DRF's PageNumberPagination.
#[derive(Object)]
#[oai(rename = "PaginatedUserList")]
pub struct UserPageBody {
    pub count: u64,
    /// The next page's absolute link; `null` on the last page.
    #[oai(nullable)]
    pub next: Option<String>,
    /// The previous page's absolute link; `null` on the first page.
    #[oai(nullable)]
    pub previous: Option<String>,
    pub results: Vec<UserBody>,
}

/// The page `requested` (`None` is the first, `"last"` the last) of `page_size` users visible
/// to the caller; 404 "Invalid page." for anything else or past the end, as DRF answers.
pub async fn page_of_users(
    state: &AppState,
    caller: &Caller,
    page_size: u64,
    requested: Option<&str>,
    req: &Request,
) -> Result<UserPageBody, ApiError> {
    let invalid = || ApiError::detail(StatusCode::NOT_FOUND, Code::NotFound, "Invalid page.");
    let number: u64 = match requested {
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
    Ok(UserPageBody {
        count: listed.total,
        next: (number < pages).then(|| link(number + 1)),
        previous: (number > 1).then(|| link(number - 1)),
        results: shown.into_iter().map(Into::into).collect(),
    })
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

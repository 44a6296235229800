//! Djoser's `/auth/users/` endpoints, one concern a file.
mod accounts;
mod api;
mod bodies;
mod pagination;

use poem_openapi::Tags;

pub use accounts::AccountsApi;
pub use api::UsersApi;
pub use bodies::UserSummaryBody;

#[derive(Tags)]
enum Tag {
    /// Accounts (Djoser's /auth/users/)
    Users,
}

//! What every operation returns: its success answer, or an [`ApiError`] mapped in `error.rs`.
use poem_openapi::ApiResponse;

use super::error::ApiError;

/// An operation's result: a documented success answer or a DRF-shaped error.
pub type Answer<T> = Result<T, ApiError>;

/// `204 No Content`: the action is done and there is nothing to show.
#[derive(ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

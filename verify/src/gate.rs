//! The rule both web adapters apply: a valid access token from the `Authorization` header,
//! optionally of a group's member.
use std::sync::Arc;

use crate::{Claims, Rejection, Verifier, bearer_token};

/// Admits requests with a valid access token (and, with [`require_group`](Self::require_group),
/// only members of that group). The poem middleware and the tower layer are this one value.
#[derive(Clone)]
pub struct VerifyAccess {
    verifier: Arc<Verifier>,
    group: Option<Arc<str>>,
}

impl VerifyAccess {
    /// Requires a valid access token verified by `verifier`.
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Self {
            verifier,
            group: None,
        }
    }

    /// Admits only members of `group` (the token's `groups` claim); others get 403.
    pub fn require_group(mut self, group: &str) -> Self {
        self.group = Some(group.into());
        self
    }

    /// The claims of an admitted request, or the refusal to answer.
    pub async fn admit(&self, authorization: Option<&str>) -> Result<Claims, Rejection> {
        let claims = verify_header(&self.verifier, authorization).await?;
        if let Some(group) = &self.group {
            Rejection::require_group(&claims, group)?;
        }
        Ok(claims)
    }
}

/// The claims of the header's Bearer access token.
pub(crate) async fn verify_header(
    verifier: &Verifier,
    authorization: Option<&str>,
) -> Result<Claims, Rejection> {
    let token = bearer_token(authorization)?;
    Ok(verifier.verify(token).await?)
}

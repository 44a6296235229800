//! poem adapters: a middleware that admits only valid access tokens (optionally of a group's
//! members) and a [`Claims`] extractor, answering refusals in Tessera's body shape.
//!
//! ```no_run
//! use std::sync::Arc;
//! use poem::{Route, get, handler, EndpointExt};
//! use tessera_verify::{Claims, Policy, Verifier, jsonwebtoken::Algorithm, poem::VerifyAccess};
//!
//! #[handler]
//! fn whoami(claims: Claims) -> String {
//!     claims.user_id.unwrap_or_default()
//! }
//!
//! let verifier = Arc::new(Verifier::hmac(Policy::new(Algorithm::HS256), b"shared key of 32 bytes or more!!"));
//! let app = Route::new().at("/whoami", get(whoami)).with(VerifyAccess::new(verifier));
//! ```
use std::sync::Arc;

use poem::{
    Endpoint, FromRequest, IntoResponse, Middleware, Request, RequestBody, Response, Result,
    http::{StatusCode, header},
};

pub use crate::VerifyAccess;
use crate::{Claims, Rejection, Verifier, gate::verify_header};

/// Verifies the `Authorization: Bearer` access token of every request before the endpoint runs;
/// the endpoint finds the [`Claims`] in the request (take them as an argument).
impl<E: Endpoint> Middleware<E> for VerifyAccess {
    type Output = VerifyAccessEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        VerifyAccessEndpoint {
            inner,
            config: self.clone(),
        }
    }
}

/// The endpoint [`VerifyAccess`] wraps.
pub struct VerifyAccessEndpoint<E> {
    inner: E,
    config: VerifyAccess,
}

impl<E: Endpoint> Endpoint for VerifyAccessEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let claims = match self.config.admit(authorization(&req)).await {
            Ok(claims) => claims,
            Err(rejection) => return Ok(respond(rejection)),
        };
        req.extensions_mut().insert(claims);
        Ok(self.inner.call(req).await?.into_response())
    }
}

fn authorization(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// The rejection as a response: JSON body, `WWW-Authenticate` on 401, `Retry-After` on 503.
pub fn respond(rejection: Rejection) -> Response {
    let mut response = Response::builder()
        .status(StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::UNAUTHORIZED))
        .content_type("application/json");
    if let Some(value) = rejection.www_authenticate() {
        response = response.header(header::WWW_AUTHENTICATE, value);
    }
    if let Some(value) = rejection.retry_after() {
        response = response.header(header::RETRY_AFTER, value);
    }
    response.body(rejection.body.to_string())
}

impl From<Rejection> for poem::Error {
    fn from(rejection: Rejection) -> Self {
        poem::Error::from_response(respond(rejection))
    }
}

/// The claims [`VerifyAccess`] admitted; without the middleware, the token is verified here
/// with the `Arc<Verifier>` found in the request's data (`.data(verifier)`).
impl<'a> FromRequest<'a> for Claims {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> Result<Self> {
        if let Some(claims) = req.extensions().get::<Claims>() {
            return Ok(claims.clone());
        }
        // Neither the middleware nor a verifier in the data: a wiring mistake, which must never
        // admit anyone.
        let Some(verifier) = req.data::<Arc<Verifier>>() else {
            return Err(Rejection::not_authenticated().into());
        };
        Ok(verify_header(verifier, authorization(req)).await?)
    }
}

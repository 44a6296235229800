//! A tower layer (axum and other tower services): admits only valid access tokens, optionally of
//! a group's members, and puts the [`Claims`] in the request's extensions.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use tessera_verify::{Policy, Verifier, jsonwebtoken::Algorithm, tower::VerifyAccessLayer};
//! let verifier = Arc::new(Verifier::hmac(Policy::new(Algorithm::HS256), b"shared key of 32 bytes or more!!"));
//! let layer = VerifyAccessLayer::new(verifier).require_group("manager");
//! // axum: Router::new().route("/reports", get(reports)).layer(layer)
//! # let _ = layer;
//! ```
//! Refusals are JSON in Tessera's shape; the response body type must be buildable from a
//! `String` (axum's `Body` is).
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::{HeaderValue, Request, Response, StatusCode, header};
pub use tower_layer::Layer;
pub use tower_service::Service;

/// The layer: the same value as the poem middleware.
pub use crate::VerifyAccess as VerifyAccessLayer;
use crate::{Rejection, VerifyAccess as Rule};

impl<S> Layer<S> for VerifyAccessLayer {
    type Service = VerifyAccess<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyAccess {
            inner,
            config: self.clone(),
        }
    }
}

/// The service [`VerifyAccessLayer`] wraps around another.
#[derive(Clone)]
pub struct VerifyAccess<S> {
    inner: S,
    config: Rule,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for VerifyAccess<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The service that was polled ready is the one called; the clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Box::pin(async move {
            match config.admit(authorization.as_deref()).await {
                Ok(claims) => {
                    req.extensions_mut().insert(claims);
                    inner.call(req).await
                }
                Err(rejection) => Ok(respond(rejection)),
            }
        })
    }
}

fn respond<B: From<String>>(rejection: Rejection) -> Response<B> {
    let mut response = Response::new(B::from(rejection.body.to_string()));
    *response.status_mut() =
        StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::UNAUTHORIZED);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(value) = rejection.www_authenticate() {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
    }
    if let Some(value) = rejection.retry_after() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static(value));
    }
    response
}

//! Who the client is (its address, through trusted proxies only) and the rate limits of each
//! operation, with DRF's 429 answer and `X-RateLimit-*` headers.
//!
//! The limits are applied inside the router, to the operation that matched: the scope is bound
//! to the route when the app is built, so no spelling of a path (`//api/token/`, `/api//token`)
//! can reach an operation without its rate.
use std::{collections::HashMap, net::IpAddr, sync::Arc};

use poem::{
    Endpoint, EndpointExt, IntoEndpoint, IntoResponse, Request, Response,
    endpoint::BoxEndpoint,
    error::ResponseError,
    http::{HeaderValue, Method, header},
};
use poem_openapi::{
    OpenApi, OperationId,
    registry::{MetaApi, Registry},
};

use super::{answer, caller::Caller, error::ApiError};
use crate::{
    domain::throttle::{Decision, address_block},
    state::AppState,
};

/// Where the caller extractor leaves the per-user decision, for the response's rate headers.
#[derive(Clone, Default)]
struct UserDecision(Arc<std::sync::Mutex<Option<Decision>>>);

/// Records the per-user rate decision of this request (called once the user is known).
pub fn report(req: &Request, decision: Option<Decision>) {
    if let (Some(slot), Some(d)) = (req.extensions().get::<UserDecision>(), decision)
        && let Ok(mut slot) = slot.0.lock()
    {
        *slot = Some(d);
    }
}

/// The caller as authenticated by the limiter (to choose between the user and the anonymous
/// rate), taken once by the `Caller` extractor so a request is authenticated only once.
#[derive(Clone)]
pub struct Authenticated(Arc<std::sync::Mutex<Option<Result<Caller, ApiError>>>>);

impl Authenticated {
    /// The outcome the limiter reached, if it authenticated this request.
    pub fn take(req: &Request) -> Option<Result<Caller, ApiError>> {
        req.extensions()
            .get::<Authenticated>()
            .and_then(|slot| slot.0.lock().ok()?.take())
    }
}

/// The client's address as resolved for this request.
#[derive(Clone, Copy)]
struct ClientIp(Option<IpAddr>);

/// The client's address: the peer, or the right-most untrusted `X-Forwarded-For` hop when the
/// peer is a trusted proxy. Headers from anyone else are ignored.
pub fn client_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ClientIp>()
        .and_then(|c| c.0)
        .or_else(|| peer(req))
}

fn peer(req: &Request) -> Option<IpAddr> {
    req.remote_addr().as_socket_addr().map(|a| a.ip())
}

fn resolve(req: &Request, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = peer(req)?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    forwarded
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(forwarded.first())
        .copied()
        .or(Some(peer))
}

/// Resolves the client address once per request, for the limits, the lockout and the logs.
pub fn client_address(req: &mut Request) {
    if let Some(state) = req.data::<AppState>() {
        let ip = resolve(req, &state.settings.throttle.trusted_proxies);
        req.extensions_mut().insert(ClientIp(ip));
        if let Some(ip) = ip {
            tracing::Span::current().record("client", tracing::field::display(ip));
        }
    }
}

/// The endpoint group of an operation, for `throttle.scopes`, from its route template.
fn scope(method: &Method, route: &str) -> Option<&'static str> {
    if method != Method::POST {
        return None;
    }
    match route {
        "/api/token"
        | "/auth/jwt/create"
        | "/auth/token/login"
        | "/api/api-token-auth"
        | "/api/token/mfa"
        | "/auth/token/login/mfa" => Some("login"),
        "/auth/users" => Some("register"),
        "/api/token/refresh" | "/auth/jwt/refresh" => Some("refresh"),
        "/auth/users/reset_password"
        | "/auth/users/reset_username"
        | "/auth/users/resend_activation" => Some("password_reset"),
        _ => None,
    }
}

/// An API whose every operation applies the rate limits chosen for its own route (documented
/// always, applied when `enabled`).
pub struct Limited<A> {
    pub api: A,
    pub enabled: bool,
}

impl<A: OpenApi> OpenApi for Limited<A> {
    /// Every operation may answer 429 (a rate, or the lockout behind a login), and every answer
    /// carries `X-RateLimit-*` while throttling is on.
    fn meta() -> Vec<MetaApi> {
        let mut apis = A::meta();
        for operation in answer::operations(&mut apis) {
            answer::document(
                operation,
                <answer::Throttled as answer::Refusals>::responses(),
            );
            for response in &mut operation.responses.responses {
                response.headers.extend(answer::rate_limit_headers());
            }
        }
        apis
    }

    fn register(registry: &mut Registry) {
        A::register(registry);
    }

    fn add_routes(self, table: &mut HashMap<String, HashMap<Method, BoxEndpoint<'static>>>) {
        if !self.enabled {
            return self.api.add_routes(table);
        }
        let mut routes = HashMap::new();
        self.api.add_routes(&mut routes);
        for (route, operations) in routes {
            let entry = table.entry(route.clone()).or_default();
            for (method, ep) in operations {
                let scope = scope(&method, &route);
                let limited = ep
                    .into_endpoint()
                    .around(move |ep, req| limit(ep, req, scope));
                entry.insert(method, limited.boxed());
            }
        }
    }
}

/// Applies the scoped rate of the operation, or DRF's user rate when the request authenticates
/// and the anonymous rate otherwise (a header that fails to authenticate counts as anonymous).
async fn limit<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    scope: Option<&'static str>,
) -> poem::Result<Response> {
    let Some(state) = req.data::<AppState>().cloned() else {
        return ep.call(req).await.map(IntoResponse::into_response);
    };
    let Some(throttle) = state.throttle.as_ref() else {
        return ep.call(req).await.map(IntoResponse::into_response);
    };
    let client = client_ip(&req).map_or_else(|| "unknown".to_owned(), address_block);
    let decision = match scope.and_then(|s| throttle.scope(s).map(|r| (s, r))) {
        Some((name, rate)) => throttle.hit(&format!("{name}:{client}"), rate).await,
        None if req.headers().contains_key(header::AUTHORIZATION) => {
            let outcome = Caller::from_headers(&state, &req).await;
            let (key, rate) = match &outcome {
                Ok(caller) => (format!("user:{}", caller.user.id), throttle.user),
                Err(_) => (format!("anon:{client}"), throttle.anon),
            };
            let decision = throttle.hit(&key, rate).await;
            req.extensions_mut()
                .insert(Authenticated(Arc::new(std::sync::Mutex::new(Some(
                    outcome,
                )))));
            decision
        }
        None => throttle.hit(&format!("anon:{client}"), throttle.anon).await,
    };
    if let Some(d) = decision.filter(|d| !d.allowed) {
        let mut response = ApiError::throttled(d.retry_after_secs.max(1)).as_response();
        rate_headers(&mut response, &d);
        return Ok(response);
    }
    let method = req.method().to_string();
    let user_decision = UserDecision::default();
    req.extensions_mut().insert(user_decision.clone());
    let mut response = match ep.call(req).await {
        Ok(r) => r.into_response(),
        Err(e) => {
            // Kept for the debug check of documented statuses (`answer::Documented`).
            let operation = e.data::<OperationId>().copied();
            let mut response = super::error::into_drf(e, &method);
            if let Some(operation) = operation {
                response.set_data(operation);
            }
            response
        }
    };
    let decision = decision.or_else(|| user_decision.0.lock().ok().and_then(|d| *d));
    if let Some(d) = decision {
        rate_headers(&mut response, &d);
    }
    Ok(response)
}

fn rate_headers(response: &mut Response, d: &Decision) {
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(d.reset_secs));
}

//! Who the client is (its address, through trusted proxies only) and the rate limits in front
//! of the API, with DRF's 429 answer and `X-RateLimit-*` headers.
use std::{net::IpAddr, sync::Arc};

use poem::{
    Endpoint, IntoResponse, Request, Response,
    error::ResponseError,
    http::{HeaderValue, Method, header},
};

use super::error::ApiError;
use crate::{domain::throttle::Decision, state::AppState};

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

/// The endpoint group of a request, for `throttle.scopes`.
fn scope(method: &Method, path: &str) -> Option<&'static str> {
    if method != Method::POST {
        return None;
    }
    match path.trim_end_matches('/') {
        "/api/token" | "/auth/jwt/create" | "/auth/token/login" | "/api/api-token-auth" => {
            Some("login")
        }
        "/auth/users" => Some("register"),
        "/api/token/refresh" | "/auth/jwt/refresh" => Some("refresh"),
        "/auth/users/reset_password"
        | "/auth/users/reset_username"
        | "/auth/users/resend_activation" => Some("password_reset"),
        _ => None,
    }
}

/// Resolves the client address and applies the anonymous and scoped rates.
pub async fn limit<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let Some(state) = req.data::<AppState>().cloned() else {
        return ep.call(req).await.map(IntoResponse::into_response);
    };
    let ip = resolve(&req, &state.trusted_proxies);
    req.extensions_mut().insert(ClientIp(ip));
    if let Some(ip) = ip {
        tracing::Span::current().record("client", tracing::field::display(ip));
    }
    let path = req.uri().path();
    let Some(throttle) = state
        .throttle
        .as_ref()
        .filter(|_| path.starts_with("/auth/") || path.starts_with("/api/"))
    else {
        return ep.call(req).await.map(IntoResponse::into_response);
    };
    let client = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let rule = match scope(req.method(), path).and_then(|s| throttle.scope(s).map(|r| (s, r))) {
        Some((name, rate)) => Some((format!("{name}:{client}"), rate)),
        // Authenticated callers are limited by user once known (in the caller extractor).
        None if !req.headers().contains_key(header::AUTHORIZATION) => {
            Some((format!("anon:{client}"), throttle.anon))
        }
        None => None,
    };
    let decision = match rule {
        Some((key, rate)) => throttle.hit(&key, rate).await,
        None => None,
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
        Err(e) => super::error::into_drf(e, &method),
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

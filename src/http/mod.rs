//! The HTTP layer: routes, middleware, OpenAPI and Swagger UI. The only module that knows poem.
pub mod aliases;
mod answer;
#[macro_use]
mod body;
mod caller;
pub mod cookie;
pub mod cors;
mod error;
mod groups;
mod health;
mod jwt;
mod mfa;
mod routes;
mod sessions;
mod throttle;
mod token_login;
mod users;

use std::time::Instant;

use poem::{
    Endpoint, EndpointExt, IntoEndpoint, IntoResponse, PathPattern, Request, Response, Route,
    http::{HeaderValue, header},
};
use poem_openapi::OpenApiService;
use tracing::Instrument;

use crate::state::AppState;

const REQUEST_ID: &str = "x-request-id";

/// The operations that apply the rate limits of their route: all but the probes.
type LimitedOperations = (
    users::UsersApi,
    users::AccountsApi,
    jwt::JwtApi,
    token_login::TokenLoginApi,
    mfa::MfaApi,
    groups::GroupsApi,
    sessions::SessionsApi,
);

/// Every operation, each documented with the answers of its extractors and its rate limits.
type Operations = answer::Documented<(
    throttle::Limited<answer::Extracted<LimitedOperations>>,
    health::HealthApi,
)>;

/// The operations, wrapped in the rate limits when `limited` (throttling on); without them no
/// request pays for a layer that would only pass it on.
fn api(limited: bool) -> OpenApiService<Operations, ()> {
    OpenApiService::new(
        answer::Documented((
            throttle::Limited {
                enabled: limited,
                api: answer::Extracted(LimitedOperations::default()),
            },
            health::HealthApi,
        )),
        "Tessera",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Identity and token service compatible with Djoser and djangorestframework-simplejwt. \
             Errors use DRF's shape: `{\"detail\": ..., \"code\": ...}` with a stable \
             machine-readable `code`, or `{\"field\": [\"message\"]}` for invalid input.",
    )
}

/// The OpenAPI document of the default settings (`auth.basic` off), as committed in
/// `openapi/openapi.json`.
pub fn openapi_json() -> String {
    openapi_json_for(false, &aliases::PathAliases::default())
}

/// The OpenAPI document as served at `/openapi.json`: `basicAuth` listed only when `auth.basic`
/// is on, and the `[paths]` aliases beside their endpoints. poem-openapi drops trailing slashes
/// from paths; Djoser's paths have them, so they are put back.
pub fn openapi_json_for(basic_auth: bool, aliases: &aliases::PathAliases) -> String {
    let spec = api(false).spec();
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(&spec) else {
        return spec;
    };
    if !basic_auth {
        caller::forget_basic_scheme(&mut doc);
    }
    tidy_responses(&mut doc);
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        *paths = std::mem::take(paths)
            .into_iter()
            .map(|(path, item)| {
                let slashed = routes::slashed(&path);
                (if slashed { format!("{path}/") } else { path }, item)
            })
            .collect();
    }
    aliases.document(&mut doc);
    serde_json::to_string_pretty(&doc).unwrap_or(spec)
}

/// Moves each error answer's example from its inline schema (where `answer.rs` has to carry it)
/// to its media type, leaving `{"$ref": ...}` or the `oneOf`/`anyOf` alone; and spells header
/// names as they are sent (poem-openapi upper-cases those it derives).
fn tidy_responses(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let responses = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses").and_then(|r| r.as_object_mut()))
        .flat_map(|responses| responses.values_mut());
    for response in responses {
        if let Some(headers) = response.get_mut("headers").and_then(|h| h.as_object_mut()) {
            *headers = std::mem::take(headers)
                .into_iter()
                .map(|(name, header)| (header_name(&name), header))
                .collect();
        }
        let Some(content) = response.get_mut("content").and_then(|c| c.as_object_mut()) else {
            continue;
        };
        for media in content.values_mut() {
            let Some(schema) = media.get_mut("schema").and_then(|s| s.as_object_mut()) else {
                continue;
            };
            let Some(example) = schema.remove("example") else {
                continue;
            };
            if let Some(serde_json::Value::Array(all_of)) = schema.get("allOf")
                && let [only] = all_of.as_slice()
            {
                media["schema"] = only.clone();
            }
            media["example"] = example;
        }
    }
}

/// `RETRY-AFTER` → `Retry-After`; `X-RateLimit-*` and `WWW-Authenticate` as they are sent.
fn header_name(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "www-authenticate" => "WWW-Authenticate".to_owned(),
        lower if lower.starts_with("x-ratelimit-") => name.to_owned(),
        lower => lower
            .split('-')
            .map(|word| {
                let mut chars = word.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_uppercase().to_string() + chars.as_str()
                })
            })
            .collect::<Vec<_>>()
            .join("-"),
    }
}

/// The `[paths]` aliases, checked against the endpoints (at start: a bad one stops it).
pub fn path_aliases(
    settings: &aliases::PathSettings,
) -> Result<aliases::PathAliases, aliases::PathError> {
    aliases::PathAliases::new(settings, &routes::RouteTable::new())
}

/// The whole application: routes, docs and middleware around them.
pub fn app(state: AppState, aliases: aliases::PathAliases) -> impl Endpoint + use<> {
    prometheus();
    let api = api(state.throttle.is_some());
    let spec = openapi_json_for(state.settings.auth.basic, &aliases);
    let docs = api.swagger_ui_html().replacen(&api.spec(), &spec, 1);
    let around = std::sync::Arc::new(Around {
        cors: cors::Cors::new(state.settings.cors.clone()),
        aliases,
        table: routes::RouteTable::new(),
        pages: Pages {
            docs: docs.into(),
            spec: spec.into(),
            metrics: state.settings.server.metrics_bind.is_none(),
        },
        state,
    });
    api.into_endpoint().around(move |ep, req| {
        let around = around.clone();
        // Boxed before the future is made: a `Request` (472 bytes) passed by value is kept in
        // every layer's future, moved-from slots included, and each boxed future is copied
        // whole; that was 5 KB copied per request.
        let req = Box::new(req);
        async move { Ok(around.call(ep.as_ref().as_ref(), req).await) }
    })
}

/// The pages served beside the API: Swagger UI, the OpenAPI document and (without
/// `server.metrics_bind`) the metrics. Answered before the router, so API requests do not go
/// through a router of their own to reach it.
struct Pages {
    docs: bytes::Bytes,
    spec: bytes::Bytes,
    metrics: bool,
}

impl Pages {
    fn answer(&self, req: &Request) -> Option<Response> {
        let path = req.uri().path();
        let mut response = match path {
            "/docs" => self
                .docs
                .clone()
                .with_content_type("text/html; charset=utf-8")
                .into_response(),
            "/openapi.json" => self
                .spec
                .clone()
                .with_content_type("application/json")
                .into_response(),
            "/metrics" if self.metrics => {
                if req.method() == poem::http::Method::GET {
                    metrics_text()
                } else {
                    error::into_drf(
                        poem::error::MethodNotAllowedError.into(),
                        req.method().as_str(),
                    )
                }
            }
            _ => return None,
        };
        response.set_data(routes::DocumentedPath(path.to_owned()));
        Some(response)
    }
}

/// The path as the router matches it: trailing slashes trimmed (Djoser's clients send paths
/// with and without them) and repeated slashes merged, the rule of poem's `NormalizePath`
/// applied here so that a request already in that form is left as it is.
fn normalize_path(req: &mut Request) {
    let path = req.uri().path();
    let trimmed = path.trim_end_matches('/');
    if path == "/" || (trimmed.len() == path.len() && !path.contains("//")) {
        return;
    }
    let mut normal = String::with_capacity(path.len());
    for segment in trimmed.split('/').filter(|s| !s.is_empty()) {
        normal.push('/');
        normal.push_str(segment);
    }
    if normal.is_empty() {
        normal.push('/');
    }
    if let Some(query) = req.uri().query() {
        normal.push('?');
        normal.push_str(query);
    }
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = poem::http::uri::PathAndQuery::try_from(normal)
        && let Ok(uri) = {
            parts.path_and_query = Some(pq);
            poem::http::Uri::from_parts(parts)
        }
    {
        *req.uri_mut() = uri;
    }
}

/// What every request goes through around the routes, as steps of one layer rather than a
/// layer each: nested layers made a 15 KB future (each holding its own `Request`) that was
/// built and moved on every request.
struct Around {
    cors: cors::Cors,
    aliases: aliases::PathAliases,
    table: routes::RouteTable,
    pages: Pages,
    state: AppState,
}

impl Around {
    async fn call(&self, ep: &Api, req: Box<Request>) -> Response {
        // First: preflights are answered before anything else, and every answer (errors
        // included) gets the CORS headers.
        let seen = self.cors.start(&req);
        if let cors::CorsSeen::Preflight(origin) = seen {
            return self.cors.preflight(origin);
        }
        let mut response = observe(ep, req, self).await;
        self.cors.finish(seen, &mut response);
        response
    }

    /// Inside the request's span: the state, the client's address, an alias rewritten to its
    /// endpoint's path (so it shares the endpoint's limits and label), `OPTIONS` metadata.
    async fn route(&self, ep: &Api, mut req: Box<Request>) -> poem::Result<Response> {
        req.extensions_mut().insert(self.state.clone());
        throttle::client_address(&mut req);
        aliases::rewrite(&mut req, &self.aliases);
        if let Some(metadata) = routes::options(&req, &self.table) {
            return Ok(metadata);
        }
        normalize_path(&mut req);
        if let Some(page) = self.pages.answer(&req) {
            return Ok(page);
        }
        // The boxed endpoint's own future, without `Endpoint for Box`'s wrapper around it.
        ep.call(*req).await
    }
}

/// The API's endpoint as `OpenApiService` makes it.
type Api = dyn poem::endpoint::DynEndpoint<Output = Response>;

/// Metrics labels by route: poem's pattern of each operation (`/auth/users/:param0`) to its
/// path as the OpenAPI document writes it (`/auth/users/{id}/`). Series are bounded by the
/// routes whatever paths clients send; a request that matched no route is `other`. The routes
/// are the program's, so the labels are made once per process and live as long.
struct RouteLabels {
    by_pattern: std::collections::HashMap<String, String>,
    documented: std::collections::HashSet<String>,
}

impl RouteLabels {
    fn get() -> &'static Self {
        static LABELS: std::sync::OnceLock<RouteLabels> = std::sync::OnceLock::new();
        LABELS.get_or_init(Self::new)
    }

    fn new() -> Self {
        let mut by_pattern = std::collections::HashMap::new();
        for path in <Operations as poem_openapi::OpenApi>::meta()
            .into_iter()
            .flat_map(|api| api.paths)
        {
            let mut param = 0;
            let pattern: Vec<String> = path
                .path
                .split('/')
                .map(|segment| {
                    if segment.starts_with('{') {
                        param += 1;
                        format!(":param{}", param - 1)
                    } else {
                        segment.to_owned()
                    }
                })
                .collect();
            let documented = if routes::slashed(&path.path) {
                format!("{}/", path.path)
            } else {
                path.path.to_owned()
            };
            by_pattern.insert(pattern.join("/"), documented);
        }
        let mut documented: std::collections::HashSet<String> =
            by_pattern.values().cloned().collect();
        documented.extend(["/docs", "/openapi.json", "/metrics"].map(str::to_owned));
        Self {
            by_pattern,
            documented,
        }
    }

    /// The label of the route that answered.
    fn of(&'static self, pattern: Option<&PathPattern>) -> &'static str {
        pattern
            .and_then(|p| self.by_pattern.get(p.0.as_ref()))
            .map_or("other", String::as_str)
    }

    /// The label of an answer given before routing, by the documented path it names.
    fn documented(&'static self, path: &str) -> &'static str {
        self.documented.get(path).map_or("other", String::as_str)
    }
}

/// Counts a request and records its duration. The handles are kept per worker thread by
/// method, route and status: the `metrics` macros build, hash and look up a labelled key on
/// every call, a cost every request paid. Bounded by the routes, eight method labels and the
/// statuses the service answers.
fn record_request(method: &'static str, route: &'static str, status: u16, seconds: f64) {
    type Handles = (metrics::Counter, metrics::Histogram);
    thread_local! {
        static HANDLES: std::cell::RefCell<
            std::collections::HashMap<(&'static str, &'static str, u16), Handles>,
        > = std::cell::RefCell::default();
    }
    HANDLES.with_borrow_mut(|handles| {
        let (counter, histogram) = handles.entry((method, route, status)).or_insert_with(|| {
            (
                metrics::counter!("tessera_http_requests_total", "method" => method, "route" => route, "status" => status.to_string()),
                metrics::histogram!("tessera_http_request_duration_seconds", "method" => method, "route" => route),
            )
        });
        counter.increment(1);
        histogram.record(seconds);
    });
}

/// The Prometheus registry of this process: the `metrics` facade has one global recorder, so it
/// is installed once and shared by every app in the process.
fn prometheus() -> Option<&'static metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ])
                .ok()?
                .install_recorder()
                .ok()?;
            metrics::gauge!("tessera_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            Some(handle)
        })
        .as_ref()
}

/// `/metrics` alone, for `server.metrics_bind`.
pub fn metrics_app() -> impl Endpoint {
    prometheus();
    Route::new().at(
        "/metrics",
        poem::get(poem::endpoint::make_sync(|_| metrics_text())),
    )
}

/// `GET /metrics` in Prometheus text format.
fn metrics_text() -> Response {
    let Some(handle) = prometheus() else {
        return Response::builder()
            .status(poem::http::StatusCode::SERVICE_UNAVAILABLE)
            .finish();
    };
    handle.run_upkeep();
    Response::builder()
        .content_type("text/plain; version=0.0.4")
        .body(handle.render())
}

/// A request's method as a metrics label: a made-up method is `other`, so clients cannot
/// grow the series without bound.
fn method_label(method: &poem::http::Method) -> &'static str {
    use poem::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Request id, tracing span, DRF-shaped errors and security headers for every answer.
async fn observe(ep: &Api, req: Box<Request>, around: &Around) -> Response {
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(crate::crypto::new_request_id);
    let method = req.method().clone();
    // Every event of the request (the audit log included) carries these fields, read only when
    // the span is recorded; `client` (the address behind trusted proxies) is filled in once
    // resolved.
    let span = tracing::info_span!(
        "request",
        id = %request_id,
        method = %method,
        path = %req.uri().path(),
        peer = %req
            .remote_addr()
            .as_socket_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default(),
        client = tracing::field::Empty,
        user_agent = %req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    );
    let started = Instant::now();
    async move {
        let labels = RouteLabels::get();
        let (mut response, route) = match around.route(ep, req).await {
            Ok(r) => {
                let route = match r.data::<routes::DocumentedPath>() {
                    Some(documented) => labels.documented(&documented.0),
                    None => labels.of(r.data::<PathPattern>()),
                };
                (r, route)
            }
            Err(e) => {
                let route = labels.of(e.data::<PathPattern>());
                (error::into_drf(e, method.as_str()), route)
            }
        };
        let headers = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            headers.insert(REQUEST_ID, v);
        }
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
        record_request(
            method_label(&method),
            route,
            response.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "answered"
        );
        response
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use poem_openapi::OpenApi;
    use serde_json::Value;

    use super::*;

    /// The operations `throttle::Limited` wraps are the ones documenting 429, `Retry-After`
    /// and `X-RateLimit-*` on every answer; the probes, outside it, document none.
    #[test]
    fn every_rate_limited_operation_documents_429_and_the_rate_headers() {
        let mut apis = <LimitedOperations as OpenApi>::meta();
        let limited: std::collections::HashSet<&str> = answer::operations(&mut apis)
            .filter_map(|op| op.operation_id)
            .collect();
        let doc: Value = serde_json::from_str(&openapi_json()).unwrap_or_default();
        let mut seen = 0;
        for op in doc["paths"]
            .as_object()
            .into_iter()
            .flat_map(|paths| paths.values())
            .filter_map(|item| item.as_object())
            .flat_map(|item| item.values())
        {
            let id = op["operationId"].as_str().unwrap_or_default();
            let responses = op["responses"].as_object().cloned().unwrap_or_default();
            let is_limited = limited.contains(id);
            seen += usize::from(is_limited);
            assert_eq!(responses.contains_key("429"), is_limited, "{id}");
            assert_eq!(
                op["responses"]["429"]["headers"]["Retry-After"]["required"] == true,
                is_limited,
                "{id}"
            );
            for (status, response) in &responses {
                for name in ["Limit", "Remaining", "Reset"] {
                    let header = &response["headers"][format!("X-RateLimit-{name}")];
                    assert_eq!(header.is_object(), is_limited, "{id} {status} {name}");
                }
            }
        }
        assert_eq!(seen, limited.len());
        assert!(limited.contains("token_create") && !limited.contains("health_ready_retrieve"));
    }
}

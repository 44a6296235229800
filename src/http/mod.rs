//! The HTTP layer: routes, middleware, OpenAPI and Swagger UI. The only module that knows poem.
mod body;
mod caller;
mod error;
mod health;
mod jwt;
mod throttle;
mod token_login;
mod users;

use std::time::Instant;

use poem::{
    Endpoint, EndpointExt, IntoResponse, Request, Response, Route,
    http::{HeaderValue, header},
    middleware::{NormalizePath, TrailingSlash},
    web::Html,
};
use poem_openapi::OpenApiService;
use tracing::Instrument;

use crate::state::AppState;

const REQUEST_ID: &str = "x-request-id";

fn api() -> OpenApiService<
    (
        users::UsersApi,
        users::AccountsApi,
        jwt::JwtApi,
        token_login::TokenLoginApi,
        health::HealthApi,
    ),
    (),
> {
    OpenApiService::new(
        (
            users::UsersApi,
            users::AccountsApi,
            jwt::JwtApi,
            token_login::TokenLoginApi,
            health::HealthApi,
        ),
        "Tessera",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Identity and token service compatible with Djoser and djangorestframework-simplejwt. \
             Errors use DRF's shape: `{\"detail\": ...}` or `{\"field\": [\"message\"]}`.",
    )
}

/// The OpenAPI document, as served at `/openapi.json` and committed in `openapi/openapi.json`.
/// poem-openapi drops trailing slashes from paths; Djoser's paths have them, so they are put back.
pub fn openapi_json() -> String {
    with_trailing_slashes(&api().spec())
}

fn with_trailing_slashes(spec: &str) -> String {
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(spec) else {
        return spec.to_owned();
    };
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        *paths = std::mem::take(paths)
            .into_iter()
            .map(|(path, item)| {
                let slashed = path.starts_with("/auth/") || path.starts_with("/api/");
                (if slashed { format!("{path}/") } else { path }, item)
            })
            .collect();
    }
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| spec.to_owned())
}

/// The whole application: routes, docs and middleware around them.
pub fn app(state: AppState) -> impl Endpoint + use<> {
    let api = api();
    let spec = openapi_json();
    let docs = api.swagger_ui_html().replacen(&api.spec(), &spec, 1);
    Route::new()
        .at(
            "/docs",
            poem::endpoint::make_sync(move |_| Html(docs.clone())),
        )
        .at(
            "/openapi.json",
            poem::endpoint::make_sync(move |_| spec.clone().with_content_type("application/json")),
        )
        .nest("/", api)
        // Paths are served with and without the trailing slash (Djoser's clients use both).
        .with(NormalizePath::new(TrailingSlash::Trim))
        .around(throttle::limit)
        .data(state)
        .around(|ep, req| async move { Ok(observe(ep, req).await) })
}

/// Request id, tracing span, DRF-shaped errors and security headers for every answer.
async fn observe<E: Endpoint>(ep: std::sync::Arc<E>, req: Request) -> Response {
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let method = req.method().to_string();
    let span = tracing::info_span!("request", id = %request_id, method = %method, path = %req.uri().path());
    let started = Instant::now();
    async move {
        let mut response = match ep.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => error::into_drf(e, &method),
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

//! CORS as django-cors-headers gives a Django project: listed origins (exact, or whole-origin
//! regexes) get the headers; everyone else gets none, so the browser refuses. Off (no origin
//! listed) nothing is added at all.
use std::time::Duration;

use poem::{
    Request, Response,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
};
use regex::Regex;
use serde::{Deserialize, Deserializer, de::Error as _};

use crate::domain::setting_values::duration;

/// `[cors]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    /// Exact origins, `scheme://host[:port]`.
    #[serde(deserialize_with = "origins")]
    pub allowed_origins: Vec<String>,
    /// Each must match the whole origin.
    #[serde(deserialize_with = "origin_patterns")]
    pub allowed_origin_regexes: Vec<Regex>,
    pub allow_credentials: bool,
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    #[serde(deserialize_with = "duration")]
    pub max_age: Duration,
}

impl CorsSettings {
    /// Whether `origin` (as a browser sends it) is listed or matches a listed regex.
    pub fn allows(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
            || self
                .allowed_origin_regexes
                .iter()
                .any(|r| r.is_match(origin))
    }
}

const METHODS: &str = "DELETE, GET, OPTIONS, PATCH, POST, PUT";

/// An origin as browsers send it: scheme, host and an optional port, nothing else.
fn origins<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    list.into_iter()
        .map(|o| {
            let lower = o.to_ascii_lowercase();
            let rest = lower
                .strip_prefix("https://")
                .or_else(|| lower.strip_prefix("http://"));
            match rest {
                Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', '*', '@']) => {
                    Ok(lower)
                }
                _ => Err(D::Error::custom(format!(
                    "cors.allowed_origins: {o:?} is not an origin like \"https://app.example.com\" \
                     (scheme and host, no path; \"*\" and \"null\" are refused)"
                ))),
            }
        })
        .collect()
}

/// Regexes anchored at both ends: `https://.*\.example\.com` must not let
/// `https://x.example.com.evil.net` in (django-cors-headers anchors only the start).
fn origin_patterns<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Regex>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    list.into_iter()
        .map(|p| {
            Regex::new(&format!("^(?:{p})$"))
                .map_err(|e| D::Error::custom(format!("cors.allowed_origin_regexes: {p:?}: {e}")))
        })
        .collect()
}

/// The compiled policy.
pub struct Cors {
    settings: CorsSettings,
    allowed_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
}

impl Cors {
    pub fn new(settings: CorsSettings) -> Self {
        let joined = |list: &[String]| HeaderValue::from_str(&list.join(", ")).ok();
        Self {
            allowed_headers: joined(&settings.allowed_headers),
            expose_headers: joined(&settings.expose_headers),
            settings,
        }
    }

    fn enabled(&self) -> bool {
        !self.settings.allowed_origins.is_empty()
            || !self.settings.allowed_origin_regexes.is_empty()
    }

    /// The request's `Origin` when it is allowed.
    fn allowed(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        self.settings.allows(text).then(|| origin.clone())
    }

    /// The answer to a preflight from an allowed origin.
    pub fn preflight(&self, origin: HeaderValue) -> Response {
        let mut response = Response::builder().status(StatusCode::OK).finish();
        vary(&mut response);
        let headers = response.headers_mut();
        self.common(headers, origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(METHODS),
        );
        if let Some(allowed) = &self.allowed_headers {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allowed.clone());
        }
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(self.settings.max_age.as_secs()),
        );
        response
    }

    fn common(&self, headers: &mut HeaderMap, origin: HeaderValue) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if self.settings.allow_credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

/// What CORS saw of a request: nothing (CORS off), a preflight from an allowed origin (answered
/// before anything else), or whether the request came from an allowed origin (which one).
pub enum CorsSeen {
    Off,
    Preflight(HeaderValue),
    On(Option<HeaderValue>),
}

impl Cors {
    /// Before anything else: what the request is to CORS.
    pub fn start(&self, req: &Request) -> CorsSeen {
        if !self.enabled() {
            return CorsSeen::Off;
        }
        let origin = self.allowed(req.headers());
        let is_preflight = req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        match origin {
            Some(origin) if is_preflight => CorsSeen::Preflight(origin),
            origin => CorsSeen::On(origin),
        }
    }

    /// Every answer (errors included) gets the CORS headers its request earned.
    pub fn finish(&self, seen: CorsSeen, response: &mut Response) {
        let CorsSeen::On(origin) = seen else {
            return;
        };
        vary(response);
        if let Some(origin) = origin {
            let headers = response.headers_mut();
            self.common(headers, origin);
            if let Some(expose) = &self.expose_headers {
                headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
            }
        }
    }
}

fn vary(response: &mut Response) {
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("origin"));
}

//! The refresh token in an `HttpOnly` cookie (`[jwt.cookie]`), so a page's scripts never hold
//! it, and the CSRF rules of the requests that cookie authenticates.
//!
//! A cookie is an ambient credential: the browser sends it with any request to its path, a
//! cross-site form included. So a refresh or blacklist whose token came from the cookie must
//! show it was sent on purpose: an `X-CSRF-Token` header equal to the readable `csrftoken`
//! cookie (double submit: a page can set that header only on a request CORS let it make, and
//! can read the cookie only on the cookie's own site), or an `Origin` Tessera trusts. A token
//! in the body is no ambient credential (the caller holds it) and needs neither.
use std::time::Duration;

use poem::{
    IntoResponse, Request, RequestBody, Response,
    http::{HeaderValue, StatusCode, header},
};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions,
    registry::{MetaHeader, MetaParamIn, MetaResponses, MetaSchemaRef, Registry},
    types::Type,
};
use serde::Deserialize;

use super::error::{ApiError, Code};
use crate::{
    crypto::ct_eq,
    domain::{
        DomainError,
        accounts::AccountRules,
        setting_values::{optional_text, text},
        tokens::{TokenError, VerifyError},
    },
    settings::Settings,
};

/// `[jwt.cookie]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookieSettings {
    /// Set the refresh token as a cookie on login, read it on refresh and blacklist.
    pub enabled: bool,
    #[serde(deserialize_with = "text")]
    pub name: String,
    /// `Domain=`; None ("") makes a host-only cookie.
    #[serde(deserialize_with = "optional_text")]
    pub domain: Option<String>,
    /// `Path=`: where the browser sends the refresh cookie.
    #[serde(deserialize_with = "text")]
    pub path: String,
    pub same_site: SameSite,
    pub secure: bool,
    /// Leave `refresh` out of the JSON answers that set the cookie.
    pub omit_from_body: bool,
    #[serde(deserialize_with = "text")]
    pub csrf_cookie_name: String,
}

/// `SameSite=`: `None` is not offered, it would send the cookie with cross-site requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
}

impl<'de> Deserialize<'de> for SameSite {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = text(d)?;
        match value.to_ascii_lowercase().as_str() {
            "lax" => Ok(Self::Lax),
            "strict" => Ok(Self::Strict),
            _ => Err(serde::de::Error::custom(format!(
                "`{value}` is not \"lax\" or \"strict\" (\"none\" would send the cookie with \
                 cross-site requests)"
            ))),
        }
    }
}

/// RFC 6265's `token`: what a cookie name may hold.
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

/// The host of `domain` (`localhost:8000` → `localhost`, `[::1]:8000` → `[::1]`).
fn host_of(domain: &str) -> &str {
    if domain.starts_with('[') {
        return domain.split_inclusive(']').next().unwrap_or(domain);
    }
    domain.split(':').next().unwrap_or(domain)
}

impl CookieSettings {
    /// What a browser would otherwise refuse in silence, as `(key, why)`. `secure = false` is
    /// accepted only while the service's own site (`accounts.domain`) is the loopback: over
    /// plain HTTP anywhere else the refresh token would cross the network in clear.
    pub fn check(&self, accounts: &AccountRules) -> Result<(), (&'static str, String)> {
        for (key, name) in [
            ("jwt.cookie.name", &self.name),
            ("jwt.cookie.csrf_cookie_name", &self.csrf_cookie_name),
        ] {
            if !is_cookie_name(name) {
                return Err((
                    key,
                    format!("{name:?} is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)"),
                ));
            }
            let host_prefix = name.starts_with("__Host-");
            if (host_prefix || name.starts_with("__Secure-")) && !self.secure {
                return Err((
                    key,
                    format!("{name:?}: browsers need Secure for this prefix"),
                ));
            }
            if host_prefix
                && (self.domain.is_some() || (key == "jwt.cookie.name" && self.path != "/"))
            {
                return Err((
                    key,
                    format!("{name:?}: browsers need Path=/ and no Domain for __Host- cookies"),
                ));
            }
        }
        if self.name == self.csrf_cookie_name {
            return Err((
                "jwt.cookie.csrf_cookie_name",
                "must differ from jwt.cookie.name".into(),
            ));
        }
        let value_safe = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
        };
        if !self.path.starts_with('/') || !value_safe(&self.path) {
            return Err((
                "jwt.cookie.path",
                format!("{:?} is not a path like \"/api/token/\"", self.path),
            ));
        }
        if let Some(domain) = &self.domain {
            let host = domain.strip_prefix('.').unwrap_or(domain);
            if host.is_empty()
                || !host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            {
                return Err((
                    "jwt.cookie.domain",
                    format!("{domain:?} is not a domain like \"example.com\" (or \"\")"),
                ));
            }
        }
        let loopback = matches!(
            host_of(&accounts.domain).to_ascii_lowercase().as_str(),
            "localhost" | "127.0.0.1" | "[::1]"
        );
        if self.enabled && !self.secure && !loopback {
            return Err((
                "jwt.cookie.secure",
                format!(
                    "false is allowed only while accounts.domain is localhost, 127.0.0.1 or [::1] \
                     (it is {:?}): elsewhere the refresh token would travel over plain HTTP",
                    accounts.domain
                ),
            ));
        }
        Ok(())
    }
}

/// A `jwt.cookie.path` that no refresh path lies under: browsers would never send the cookie.
#[derive(Debug, thiserror::Error)]
#[error("jwt.cookie.path: {0}")]
pub struct CookiePathError(String);

/// RFC 6265's path-match: whether a browser sends a cookie of `cookie_path` to `request_path`.
fn path_matches(cookie_path: &str, request_path: &str) -> bool {
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/')
                || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/')))
}

/// Checks at start that the cookie's path covers a refresh path (Tessera's, Djoser's or a
/// `[paths]` alias of them); a blacklist path it does not cover is only warned about (logout
/// then needs the token in the body, or an alias under the path).
pub fn check_path(
    settings: &Settings,
    aliases: &super::aliases::PathAliases,
) -> Result<(), CookiePathError> {
    let Some(cookie) = enabled(settings) else {
        return Ok(());
    };
    if !cookie.secure {
        tracing::warn!(
            "jwt.cookie.secure is false: for plain-HTTP development on the loopback only"
        );
    }
    let spellings = |endpoints: &[&str]| -> Vec<String> {
        endpoints
            .iter()
            .flat_map(|e| std::iter::once((*e).to_owned()).chain(aliases.spellings_of(e)))
            .collect()
    };
    let covers = |paths: &[String]| -> Vec<String> {
        paths
            .iter()
            .filter(|p| {
                path_matches(&cookie.path, p)
                    || path_matches(&cookie.path, p.strip_suffix('/').unwrap_or(p))
            })
            .cloned()
            .collect()
    };
    let refresh = spellings(&["/api/token/refresh/", "/auth/jwt/refresh/"]);
    let covered = covers(&refresh);
    if covered.is_empty() {
        return Err(CookiePathError(format!(
            "{:?} covers none of the refresh paths ({}): browsers would never send the cookie",
            cookie.path,
            refresh.join(", ")
        )));
    }
    let blacklist = spellings(&["/api/token/blacklist/"]);
    if covers(&blacklist).is_empty() {
        tracing::warn!(
            path = %cookie.path,
            "jwt.cookie.path covers no blacklist path ({}): logging out needs the token in the \
             body, or a [paths] alias of /api/token/blacklist/ under the cookie's path",
            blacklist.join(", ")
        );
    }
    let missed: Vec<&String> = refresh.iter().filter(|p| !covered.contains(p)).collect();
    if !missed.is_empty() {
        tracing::info!(path = %cookie.path, "the refresh cookie is not sent to {missed:?}");
    }
    Ok(())
}

/// The longest cookie value read: browsers keep at most 4096 bytes a cookie, and a refresh
/// token is a few hundred. A longer value is refused as an invalid token without decoding it.
const MAX_VALUE: usize = 4096;

/// The value of the first cookie named exactly `name` (names are case-sensitive) in the
/// request's `Cookie` headers; browsers send the most specific path first.
pub fn cookie_value<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key.trim() == name).then(|| {
                let value = value.trim();
                value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value)
            })
        })
}

/// A fresh double-submit token: 256 bits from the CSPRNG, as 64 hex characters.
fn new_csrf_token() -> String {
    crate::crypto::random_hex(32)
}

/// The cookie settings when the cookie mode is on.
pub fn enabled(settings: &Settings) -> Option<&CookieSettings> {
    let cookie = &settings.jwt.cookie;
    cookie.enabled.then_some(cookie)
}

/// `Origin` values CSRF checks trust: those CORS lets in and the service's own
/// (`accounts.protocol://accounts.domain`).
pub fn trusted_origin(settings: &Settings, origin: &str) -> bool {
    settings.cors.allows(origin) || settings.accounts.site_url().eq_ignore_ascii_case(origin)
}

fn csrf_failed(reason: &str) -> ApiError {
    ApiError::detail(
        StatusCode::FORBIDDEN,
        Code::PermissionDenied,
        &format!("CSRF Failed: {reason}"),
    )
}

/// Whether a request authenticated by the cookie was sent on purpose: a matching
/// double-submit header, or a trusted `Origin`. Otherwise DRF's (Django's) 403.
fn check_csrf(settings: &Settings, req: &Request, header: Option<&str>) -> Result<(), ApiError> {
    let cookie = cookie_value(req, &settings.jwt.cookie.csrf_cookie_name)
        .filter(|c| !c.is_empty() && c.len() <= MAX_VALUE);
    if let (Some(header), Some(cookie)) = (header, cookie)
        && ct_eq(header.as_bytes(), cookie.as_bytes())
    {
        return Ok(());
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = String::from_utf8_lossy(origin.as_bytes());
        if trusted_origin(settings, &origin) {
            return Ok(());
        }
        return Err(csrf_failed(&format!(
            "Origin checking failed - {origin} does not match any trusted origins."
        )));
    }
    Err(csrf_failed(match (header, cookie) {
        (None, _) => "CSRF token missing.",
        (Some(_), None) => "CSRF cookie not set.",
        (Some(_), Some(_)) => "CSRF token incorrect.",
    }))
}

/// The refresh token a refresh or blacklist acts on, and whether its answer manages the cookie.
pub struct Presented {
    pub token: String,
    /// The token is the cookie's (sent as the cookie, or in the body with the cookie's value):
    /// the answer rotates or clears the cookie. A different body token leaves the cookie alone,
    /// so nobody can plant a token of theirs in someone else's browser.
    pub from_cookie: bool,
}

/// The token in the body, or (cookie mode, body without `refresh`) the cookie's after the CSRF
/// check; neither is DRF's `{"refresh": ["This field is required."]}`.
pub fn presented(
    settings: &Settings,
    req: &Request,
    body: Option<String>,
    cookie: &RefreshCookie,
    csrf: &CsrfHeader,
) -> Result<Presented, ApiError> {
    let in_cookie = enabled(settings).and(cookie.0.as_deref());
    if let Some(token) = body {
        let from_cookie = in_cookie.is_some_and(|c| ct_eq(c.as_bytes(), token.as_bytes()));
        return Ok(Presented { token, from_cookie });
    }
    let Some(token) = in_cookie else {
        return Err(ApiError::field("refresh", "This field is required."));
    };
    check_csrf(settings, req, csrf.0.as_deref())?;
    if token.len() > MAX_VALUE {
        return Err(DomainError::Token(TokenError::Refused(VerifyError::Invalid)).into());
    }
    Ok(Presented {
        token: token.to_owned(),
        from_cookie: true,
    })
}

fn set_cookie(
    cookie: &CookieSettings,
    name: &str,
    value: &str,
    path: &str,
    http_only: bool,
    max_age: Duration,
) -> Option<HeaderValue> {
    let mut line = format!("{name}={value}; Max-Age={}", max_age.as_secs());
    if max_age.is_zero() {
        line.push_str("; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
    }
    line.push_str(&format!("; Path={path}"));
    if let Some(domain) = &cookie.domain {
        line.push_str(&format!("; Domain={domain}"));
    }
    if cookie.secure {
        line.push_str("; Secure");
    }
    if http_only {
        line.push_str("; HttpOnly");
    }
    line.push_str(match cookie.same_site {
        SameSite::Lax => "; SameSite=Lax",
        SameSite::Strict => "; SameSite=Strict",
    });
    HeaderValue::from_str(&line).ok()
}

/// The refresh cookie holding `refresh`, and the readable `csrftoken` cookie (the request's
/// own when it has a sane one, so other tabs keep working; a new one otherwise).
pub fn issue(settings: &Settings, req: &Request, refresh: &str) -> Vec<HeaderValue> {
    let Some(cookie) = enabled(settings) else {
        return Vec::new();
    };
    let lifetime = settings.jwt.rules.refresh_lifetime;
    let csrf = cookie_value(req, &cookie.csrf_cookie_name)
        .filter(|c| c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or_else(new_csrf_token, str::to_owned);
    [
        set_cookie(cookie, &cookie.name, refresh, &cookie.path, true, lifetime),
        // Path=/ so that the page can read it (document.cookie shows only cookies whose path
        // covers the page's).
        set_cookie(
            cookie,
            &cookie.csrf_cookie_name,
            &csrf,
            "/",
            false,
            lifetime,
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Both cookies, expired: after a blacklist or a log out everywhere.
pub fn clear(settings: &Settings) -> Vec<HeaderValue> {
    let Some(cookie) = enabled(settings) else {
        return Vec::new();
    };
    [
        set_cookie(cookie, &cookie.name, "", &cookie.path, true, Duration::ZERO),
        set_cookie(
            cookie,
            &cookie.csrf_cookie_name,
            "",
            "/",
            false,
            Duration::ZERO,
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A login sets the cookies unless the request comes from an `Origin` Tessera does not trust:
/// a cross-site form must not log a browser into someone else's account (login CSRF).
pub fn may_set_on_login(settings: &Settings, req: &Request) -> bool {
    req.headers()
        .get(header::ORIGIN)
        .is_none_or(|origin| trusted_origin(settings, &String::from_utf8_lossy(origin.as_bytes())))
}

/// An answer with `Set-Cookie` headers (none when the cookie mode is off).
pub struct WithCookies<T> {
    pub answer: T,
    pub cookies: Vec<HeaderValue>,
}

impl<T> WithCookies<T> {
    pub fn new(answer: T, cookies: Vec<HeaderValue>) -> Self {
        Self { answer, cookies }
    }
}

impl<T: IntoResponse> IntoResponse for WithCookies<T> {
    fn into_response(self) -> Response {
        let mut response = self.answer.into_response();
        for cookie in self.cookies {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        response
    }
}

impl<T: ApiResponse> ApiResponse for WithCookies<T> {
    fn meta() -> MetaResponses {
        let mut meta = T::meta();
        for response in &mut meta.responses {
            if response.status.is_some_and(|s| (200..300).contains(&s)) {
                response.headers.push(MetaHeader {
                    name: "Set-Cookie".into(),
                    description: Some(
                        "With `jwt.cookie.enabled`: the refresh token (`refresh_token`, HttpOnly, \
                         Path `jwt.cookie.path`) and the readable `csrftoken` (Path=/), set by a \
                         login or a refresh from the cookie, expired (Max-Age=0) by a blacklist \
                         of the cookie's token and by revoke_all"
                            .into(),
                    ),
                    required: false,
                    deprecated: false,
                    schema: String::schema_ref(),
                });
            }
        }
        meta
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// The refresh cookie (`jwt.cookie.name`; documented under its default name), bounded.
pub struct RefreshCookie(pub Option<String>);

/// The double-submit header: `X-CSRF-Token`, or Django's `X-CSRFToken`.
pub struct CsrfHeader(pub Option<String>);

impl<'a> ApiExtractor<'a> for RefreshCookie {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::Parameter];
    type ParamType = ();
    type ParamRawType = ();

    fn param_in() -> Option<MetaParamIn> {
        Some(MetaParamIn::Cookie)
    }

    fn param_schema_ref() -> Option<MetaSchemaRef> {
        Some(String::schema_ref())
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let name = request
            .data::<crate::state::AppState>()
            .and_then(|state| enabled(&state.settings))
            .map(|cookie| cookie.name.as_str());
        Ok(Self(
            name.and_then(|name| cookie_value(request, name))
                .map(str::to_owned),
        ))
    }
}

impl<'a> ApiExtractor<'a> for CsrfHeader {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::Parameter];
    type ParamType = ();
    type ParamRawType = ();

    fn param_in() -> Option<MetaParamIn> {
        Some(MetaParamIn::Header)
    }

    fn param_schema_ref() -> Option<MetaSchemaRef> {
        Some(String::schema_ref())
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let headers = request.headers();
        let value = headers
            .get("x-csrf-token")
            .or_else(|| headers.get("x-csrftoken"))
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        Ok(Self(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_names() {
        assert_eq!(host_of("localhost:8000"), "localhost");
        assert_eq!(host_of("[::1]:8000"), "[::1]");
        assert_eq!(host_of("example.com"), "example.com");
        assert!(is_cookie_name("refresh_token") && is_cookie_name("__Host-rt"));
        assert!(!is_cookie_name("a b") && !is_cookie_name("a;b") && !is_cookie_name(""));
    }

    #[test]
    fn path_match_is_rfc_6265s() {
        assert!(path_matches("/api/token/", "/api/token/refresh/"));
        assert!(path_matches("/api/token/", "/api/token/refresh"));
        assert!(path_matches("/api/token", "/api/token/refresh/"));
        assert!(path_matches("/api/token", "/api/token"));
        assert!(!path_matches("/api/token", "/api/tokens/refresh/"));
        assert!(!path_matches("/api/token/", "/auth/jwt/refresh/"));
        assert!(path_matches("/", "/auth/jwt/refresh/"));
    }
}

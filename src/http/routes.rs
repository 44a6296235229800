//! The API's paths as the OpenAPI document lists them, matched against request paths before
//! poem's router runs: for `OPTIONS` answers (DRF's metadata) and for path aliases.
use poem::{
    Request, Response,
    http::{Method, StatusCode, header},
};
use poem_openapi::OpenApi;
use serde_json::json;

use super::Operations;

/// What DRF's parsers accept here (see `body.rs`).
pub const PARSES: [&str; 3] = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
];

/// One documented path and what it answers.
pub struct ApiPath {
    /// As the OpenAPI document writes it: `/auth/users/{id}/`.
    pub path: String,
    segments: Vec<Segment>,
    pub methods: Vec<Method>,
    /// The first operation's summary and description, for DRF's `name` and `description`.
    name: String,
    description: String,
}

enum Segment {
    Fixed(String),
    Param,
}

/// Every documented path.
pub struct RouteTable(Vec<ApiPath>);

/// Whether the document writes `path` with Djoser's trailing slash.
pub fn slashed(path: &str) -> bool {
    path.starts_with("/auth/") || path.starts_with("/api/")
}

/// The segments of a request or document path; one trailing slash is not a segment.
fn segments(path: &str) -> impl Iterator<Item = &str> {
    let path = path.strip_suffix('/').unwrap_or(path);
    path.split('/').skip(1)
}

impl RouteTable {
    pub fn new() -> Self {
        let paths = <Operations as OpenApi>::meta()
            .into_iter()
            .flat_map(|api| api.paths)
            .map(|p| {
                let first = p.operations.first();
                ApiPath {
                    segments: segments(&p.path)
                        .map(|s| {
                            if s.starts_with('{') {
                                Segment::Param
                            } else {
                                Segment::Fixed(s.to_owned())
                            }
                        })
                        .collect(),
                    methods: p.operations.iter().map(|o| o.method.clone()).collect(),
                    name: first
                        .and_then(|o| o.summary)
                        .unwrap_or_default()
                        .trim_end_matches('.')
                        .to_owned(),
                    description: first
                        .and_then(|o| o.description)
                        .unwrap_or_default()
                        .to_owned(),
                    path: if slashed(&p.path) {
                        format!("{}/", p.path)
                    } else {
                        p.path
                    },
                }
            })
            .collect();
        Self(paths)
    }

    /// The documented path a request path is, with or without its trailing slash. A fixed
    /// segment wins over a parameter, as in the router (`/auth/users/me/` is not `{id}`).
    pub fn find(&self, path: &str) -> Option<&ApiPath> {
        let wanted: Vec<&str> = segments(path).collect();
        self.0
            .iter()
            .filter(|p| {
                p.segments.len() == wanted.len()
                    && p.segments.iter().zip(&wanted).all(|(s, w)| match s {
                        Segment::Fixed(f) => f == w,
                        Segment::Param => !w.is_empty(),
                    })
            })
            .max_by_key(|p| {
                p.segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Fixed(_)))
                    .count()
            })
    }

    /// Whether some documented path starts with `prefix`.
    pub fn any_under(&self, prefix: &str) -> bool {
        self.0.iter().any(|p| p.path.starts_with(prefix))
    }
}

impl ApiPath {
    /// DRF's `OPTIONS` answer (SimpleMetadata without `actions`): 200 with the view's name,
    /// description, renderers and parsers, and `Allow`.
    fn metadata(&self) -> Response {
        let mut allow: Vec<String> = self.methods.iter().map(ToString::to_string).collect();
        allow.push("OPTIONS".into());
        let body = json!({
            "name": self.name,
            "description": self.description,
            "renders": ["application/json"],
            "parses": PARSES,
        });
        Response::builder()
            .status(StatusCode::OK)
            .header(header::ALLOW, allow.join(", "))
            .content_type("application/json")
            .body(body.to_string())
    }
}

/// Answers `OPTIONS` on every documented path (no authentication, like a CORS preflight that
/// carries none); other requests go on to the router.
pub fn options(req: &Request, table: &RouteTable) -> Option<Response> {
    if req.method() != Method::OPTIONS {
        return None;
    }
    let path = table.find(req.uri().path())?;
    let mut response = path.metadata();
    // No route answered it, so the metrics label (the documented path) is said here.
    response.set_data(DocumentedPath(path.path.clone()));
    Some(response)
}

/// The documented path of an answer given before routing (`OPTIONS`), for its metrics label.
#[derive(Clone)]
pub struct DocumentedPath(pub String);

//! The paths a Django project mounted its views at (`/api/jwt/token/`, `/api/auth/users/`...),
//! served as Tessera's endpoints: the request path is rewritten before routing, so an alias is
//! the endpoint itself (same rate limits, lockout, metrics label), never a way around them.
use poem::{
    Request,
    http::{Uri, uri::PathAndQuery},
};
use serde::Deserialize;

use super::routes::{RouteTable, slashed};

/// `[paths]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathSettings {
    /// `"/api/jwt/token/=/api/token/"`: one extra path for one endpoint.
    pub aliases: Vec<String>,
    /// `"/api/auth/=/auth/"`: every endpoint under the second prefix also under the first.
    pub prefixes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("paths: {0}")]
pub struct PathError(String);

/// The validated rewrites.
#[derive(Clone, Default)]
pub struct PathAliases {
    /// (extra path without its trailing slash, documented path)
    exact: Vec<(String, String)>,
    /// (extra prefix, Tessera prefix), both ending in `/`
    prefixes: Vec<(String, String)>,
}

fn pair(entry: &str) -> Result<(String, String), PathError> {
    let (from, to) = entry
        .split_once('=')
        .ok_or_else(|| PathError(format!("{entry:?} is not \"/extra/path/=/tessera/path/\"")))?;
    let (from, to) = (from.trim(), to.trim());
    let valid = |p: &str| {
        p.starts_with('/')
            && p.len() > 1
            && !p.contains("//")
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b))
    };
    if !valid(from) || !valid(to) {
        return Err(PathError(format!(
            "{entry:?}: paths start with / and hold only letters, digits and -_.~"
        )));
    }
    Ok((from.to_owned(), to.to_owned()))
}

fn trimmed(path: &str) -> &str {
    path.strip_suffix('/').unwrap_or(path)
}

impl PathAliases {
    /// Checks every entry: the target is a documented endpoint (or the prefix of some), the
    /// extra path answers nothing already, and no two entries claim the same path.
    pub fn new(settings: &PathSettings, table: &RouteTable) -> Result<Self, PathError> {
        let mut aliases = Self::default();
        // (path without its trailing slash, whether it is a prefix)
        let mut claimed: Vec<(String, bool)> = Vec::new();
        let mut claim = |path: &str, prefix: bool| -> Result<(), PathError> {
            let what = if prefix { "prefix" } else { "alias" };
            let key = trimmed(path).to_owned();
            let fixed = matches!(key.as_str(), "/docs" | "/openapi.json" | "/metrics");
            if table.find(path).is_some() || fixed || (prefix && table.any_under(path)) {
                return Err(PathError(format!(
                    "{what} {path:?} is already one of Tessera's paths"
                )));
            }
            let under = |p: &str, q: &str| q == p || q.starts_with(&format!("{p}/"));
            let overlaps = claimed.iter().any(|(c, c_prefix)| {
                c == &key || (*c_prefix && under(c, &key)) || (prefix && under(&key, c))
            });
            if overlaps {
                return Err(PathError(format!(
                    "{what} {path:?} overlaps another alias or prefix"
                )));
            }
            claimed.push((key, prefix));
            Ok(())
        };
        for entry in &settings.prefixes {
            let (from, to) = pair(entry)?;
            let (from, to) = (format!("{}/", trimmed(&from)), format!("{}/", trimmed(&to)));
            if !table.any_under(&to) {
                return Err(PathError(format!(
                    "prefix {to:?} holds none of Tessera's endpoints"
                )));
            }
            claim(&from, true)?;
            aliases.prefixes.push((from, to));
        }
        for entry in &settings.aliases {
            let (from, to) = pair(entry)?;
            let target = table
                .find(&to)
                .filter(|p| trimmed(&p.path) == trimmed(&to))
                .ok_or_else(|| {
                    PathError(format!(
                        "alias target {to:?} is not one of Tessera's endpoints (see /openapi.json)"
                    ))
                })?;
            claim(&from, false)?;
            aliases
                .exact
                .push((trimmed(&from).to_owned(), target.path.clone()));
        }
        Ok(aliases)
    }

    /// The Tessera path `path` stands for, if it is an alias.
    pub fn resolve(&self, path: &str) -> Option<String> {
        let key = trimmed(path);
        if let Some((_, to)) = self.exact.iter().find(|(from, _)| from == key) {
            return Some(to.clone());
        }
        self.prefixes.iter().find_map(|(from, to)| {
            let rest = path
                .strip_prefix(from.as_str())
                .or_else(|| (path == trimmed(from)).then_some(""))?;
            Some(format!("{to}{rest}"))
        })
    }

    /// The extra paths that stand for the documented `endpoint` (`/api/token/refresh/`).
    pub fn spellings_of(&self, endpoint: &str) -> Vec<String> {
        let exact = self
            .exact
            .iter()
            .filter(|(_, to)| trimmed(to) == trimmed(endpoint))
            .map(|(from, _)| format!("{from}/"));
        let prefixed = self.prefixes.iter().filter_map(|(from, to)| {
            let rest = endpoint.strip_prefix(to.as_str())?;
            Some(format!("{from}{rest}"))
        });
        exact.chain(prefixed).collect()
    }

    /// Adds every alias to an OpenAPI document's `paths`, as a copy of its endpoint.
    pub fn document(&self, doc: &mut serde_json::Value) {
        let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
            return;
        };
        let mut extra = Vec::new();
        for (from, to) in &self.exact {
            let spelled = if slashed(to) {
                format!("{from}/")
            } else {
                from.clone()
            };
            if let Some(item) = paths.get(to) {
                extra.push((spelled, item.clone()));
            }
        }
        for (from, to) in &self.prefixes {
            for (path, item) in paths.iter() {
                if let Some(rest) = path.strip_prefix(to.as_str()) {
                    extra.push((format!("{from}{rest}"), item.clone()));
                }
            }
        }
        for (n, (path, mut item)) in extra.into_iter().enumerate() {
            // operationIds stay unique: a copy gets the alias's number.
            if let Some(ops) = item.as_object_mut() {
                for op in ops.values_mut() {
                    if let Some(id) = op.get("operationId").and_then(|v| v.as_str()) {
                        op["operationId"] = format!("{id}_alias{}", n + 1).into();
                    }
                }
            }
            paths.insert(path, item);
        }
    }
}

/// Rewrites an alias to its endpoint's path (query kept) before anything routes or counts it.
pub fn rewrite(req: &mut Request, aliases: &PathAliases) {
    if let Some(path) = aliases.resolve(req.uri().path()) {
        let with_query = match req.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = PathAndQuery::try_from(with_query) {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
}

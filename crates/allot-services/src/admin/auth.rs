//! Bearer tokens with roles, checked on every `/api/` route, and the admin
//! audit of every mutating call (who, what, when, result).

use std::fmt;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::warn;

use crate::api::ApiState;

/// What a token may do; each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything.
    Viewer,
    /// Also change reps, offboard, simulate, replay, validate and dry-run rules.
    Operator,
    /// Also upload, activate and roll back rule versions.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s.trim() {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// One configured token.
#[derive(Clone)]
pub struct Token {
    pub name: String,
    pub role: Role,
    secret: String,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}, {})", self.name, self.role.as_str())
    }
}

/// Who is calling, as handlers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// The configured tokens; no tokens means auth is off (loopback only, which
/// the binary enforces at start).
#[derive(Debug, Clone, Default)]
pub struct Auth {
    tokens: Vec<Token>,
}

impl Auth {
    /// Parses `name:role:token` entries separated by commas or newlines
    /// (`#` starts a comment line). Every bad entry is reported, by position,
    /// without the secret.
    pub fn parse(spec: &str) -> Result<Auth, String> {
        let mut tokens = Vec::new();
        let mut problems = Vec::new();
        let entries = spec
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.starts_with('#'));
        for (i, entry) in entries.enumerate() {
            let parts: Vec<&str> = entry.splitn(3, ':').map(str::trim).collect();
            match parts.as_slice() {
                [name, role, secret] if !name.is_empty() && secret.len() >= 8 => {
                    match Role::parse(role) {
                        Some(role) => tokens.push(Token {
                            name: name.to_string(),
                            role,
                            secret: secret.to_string(),
                        }),
                        None => problems.push(format!(
                            "token {} ({name}): role {role:?} is not viewer, operator or admin",
                            i + 1
                        )),
                    }
                }
                [name, _, _] => problems.push(format!(
                    "token {} ({name}): needs a name and a secret of at least 8 characters",
                    i + 1
                )),
                _ => problems.push(format!("token {}: expected name:role:secret", i + 1)),
            }
        }
        if problems.is_empty() {
            Ok(Auth { tokens })
        } else {
            Err(problems.join("; "))
        }
    }

    /// Whether any token is configured.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The tokens' names and roles (never the secrets).
    pub fn names(&self) -> Vec<(String, Role)> {
        self.tokens
            .iter()
            .map(|t| (t.name.clone(), t.role))
            .collect()
    }

    /// The caller a presented token belongs to. Every token is compared,
    /// each in constant time, whichever matches: the time taken says
    /// nothing about which token (or how much of one) was right.
    fn caller(&self, presented: &str) -> Option<Caller> {
        let mut found = None;
        for t in &self.tokens {
            let hit = crate::secret::same(presented.as_bytes(), t.secret.as_bytes());
            if hit && found.is_none() {
                found = Some(Caller {
                    name: t.name.clone(),
                    role: t.role,
                });
            }
        }
        found
    }
}

/// Paths outside auth: the OpenAPI document.
const PUBLIC_API: [&str; 1] = ["/api/openapi.json"];

/// POST routes that change nothing (not audited).
const READ_ONLY_POSTS: [&str; 3] = ["/api/rules/validate", "/api/simulate", "/api/replay"];

/// The role a call needs; `None` when the path is public.
pub fn required_role(method: &Method, path: &str) -> Option<Role> {
    if !path.starts_with("/api/") || PUBLIC_API.contains(&path) {
        return None;
    }
    if method == Method::GET || method == Method::HEAD {
        return Some(Role::Viewer);
    }
    let admin = path == "/api/rules/versions"
        || path == "/api/rules/rollback"
        || (path.starts_with("/api/rules/versions/") && path.ends_with("/activate"));
    Some(if admin { Role::Admin } else { Role::Operator })
}

fn denied(status: StatusCode, message: String) -> Response {
    let mut r = (
        status,
        Json(json!({ "status": "error", "message": message })),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"allot\""),
        );
    }
    r
}

/// The auth layer over the whole API router. Every refusal (401, 403) is
/// audited with who was refused (the token's name, or that there was none
/// or an unknown one), the route, the status and why; every change that
/// gets through is audited with its outcome.
pub async fn layer(State(s): State<ApiState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let action = format!(
        "{method} {}",
        req.uri()
            .path_and_query()
            .map_or(path.as_str(), |p| p.as_str())
    );
    if !s.admin.auth.enabled() {
        if let Some(why) = foreign(&s.admin.hosts, &method, req.headers()) {
            warn!(path = %path, reason = %why, "request refused by the tokenless API");
            let r = denied(StatusCode::FORBIDDEN, why);
            return audit(&s, "(no token)", "none", action, r).await;
        }
    }
    let Some(needed) = required_role(&method, &path) else {
        return next.run(req).await;
    };
    let auth = &s.admin.auth;
    let caller = if !auth.enabled() {
        Caller {
            name: "anonymous".into(),
            role: Role::Admin,
        }
    } else {
        let Some(presented) = crate::secret::bearer(req.headers()) else {
            let r = denied(
                StatusCode::UNAUTHORIZED,
                "missing bearer token: send Authorization: Bearer <token>".into(),
            );
            return audit(&s, "(no token)", "none", action, r).await;
        };
        match auth.caller(presented) {
            Some(c) => c,
            None => {
                warn!(path = %path, "api call with an unknown token");
                let r = denied(StatusCode::UNAUTHORIZED, "invalid bearer token".into());
                return audit(&s, "(unknown token)", "none", action, r).await;
            }
        }
    };
    if caller.role < needed {
        let r = denied(
            StatusCode::FORBIDDEN,
            format!(
                "{method} {path} needs role {} or higher; token {} has role {}",
                needed.as_str(),
                caller.name,
                caller.role.as_str()
            ),
        );
        return audit(&s, &caller.name, caller.role.as_str(), action, r).await;
    }
    let audited = method != Method::GET
        && method != Method::HEAD
        && !READ_ONLY_POSTS.contains(&path.as_str());
    req.extensions_mut().insert(caller.clone());
    let response = next.run(req).await;
    if !audited {
        return response;
    }
    audit(&s, &caller.name, caller.role.as_str(), action, response).await
}

/// Why an API without tokens refuses a request, if it does. Open on
/// loopback means any web page the operator's browser shows can reach it,
/// so: a `Host` that is not one of `hosts` is refused (DNS rebinding); and a
/// change (not `GET`/`HEAD`) is refused when it comes from another origin
/// (`Origin` naming another host) or in a type a page may send without
/// asking (a form, `text/plain`): the API's changes are JSON (and TOML for
/// rule files).
fn foreign(hosts: &[String], method: &Method, headers: &axum::http::HeaderMap) -> Option<String> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if !hosts.is_empty() {
        let host = text(header::HOST).unwrap_or("").to_ascii_lowercase();
        if !hosts.contains(&host) {
            return Some(format!(
                "Host {host:?} is not one this API answers (api.allowed_hosts: {})",
                hosts.join(", ")
            ));
        }
    }
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        return None;
    }
    if let Some(origin) = text(header::ORIGIN) {
        let host = origin
            .split_once("://")
            .map_or(origin, |(_, rest)| rest)
            .trim_end_matches('/')
            .to_ascii_lowercase();
        let own = if hosts.is_empty() {
            text(header::HOST).is_some_and(|h| h.eq_ignore_ascii_case(&host))
        } else {
            hosts.contains(&host)
        };
        if !own {
            return Some(format!(
                "cross-site request refused: Origin {origin} is not this API's"
            ));
        }
    }
    if let Some(ct) = text(header::CONTENT_TYPE) {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        const TAKEN: [&str; 4] = [
            "application/json",
            "application/toml",
            "application/x-ndjson",
            "application/jsonl",
        ];
        if !TAKEN.contains(&essence.as_str()) {
            return Some(format!(
                "Content-Type {ct} is not taken by the API: send application/json"
            ));
        }
    }
    None
}

/// Records the call with its status and message, then returns the response.
async fn audit(
    s: &ApiState,
    who: &str,
    role: &str,
    action: String,
    response: Response,
) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, 16 << 20).await.unwrap_or_default();
    let detail = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let change = parts.extensions.get::<super::AuditChange>().cloned();
    let entry = allot_store::AdminAuditEntry {
        v: 1,
        at: crate::now_ms(),
        who: who.to_string(),
        role: role.to_string(),
        action,
        status: parts.status.as_u16(),
        detail,
        before: change.as_ref().and_then(|c| c.before.clone()),
        after: change.and_then(|c| c.after),
    };
    let store = s.store.clone();
    let written = tokio::task::spawn_blocking(move || store.append_admin_audit(&entry)).await;
    if !matches!(written, Ok(Ok(()))) {
        warn!("cannot write the admin audit entry");
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Shared, cheap to clone.
pub type SharedAuth = Arc<Auth>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_specs() {
        let a = Auth::parse("ana:admin:aaaaaaaaaa, vic:viewer:vvvvvvvvvv\n# note\n").unwrap();
        assert_eq!(
            a.names(),
            [
                ("ana".to_string(), Role::Admin),
                ("vic".to_string(), Role::Viewer)
            ]
        );
        assert_eq!(a.caller("vvvvvvvvvv").unwrap().name, "vic");
        assert!(a.caller("nope").is_none());
        assert!(!Auth::parse("").unwrap().enabled());
        let cases = [
            ("ana:boss:aaaaaaaaaa", "role \"boss\""),
            ("ana:admin:short", "at least 8"),
            ("ana", "expected name:role:secret"),
        ];
        for (spec, want) in cases {
            let e = Auth::parse(spec).unwrap_err();
            assert!(e.contains(want), "{spec}: {e}");
            assert!(!e.contains("aaaaaaaaaa"), "{e}");
        }
    }

    #[test]
    fn roles_per_route() {
        let cases = [
            (Method::GET, "/healthz", None),
            (Method::GET, "/api/openapi.json", None),
            (Method::GET, "/api/overview", Some(Role::Viewer)),
            (Method::POST, "/api/simulate", Some(Role::Operator)),
            (Method::PUT, "/api/reps/ana/ooo", Some(Role::Operator)),
            (
                Method::POST,
                "/api/rules/versions/v2/dry-run",
                Some(Role::Operator),
            ),
            (
                Method::POST,
                "/api/rules/versions/v2/activate",
                Some(Role::Admin),
            ),
            (Method::POST, "/api/rules/versions", Some(Role::Admin)),
            (Method::POST, "/api/rules/rollback", Some(Role::Admin)),
            (Method::POST, "/webhooks/native", None),
        ];
        for (m, path, want) in cases {
            assert_eq!(required_role(&m, path), want, "{m} {path}");
        }
    }
}

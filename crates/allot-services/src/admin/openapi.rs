//! The OpenAPI 3.1 document (`GET /api/openapi.json`), built from one table
//! of routes. Tests call every route of the table on the real router, and
//! check the table against the routes the routers register.

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

/// How a route takes its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    Json(&'static str),
    Toml,
}

/// One route: method, path (axum syntax), role, summary, body, query parameters.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    /// `None`: public.
    pub role: Option<&'static str>,
    pub summary: &'static str,
    pub body: Body,
    pub query: &'static [(&'static str, &'static str)],
}

const fn r(
    method: &'static str,
    path: &'static str,
    role: Option<&'static str>,
    summary: &'static str,
    body: Body,
    query: &'static [(&'static str, &'static str)],
) -> Route {
    Route {
        method,
        path,
        role,
        summary,
        body,
        query,
    }
}

const V: Option<&str> = Some("viewer");
const O: Option<&str> = Some("operator");
const A: Option<&str> = Some("admin");

/// Every route of [`crate::api::router`], [`super::router`] and the dashboard's.
pub const ROUTES: &[Route] = &[
    r("get", "/healthz", None, "Liveness", Body::None, &[]),
    r("get", "/readyz", None, "Readiness: the store answers", Body::None, &[]),
    r("get", "/metrics", None, "Prometheus metrics", Body::None, &[]),
    r("get", "/api/openapi.json", None, "This document", Body::None, &[]),
    r("get", "/", None, "The operations dashboard (page)", Body::None, &[]),
    r("get", "/dashboard", None, "The operations dashboard (page)", Body::None, &[]),
    r("get", "/assets/{file}", None, "Dashboard assets, compiled in", Body::None, &[]),
    r("get", "/api/overview", V, "Everything the dashboard shows, in one answer", Body::None, &[]),
    r("get", "/api/records/{id}/decisions", V, "Every decision about a record, with its explanation", Body::None,
        &[("from", "epoch ms, inclusive"), ("to", "epoch ms, exclusive")]),
    r("get", "/api/decisions/recent", V, "The newest decisions", Body::None, &[("limit", "at most 1000; default 50")]),
    r("get", "/api/rules", V, "The rule version in force: text, counts, warnings", Body::None, &[]),
    r("post", "/api/rules/validate", O, "Validate a rules file; 422 lists file:line:col diagnostics", Body::Toml,
        &[("name", "file name used in diagnostics")]),
    r("get", "/api/rules/versions", V, "Every stored version with its state (active, scheduled, draft, inactive) and dry run", Body::None, &[]),
    r("post", "/api/rules/versions", A, "Upload a rules file as a draft version (201; 409 when the id exists with other text; 422 when invalid)", Body::Toml,
        &[("name", "file name used in diagnostics")]),
    r("get", "/api/rules/versions/{id}", V, "One version with its text", Body::None, &[]),
    r("post", "/api/rules/versions/{id}/dry-run", O, "Decide every known record under the active version and this one: the allot realign --json report; remembered for activation", Body::None, &[]),
    r("post", "/api/rules/versions/{id}/activate", A, "Activate from effective_at (default now); 409 without a dry run against the active version; the known records are re-decided at rules.realign_rate_per_sec", Body::Json("{\"effective_at\"?: RFC 3339 | epoch ms}"), &[]),
    r("post", "/api/rules/rollback", A, "Activate the previously active version now", Body::None, &[]),
    r("get", "/api/rules/realignment", V, "Progress of the last realignment", Body::None, &[]),
    r("post", "/api/simulate", O, "Decide a record under the active rules and the current state; nothing changes", Body::Json("a record: {\"object\",\"id\",\"owner\"?,\"fields\"}"),
        &[("now", "decision time, RFC 3339")]),
    r("post", "/api/replay", O, "Decide the raw log entries received in [from, to) again in a scratch state; the decisions whose owner would differ", Body::Json("{\"from\", \"to\", \"rules\"?: version id, \"rules_toml\"?: text}"), &[]),
    r("get", "/api/reps", V, "Every rep: active, out of office, working hours, open and today's counts, caps, eligible now and why not", Body::None, &[]),
    r("put", "/api/reps/{id}/ooo", O, "Out of office from `from` (default now) until `until`", Body::Json("{\"from\"?, \"until\"}"), &[]),
    r("delete", "/api/reps/{id}/ooo", O, "Drop the out-of-office windows set through the API", Body::None, &[]),
    r("put", "/api/reps/{id}/capacity", O, "Override caps (null lifts a cap; reset: true returns to the rule file)", Body::Json("{\"max_open\"?: n|null, \"max_per_day\"?: n|null, \"reset\"?: bool}"), &[]),
    r("put", "/api/reps/{id}/active", O, "Activate or deactivate a rep (null: as the rule file says)", Body::Json("{\"active\": bool|null}"), &[]),
    r("post", "/api/reps/{id}/offboard", O, "Where the rep's open records would go (preview, the default); preview=false deactivates the rep and re-decides them", Body::None,
        &[("preview", "true (default) or false")]),
    r("post", "/api/sync", O, "Read the CRM's book into the store in the background (records, owners, users), paced under the request budget, resumable; incremental since the last complete run unless full or since; 422 while a run is under way", Body::Json("{\"crm\"?: \"salesforce\"|\"hubspot\", \"objects\"?: [\"account\",\"lead\",\"contact\"], \"since\"?: RFC 3339 | epoch ms, \"full\"?: bool, \"decide\"?: bool}"), &[]),
    r("get", "/api/sync", V, "The sync run in progress (or the last), every object's cursor (records, pages, since, done, complete_as_of), pending resync requests (GAP_OVERFLOW, wildcard record ids)", Body::None, &[]),
    r("get", "/api/writes/failed", V, "Owner changes the writer gave up on, in id order, with counts per error code", Body::None,
        &[("crm", "salesforce, hubspot or native"), ("object", "lead, account or contact"), ("code", "inactive_owner, invalid_reference, not_found, rejected, gave_up"),
          ("after", "id of the last item of the previous page (its next)"), ("limit", "at most 1000; default 50")]),
    r("post", "/api/writes/failed/{id}/retry", O, "Decide the record again (its owner may have changed) and queue the owner picked; the failed write is removed", Body::None, &[]),
    r("post", "/api/writes/failed/{id}/discard", O, "Remove a failed write without writing it", Body::None, &[]),
    r("get", "/api/admin/audit", V, "Mutating admin calls: who, what, when, result", Body::None, &[("limit", "default 50")]),
];

fn error_response(what: &str) -> Value {
    json!({ "description": what, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// The document.
pub fn build() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let mut params: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        params.extend(route.query.iter().map(|(name, what)| {
            json!({ "name": name, "in": "query", "required": false, "description": what, "schema": { "type": "string" } })
        }));
        let mut responses = Map::new();
        responses.insert(
            "200".into(),
            json!({ "description": "OK", "content": { "application/json": {} } }),
        );
        responses.insert(
            "400".into(),
            error_response("Bad input, named in the message"),
        );
        if route.role.is_some() {
            responses.insert(
                "401".into(),
                error_response("Missing or invalid bearer token"),
            );
            responses.insert(
                "403".into(),
                error_response(
                    "The token's role is not enough (the message names the role needed)",
                ),
            );
        }
        let mut op = json!({
            "summary": route.summary,
            "operationId": format!("{}{}", route.method, route.path.replace(['/', '{', '}', '.', '-'], "_")),
            "parameters": params,
            "responses": responses,
        });
        match route.role {
            Some(role) => {
                op["security"] = json!([{ "bearer": [] }]);
                op["x-allot-role"] = json!(role);
            }
            None => op["security"] = json!([]),
        }
        match route.body {
            Body::None => {}
            Body::Toml => {
                op["requestBody"] = json!({ "required": true, "content": { "application/toml": { "schema": { "type": "string" } } } })
            }
            Body::Json(what) => {
                op["requestBody"] = json!({ "required": true, "description": what, "content": { "application/json": { "schema": { "type": "object" } } } })
            }
        }
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        entry[route.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "allot admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Rules lifecycle, simulation, reps, offboarding, replay, failed writes and audit. Bearer tokens with roles viewer < operator < admin; every mutating call is audited.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["status", "message"],
                    "properties": { "status": { "const": "error" }, "message": { "type": "string" } },
                },
            },
        },
    })
}

/// `GET /api/openapi.json`.
pub async fn document() -> Response {
    Json(build()).into_response()
}

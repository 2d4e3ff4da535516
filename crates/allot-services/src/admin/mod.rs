//! The admin API: rules lifecycle, simulation, reps, offboarding, replay,
//! failed writes, the admin audit, and the OpenAPI document describing
//! every route.
//!
//! Reads go to the store; changes to what the engine decides with go to the
//! pipeline owner as control commands ([`crate::control`]). Auth
//! ([`auth::layer`]) wraps the whole API router.

pub mod auth;
pub mod openapi;
mod records;
mod reps;
mod rules;
mod sync;
pub(crate) mod writes;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use allot_core::Millis;
use allot_rules::overrides::{with_overrides, RepOverride};
use allot_rules::RuleSet;
use allot_store::{RuleVersion, Store, OVERRIDE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::json;

use crate::api::ApiState;
use crate::control::{ControlCommand, ControlError, ControlHandle};

pub use auth::{Auth, Caller, Role};

/// What the admin routes need beyond the store.
#[derive(Clone, Default)]
pub struct AdminCtx {
    /// Tokens and roles; empty = auth off.
    pub auth: Arc<Auth>,
    /// Where rule activations and rep changes go.
    pub control: ControlHandle,
    /// Compiled rule versions by id (versions are immutable).
    compiled: Arc<Mutex<HashMap<String, Arc<RuleSet>>>>,
    /// `Host` values (lower case, with or without the port) an API without
    /// tokens answers; empty: any (see [`auth::layer`]).
    pub hosts: Arc<Vec<String>>,
}

impl AdminCtx {
    pub fn new(auth: Auth, control: ControlHandle) -> AdminCtx {
        AdminCtx {
            auth: Arc::new(auth),
            control,
            compiled: Arc::default(),
            hosts: Arc::default(),
        }
    }

    /// Answers, without tokens, only requests for these hosts.
    pub fn with_hosts(mut self, hosts: Vec<String>) -> AdminCtx {
        self.hosts = Arc::new(hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect());
        self
    }
}

/// Admin routes, merged into [`crate::api::router`].
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/rules", get(rules::active))
        .route("/api/rules/validate", post(rules::validate))
        .route(
            "/api/rules/versions",
            get(rules::versions).post(rules::upload),
        )
        .route("/api/rules/versions/{id}", get(rules::version))
        .route("/api/rules/versions/{id}/dry-run", post(rules::dry_run))
        .route("/api/rules/versions/{id}/activate", post(rules::activate))
        .route("/api/rules/rollback", post(rules::rollback))
        .route("/api/rules/realignment", get(rules::realignment))
        .route("/api/simulate", post(records::simulate))
        .route("/api/replay", post(records::replay))
        .route("/api/reps", get(reps::list))
        .route(
            "/api/reps/{id}/ooo",
            put(reps::set_ooo).delete(reps::clear_ooo),
        )
        .route("/api/reps/{id}/capacity", put(reps::capacity))
        .route("/api/reps/{id}/active", put(reps::active))
        .route("/api/reps/{id}/offboard", post(reps::offboard))
        .route("/api/admin/audit", get(audit))
        .route("/api/sync", get(sync::status).post(sync::start))
        .route("/api/writes/failed", get(writes::list))
        .route("/api/writes/failed/{id}/retry", post(writes::retry))
        .route("/api/writes/failed/{id}/discard", post(writes::discard))
        .with_state(state)
}

/// An error answer: `{"status":"error","message":…}` and maybe more fields.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub body: serde_json::Value,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        body: json!({ "status": "error", "message": message.into() }),
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
    error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// Runs store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(internal(format!("worker: {e}"))))
}

/// What a change touched, before and after it: the audit records both
/// (set on the response by [`command`], read by the audit middleware).
#[derive(Debug, Clone)]
pub(crate) struct AuditChange {
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// The state `cmd` changes, as the store holds it now.
fn touched(store: &Store, cmd: &ControlCommand) -> Option<serde_json::Value> {
    let now = crate::now_ms();
    match cmd {
        ControlCommand::ActivateRules { version_id, .. } => {
            let active = store.active_rule_version(now).ok().flatten();
            let version = store.rule_version(version_id).ok().flatten();
            Some(json!({
                "active_version": active.map(|a| a.version_id),
                "version": version.map(|v| json!({
                    "version_id": v.version_id, "effective_at": v.effective_at,
                    "activated_by": v.activated_by,
                })),
            }))
        }
        ControlCommand::SetRepOverride { rep, .. } | ControlCommand::Offboard { rep, .. } => {
            let over: Option<RepOverride> = store.admin_get(OVERRIDE, rep).ok().flatten();
            Some(json!({ "rep": rep, "override": over }))
        }
        ControlCommand::Redecide { records, .. } => Some(json!(records
            .iter()
            .map(|t| {
                let owner = store
                    .record(t.object, &t.record_id)
                    .ok()
                    .flatten()
                    .and_then(|(r, _)| r.owner);
                json!({"object": t.object, "record_id": t.record_id, "owner": owner})
            })
            .collect::<Vec<_>>())),
        ControlCommand::Sync { .. } => None,
    }
}

/// A control command's answer as a response, with what it changed.
pub(crate) async fn command(s: &ApiState, cmd: ControlCommand) -> Response {
    let snapshot = |cmd: &ControlCommand| {
        let (store, cmd) = (s.store.clone(), cmd.clone());
        async move {
            tokio::task::spawn_blocking(move || touched(&store, &cmd))
                .await
                .ok()
                .flatten()
        }
    };
    let before = snapshot(&cmd).await;
    let mut response = match s.admin.control.request(cmd.clone()).await {
        Ok(v) => Json(v).into_response(),
        Err(ControlError::Unavailable(why)) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{why}: changes need the process that runs the pipeline (allot run)"),
            )
            .into_response()
        }
        Err(ControlError::Refused(why)) => {
            return error(StatusCode::UNPROCESSABLE_ENTITY, why).into_response()
        }
    };
    let after = snapshot(&cmd).await;
    response
        .extensions_mut()
        .insert(AuditChange { before, after });
    response
}

/// A stored version compiled (cached by id).
pub(crate) fn compile(ctx: &AdminCtx, v: &RuleVersion) -> Result<Arc<RuleSet>, ApiError> {
    if let Some(r) = ctx
        .compiled
        .lock()
        .ok()
        .and_then(|m| m.get(&v.version_id).cloned())
    {
        return Ok(r);
    }
    let rules = RuleSet::from_toml(&v.toml, &v.version_id)
        .map(Arc::new)
        .map_err(|e| internal(format!("stored rule version {}: {e}", v.version_id)))?;
    if let Ok(mut m) = ctx.compiled.lock() {
        m.insert(v.version_id.clone(), rules.clone());
    }
    Ok(rules)
}

/// The version in force at `now`.
pub(crate) fn active_version(store: &Store, now: Millis) -> Result<RuleVersion, ApiError> {
    store
        .active_rule_version(now)
        .map_err(internal)?
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "no rule version is active"))
}

/// Rep overrides in the store.
pub(crate) fn overrides(store: &Store) -> Result<BTreeMap<String, RepOverride>, ApiError> {
    Ok(store
        .admin_all::<RepOverride>(OVERRIDE)
        .map_err(internal)?
        .into_iter()
        .collect())
}

/// The active rules with the rep overrides laid over them, as the pipeline decides.
pub(crate) fn effective(
    ctx: &AdminCtx,
    store: &Store,
    now: Millis,
) -> Result<(Arc<RuleSet>, BTreeMap<String, RepOverride>), ApiError> {
    let base = compile(ctx, &active_version(store, now)?)?;
    let over = overrides(store)?;
    Ok((Arc::new(with_overrides(&base, &over)), over))
}

#[derive(serde::Deserialize)]
struct Limit {
    limit: Option<usize>,
}

/// The newest mutating admin calls: who, what, when, result.
async fn audit(
    axum::extract::State(s): axum::extract::State<ApiState>,
    axum::extract::Query(l): axum::extract::Query<Limit>,
) -> Response {
    let store = s.store.clone();
    let limit = l.limit.unwrap_or(50).min(10_000);
    match blocking(move || store.admin_audit(limit).map_err(internal)).await {
        Ok(entries) => Json(json!({ "entries": entries })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Parses a time given as RFC 3339 or epoch milliseconds; names `what` when bad.
pub(crate) fn parse_time(what: &str, v: &serde_json::Value) -> Result<Millis, ApiError> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => allot_rules::rfc3339(s),
        _ => None,
    }
    .ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            format!(
                "{what}: {v} is not an RFC 3339 time (2026-12-24T09:00:00Z) or epoch milliseconds"
            ),
        )
    })
}

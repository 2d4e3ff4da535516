//! The read side of the HTTP API every mode serves: health, metrics, and
//! "why does X own this record?" from the audit trail.

use std::sync::Arc;

use allot_store::Store;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<Store>,
    pub metrics: Metrics,
    /// Auth, control commands and compiled rules of the admin routes.
    pub admin: crate::admin::AdminCtx,
}

impl ApiState {
    /// Auth off, no pipeline owner to command (reads only).
    pub fn new(store: Arc<Store>, metrics: Metrics) -> ApiState {
        ApiState {
            store,
            metrics,
            admin: crate::admin::AdminCtx::default(),
        }
    }
}

/// Every API route: read side, admin, dashboard; auth over everything
/// under `/api/` (see [`crate::admin::auth`]).
pub fn router(state: ApiState) -> Router {
    let layer = axum::middleware::from_fn_with_state(state.clone(), crate::admin::auth::layer);
    let routes = probes(state.store.clone(), state.metrics.clone(), None)
        .route("/api/records/{id}/decisions", get(explain))
        .route("/api/decisions/recent", get(recent))
        .with_state(state.clone())
        .merge(crate::admin::router(state.clone()))
        .merge(crate::dashboard::router(state));
    limited(routes, API_BODY_LIMIT).layer(layer)
}

/// The largest request body the API takes (a rules file of 100,000
/// territories, a replay file).
pub const API_BODY_LIMIT: usize = 32 << 20;

/// `router` taking bodies of at most `limit` bytes; a larger one is
/// answered 413 in the API's error shape, naming the limit and the route.
pub fn limited(router: Router, limit: usize) -> Router {
    router
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| async move {
                let route = req.uri().path().to_string();
                let res = next.run(req).await;
                if res.status() != StatusCode::PAYLOAD_TOO_LARGE {
                    return res;
                }
                error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "request body over the limit of {} bytes ({} MiB) for {route}",
                        limit,
                        limit >> 20
                    ),
                )
            },
        ))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "status": "error", "message": message.into() })),
    )
        .into_response()
}

/// What liveness, readiness and metrics read.
#[derive(Clone)]
struct Probe {
    store: Arc<Store>,
    metrics: Metrics,
    /// Named in the bodies by the stages of microservice mode.
    stage: Option<&'static str>,
}

/// `/healthz`, `/readyz` and `/metrics`: what every allot process serves
/// (the stages of microservice mode other than api serve only these).
pub fn probes<S: Clone + Send + Sync + 'static>(
    store: Arc<Store>,
    metrics: Metrics,
    stage: Option<&'static str>,
) -> Router<S> {
    Router::new()
        .route("/healthz", get(healthy))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .with_state(Probe {
            store,
            metrics,
            stage,
        })
}

async fn healthy(State(p): State<Probe>) -> Response {
    let mut body = json!({ "status": "ok" });
    if let Some(stage) = p.stage {
        body["stage"] = json!(stage);
    }
    Json(body).into_response()
}

async fn ready(State(p): State<Probe>) -> Response {
    match p.store.record_count() {
        Ok(n) => {
            let mut body = json!({ "status": "ready", "records": n });
            if let Some(stage) = p.stage {
                body["stage"] = json!(stage);
            }
            let warnings = p.metrics.readiness.warnings();
            if !warnings.is_empty() {
                body["warnings"] = json!(warnings);
            }
            Json(body).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}")),
    }
}

async fn metrics_text(State(p): State<Probe>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        p.metrics.render(),
    )
        .into_response()
}

#[derive(Deserialize)]
struct Range {
    from: Option<i64>,
    to: Option<i64>,
}

/// Every decision about one record in a time range, oldest first, each with its explanation.
async fn explain(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(r): Query<Range>,
) -> Response {
    match s
        .store
        .audit_for(&id, r.from.unwrap_or(0), r.to.unwrap_or(i64::MAX))
    {
        Ok(list) if list.is_empty() => error(
            StatusCode::NOT_FOUND,
            format!("no decision recorded for record {id}"),
        ),
        Ok(list) => Json(json!({ "record_id": id, "decisions": list })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("store: {e}")),
    }
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn recent(State(s): State<ApiState>, Query(l): Query<Limit>) -> Response {
    match s.store.recent_audit(l.limit.unwrap_or(50).min(1000)) {
        Ok(list) => Json(json!({ "decisions": list })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("store: {e}")),
    }
}

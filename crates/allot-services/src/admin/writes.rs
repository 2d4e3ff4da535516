//! Failed writes: the owner changes the writer gave up on, listed with
//! filters and paging, retried (the pipeline owner decides the record again)
//! or discarded.

use allot_core::{Crm, ObjectKind};
use allot_store::{FailedFilter, FailedWrite, FailedWriteId, Store};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{blocking, command, error, internal, ApiError, Caller};
use crate::api::ApiState;
use crate::control::{ControlCommand, RedecideTarget};

/// Items per page when `limit` is absent, and the most a page holds.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

/// One failed write as the API shows it.
pub(crate) fn row(f: &FailedWrite) -> Value {
    let c = &f.change;
    json!({
        "id": FailedWriteId::of(f).to_string(),
        "crm": c.crm.map(Crm::as_str),
        "object": c.object,
        "record_id": c.record_id,
        "owner": c.owner,
        "previous_owner": c.previous_owner,
        "code": f.code,
        "message": f.reason,
        "failed_at": f.failed_at,
        "attempts": f.attempts,
        "decided_at": c.decided_at,
        "event_id": c.event_id,
    })
}

/// The failed writes per error code and their total.
pub(crate) fn counts(store: &Store) -> Result<Value, ApiError> {
    let counts = store.failed_write_counts().map_err(internal)?;
    let total: u64 = counts.values().sum();
    Ok(json!({ "counts": counts, "total": total }))
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    crm: Option<String>,
    object: Option<String>,
    code: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

fn bad(message: String) -> ApiError {
    error(StatusCode::BAD_REQUEST, message)
}

fn filter(q: &ListQuery) -> Result<FailedFilter, ApiError> {
    let crm = match q.crm.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            [Crm::Salesforce, Crm::Hubspot, Crm::Native]
                .into_iter()
                .find(|k| k.as_str() == c)
                .ok_or_else(|| bad(format!("crm: {c:?} is not salesforce, hubspot or native")))?,
        ),
    };
    let object = match q.object.as_deref().filter(|o| !o.is_empty()) {
        None => None,
        Some(o) => Some(
            ObjectKind::parse(o)
                .ok_or_else(|| bad(format!("object: {o:?} is not lead, account or contact")))?,
        ),
    };
    Ok(FailedFilter {
        crm,
        object,
        code: q.code.clone().filter(|c| !c.is_empty()),
    })
}

fn parse_id(text: &str) -> Result<FailedWriteId, ApiError> {
    FailedWriteId::parse(text).map_err(bad)
}

/// `GET /api/writes/failed?crm=&object=&code=&after=&limit=`: a page of
/// failed writes in id order, the `next` cursor, and the counts per code.
pub(crate) async fn list(State(s): State<ApiState>, Query(q): Query<ListQuery>) -> Response {
    let store = s.store.clone();
    let r = blocking(move || {
        let filter = filter(&q)?;
        let after = q.after.as_deref().map(parse_id).transpose()?;
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let page = store
            .failed_writes_page(&filter, after.as_ref(), limit)
            .map_err(internal)?;
        let mut v = counts(&store)?;
        v["items"] = page.items.iter().map(row).collect();
        v["next"] = json!(page.next.map(|n| n.to_string()));
        Ok(v)
    })
    .await;
    r.map(|v| Json(v).into_response())
        .unwrap_or_else(IntoResponse::into_response)
}

/// The failed write `id`, or 404 naming it.
async fn lookup(s: &ApiState, id: &str) -> Result<(FailedWriteId, FailedWrite), ApiError> {
    let id = parse_id(id)?;
    let store = s.store.clone();
    blocking(move || match store.failed_write(&id).map_err(internal)? {
        Some(f) => Ok((id, f)),
        None => Err(error(
            StatusCode::NOT_FOUND,
            format!("no failed write {id} (already retried or discarded?)"),
        )),
    })
    .await
}

/// `POST /api/writes/failed/{id}/retry`: the pipeline owner decides the
/// record again and queues the owner it picks; the failed write goes.
pub(crate) async fn retry(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let (id, f) = match lookup(&s, &id).await {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let target = RedecideTarget {
        object: f.change.object,
        record_id: f.change.record_id.clone(),
        failed_write: Some(id.to_string()),
    };
    let cmd = ControlCommand::Redecide {
        records: vec![target],
        by: caller.name,
    };
    command(&s, cmd).await
}

/// `POST /api/writes/failed/{id}/discard`: removes the failed write; the
/// answer holds what was removed.
pub(crate) async fn discard(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let store = s.store.clone();
    let r = blocking(move || match store.failed_write_discard(&id).map_err(internal)? {
        Some(f) => Ok(json!({
            "status": "ok",
            "message": format!("failed write {id} discarded (owner {} was not written)", f.change.owner),
            "discarded": row(&f),
        })),
        None => Err(error(
            StatusCode::NOT_FOUND,
            format!("no failed write {id} (already retried or discarded?)"),
        )),
    })
    .await;
    r.map(|v| Json(v).into_response())
        .unwrap_or_else(IntoResponse::into_response)
}

//! `GET /crm/v3/objects/{type}?limit=&after=&properties=`: the whole book,
//! 100 records a page at most, `paging.next.after` until the last page.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::objects::{bad_type, object_json, object_kind};
use super::{gate, reply};
use crate::Shared;

/// HubSpot's largest list page.
const MAX_LIMIT: usize = 100;

pub(crate) async fn list(
    AxState(shared): AxState<Arc<Shared>>,
    Path(object_type): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    shared.delay().await;
    let mut st = shared.lock();
    let path = format!("/crm/v3/objects/{object_type}");
    let rate = match gate(&mut st, &shared, "hs.objects.list", "GET", &path, &headers) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let Some(object) = object_kind(&object_type) else {
        return bad_type(&mut st, &rate, &object_type);
    };
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(10)
        .clamp(1, MAX_LIMIT);
    let after = params.get("after").cloned().unwrap_or_default();
    let names: Vec<&str> = params
        .get("properties")
        .map(|p| {
            p.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let selected = (!names.is_empty()).then_some(&names[..]);
    let page: Vec<(&String, Value)> = st
        .hs_records
        .range((object, after.clone())..)
        .filter(|((o, id), _)| *o == object && *id != after)
        .take(limit + 1)
        .map(|((_, id), props)| (id, object_json(id, props, selected)))
        .collect();
    let more = page.len() > limit;
    let results: Vec<Value> = page.iter().take(limit).map(|(_, v)| v.clone()).collect();
    let mut body = json!({"results": results});
    if more {
        let last = page[limit - 1].0.clone();
        body["paging"] = json!({"next": {"after": last, "link": format!("{path}?after={last}")}});
    }
    reply(Some(&rate), StatusCode::OK, body)
}

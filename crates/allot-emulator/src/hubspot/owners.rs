//! `GET /crm/v3/owners?limit=&after=&email=&archived=` with cursor paging.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::{gate, reply};
use crate::seed::HsOwner;
use crate::Shared;

/// HubSpot's largest page of owners.
const MAX_LIMIT: usize = 500;

fn owner_json(o: &HsOwner) -> Value {
    json!({
        "id": o.id,
        "email": o.email,
        "type": "PERSON",
        "firstName": o.first_name,
        "lastName": o.last_name,
        "userId": o.user_id,
        "userIdIncludingInactive": o.user_id,
        "createdAt": "2023-01-04T10:00:00.000Z",
        "updatedAt": "2024-02-01T10:00:00.000Z",
        "archived": o.archived,
        "teams": [],
    })
}

pub(crate) async fn owners(
    AxState(shared): AxState<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    shared.delay().await;
    let mut st = shared.lock();
    let rate = match gate(
        &mut st,
        &shared,
        "hs.owners",
        "GET",
        "/crm/v3/owners",
        &headers,
    ) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, MAX_LIMIT);
    let offset = params
        .get("after")
        .and_then(|a| a.parse::<usize>().ok())
        .unwrap_or(0);
    let archived = params.get("archived").is_some_and(|a| a == "true");
    let email = params.get("email").filter(|e| !e.is_empty());
    let matching: Vec<&HsOwner> = st
        .hs_owners
        .iter()
        .filter(|o| o.archived == archived)
        .filter(|o| email.is_none_or(|e| o.email.eq_ignore_ascii_case(e)))
        .collect();
    let results: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|o| owner_json(o))
        .collect();
    let mut body = json!({ "results": results });
    let next = offset + limit;
    if next < matching.len() {
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        body["paging"] = json!({"next": {
            "after": next.to_string(),
            "link": format!("http://{host}/crm/v3/owners?after={next}&limit={limit}&archived={archived}"),
        }});
    }
    reply(Some(&rate), StatusCode::OK, body)
}

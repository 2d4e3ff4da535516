//! CRM v3 objects: read, update, batch update (contacts and companies).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use allot_core::{Crm, ObjectKind};
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{error, gate, reply, RateHeaders};
use crate::events::{iso_millis, HsSource};
use crate::state::{now_ms, State};
use crate::writes::{hs_base, hs_update};
use crate::Shared;

/// At most this many inputs per batch call.
const MAX_INPUTS: usize = 100;
/// The owner property.
const OWNER: &str = "hubspot_owner_id";

/// `contacts` / `companies` (or `0-1` / `0-2`).
pub(super) fn object_kind(object_type: &str) -> Option<ObjectKind> {
    ObjectKind::parse(object_type).filter(|k| *k != ObjectKind::Lead)
}

/// Properties always returned, besides the requested ones.
const ALWAYS: [&str; 3] = ["hs_object_id", "createdate", "lastmodifieddate"];

/// Returned when no properties are requested.
fn default_properties(object: ObjectKind) -> &'static [&'static str] {
    match object {
        ObjectKind::Account => &["domain", "name"],
        _ => &["email", "firstname", "lastname"],
    }
}

pub(super) fn object_json(
    id: &str,
    props: &Map<String, Value>,
    selected: Option<&[&str]>,
) -> Value {
    let properties: Map<String, Value> = match selected {
        Some(names) => names
            .iter()
            .chain(ALWAYS.iter())
            .map(|n| (n.to_string(), props.get(*n).cloned().unwrap_or(Value::Null)))
            .collect(),
        None => props.clone(),
    };
    let stamp = |k: &str| props.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "id": id,
        "properties": properties,
        "createdAt": stamp("createdate"),
        "updatedAt": stamp("lastmodifieddate"),
        "archived": false,
    })
}

/// Why an owner value cannot be set, as a batch/validation error detail.
fn owner_problem(st: &State, props: &Map<String, Value>) -> Option<String> {
    let owner = props.get(OWNER)?;
    let id = match owner {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Null => return None,
        other => other.to_string(),
    };
    if id.is_empty() || st.hs_owners.iter().any(|o| o.id == id && !o.archived) {
        return None;
    }
    Some(format!("{id} is not a valid owner id"))
}

fn owner_error_detail(message: &str) -> Value {
    json!({"message": message, "code": "INVALID_OWNER_ID", "in": OWNER, "context": {"propertyName": [OWNER]}})
}

fn not_found(st: &mut State, rate: &RateHeaders) -> Response {
    error(
        st,
        Some(rate),
        StatusCode::NOT_FOUND,
        "resource not found",
        "OBJECT_NOT_FOUND",
    )
}

pub(super) fn bad_type(st: &mut State, rate: &RateHeaders, object_type: &str) -> Response {
    let message = format!("Unable to infer object type from: {object_type}");
    error(
        st,
        Some(rate),
        StatusCode::BAD_REQUEST,
        &message,
        "VALIDATION_ERROR",
    )
}

pub(crate) async fn get_object(
    AxState(shared): AxState<Arc<Shared>>,
    Path((object_type, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    shared.delay().await;
    let mut st = shared.lock();
    let path = format!("/crm/v3/objects/{object_type}/{id}");
    let rate = match gate(&mut st, &shared, "hs.object.get", "GET", &path, &headers) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let Some(object) = object_kind(&object_type) else {
        return bad_type(&mut st, &rate, &object_type);
    };
    let Some(props) = st.hs_records.get(&(object, id.clone())) else {
        return not_found(&mut st, &rate);
    };
    let requested: Vec<&str> = params
        .get("properties")
        .map(|p| {
            p.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let selected = if requested.is_empty() {
        default_properties(object)
    } else {
        &requested[..]
    };
    let body = object_json(&id, props, Some(selected));
    reply(Some(&rate), StatusCode::OK, body)
}

#[derive(Deserialize)]
struct Input {
    id: String,
    #[serde(default)]
    properties: Map<String, Value>,
}

#[derive(Deserialize)]
struct BatchInput {
    inputs: Vec<Input>,
}

pub(crate) async fn patch_object(
    AxState(shared): AxState<Arc<Shared>>,
    Path((object_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.delay().await;
    let mut st = shared.lock();
    let path = format!("/crm/v3/objects/{object_type}/{id}");
    let rate = match gate(
        &mut st,
        &shared,
        "hs.object.patch",
        "PATCH",
        &path,
        &headers,
    ) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let Some(object) = object_kind(&object_type) else {
        return bad_type(&mut st, &rate, &object_type);
    };
    let props = match serde_json::from_slice::<Value>(&body) {
        Ok(v) => v
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        Err(e) => {
            let message = format!("Invalid input JSON: {e}");
            return error(
                &mut st,
                Some(&rate),
                StatusCode::BAD_REQUEST,
                &message,
                "VALIDATION_ERROR",
            );
        }
    };
    st.rec.batch_size(Crm::Hubspot, 1);
    if !st.hs_records.contains_key(&(object, id.clone())) {
        *st.rec.stats.records_rejected.get_mut(Crm::Hubspot) += 1;
        return not_found(&mut st, &rate);
    }
    if let Some(problem) = owner_problem(&st, &props) {
        *st.rec.stats.records_rejected.get_mut(Crm::Hubspot) += 1;
        let body = json!({
            "status": "error",
            "message": format!("Property values were not valid: {problem}"),
            "correlationId": st.uuid(),
            "category": "VALIDATION_ERROR",
            "errors": [owner_error_detail(&problem)],
        });
        return reply(Some(&rate), StatusCode::BAD_REQUEST, body);
    }
    let base = hs_base(
        &shared,
        HsSource::Integration {
            app_id: shared.opts.hubspot_app_id,
        },
    );
    let events = hs_update(&mut st, object, &id, &props, &base).unwrap_or_default();
    crate::writes::deliver_hs(&mut st, events);
    *st.rec.stats.records_updated.get_mut(Crm::Hubspot) += 1;
    let body = st
        .hs_records
        .get(&(object, id.clone()))
        .map_or(Value::Null, |p| object_json(&id, p, None));
    reply(Some(&rate), StatusCode::OK, body)
}

pub(crate) async fn batch_update(
    AxState(shared): AxState<Arc<Shared>>,
    Path(object_type): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.delay().await;
    let mut st = shared.lock();
    let path = format!("/crm/v3/objects/{object_type}/batch/update");
    let rate = match gate(&mut st, &shared, "hs.batch_update", "POST", &path, &headers) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let Some(object) = object_kind(&object_type) else {
        return bad_type(&mut st, &rate, &object_type);
    };
    let inputs = match serde_json::from_slice::<BatchInput>(&body) {
        Ok(b) => b.inputs,
        Err(e) => {
            let message = format!("Invalid input JSON on line 1: {e}");
            return error(
                &mut st,
                Some(&rate),
                StatusCode::BAD_REQUEST,
                &message,
                "VALIDATION_ERROR",
            );
        }
    };
    st.rec.batch_size(Crm::Hubspot, inputs.len());
    if inputs.len() > MAX_INPUTS {
        let message = format!(
            "Batch input limit exceeded: {} inputs, at most {MAX_INPUTS} allowed",
            inputs.len()
        );
        return error(
            &mut st,
            Some(&rate),
            StatusCode::BAD_REQUEST,
            &message,
            "VALIDATION_ERROR",
        );
    }
    let mut seen = BTreeSet::new();
    let duplicates: BTreeSet<&str> = inputs
        .iter()
        .filter(|i| !seen.insert(&i.id))
        .map(|i| i.id.as_str())
        .collect();
    if !duplicates.is_empty() {
        let message = format!("Duplicate IDs found in batch input: {duplicates:?}");
        return error(
            &mut st,
            Some(&rate),
            StatusCode::BAD_REQUEST,
            &message,
            "VALIDATION_ERROR",
        );
    }
    let started = iso_millis(now_ms());
    let base = hs_base(
        &shared,
        HsSource::Integration {
            app_id: shared.opts.hubspot_app_id,
        },
    );
    let mut results = Vec::new();
    let mut errors = Vec::new();
    let mut missing = Vec::new();
    let mut events = Vec::new();
    let mut omitted = 0usize;
    let mut applied_unreported = 0usize;
    for input in &inputs {
        if !st.hs_records.contains_key(&(object, input.id.clone())) {
            missing.push(input.id.clone());
            continue;
        }
        if let Some(problem) = owner_problem(&st, &input.properties) {
            errors.push(json!({
                "status": "error",
                "category": "VALIDATION_ERROR",
                "message": format!("Property values were not valid: {problem}"),
                "errors": [owner_error_detail(&problem)],
                "context": {"ids": [input.id]},
            }));
            continue;
        }
        let omission = st.faults.draw_omission();
        if omission == Some(false) {
            omitted += 1;
            continue;
        }
        events.extend(
            hs_update(&mut st, object, &input.id, &input.properties, &base).unwrap_or_default(),
        );
        if omission.is_some() {
            omitted += 1;
            applied_unreported += 1;
            continue;
        }
        if let Some(p) = st.hs_records.get(&(object, input.id.clone())) {
            results.push(object_json(&input.id, p, None));
        }
    }
    if !missing.is_empty() {
        let name = if object == ObjectKind::Account {
            "COMPANY"
        } else {
            "CONTACT"
        };
        errors.push(json!({
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": format!("Could not get some {name} objects, they may be deleted or not exist. Check that ids are valid."),
            "context": {"ids": missing},
        }));
    }
    let updated = results.len() + applied_unreported;
    *st.rec.stats.records_updated.get_mut(Crm::Hubspot) += updated as u64;
    *st.rec.stats.records_rejected.get_mut(Crm::Hubspot) += (inputs.len() - updated) as u64;
    crate::writes::deliver_hs(&mut st, events);
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": iso_millis(now_ms()),
    });
    if errors.is_empty() && omitted == 0 {
        return reply(Some(&rate), StatusCode::OK, body);
    }
    body["numErrors"] = json!(errors.len());
    body["errors"] = Value::Array(errors);
    reply(Some(&rate), StatusCode::MULTI_STATUS, body)
}

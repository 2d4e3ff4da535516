//! sObject reads and writes, and composite sObject collection updates.

use std::collections::HashMap;
use std::sync::Arc;

use allot_core::{Crm, ObjectKind};
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::{error, gate, reply, sobject, SfCtx};
use crate::events::cdc_entity;
use crate::state::State;
use crate::writes::{rest_origin, sf_update, SfMeta};
use crate::Shared;

/// One composite entry: its kind, id and the fields to set.
type Entry = (ObjectKind, String, Map<String, Value>);

/// At most this many records per composite call.
const MAX_RECORDS: usize = 200;

/// A per-record error `{statusCode, message, fields}`.
#[derive(Debug, Clone, PartialEq)]
struct SaveError {
    code: &'static str,
    message: String,
    fields: Vec<&'static str>,
}

impl SaveError {
    fn json(&self) -> Value {
        json!({"statusCode": self.code, "message": self.message, "fields": self.fields})
    }
}

/// Why `owner` cannot own an `object`, if it cannot.
fn owner_error(st: &State, object: ObjectKind, owner: &Value) -> Option<SaveError> {
    let id = owner.as_str().unwrap_or_default();
    match st.sf_users.iter().find(|u| u.id == id) {
        Some(u) if u.is_active => None,
        Some(_) => Some(SaveError {
            code: "INACTIVE_OWNER_OR_USER",
            message: format!(
                "operation performed with inactive user [{id}] as owner of {}",
                cdc_entity(object).to_ascii_lowercase()
            ),
            fields: vec![],
        }),
        None => Some(SaveError {
            code: "INVALID_CROSS_REFERENCE_KEY",
            message: "invalid cross reference id".into(),
            fields: vec!["OwnerId"],
        }),
    }
}

/// Checks one record write: exists, owner valid, row not locked.
fn check_write(
    st: &mut State,
    object: ObjectKind,
    id: &str,
    changes: &Map<String, Value>,
) -> Option<SaveError> {
    if !st.sf_records.contains_key(&(object, id.to_string())) {
        return Some(SaveError {
            code: "ENTITY_IS_DELETED",
            message: "entity is deleted".into(),
            fields: vec![],
        });
    }
    if let Some(e) = changes
        .get("OwnerId")
        .and_then(|o| owner_error(st, object, o))
    {
        return Some(e);
    }
    st.faults.draw_lock().then(|| SaveError {
        code: "UNABLE_TO_LOCK_ROW",
        message: "unable to obtain exclusive access to this record or 1 records".into(),
        fields: vec![],
    })
}

fn meta(st: &mut State, ctx: &SfCtx) -> SfMeta {
    SfMeta {
        origin: rest_origin(&ctx.version, ctx.client.as_deref()),
        commit_user: ctx.session.user_id.clone(),
        transaction_key: st.uuid(),
    }
}

pub(crate) async fn get_record(
    AxState(shared): AxState<Arc<Shared>>,
    Path((version, name, id)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    shared.delay().await;
    let mut st = shared.lock();
    let path = format!("/services/data/{version}/sobjects/{name}/{id}");
    let ctx = match gate(
        &mut st,
        &shared,
        "sf.sobject.get",
        "GET",
        &path,
        &version,
        &headers,
    ) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let found = sobject(&name).and_then(|o| st.sf_records.get(&(o, id.clone())));
    let Some(record) = found else {
        return error(
            &st,
            &shared,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
            &[],
        );
    };
    let mut body = Map::new();
    body.insert(
        "attributes".into(),
        json!({"type": name, "url": format!("/services/data/v{}/sobjects/{name}/{id}", ctx.version)}),
    );
    match params.get("fields").filter(|f| !f.is_empty()) {
        Some(list) => {
            body.insert("Id".into(), json!(id));
            for f in list.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                body.insert(f.to_string(), record.get(f).cloned().unwrap_or(Value::Null));
            }
        }
        None => body.extend(record.clone()),
    }
    reply(&st, &shared, StatusCode::OK, Some(Value::Object(body)))
}

pub(crate) async fn patch_record(
    AxState(shared): AxState<Arc<Shared>>,
    Path((version, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.delay().await;
    let mut st = shared.lock();
    let path = format!("/services/data/{version}/sobjects/{name}/{id}");
    let ctx = match gate(
        &mut st,
        &shared,
        "sf.sobject.patch",
        "PATCH",
        &path,
        &version,
        &headers,
    ) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Ok(changes) = serde_json::from_slice::<Map<String, Value>>(&body) else {
        return error(
            &st,
            &shared,
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "The request body is not a JSON object",
            &[],
        );
    };
    let Some(object) = sobject(&name) else {
        return error(
            &st,
            &shared,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
            &[],
        );
    };
    st.rec.batch_size(Crm::Salesforce, 1);
    if let Some(e) = check_write(&mut st, object, &id, &changes) {
        *st.rec.stats.records_rejected.get_mut(Crm::Salesforce) += 1;
        let status = if e.code == "ENTITY_IS_DELETED" {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        return error(&st, &shared, status, e.code, &e.message, &e.fields);
    }
    let meta = meta(&mut st, &ctx);
    sf_update(&mut st, object, &id, &changes, &meta, 1);
    *st.rec.stats.records_updated.get_mut(Crm::Salesforce) += 1;
    reply(&st, &shared, StatusCode::NO_CONTENT, None)
}

/// One entry of a composite update: its type and id, and the fields to set.
fn parse_entry(entry: &Value) -> Result<Entry, SaveError> {
    let mut fields = entry.as_object().cloned().unwrap_or_default();
    let type_name = fields
        .remove("attributes")
        .and_then(|a| a.get("type").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    let object = sobject(&type_name).ok_or_else(|| SaveError {
        code: "INVALID_TYPE",
        message: format!("sObject type '{type_name}' is not supported."),
        fields: vec![],
    })?;
    let id = fields
        .remove("id")
        .or_else(|| fields.remove("Id"))
        .and_then(|v| v.as_str().map(str::to_string))
        .ok_or_else(|| SaveError {
            code: "MISSING_ARGUMENT",
            message: "Id not specified in an update call".into(),
            fields: vec!["Id"],
        })?;
    Ok((object, id, fields))
}

pub(crate) async fn composite(
    AxState(shared): AxState<Arc<Shared>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.delay().await;
    let mut st = shared.lock();
    let path = format!("/services/data/{version}/composite/sobjects");
    let ctx = match gate(
        &mut st,
        &shared,
        "sf.composite",
        "PATCH",
        &path,
        &version,
        &headers,
    ) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let parsed: Option<(bool, Vec<Value>)> =
        serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
            let all_or_none = v.get("allOrNone").and_then(Value::as_bool).unwrap_or(false);
            Some((all_or_none, v.get("records")?.as_array()?.clone()))
        });
    let Some((all_or_none, entries)) = parsed else {
        return error(
            &st,
            &shared,
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "Expected an object with a records array",
            &[],
        );
    };
    st.rec.batch_size(Crm::Salesforce, entries.len());
    if entries.len() > MAX_RECORDS {
        return error(
            &st,
            &shared,
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
            &[],
        );
    }
    // Check every record first so allOrNone can roll back the whole call.
    let checked: Vec<Result<Entry, SaveError>> = entries
        .iter()
        .map(|entry| {
            let (object, id, fields) = parse_entry(entry)?;
            match check_write(&mut st, object, &id, &fields) {
                Some(e) => Err(e),
                None => Ok((object, id, fields)),
            }
        })
        .collect();
    let any_failed = checked.iter().any(Result::is_err);
    let meta = meta(&mut st, &ctx);
    let mut results = Vec::with_capacity(checked.len());
    let mut sequence = 0;
    for outcome in checked {
        match outcome {
            Ok(_) if all_or_none && any_failed => {
                let rolled_back = SaveError {
                    code: "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    message: "Record rolled back because not all records were valid and the request was using AllOrNone header".into(),
                    fields: vec![],
                };
                *st.rec.stats.records_rejected.get_mut(Crm::Salesforce) += 1;
                results.push(json!({"success": false, "errors": [rolled_back.json()]}));
            }
            Ok((object, id, fields)) => {
                sequence += 1;
                sf_update(&mut st, object, &id, &fields, &meta, sequence);
                *st.rec.stats.records_updated.get_mut(Crm::Salesforce) += 1;
                results.push(json!({"id": id, "success": true, "errors": []}));
            }
            Err(e) => {
                *st.rec.stats.records_rejected.get_mut(Crm::Salesforce) += 1;
                results.push(json!({"success": false, "errors": [e.json()]}));
            }
        }
    }
    reply(&st, &shared, StatusCode::OK, Some(Value::Array(results)))
}

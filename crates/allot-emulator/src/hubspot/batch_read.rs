//! `POST /crm/v3/objects/{type}/batch/read`: up to 100 ids in one call;
//! 207 with an `OBJECT_NOT_FOUND` error listing the ids that do not exist.

use std::sync::Arc;

use allot_core::Crm;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::objects::{bad_type, object_json, object_kind};
use super::{error, gate, reply};
use crate::Shared;

/// At most this many inputs per call.
const MAX_INPUTS: usize = 100;

#[derive(Deserialize)]
struct Input {
    id: String,
}

/// The spec requires all three fields.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReadBody {
    properties: Vec<String>,
    #[allow(dead_code)]
    properties_with_history: Vec<String>,
    inputs: Vec<Input>,
}

pub(crate) async fn batch_read(
    AxState(shared): AxState<Arc<Shared>>,
    Path(object_type): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.delay().await;
    let mut st = shared.lock();
    let path = format!("/crm/v3/objects/{object_type}/batch/read");
    let rate = match gate(&mut st, &shared, "hs.batch_read", "POST", &path, &headers) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let Some(object) = object_kind(&object_type) else {
        return bad_type(&mut st, &rate, &object_type);
    };
    let read = match serde_json::from_slice::<ReadBody>(&body) {
        Ok(b) => b,
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
    if read.inputs.len() > MAX_INPUTS {
        let message = format!(
            "Batch input is limited to {MAX_INPUTS} inputs, got {}",
            read.inputs.len()
        );
        return error(
            &mut st,
            Some(&rate),
            StatusCode::BAD_REQUEST,
            &message,
            "VALIDATION_ERROR",
        );
    }
    st.rec.read(Crm::Hubspot, read.inputs.len());
    let names: Vec<&str> = read.properties.iter().map(String::as_str).collect();
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for input in &read.inputs {
        match st.hs_records.get(&(object, input.id.clone())) {
            Some(props) => results.push(object_json(&input.id, props, Some(&names))),
            None => missing.push(Value::from(input.id.clone())),
        }
    }
    let now = crate::events::iso_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
    );
    if missing.is_empty() {
        let body =
            json!({"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now});
        return reply(Some(&rate), StatusCode::OK, body);
    }
    let body = json!({
        "status": "COMPLETE",
        "results": results,
        "numErrors": 1,
        "errors": [{
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": format!("Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.", object_type.trim_end_matches('s').to_ascii_uppercase()),
            "context": {"ids": missing},
        }],
        "startedAt": now,
        "completedAt": now,
    });
    reply(Some(&rate), StatusCode::MULTI_STATUS, body)
}

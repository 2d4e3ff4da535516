//! `POST /services/data/vXX.X/composite/sobjects/{Type}`: up to 2,000
//! records of one type by id, in id order, `null` for an id that is gone.

use std::sync::Arc;

use allot_core::Crm;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{error, gate, reply, sobject};
use crate::Shared;

/// At most this many ids per call.
const MAX_IDS: usize = 2_000;

#[derive(Deserialize)]
struct ReadBody {
    ids: Vec<String>,
    fields: Vec<String>,
}

pub(crate) async fn read_many(
    AxState(shared): AxState<Arc<Shared>>,
    Path((version, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.delay().await;
    let mut st = shared.lock();
    let path = format!("/services/data/{version}/composite/sobjects/{name}");
    let ctx = match gate(
        &mut st,
        &shared,
        "sf.composite.read",
        "POST",
        &path,
        &version,
        &headers,
    ) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Some(object) = sobject(&name) else {
        let message = format!("sObject type '{name}' is not supported.");
        return error(
            &st,
            &shared,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &message,
            &[],
        );
    };
    let read = match serde_json::from_slice::<ReadBody>(&body) {
        Ok(b) => b,
        Err(e) => {
            let message = format!("Json Deserialization failed on token 'ids': {e}");
            return error(
                &st,
                &shared,
                StatusCode::BAD_REQUEST,
                "JSON_PARSER_ERROR",
                &message,
                &[],
            );
        }
    };
    if read.ids.len() > MAX_IDS {
        let message = format!("Maximum number of ids allowed is {MAX_IDS}");
        return error(
            &st,
            &shared,
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            &message,
            &[],
        );
    }
    st.rec.read(Crm::Salesforce, read.ids.len());
    let rows: Vec<Value> = read
        .ids
        .iter()
        .map(|id| match st.sf_records.get(&(object, id.clone())) {
            None => Value::Null,
            Some(record) => {
                let mut row = Map::new();
                row.insert(
                    "attributes".into(),
                    json!({"type": name, "url": format!("/services/data/v{}/sobjects/{name}/{id}", ctx.version)}),
                );
                row.insert("Id".into(), json!(id));
                for f in read.fields.iter().filter(|f| f.as_str() != "Id") {
                    row.insert(f.clone(), record.get(f).cloned().unwrap_or(Value::Null));
                }
                Value::Object(row)
            }
        })
        .collect();
    reply(&st, &shared, StatusCode::OK, Some(Value::Array(rows)))
}

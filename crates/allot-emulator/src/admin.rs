//! Admin endpoints under `/_emulator/`: faults, stats, received requests,
//! records and owners, and record edits "as a user would".

use std::collections::BTreeMap;
use std::sync::Arc;

use allot_core::{Crm, ObjectKind};
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};

use crate::faults::FaultPatch;
use crate::state::State;
use crate::{writes, Shared};

/// A record as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordView {
    pub crm: Crm,
    pub object: ObjectKind,
    pub id: String,
    /// `OwnerId` (Salesforce) or `hubspot_owner_id` (HubSpot); `None` when unset.
    pub owner: Option<String>,
    /// REST fields (Salesforce) or properties (HubSpot).
    pub fields: Map<String, Value>,
}

/// Owner of every record: CRM → object kind (`lead`, `account`, `contact`) → id → owner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnersView {
    pub salesforce: BTreeMap<String, BTreeMap<String, Option<String>>>,
    pub hubspot: BTreeMap<String, BTreeMap<String, Option<String>>>,
}

/// `POST /_emulator/records`: create (no or unknown `id`) or update a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsertRecord {
    pub crm: Crm,
    /// Any name `ObjectKind::parse` knows: `lead`, `Account`, `companies`, ...
    #[serde(deserialize_with = "object_kind")]
    pub object: ObjectKind,
    #[serde(default)]
    pub id: Option<String>,
    /// Salesforce REST fields or HubSpot properties.
    #[serde(default, alias = "properties")]
    pub fields: Map<String, Value>,
}

fn object_kind<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectKind, D::Error> {
    let s = String::deserialize(d)?;
    ObjectKind::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown object {s:?}")))
}

/// The owner field of a record on one side.
fn owner_of(crm: Crm, fields: &Map<String, Value>) -> Option<String> {
    let key = if crm == Crm::Hubspot {
        "hubspot_owner_id"
    } else {
        "OwnerId"
    };
    fields
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

pub(crate) fn record_view(
    st: &State,
    crm: Crm,
    object: ObjectKind,
    id: &str,
) -> Option<RecordView> {
    let fields = st.records(crm).get(&(object, id.to_string()))?.clone();
    Some(RecordView {
        crm,
        object,
        id: id.to_string(),
        owner: owner_of(crm, &fields),
        fields,
    })
}

pub(crate) fn owners_view(st: &State) -> OwnersView {
    let side = |crm: Crm| {
        let mut out: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
        for ((object, id), fields) in st.records(crm) {
            out.entry(object.as_str().to_string())
                .or_default()
                .insert(id.clone(), owner_of(crm, fields));
        }
        out
    };
    OwnersView {
        salesforce: side(Crm::Salesforce),
        hubspot: side(Crm::Hubspot),
    }
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_emulator/faults", get(get_faults).post(post_faults))
        .route("/_emulator/stats", get(stats))
        .route("/_emulator/requests", get(requests))
        .route("/_emulator/owners", get(owners))
        .route("/_emulator/records", post(upsert))
        .route("/_emulator/records/{crm}/{object}/{id}", get(record))
}

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": message.into()})),
    )
        .into_response()
}

async fn get_faults(AxState(shared): AxState<Arc<Shared>>) -> Response {
    Json(shared.lock().faults.view()).into_response()
}

async fn post_faults(AxState(shared): AxState<Arc<Shared>>, body: Bytes) -> Response {
    let patch: FaultPatch = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad_request(format!("faults: {e}")),
    };
    let mut st = shared.lock();
    st.apply_faults(&patch);
    Json(st.faults.view()).into_response()
}

async fn stats(AxState(shared): AxState<Arc<Shared>>) -> Response {
    Json(shared.lock().stats()).into_response()
}

async fn requests(AxState(shared): AxState<Arc<Shared>>) -> Response {
    let st = shared.lock();
    Json(st.rec.received.iter().collect::<Vec<_>>()).into_response()
}

async fn owners(AxState(shared): AxState<Arc<Shared>>) -> Response {
    Json(owners_view(&shared.lock())).into_response()
}

async fn record(
    AxState(shared): AxState<Arc<Shared>>,
    Path((crm, object, id)): Path<(String, String, String)>,
) -> Response {
    let crm = match crm.to_ascii_lowercase().as_str() {
        "salesforce" | "sf" => Crm::Salesforce,
        "hubspot" | "hs" => Crm::Hubspot,
        other => return bad_request(format!("unknown crm {other:?}")),
    };
    let Some(object) = ObjectKind::parse(&object) else {
        return bad_request(format!("unknown object {object:?}"));
    };
    match record_view(&shared.lock(), crm, object, &id) {
        Some(view) => Json(view).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no {crm} {object} {id}")})),
        )
            .into_response(),
    }
}

/// Accepts one record or an array of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(UpsertRecord),
    Many(Vec<UpsertRecord>),
}

async fn upsert(AxState(shared): AxState<Arc<Shared>>, body: Bytes) -> Response {
    let requests = match serde_json::from_slice::<OneOrMany>(&body) {
        Ok(OneOrMany::One(r)) => vec![r],
        Ok(OneOrMany::Many(rs)) => rs,
        Err(e) => return bad_request(format!("records: {e}")),
    };
    shared.lock().rec.count("admin.records");
    let mut views = Vec::with_capacity(requests.len());
    for r in requests {
        match writes::upsert(&shared, r) {
            Ok(v) => views.push(v),
            Err(e) => return bad_request(e.to_string()),
        }
    }
    if views.len() == 1 {
        Json(&views[0]).into_response()
    } else {
        Json(views).into_response()
    }
}

/// Unknown paths: a Salesforce-shaped 404 under `/services`, HubSpot-shaped elsewhere.
pub(crate) async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/services") {
        let body =
            json!([{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]);
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    }
    let body = json!({
        "status": "error",
        "message": format!("Unable to find a route for {}", uri.path()),
        "correlationId": "00000000-0000-4000-8000-000000000000",
        "category": "OBJECT_NOT_FOUND",
    });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

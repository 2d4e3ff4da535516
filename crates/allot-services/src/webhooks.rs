//! HTTP endpoints that feed the embedded log: HubSpot webhooks (signature
//! v3 checked, stale timestamps refused), Salesforce CDC JSON and allot's
//! native envelope. A 2xx answer means the payload is durable in the log;
//! processing happens asynchronously (HubSpot wants an answer within 5 s).

use std::sync::Arc;

use allot_events::{verify_hubspot_signature_v3, SignatureError};
use allot_store::Store;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;
use crate::raw::{RawEntry, RAW_LOG};

/// What the webhook endpoints need.
#[derive(Clone)]
pub struct WebhookState {
    pub store: Arc<Store>,
    pub metrics: Metrics,
    /// HubSpot app client secret; when `None`, HubSpot signatures are not checked
    /// (only for local use: the setting is reported at start).
    pub hubspot_secret: Option<String>,
    /// The public base URL HubSpot calls (`https://allot.example.com`): part of
    /// what is signed. When `None`, `http://` + the Host header is used.
    pub public_url: Option<String>,
    /// Bearer token required on the Salesforce and native endpoints, if set.
    pub ingest_token: Option<String>,
    /// In Kafka mode: payloads go to these topics instead of the embedded log.
    pub kafka: Option<KafkaTarget>,
}

/// Where webhook payloads go in Kafka mode.
#[derive(Clone)]
pub struct KafkaTarget {
    pub sink: allot_bus::KafkaSink,
    /// Topic per format (`hubspot`, `salesforce`, `native`).
    pub topics: std::collections::HashMap<String, String>,
}

/// The record id of one event, for the partition key (keeps a record's
/// events in order).
fn event_key(e: &serde_json::Value) -> String {
    let v = e.get("payload").unwrap_or(e);
    let id = v
        .get("objectId")
        .or_else(|| v.get("record_id"))
        .or_else(|| v.pointer("/ChangeEventHeader/recordIds/0"))
        .or_else(|| v.get("Id"));
    match id {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// Produces each event of the payload to `topic`, keyed by its record id.
async fn produce(k: &KafkaTarget, topic: &str, text: &str) -> Result<usize, String> {
    let events: Vec<(String, Vec<u8>)> = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(items)) => items
            .iter()
            .map(|e| (event_key(e), e.to_string().into_bytes()))
            .collect(),
        Ok(one) => vec![(event_key(&one), text.as_bytes().to_vec())],
        // Undecodable: as it came; ingest dead-letters it with its reason.
        Err(_) => vec![(String::new(), text.as_bytes().to_vec())],
    };
    for (key, body) in &events {
        k.sink
            .send(topic, key.as_bytes(), body, &[])
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(events.len())
}

/// The largest webhook body taken: a HubSpot batch is at most 100 events,
/// a Salesforce change event at most 1 MB.
pub const WEBHOOK_BODY_LIMIT: usize = 2 << 20;

pub fn router(state: WebhookState) -> Router {
    let routes = Router::new()
        .route("/webhooks/hubspot", post(hubspot))
        .route("/webhooks/salesforce", post(salesforce))
        .route("/webhooks/native", post(native))
        .with_state(state);
    crate::api::limited(routes, WEBHOOK_BODY_LIMIT)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "status": "error", "message": message.into() })),
    )
        .into_response()
}

async fn hubspot(
    State(s): State<WebhookState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(secret) = &s.hubspot_secret {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (Some(signature), Some(ts)) = (
            header("x-hubspot-signature-v3"),
            header("x-hubspot-request-timestamp"),
        ) else {
            return error(
                StatusCode::UNAUTHORIZED,
                "missing X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp header",
            );
        };
        let Ok(ts) = ts.trim().parse::<u64>() else {
            return error(
                StatusCode::UNAUTHORIZED,
                format!("X-HubSpot-Request-Timestamp {ts:?} is not epoch milliseconds"),
            );
        };
        let full = full_uri(&s, &headers, &uri);
        let now = u64::try_from(crate::now_ms()).unwrap_or(0);
        if let Err(e) =
            verify_hubspot_signature_v3(secret, method.as_str(), &full, &body, ts, &signature, now)
        {
            s.metrics
                .dead_lettered
                .with_label_values(&["signature"])
                .inc();
            warn!(uri = %full, error = %e, "hubspot webhook refused");
            let what = if matches!(e, SignatureError::Stale { .. }) {
                "stale webhook"
            } else {
                "bad webhook signature"
            };
            return error(StatusCode::UNAUTHORIZED, format!("{what}: {e}"));
        }
    }
    append(&s, "hubspot", "webhook:hubspot", body).await
}

async fn salesforce(State(s): State<WebhookState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = check_token(&s, &headers) {
        return r;
    }
    append(&s, "salesforce", "webhook:salesforce", body).await
}

async fn native(State(s): State<WebhookState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = check_token(&s, &headers) {
        return r;
    }
    append(&s, "native", "webhook:native", body).await
}

fn check_token(s: &WebhookState, headers: &HeaderMap) -> Option<Response> {
    let want = s.ingest_token.as_ref()?;
    let ok = crate::secret::bearer(headers)
        .is_some_and(|got| crate::secret::same(got.as_bytes(), want.as_bytes()));
    (!ok).then(|| error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token"))
}

/// What a payload decodes to, for the answer: the events it holds, and
/// every element that cannot be decoded, with why (its index in a batch).
/// `Err` when nothing in it can be decoded at all.
fn check_payload(format: &str, body: &[u8]) -> Result<(usize, Vec<serde_json::Value>), String> {
    let decoded = allot_events::decode(body, format.parse().unwrap_or_default());
    let rejected: Vec<serde_json::Value> = decoded
        .errors
        .iter()
        .map(|e| {
            let index = e.event().and_then(|r| r.index);
            json!({ "index": index, "kind": e.kind(), "reason": e.to_string() })
        })
        .collect();
    if decoded.events.is_empty() && !decoded.errors.is_empty() {
        let reasons: Vec<String> = decoded.errors.iter().map(ToString::to_string).collect();
        return Err(reasons.join("; "));
    }
    Ok((decoded.events.len(), rejected))
}

fn full_uri(s: &WebhookState, headers: &HeaderMap, uri: &Uri) -> String {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    match &s.public_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => {
            let host = headers
                .get("host")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}{path}")
        }
    }
}

/// The answer to a payload made durable: 200 `accepted` with the events it
/// holds and the elements that will be dead-lettered, or 400 with the
/// reason when nothing in it decodes (it is dead-lettered too).
fn answer(
    checked: &Result<(usize, Vec<serde_json::Value>), String>,
    mut at: serde_json::Value,
) -> Response {
    match checked {
        Ok((events, rejected)) => {
            at["status"] = json!("accepted");
            at["events"] = json!(events);
            if !rejected.is_empty() {
                at["rejected"] = json!(rejected);
            }
            (StatusCode::OK, Json(at)).into_response()
        }
        Err(why) => {
            at["status"] = json!("error");
            at["message"] = json!(format!("cannot be decoded (kept as a dead letter): {why}"));
            (StatusCode::BAD_REQUEST, Json(at)).into_response()
        }
    }
}

/// Appends the payload to the raw log; answers once it is durable.
async fn append(s: &WebhookState, format: &str, source: &str, body: Bytes) -> Response {
    let size = &s.metrics.store_size;
    if s.kafka.is_none() && size.nearly_full() {
        // Nothing is accepted that cannot be made durable: the CRM retries.
        warn!(
            source,
            bytes = size.bytes(),
            max = size.max(),
            "store nearly full: webhook refused"
        );
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the store is nearly full ({} of store.max_bytes = {} bytes): try again later",
                size.bytes(),
                size.max()
            ),
        );
        r.headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("60"));
        return r;
    }
    if body.is_empty() {
        return error(StatusCode::BAD_REQUEST, "empty body");
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(StatusCode::BAD_REQUEST, "body is not UTF-8");
    };
    // Undecodable payloads still go on (the ingest loop dead-letters them
    // with their reason, so nothing a CRM sent is lost), and the sender is
    // told: 400 when nothing in it decodes, the bad elements of a batch
    // named in the 200.
    let checked = check_payload(format, &body);
    if let Err(why) = &checked {
        warn!(source, reason = %why, "webhook body cannot be decoded; dead-lettered by ingest");
    }
    let entry = RawEntry {
        v: 1,
        format: format.to_string(),
        source: source.to_string(),
        received_at: crate::now_ms(),
        body: text.to_string(),
    };
    let Ok(bytes) = serde_json::to_vec(&entry) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode log entry");
    };
    s.metrics.consumed.with_label_values(&[source]).inc();
    if let Some(k) = &s.kafka {
        let Some(topic) = k.topics.get(format) else {
            return error(
                StatusCode::NOT_FOUND,
                format!("no kafka source topic takes {format} events"),
            );
        };
        return match produce(k, topic, text).await {
            Ok(n) => {
                info!(source, topic = %topic, events = n, "webhook payload produced");
                answer(&checked, json!({ "topic": topic, "messages": n }))
            }
            Err(e) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("kafka produce failed: {e}"),
            ),
        };
    }
    let store = s.store.clone();
    let appended = tokio::task::spawn_blocking(move || store.log(RAW_LOG).append(&bytes)).await;
    match appended {
        Ok(Ok(offset)) => {
            debug!(source, offset, "webhook payload logged");
            answer(&checked, json!({ "offset": offset }))
        }
        Ok(Err(e)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("log append failed: {e}"),
        ),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("log append task failed: {e}"),
        ),
    }
}

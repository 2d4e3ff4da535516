//! Webhook endpoints: signature v3, stale timestamps, durable before 2xx.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use allot_events::hubspot_signature_v3;
use allot_services::metrics::Metrics;
use allot_services::raw::{RawEntry, RAW_LOG};
use allot_services::webhooks::{router, WebhookState};
use allot_store::Store;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

const SECRET: &str = "s3cret";
const BODY: &str = include_str!("../../allot-events/tests/data/hubspot-webhook-batch.json");

fn state(store: Arc<Store>) -> WebhookState {
    WebhookState {
        store,
        metrics: Metrics::new(),
        hubspot_secret: Some(SECRET.into()),
        public_url: Some("https://allot.example.com".into()),
        ingest_token: Some("tok".into()),
        kafka: None,
    }
}

async fn call(s: WebhookState, req: Request<Body>) -> (StatusCode, String) {
    let res = router(s).oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn hubspot(ts: i64, signature: &str) -> Request<Body> {
    Request::post("/webhooks/hubspot")
        .header("content-type", "application/json")
        .header("x-hubspot-request-timestamp", ts.to_string())
        .header("x-hubspot-signature-v3", signature)
        .body(Body::from(BODY))
        .unwrap()
}

#[tokio::test]
async fn hubspot_signatures_are_checked() {
    let now = allot_services::now_ms();
    let good = |ts: i64| {
        hubspot_signature_v3(
            SECRET,
            "POST",
            "https://allot.example.com/webhooks/hubspot",
            BODY.as_bytes(),
            ts as u64,
        )
    };
    let cases = [
        (now, good(now), StatusCode::OK, "accepted"),
        (
            now,
            hubspot_signature_v3(
                "other",
                "POST",
                "https://allot.example.com/webhooks/hubspot",
                BODY.as_bytes(),
                now as u64,
            ),
            StatusCode::UNAUTHORIZED,
            "bad webhook signature",
        ),
        (
            now - 6 * 60_000,
            good(now - 6 * 60_000),
            StatusCode::UNAUTHORIZED,
            "stale webhook",
        ),
        (
            now,
            "***".to_string(),
            StatusCode::UNAUTHORIZED,
            "not base64",
        ),
    ];
    let store = Arc::new(Store::temporary().unwrap());
    for (ts, sig, status, text) in cases {
        let (got, body) = call(state(store.clone()), hubspot(ts, &sig)).await;
        assert_eq!(got, status, "{body}");
        assert!(body.contains(text), "{text:?} not in {body}");
    }
    // Only the accepted one is in the log, durable, as sent.
    let log = store.log(RAW_LOG).read(0, 10).unwrap();
    assert_eq!(log.len(), 1);
    let entry: RawEntry = serde_json::from_slice(&log[0].1).unwrap();
    assert_eq!(
        (entry.format.as_str(), entry.body.as_str()),
        ("hubspot", BODY)
    );
}

#[tokio::test]
async fn missing_headers_are_refused() {
    let store = Arc::new(Store::temporary().unwrap());
    let req = Request::post("/webhooks/hubspot")
        .body(Body::from(BODY))
        .unwrap();
    let (status, body) = call(state(store), req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("X-HubSpot-Signature-v3"), "{body}");
}

#[tokio::test]
async fn salesforce_endpoint_wants_the_token() {
    let store = Arc::new(Store::temporary().unwrap());
    let cdc = include_str!("../../allot-events/tests/data/sf-cdc-lead-create.json");
    let req = |auth: &str| {
        Request::post("/webhooks/salesforce")
            .header("authorization", auth)
            .body(Body::from(cdc))
            .unwrap()
    };
    assert_eq!(
        call(state(store.clone()), req("Bearer nope")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(state(store.clone()), req("Bearer tok")).await.0,
        StatusCode::OK
    );
    let empty = Request::post("/webhooks/salesforce")
        .header("authorization", "Bearer tok")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        call(state(store.clone()), empty).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(store.log(RAW_LOG).end_offset().unwrap(), 1);
}

fn salesforce_with(auth: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post("/webhooks/salesforce")
        .header("authorization", auth)
        .body(body.into())
        .unwrap()
}

#[tokio::test]
async fn the_bearer_scheme_is_any_case_and_the_token_whole() {
    let store = Arc::new(Store::temporary().unwrap());
    let cdc = include_str!("../../allot-events/tests/data/sf-cdc-lead-create.json");
    for (auth, want) in [
        ("bearer tok", StatusCode::OK),
        ("BEARER tok", StatusCode::OK),
        ("Bearer to", StatusCode::UNAUTHORIZED),
        ("Bearer tokk", StatusCode::UNAUTHORIZED),
        ("Basic tok", StatusCode::UNAUTHORIZED),
    ] {
        let (status, body) = call(state(store.clone()), salesforce_with(auth, cdc)).await;
        assert_eq!(status, want, "{auth:?}: {body}");
    }
}

#[tokio::test]
async fn an_undecodable_body_is_answered_400_and_still_kept_for_the_dead_letters() {
    let store = Arc::new(Store::temporary().unwrap());
    let (status, body) = call(
        state(store.clone()),
        salesforce_with("Bearer tok", "{\"payload\": oops"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "error");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.starts_with("cannot be decoded (kept as a dead letter): "),
        "{message}"
    );
    assert!(
        message.contains("line 1"),
        "the reason says where: {message}"
    );
    // Kept: the ingest loop dead-letters it with its reason.
    assert_eq!(store.log(RAW_LOG).end_offset().unwrap(), 1);
}

#[tokio::test]
async fn a_batch_with_bad_elements_is_accepted_and_names_them() {
    let store = Arc::new(Store::temporary().unwrap());
    let good = r#"{"v":1,"source":"native","event_id":"e1","object":"lead","record_id":"L1","change":"create","fields":{"country":"US"}}"#;
    let batch = format!(r#"[{good}, {{"v":1,"event_id":"e2"}}, 42]"#);
    let req = Request::post("/webhooks/native")
        .header("authorization", "Bearer tok")
        .body(Body::from(batch))
        .unwrap();
    let (status, body) = call(state(store.clone()), req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["status"].as_str(), v["events"].as_u64()),
        (Some("accepted"), Some(1)),
        "{v}"
    );
    let rejected = v["rejected"].as_array().unwrap();
    let indexes: Vec<u64> = rejected
        .iter()
        .filter_map(|r| r["index"].as_u64())
        .collect();
    assert_eq!(indexes, [1, 2], "{v}");
    assert!(rejected
        .iter()
        .all(|r| r["reason"].as_str().is_some_and(|s| !s.is_empty())));
}

#[tokio::test]
async fn a_body_over_the_limit_gets_the_json_error_naming_it() {
    let store = Arc::new(Store::temporary().unwrap());
    let big = vec![b' '; allot_services::webhooks::WEBHOOK_BODY_LIMIT + 1];
    let (status, body) = call(state(store.clone()), salesforce_with("Bearer tok", big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "error");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("2097152 bytes") && message.contains("/webhooks/salesforce"),
        "{message}"
    );
    assert_eq!(store.log(RAW_LOG).end_offset().unwrap(), 0, "nothing kept");
}

#[tokio::test]
async fn a_nearly_full_store_refuses_new_input_and_keeps_what_it_took() {
    let store = Arc::new(Store::temporary().unwrap());
    let mut s = state(store.clone());
    s.metrics.store_size = allot_services::retention::StoreSize::new(1_000_000);
    let post = |n: u32| {
        Request::post("/webhooks/native")
            .header("content-type", "application/json")
            .header("authorization", "Bearer tok")
            .body(Body::from(format!(
                r#"{{"v":1,"source":"native","event_id":"e{n}","object":"lead","record_id":"L{n}","change":"create","changed_fields":[],"fields":{{}}}}"#
            )))
            .unwrap()
    };
    s.metrics.store_size.set(100_000);
    let (st, _) = call(s.clone(), post(1)).await;
    assert_eq!(st, StatusCode::OK);
    // Within 5% of store.max_bytes: refused, with when to come back.
    s.metrics.store_size.set(960_000);
    let res = router(s.clone()).oneshot(post(2)).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "60");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("store.max_bytes = 1000000"), "{text}");
    // Room again (retention pruned): accepted.
    s.metrics.store_size.set(500_000);
    let (st, _) = call(s.clone(), post(3)).await;
    assert_eq!(st, StatusCode::OK);
    let kept: Vec<String> = store
        .log(RAW_LOG)
        .read(0, 10)
        .unwrap()
        .into_iter()
        .map(|(_, b)| serde_json::from_slice::<RawEntry>(&b).unwrap().body)
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept[0].contains("\"e1\"") && kept[1].contains("\"e3\""));
}

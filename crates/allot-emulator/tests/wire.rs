//! The emulator's wire formats: vendor bodies, limits, change events.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use allot_core::Crm;
use allot_emulator::{EmulatorOptions, Stats};
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn salesforce_patch_emits_cdc_with_the_callers_client() {
    let mut em = start(EmulatorOptions::default()).await;
    let token = em.sf_token().await;
    let path = format!("/services/data/v62.0/sobjects/Lead/{LEAD}");
    let r = em
        .sf(
            reqwest::Method::PATCH,
            &path,
            &token,
            Some(json!({"OwnerId": BOB})),
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["sforce-limit-info"], "api-usage=1/100000");

    let (crm, event) = em.next_event();
    assert_eq!(crm, Crm::Salesforce);
    assert_eq!(event["channel"], "/data/LeadChangeEvent");
    let header = &event["payload"]["ChangeEventHeader"];
    assert_eq!(header["changeType"], "UPDATE");
    assert_eq!(
        header["changeOrigin"],
        "com/salesforce/api/rest/62.0;client=allot-writer"
    );
    assert_eq!(header["recordIds"], json!([LEAD]));
    assert_eq!(header["commitUser"], ALICE);
    assert!(header["changedFields"]
        .as_array()
        .unwrap()
        .contains(&json!("OwnerId")));
    assert!(header["changedFields"]
        .as_array()
        .unwrap()
        .contains(&json!("LastModifiedDate")));
    assert_eq!(event["payload"]["OwnerId"], BOB);
    assert!(event["event"]["replayId"].as_u64().unwrap() > 0);

    // Writing the same owner again changes nothing and emits nothing.
    em.sf(
        reqwest::Method::PATCH,
        &path,
        &token,
        Some(json!({"OwnerId": BOB})),
    )
    .await;
    assert!(em.events.try_recv().is_err());

    let got: Value = em
        .http
        .get(format!(
            "{}/_emulator/records/salesforce/lead/{LEAD}",
            em.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["owner"], BOB);
}

#[tokio::test]
async fn hubspot_batch_update_emits_integration_webhook_events() {
    let mut em = start(EmulatorOptions::default()).await;
    let body = json!({"inputs": [{"id": CONTACT, "properties": {"hubspot_owner_id": MAYA}}]});
    let r = em
        .hs(
            reqwest::Method::POST,
            "/crm/v3/objects/contacts/batch/update",
            Some(body),
        )
        .await;
    assert_eq!(r.status(), 200);
    let (crm, batch) = em.next_event();
    assert_eq!(crm, Crm::Hubspot);
    let e = &batch[0];
    assert_eq!(e["subscriptionType"], "contact.propertyChange");
    assert_eq!(e["objectId"], 65_059_681_000u64);
    assert_eq!(e["propertyName"], "hubspot_owner_id");
    assert_eq!(e["propertyValue"], MAYA);
    assert_eq!(e["changeSource"], "INTEGRATION");
    assert_eq!(
        e["sourceId"],
        EmulatorOptions::default().hubspot_app_id.to_string()
    );
}

#[tokio::test]
async fn oversized_batches_get_the_vendors_400() {
    let em = start(EmulatorOptions::default()).await;
    let token = em.sf_token().await;
    let records: Vec<Value> = (0..201)
        .map(|_| json!({"attributes": {"type": "Lead"}, "id": LEAD, "OwnerId": BOB}))
        .collect();
    let r = em
        .sf(
            reqwest::Method::PATCH,
            "/services/data/v62.0/composite/sobjects",
            &token,
            Some(json!({"allOrNone": false, "records": records})),
        )
        .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body[0]["errorCode"], "EXCEEDED_ID_LIMIT");
    assert!(body[0]["message"].as_str().unwrap().contains("200"));

    let inputs: Vec<Value> = (0..101)
        .map(|i| json!({"id": i.to_string(), "properties": {"hubspot_owner_id": MAYA}}))
        .collect();
    let r = em
        .hs(
            reqwest::Method::POST,
            "/crm/v3/objects/contacts/batch/update",
            Some(json!({"inputs": inputs})),
        )
        .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert!(body["correlationId"].is_string() && body["message"].is_string());

    let stats: Stats = em
        .http
        .get(format!("{}/_emulator/stats", em.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            stats.max_records_per_call.salesforce,
            stats.max_records_per_call.hubspot
        ),
        (201, 101)
    );
}

#[tokio::test]
async fn sessions_expire_and_quota_runs_out_with_vendor_bodies() {
    let opts = EmulatorOptions {
        salesforce_daily_quota: 1,
        ..EmulatorOptions::default()
    };
    let em = start(opts).await;
    let token = em.sf_token().await;
    let path = format!("/services/data/v62.0/sobjects/Lead/{LEAD}?fields=OwnerId");
    assert_eq!(
        em.sf(reqwest::Method::GET, &path, &token, None)
            .await
            .status(),
        200
    );

    let r = em.sf(reqwest::Method::GET, &path, &token, None).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["sforce-limit-info"], "api-usage=1/1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");

    let r = em
        .http
        .post(format!("{}/_emulator/faults", em.base))
        .json(&json!({"expire_tokens": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = em.sf(reqwest::Method::GET, &path, &token, None).await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID", "fields": []}])
    );
}

#[tokio::test]
async fn unknown_routes_and_bad_tokens_answer_in_vendor_shapes() {
    let em = start(EmulatorOptions::default()).await;
    let r = em
        .http
        .get(format!(
            "{}/services/data/v62.0/sobjects/Opportunity/x",
            em.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "auth is checked before the object");
    let r = em
        .http
        .get(format!("{}/crm/v3/objects/contacts/{CONTACT}", em.base))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    let r = em
        .http
        .get(format!("{}/services/nothing", em.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body[0]["errorCode"], "NOT_FOUND");
}

//! The emulator over HTTP: vendor bodies, change events, webhooks, admin API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use allot_core::Crm;
use allot_crm::hubspot::signature::{
    verify_hubspot_signature_v3, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use allot_emulator::{EmittedEvent, Emulator, EmulatorOptions, EventSink, Seed, Stats};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::sync::oneshot;

const LEAD: &str = "00Q5f000006QW00EAC";
const ALICE: &str = "0055f000001AAAAAA4";
const BOB: &str = "0055f000001ABBBAA4";
const CONTACT: &str = "65059681000";
const MAYA: &str = "910901";
const PAT: &str = "pat-na1-emulator";

fn seed() -> Seed {
    let text = json!({
        "salesforce": {
            "users": [
                {"Id": ALICE, "Name": "Alice", "Email": "alice@acme.example", "IsActive": true},
                {"Id": BOB, "Name": "Bob", "Email": "bob@acme.example", "IsActive": true}
            ],
            "leads": [{"Id": LEAD, "LastName": "Mcclure", "Company": "Cardinal", "State": "CA", "OwnerId": ALICE}]
        },
        "hubspot": {
            "owners": [{"id": MAYA, "userId": 4512001, "email": "maya@acme.example"}],
            "contacts": [{"id": CONTACT, "properties": {"email": "brenda@cardinal.example"}}]
        }
    });
    Seed::from_json(&text.to_string(), "test").unwrap()
}

struct Running {
    base: String,
    emulator: Emulator,
    events: UnboundedReceiver<EmittedEvent>,
    http: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

async fn start(mut opts: EmulatorOptions) -> Running {
    let (tx, events) = unbounded_channel();
    opts.events = EventSink::Channel(tx);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let emulator = Emulator::new(seed(), opts);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(emulator.serve(listener, async {
        let _ = stopped.await;
    }));
    Running {
        base,
        emulator,
        events,
        http: reqwest::Client::new(),
        _stop: stop,
    }
}

impl Running {
    async fn sf_token(&self) -> String {
        let o = EmulatorOptions::default();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", o.salesforce_client_id.as_str()),
            ("client_secret", o.salesforce_client_secret.as_str()),
        ];
        let r = self
            .http
            .post(format!("{}/services/oauth2/token", self.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["instance_url"], self.base.as_str());
        body["access_token"].as_str().unwrap().to_string()
    }

    async fn sf(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("Sforce-Call-Options", "client=allot-writer")
            .header("Sforce-Auto-Assign", "FALSE");
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    async fn hs(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(PAT);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    fn next_event(&mut self) -> (Crm, Value) {
        let e = self.events.try_recv().expect("an event");
        (e.crm, serde_json::from_slice(&e.body).unwrap())
    }
}

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
async fn admin_edits_emit_ui_events_and_show_up_in_owners() {
    let mut em = start(EmulatorOptions::default()).await;
    let create = json!([
        {"crm": "salesforce", "object": "lead", "fields": {"LastName": "Novak", "Country": "Czechia", "OwnerId": BOB}},
        {"crm": "hubspot", "object": "companies", "properties": {"name": "Nordlys Games", "domain": "nordlysgames.example"}}
    ]);
    let r = em
        .http
        .post(format!("{}/_emulator/records", em.base))
        .json(&create)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let views: Value = r.json().await.unwrap();
    let lead_id = views[0]["id"].as_str().unwrap().to_string();
    assert_eq!(lead_id.len(), 18);

    let (_, sf) = em.next_event();
    let header = &sf["payload"]["ChangeEventHeader"];
    assert_eq!(header["changeType"], "CREATE");
    assert_eq!(header["changeOrigin"], "");
    assert_eq!(sf["payload"]["Address"]["Country"], "Czechia");
    let (_, hs) = em.next_event();
    assert_eq!(hs[0]["subscriptionType"], "company.creation");
    assert_eq!(hs[0]["changeSource"], "CRM_UI");

    let update = json!({"crm": "hubspot", "object": "contact", "id": CONTACT, "fields": {"country": "Germany"}});
    em.http
        .post(format!("{}/_emulator/records", em.base))
        .json(&update)
        .send()
        .await
        .unwrap();
    let (_, hs) = em.next_event();
    assert_eq!(
        (
            hs[0]["propertyName"].as_str(),
            hs[0]["changeSource"].as_str()
        ),
        (Some("country"), Some("CRM_UI"))
    );

    let owners: Value = em
        .http
        .get(format!("{}/_emulator/owners", em.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(owners["salesforce"]["lead"][&lead_id], BOB);
    assert_eq!(owners["salesforce"]["lead"][LEAD], ALICE);
    assert_eq!(owners["hubspot"]["contact"][CONTACT], Value::Null);
}

#[tokio::test]
async fn webhook_batches_are_signed_v3() {
    // A receiver that checks each delivery's signature.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/hubspot", listener.local_addr().unwrap());
    let checked: Arc<Mutex<Vec<Result<(), String>>>> = Arc::default();
    let secret = EmulatorOptions::default().hubspot_client_secret;
    let app = {
        let (checked, url, secret) = (checked.clone(), url.clone(), secret.clone());
        axum::Router::new().route(
            "/hooks/hubspot",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    let ts: u64 = h(TIMESTAMP_HEADER).parse().unwrap_or(0);
                    let now = ts + 1_000;
                    let outcome = verify_hubspot_signature_v3(
                        &secret,
                        "POST",
                        &url,
                        &body,
                        ts,
                        &h(SIGNATURE_HEADER),
                        now,
                    )
                    .map_err(|e| e.to_string());
                    checked.lock().unwrap().push(outcome);
                    axum::http::StatusCode::NO_CONTENT
                },
            ),
        )
    };
    tokio::spawn(async move { axum::serve(listener, app).await });

    let opts = EmulatorOptions {
        webhook_url: Some(url),
        ..EmulatorOptions::default()
    };
    let em = start(opts).await;
    let body = json!({"properties": {"hubspot_owner_id": MAYA}});
    let r = em
        .hs(
            reqwest::Method::PATCH,
            &format!("/crm/v3/objects/contacts/{CONTACT}"),
            Some(body),
        )
        .await;
    assert_eq!(r.status(), 200);
    for _ in 0..100 {
        if em.emulator.stats().webhook_deliveries > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(em.emulator.stats().webhook_deliveries, 1);
    assert_eq!(*checked.lock().unwrap(), vec![Ok(())]);
}

#[tokio::test]
async fn seeded_records_can_announce_themselves() {
    let opts = EmulatorOptions {
        emit_seed_events: true,
        ..EmulatorOptions::default()
    };
    let mut em = start(opts).await;
    // The server task emits before serving: wait for it through a request.
    em.http
        .get(format!("{}/_emulator/stats", em.base))
        .send()
        .await
        .unwrap();
    let (crm, sf) = em.next_event();
    assert_eq!(
        (
            crm,
            sf["payload"]["ChangeEventHeader"]["changeType"].as_str()
        ),
        (Crm::Salesforce, Some("CREATE"))
    );
    let (crm, hs) = em.next_event();
    assert_eq!(
        (crm, hs[0]["subscriptionType"].as_str()),
        (Crm::Hubspot, Some("contact.creation"))
    );
    assert!(em.events.try_recv().is_err());
}

#[tokio::test]
async fn faults_are_deterministic_for_a_seed() {
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let opts = EmulatorOptions {
            rng_seed: 42,
            faults: serde_json::from_value(json!({"error_rates": {"500": 0.3, "503": 0.3}}))
                .unwrap(),
            ..EmulatorOptions::default()
        };
        let em = start(opts).await;
        let mut run = Vec::new();
        for _ in 0..30 {
            let r = em
                .hs(
                    reqwest::Method::GET,
                    &format!("/crm/v3/objects/contacts/{CONTACT}"),
                    None,
                )
                .await;
            run.push(r.status().as_u16());
        }
        statuses.push(run);
    }
    assert_eq!(statuses[0], statuses[1]);
    assert!(statuses[0].contains(&500) && statuses[0].contains(&503) && statuses[0].contains(&200));
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

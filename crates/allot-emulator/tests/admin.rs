//! The emulator's admin API, webhook delivery, seed events and faults.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use allot_core::Crm;
use allot_emulator::EmulatorOptions;
use allot_events::hubspot_signature::{
    verify_hubspot_signature_v3, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use common::*;
use serde_json::{json, Value};
use tokio::net::TcpListener;

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

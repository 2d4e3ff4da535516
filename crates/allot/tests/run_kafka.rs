//! `allot run` in Kafka mode against a real Kafka-protocol broker on
//! loopback: the emulator's change events go to CRM topics, allot consumes
//! them, decides, and writes owners back; a poison message is dead-lettered.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use allot_tests::{unique, Broker};
use serde_json::{json, Value};

mod common;
use common::{start, wait_for, ROOT};

#[test]
fn kafka_mode_routes_emulator_events_and_dead_letters_poison() {
    let broker = Broker::start();
    let (sf, hs, dlq) = (unique("crm.sf"), unique("crm.hs"), unique("allot.dlq"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{ROOT}/config/default.toml"),
        dir.path().join("default.toml"),
    )
    .unwrap();
    let overlay = format!(
        "[kafka]\nenabled = true\nbootstrap_servers = \"{}\"\ngroup_id = \"{}\"\ndlq_topic = \"{dlq}\"\nsession_timeout_ms = 6000\nheartbeat_interval_ms = 1000\npartitions = 2\n\
         [[kafka.sources]]\ntopic = \"{sf}\"\nformat = \"salesforce\"\n[[kafka.sources]]\ntopic = \"{hs}\"\nformat = \"hubspot\"\n",
        broker.bootstrap(),
        unique("allot")
    );
    std::fs::write(dir.path().join("test.toml"), overlay).unwrap();
    let config_dir = dir.path().to_str().unwrap();
    let run = start(dir.path(), &["--env", "test", "--config-dir", config_dir]);
    let http = reqwest::blocking::Client::new();

    // A lead and a contact created in the CRM, in Germany.
    let mut ids = Vec::new();
    for body in [
        json!({"crm": "salesforce", "object": "lead", "fields": {"LastName": "Kraus", "Company": "Kraus GmbH", "Country": "Germany", "Email": "k@kraus.example"}}),
        json!({"crm": "hubspot", "object": "contact", "properties": {"email": "m@moser.example", "country": "Germany"}}),
    ] {
        let v: Value = http
            .post(format!("{}/_emulator/records", run.emulator))
            .json(&body)
            .send()
            .unwrap()
            .json()
            .unwrap();
        ids.push((
            body["crm"].as_str().unwrap().to_string(),
            body["object"].as_str().unwrap().to_string(),
            v["id"].as_str().unwrap().to_string(),
        ));
    }
    for (crm, object, id) in &ids {
        let owner = wait_for(
            &format!("{crm} {object} {id} decided and written"),
            60,
            || {
                let v: Value = http
                    .get(format!(
                        "{}/_emulator/records/{crm}/{object}/{id}",
                        run.emulator
                    ))
                    .send()
                    .ok()?
                    .json()
                    .ok()?;
                let owner = v["owner"].as_str()?.to_string();
                let decided: Value = http
                    .get(format!("{}/api/records/{id}/decisions", run.api))
                    .send()
                    .ok()?
                    .json()
                    .ok()?;
                let d = decided["decisions"].as_array()?.last()?.clone();
                (d["owner"].as_str() == Some(owner.as_str())).then_some((owner, d))
            },
        );
        let territory = owner.1["territory"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(territory.ends_with("-emea"), "{crm} {id}: {territory}");
    }

    // A HubSpot webhook posted to allot (signed like HubSpot does) goes through
    // Kafka too: a contact the CRM already has, now in France.
    let existing = "65059681000";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let body = json!([{"eventId": 77001, "subscriptionId": 1, "portalId": 62515, "appId": 42, "occurredAt": now,
        "subscriptionType": "contact.propertyChange", "attemptNumber": 0, "objectId": existing.parse::<u64>().unwrap(),
        "propertyName": "country", "propertyValue": "France", "changeSource": "CRM_UI"}])
    .to_string();
    let uri = format!("{}/webhooks/hubspot", run.api);
    let signature = allot_crm::hubspot_signature_v3(
        "allot-emulator-hubspot-secret",
        "POST",
        &uri,
        body.as_bytes(),
        now,
    );
    let r = http
        .post(&uri)
        .header("content-type", "application/json")
        .header("x-hubspot-signature-v3", signature)
        .header("x-hubspot-request-timestamp", now.to_string())
        .body(body)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());
    let decided = wait_for("the webhook's contact decided", 60, || {
        let v: Value = http
            .get(format!("{}/api/records/{existing}/decisions", run.api))
            .send()
            .ok()?
            .json()
            .ok()?;
        v["decisions"].as_array()?.last().cloned()
    });
    assert!(
        decided["territory"]
            .as_str()
            .is_some_and(|t| t.starts_with("hs-")),
        "{decided}"
    );

    // Admin changes reach the pipeline owner in Kafka mode too: offboarding
    // the Salesforce lead's owner moves the lead, audited, and writes it.
    let (_, _, lead) = &ids[0];
    let history = |id: &str| -> Vec<Value> {
        let v: Value = http
            .get(format!("{}/api/records/{id}/decisions", run.api))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["decisions"].as_array().cloned().unwrap_or_default()
    };
    let first = history(lead).last().cloned().unwrap();
    let rep = first["owner"].as_str().unwrap().to_string();
    let r = http
        .post(format!("{}/api/reps/{rep}/offboard?preview=false", run.api))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text());
    let moved = wait_for("the offboarded rep's lead re-decided", 30, || {
        history(lead)
            .last()
            .filter(|d| d["owner"].as_str() != Some(rep.as_str()))
            .cloned()
    });
    assert!(
        moved["explanation"][0]
            .as_str()
            .is_some_and(|l| l.starts_with("offboard")),
        "{moved:#}"
    );
    wait_for("the new owner written to the CRM", 30, || {
        let v: Value = http
            .get(format!(
                "{}/_emulator/records/salesforce/lead/{lead}",
                run.emulator
            ))
            .send()
            .ok()?
            .json()
            .ok()?;
        (v["owner"] == moved["owner"]).then_some(())
    });

    // A poison message on the Salesforce topic lands in the DLQ with its reason.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cfg = allot_bus::KafkaConfig {
            session_timeout_ms: 6_000,
            heartbeat_interval_ms: 1_000,
            ..allot_bus::KafkaConfig::new(broker.bootstrap(), &unique("reader"))
        };
        let sink = allot_bus::KafkaSink::new(&cfg).unwrap();
        sink.send(&sf, b"x", b"{oops", &[]).await.unwrap();
        let mut dl = allot_bus::KafkaSource::subscribe(&cfg, &[&dlq]).unwrap();
        let d = tokio::time::timeout(Duration::from_secs(60), dl.next())
            .await
            .expect("a dead letter")
            .unwrap();
        assert_eq!(d.header("allot-source-topic"), Some(sf.as_bytes()));
        assert_eq!(d.header("allot-error-kind"), Some(&b"json"[..]));
    });
}

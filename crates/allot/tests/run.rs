//! `allot run` as a user starts it: the whole embedded loop against the
//! built-in emulator, driven through allot's own HTTP endpoints.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{json, Value};

mod common;
use common::{start, wait_for};

fn get(url: &str) -> Option<Value> {
    let r = reqwest::blocking::get(url).ok()?;
    r.status().is_success().then(|| r.json().ok()).flatten()
}

fn owner_in_emulator(emulator: &str, crm: &str, object: &str, id: &str) -> Option<String> {
    let v = get(&format!("{emulator}/_emulator/records/{crm}/{object}/{id}"))?;
    v["owner"].as_str().map(str::to_string)
}

fn decisions(api: &str, id: &str) -> Vec<Value> {
    get(&format!("{api}/api/records/{id}/decisions"))
        .and_then(|v| v["decisions"].as_array().cloned())
        .unwrap_or_default()
}

#[test]
fn webhooks_and_cdc_in_owners_out_and_no_echo_loop() {
    let dir = tempfile::tempdir().unwrap();
    let run = start(dir.path(), &[]);
    let http = reqwest::blocking::Client::new();

    // Salesforce: the creation of a seeded lead the queue owns (US, MA), as a
    // CDC connector would post it to allot's endpoint.
    let lead = "00Q5f000006RW01EAG";
    let cdc = json!({"schema": "x", "payload": {"ChangeEventHeader": {"entityName": "Lead", "recordIds": [lead], "changeType": "CREATE",
        "changeOrigin": "com/salesforce/api/rest/62.0;client=web-to-lead", "transactionKey": "tk-1", "sequenceNumber": 1,
        "commitTimestamp": 1_900_000_000_000i64, "commitNumber": 1, "commitUser": "0055f000001AIIIAA4", "changedFields": []},
        "Name": {"FirstName": "Dana", "LastName": "Wells"}, "Company": "Harbor Freight Analytics", "Email": "dana@harbor.example",
        "Address": {"State": "MA", "Country": "United States"}, "NumberOfEmployees": 850, "OwnerId": "0055f000001AIIIAA4"},
        "event": {"replayId": 990001}, "channel": "/data/LeadChangeEvent"});
    let r = http
        .post(format!("{}/webhooks/salesforce", run.api))
        .json(&cdc)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());

    // HubSpot: a contact created in the CRM; the emulator delivers the signed
    // webhook to allot, which reads the contact's properties back.
    let created: Value = http
        .post(format!("{}/_emulator/records", run.emulator))
        .json(&json!({"crm": "hubspot", "object": "contact", "properties": {"email": "ines@kontor.example", "country": "Germany"}}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let contact = created["id"].as_str().unwrap().to_string();

    let sf_owner = wait_for("the lead's new owner in the emulator", 30, || {
        owner_in_emulator(&run.emulator, "salesforce", "lead", lead)
            .filter(|o| o != "0055f000001AIIIAA4")
    });
    assert!(
        [
            "0055f000001AAAAAA4",
            "0055f000001ABBBAA4",
            "0055f000001ACCCAA4"
        ]
        .contains(&sf_owner.as_str()),
        "NA team: {sf_owner}"
    );
    let hs_owner = wait_for("the contact's owner in the emulator", 30, || {
        owner_in_emulator(&run.emulator, "hubspot", "contact", &contact)
    });
    assert!(
        ["910903", "910905"].contains(&hs_owner.as_str()),
        "EMEA team: {hs_owner}"
    );

    // Explanations are queryable.
    let d = decisions(&run.api, lead);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0]["territory"], "sf-na");
    assert_eq!(d[0]["owner"], sf_owner.as_str());
    assert!(d[0]["explanation"]
        .as_array()
        .is_some_and(|e| !e.is_empty()));

    // The echo of allot's own writes comes back and decides nothing more.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(decisions(&run.api, lead).len(), 1);
    assert_eq!(decisions(&run.api, &contact).len(), 1);
    let metrics = http
        .get(format!("{}/metrics", run.api))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let echoes: f64 = metrics
        .lines()
        .find(|l| l.starts_with("allot_ingest_echoes_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(
        echoes >= 1.0,
        "allot's own writes came back as echoes:\n{metrics}"
    );
}

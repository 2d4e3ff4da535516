//! Changes the CRM could not describe, against `allot run` and its
//! emulator: Salesforce sends GAP_OVERFLOW (no record ids) for leads
//! created in bulk, or an update with the wildcard id `00Q*` (every lead
//! changed). Neither is a dead letter nor a record: allot resyncs the lead
//! object from the gap's commit time, and the new leads are decided as
//! their events would have decided them. No record with a wildcard id is
//! ever stored.

#![allow(clippy::unwrap_used)]

mod common;

use serde_json::{json, Value};

use common::{start, wait_for};

const LEADS: usize = 20;

fn get(url: &str) -> Value {
    reqwest::blocking::get(url).unwrap().json().unwrap()
}

fn post(url: &str, body: &Value) -> reqwest::blocking::Response {
    reqwest::blocking::Client::new()
        .post(url)
        .json(body)
        .send()
        .unwrap()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn overflow_and_wildcard_ids_resync_the_object_and_its_records_are_decided() {
    let dir = tempfile::tempdir().unwrap();
    let run = start(dir.path(), &[]);
    let faults = format!("{}/_emulator/faults", run.emulator);
    assert!(post(&faults, &json!({"error_rates": {"OVERFLOW": 1.0}}))
        .status()
        .is_success());

    // Leads created in bulk: Salesforce describes none of them, only the overflow.
    let leads: Vec<Value> = (0..LEADS)
        .map(|i| {
            json!({"crm": "salesforce", "object": "lead", "fields": {
                "FirstName": "Bulk", "LastName": format!("Import {i}"), "Company": format!("Bulk Co {i}"),
                "Email": format!("bulk{i}@bulk-co-{i}.example"), "Country": "Germany", "City": "Berlin",
                "Industry": "Software", "NumberOfEmployees": 50 + i, "LeadSource": "Web"}})
        })
        .collect();
    let created: Value = post(
        &format!("{}/_emulator/records", run.emulator),
        &json!(leads),
    )
    .json()
    .unwrap();
    let ids: Vec<String> = created
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), LEADS);
    // allot's own writes of them come back as plain events.
    assert!(post(&faults, &json!({"reset": true})).status().is_success());

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    for id in &ids {
        let d = loop {
            let v = get(&format!("{}/api/records/{id}/decisions", run.api));
            if let Some(d) = v["decisions"].as_array().and_then(|d| d.first().cloned()) {
                break d;
            }
            if std::time::Instant::now() > deadline {
                let sync = get(&format!("{}/api/sync", run.api));
                let decided = ids
                    .iter()
                    .filter(|i| {
                        let v = get(&format!("{}/api/records/{i}/decisions", run.api));
                        v["decisions"].as_array().is_some_and(|d| !d.is_empty())
                    })
                    .count();
                let crm = get(&format!(
                    "{}/_emulator/records/salesforce/lead/{id}",
                    run.emulator
                ));
                let dead = reqwest::blocking::get(format!("{}/metrics", run.api))
                    .unwrap()
                    .text()
                    .unwrap();
                let dead: Vec<&str> = dead
                    .lines()
                    .filter(|l| {
                        l.contains("dead_lettered") || l.contains("resync") || l.contains("deduped")
                    })
                    .collect();
                panic!("lead {id} not decided after the resync ({decided} of {} are); crm {crm}; sync: {sync}; {dead:?}", ids.len());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        assert_eq!(d["territory"], "sf-emea", "{d}");
        assert!(d["owner"].is_string(), "{d}");
    }
    let sync = wait_for("the resync run finished", 30, || {
        let v = get(&format!("{}/api/sync", run.api));
        let idle = v["running"] == false && v["run"]["finished_at"].is_number();
        (idle && v["resync_requests"] == json!([])).then_some(v)
    });
    assert_eq!(sync["run"]["by"], "resync", "{sync}");
    assert!(sync["run"]["error"].is_null(), "{sync}");
    assert_eq!(sync["resync_requests"], json!([]), "{sync}");
    let metrics = reqwest::blocking::get(format!("{}/metrics", run.api))
        .unwrap()
        .text()
        .unwrap();
    assert!(metric(&metrics, "allot_ingest_resync_requests_total") >= 1.0);
    assert_eq!(
        metric(&metrics, "allot_ingest_dead_lettered_total"),
        0.0,
        "{metrics}"
    );

    // A change to every lead (a field type conversion nulled a field): `00Q*`.
    let runs_before = sync["run"]["started_at"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let wildcard = json!({
        "schema": "wildcard-test",
        "payload": {"Rating": null, "ChangeEventHeader": {
            "entityName": "Lead", "recordIds": ["00Q*"], "changeType": "UPDATE",
            "changeOrigin": "", "transactionKey": "wildcard-1", "sequenceNumber": 1,
            "commitTimestamp": now, "commitNumber": 1, "commitUser": "0055f000001AIIIAA4",
            "changedFields": ["Rating"], "nulledFields": ["Rating"], "diffFields": []}},
        "event": {"replayId": 990001},
        "channel": "/data/LeadChangeEvent",
    });
    let r = post(&format!("{}/webhooks/salesforce", run.api), &wildcard);
    assert!(r.status().is_success(), "{}", r.text().unwrap());
    // allot's own writes of the bulk leads came back as overflows too, so
    // wait for the run that answers the wildcard: from its commit time.
    let lead = wait_for("a resync from the wildcard's commit time", 60, || {
        let v = get(&format!("{}/api/sync", run.api));
        let started = v["run"]["started_at"].as_i64()?;
        let lead = v["objects"]
            .as_array()?
            .iter()
            .find(|o| o["object"] == "salesforce/lead")
            .cloned()?;
        let since = lead["cursor"]["since"].as_i64()?;
        let done = v["run"]["finished_at"].is_number() && v["run"]["by"] == "resync";
        (started > runs_before && done && since >= now - 1_000).then_some(lead)
    });
    // Incremental: from the wildcard's commit time, not the whole book again.
    assert_eq!(lead["cursor"]["done"], true, "{lead}");
    let phantom = get(&format!("{}/api/records/00Q*/decisions", run.api));
    assert_eq!(
        phantom["decisions"].as_array().map_or(0, Vec::len),
        0,
        "{phantom}"
    );
    let records: Value = get(&format!("{}/api/overview", run.api));
    assert!(
        !records.to_string().contains("00Q*"),
        "a wildcard id reached the overview"
    );
}

//! Microservice mode end to end on a real Kafka-protocol broker: the CRM
//! emulator, `allot serve ingest|assign|write|api` as separate processes,
//! raw CDC and HubSpot events produced by the emulator. Assign and write are
//! killed with SIGKILL mid-stream and restarted on their stores: the
//! emulator's final owners equal the expected assignment, every record is
//! decided and written, nothing is rejected, and allot's own writes coming
//! back as change events cause no further writes.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use allot_tests::{unique, Broker};
use serde_json::{json, Value};

mod common;
use common::{otlp_collector as collector, serve_stage as stage_on, spawn, wait_for, Proc, ROOT};

/// Service names by trace id, from the OTLP JSON bodies received.
fn services_by_trace(bodies: &[Value]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for b in bodies {
        for rs in b["resourceSpans"].as_array().into_iter().flatten() {
            let service = rs["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["key"] == "service.name")
                .and_then(|a| a["value"]["stringValue"].as_str())
                .unwrap_or("")
                .to_string();
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    if let Some(t) = span["traceId"].as_str() {
                        out.entry(t.to_string())
                            .or_default()
                            .insert(service.clone());
                    }
                }
            }
        }
    }
    out
}

fn stage(name: &str, dir: &Path) -> Proc {
    stage_on(name, dir, &format!("store-{name}"))
}

const COUNTRIES: [(&str, &str, &str); 4] = [
    // (country, Salesforce owner, HubSpot owner)
    ("Germany", "0055f000001ADDDAA4", "910905"),
    ("France", "0055f000001AEEEAA4", "910902"),
    ("Japan", "0055f000001AFFFAA4", "910901"),
    ("Brazil", "0055f000001AAAAAA4", "910901"),
];

fn metric(http: &reqwest::blocking::Client, url: &str, name: &str) -> f64 {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn stages_as_processes_survive_sigkill_and_write_the_expected_owners() {
    let broker = Broker::start();
    let (otlp, spans) = collector();
    let dir = tempfile::tempdir().unwrap();
    let (sf, hs) = (unique("crm.sf"), unique("crm.hs"));
    let emulator = spawn(
        &[
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--kafka-bootstrap",
            broker.bootstrap(),
            "--salesforce-topic",
            &sf,
            "--hubspot-topic",
            &hs,
        ],
        &[],
        "listening on",
    );
    std::fs::copy(
        format!("{ROOT}/config/default.toml"),
        dir.path().join("default.toml"),
    )
    .unwrap();
    let overlay = format!(
        "[rules]\npath = \"{root}/crates/allot/tests/data/serve-rules.toml\"\n\
         [emulator]\nurl = \"{emu}\"\n\
         [kafka]\nbootstrap_servers = \"{b}\"\ngroup_id = \"{g}-ingest\"\ndlq_topic = \"{dlq}\"\n\
         session_timeout_ms = 6000\nheartbeat_interval_ms = 1000\npartitions = 3\n\
         [[kafka.sources]]\ntopic = \"{sf}\"\nformat = \"salesforce\"\n\
         [[kafka.sources]]\ntopic = \"{hs}\"\nformat = \"hubspot\"\n\
         [kafka.stages]\nevents_topic = \"{ev}\"\ndecisions_topic = \"{de}\"\n\
         assign_group = \"{g}-assign\"\nwrite_group = \"{g}-write\"\napi_group = \"{g}-api\"\n\
         [writer]\nlinger_ms = 50\n\
         [telemetry]\notlp_endpoint = \"{otlp}\"\notlp_protocol = \"http/json\"\n",
        root = ROOT,
        emu = emulator.url,
        b = broker.bootstrap(),
        g = unique("allot"),
        dlq = unique("allot.dlq"),
        ev = unique("allot.events"),
        de = unique("allot.decisions"),
    );
    std::fs::write(dir.path().join("test.toml"), overlay).unwrap();

    let ingest = stage("ingest", dir.path());
    let mut assign = stage("assign", dir.path());
    let write = stage("write", dir.path());
    let api = stage("api", dir.path());
    let http = reqwest::blocking::Client::new();

    let create = |i: usize| {
        let (country, sf_owner, hs_owner) = COUNTRIES[i % COUNTRIES.len()];
        let (body, owner) = if i.is_multiple_of(2) {
            (
                json!({"crm": "salesforce", "object": "lead", "fields": {
                    "LastName": format!("Lead{i}"), "Company": format!("Company {i}"),
                    "Country": country, "Email": format!("p{i}@firm{i}.example")}}),
                sf_owner,
            )
        } else {
            (
                json!({"crm": "hubspot", "object": "contact", "properties": {
                    "email": format!("c{i}@corp{i}.example"), "country": country}}),
                hs_owner,
            )
        };
        let v: Value = http
            .post(format!("{}/_emulator/records", emulator.url))
            .json(&body)
            .send()
            .unwrap()
            .json()
            .unwrap();
        (
            body["crm"].as_str().unwrap().to_string(),
            body["object"].as_str().unwrap().to_string(),
            v["id"].as_str().unwrap().to_string(),
            owner.to_string(),
        )
    };

    const N: usize = 48;
    let mut expected = Vec::new();
    for i in 0..N / 3 {
        expected.push(create(i));
    }
    // Some of the first records are decided and written by now.
    wait_for("the first decisions", 60, || {
        (metric(&http, &write.url, "allot_writer_changes_written_total") > 0.0).then_some(())
    });
    for i in N / 3..2 * N / 3 {
        expected.push(create(i));
    }
    assign.kill9();
    write.kill9();
    for i in 2 * N / 3..N {
        expected.push(create(i));
    }
    std::thread::sleep(Duration::from_millis(500));
    assign = stage("assign", dir.path());
    let _write = stage("write", dir.path());

    let owner_of = |crm: &str, object: &str, id: &str| -> Option<String> {
        let v: Value = http
            .get(format!(
                "{}/_emulator/records/{crm}/{object}/{id}",
                emulator.url
            ))
            .send()
            .ok()?
            .json()
            .ok()?;
        v["owner"].as_str().map(str::to_string)
    };
    wait_for("every record owned as expected", 120, || {
        expected
            .iter()
            .all(|(crm, object, id, owner)| owner_of(crm, object, id).as_deref() == Some(owner))
            .then_some(())
    });
    for (crm, object, id, owner) in &expected {
        assert_eq!(
            owner_of(crm, object, id).as_deref(),
            Some(owner.as_str()),
            "{crm} {object} {id}"
        );
    }

    // The echoes of allot's writes reach assign and are recognised; no
    // further writes follow them.
    wait_for("echoes of allot's own writes recognised", 60, || {
        (metric(&http, &assign.url, "allot_ingest_echoes_total") > 0.0).then_some(())
    });
    let stats = || -> Value {
        http.get(format!("{}/_emulator/stats", emulator.url))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let before = stats();
    std::thread::sleep(Duration::from_secs(3));
    let after = stats();
    assert_eq!(
        before["records_updated"], after["records_updated"],
        "writes after settling"
    );
    let updated = after["records_updated"]["salesforce"].as_u64().unwrap()
        + after["records_updated"]["hubspot"].as_u64().unwrap();
    let rejected = after["records_rejected"]["salesforce"].as_u64().unwrap()
        + after["records_rejected"]["hubspot"].as_u64().unwrap();
    assert_eq!(rejected, 0, "{after}");
    // Every record written at least once; a decision redone after the kill
    // may be written again, with the same owner (territories have one rep).
    assert!(
        updated >= N as u64,
        "{updated} writes for {N} records: {after}"
    );
    assert!(
        updated <= 2 * N as u64,
        "{updated} writes for {N} records: {after}"
    );

    // The api stage explains every record from the decisions topic; a
    // second one on an empty store rebuilds the same from the topic.
    let rebuilt = stage_on("api", dir.path(), "store-api-fresh");
    for ((_, _, id, owner), api) in expected
        .iter()
        .step_by(5)
        .flat_map(|e| [(e, &api), (e, &rebuilt)])
    {
        let v = wait_for(&format!("decisions of {id} in the api stage"), 30, || {
            let v: Value = http
                .get(format!("{}/api/records/{id}/decisions", api.url))
                .send()
                .ok()?
                .json()
                .ok()?;
            v["decisions"].as_array().filter(|d| !d.is_empty())?;
            Some(v)
        });
        let last = v["decisions"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["owner"].as_str(), Some(owner.as_str()), "{v}");
        assert!(!last["explanation"].as_array().unwrap().is_empty());
    }
    // The rebuilt audit holds each decision once, as the first one does.
    let count = |url: &str, id: &str| -> usize {
        let v: Value = http
            .get(format!("{url}/api/records/{id}/decisions"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["decisions"].as_array().map_or(0, Vec::len)
    };
    for (_, _, id, _) in expected.iter().step_by(5) {
        assert_eq!(
            count(&api.url, id),
            count(&rebuilt.url, id),
            "decisions of {id}"
        );
    }

    // The api stage takes webhooks: a Salesforce change event posted to it
    // goes to the source topic, and ingest, assign and write take it on.
    let lead = "00Q5f000009WEBHAA4";
    let cdc = json!({"schema": "x", "event": {"replayId": 990_001},
        "channel": "/data/LeadChangeEvent",
        "payload": {"ChangeEventHeader": {"entityName": "Lead", "recordIds": [lead],
            "changeType": "CREATE", "changeOrigin": "com/salesforce/api/rest/62.0;client=web",
            "transactionKey": "t-webhook", "sequenceNumber": 1,
            "commitTimestamp": 1_764_061_200_000i64, "commitNumber": 990_001,
            "commitUser": "005x", "changedFields": []},
            "LastName": "Webhook", "Company": "Hook GmbH", "Country": "Germany"}});
    let r = http
        .post(format!("{}/webhooks/salesforce", api.url))
        .json(&cdc)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());
    let via_webhook = wait_for("the webhook's lead decided", 60, || {
        let v: Value = http
            .get(format!("{}/api/records/{lead}/decisions", api.url))
            .send()
            .ok()?
            .json()
            .ok()?;
        v["decisions"].as_array()?.last().cloned()
    });
    assert_eq!(
        via_webhook["owner"].as_str(),
        Some(COUNTRIES[0].1),
        "{via_webhook:#}"
    );

    // One trace per event across the processes: some trace has spans from
    // ingest, assign and write (exported in batches every few seconds).
    let all: BTreeSet<String> = ["allot-ingest", "allot-assign", "allot-write"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let found = (0..300).any(|_| {
        let by_trace = services_by_trace(&spans.lock().unwrap());
        let ok = by_trace.values().any(|s| all.is_subset(s));
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
        }
        ok
    });
    let bodies = spans.lock().unwrap();
    assert!(
        found,
        "no trace spans ingest, assign and write; {} bodies received, traces: {:?}",
        bodies.len(),
        services_by_trace(&bodies)
            .into_iter()
            .take(10)
            .collect::<Vec<_>>()
    );
    drop(ingest);
    drop(api);
}

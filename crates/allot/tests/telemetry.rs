//! `allot run` exports its traces over OTLP/HTTP when
//! `telemetry.otlp_endpoint` is set: a collector on loopback receives the
//! spans of the stages, named for the service `allot`, flushed when the
//! process stops on SIGTERM. No broker.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use serde_json::{json, Value};

mod common;
use common::{otlp_collector as collector, start_with, wait_for};

/// A span as received: its service, name, attributes and the names of its
/// named events (their field `event`).
#[derive(Debug)]
struct Span {
    service: String,
    name: String,
    attributes: Vec<(String, String)>,
    events: Vec<String>,
}

fn value(v: &Value) -> String {
    let v = &v["value"];
    v["stringValue"]
        .as_str()
        .map(str::to_string)
        .or_else(|| v["intValue"].as_str().map(str::to_string))
        .unwrap_or_else(|| v.to_string())
}

fn spans(bodies: &[Value]) -> Vec<Span> {
    let mut out = Vec::new();
    for b in bodies {
        for rs in b["resourceSpans"].as_array().into_iter().flatten() {
            let service = rs["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["key"] == "service.name")
                .map(value)
                .unwrap_or_default();
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    out.push(Span {
                        service: service.clone(),
                        name: s["name"].as_str().unwrap_or_default().to_string(),
                        attributes: s["attributes"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|a| (a["key"].as_str().unwrap_or_default().to_string(), value(a)))
                            .collect(),
                        events: s["events"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|e| {
                                e["attributes"]
                                    .as_array()?
                                    .iter()
                                    .find(|a| a["key"] == "event")
                                    .map(value)
                            })
                            .collect(),
                    });
                }
            }
        }
    }
    out
}

fn decisions(api: &str, id: &str) -> usize {
    reqwest::blocking::get(format!("{api}/api/records/{id}/decisions"))
        .ok()
        .and_then(|r| r.json::<Value>().ok())
        .and_then(|v| v["decisions"].as_array().map(Vec::len))
        .unwrap_or(0)
}

#[test]
fn allot_run_exports_the_spans_of_its_stages_to_an_otlp_collector() {
    let (otlp, bodies) = collector();
    let dir = tempfile::tempdir().unwrap();
    let mut run = start_with(
        dir.path(),
        &[],
        &[
            ("ALLOT__TELEMETRY__OTLP_ENDPOINT", otlp.as_str()),
            ("ALLOT__TELEMETRY__OTLP_PROTOCOL", "http/json"),
            // Nothing is exported on the way: what arrives was flushed at exit.
            ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ],
    );
    let http = reqwest::blocking::Client::new();

    // Records created in the emulator: a HubSpot contact (a signed webhook to
    // allot) and a Salesforce lead (a change event into the log).
    let mut ids = Vec::new();
    for body in [
        json!({"crm": "hubspot", "object": "contact", "properties": {"email": "ines@kontor.example", "country": "Germany"}}),
        json!({"crm": "salesforce", "object": "lead", "fields": {"LastName": "Wells", "Company": "Harbor Freight Analytics",
            "Country": "United States", "State": "MA", "Email": "dana@harbor.example"}}),
    ] {
        let created: Value = http
            .post(format!("{}/_emulator/records", run.emulator))
            .json(&body)
            .send()
            .unwrap()
            .json()
            .unwrap();
        ids.push(created["id"].as_str().unwrap().to_string());
    }
    // And a payload no decoder takes: dead-lettered.
    let r = http
        .post(format!("{}/webhooks/salesforce", run.api))
        .json(&json!({"not": "a change event"}))
        .send()
        .unwrap();
    // Told at once, and kept: dead-lettered with its reason by ingest.
    assert_eq!(
        r.status(),
        reqwest::StatusCode::BAD_REQUEST,
        "{:?}",
        r.text()
    );
    for id in &ids {
        wait_for(&format!("a decision for {id}"), 60, || {
            (decisions(&run.api, id) > 0).then_some(())
        });
    }
    assert!(
        bodies.lock().unwrap().is_empty(),
        "spans exported before the end although the batch delay is 10 minutes"
    );

    let status = run.terminate(60);
    assert!(status.success(), "allot run exited with {status}");
    let spans = wait_for(
        "the collector to hold the spans of ingest and assign",
        10,
        || {
            let spans = spans(&bodies.lock().unwrap());
            let names: BTreeSet<&str> = spans.iter().map(|s| s.name.as_str()).collect();
            (names.contains("ingest") && names.contains("assign")).then_some(spans)
        },
    );

    let services: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(services, BTreeSet::from(["allot"]), "{spans:#?}");
    for id in &ids {
        assert!(
            spans.iter().any(|s| s.name == "assign"
                && s.attributes
                    .contains(&("record_id".to_string(), id.clone()))),
            "no assign span for {id}: {spans:#?}"
        );
    }
    // The dead letter is a named event of an ingest span.
    assert!(
        spans
            .iter()
            .any(|s| s.name == "ingest" && s.events.iter().any(|e| e == "allot.dead_letter")),
        "no allot.dead_letter event in an ingest span: {spans:#?}"
    );
}

//! The two modes agree: the same records, created in the same order in two
//! emulators started from the same seed, decided by `allot run` (one
//! process over the embedded log) and by `allot serve ingest`, `assign` and
//! `write` (three processes over a broker), give the same decisions, with
//! the same explanations, and the same owners written to the CRM.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use allot_tests::{unique, Broker};
use serde_json::{json, Value};

mod common;
use common::{serve_stage, spawn, wait_for, Proc, ROOT};

/// Records across the default rules' trees: weighted, round-robin and
/// least-loaded teams, single owners, and the fallback.
fn record(i: usize) -> Value {
    const COUNTRIES: [&str; 7] = [
        "United States",
        "Canada",
        "Germany",
        "France",
        "Japan",
        "Brazil",
        "Atlantis",
    ];
    let country = COUNTRIES[i % COUNTRIES.len()];
    if i % 3 == 2 {
        json!({"crm": "hubspot", "object": "contact", "properties": {
            "email": format!("c{i}@corp{i}.example"), "country": country,
            "firstname": "Casey", "lastname": format!("Contact {i}")}})
    } else {
        json!({"crm": "salesforce", "object": "lead", "fields": {
            "LastName": format!("Lead {i}"), "Company": format!("Company {i}"),
            "Country": country, "Email": format!("p{i}@firm{i}.example"),
            "NumberOfEmployees": 10 + (i * 37) % 900, "LeadSource": "Web"}})
    }
}

const N: usize = 42;

/// Creates the records in the emulator at `url`, in order: (crm, object, id).
fn create_all(url: &str) -> Vec<(String, String, String)> {
    let http = reqwest::blocking::Client::new();
    (0..N)
        .map(|i| {
            let body = record(i);
            let v: Value = http
                .post(format!("{url}/_emulator/records"))
                .json(&body)
                .send()
                .unwrap()
                .json()
                .unwrap();
            let s = |k: &str| body[k].as_str().unwrap().to_string();
            (s("crm"), s("object"), v["id"].as_str().unwrap().to_string())
        })
        .collect()
}

fn owner(emulator: &str, (crm, object, id): &(String, String, String)) -> Option<String> {
    let v: Value =
        reqwest::blocking::get(format!("{emulator}/_emulator/records/{crm}/{object}/{id}"))
            .ok()?
            .json()
            .ok()?;
    v["owner"].as_str().map(str::to_string)
}

/// What must agree about a decision: all of it but when it was made and
/// the record's id (each emulator numbers its records itself: the same
/// record is the same creation, not the same id).
fn comparable(mut d: Value) -> Value {
    let o = d.as_object_mut().unwrap();
    o.remove("decided_at");
    o.remove("record_id");
    d
}

/// Decisions per record from the API of a running allot.
fn decisions_via_api(api: &str, id: &str) -> Option<Vec<Value>> {
    let r = reqwest::blocking::get(format!("{api}/api/records/{id}/decisions")).ok()?;
    let v: Value = r.error_for_status().ok()?.json().ok()?;
    Some(
        v["decisions"]
            .as_array()?
            .iter()
            .cloned()
            .map(comparable)
            .collect(),
    )
}

/// Waits until each record's owner in the emulator is its last decision's.
fn written(emulator: &str, records: &[(String, String, String)], last: &BTreeMap<String, Value>) {
    wait_for("every decided owner written to the CRM", 90, || {
        records
            .iter()
            .all(|r| owner(emulator, r).as_deref() == last[&r.2]["owner"].as_str())
            .then_some(())
    });
}

/// Per record, in creation order: its decisions, and its owner in the CRM.
struct Outcome {
    decisions: Vec<Vec<Value>>,
    owners: Vec<Option<String>>,
}

/// Decides `records` through the API at `api`, waits until the CRM at
/// `emulator` shows every decided owner and nothing more is decided.
fn outcome(api: &str, emulator: &str, records: &[(String, String, String)]) -> Outcome {
    let mut last = BTreeMap::new();
    for r in records {
        let ds = wait_for(&format!("a decision about {}", r.2), 90, || {
            decisions_via_api(api, &r.2)
        });
        last.insert(r.2.clone(), ds.last().unwrap().clone());
    }
    written(emulator, records, &last);
    // Settled: the writes' echoes decide nothing.
    std::thread::sleep(std::time::Duration::from_secs(2));
    Outcome {
        decisions: records
            .iter()
            .map(|r| decisions_via_api(api, &r.2).unwrap())
            .collect(),
        owners: records.iter().map(|r| owner(emulator, r)).collect(),
    }
}

/// `allot run` with its built-in emulator.
fn one_process() -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let run = common::start(dir.path(), &[]);
    let records = create_all(&run.emulator);
    outcome(&run.api, &run.emulator, &records)
}

/// `allot serve ingest|assign|write|api` over a broker with one partition
/// per topic (the order a single process sees), beside `allot emulator`.
fn stages() -> Outcome {
    let broker = Broker::start_in_memory();
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
    broker.create_topic(&sf, 1);
    broker.create_topic(&hs, 1);
    std::fs::copy(
        format!("{ROOT}/config/default.toml"),
        dir.path().join("default.toml"),
    )
    .unwrap();
    let overlay = format!(
        "[rules]\npath = \"{ROOT}/config/rules.toml\"\n\
         [emulator]\nurl = \"{emu}\"\n\
         [kafka]\nbootstrap_servers = \"{b}\"\ngroup_id = \"{g}-ingest\"\ndlq_topic = \"{dlq}\"\n\
         session_timeout_ms = 6000\nheartbeat_interval_ms = 1000\npartitions = 1\n\
         [[kafka.sources]]\ntopic = \"{sf}\"\nformat = \"salesforce\"\n\
         [[kafka.sources]]\ntopic = \"{hs}\"\nformat = \"hubspot\"\n\
         [kafka.stages]\nevents_topic = \"{ev}\"\ndecisions_topic = \"{de}\"\n\
         assign_group = \"{g}-assign\"\nwrite_group = \"{g}-write\"\napi_group = \"{g}-api\"\n",
        emu = emulator.url,
        b = broker.bootstrap(),
        g = unique("allot"),
        dlq = unique("allot.dlq"),
        ev = unique("allot.events"),
        de = unique("allot.decisions"),
    );
    std::fs::write(dir.path().join("test.toml"), overlay).unwrap();
    let stage = |name: &str| serve_stage(name, dir.path(), &format!("store-{name}"));
    let _stages: Vec<Proc> = ["ingest", "assign", "write"]
        .into_iter()
        .map(stage)
        .collect();
    let api = stage("api");
    let records = create_all(&emulator.url);
    outcome(&api.url, &emulator.url, &records)
}

#[test]
fn allot_run_and_allot_serve_decide_and_write_the_same() {
    let one = one_process();
    let many = stages();
    assert_eq!(one.decisions.len(), N, "every record decided");
    for (i, (a, b)) in one.decisions.iter().zip(&many.decisions).enumerate() {
        assert_eq!(
            a,
            b,
            "record {i} ({}): allot run (left) and allot serve (right) decided differently",
            record(i)
        );
    }
    assert_eq!(one.owners, many.owners, "the CRM owners");
    // Not vacuous: the records went to several owners, through rotation.
    let mut by_owner: BTreeMap<&str, usize> = BTreeMap::new();
    for o in one.owners.iter().flatten() {
        *by_owner.entry(o).or_default() += 1;
    }
    assert!(by_owner.len() >= 6, "{by_owner:?}");
    assert!(one.owners.iter().all(Option::is_some), "{:?}", one.owners);
}

//! Bulk imports through `allot run` against the emulator: records whose
//! events do not carry their fields (HubSpot contact creations, Salesforce
//! gap events) are parked, read back in batches under the CRM's limit, and
//! decided as a run that knew every field would decide them — with and
//! without 5xx and 429 storms injected.
//!
//! The reference run is the engine itself (`allot simulate`) over the same
//! records with all their fields, in creation order: what a run slow enough
//! to read each record before the next arrives gives.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;
use common::{start, wait_for, ROOT};

/// Records per CRM and the creation rate of each.
const RECORDS: usize = 2_000;
const PER_SEC: usize = 40;
const QUEUE: &str = "0055f000001AIIIAA4";

/// The country of record `i`: a mix of the NA and EMEA territories.
fn country(i: usize) -> &'static str {
    [
        "United States",
        "Germany",
        "Canada",
        "France",
        "United States",
    ][i % 5]
}

fn contact(i: usize) -> Value {
    json!({"crm": "hubspot", "object": "contact", "properties": {
        "email": format!("bulk{i}@import{i}.example"), "firstname": format!("Bulk{i}"),
        "lastname": "Import", "country": country(i)}})
}

fn lead(i: usize) -> Value {
    json!({"crm": "salesforce", "object": "lead", "fields": {
        "LastName": format!("Import{i}"), "Company": format!("Import {i} GmbH"),
        "Email": format!("lead{i}@leadimport{i}.example"), "Country": country(i),
        "OwnerId": QUEUE}})
}

/// The record allot should have decided, with every field, as `allot simulate` reads it.
fn canonical(object: &str, id: &str, i: usize) -> Value {
    let (crm, email, owner) = match object {
        "contact" => ("hubspot", format!("bulk{i}@import{i}.example"), None),
        _ => (
            "salesforce",
            format!("lead{i}@leadimport{i}.example"),
            Some(QUEUE),
        ),
    };
    json!({"object": object, "id": id, "owner": owner,
        "fields": {"crm": crm, "email": email, "country": country(i)}})
}

/// Creates `RECORDS` records in the emulator at `PER_SEC`; their ids in order.
fn create(emulator: &str, make: fn(usize) -> Value) -> Vec<String> {
    let http = reqwest::blocking::Client::new();
    let per_tick = PER_SEC / 10;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(RECORDS);
    for (tick, chunk) in (0..RECORDS)
        .collect::<Vec<_>>()
        .chunks(per_tick)
        .enumerate()
    {
        let due = started + Duration::from_millis(100 * tick as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let body: Vec<Value> = chunk.iter().map(|i| make(*i)).collect();
        let created: Value = http
            .post(format!("{emulator}/_emulator/records"))
            .json(&body)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let list = match created {
            Value::Array(a) => a,
            one => vec![one],
        };
        ids.extend(list.iter().map(|v| v["id"].as_str().unwrap().to_string()));
    }
    ids
}

fn get(url: &str) -> Option<Value> {
    let r = reqwest::blocking::get(url).ok()?;
    r.status().is_success().then(|| r.json().ok()).flatten()
}

fn faults(emulator: &str, patch: Value) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{emulator}/_emulator/faults"))
        .json(&patch)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "faults: {:?}", r.text());
}

/// A counter's sum over its series in a Prometheus exposition.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `allot simulate` over `records` in order: id → (territory, owner, strategy).
fn reference(records: &[Value]) -> HashMap<String, (Option<String>, Option<String>, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["simulate", "--rules", "config/rules.toml"])
        .current_dir(ROOT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Written from a thread: simulate answers while it reads.
    let mut stdin = child.stdin.take().unwrap();
    let lines: Vec<String> = records.iter().map(Value::to_string).collect();
    let writer = std::thread::spawn(move || {
        for l in lines {
            writeln!(stdin, "{l}").unwrap();
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().map(str::to_string);
            (
                s("id").unwrap(),
                (
                    s("territory"),
                    s("owner"),
                    s("strategy").unwrap_or_default(),
                ),
            )
        })
        .collect()
}

fn bulk(with_faults: bool) {
    let dir = tempfile::tempdir().unwrap();
    let run = start(dir.path(), &[]);
    // Every Salesforce change event arrives as a gap event: nothing but ids.
    let mut rates = json!({"GAP": 1.0});
    if with_faults {
        rates["500"] = json!(0.3);
    }
    faults(&run.emulator, json!({"error_rates": rates}));

    let started = Instant::now();
    let emulator = run.emulator.clone();
    let storm = with_faults.then(|| {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(20));
            faults(
                &emulator,
                json!({"storm": {"side": "both", "duration_ms": 6_000, "retry_after_secs": 2}}),
            );
        })
    });
    let em = run.emulator.clone();
    let hs = std::thread::spawn(move || create(&em, contact));
    let sf_ids = create(&run.emulator, lead);
    let hs_ids = hs.join().unwrap();
    if let Some(s) = storm {
        s.join().unwrap();
    }

    // Every record decided and nothing left parked.
    let metrics_url = format!("{}/metrics", run.api);
    wait_for("every record decided", 120, || {
        let text = reqwest::blocking::get(&metrics_url).ok()?.text().ok()?;
        let decided = metric(&text, "allot_assign_decisions_total");
        let parked = metric(&text, "allot_hydration_parked_records");
        (decided >= (2 * RECORDS) as f64 && parked == 0.0).then_some(())
    });
    let elapsed = started.elapsed();
    let text = reqwest::blocking::get(&metrics_url)
        .unwrap()
        .text()
        .unwrap();
    let stats = get(&format!("{}/_emulator/stats", run.emulator)).unwrap();

    let mut records = Vec::new();
    for (object, ids) in [("contact", &hs_ids), ("lead", &sf_ids)] {
        records.extend(
            ids.iter()
                .enumerate()
                .map(|(i, id)| canonical(object, id, i)),
        );
    }
    let want = reference(&records);
    let mut problems = Vec::new();
    let mut counts: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (id, (territory, owner, strategy)) in &want {
        let got = get(&format!("{}/api/records/{id}/decisions", run.api))
            .and_then(|v| v["decisions"].as_array().cloned())
            .unwrap_or_default();
        let [d] = &got[..] else {
            problems.push(format!("{id}: {} decisions", got.len()));
            continue;
        };
        let text = d["explanation"].to_string();
        if text.contains("hydration failed") || text.contains("not re-read") {
            problems.push(format!("{id}: decided on missing fields: {text}"));
        }
        if d["territory"].as_str() != territory.as_deref() {
            problems.push(format!(
                "{id}: territory {:?}, reference {territory:?}",
                d["territory"]
            ));
        }
        let fallback = d["strategy"].as_str() == Some("fallback");
        if fallback && strategy != "fallback" {
            problems.push(format!("{id}: fallback the reference did not choose"));
        }
        if let Some(o) = d["owner"].as_str() {
            counts.entry(o.to_string()).or_default().0 += 1;
        }
        if let Some(o) = owner {
            counts.entry(o.clone()).or_default().1 += 1;
        }
    }
    for (rep, (got, want)) in &counts {
        if (got - want).abs() > 1 {
            problems.push(format!("{rep}: {got} records, reference {want}"));
        }
    }
    let calls = |crm: &str| {
        metric(
            &text,
            &format!("allot_hydration_read_calls_total{{crm=\"{crm}\"}}"),
        )
    };
    let read = |crm: &str| {
        metric(
            &text,
            &format!("allot_hydration_read_records_total{{crm=\"{crm}\"}}"),
        )
    };
    let peak = |crm: &str| stats["peak_requests_10s"][crm].as_u64().unwrap_or(0);
    for crm in ["hubspot", "salesforce"] {
        println!(
            "{crm}: {RECORDS} records at {PER_SEC}/s{}: {} hydration read calls, {:.1} records per call; busiest 10 s window {} calls; rate limited {}; all decided after {:.0} s",
            if with_faults { " with 30% 5xx and a 429 storm" } else { "" },
            calls(crm),
            read(crm) / calls(crm).max(1.0),
            peak(crm),
            stats["rate_limited"][crm],
            elapsed.as_secs_f64(),
        );
    }
    println!("reps (run, reference): {counts:?}");
    assert!(
        peak("hubspot") <= 100,
        "busiest hubspot window: {}",
        peak("hubspot")
    );
    assert!(
        problems.is_empty(),
        "{} problems, first: {:?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
}

#[test]
fn bulk_import_is_routed_as_if_every_field_were_known() {
    bulk(false);
}

#[test]
fn bulk_import_under_5xx_and_429_storms_is_routed_the_same() {
    bulk(true);
}

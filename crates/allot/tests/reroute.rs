//! Re-routing through the engine, end to end: `allot run` against the
//! emulator as a real Salesforce org in which the only owner of a territory
//! is inactive. Each write making them owner is refused; the refusal goes
//! back to the engine (durably, in the commit of the failed write), which
//! decides the record again without them: audited once, with the reason,
//! and written to the CRM. allot is SIGKILLed as soon as the first refusal
//! is recorded, while others are still on their way, and started again on
//! the same store: nothing is lost and nothing is re-routed twice.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

mod common;
use common::{japan_lead, wait_for, ROOT};

/// Kenji Watanabe: the only owner of sf-apac.
const KENJI: &str = "0055f000001AFFFAA4";
/// The Salesforce tree's fallback rep.
const QUEUE: &str = "0055f000001AIIIAA4";
const LEADS: u32 = 6;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `allot run` on `dir`'s store, the emulator as its Salesforce org.
fn run(dir: &Path, emulator: &str, port: u16) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_allot"))
        .current_dir(ROOT)
        .env("ALLOT__CRM__MODE", "salesforce")
        .env("ALLOT__CRM__SALESFORCE__LOGIN_URL", emulator)
        .env("ALLOT__CRM__SALESFORCE__CLIENT_ID", "allot-emulator-client")
        .env("ALLOT_SALESFORCE_CLIENT_SECRET", "allot-emulator-secret")
        .env("ALLOT__API__LISTEN", format!("127.0.0.1:{port}"))
        .env("ALLOT__STORE__PATH", dir.join("store"))
        .env("ALLOT__TELEMETRY__LEVEL", "warn")
        .args(["run", "--no-demo", "--for-secs", "150"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while !lines
        .next()
        .expect("allot run printed its addresses")
        .unwrap()
        .contains("API and webhooks")
    {}
    std::thread::spawn(move || lines.for_each(drop));
    Proc(child)
}

fn get(url: &str) -> Option<Value> {
    let r = reqwest::blocking::get(url).ok()?;
    r.status().is_success().then(|| r.json().ok()).flatten()
}

#[test]
fn an_inactive_owner_is_re_routed_by_the_engine_once_across_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let api = format!("http://127.0.0.1:{port}");
    let cdc = format!("{api}/webhooks/salesforce");
    let (emu, emulator) = common::emulator(&["--salesforce-cdc-url", &cdc]);
    let _emu = Proc(emu);
    let http = reqwest::blocking::Client::new();
    let r = http
        .post(format!("{emulator}/_emulator/faults"))
        .json(&json!({"inactive_users": [KENJI]}))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());

    let mut allot = run(dir.path(), &emulator, port);
    let leads: Vec<String> = (0..LEADS)
        .map(|n| japan_lead(&http, &emulator, n))
        .collect();
    // The first refusal is on record: kill -9 there, others still in flight.
    wait_for("a refused write", 60, || {
        let v = get(&format!("{api}/api/writes/failed"))?;
        (v["total"].as_u64() >= Some(1)).then_some(())
    });
    allot.0.kill().unwrap();
    allot.0.wait().unwrap();
    let _allot = run(dir.path(), &emulator, port);

    let owner = |id: &str| {
        get(&format!(
            "{emulator}/_emulator/records/salesforce/lead/{id}"
        ))
        .and_then(|v| v["owner"].as_str().map(str::to_string))
    };
    for id in &leads {
        wait_for(&format!("{id} written to the fallback rep"), 90, || {
            (owner(id).as_deref() == Some(QUEUE)).then_some(())
        });
    }
    let mut rerouted = BTreeMap::new();
    for id in &leads {
        let history = get(&format!("{api}/api/records/{id}/decisions")).unwrap();
        let items = history["decisions"]
            .as_array()
            .unwrap_or_else(|| panic!("{history}"));
        let lines: Vec<&Value> = items
            .iter()
            .filter(|d| {
                d["explanation"][0]
                    .as_str()
                    .is_some_and(|l| l.starts_with("re-routed:"))
            })
            .collect();
        assert_eq!(lines.len(), 1, "{id}: re-routed once: {history:#}");
        let d = lines[0];
        let first = d["explanation"][0].as_str().unwrap();
        assert!(
            first.contains(KENJI) && first.contains("inactive"),
            "{first}"
        );
        assert_eq!(d["owner"], QUEUE, "{d:#}");
        let to_kenji = items.iter().filter(|d| d["owner"] == KENJI).count();
        assert_eq!(to_kenji, 1, "{id}: decided for Kenji once: {history:#}");
        rerouted.insert(id.clone(), d["owner"].clone());
    }
    assert_eq!(rerouted.len(), LEADS as usize);
    // Every refusal is still listed for the operator.
    let failed = get(&format!("{api}/api/writes/failed")).unwrap();
    assert_eq!(
        failed["counts"]["inactive_owner"].as_u64(),
        Some(u64::from(LEADS)),
        "{failed:#}"
    );
}

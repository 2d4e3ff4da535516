//! `allot reconcile` as an operator runs it: `allot emulator` on its own
//! (its Salesforce change events posted to allot's webhook), `allot run`
//! against it as against a real org, leads decided and written; then a
//! person changes one lead's owner (allot hears of it), another lead's
//! owner is put back with its change event lost (allot's write is gone and
//! nobody told allot), and a lead is created that allot never hears of.
//! allot is stopped, reconcile reports each reason with the right records,
//! `--apply` re-queues the one owed write, and the next `allot run` makes it.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

mod common;
use common::{wait_for, ROOT};

/// The queue new leads start in (a rep the rules route away from).
const QUEUE: &str = "0055f000001AIIIAA4";
/// Two active Salesforce users of the seed: whoever allot did not choose
/// becomes the person's pick.
const AVERY: &str = "0055f000001AAAAAA4";
const JORDAN: &str = "0055f000001ABBBAA4";

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// SIGTERM, as an operator stops allot, and wait until it is gone (its
    /// store is then free for reconcile).
    fn stop(mut self) {
        let pid = self.0.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        self.0.wait().unwrap();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `allot emulator` posting Salesforce change events to allot's API on `api_port`.
fn emulator(api_port: u16) -> (Proc, String) {
    let cdc = format!("http://127.0.0.1:{api_port}/webhooks/salesforce");
    let (child, url) = common::emulator(&["--salesforce-cdc-url", &cdc]);
    (Proc(child), url)
}

/// An allot command configured for the emulator as a real Salesforce org.
fn allot(dir: &Path, emulator: &str, api_port: u16) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_allot"));
    c.current_dir(ROOT)
        .env("ALLOT__CRM__MODE", "salesforce")
        .env("ALLOT__CRM__SALESFORCE__LOGIN_URL", emulator)
        .env("ALLOT__CRM__SALESFORCE__CLIENT_ID", "allot-emulator-client")
        .env("ALLOT_SALESFORCE_CLIENT_SECRET", "allot-emulator-secret")
        .env("ALLOT__API__LISTEN", format!("127.0.0.1:{api_port}"))
        .env("ALLOT__STORE__PATH", dir.join("store"))
        .env("ALLOT__TELEMETRY__LEVEL", "warn");
    c
}

/// `allot run`; its API URL once it listens.
fn run(dir: &Path, emulator: &str, api_port: u16) -> (Proc, String) {
    let mut child = allot(dir, emulator, api_port)
        .args(["run", "--no-demo", "--for-secs", "150"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let api = loop {
        let line = lines
            .next()
            .expect("allot run printed its addresses")
            .unwrap();
        if line.contains("API and webhooks") {
            let url = line.split_whitespace().find(|w| w.starts_with("http://"));
            break url.unwrap().to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (Proc(child), api)
}

fn reconcile(dir: &Path, emulator: &str, api_port: u16, apply: bool) -> Value {
    let mut c = allot(dir, emulator, api_port);
    c.args([
        "reconcile",
        "--crm",
        "salesforce",
        "--objects",
        "lead",
        "--json",
    ]);
    c.args(["--examples", "50"]);
    if apply {
        c.arg("--apply");
    }
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn post(url: &str, body: Value) -> Value {
    let r = reqwest::blocking::Client::new()
        .post(url)
        .json(&body)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{url}: {:?}", r.text());
    r.json().unwrap()
}

fn owner(emulator: &str, id: &str) -> Option<String> {
    let v: Value =
        reqwest::blocking::get(format!("{emulator}/_emulator/records/salesforce/lead/{id}"))
            .unwrap()
            .json()
            .unwrap();
    v["owner"].as_str().map(str::to_string)
}

/// A counter or gauge summed over its series.
fn metric(api: &str, name: &str) -> f64 {
    let text = reqwest::blocking::get(format!("{api}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn lead(emulator: &str, n: u32) -> String {
    let body = json!({"crm": "salesforce", "object": "lead", "fields": {
        "LastName": format!("Drift {n}"), "Company": format!("Drift {n} GmbH"),
        "Email": format!("drift{n}@drift{n}.example"), "Country": "Germany",
        "OwnerId": QUEUE}});
    post(&format!("{emulator}/_emulator/records"), body)["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The ids a reason's examples name.
fn ids(report: &Value, reason: &str) -> BTreeSet<String> {
    report["objects"][0]["examples"][reason]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

fn count(report: &Value, reason: &str) -> u64 {
    report["totals"][reason].as_u64().unwrap_or(0)
}

#[test]
fn drift_is_reported_by_reason_and_the_owed_write_is_made_again() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (_emu, em) = emulator(port);
    let (allot_run, api) = run(dir.path(), &em, port);

    // Three leads decided and written.
    let (a, b, d) = (lead(&em, 1), lead(&em, 2), lead(&em, 3));
    let decided: Vec<String> = [&a, &b, &d]
        .iter()
        .map(|id| {
            wait_for("allot's owner written", 60, || {
                owner(&em, id).filter(|o| o != QUEUE)
            })
        })
        .collect();
    wait_for("the writes settled", 30, || {
        (metric(&api, "allot_writer_changes_written_total") >= 3.0).then_some(())
    });

    // A person gives lead A to someone else; allot hears of it.
    let person = if decided[0] == AVERY { JORDAN } else { AVERY };
    let before = metric(&api, "allot_ingest_events_decoded_total");
    post(
        &format!("{em}/_emulator/records"),
        json!({"crm": "salesforce", "object": "lead", "id": a, "fields": {"OwnerId": person}}),
    );
    wait_for("the person's change ingested", 30, || {
        (metric(&api, "allot_ingest_events_decoded_total") > before
            && metric(&api, "allot_ingest_lag_events") == 0.0)
            .then_some(())
    });

    // Lead B's owner goes back to the queue and lead C is created, both
    // with their change events lost: allot hears of neither.
    post(
        &format!("{em}/_emulator/faults"),
        json!({"error_rates": {"LOST_EVENT": 1.0}, "error_side": "salesforce"}),
    );
    post(
        &format!("{em}/_emulator/records"),
        json!({"crm": "salesforce", "object": "lead", "id": b, "fields": {"OwnerId": QUEUE}}),
    );
    let c = lead(&em, 4);
    post(&format!("{em}/_emulator/faults"), json!({"reset": true}));
    assert_eq!(owner(&em, &b).as_deref(), Some(QUEUE));
    allot_run.stop();

    // Reconcile while allot is stopped.
    let leads = reqwest::blocking::get(format!("{em}/_emulator/owners"))
        .unwrap()
        .json::<Value>()
        .unwrap()["salesforce"]["lead"]
        .as_object()
        .unwrap()
        .len() as u64;
    let report = reconcile(dir.path(), &em, port, false);
    assert_eq!(report["objects"][0]["records"], leads, "{report:#}");
    assert_eq!(count(&report, "agree"), 1, "{report:#}");
    assert_eq!(count(&report, "changed_by_person"), 1, "{report:#}");
    assert_eq!(count(&report, "owed"), 1, "{report:#}");
    assert_eq!(count(&report, "undecided"), leads - 3, "{report:#}");
    for reason in ["pending", "failed", "changed_unseen"] {
        assert_eq!(count(&report, reason), 0, "{reason}: {report:#}");
    }
    assert_eq!(
        ids(&report, "changed_by_person"),
        BTreeSet::from([a.clone()])
    );
    assert_eq!(ids(&report, "owed"), BTreeSet::from([b.clone()]));
    assert!(ids(&report, "undecided").contains(&c), "{report:#}");
    let owed = &report["objects"][0]["examples"]["owed"][0];
    assert_eq!(owed["crm_owner"], QUEUE);
    assert_eq!(owed["allot_owner"], decided[1].as_str());
    let kept = &report["objects"][0]["examples"]["changed_by_person"][0];
    assert_eq!(
        (kept["crm_owner"].as_str(), kept["allot_owner"].as_str()),
        (Some(person), Some(decided[0].as_str()))
    );
    assert_eq!(report["owed"], 1);
    assert_eq!(
        report["requeued"],
        Value::Null,
        "nothing re-queued without --apply"
    );

    // --apply re-queues the owed write, and only it.
    let applied = reconcile(dir.path(), &em, port, true);
    assert_eq!(applied["requeued"], 1, "{applied:#}");
    let after = reconcile(dir.path(), &em, port, false);
    assert_eq!(count(&after, "pending"), 1, "{after:#}");
    assert_eq!(count(&after, "owed"), 0, "{after:#}");
    assert_eq!(
        owner(&em, &b).as_deref(),
        Some(QUEUE),
        "not written while allot is stopped"
    );

    // allot runs again: the owed write lands; the person's choice stays.
    let (again, _api) = run(dir.path(), &em, port);
    wait_for("the owed write made", 60, || {
        (owner(&em, &b).as_deref() == Some(decided[1].as_str())).then_some(())
    });
    assert_eq!(owner(&em, &a).as_deref(), Some(person));
    assert_eq!(owner(&em, &d).as_deref(), Some(decided[2].as_str()));
    again.stop();
    let last = reconcile(dir.path(), &em, port, false);
    assert_eq!(count(&last, "agree"), 2, "{last:#}");
    assert_eq!(
        count(&last, "owed") + count(&last, "pending"),
        0,
        "{last:#}"
    );
}

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

#[test]
fn the_tokenless_api_refuses_other_sites_and_other_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let run = start(dir.path(), &[]);
    let http = reqwest::blocking::Client::new();
    let rep = "0055f000001AAAAAA4";
    let offboard = format!("{}/api/reps/{rep}/offboard?preview=false", run.api);
    let port = run.api.rsplit(':').next().unwrap().to_string();
    // What a page on another site can make the operator's browser send.
    type Probe<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);
    let probes: [Probe; 4] = [
        (
            "another origin",
            vec![
                ("origin", "http://evil.example".into()),
                ("content-type", "text/plain".into()),
            ],
            "Origin http://evil.example",
        ),
        (
            "a form",
            vec![("content-type", "application/x-www-form-urlencoded".into())],
            "Content-Type",
        ),
        (
            "text/plain",
            vec![("content-type", "text/plain".into())],
            "Content-Type",
        ),
        (
            "a rebound host name",
            vec![("host", format!("evil.example:{port}"))],
            "Host \"evil.example",
        ),
    ];
    for (what, headers, says) in probes {
        let mut req = http.post(&offboard);
        for (k, v) in &headers {
            req = req.header(*k, v);
        }
        let r = req.send().unwrap();
        assert_eq!(r.status(), 403, "{what}");
        let body: Value = r.json().unwrap();
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(says), "{what}: {message}");
    }
    // A foreign Host is refused for reads too.
    let r = http
        .get(format!("{}/api/reps", run.api))
        .header("host", "evil.example")
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    // Nothing changed: the rep is still active.
    let reps = get(&format!("{}/api/reps", run.api)).unwrap();
    let ana = reps["reps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == rep)
        .unwrap();
    assert_eq!(ana["active"], true, "{ana}");
    // The API's own page and the CLI (same origin, JSON or no body) get in,
    // and every refusal is in the admin audit.
    let r = http
        .post(offboard.replace("preview=false", "preview=true"))
        .header("origin", run.api.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text());
    let audit = get(&format!("{}/api/admin/audit?limit=20", run.api)).unwrap();
    let refused = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["status"] == 403)
        .count();
    assert_eq!(refused, 5, "{audit:#}");
}

#[test]
fn webhooks_off_loopback_without_secrets_refuse_to_start_unless_allowed_loudly() {
    // Not loopback: the unspecified address (nothing but loopback calls it here).
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["run", "--no-demo", "--for-secs", "20"])
        .current_dir(common::ROOT)
        .env("ALLOT__API__LISTEN", "0.0.0.0:0")
        .env("ALLOT__EMULATOR__LISTEN", "127.0.0.1:0")
        .env("ALLOT__STORE__PATH", dir.path().join("store"))
        .env("ALLOT_API_TOKENS", "ops:admin:s3cret-token")
        .env_remove("ALLOT_INGEST_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started: {stderr}");
    assert!(
        stderr.contains("without authentication")
            && stderr.contains("/webhooks/salesforce and /webhooks/native")
            && stderr.contains("ALLOT_INGEST_TOKEN")
            && stderr.contains("ingest.allow_unauthenticated"),
        "{stderr}"
    );

    // Allowed explicitly: it starts, and says so on /readyz.
    let dir = tempfile::tempdir().unwrap();
    let run = common::start_with(
        dir.path(),
        &[],
        &[
            ("ALLOT__API__LISTEN", "0.0.0.0:0"),
            ("ALLOT__INGEST__ALLOW_UNAUTHENTICATED", "true"),
            ("ALLOT_API_TOKENS", "ops:admin:s3cret-token"),
        ],
    );
    let port = run.api.rsplit(':').next().unwrap().trim_end_matches('/');
    let ready = get(&format!("http://127.0.0.1:{port}/readyz")).unwrap();
    let warnings = ready["warnings"].to_string();
    assert!(
        warnings.contains("unauthenticated webhooks") && warnings.contains("/webhooks/native"),
        "{ready}"
    );
}

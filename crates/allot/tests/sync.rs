//! `allot sync` of a generated book from `allot emulator --generate N`, as a
//! user runs it: killed with SIGKILL halfway and run again (it resumes from
//! its checkpoint, it does not start over), paced under the HubSpot limit,
//! every record of the CRM in the store with its owner; then an incremental
//! run reads only what changed. Then `allot run` (whose emulator mode keeps
//! its own store) syncs through `POST /api/sync` while it runs: offboarding
//! previews every record the CRM shows for a rep, and lead-to-account
//! matches an account that never had an event.
//!
//! N is 20,000 here (120,000 Salesforce and 100,000 HubSpot records with the
//! seed's), the HubSpot portal at the Professional limit (190 calls per
//! 10 s); `make bench-sync` runs 100,000 and prints the figures.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::{json, Value};

use common::{start_with, wait_for, ROOT};

const N: u64 = 20_000;
const HS_LIMIT: u64 = 190;
const REP: &str = "0055f000001ABBBAA4";

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn emulator() -> (Proc, String) {
    let (n, limit) = (N.to_string(), HS_LIMIT.to_string());
    let (child, url) = common::emulator(&["--generate", &n, "--hubspot-calls-per-10s", &limit]);
    (Proc(child), url)
}

fn sync(dir: &Path, emulator: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_allot"));
    c.arg("sync")
        .args(args)
        .current_dir(ROOT)
        .env("ALLOT__STORE__PATH", dir.join("store"))
        .env(
            "ALLOT__EMULATOR__LISTEN",
            emulator.trim_start_matches("http://"),
        )
        .env(
            "ALLOT__WRITER__HUBSPOT__CALLS_PER_10S",
            HS_LIMIT.to_string(),
        )
        // Salesforce objects of 10,000 records and more: Bulk API query jobs.
        .env("ALLOT__CRM__SALESFORCE__BULK_THRESHOLD", "10000")
        .env("ALLOT__TELEMETRY__LEVEL", "warn");
    c
}

fn get(url: &str) -> Value {
    reqwest::blocking::get(url).unwrap().json().unwrap()
}

fn stats(emulator: &str) -> Value {
    get(&format!("{emulator}/_emulator/stats"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every record in the store: (object, id) → (crm, owner).
fn stored(dir: &Path) -> BTreeMap<(String, String), (String, Option<String>)> {
    let out = Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["state", "export", "--store"])
        .arg(dir.join("store"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let mut records = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let item: Value = serde_json::from_str(line).unwrap();
        if item["kind"] != "record" {
            continue;
        }
        let r = &item["record"];
        let key = (
            r["object"].as_str().unwrap().to_string(),
            r["id"].as_str().unwrap().to_string(),
        );
        let crm = r["fields"]["crm"].as_str().unwrap_or_default().to_string();
        records.insert(key, (crm, r["owner"].as_str().map(str::to_string)));
    }
    records
}

/// What the CRM shows: (object, id) → (crm, owner).
fn book(emulator: &str) -> BTreeMap<(String, String), (String, Option<String>)> {
    let owners = get(&format!("{emulator}/_emulator/owners"));
    let mut out = BTreeMap::new();
    for crm in ["salesforce", "hubspot"] {
        for (object, ids) in owners[crm].as_object().unwrap() {
            for (id, owner) in ids.as_object().unwrap() {
                let owner = owner.as_str().map(str::to_string);
                out.insert((object.clone(), id.clone()), (crm.to_string(), owner));
            }
        }
    }
    out
}

fn chrono_now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The first generated id of one CRM's object.
fn first_id(
    truth: &BTreeMap<(String, String), (String, Option<String>)>,
    crm: &str,
    object: &str,
) -> String {
    truth
        .iter()
        .find(|((o, _), (c, _))| o == object && c == crm)
        .map(|((_, id), _)| id.clone())
        .unwrap()
}

/// Pages of HubSpot's list endpoint for the whole book of `records`.
fn pages(records: usize) -> u64 {
    records.div_ceil(100).max(1) as u64
}

#[test]
fn sync_resumes_after_kill_and_the_whole_book_is_known() {
    let dir = tempfile::tempdir().unwrap();
    let (emu, url) = emulator();
    let truth = book(&url);
    let hs_records = |object: &str| {
        truth
            .iter()
            .filter(|((o, _), (c, _))| o == object && c == "hubspot")
            .count()
    };
    let full_pages = pages(hs_records("account")) + pages(hs_records("contact"));

    // Killed halfway through HubSpot's contacts.
    let mut first = sync(dir.path(), &url, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(first.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines {
        let line = line.unwrap();
        seen.push(line.clone());
        let contacts = line
            .strip_prefix("allot: sync hubspot contact: ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok());
        if contacts.is_some_and(|n| n >= N / 2) {
            first.kill().unwrap();
            break;
        }
    }
    let status = first.wait().unwrap();
    assert!(
        !status.success(),
        "the first run was to be killed: {seen:?}"
    );
    let calls_before = stats(&url)["calls"]["hs.objects.list"].as_u64().unwrap();
    assert!(
        calls_before >= 100,
        "killed after {calls_before} list calls"
    );

    // Run again: it resumes, it does not start over.
    let second = sync(dir.path(), &url, &[]).output().unwrap();
    let out = text(&second);
    assert!(second.status.success(), "{out}");
    assert!(
        out.contains("hubspot contact:") && out.contains("(resumed from a checkpoint)"),
        "{out}"
    );
    let s = stats(&url);
    let calls = s["calls"]["hs.objects.list"].as_u64().unwrap();
    println!(
        "sync: {full_pages} HubSpot pages for the book, {calls} list calls over both runs ({calls_before} before the kill); busiest 10 s {} of {HS_LIMIT}; {}",
        s["peak_requests_10s"]["hubspot"],
        out.lines().last().unwrap_or_default()
    );
    // Pages fetched ahead of the store when it was killed are read twice; nothing more.
    assert!(
        calls <= full_pages + 8,
        "{calls} list calls for {full_pages} pages: restarted?"
    );
    assert!(
        s["peak_requests_10s"]["hubspot"].as_u64().unwrap() <= HS_LIMIT,
        "{s}"
    );
    // Salesforce's objects (20,000 records each) came through bulk query jobs.
    assert!(
        s["calls"]["sf.bulk.create"].as_u64().unwrap_or(0) >= 3,
        "{s}"
    );
    assert!(
        s["calls"]["sf.bulk.results"].as_u64().unwrap_or(0) >= 6,
        "{s}"
    );
    assert_eq!(s["rate_limited"]["hubspot"], 0, "{s}");

    // Every record the CRM has is in the store, with its owner.
    let have = stored(dir.path());
    let mut problems = Vec::new();
    for (key, want) in &truth {
        match have.get(key) {
            Some(got) if got == want => {}
            got => problems.push(format!("{key:?}: CRM {want:?}, store {got:?}")),
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} records wrong: {:?}",
        problems.len(),
        truth.len(),
        &problems[..problems.len().min(5)]
    );

    // Incremental: only what changed since a given instant (SystemModstamp;
    // HubSpot search on lastmodifieddate).
    let since = chrono_now();
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let http = reqwest::blocking::Client::new();
    let (sf_lead, hs_contact) = (
        first_id(&truth, "salesforce", "lead"),
        first_id(&truth, "hubspot", "contact"),
    );
    for (crm, object, id, fields) in [
        ("salesforce", "lead", &sf_lead, json!({"OwnerId": REP})),
        ("hubspot", "contact", &hs_contact, json!({"city": "Osaka"})),
    ] {
        let r = http
            .post(format!("{url}/_emulator/records"))
            .json(&json!({"crm": crm, "object": object, "id": id, "fields": fields}))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().unwrap());
    }
    let third = sync(dir.path(), &url, &["--since", &since])
        .output()
        .unwrap();
    let out = text(&third);
    assert!(third.status.success(), "{out}");
    for want in [
        "salesforce lead: 1 records",
        "salesforce account: 0 records",
        "hubspot contact: 1 records",
        "modified since",
    ] {
        assert!(out.contains(want), "{want:?} in {out}");
    }
    assert_eq!(
        stored(dir.path())[&("lead".to_string(), sf_lead.clone())]
            .1
            .as_deref(),
        Some(REP)
    );
    drop(emu);

    // allot run (its emulator generating a book of the same size) syncs
    // Salesforce through the API while it runs, then knows every record.
    let generate = N.to_string();
    let run = start_with(dir.path(), &[], &[("ALLOT__EMULATOR__GENERATE", &generate)]);
    let truth = book(&run.emulator);
    let http = reqwest::blocking::Client::new();
    let started: Value = http
        .post(format!("{}/api/sync", run.api))
        .json(&json!({"crm": "salesforce"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(started["status"], "started", "{started}");
    let again = http.post(format!("{}/api/sync", run.api)).send().unwrap();
    assert_eq!(
        again.status().as_u16(),
        422,
        "a second run while one is under way"
    );
    let status = wait_for("the API's sync run to finish", 240, || {
        let v = get(&format!("{}/api/sync", run.api));
        (v["running"] == false && v["run"]["finished_at"].is_number()).then_some(v)
    });
    assert!(status["run"]["error"].is_null(), "{status}");
    let objects = status["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 3, "{status}");
    for o in objects {
        assert_eq!(o["cursor"]["done"], true, "{o}");
    }
    let preview: Value = http
        .post(format!("{}/api/reps/{REP}/offboard", run.api))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let previewed: BTreeSet<String> = preview["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    let owned: BTreeSet<String> = truth
        .iter()
        .filter(|(_, (crm, owner))| crm == "salesforce" && owner.as_deref() == Some(REP))
        .map(|((_, id), _)| id.clone())
        .collect();
    assert!(owned.len() > 1_000, "{} records for {REP}", owned.len());
    assert_eq!(
        previewed, owned,
        "offboarding preview vs the CRM's records of {REP}"
    );

    // A new lead at the domain of an account that never had an event.
    let (account, owner) = truth
        .iter()
        .find(|((o, id), (c, owner))| {
            o == "account"
                && c == "salesforce"
                && id.starts_with("0015f7")
                && owner.as_deref() == Some("0055f000001ACCCAA4")
        })
        .map(|((_, id), (_, owner))| (id.clone(), owner.clone().unwrap()))
        .expect("a generated account of Priya Natarajan");
    let fields = get(&format!(
        "{}/_emulator/records/salesforce/account/{account}",
        run.emulator
    ));
    let website = fields["fields"]["Website"].as_str().unwrap().to_string();
    let domain = website.trim_start_matches("https://www.").to_string();
    let created: Value = http
        .post(format!("{}/_emulator/records", run.emulator))
        .json(&json!({"crm": "salesforce", "object": "lead", "fields": {
            "FirstName": "Noa", "LastName": "Sato", "Company": "New Lead Co",
            "Email": format!("noa.sato@{domain}"), "Country": "Japan", "City": "Tokyo",
            "Industry": "Software", "NumberOfEmployees": 40, "LeadSource": "Web"}}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let lead = created["id"]
        .as_str()
        .or_else(|| created[0]["id"].as_str())
        .unwrap()
        .to_string();
    let decision = wait_for("the new lead decided", 60, || {
        let v: Value = reqwest::blocking::get(format!("{}/api/records/{lead}/decisions", run.api))
            .ok()?
            .json()
            .ok()?;
        v["decisions"].as_array()?.first().cloned()
    });
    let explanation = decision["explanation"].to_string();
    assert!(
        explanation.contains(&format!(
            "lead_to_account: {domain} matches account {account}"
        )),
        "{explanation}"
    );
    assert_eq!(
        decision["owner"].as_str(),
        Some(owner.as_str()),
        "{decision}"
    );
    drop(run);
}

//! `allot writes` against `allot run` started as a user would: the emulator
//! refuses an inactive owner, the failed writes are listed with filters,
//! one is retried once the owner is active again (decided again, then
//! written), the other discarded, and both calls are audited.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::{json, Value};

mod common;
use common::{japan_lead, start, wait_for, ROOT};

const TOKENS: &str =
    "root:admin:admin-token-1234,ops:operator:operator-token-1,eve:viewer:viewer-token-12";
const VIEWER: &str = "viewer-token-12";
const OPERATOR: &str = "operator-token-1";
/// Kenji Watanabe, the only owner of the sf-apac territory.
const KENJI: &str = "0055f000001AFFFAA4";

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn allot(api: &str, token: &str, args: &[&str]) -> Out {
    let o = Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(args)
        .current_dir(ROOT)
        .env("ALLOT_API", api)
        .env("ALLOT_TOKEN", token)
        .output()
        .unwrap();
    Out {
        ok: o.status.success(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn json_of(o: &Out) -> Value {
    assert!(o.ok, "{}", o.stderr);
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.stdout))
}

fn faults(http: &reqwest::blocking::Client, emulator: &str, patch: Value) {
    let r = http
        .post(format!("{emulator}/_emulator/faults"))
        .json(&patch)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());
}

#[test]
fn failed_writes_are_listed_retried_and_discarded_from_the_cli() {
    // The child inherits the tokens; nothing else in this test binary reads them.
    std::env::set_var("ALLOT_API_TOKENS", TOKENS);
    let dir = tempfile::tempdir().unwrap();
    let run = start(dir.path(), &[]);
    let (api, emulator) = (run.api.as_str(), run.emulator.as_str());
    let http = reqwest::blocking::Client::new();

    // Kenji is inactive in the CRM: writes making him owner are refused.
    faults(&http, emulator, json!({"inactive_users": [KENJI]}));
    let leads: BTreeSet<String> = (1..=2).map(|n| japan_lead(&http, emulator, n)).collect();
    let listed = wait_for("two failed writes", 60, || {
        let v = json_of(&allot(api, VIEWER, &["writes", "failed", "--json"]));
        (v["total"] == 2).then_some(v)
    });
    assert_eq!(listed["counts"], json!({"inactive_owner": 2}), "{listed}");
    let items = listed["items"].as_array().unwrap();
    let records: BTreeSet<String> = items
        .iter()
        .map(|i| i["record_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(records, leads);
    for i in items {
        assert_eq!(
            (i["owner"].as_str(), i["crm"].as_str()),
            (Some(KENJI), Some("salesforce")),
            "{i}"
        );
        assert!(
            i["message"]
                .as_str()
                .unwrap()
                .contains("INACTIVE_OWNER_OR_USER"),
            "{i}"
        );
    }
    let ids: Vec<String> = items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();

    // As a table, filtered, and paged.
    let o = allot(api, VIEWER, &["writes", "failed"]);
    assert!(o.ok, "{}", o.stderr);
    let mut lines = o.stdout.lines();
    assert_eq!(
        lines.next(),
        Some("failed writes: 2 (inactive_owner 2)"),
        "{}",
        o.stdout
    );
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("CODE"),
        "{}",
        o.stdout
    );
    for id in &ids {
        assert!(
            o.stdout
                .lines()
                .any(|l| l.starts_with(id.as_str()) && l.contains(KENJI)),
            "{}",
            o.stdout
        );
    }
    for filter in [
        ["--code", "rejected"],
        ["--crm", "hubspot"],
        ["--object", "contact"],
    ] {
        let o = allot(api, VIEWER, &["writes", "failed", filter[0], filter[1]]);
        assert!(
            o.ok && o.stdout.contains("none listed"),
            "{filter:?}: {}{}",
            o.stdout,
            o.stderr
        );
    }
    let v = json_of(&allot(
        api,
        VIEWER,
        &[
            "writes", "failed", "--object", "lead", "--limit", "1", "--json",
        ],
    ));
    assert_eq!(v["items"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["next"], ids[0].as_str(), "{v}");
    let o = allot(api, VIEWER, &["writes", "failed", "--crm", "zoho"]);
    assert!(
        !o.ok && o.stderr.contains("400") && o.stderr.contains("\"zoho\""),
        "{}",
        o.stderr
    );

    // A viewer may not retry; an operator may, once Kenji is active again:
    // the lead is decided again (Kenji's territory) and written.
    let o = allot(api, VIEWER, &["writes", "retry", &ids[0]]);
    assert!(
        !o.ok && o.stderr.contains("403") && o.stderr.contains("needs role operator"),
        "{}",
        o.stderr
    );
    faults(&http, emulator, json!({"active_users": [KENJI]}));
    let o = allot(api, OPERATOR, &["writes", "retry", &ids[0]]);
    assert!(o.ok, "{}", o.stderr);
    assert!(
        o.stdout
            .contains(&format!("re-decided: owner {KENJI}, write queued")),
        "{}",
        o.stdout
    );
    let record = ids[0].split(':').nth(1).unwrap();
    wait_for("the retried owner in the crm", 30, || {
        let r: Value = http
            .get(format!(
                "{emulator}/_emulator/records/salesforce/lead/{record}"
            ))
            .send()
            .ok()?
            .json()
            .ok()?;
        (r["owner"] == KENJI).then_some(())
    });
    let o = allot(api, VIEWER, &["explain", record]);
    assert!(
        o.stdout.contains(&format!(
            "retry: failed write {} (inactive_owner) retried by ops",
            ids[0]
        )),
        "{}",
        o.stdout
    );

    // The other is discarded; both are gone, and the calls are audited.
    let o = allot(api, OPERATOR, &["writes", "discard", &ids[1]]);
    assert!(o.ok, "{}", o.stderr);
    assert!(
        o.stdout
            .contains(&format!("failed write {} discarded", ids[1])),
        "{}",
        o.stdout
    );
    let o = allot(api, OPERATOR, &["writes", "retry", &ids[1]]);
    assert!(
        !o.ok && o.stderr.contains("404") && o.stderr.contains("no failed write"),
        "{}",
        o.stderr
    );
    let v = json_of(&allot(api, VIEWER, &["writes", "failed", "--json"]));
    assert_eq!(
        (v["total"].as_u64(), v["items"].as_array().map(Vec::len)),
        (Some(0), Some(0)),
        "{v}"
    );
    let o = allot(api, VIEWER, &["admin", "audit"]);
    for (action, status) in [("retry", " 200"), ("discard", " 200"), ("retry", " 404")] {
        assert!(
            o.stdout.lines().any(|l| l.contains(" ops ")
                && l.contains(&format!("/{action}"))
                && l.contains(status)),
            "{action}{status}: {}",
            o.stdout
        );
    }
}

//! The admin CLI against `allot run` started as a user would, with API
//! tokens from the environment: tables, `--json`, API errors with status.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use serde_json::{json, Value};

mod common;
use common::{start, wait_for, ROOT};

const TOKENS: &str =
    "root:admin:admin-token-1234,ops:operator:operator-token-1,eve:viewer:viewer-token-12";
const AVERY: &str = "0055f000001AAAAAA4";

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

#[test]
fn cli_talks_to_the_admin_api_of_a_running_allot() {
    // The child inherits the tokens; nothing else in this test binary reads them.
    std::env::set_var("ALLOT_API_TOKENS", TOKENS);
    let dir = tempfile::tempdir().unwrap();
    let run = start(dir.path(), &[]);
    let api = run.api.as_str();
    let http = reqwest::blocking::Client::new();

    let r = http.get(format!("{api}/api/reps")).send().unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));

    // Reps as a table, and as JSON.
    let o = allot(api, "viewer-token-12", &["reps", "list"]);
    assert!(o.ok, "{}", o.stderr);
    let header = o.stdout.lines().next().unwrap();
    assert!(
        header.starts_with("REP") && header.contains("ELIGIBLE"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(AVERY) && o.stdout.contains("Avery Chen"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("no: inactive"),
        "Tom Reilly is inactive: {}",
        o.stdout
    );

    // A viewer may not change a rep: 403 with the role needed.
    let o = allot(
        api,
        "viewer-token-12",
        &["reps", "ooo", AVERY, "--until", "2099-01-01T00:00:00Z"],
    );
    assert!(!o.ok);
    assert!(
        o.stderr.contains("403") && o.stderr.contains("needs role operator"),
        "{}",
        o.stderr
    );
    let o = allot(
        api,
        "operator-token-1",
        &["reps", "ooo", AVERY, "--until", "2099-01-01T00:00:00Z"],
    );
    assert!(o.ok, "{}", o.stderr);
    let o = allot(api, "viewer-token-12", &["reps", "list", "--json"]);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    let avery = v["reps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == AVERY)
        .unwrap();
    assert_eq!(avery["out_of_office_until"], "2099-01-01T00:00:00Z");
    assert_eq!(avery["eligible_now"], false);

    // A lead comes in and is decided; explain shows why.
    let event = json!({"v": 1, "source": "native", "event_id": "cli-1", "object": "lead", "record_id": "LCLI1",
        "change": "create", "fields": {"crm": "salesforce", "country": "US", "email": "kim@example.org"}});
    let r = http
        .post(format!("{api}/webhooks/native"))
        .json(&event)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());
    let explained = wait_for("the lead's decision", 30, || {
        let o = allot(api, "viewer-token-12", &["explain", "LCLI1"]);
        o.ok.then_some(o.stdout)
    });
    assert!(
        explained.contains("territory sf-na") && explained.contains("    "),
        "{explained}"
    );
    assert!(
        !explained.contains(&format!("→ {AVERY}"))
            && explained.contains("out of office until 2099"),
        "Avery is out of office: {explained}"
    );

    // Rules: a bad file names line and column; a new version is pushed,
    // dry-run and activated in one go.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "version = \"x\"\n[[reps]]\nid = \"a\"\nweight = 0\n").unwrap();
    let o = allot(
        api,
        "operator-token-1",
        &["rules", "validate", bad.to_str().unwrap()],
    );
    assert!(!o.ok);
    assert!(
        o.stderr.contains("bad.toml:2:") && o.stderr.contains("422"),
        "{}",
        o.stderr
    );
    let text = std::fs::read_to_string(format!("{ROOT}/config/rules.toml")).unwrap();
    let v2 = text
        .replace("version = \"demo-1\"", "version = \"demo-2\"")
        .replace(
            "owner = { team = \"sf-na\" }",
            "owner = { rep = \"0055f000001ACCCAA4\" }",
        );
    assert_ne!(v2, text);
    let file = dir.path().join("rules-2.toml");
    std::fs::write(&file, v2).unwrap();
    let o = allot(
        api,
        "operator-token-1",
        &["rules", "push", file.to_str().unwrap()],
    );
    assert!(
        !o.ok && o.stderr.contains("needs role admin"),
        "{}",
        o.stderr
    );
    let o = allot(
        api,
        "admin-token-1234",
        &["rules", "push", file.to_str().unwrap(), "--activate"],
    );
    assert!(o.ok, "{}", o.stderr);
    assert!(
        o.stdout
            .contains("realign demo-1 → demo-2: 1 records, 1 move"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("in force now: demo-2"), "{}", o.stdout);
    let o = allot(api, "viewer-token-12", &["rules", "versions"]);
    assert!(
        o.stdout
            .lines()
            .any(|l| l.starts_with("demo-2") && l.contains("active")),
        "{}",
        o.stdout
    );
    let o = allot(api, "viewer-token-12", &["rules", "get", "--json"]);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["version_id"], "demo-2");
    wait_for("the realignment to move the lead", 30, || {
        let o = allot(api, "viewer-token-12", &["explain", "LCLI1"]);
        o.stdout
            .contains("rules: version demo-1 → demo-2 activated by root")
            .then_some(())
    });

    // Offboarding preview, then the audit of it all.
    let o = allot(
        api,
        "operator-token-1",
        &["reps", "offboard", "0055f000001ACCCAA4"],
    );
    assert!(o.ok, "{}", o.stderr);
    assert!(
        o.stdout.contains("1 open record(s) would move") && o.stdout.contains("LCLI1"),
        "{}",
        o.stdout
    );
    let o = allot(api, "viewer-token-12", &["admin", "audit"]);
    assert!(o.ok, "{}", o.stderr);
    assert!(
        o.stdout.contains(&format!("PUT /api/reps/{AVERY}/ooo")),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .lines()
            .any(|l| l.contains(" root ") && l.contains("/activate") && l.contains(" 200")),
        "{}",
        o.stdout
    );
    let o = allot(api, "nope-not-a-token", &["admin", "audit"]);
    assert!(
        !o.ok && o.stderr.contains("401") && o.stderr.contains("invalid bearer token"),
        "{}",
        o.stderr
    );
}

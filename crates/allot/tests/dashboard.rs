//! The ops dashboard in a real headless browser (Debian's Chromium): the
//! page `allot run` serves loads with every panel, the figures it shows equal
//! what `/api/overview` and `/api/decisions/recent` say (the failed write the
//! test causes among them), "why does X own this
//! record?" answers from the query string, and a screenshot is written to
//! `target/dashboard.png`.
//!
//! Needs `chromium` (`scripts/ensure-chromium.sh` installs it; `make test`
//! runs that first) or `ALLOT_TEST_CHROMIUM=/path/to/chrome`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;
use common::{start, wait_for, ROOT};

/// Leads and contacts created in the emulator: (crm, country, state, employees).
const PEOPLE: &[(&str, &str, &str, u32)] = &[
    ("salesforce", "United States", "MA", 850),
    ("hubspot", "Germany", "", 240),
    ("salesforce", "Japan", "", 60),
    ("hubspot", "France", "", 420),
    ("salesforce", "United States", "TX", 5000),
    ("hubspot", "Sweden", "", 95),
    ("salesforce", "Canada", "ON", 30),
    ("salesforce", "Brazil", "", 12),
];

/// Kenji Watanabe, the only owner of territory sf-apac (Japan).
const KENJI: &str = "0055f000001AFFFAA4";

/// The panels the page must show.
const PANELS: &[&str] = &[
    "throughput",
    "decisions",
    "territories",
    "errors",
    "writer",
    "lag",
    "failed",
    "workload",
    "recent",
    "explain",
];

/// The browser: `$ALLOT_TEST_CHROMIUM`, else `chromium` on the PATH.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("ALLOT_TEST_CHROMIUM") {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("chromium"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "no chromium on the PATH: run scripts/ensure-chromium.sh (Debian's chromium package), \
             or set ALLOT_TEST_CHROMIUM to a Chrome/Chromium binary"
        )
    })
}

/// Runs headless Chromium on `url` with `args`; its standard output.
fn browse(browser: &Path, profile: &Path, args: &[&str], url: &str) -> String {
    let mut child = Command::new(browser)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--mute-audio",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish with {url} in 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    assert!(status.success(), "chromium failed ({status}):\n{stderr}");
    stdout
}

/// One element carrying `data-figure`: its name, raw value and text.
#[derive(Debug, Clone)]
struct Figure {
    name: String,
    value: String,
    text: String,
}

/// Every `data-figure` element of a serialized DOM, in document order.
fn figures(dom: &str) -> Vec<Figure> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = dom[from..].find("data-figure=\"") {
        let at = from + i;
        let start = dom[..at].rfind('<').unwrap();
        let end = at + dom[at..].find('>').unwrap();
        let tag = &dom[start..end];
        let text_end = end + 1 + dom[end + 1..].find('<').unwrap_or(0);
        out.push(Figure {
            name: attr(tag, "data-figure").unwrap(),
            value: attr(tag, "data-value").unwrap_or_default(),
            text: unescape(&dom[end + 1..text_end]),
        });
        from = end;
    }
    out
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let i = tag.find(&key)? + key.len();
    let j = tag[i..].find('"')?;
    Some(unescape(&tag[i..i + j]))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// The value of every element named `name`; they must agree.
fn figure<'a>(figs: &'a [Figure], name: &str) -> &'a Figure {
    let all: Vec<&Figure> = figs.iter().filter(|f| f.name == name).collect();
    assert!(!all.is_empty(), "the page shows no figure {name}");
    for f in &all {
        assert_eq!(
            f.value, all[0].value,
            "figure {name} shown twice, differently"
        );
    }
    all[0]
}

/// Asserts a count shown on the page equals the API's, in value and in text.
fn same_count(figs: &[Figure], name: &str, want: &Value) {
    let want = want
        .as_u64()
        .or_else(|| want.as_i64().map(|n| n as u64))
        .unwrap_or_else(|| panic!("{name}: the API's value {want} is not a count"));
    let f = figure(figs, name);
    assert_eq!(f.value, want.to_string(), "figure {name} (data-value)");
    assert_eq!(
        f.text.replace(',', ""),
        want.to_string(),
        "figure {name} (shown text)"
    );
}

fn get(url: &str) -> Value {
    let r = reqwest::blocking::get(url).unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().unwrap()
}

/// The overview without what changes while idle (clock, batch timings).
fn settled(mut o: Value) -> Value {
    if let Some(m) = o.as_object_mut() {
        m.remove("generated_at");
        m.remove("stages");
    }
    o
}

fn create(http: &reqwest::blocking::Client, emulator: &str, i: usize) -> String {
    let (crm, country, state, employees) = PEOPLE[i];
    let body = match crm {
        "salesforce" => json!({"crm": "salesforce", "object": "lead", "fields": {
            "FirstName": "Test", "LastName": format!("Lead {i}"), "Company": format!("Dash Co {i}"),
            "Email": format!("lead{i}@dash-{i}.example"), "Country": country, "State": state,
            "NumberOfEmployees": employees, "LeadSource": "Web", "Status": "Open - Not Contacted"}}),
        _ => json!({"crm": "hubspot", "object": "contact", "properties": {
            "firstname": "Test", "lastname": format!("Contact {i}"), "company": format!("Dash Co {i}"),
            "email": format!("contact{i}@dash-{i}.example"), "country": country, "state": state,
            "numberofemployees": employees.to_string()}}),
    };
    let created: Value = http
        .post(format!("{emulator}/_emulator/records"))
        .json(&body)
        .send()
        .unwrap()
        .json()
        .unwrap();
    created["id"].as_str().unwrap().to_string()
}

#[test]
fn dashboard_shows_what_the_api_says_in_a_real_browser() {
    let browser = chromium();
    let dir = tempfile::tempdir().unwrap();
    let run = start(dir.path(), &[]);
    let http = reqwest::blocking::Client::new();

    // Kenji Watanabe, sf-apac's only owner, is inactive in the CRM: the lead
    // from Japan fails to be written (then goes to the fallback).
    let r = http
        .post(format!("{}/_emulator/faults", run.emulator))
        .json(&json!({"inactive_users": [KENJI]}))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());

    // Records decided, one payload dead-lettered, one write failed.
    let ids: Vec<String> = (0..PEOPLE.len())
        .map(|i| create(&http, &run.emulator, i))
        .collect();
    let r = http
        .post(format!("{}/webhooks/native", run.api))
        .body("{not json")
        .send()
        .unwrap();
    // Told at once (400 with the reason), and still kept as a dead letter.
    assert_eq!(r.status(), reqwest::StatusCode::BAD_REQUEST);
    let told = r.text().unwrap();
    assert!(told.contains("cannot be decoded"), "{told}");
    for id in &ids {
        wait_for(&format!("a decision about {id}"), 60, || {
            let r =
                reqwest::blocking::get(format!("{}/api/records/{id}/decisions", run.api)).ok()?;
            r.status().is_success().then_some(())
        });
    }
    // Idle: every change written, the dead letter counted, nothing moving.
    let overview = format!("{}/api/overview", run.api);
    let idle = wait_for("the pipeline to be idle", 90, || {
        let a = get(&overview);
        std::thread::sleep(Duration::from_millis(700));
        let b = get(&overview);
        let done = b["dlq"]["size"] == 1
            && b["failed_writes"]["total"] == 1
            && b["writer"]["backlog"] == 0
            && b["decisions"]["total"].as_u64() >= Some(ids.len() as u64);
        (done && settled(a) == settled(b.clone())).then_some(b)
    });
    assert!(
        idle["writer"]["changes_written_total"].as_u64() > Some(0),
        "{idle:#}"
    );

    // The page, asked why the first record has its owner.
    let profile = tempfile::tempdir().unwrap();
    let page = format!("{}/dashboard?record={}", run.api, ids[0]);
    let recent_url = format!("{}/api/decisions/recent?limit=25", run.api);
    let history_url = format!("{}/api/records/{}/decisions", run.api, ids[0]);
    let snapshot = || (get(&overview), get(&recent_url), get(&history_url));
    // What the API says while the page loads: the same before and after it.
    let mut attempts = 0;
    let (dom, (o, recent, history)) = loop {
        let before = snapshot();
        let dom = browse(
            &browser,
            profile.path(),
            &["--virtual-time-budget=8000", "--dump-dom"],
            &page,
        );
        let after = snapshot();
        if settled(before.0) == settled(after.0.clone()) && before.1 == after.1 {
            break (dom, after);
        }
        attempts += 1;
        assert!(
            attempts < 3,
            "the pipeline kept moving while the page loaded"
        );
    };

    assert!(dom.contains("<title>allot · operations</title>"), "{dom}");
    assert!(
        dom.contains("data-state=\"ready\""),
        "the page never rendered the API's figures:\n{dom}"
    );
    for panel in PANELS {
        assert!(
            dom.contains(&format!("data-panel=\"{panel}\"")),
            "no {panel} panel"
        );
    }
    let figs = figures(&dom);
    assert_eq!(figure(&figs, "status").value, "live");

    // Figures equal the API's.
    let d = &o["decisions"];
    for (name, want) in [
        ("decisions.total", &d["total"]),
        ("decisions.changed", &d["changed"]),
        ("decisions.conflicts_resolved", &d["conflicts_resolved"]),
        ("decisions.fallback", &d["fallback"]),
        ("decisions.unassigned", &d["unassigned"]),
        ("dlq.size", &o["dlq"]["size"]),
        ("dlq.dead_lettered_total", &o["dlq"]["dead_lettered_total"]),
        ("ingest.decoded_total", &o["ingest"]["decoded_total"]),
        ("ingest.consumed_total", &o["ingest"]["consumed_total"]),
        ("ingest.echoes", &o["ingest"]["echoes"]),
        (
            "writer.changes_written_total",
            &o["writer"]["changes_written_total"],
        ),
        ("writer.calls_total", &o["writer"]["calls_total"]),
        ("writer.backlog", &o["writer"]["backlog"]),
        ("workload.total_open", &o["workload"]["total_open"]),
        ("failed_writes.total", &o["failed_writes"]["total"]),
    ] {
        same_count(&figs, name, want);
    }
    // The failed write the test caused, by its code.
    assert_eq!(o["failed_writes"]["by_code"], json!({"inactive_owner": 1}));
    for (code, n) in o["failed_writes"]["by_code"].as_object().unwrap() {
        same_count(&figs, &format!("failed_writes.by_code.{code}"), n);
    }
    let strategies = d["by_strategy"].as_object().unwrap();
    assert!(!strategies.is_empty());
    for (s, n) in strategies {
        same_count(&figs, &format!("decisions.by_strategy.{s}"), n);
    }
    for (t, n) in d["by_territory"].as_object().unwrap() {
        same_count(&figs, &format!("decisions.by_territory.{t}"), n);
    }
    for (kind, n) in o["dlq"]["dead_lettered"].as_object().unwrap() {
        same_count(&figs, &format!("dlq.dead_lettered.{kind}"), n);
    }
    for (crm, n) in o["writer"]["changes_written"].as_object().unwrap() {
        same_count(&figs, &format!("writer.{crm}.changes_written"), n);
    }
    for (crm, outcomes) in o["writer"]["calls"].as_object().unwrap() {
        for (outcome, n) in outcomes.as_object().unwrap() {
            same_count(&figs, &format!("writer.{crm}.calls.{outcome}"), n);
        }
    }
    for (crm, latency) in o["writer"]["latency"].as_object().unwrap() {
        for q in ["p50_seconds", "p90_seconds", "p99_seconds"] {
            let shown: f64 = figure(&figs, &format!("writer.{crm}.{q}"))
                .value
                .parse()
                .unwrap();
            // The same quantile; the page's number may differ from the JSON's in the last bit.
            let api = latency[q].as_f64().unwrap();
            assert!(
                (shown - api).abs() <= 1e-9 * api.abs().max(1e-9),
                "writer.{crm}.{q}: page {shown}, api {api}"
            );
        }
    }
    for (crm, n) in o["writer"]["rate_headroom"].as_object().unwrap() {
        assert_eq!(
            figure(&figs, &format!("writer.{crm}.rate_headroom")).value,
            n.to_string()
        );
    }
    for lag in o["ingest"]["lag"].as_array().unwrap() {
        let name = format!(
            "lag.{}.{}",
            lag["source"].as_str().unwrap(),
            lag["partition"].as_str().unwrap()
        );
        same_count(&figs, &name, &lag["events"]);
    }
    let reps = o["workload"]["reps"].as_array().unwrap();
    assert!(!reps.is_empty());
    for rep in reps {
        let id = rep["id"].as_str().unwrap();
        same_count(&figs, &format!("workload.{id}.open"), &rep["open"]);
    }

    // Recent decisions: the same records, in the same order.
    let shown: Vec<&str> = figs
        .iter()
        .filter(|f| f.name == "recent.record_id")
        .map(|f| f.value.as_str())
        .collect();
    let want: Vec<&str> = recent["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["record_id"].as_str().unwrap())
        .collect();
    assert_eq!(shown, want);
    for id in &ids {
        assert!(
            shown.contains(&id.as_str()),
            "{id} not among recent decisions"
        );
    }

    // "Why does X own this record?", from the query string.
    assert!(
        dom.contains("data-search=\"done\""),
        "search did not finish"
    );
    let decisions = history["decisions"].as_array().unwrap();
    let last = decisions.last().unwrap();
    assert_eq!(figure(&figs, "search.record_id").value, ids[0]);
    same_count(&figs, "search.count", &json!(decisions.len()));
    assert_eq!(
        figure(&figs, "search.owner").value,
        last["owner"].as_str().unwrap()
    );
    let text = unescape(&dom);
    for line in last["explanation"].as_array().unwrap() {
        let line = line.as_str().unwrap();
        assert!(text.contains(line), "explanation line not shown: {line}");
    }

    // A screenshot of the same page.
    let shot = Path::new(ROOT).join("target").join("dashboard.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&shot);
    browse(
        &browser,
        profile.path(),
        &[
            "--virtual-time-budget=8000",
            "--window-size=1400,1000",
            &format!("--screenshot={}", shot.display()),
        ],
        &page,
    );
    let png =
        std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", shot.display()));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let dims = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert_eq!(dims, (1400, 1000), "screenshot size");
    assert!(
        png.len() > 20_000,
        "screenshot is {} bytes: a blank page?",
        png.len()
    );
    println!("dashboard screenshot: {}", shot.display());
    let figures_by_name: BTreeMap<&str, usize> = figs.iter().fold(BTreeMap::new(), |mut m, f| {
        *m.entry(f.name.as_str()).or_default() += 1;
        m
    });
    assert!(figures_by_name.len() > 30, "{figures_by_name:?}");
}

/// Serves the dashboard routes on loopback with every `/api/` call refused
/// without `Authorization: Bearer <token>`, as the API does when tokens are
/// configured. Returns the base URL; the server lives as long as the test.
fn serve_with_token(token: &'static str) -> String {
    use axum::extract::Request;
    use axum::http::StatusCode;
    use axum::middleware::{self, Next};
    use axum::response::{IntoResponse, Response};

    async fn guard(token: &'static str, req: Request, next: Next) -> Response {
        let wanted = format!("Bearer {token}");
        let ok = req
            .headers()
            .get("authorization")
            .is_some_and(|v| v.as_bytes() == wanted.as_bytes());
        if req.uri().path().starts_with("/api/") && !ok {
            return (StatusCode::UNAUTHORIZED, "token needed").into_response();
        }
        next.run(req).await
    }

    let app = allot_services::dashboard::routes(
        Arc::new(allot_store::Store::temporary().unwrap()),
        allot_services::metrics::Metrics::new(),
    )
    .layer(middleware::from_fn(move |req, next| {
        guard(token, req, next)
    }));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{addr}")
}

#[test]
fn the_page_is_public_and_asks_for_a_token_when_the_api_wants_one() {
    let browser = chromium();
    let base = serve_with_token("viewer-token-1");
    let r = reqwest::blocking::get(format!("{base}/api/overview")).unwrap();
    assert_eq!(r.status(), 401, "the guard is in place");
    let profile = tempfile::tempdir().unwrap();
    let dom = browse(
        &browser,
        profile.path(),
        &["--virtual-time-budget=5000", "--dump-dom"],
        &format!("{base}/dashboard"),
    );
    // The page and its assets loaded without a token; the data did not.
    assert!(dom.contains("<title>allot · operations</title>"), "{dom}");
    assert!(dom.contains("data-state=\"auth\""), "{dom}");
    assert_eq!(figure(&figures(&dom), "status").value, "auth");
    let form_tag = dom
        .split("<form id=\"auth\"")
        .nth(1)
        .and_then(|rest| rest.split('>').next())
        .unwrap_or_else(|| panic!("no token box:\n{dom}"));
    assert!(
        !form_tag.contains("hidden"),
        "token box still hidden: {form_tag}"
    );
    assert!(
        !figures(&dom).iter().any(|f| f.name == "decisions.total"),
        "figures shown without the API's data"
    );
}

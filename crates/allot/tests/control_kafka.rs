//! Admin changes in microservice mode: `allot serve api` publishes them to
//! the control topic, and every match and distribute replica applies them.
//! Over a real broker, with `ingest`, two `match`, two `distribute` and an
//! `api` process: a rep put out of office gets nothing more, an offboarded
//! rep's records are decided again without them, an activated rule
//! version decides the next leads, in every replica; a replica started on
//! an empty store reads it all back; each change is audited once.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use allot_bus::{KafkaConfig, KafkaSink, KafkaSource};
use allot_tests::{unique, Broker};
use serde_json::{json, Value};

mod common;
use common::{serve_stage, wait_for, ROOT};

const V1: &str = r#"
version = "control-v1"
[[reps]]
id = "a1"
[[reps]]
id = "a2"
[[reps]]
id = "a3"
[[reps]]
id = "b1"
[[reps]]
id = "b2"

[[teams]]
id = "a"
members = ["a1", "a2", "a3"]
method = "round_robin"
[[teams]]
id = "b"
members = ["b1", "b2"]
method = "round_robin"

[[territories]]
id = "us"
owner = { team = "a" }
criteria = { field = "country", equals = "US" }
[[territories]]
id = "de"
owner = { team = "b" }
criteria = { field = "country", equals = "DE" }
"#;

fn event(i: usize, country: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "v": 1, "source": "native", "event_id": format!("e{i}"), "object": "lead",
        "record_id": format!("L{i:04}"), "change": "create", "changed_fields": ["country"],
        "fields": {"country": country}, "commit_time": 1_764_061_200_000i64 + i as i64,
    }))
    .unwrap()
}

/// Every decision seen on the decisions topic, in order.
type Seen = Arc<Mutex<Vec<Value>>>;

fn watch_decisions(cfg: KafkaConfig, topic: String) -> Seen {
    let seen: Seen = Arc::default();
    let out = seen.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let mut src = KafkaSource::subscribe(&cfg, &[topic.as_str()]).unwrap();
            let deadline = Instant::now() + Duration::from_secs(400);
            while Instant::now() < deadline {
                let Ok(Ok(d)) = tokio::time::timeout(Duration::from_secs(2), src.next()).await
                else {
                    continue;
                };
                let v: Value = serde_json::from_slice(d.payload.as_deref().unwrap()).unwrap();
                out.lock().unwrap().push(v["decision"].clone());
                src.ack(&d).unwrap();
            }
        });
    });
    seen
}

/// The latest decision per record among `ids`, once all of them have one.
fn latest(seen: &Seen, ids: &[String], what: &str) -> HashMap<String, Value> {
    wait_for(what, 120, || {
        let all = seen.lock().unwrap();
        let mut last = HashMap::new();
        for d in all.iter() {
            let id = d["record_id"].as_str().unwrap().to_string();
            if ids.contains(&id) {
                last.insert(id, d.clone());
            }
        }
        (last.len() == ids.len()).then_some(last)
    })
}

fn call(method: reqwest::Method, url: &str, body: Option<(&str, String)>) -> Value {
    let mut req = reqwest::blocking::Client::new().request(method.clone(), url);
    if let Some((ct, b)) = body {
        req = req.header("content-type", ct).body(b);
    }
    let r = req.send().unwrap();
    let status = r.status();
    let v: Value = r.json().unwrap();
    assert!(status.is_success(), "{method} {url}: {status} {v}");
    v
}

#[test]
fn admin_changes_reach_every_match_and_distribute_replica() {
    let broker = Broker::start_in_memory();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.toml"), V1).unwrap();
    std::fs::copy(
        format!("{ROOT}/config/default.toml"),
        dir.path().join("default.toml"),
    )
    .unwrap();
    let (raw, decisions, g) = (
        unique("crm.native"),
        unique("allot.decisions"),
        unique("allot"),
    );
    let overlay = format!(
        "[rules]\npath = \"{rules}\"\n[ingest]\nhydrate = false\n[sla]\nenabled = false\n\
         [kafka]\nbootstrap_servers = \"{b}\"\ngroup_id = \"{g}-ingest\"\ndlq_topic = \"{dlq}\"\n\
         session_timeout_ms = 6000\nheartbeat_interval_ms = 1000\npartitions = 4\n\
         [[kafka.sources]]\ntopic = \"{raw}\"\nformat = \"native\"\n\
         [kafka.stages]\nevents_topic = \"{ev}\"\ndecisions_topic = \"{decisions}\"\n\
         distribute_topic = \"{dt}\"\nchangelog_topic = \"{cl}\"\naccounts_topic = \"{ac}\"\n\
         control_topic = \"{ct}\"\nmatch_group = \"{g}-match\"\n\
         distribute_group = \"{g}-distribute\"\napi_group = \"{g}-api\"\n",
        rules = dir.path().join("rules.toml").display(),
        b = broker.bootstrap(),
        dlq = unique("allot.dlq"),
        ev = unique("allot.events"),
        dt = unique("allot.distribute"),
        cl = unique("allot.distribute-state"),
        ac = unique("allot.accounts"),
        ct = unique("allot.control"),
    );
    std::fs::write(dir.path().join("test.toml"), overlay).unwrap();
    broker.create_topic(&raw, 4);

    let _ingest = serve_stage("ingest", dir.path(), "store-ingest");
    let _m0 = serve_stage("match", dir.path(), "store-match-0");
    let _m1 = serve_stage("match", dir.path(), "store-match-1");
    let _d0 = serve_stage("distribute", dir.path(), "store-distribute-0");
    let d1 = serve_stage("distribute", dir.path(), "store-distribute-1");
    let api = serve_stage("api", dir.path(), "store-api");
    let api = api.url.clone();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cfg = KafkaConfig::new(broker.bootstrap(), &unique("check"));
    cfg.session_timeout_ms = allot_tests::SESSION_TIMEOUT_MS;
    cfg.heartbeat_interval_ms = allot_tests::HEARTBEAT_INTERVAL_MS;
    cfg.auto_offset_reset = allot_bus::OffsetReset::Earliest;
    let seen = watch_decisions(cfg.clone(), decisions.clone());
    let sink = rt.block_on(async { KafkaSink::new(&cfg).unwrap() });
    let send = |range: std::ops::Range<usize>, country: &str| -> Vec<String> {
        rt.block_on(async {
            for i in range.clone() {
                let key = format!("L{i:04}");
                sink.send(&raw, key.as_bytes(), &event(i, country), &[])
                    .await
                    .unwrap();
            }
        });
        range.map(|i| format!("L{i:04}")).collect()
    };
    let owners = |last: &HashMap<String, Value>| -> Vec<String> {
        let mut o: Vec<String> = last
            .values()
            .map(|d| d["owner"].as_str().unwrap_or("").to_string())
            .collect();
        o.sort();
        o.dedup();
        o
    };

    // Before any change: the whole team.
    let first = send(0..30, "US");
    let before = latest(&seen, &first, "the first leads decided");
    assert_eq!(owners(&before), ["a1", "a2", "a3"]);

    // a1 out of office: nobody routes to them any more.
    let until = allot_services::now_ms() + 3_600_000;
    let ooo = call(
        reqwest::Method::PUT,
        &format!("{api}/api/reps/a1/ooo"),
        Some(("application/json", json!({ "until": until }).to_string())),
    );
    assert!(ooo["published"]["offset"].is_i64(), "{ooo}");
    std::thread::sleep(Duration::from_secs(5));
    let second = send(30..60, "US");
    let after_ooo = latest(&seen, &second, "the leads after the out of office");
    assert_eq!(owners(&after_ooo), ["a2", "a3"], "a1 is out of office");

    // a2 offboarded: every open record of theirs is decided again, by the
    // replica that owns it, without them.
    let a2: Vec<String> = before
        .iter()
        .chain(&after_ooo)
        .filter(|(_, d)| d["owner"] == "a2")
        .map(|(id, _)| id.clone())
        .collect();
    assert!(a2.len() >= 20, "a2 holds {} records", a2.len());
    let decided_before = seen.lock().unwrap().len();
    let asked = Instant::now();
    let off = call(
        reqwest::Method::POST,
        &format!("{api}/api/reps/a2/offboard?preview=false"),
        None,
    );
    assert_eq!(off["override"]["active"], false, "{off}");
    let moved = wait_for("a2's records decided again", 60, || {
        let all = seen.lock().unwrap();
        let mut moved = HashMap::new();
        for d in &all[decided_before..] {
            let id = d["record_id"].as_str().unwrap().to_string();
            if a2.contains(&id) {
                moved.insert(id, d.clone());
            }
        }
        (moved.len() == a2.len()).then_some(moved)
    });
    println!(
        "offboarding: {} records re-decided {:?} after the 200",
        moved.len(),
        asked.elapsed()
    );
    for (id, d) in &moved {
        assert_eq!(d["owner"], "a3", "{id}: {d}");
        assert_eq!(d["previous_owner"], "a2", "{id}: {d}");
        let first_line = d["explanation"][0].as_str().unwrap();
        assert!(
            first_line.starts_with("offboard: a2 offboarded by"),
            "{id}: {first_line}"
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    let again = seen.lock().unwrap()[decided_before..]
        .iter()
        .filter(|d| a2.contains(&d["record_id"].as_str().unwrap().to_string()))
        .count();
    assert_eq!(again, a2.len(), "each of a2's records decided again once");

    // A new rule version: US goes to team b, from the next lead on.
    let v2 = V1
        .replace("control-v1", "control-v2")
        .replace("owner = { team = \"a\" }", "owner = { team = \"b\" }");
    call(
        reqwest::Method::POST,
        &format!("{api}/api/rules/versions?name=v2.toml"),
        Some(("application/toml", v2)),
    );
    call(
        reqwest::Method::POST,
        &format!("{api}/api/rules/versions/control-v2/dry-run"),
        None,
    );
    let act = call(
        reqwest::Method::POST,
        &format!("{api}/api/rules/versions/control-v2/activate"),
        Some(("application/json", "{}".into())),
    );
    assert_eq!(act["active_version"], "control-v2", "{act}");
    std::thread::sleep(Duration::from_secs(5));
    let third = send(60..90, "US");
    let after_v2 = latest(&seen, &third, "the leads after the activation");
    assert_eq!(owners(&after_v2), ["b1", "b2"]);
    assert!(after_v2
        .values()
        .all(|d| d["rules_version"] == "control-v2"));

    // A distribute replica on an empty store reads the control topic back:
    // the version and the overrides hold there too.
    // Stopped the way a rolling restart stops it (SIGTERM: it leaves the group).
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &d1.child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let mut d1 = d1;
    wait_for("distribute to stop", 30, || d1.child.try_wait().unwrap());
    let _d2 = serve_stage("distribute", dir.path(), "store-distribute-fresh");
    let _m2 = serve_stage("match", dir.path(), "store-match-fresh");
    let fourth = send(90..120, "DE");
    let de = latest(&seen, &fourth, "the German leads");
    assert_eq!(owners(&de), ["b1", "b2"]);
    assert!(de.values().all(|d| d["rules_version"] == "control-v2"));

    // Audited once each, by the api stage.
    let audit = call(
        reqwest::Method::GET,
        &format!("{api}/api/admin/audit?limit=100"),
        None,
    );
    let entries = audit["entries"].as_array().unwrap();
    let count = |part: &str| {
        entries
            .iter()
            .filter(|e| e.to_string().contains(part))
            .count()
    };
    assert_eq!(count("/api/reps/a1/ooo"), 1, "{audit}");
    assert_eq!(count("/api/reps/a2/offboard"), 1, "{audit}");
    assert_eq!(count("control-v2/activate"), 1, "{audit}");
    let activation = entries
        .iter()
        .find(|e| {
            e["action"]
                .as_str()
                .unwrap()
                .ends_with("control-v2/activate")
        })
        .unwrap();
    assert_eq!(activation["before"]["active_version"], "control-v1");
    assert_eq!(activation["after"]["active_version"], "control-v2");
    let offboard = entries
        .iter()
        .find(|e| e["action"].as_str().unwrap().contains("a2/offboard"))
        .unwrap();
    assert_eq!(offboard["before"]["override"], Value::Null, "{offboard}");
    assert_eq!(offboard["after"]["override"]["active"], false, "{offboard}");
}

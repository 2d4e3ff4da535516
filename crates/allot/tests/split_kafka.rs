//! Split mode on a real Kafka-protocol broker: `allot serve ingest`, three
//! `match` and two `distribute` processes over one broker, leads for four
//! teams (round robin, weighted 3/2/1, least loaded, daily caps). One
//! distribute process is SIGKILLed mid-stream and restarted, then a third
//! and a fourth join (the team partitions move twice while leads flow). Every lead is decided once, rotation
//! stays fair per team, and no cap is exceeded.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use allot_bus::{KafkaConfig, KafkaSink, KafkaSource};
use allot_tests::{unique, Broker};
use serde_json::{json, Value};

mod common;
use common::ROOT;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stage(name: &str, dir: &std::path::Path, n: usize) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_allot"))
        .args([
            "serve",
            name,
            "--config-dir",
            dir.to_str().unwrap(),
            "--env",
            "test",
        ])
        .current_dir(ROOT)
        .env("ALLOT__API__LISTEN", "127.0.0.1:0")
        .env("ALLOT__STORE__PATH", dir.join(format!("store-{name}-{n}")))
        .env(
            "ALLOT__TELEMETRY__LEVEL",
            std::env::var("SPLIT_LOG").unwrap_or("warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("allot serve {name} exited before starting"))
            .unwrap();
        if line.contains("allot serve") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    Proc(child)
}

const RULES: &str = r#"
version = "split-e2e"
[[reps]]
id = "rr1"
[[reps]]
id = "rr2"
[[reps]]
id = "rr3"
[[reps]]
id = "w3"
weight = 3
[[reps]]
id = "w2"
weight = 2
[[reps]]
id = "w1"
weight = 1
[[reps]]
id = "ll1"
[[reps]]
id = "ll2"
[[reps]]
id = "ll3"
[[reps]]
id = "cap1"
max_per_day = 40
[[reps]]
id = "cap2"
max_per_day = 40
[[reps]]
id = "queue"

[[teams]]
id = "rr"
members = ["rr1", "rr2", "rr3"]
method = "round_robin"
[[teams]]
id = "w"
members = ["w3", "w2", "w1"]
method = "weighted"
[[teams]]
id = "ll"
members = ["ll1", "ll2", "ll3"]
method = "least_loaded"
[[teams]]
id = "cap"
members = ["cap1", "cap2"]
method = "round_robin"

[[territories]]
id = "us"
owner = { team = "rr" }
criteria = { field = "country", equals = "US" }
[[territories]]
id = "de"
owner = { team = "w" }
criteria = { field = "country", equals = "DE" }
[[territories]]
id = "jp"
owner = { team = "ll" }
criteria = { field = "country", equals = "JP" }
[[territories]]
id = "br"
owner = { team = "cap" }
fallback = { rep = "queue" }
criteria = { field = "country", equals = "BR" }
"#;

const COUNTRIES: [&str; 4] = ["US", "DE", "JP", "BR"];

fn event(i: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "v": 1, "source": "native", "event_id": format!("e{i}"), "object": "lead",
        "record_id": format!("L{i:05}"), "change": "create", "changed_fields": ["country"],
        "fields": {"country": COUNTRIES[i % 4]}, "commit_time": 1_764_061_200_000i64 + i as i64,
    }))
    .unwrap()
}

#[test]
fn match_and_distribute_replicas_keep_rotation_and_caps_fair() {
    const N: usize = 6_000;
    // In memory: one SQLite writer cannot keep up with ten processes
    // producing and committing at once on a 2-core machine.
    let broker = Broker::start_in_memory();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.toml"), RULES).unwrap();
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
        "[rules]\npath = \"{rules}\"\n[ingest]\nhydrate = false\n\
         [kafka]\nbootstrap_servers = \"{b}\"\ngroup_id = \"{g}-ingest\"\ndlq_topic = \"{dlq}\"\n\
         session_timeout_ms = 6000\nheartbeat_interval_ms = 1000\npartitions = 6\n\
         [[kafka.sources]]\ntopic = \"{raw}\"\nformat = \"native\"\n\
         [kafka.stages]\nevents_topic = \"{ev}\"\ndecisions_topic = \"{decisions}\"\n\
         distribute_topic = \"{dt}\"\nchangelog_topic = \"{cl}\"\naccounts_topic = \"{ac}\"\n\
         match_group = \"{g}-match\"\ndistribute_group = \"{g}-distribute\"\n",
        rules = dir.path().join("rules.toml").display(),
        b = broker.bootstrap(),
        dlq = unique("allot.dlq"),
        ev = unique("allot.events"),
        dt = unique("allot.distribute"),
        cl = unique("allot.distribute-state"),
        ac = unique("allot.accounts"),
    );
    std::fs::write(dir.path().join("test.toml"), overlay).unwrap();
    broker.create_topic(&raw, 3);

    let _ingest = stage("ingest", dir.path(), 0);
    let _matches: Vec<Proc> = (0..3).map(|n| stage("match", dir.path(), n)).collect();
    let mut d0 = stage("distribute", dir.path(), 0);
    let _d1 = stage("distribute", dir.path(), 1);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cfg = KafkaConfig::new(broker.bootstrap(), &unique("check"));
    cfg.session_timeout_ms = allot_tests::SESSION_TIMEOUT_MS;
    cfg.heartbeat_interval_ms = allot_tests::HEARTBEAT_INTERVAL_MS;
    let sink = rt.block_on(async { KafkaSink::new(&cfg).unwrap() });
    let send = |from: usize, to: usize| {
        rt.block_on(async {
            for i in from..to {
                let key = format!("L{i:05}");
                sink.send(&raw, key.as_bytes(), &event(i), &[])
                    .await
                    .unwrap();
            }
        })
    };
    send(0, N / 4);
    std::thread::sleep(Duration::from_secs(2));
    // A distribute process dies mid-stream and comes back on its store.
    d0.0.kill().unwrap();
    d0.0.wait().unwrap();
    send(N / 4, N / 2);
    d0 = stage("distribute", dir.path(), 0);
    // A third one joins: partitions move while leads flow.
    let _d2 = stage("distribute", dir.path(), 2);
    send(N / 2, 3 * N / 4);
    std::thread::sleep(Duration::from_secs(2));
    // And a fourth: the team partitions rebalance again, mid-stream.
    let _d3 = stage("distribute", dir.path(), 3);
    send(3 * N / 4, N);

    // Every decision on the decisions topic, by record.
    let mut owners: HashMap<String, Vec<String>> = HashMap::new();
    rt.block_on(async {
        cfg.auto_offset_reset = allot_bus::OffsetReset::Earliest;
        let mut src = KafkaSource::subscribe(&cfg, &[decisions.as_str()]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(420);
        while owners.len() < N && Instant::now() < deadline {
            let Ok(Ok(d)) = tokio::time::timeout(Duration::from_secs(5), src.next()).await else {
                continue;
            };
            let v: Value = serde_json::from_slice(d.payload.as_deref().unwrap()).unwrap();
            let id = v["decision"]["record_id"].as_str().unwrap().to_string();
            let owner = v["decision"]["owner"].as_str().unwrap_or("").to_string();
            owners.entry(id).or_default().push(owner);
            src.ack(&d).unwrap();
        }
    });
    drop(d0);
    assert_eq!(owners.len(), N, "leads decided");
    let mut per_rep: BTreeMap<String, usize> = BTreeMap::new();
    for (id, os) in &owners {
        assert!(os.iter().all(|o| o == &os[0]), "{id} assigned to {os:?}");
        *per_rep.entry(os[0].clone()).or_default() += 1;
    }
    let n = |r: &str| per_rep.get(r).copied().unwrap_or(0);
    let per_team = N / 4;
    for team in [["rr1", "rr2", "rr3"], ["ll1", "ll2", "ll3"]] {
        let counts: Vec<usize> = team.iter().map(|r| n(r)).collect();
        let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(hi - lo <= 1, "{team:?}: {counts:?} ({per_rep:?})");
        assert_eq!(counts.iter().sum::<usize>(), per_team);
    }
    for (rep, w) in [("w3", 3), ("w2", 2), ("w1", 1)] {
        let share = per_team * w / 6;
        assert!(
            n(rep).abs_diff(share) <= 1,
            "{rep}: {} of share {share} ({per_rep:?})",
            n(rep)
        );
    }
    assert_eq!(n("cap1"), 40, "{per_rep:?}");
    assert_eq!(n("cap2"), 40, "{per_rep:?}");
    assert_eq!(n("queue"), per_team - 80, "{per_rep:?}");
}

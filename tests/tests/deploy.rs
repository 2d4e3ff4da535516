//! The deployment files cannot run here (no container engine, no cluster),
//! so they are checked for what can go wrong without one: every YAML and
//! JSON file parses, the objects have the shape their tools need, the files
//! point at each other correctly, and they use only what allot really has:
//! its stages, its config keys and secrets, its port and probe paths, and
//! the metrics, labels and label values its code exports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_norway::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every document of a YAML file, merge keys (`<<: *anchor`) applied.
fn yaml_docs(rel: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(&read(rel))
        .map(|d| {
            let mut v = Value::deserialize(d).unwrap_or_else(|e| panic!("{rel}: {e}"));
            v.apply_merge().unwrap_or_else(|e| panic!("{rel}: {e}"));
            v
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml(rel: &str) -> Value {
    let mut docs = yaml_docs(rel);
    assert_eq!(docs.len(), 1, "{rel}: one document");
    docs.remove(0)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
        .iter()
        .map(s)
        .collect()
}

fn toml_file(rel: &str) -> toml::Table {
    read(rel).parse().unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A config key (`section.key`) of `config/default.toml` and an overlay.
fn config_value(overlay: &str, path: &str) -> toml::Value {
    let keys: Vec<&str> = path.split('.').collect();
    let find = |t: &toml::Table| -> Option<toml::Value> {
        let (last, sections) = keys.split_last().unwrap();
        let mut t = t;
        for k in sections {
            t = t.get(*k)?.as_table()?;
        }
        t.get(*last).cloned()
    };
    find(&toml_file(overlay))
        .or_else(|| find(&toml_file("config/default.toml")))
        .unwrap_or_else(|| panic!("{path} in neither {overlay} nor config/default.toml"))
}

fn listen_port(overlay: &str) -> u16 {
    let listen = config_value(overlay, "api.listen");
    listen
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The environment variables `[secrets]` names, with an overlay applied.
fn secret_vars(overlay: &str) -> BTreeSet<String> {
    let defaults = toml_file("config/default.toml");
    defaults["secrets"]
        .as_table()
        .unwrap()
        .keys()
        .map(|k| {
            let v = config_value(overlay, &format!("secrets.{k}"));
            v.as_str().unwrap().to_string()
        })
        .collect()
}

/// `ALLOT__SECTION__KEY` must name a key `config/default.toml` has.
fn assert_config_var(var: &str, whence: &str) {
    let path = var
        .strip_prefix("ALLOT__")
        .unwrap()
        .to_lowercase()
        .replace("__", ".");
    let _ = config_value("config/default.toml", &path);
    assert!(!path.is_empty(), "{whence}: {var}");
}

/// The lowercase names of a Rust enum's variants in a source file (clap's
/// `ValueEnum` spelling of single-word variants).
fn enum_variants(rel: &str, name: &str) -> Vec<String> {
    let src = read(rel);
    let body = src
        .split(&format!("pub enum {name} {{"))
        .nth(1)
        .and_then(|b| b.split('}').next())
        .unwrap_or_else(|| panic!("{rel}: no enum {name}"));
    body.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//") && !l.starts_with('#') && l.ends_with(','))
        .map(|l| l.trim_end_matches(',').to_lowercase())
        .collect()
}

fn stages() -> Vec<String> {
    let stages = enum_variants("crates/allot/src/cmd/serve.rs", "Stage");
    assert_eq!(
        stages,
        ["ingest", "assign", "match", "distribute", "write", "api"]
    );
    stages
}

/// The stage that is an alternative to others and is not deployed with
/// them: assign decides in one step what match and distribute decide in two.
const ALTERNATIVE: &str = "assign";

/// The stages a deployment runs by default: all but the alternative.
fn deployed_stages() -> Vec<String> {
    stages().into_iter().filter(|s| s != ALTERNATIVE).collect()
}

/// Stages whose store must survive a restart.
fn keeps_state(stage: &str) -> bool {
    matches!(stage, "assign" | "match" | "distribute" | "write")
}

/// The `--flags` of a clap `Args` struct in a source file.
fn clap_flags(rel: &str) -> BTreeSet<String> {
    let src = read(rel);
    let body = src.split("pub struct Args {").nth(1).unwrap();
    let body = body.split("\n}").next().unwrap();
    let mut flags = BTreeSet::new();
    let mut long = false;
    for line in body.lines().map(str::trim) {
        if line.starts_with("#[arg(") {
            long = line.contains("long");
        } else if let Some(field) = line.strip_suffix(',').and_then(|l| l.split(':').next()) {
            if long && !line.starts_with("//") {
                flags.insert(format!("--{}", field.trim().replace('_', "-")));
            }
            long = false;
        }
    }
    flags
}

#[path = "deploy/k8s.rs"]
mod k8s;
#[path = "deploy/monitoring.rs"]
mod monitoring;
#[path = "deploy/promql.rs"]
mod promql;

// ---------------------------------------------------------------------------
// Dockerfile

#[test]
fn dockerfile_builds_the_binary_in_one_stage_and_runs_it_unprivileged_in_another() {
    let dockerfile = read("deploy/Dockerfile");
    let froms: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert!(froms.len() >= 2, "multi-stage build");
    assert!(froms[0].ends_with(" AS build"), "{froms:?}");
    for want in [
        "cargo build --release --locked -p allot",
        "COPY --from=build ",
        "COPY config /etc/allot/config",
        "USER 10001:10001",
        "ENV ALLOT__STORE__PATH=/var/lib/allot/store",
        "ENTRYPOINT [\"allot\"]",
    ] {
        assert!(
            dockerfile.contains(want),
            "{want:?} missing from deploy/Dockerfile"
        );
    }
    assert_config_var("ALLOT__STORE__PATH", "deploy/Dockerfile");
    let ignore = read("deploy/Dockerfile.dockerignore");
    for want in ["target", ".git"] {
        assert!(ignore.lines().any(|l| l == want), "{want} not ignored");
    }
}

// ---------------------------------------------------------------------------
// docker compose

fn compose() -> Value {
    yaml("deploy/docker-compose.yml")
}

/// A compose path (relative to deploy/) that must exist.
fn assert_deploy_path(p: &str, whence: &str) {
    assert!(
        root().join("deploy").join(p).exists(),
        "{whence}: {p} does not exist"
    );
}

#[test]
fn compose_runs_kafka_the_emulator_every_stage_prometheus_and_grafana() {
    let doc = compose();
    let services = doc["services"].as_mapping().unwrap();
    let mut want = vec![
        "kafka".to_string(),
        "emulator".into(),
        "prometheus".into(),
        "grafana".into(),
    ];
    want.extend(stages());
    for name in &want {
        assert!(
            services.contains_key(name.as_str()),
            "service {name} missing"
        );
    }
    let kafka = &doc["services"]["kafka"];
    assert!(s(&kafka["image"]).starts_with("apache/kafka:"));
    let env = &kafka["environment"];
    assert_eq!(
        s(&env["KAFKA_PROCESS_ROLES"]),
        "broker,controller",
        "KRaft, no ZooKeeper"
    );
    assert_eq!(
        s(&env["KAFKA_ADVERTISED_LISTENERS"]),
        "PLAINTEXT://kafka:9092"
    );
    assert_eq!(
        config_value("config/docker.toml", "kafka.bootstrap_servers").as_str(),
        Some("kafka:9092"),
        "the stages reach the broker by its service name"
    );
    assert!(config_value("config/docker.toml", "kafka.enabled")
        .as_bool()
        .unwrap());

    for (name, svc) in services {
        let name = s(name);
        if let Some(build) = svc.get("build") {
            assert_eq!(s(&build["context"]), "..", "{name}");
            assert_deploy_path(&format!("../{}", s(&build["dockerfile"])), name);
        }
        for v in svc
            .get("volumes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let source = s(v).split(':').next().unwrap();
            if source.starts_with('.') {
                assert_deploy_path(source, name);
            } else {
                assert!(
                    doc["volumes"].as_mapping().unwrap().contains_key(source),
                    "{name}: volume {source} not declared"
                );
            }
        }
        for dep in svc
            .get("depends_on")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
        {
            assert!(
                services.contains_key(dep.0),
                "{name} depends on {:?}",
                dep.0
            );
        }
    }
}

#[test]
fn compose_stages_run_allot_serve_with_the_docker_overlay_and_known_settings() {
    let doc = compose();
    let secrets = secret_vars("config/docker.toml");
    let port = listen_port("config/docker.toml");
    let store = config_value("config/docker.toml", "store.path");
    for stage in stages() {
        let svc = &doc["services"][stage.as_str()];
        assert_eq!(s(&svc["image"]), "allot:local", "{stage}");
        assert_eq!(
            svc.get("profiles").is_some(),
            stage == ALTERNATIVE,
            "{stage}: only the alternative stage is off by default"
        );
        assert_eq!(
            strs(&svc["command"]),
            [
                "serve",
                stage.as_str(),
                "--config-dir",
                "/etc/allot/config",
                "--env",
                "docker"
            ]
        );
        assert_eq!(
            s(&svc["depends_on"]["kafka"]["condition"]),
            "service_healthy",
            "{stage} waits for the broker"
        );
        let health = strs(&svc["healthcheck"]["test"]).join(" ");
        assert!(
            health.contains(&format!("/dev/tcp/127.0.0.1/{port}"))
                && health.contains("GET /readyz"),
            "{stage}: {health}"
        );
        for (k, _) in svc["environment"].as_mapping().unwrap() {
            let k = s(k);
            if k.starts_with("ALLOT__") {
                assert_config_var(k, &stage);
            } else {
                assert!(
                    secrets.contains(k),
                    "{stage}: {k} is not a secret [secrets] names"
                );
            }
        }
        let keeps_state = keeps_state(&stage);
        let volumes: Vec<&str> = svc.get("volumes").map(strs).unwrap_or_default();
        assert_eq!(
            volumes.iter().any(|v| v.ends_with(":/var/lib/allot")),
            keeps_state,
            "{stage}: a volume for the store exactly when it must survive"
        );
        assert!(store.as_str().unwrap().starts_with("/var/lib/allot/"));
    }
    let ports = |svc: &str| strs(&doc["services"][svc]["ports"]).join(" ");
    assert!(ports("api").contains(&format!("{port}:{port}")));
    assert!(ports("grafana").contains("3000:3000"));
    assert!(ports("prometheus").contains("9090:9090"));
}

#[test]
fn compose_emulator_uses_real_flags_and_feeds_the_source_topics() {
    let doc = compose();
    let emulator = &doc["services"]["emulator"];
    let command = strs(&emulator["command"]);
    assert_eq!(command[0], "emulator");
    let flags = clap_flags("crates/allot/src/cmd/emulator.rs");
    for arg in command.iter().filter(|a| a.starts_with("--")) {
        assert!(
            flags.contains(*arg),
            "allot emulator has no {arg} ({flags:?})"
        );
    }
    let value = |flag: &str| command[command.iter().position(|a| *a == flag).unwrap() + 1];
    assert_eq!(value("--kafka-bootstrap"), "kafka:9092");
    assert_eq!(value("--listen"), "0.0.0.0:7701");
    let seed = value("--seed").strip_prefix("/etc/allot/").unwrap();
    assert!(
        root().join(seed).exists(),
        "{seed} is not shipped in the image"
    );
    // The emulator's default topics are the overlay's source topics.
    let emulator_src = read("crates/allot/src/cmd/emulator.rs");
    let sources = config_value("config/docker.toml", "kafka.sources");
    for src in sources.as_array().unwrap() {
        let topic = src["topic"].as_str().unwrap();
        assert!(
            emulator_src.contains(&format!("default_value = \"{topic}\"")),
            "{topic}"
        );
    }
    // The stages reach it by its service name.
    for key in ["crm.salesforce.login_url", "crm.hubspot.base_url"] {
        assert_eq!(
            config_value("config/docker.toml", key).as_str(),
            Some("http://emulator:7701")
        );
    }
}

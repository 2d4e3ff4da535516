//! The deployment files cannot run here (no container engine, no cluster),
//! so they are checked for what can go wrong without one: every YAML and
//! JSON file parses, the objects have the shape their tools need, the files
//! point at each other correctly, and they use only what allot really has:
//! its stages, its config keys and secrets, its port and probe paths, and
//! the metrics, labels and label values its code exports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use allot_services::metrics::Metrics;
use allot_services::writer::WriterMetrics;
use prometheus::core::Collector;
use prometheus::proto::MetricType;
use serde::Deserialize;
use serde_json::Value as Json;
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
    assert_eq!(stages, ["ingest", "assign", "write", "api"]);
    stages
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

// ---------------------------------------------------------------------------
// The metrics the code exports, with their labels.

/// Series name → label names, from the collectors themselves.
fn exported() -> BTreeMap<String, BTreeSet<String>> {
    let m = Metrics::new();
    let w = WriterMetrics::unprefixed();
    let collectors: [&dyn Collector; 19] = [
        &m.consumed,
        &m.decoded,
        &m.deduped,
        &m.dead_lettered,
        &m.echoes,
        &m.stale,
        &m.hydrated,
        &m.decisions,
        &m.decisions_by_territory,
        &m.lag,
        &m.batch_seconds,
        &w.changes_written,
        &w.calls,
        &w.retries,
        &w.failed,
        &w.skipped,
        &w.call_seconds,
        &w.quota_exhausted,
        &w.rate_headroom,
    ];
    let mut out = BTreeMap::new();
    for c in collectors {
        let labels: BTreeSet<String> = c.desc()[0].variable_labels.iter().cloned().collect();
        for f in c.collect() {
            let name = format!("allot_{}", f.name());
            if f.get_field_type() == MetricType::HISTOGRAM {
                let mut with_le = labels.clone();
                with_le.insert("le".into());
                out.insert(format!("{name}_bucket"), with_le);
                out.insert(format!("{name}_sum"), labels.clone());
                out.insert(format!("{name}_count"), labels.clone());
            } else {
                out.insert(name, labels.clone());
            }
        }
    }
    out
}

#[test]
fn metric_names_list_every_series_including_the_writers() {
    let names = Metrics::new().names();
    let by_label: Vec<String> = exported().into_keys().collect();
    assert_eq!(names, by_label);
    for want in [
        "allot_ingest_lag_events",
        "allot_stage_batch_seconds_bucket",
        "allot_stage_batch_seconds_count",
        "allot_writer_call_seconds_bucket",
        "allot_writer_calls_total",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
}

/// Target labels Prometheus adds (deploy/prometheus.yml, Kubernetes scrape
/// config in deploy/k8s/README.md), and series it makes itself.
const TARGET_LABELS: [&str; 3] = ["job", "instance", "service"];
const PROMETHEUS_OWN: [&str; 1] = ["up"];

/// What a PromQL expression refers to.
#[derive(Debug, Default)]
struct Refs {
    metrics: Vec<String>,
    /// Label matchers: label, operator, value.
    matchers: Vec<(String, String, String)>,
    /// Labels of `by (…)`, `without (…)`, `on (…)`, `ignoring (…)`.
    grouping: Vec<String>,
}

const KEYWORDS: [&str; 11] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
];

/// Aggregation operators: `sum by (l) (…)` puts the label list between the
/// name and its parenthesis.
const AGGREGATIONS: [&str; 12] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// A small PromQL scanner: enough to pull metric names, matchers and
/// grouping labels out of the expressions the deploy files use, and to
/// refuse what it does not understand rather than pass it.
fn scan(expr: &str) -> Refs {
    let c: Vec<char> = expr.chars().collect();
    let mut refs = Refs::default();
    let mut i = 0;
    let ident = |i: &mut usize| {
        let start = *i;
        while *i < c.len() && (c[*i].is_ascii_alphanumeric() || c[*i] == '_' || c[*i] == ':') {
            *i += 1;
        }
        c[start..*i].iter().collect::<String>()
    };
    let skip_ws = |i: &mut usize| {
        while *i < c.len() && c[*i].is_whitespace() {
            *i += 1;
        }
    };
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() || "()+-*/^%,<>=!".contains(ch) {
            i += 1;
        } else if ch == '[' {
            while c[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if ch.is_ascii_digit() || ch == '.' {
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.') {
                i += 1;
            }
        } else if ch == '"' {
            panic!("{expr}: a string outside a selector");
        } else if ch.is_ascii_alphabetic() || ch == '_' {
            let word = ident(&mut i);
            let mut j = i;
            skip_ws(&mut j);
            if [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ]
            .contains(&word.as_str())
            {
                if j < c.len() && c[j] == '(' {
                    let close = j + c[j..].iter().position(|&x| x == ')').unwrap();
                    let list: String = c[j + 1..close].iter().collect();
                    refs.grouping.extend(
                        list.split(',')
                            .map(|l| l.trim().to_string())
                            .filter(|l| !l.is_empty()),
                    );
                    i = close + 1;
                }
            } else if KEYWORDS.contains(&word.as_str())
                || AGGREGATIONS.contains(&word.as_str())
                || (j < c.len() && c[j] == '(')
            {
                // An operator keyword, an aggregation, or a function.
            } else {
                refs.metrics.push(word);
                if j < c.len() && c[j] == '{' {
                    let close = j + c[j..].iter().position(|&x| x == '}').unwrap();
                    let body: String = c[j + 1..close].iter().collect();
                    for m in body.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                        let op_at = m.find(['=', '!']).unwrap_or_else(|| panic!("{expr}: {m}"));
                        let label = m[..op_at].trim().to_string();
                        let rest = &m[op_at..];
                        let op_len = if rest.starts_with("=~")
                            || rest.starts_with("!~")
                            || rest.starts_with("!=")
                        {
                            2
                        } else {
                            1
                        };
                        let value = rest[op_len..].trim();
                        assert!(
                            value.len() >= 2 && value.starts_with('"') && value.ends_with('"'),
                            "{expr}: matcher {m}"
                        );
                        refs.matchers.push((
                            label,
                            rest[..op_len].to_string(),
                            value[1..value.len() - 1].to_string(),
                        ));
                    }
                    i = close + 1;
                }
            }
        } else if ch == '$' {
            panic!("{expr}: a variable outside a range");
        } else {
            panic!("{expr}: cannot read {ch:?} at {i}");
        }
    }
    refs
}

#[test]
fn the_promql_scanner_finds_names_matchers_and_grouping() {
    let cases = [
        (
            r#"histogram_quantile(0.99, sum by (crm, le) (rate(allot_writer_call_seconds_bucket[$__rate_interval])))"#,
            vec!["allot_writer_call_seconds_bucket"],
            vec![],
            vec!["crm", "le"],
        ),
        (
            r#"sum(rate(a_total{strategy=~"fallback|unassigned", crm!="x"}[5m])) / sum(rate(b_total[5m])) > 0.1"#,
            vec!["a_total", "b_total"],
            vec![
                ("strategy", "=~", "fallback|unassigned"),
                ("crm", "!=", "x"),
            ],
            vec![],
        ),
        (
            r#"sum by (source) (g) > 10000 and sum by (source) (delta(g[10m])) > 0"#,
            vec!["g", "g"],
            vec![],
            vec!["source", "source"],
        ),
        (
            r#"up{job="allot"} == 0"#,
            vec!["up"],
            vec![("job", "=", "allot")],
            vec![],
        ),
    ];
    for (expr, metrics, matchers, grouping) in cases {
        let r = scan(expr);
        assert_eq!(r.metrics, metrics, "{expr}");
        let got: Vec<(&str, &str, &str)> = r
            .matchers
            .iter()
            .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
            .collect();
        assert_eq!(got, matchers, "{expr}");
        assert_eq!(r.grouping, grouping, "{expr}");
    }
}

/// Every string literal in the code that sets label values.
fn code_literals() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut dirs = vec![
        root().join("crates/allot-services/src"),
        root().join("crates/allot-core/src"),
    ];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let src = std::fs::read_to_string(&p).unwrap();
                for (k, part) in src.split('"').enumerate() {
                    if k % 2 == 1 {
                        out.insert(part.to_string());
                    }
                }
            }
        }
    }
    out
}

/// Checks one PromQL expression against what the code exports; `legend`
/// holds the `{{label}}` names shown with it. Returns the metrics it reads.
fn check_expr(
    whence: &str,
    expr: &str,
    legend: &[String],
    exported: &BTreeMap<String, BTreeSet<String>>,
    literals: &BTreeSet<String>,
) -> Vec<String> {
    let refs = scan(expr);
    assert!(!refs.metrics.is_empty(), "{whence}: {expr} reads no metric");
    let mut labels: BTreeSet<&str> = TARGET_LABELS.into_iter().collect();
    for m in &refs.metrics {
        match exported.get(m) {
            Some(l) => labels.extend(l.iter().map(String::as_str)),
            None => assert!(
                PROMETHEUS_OWN.contains(&m.as_str()),
                "{whence}: {m} is not a metric allot exports ({expr})"
            ),
        }
    }
    for l in refs.grouping.iter().chain(legend) {
        assert!(
            labels.contains(l.as_str()),
            "{whence}: no label {l} on {expr}"
        );
    }
    for (label, _, value) in &refs.matchers {
        assert!(
            labels.contains(label.as_str()),
            "{whence}: no label {label} on {expr}"
        );
        if TARGET_LABELS.contains(&label.as_str()) {
            continue;
        }
        for v in value.split('|') {
            assert!(
                literals.contains(v),
                "{whence}: {label}={v:?} is never a value the code sets ({expr})"
            );
        }
    }
    refs.metrics
}

fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|p| p.split("}}").next())
        .map(|l| l.trim().to_string())
        .collect()
}

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
        let keeps_state = matches!(stage.as_str(), "assign" | "write");
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

// ---------------------------------------------------------------------------
// Prometheus and its alert rules

#[test]
fn prometheus_scrapes_every_stage_and_loads_the_alert_rules() {
    let doc = yaml("deploy/prometheus.yml");
    let compose = compose();
    let port = listen_port("config/docker.toml");
    let job = &doc["scrape_configs"][0];
    assert_eq!(s(&job["job_name"]), "allot");
    assert_eq!(s(&job["metrics_path"]), "/metrics");
    let mut scraped = BTreeSet::new();
    for sc in job["static_configs"].as_sequence().unwrap() {
        for t in strs(&sc["targets"]) {
            let (host, p) = t.split_once(':').unwrap();
            assert_eq!(p.parse::<u16>().unwrap(), port, "{t}");
            assert_eq!(s(&sc["labels"]["service"]), host, "{t}");
            let command = strs(&compose["services"][host]["command"]);
            assert_eq!(command[..2], ["serve", host], "{t} is not a stage");
            scraped.insert(host.to_string());
        }
    }
    assert_eq!(scraped, stages().into_iter().collect());
    let rule_files = strs(&doc["rule_files"]);
    let mounts = strs(&compose["services"]["prometheus"]["volumes"]);
    for f in rule_files {
        let mount = mounts.iter().find(|m| m.split(':').nth(1) == Some(f));
        assert!(mount.is_some(), "{f} is not mounted into prometheus");
    }
    assert!(mounts.contains(&"./prometheus.yml:/etc/prometheus/prometheus.yml:ro"));
}

#[test]
fn alert_rules_read_only_exported_metrics() {
    let doc = yaml("deploy/prometheus/alerts.yml");
    let (exported, literals) = (exported(), code_literals());
    let mut n = 0;
    for group in doc["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = s(&rule["alert"]);
            let expr = s(&rule["expr"]);
            let shown = legend_labels(s(&rule["annotations"]["summary"]))
                .into_iter()
                .filter_map(|l| l.strip_prefix("$labels.").map(str::to_string))
                .collect::<Vec<_>>();
            check_expr(name, expr, &shown, &exported, &literals);
            assert!(rule["labels"]["severity"].is_string(), "{name}");
            n += 1;
        }
    }
    assert!(n >= 5, "{n} rules");
}

// ---------------------------------------------------------------------------
// Grafana

fn dashboard() -> Json {
    serde_json::from_str(&read("deploy/grafana/dashboards/allot.json")).unwrap()
}

#[test]
fn grafana_is_provisioned_with_the_prometheus_source_and_the_dashboard() {
    let compose = compose();
    let mounts = strs(&compose["services"]["grafana"]["volumes"]);
    let target = |src: &str| {
        let m = mounts
            .iter()
            .find(|m| m.starts_with(&format!("{src}:")))
            .unwrap();
        m.split(':').nth(1).unwrap().to_string()
    };
    assert_eq!(
        target("./grafana/provisioning"),
        "/etc/grafana/provisioning"
    );
    let ds = yaml("deploy/grafana/provisioning/datasources/prometheus.yml");
    let ds = &ds["datasources"][0];
    assert_eq!(s(&ds["type"]), "prometheus");
    assert_eq!(s(&ds["url"]), "http://prometheus:9090");
    assert!(strs(&compose["services"]["prometheus"]["ports"]).contains(&"9090:9090"));
    let provider = yaml("deploy/grafana/provisioning/dashboards/allot.yml");
    let provider = &provider["providers"][0];
    assert_eq!(s(&provider["type"]), "file");
    assert_eq!(
        s(&provider["options"]["path"]),
        target("./grafana/dashboards")
    );
    let home =
        s(&compose["services"]["grafana"]["environment"]
            ["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]);
    assert_eq!(
        home,
        format!("{}/allot.json", target("./grafana/dashboards"))
    );
}

fn panels(d: &Json) -> Vec<&Json> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

#[test]
fn dashboard_panels_have_a_source_queries_and_room() {
    let d = dashboard();
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36);
    assert_eq!(d["uid"], "allot");
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for p in panels(&d) {
        let title = p["title"].as_str().unwrap();
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "{title}: duplicate id"
        );
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24 && w > 0 && h > 0, "{title}: gridPos {g}");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "{title} overlaps another panel");
            }
        }
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["type"], "prometheus", "{title}");
        let uid = p["datasource"]["uid"].as_str().unwrap();
        if let Some(var) = uid.strip_prefix("${").and_then(|u| u.strip_suffix('}')) {
            assert!(
                vars.contains(&var),
                "{title}: ${{{var}}} is not a dashboard variable"
            );
        }
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        let refs: BTreeSet<&str> = targets
            .iter()
            .map(|t| t["refId"].as_str().unwrap())
            .collect();
        assert_eq!(refs.len(), targets.len(), "{title}: refIds");
        for t in targets {
            assert!(!t["expr"].as_str().unwrap().is_empty(), "{title}");
        }
    }
}

#[test]
fn dashboard_queries_only_what_the_code_exports_and_covers_every_stage() {
    let d = dashboard();
    let (exported, literals) = (exported(), code_literals());
    let mut read = BTreeSet::new();
    for p in panels(&d).into_iter().filter(|p| p["type"] != "row") {
        let title = p["title"].as_str().unwrap();
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let legend = legend_labels(t["legendFormat"].as_str().unwrap_or(""));
            read.extend(check_expr(title, expr, &legend, &exported, &literals));
        }
    }
    for want in [
        "allot_ingest_payloads_consumed_total",
        "allot_ingest_events_decoded_total",
        "allot_assign_decisions_total",
        "allot_assign_decisions_by_territory_total",
        "allot_writer_changes_written_total",
        "allot_ingest_lag_events",
        "allot_writer_call_seconds_bucket",
        "allot_writer_calls_total",
        "allot_writer_retries_total",
        "allot_writer_failed_total",
        "allot_ingest_dead_lettered_total",
        "allot_stage_batch_seconds_bucket",
    ] {
        assert!(read.contains(want), "no panel reads {want}");
    }
    let all: Vec<&str> = panels(&d)
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(all.iter().any(
        |e| e.contains("histogram_quantile") && e.contains("allot_writer_call_seconds_bucket")
    ));
    assert!(
        all.iter().any(|e| e.contains(r#"outcome="rate_limited""#)),
        "a 429 panel"
    );
}

// ---------------------------------------------------------------------------
// Kubernetes

const K8S: &str = "deploy/k8s";

/// Every object of every manifest the kustomization lists, with its file.
fn k8s_objects() -> Vec<(String, Value)> {
    let k = yaml(&format!("{K8S}/kustomization.yaml"));
    let listed: Vec<String> = strs(&k["resources"])
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(root().join(K8S))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
        .collect();
    on_disk.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, on_disk, "kustomization.yaml lists every manifest");
    listed
        .iter()
        .flat_map(|f| {
            yaml_docs(&format!("{K8S}/{f}"))
                .into_iter()
                .map(move |d| (f.clone(), d))
        })
        .collect()
}

fn find<'a>(objs: &'a [(String, Value)], kind: &str, name: &str) -> Option<&'a Value> {
    objs.iter()
        .map(|(_, o)| o)
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

fn dns_label(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !n.starts_with('-')
        && !n.ends_with('-')
}

#[test]
fn every_kubernetes_object_is_well_formed() {
    let objs = k8s_objects();
    let k = yaml(&format!("{K8S}/kustomization.yaml"));
    assert_eq!(s(&k["kind"]), "Kustomization");
    let ns = s(&k["namespace"]);
    assert!(
        find(&objs, "Namespace", ns).is_some(),
        "namespace {ns} is created"
    );
    let mut seen = BTreeSet::new();
    for (file, o) in &objs {
        let (api, kind, name) = (
            s(&o["apiVersion"]),
            s(&o["kind"]),
            s(&o["metadata"]["name"]),
        );
        assert!(dns_label(name), "{file}: {name}");
        assert!(
            seen.insert((kind.to_string(), name.to_string())),
            "{file}: {kind}/{name} twice"
        );
        let want_api = match kind {
            "Namespace" | "ConfigMap" | "Secret" | "Service" => "v1",
            "Deployment" | "StatefulSet" => "apps/v1",
            other => panic!("{file}: unexpected kind {other}"),
        };
        assert_eq!(api, want_api, "{file}: {kind}");
        assert!(
            o["metadata"].get("namespace").is_none(),
            "{file}: the kustomization sets it"
        );
    }
    let images = k["images"].as_sequence().unwrap();
    assert!(images.iter().any(|i| i["name"] == "allot"));
}

#[test]
fn the_configmap_carries_the_kubernetes_overlay_and_the_secret_its_variables() {
    let objs = k8s_objects();
    let cm = find(&objs, "ConfigMap", "allot-config").unwrap();
    assert_eq!(
        s(&cm["data"]["kubernetes.toml"]),
        read("config/kubernetes.toml"),
        "deploy/k8s/configmap.yaml and config/kubernetes.toml differ"
    );
    assert!(config_value("config/kubernetes.toml", "kafka.enabled")
        .as_bool()
        .unwrap());
    let secret = find(&objs, "Secret", "allot-secrets").unwrap();
    let keys: BTreeSet<String> = secret["stringData"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| s(k).to_string())
        .collect();
    assert_eq!(keys, secret_vars("config/kubernetes.toml"));
}

#[test]
fn a_workload_per_stage_with_probes_resources_and_the_right_storage() {
    let objs = k8s_objects();
    let port = listen_port("config/kubernetes.toml");
    let partitions = config_value("config/kubernetes.toml", "kafka.partitions")
        .as_integer()
        .unwrap();
    let store = config_value("config/kubernetes.toml", "store.path");
    let store = store.as_str().unwrap();
    let dockerfile = read("deploy/Dockerfile");
    for stage in stages() {
        let stateful = matches!(stage.as_str(), "assign" | "write");
        let kind = if stateful {
            "StatefulSet"
        } else {
            "Deployment"
        };
        let name = format!("allot-{stage}");
        let w = find(&objs, kind, &name).unwrap_or_else(|| panic!("{kind} {name} missing"));
        let spec = &w["spec"];
        let pod = &spec["template"]["spec"];
        let labels = spec["template"]["metadata"]["labels"].as_mapping().unwrap();
        for (k, v) in spec["selector"]["matchLabels"].as_mapping().unwrap() {
            assert_eq!(labels.get(k), Some(v), "{name}: selector matches the pods");
        }
        assert_eq!(s(&labels["app.kubernetes.io/component"]), stage);
        let replicas = spec["replicas"].as_i64().unwrap();
        assert!(
            replicas >= 1 && replicas <= partitions,
            "{name}: replicas ≤ partitions"
        );
        if stage == "api" {
            assert_eq!(
                replicas, 1,
                "one consumer group: one replica holds every decision"
            );
        }
        let annotations = &spec["template"]["metadata"]["annotations"];
        assert_eq!(s(&annotations["prometheus.io/port"]), port.to_string());
        assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(10001));
        assert!(dockerfile.contains("--uid 10001"));
        let containers = pod["containers"].as_sequence().unwrap();
        assert_eq!(containers.len(), 1, "{name}");
        let c = &containers[0];
        assert!(
            s(&c["image"]).starts_with("allot:"),
            "{name}: kustomize sets the image"
        );
        assert_eq!(
            strs(&c["args"]),
            [
                "serve",
                stage.as_str(),
                "--config-dir",
                "/etc/allot/config",
                "--env",
                "kubernetes"
            ]
        );
        let ports = c["ports"].as_sequence().unwrap();
        let http = ports.iter().find(|p| p["name"] == "http").unwrap();
        assert_eq!(
            http["containerPort"].as_u64(),
            Some(u64::from(port)),
            "{name}: api.listen"
        );
        for (probe, path) in [
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
            ("startupProbe", "/healthz"),
        ] {
            let get = &c[probe]["httpGet"];
            assert_eq!(s(&get["path"]), path, "{name} {probe}");
            assert_eq!(s(&get["port"]), "http", "{name} {probe}");
        }
        for r in ["cpu", "memory"] {
            assert!(
                c["resources"]["requests"][r].is_string(),
                "{name}: requests.{r}"
            );
        }
        assert!(
            c["resources"]["limits"]["memory"].is_string(),
            "{name}: limits.memory"
        );
        let secret = s(&c["envFrom"][0]["secretRef"]["name"]);
        assert!(
            find(&objs, "Secret", secret).is_some(),
            "{name}: secret {secret}"
        );
        for e in c
            .get("env")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            assert_config_var(s(&e["name"]), &name);
        }

        // Volumes: the overlay from the ConfigMap, the store where store.path is.
        let mut volumes: BTreeMap<&str, &Value> = pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| (s(&v["name"]), v))
            .collect();
        let claims: Vec<&str> = spec
            .get("volumeClaimTemplates")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .map(|c| s(&c["metadata"]["name"]))
            .collect();
        for m in c["volumeMounts"].as_sequence().unwrap() {
            let v = s(&m["name"]);
            assert!(
                volumes.contains_key(v) || claims.contains(&v),
                "{name}: volume {v}"
            );
        }
        let mount = |vol: &str| {
            let m = c["volumeMounts"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|m| m["name"] == vol);
            s(&m.unwrap_or_else(|| panic!("{name}: {vol} not mounted"))["mountPath"]).to_string()
        };
        assert_eq!(mount("config"), "/etc/allot/config/kubernetes.toml");
        let cm = s(&volumes["config"]["configMap"]["name"]);
        assert!(
            find(&objs, "ConfigMap", cm).is_some(),
            "{name}: configmap {cm}"
        );
        assert!(
            store.starts_with(&format!("{}/", mount("store"))),
            "{name}: store.path on the store volume"
        );
        if stateful {
            assert_eq!(claims, ["store"], "{name}: a claim per pod for its store");
            assert!(!volumes.contains_key("store"));
            let svc = s(&spec["serviceName"]);
            let headless =
                find(&objs, "Service", svc).unwrap_or_else(|| panic!("{name}: service {svc}"));
            assert_eq!(
                s(&headless["spec"]["clusterIP"]),
                "None",
                "{name}: headless service"
            );
        } else {
            let v = volumes.remove("store").unwrap();
            assert!(v.get("emptyDir").is_some(), "{name}: store on an emptyDir");
        }

        // A Service that selects these pods on the named port.
        let svc = find(&objs, "Service", &name).unwrap_or_else(|| panic!("service {name}"));
        for (k, v) in svc["spec"]["selector"].as_mapping().unwrap() {
            assert_eq!(labels.get(k), Some(v), "service {name} selects the pods");
        }
        assert_eq!(s(&svc["spec"]["ports"][0]["targetPort"]), "http");
    }
}

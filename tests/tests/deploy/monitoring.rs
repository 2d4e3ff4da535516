//! Prometheus, its alert rules, Grafana and the dashboard.

use super::promql::{check_expr, code_literals, exported, legend_labels};
use std::collections::BTreeSet;

use serde_json::Value as Json;

use super::*;

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
    assert_eq!(scraped, deployed_stages().into_iter().collect());
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

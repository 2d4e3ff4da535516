//! The metrics the code exports, with their labels, and a small PromQL
//! scanner to hold the dashboard's and the alert rules' expressions to them.

use std::collections::{BTreeMap, BTreeSet};

use allot_services::metrics::Metrics;
use allot_services::writer::WriterMetrics;
use prometheus::core::Collector;
use prometheus::proto::MetricType;

use super::root;

/// Series name → label names, from the collectors themselves.
pub(super) fn exported() -> BTreeMap<String, BTreeSet<String>> {
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
pub(super) fn code_literals() -> BTreeSet<String> {
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
pub(super) fn check_expr(
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

pub(super) fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|p| p.split("}}").next())
        .map(|l| l.trim().to_string())
        .collect()
}

//! The metrics the code exports, with their labels, and the PromQL of the
//! dashboard and the alert rules parsed and held to them.

use std::collections::{BTreeMap, BTreeSet};

use allot_services::metrics::Metrics;
use allot_writer::WriterMetrics;
use prometheus::core::Collector;
use prometheus::proto::MetricType;
use promql_parser::parser::{Expr, LabelModifier, VectorSelector};
use promql_parser::util::{walk_expr, ExprVisitor};

use super::root;

/// Series name → label names, from the collectors themselves.
pub(super) fn exported() -> BTreeMap<String, BTreeSet<String>> {
    let m = Metrics::new();
    let w = WriterMetrics::unprefixed();
    let collectors: [&dyn Collector; 25] = [
        &m.consumed,
        &m.decoded,
        &m.deduped,
        &m.dead_lettered,
        &m.resync_requests,
        &m.echoes,
        &m.stale,
        &m.hydrated,
        &m.hydration_parked,
        &m.hydration_reads,
        &m.hydration_read_records,
        &m.decisions,
        &m.lag,
        &m.batch_seconds,
        &m.store_bytes,
        &m.retention_pruned,
        &w.changes_written,
        &w.calls,
        &w.retries,
        &w.failed,
        &w.skipped,
        &w.fences_lifted,
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
    /// Labels of `by (…)`, `without (…)`, `on (…)`, `ignoring (…)`,
    /// `group_left (…)`, `group_right (…)`.
    grouping: Vec<String>,
}

impl Refs {
    fn selector(&mut self, vs: &VectorSelector) {
        self.metrics.extend(vs.name.clone());
        for m in vs
            .matchers
            .matchers
            .iter()
            .chain(vs.matchers.or_matchers.iter().flatten())
        {
            if m.name != "__name__" {
                self.matchers
                    .push((m.name.clone(), m.op.to_string(), m.value.clone()));
            }
        }
    }

    fn labels(&mut self, modifier: Option<&LabelModifier>) {
        self.grouping.extend(
            modifier
                .into_iter()
                .flat_map(|m| m.labels().labels.iter().cloned()),
        );
    }
}

impl ExprVisitor for Refs {
    type Error = std::convert::Infallible;

    fn pre_visit(&mut self, e: &Expr) -> Result<bool, Self::Error> {
        match e {
            Expr::VectorSelector(vs) => self.selector(vs),
            Expr::MatrixSelector(ms) => self.selector(&ms.vs),
            Expr::Aggregate(a) => self.labels(a.modifier.as_ref()),
            Expr::Binary(b) => {
                if let Some(m) = &b.modifier {
                    self.labels(m.matching.as_ref());
                    self.grouping.extend(
                        m.card
                            .labels()
                            .into_iter()
                            .flat_map(|l| l.labels.iter().cloned()),
                    );
                }
            }
            _ => {}
        }
        Ok(true)
    }
}

/// Parses an expression as Prometheus would once Grafana has put its
/// interval variables in, and collects what it refers to.
fn scan(expr: &str) -> Refs {
    let promql = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h");
    let ast =
        promql_parser::parser::parse(&promql).unwrap_or_else(|e| panic!("{expr}: not PromQL: {e}"));
    let mut refs = Refs::default();
    let _ = walk_expr(&mut refs, &ast);
    refs
}

#[test]
fn the_promql_parse_finds_names_matchers_and_grouping() {
    let cases = [
        (
            r#"histogram_quantile(0.99, sum by (crm, le) (rate(allot_writer_call_seconds_bucket[$__rate_interval])))"#,
            vec!["allot_writer_call_seconds_bucket"],
            vec![],
            vec!["crm", "le"],
        ),
        (
            r#"sum(rate(a_total{strategy=~"fallback|unassigned", crm!="x"}[5m])) / on (crm) group_left (kind) sum(rate(b_total[5m])) > 0.1"#,
            vec!["a_total", "b_total"],
            vec![
                ("strategy", "=~", "fallback|unassigned"),
                ("crm", "!=", "x"),
            ],
            vec!["crm", "kind"],
        ),
        (
            r#"sum by (source) (g) > 10000 and sum without (partition) (delta(g[10m])) > 0"#,
            vec!["g", "g"],
            vec![],
            vec!["source", "partition"],
        ),
        (
            r#"topk(15, sum by (territory) (increase(t_total[$__range])))"#,
            vec!["t_total"],
            vec![],
            vec!["territory"],
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
        let mut grouping_got = r.grouping.clone();
        grouping_got.sort();
        let mut grouping = grouping;
        grouping.sort();
        assert_eq!(grouping_got, grouping, "{expr}");
    }
}

/// Every string literal in the code that sets label values.
pub(super) fn code_literals() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut dirs = vec![
        root().join("crates/allot-services/src"),
        root().join("crates/allot-core/src"),
        root().join("crates/allot-writer/src"),
        root().join("crates/allot-crm/src"),
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

//! Prometheus metrics of the stages: `allot_<stage>_<name>_<unit>_total`,
//! a small fixed set of labels, never a record id nor a territory id (a
//! rule set may hold 100,000 territories: one series each is too many).
//! Every label takes values from a closed set: CRMs, objects, strategies,
//! error kinds, outcomes, stages, sources and partitions from the
//! configuration. Decisions per territory are counted in memory instead
//! ([`TerritoryCounts`]), and only the busiest reach the dashboard.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric the stages export, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Raw payloads read from a source, by source kind.
    pub consumed: IntCounterVec,
    /// Change events decoded, by CRM.
    pub decoded: IntCounterVec,
    /// Events dropped as already seen (redelivery, replay).
    pub deduped: IntCounter,
    /// Payloads and events sent to the dead-letter log or topic, by error kind.
    pub dead_lettered: IntCounterVec,
    /// Resyncs of a whole object requested by GAP_OVERFLOW or a wildcard
    /// record id, by CRM and object.
    pub resync_requests: IntCounterVec,
    /// allot's own owner writes coming back, merged without a decision.
    pub echoes: IntCounter,
    /// Events older than the record state already applied.
    pub stale: IntCounter,
    /// Records re-read from the CRM.
    pub hydrated: IntCounterVec,
    /// Records parked until their CRM read lands.
    pub hydration_parked: IntGauge,
    /// Batched hydration read calls answered or failed, per CRM.
    pub hydration_reads: IntCounterVec,
    /// Records asked for by answered hydration reads, per CRM.
    pub hydration_read_records: IntCounterVec,
    /// Decisions, by the strategy that settled them and whether the owner changed.
    pub decisions: IntCounterVec,
    /// Decisions by winning territory, in memory: not exported to
    /// Prometheus; the dashboard shows the busiest ([`TerritoryCounts::top`]).
    pub decisions_by_territory: TerritoryCounts,
    /// Events not yet consumed, per source and partition.
    pub lag: IntGaugeVec,
    /// Time to process and commit one batch, by stage.
    pub batch_seconds: HistogramVec,
    /// What an operator must know about this process's readiness (shown
    /// on `/readyz`): settings that weaken it, such as unauthenticated webhooks.
    pub readiness: Readiness,
    /// The store's size and `store.max_bytes` (webhooks refuse input near it).
    pub store_size: crate::retention::StoreSize,
    /// The store's size on disk, in bytes.
    pub store_bytes: IntGauge,
    /// Entries removed by retention, by table.
    pub retention_pruned: IntCounterVec,
}

/// Warnings `/readyz` shows, set at start.
#[derive(Clone, Default)]
pub struct Readiness(std::sync::Arc<std::sync::RwLock<Vec<String>>>);

impl Readiness {
    pub fn warn(&self, text: impl Into<String>) {
        if let Ok(mut w) = self.0.write() {
            w.push(text.into());
        }
    }

    pub fn warnings(&self) -> Vec<String> {
        self.0.read().map(|w| w.clone()).unwrap_or_default()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("allot".into()), None).unwrap_or_default();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|_| unreachable_metric(name));
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        let single = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).unwrap_or_else(|_| unreachable_metric(name));
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        let hydration_parked = IntGauge::new(
            "hydration_parked_records",
            "records parked until their crm read lands",
        )
        .unwrap_or_else(|_| unreachable_metric("hydration_parked"));
        let _ = registry.register(Box::new(hydration_parked.clone()));
        let lag = IntGaugeVec::new(
            Opts::new(
                "ingest_lag_events",
                "events not yet consumed per source and partition",
            ),
            &["source", "partition"],
        )
        .unwrap_or_else(|_| unreachable_metric("lag"));
        let _ = registry.register(Box::new(lag.clone()));
        let store_bytes = IntGauge::new("store_bytes", "the store's size on disk")
            .unwrap_or_else(|_| unreachable_metric("store_bytes"));
        let _ = registry.register(Box::new(store_bytes.clone()));
        let batch_seconds = HistogramVec::new(
            HistogramOpts::new(
                "stage_batch_seconds",
                "time to process and commit one batch",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            ]),
            &["stage"],
        )
        .unwrap_or_else(|_| unreachable_metric("batch_seconds"));
        let _ = registry.register(Box::new(batch_seconds.clone()));
        Metrics {
            consumed: counter(
                "ingest_payloads_consumed_total",
                "raw payloads read from a source",
                &["source"],
            ),
            decoded: counter(
                "ingest_events_decoded_total",
                "change events decoded",
                &["crm"],
            ),
            deduped: single(
                "ingest_events_deduped_total",
                "events dropped as already seen",
            ),
            dead_lettered: counter(
                "ingest_dead_lettered_total",
                "payloads or events dead-lettered",
                &["kind"],
            ),
            resync_requests: counter(
                "ingest_resync_requests_total",
                "resyncs of a whole object requested (GAP_OVERFLOW, wildcard record ids)",
                &["crm", "object"],
            ),
            echoes: single("ingest_echoes_total", "allot's own writes coming back"),
            stale: single(
                "ingest_events_stale_total",
                "events older than the applied state",
            ),
            hydrated: counter(
                "ingest_hydrations_total",
                "records re-read from the CRM",
                &["outcome"],
            ),
            hydration_parked,
            hydration_reads: counter(
                "hydration_read_calls_total",
                "batched hydration read calls, answered or failed",
                &["crm"],
            ),
            hydration_read_records: counter(
                "hydration_read_records_total",
                "records asked for by answered hydration reads",
                &["crm"],
            ),
            decisions: counter(
                "assign_decisions_total",
                "decisions made",
                &["strategy", "changed"],
            ),
            decisions_by_territory: TerritoryCounts::default(),
            lag,
            batch_seconds,
            readiness: Readiness::default(),
            store_size: crate::retention::StoreSize::default(),
            store_bytes,
            retention_pruned: counter(
                "retention_pruned_total",
                "entries removed by store.retention, by table",
                &["table"],
            ),
            registry,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Metric definitions are constants: failing to build one is a programming error.
fn unreachable_metric<T>(name: &str) -> T {
    panic!("metric {name} is malformed")
}

impl Metrics {
    /// Every series name the stages export, as a scrape shows it
    /// (`allot_…`; a histogram's `_bucket`, `_sum` and `_count`), whether or
    /// not anything was observed yet: the fields above, the writer's
    /// (`WriterMetrics::unprefixed()`, which `allot run` and the write stage
    /// register in this registry), and whatever else the registry holds.
    /// Dashboards and alert rules are checked against it.
    pub fn names(&self) -> Vec<String> {
        use prometheus::core::Collector;
        use prometheus::proto::{MetricFamily, MetricType};
        let writer = allot_writer::WriterMetrics::unprefixed();
        let collectors: [&dyn Collector; 24] = [
            &self.consumed,
            &self.decoded,
            &self.deduped,
            &self.dead_lettered,
            &self.resync_requests,
            &self.echoes,
            &self.stale,
            &self.hydrated,
            &self.hydration_parked,
            &self.hydration_reads,
            &self.hydration_read_records,
            &self.decisions,
            &self.lag,
            &self.batch_seconds,
            &self.retention_pruned,
            &writer.changes_written,
            &writer.calls,
            &writer.retries,
            &writer.failed,
            &writer.skipped,
            &writer.fences_lifted,
            &writer.call_seconds,
            &writer.quota_exhausted,
            &writer.rate_headroom,
        ];
        let series = |name: String, family: &MetricFamily| -> Vec<String> {
            match family.get_field_type() {
                MetricType::HISTOGRAM => ["_bucket", "_sum", "_count"]
                    .iter()
                    .map(|s| format!("{name}{s}"))
                    .collect(),
                MetricType::SUMMARY => ["", "_sum", "_count"]
                    .iter()
                    .map(|s| format!("{name}{s}"))
                    .collect(),
                _ => vec![name],
            }
        };
        let mut names: Vec<String> = collectors
            .iter()
            .flat_map(|c| c.collect())
            .flat_map(|f| series(format!("allot_{}", f.name()), &f))
            .chain(
                self.registry
                    .gather()
                    .iter()
                    .flat_map(|f| series(f.name().to_string(), f)),
            )
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Territories whose decisions are counted one by one; past that, the
/// least counted is replaced (space-saving), so counts are exact while a
/// process has seen at most this many territories, and any territory with
/// more than 1/`TERRITORIES_TRACKED` of the decisions is always kept.
pub const TERRITORIES_TRACKED: usize = 256;
/// Territories [`TerritoryCounts::top`] names by default; the rest are
/// summed under [`OTHER_TERRITORIES`].
pub const TERRITORIES_SHOWN: usize = 20;
/// The sum of the territories not shown.
pub const OTHER_TERRITORIES: &str = "(other)";

/// Decisions per winning territory, kept in memory with at most
/// [`TERRITORIES_TRACKED`] entries whatever the rule set's size. Clones
/// share the counts.
#[derive(Clone, Default)]
pub struct TerritoryCounts {
    inner: Arc<Mutex<Tracked>>,
}

#[derive(Default)]
struct Tracked {
    counts: HashMap<String, u64>,
    total: u64,
}

/// One territory of [`TerritoryCounts`], to count a decision with
/// [`TerritoryCount::inc`].
pub struct TerritoryCount<'a> {
    counts: &'a TerritoryCounts,
    territory: &'a str,
}

impl TerritoryCount<'_> {
    pub fn inc(&self) {
        self.counts.add(self.territory, 1);
    }
}

impl TerritoryCounts {
    /// The territory `labels[0]` (the call shape of a labelled counter).
    pub fn with_label_values<'a>(&'a self, labels: &[&'a str]) -> TerritoryCount<'a> {
        TerritoryCount {
            counts: self,
            territory: labels.first().copied().unwrap_or("(none)"),
        }
    }

    /// Counts `n` decisions won by `territory`.
    pub fn add(&self, territory: &str, n: u64) {
        let mut t = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        t.total += n;
        if let Some(c) = t.counts.get_mut(territory) {
            *c += n;
            return;
        }
        let mut start = 0;
        if t.counts.len() >= TERRITORIES_TRACKED {
            // Space-saving: the newcomer takes the place (and the count) of
            // the least counted, so the counts still sum to the total.
            let least = t
                .counts
                .iter()
                .min_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                .map(|(k, v)| (k.clone(), *v));
            if let Some((k, v)) = least {
                t.counts.remove(&k);
                start = v;
            }
        }
        t.counts.insert(territory.to_string(), start + n);
    }

    /// Decisions counted, whatever their territory.
    pub fn total(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }

    /// The `n` territories with the most decisions (ties by name), and the
    /// decisions of all the others under [`OTHER_TERRITORIES`] when any.
    pub fn top(&self, n: usize) -> std::collections::BTreeMap<String, u64> {
        let t = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<(&String, &u64)> = t.counts.iter().collect();
        all.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let mut out: std::collections::BTreeMap<String, u64> = all
            .into_iter()
            .take(n)
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let shown: u64 = out.values().sum();
        if t.total > shown {
            *out.entry(OTHER_TERRITORIES.to_string()).or_default() += t.total - shown;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn territories_are_not_prometheus_series() {
        let m = Metrics::new();
        for i in 0..1000 {
            m.decisions_by_territory
                .with_label_values(&[&format!("t{i}")])
                .inc();
        }
        let text = m.render();
        assert!(!text.contains("territory"), "{text}");
        assert!(!m.names().iter().any(|n| n.contains("territory")));
    }

    #[test]
    fn territory_counts_are_capped_and_keep_the_busiest() {
        let c = TerritoryCounts::default();
        // Three busy territories among 100,000 that win one decision each.
        for i in 0..100_000u64 {
            c.add(&format!("t{i}"), 1);
            if i % 10 == 0 {
                c.add("busy-a", 3);
                c.add("busy-b", 2);
                c.add("busy-c", 1);
            }
        }
        assert!(c.inner.lock().unwrap().counts.len() <= TERRITORIES_TRACKED);
        let total = 100_000 + 10_000 * 6;
        assert_eq!(c.total(), total);
        let top = c.top(TERRITORIES_SHOWN);
        assert_eq!(top.len(), TERRITORIES_SHOWN + 1, "{top:?}");
        assert_eq!(top.values().sum::<u64>(), total);
        assert!(top[OTHER_TERRITORIES] > 0);
        let mut busiest: Vec<(&String, &u64)> = top.iter().collect();
        busiest.sort_by(|a, b| b.1.cmp(a.1));
        let names: Vec<&str> = busiest.iter().take(4).map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["(other)", "busy-a", "busy-b", "busy-c"]);
        // The busiest are counted at least as often as they won (an
        // estimate from above once the territories outnumber the cap).
        assert!(top["busy-a"] >= 30_000 && top["busy-b"] >= 20_000);
    }

    #[test]
    fn territory_counts_are_exact_below_the_cap() {
        let c = TerritoryCounts::default();
        let shared = c.clone();
        for (t, n) in [("sf-na", 4), ("(none)", 1), ("emea", 2)] {
            shared.add(t, n);
        }
        c.with_label_values(&["emea"]).inc();
        let top = c.top(2);
        assert_eq!(
            top.into_iter().collect::<Vec<_>>(),
            [
                ("(other)".to_string(), 1),
                ("emea".to_string(), 3),
                ("sf-na".to_string(), 4)
            ]
        );
        assert_eq!(c.top(10).len(), 3);
    }
}

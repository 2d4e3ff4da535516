//! Prometheus metrics of the stages: `allot_<stage>_<name>_<unit>_total`,
//! a small fixed set of labels, never a record id.

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
    /// Decisions by winning territory (bounded by the rule set's size).
    pub decisions_by_territory: IntCounterVec,
    /// Events not yet consumed, per source and partition.
    pub lag: IntGaugeVec,
    /// Time to process and commit one batch, by stage.
    pub batch_seconds: HistogramVec,
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
            decisions_by_territory: counter(
                "assign_decisions_by_territory_total",
                "decisions per winning territory",
                &["territory"],
            ),
            lag,
            batch_seconds,
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
        let collectors: [&dyn Collector; 23] = [
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
            &self.decisions_by_territory,
            &self.lag,
            &self.batch_seconds,
            &writer.changes_written,
            &writer.calls,
            &writer.retries,
            &writer.failed,
            &writer.skipped,
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

//! The writer's Prometheus metrics (labels: `crm`, and a small fixed set of
//! outcomes and reasons; never a record id).

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// The writer's metrics. Cheap to clone; clones share the series.
///
/// Names carry the `allot_` namespace themselves (`allot_writer_calls_total`);
/// build with [`WriterMetrics::unprefixed`] to register them in a registry
/// that adds the prefix itself (`Registry::new_custom(Some("allot"), ..)`).
#[derive(Clone, Debug)]
pub struct WriterMetrics {
    /// Owner changes the CRM accepted.
    pub changes_written: IntCounterVec,
    /// Update calls by outcome (`ok`, `partial`, `rate_limited`,
    /// `quota_exhausted`, `auth`, `transport`, `error`, `rejected`).
    pub calls: IntCounterVec,
    /// Records scheduled to be sent again.
    pub retries: IntCounterVec,
    /// Changes sent to the failed-writes table, by reason.
    pub failed: IntCounterVec,
    /// Changes not written because the CRM already showed the owner.
    pub skipped: IntCounterVec,
    /// Fences lifted early: a read showed that the write feared to land
    /// late had landed.
    pub fences_lifted: IntCounterVec,
    /// Duration of update calls.
    pub call_seconds: HistogramVec,
    /// 1 while writing to a CRM is stopped for its daily quota.
    pub quota_exhausted: IntGaugeVec,
    /// Calls left in the CRM's window (HubSpot) or day (Salesforce).
    pub rate_headroom: IntGaugeVec,
}

impl WriterMetrics {
    /// Metrics named `allot_writer_*`, not yet registered.
    pub fn new() -> WriterMetrics {
        WriterMetrics::build("allot_")
    }

    /// Metrics named `writer_*`, for a registry that prefixes `allot_`.
    pub fn unprefixed() -> WriterMetrics {
        WriterMetrics::build("")
    }

    /// Registers every metric; fails if one of the names is taken.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.changes_written.clone()))?;
        registry.register(Box::new(self.calls.clone()))?;
        registry.register(Box::new(self.retries.clone()))?;
        registry.register(Box::new(self.failed.clone()))?;
        registry.register(Box::new(self.skipped.clone()))?;
        registry.register(Box::new(self.fences_lifted.clone()))?;
        registry.register(Box::new(self.call_seconds.clone()))?;
        registry.register(Box::new(self.quota_exhausted.clone()))?;
        registry.register(Box::new(self.rate_headroom.clone()))
    }

    fn build(prefix: &str) -> WriterMetrics {
        let opts = |name: &str, help: &str| Opts::new(format!("{prefix}writer_{name}"), help);
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(opts(name, help), labels).unwrap_or_else(|_| malformed(name))
        };
        let gauge = |name: &str, help: &str| {
            IntGaugeVec::new(opts(name, help), &["crm"]).unwrap_or_else(|_| malformed(name))
        };
        let call_seconds = HistogramVec::new(
            HistogramOpts::new(
                format!("{prefix}writer_call_seconds"),
                "duration of crm update calls",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["crm"],
        )
        .unwrap_or_else(|_| malformed("call_seconds"));
        WriterMetrics {
            changes_written: counter(
                "changes_written_total",
                "owner changes the crm accepted",
                &["crm"],
            ),
            calls: counter(
                "calls_total",
                "crm update calls by outcome",
                &["crm", "outcome"],
            ),
            retries: counter(
                "retries_total",
                "records scheduled to be sent again",
                &["crm"],
            ),
            failed: counter(
                "failed_total",
                "owner changes given up on",
                &["crm", "reason"],
            ),
            skipped: counter(
                "skipped_total",
                "owner changes the crm already showed",
                &["crm"],
            ),
            fences_lifted: counter(
                "fences_lifted_total",
                "records written again before in_flight_timeout_ms: a read showed the earlier write had landed",
                &["crm"],
            ),
            call_seconds,
            quota_exhausted: gauge(
                "quota_exhausted",
                "1 while writing is stopped for the daily quota",
            ),
            rate_headroom: gauge("rate_headroom", "calls left in the crm's window or day"),
        }
    }
}

impl Default for WriterMetrics {
    fn default() -> Self {
        WriterMetrics::new()
    }
}

/// Metric definitions are constants: failing to build one is a programming error.
fn malformed<T>(name: &str) -> T {
    panic!("writer metric {name} is malformed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_namespace_once() {
        let cases = [
            (WriterMetrics::new(), None, "allot_writer_calls_total"),
            (
                WriterMetrics::unprefixed(),
                Some("allot"),
                "allot_writer_calls_total",
            ),
        ];
        for (m, prefix, want) in cases {
            let registry = Registry::new_custom(prefix.map(str::to_string), None).unwrap();
            m.register(&registry).unwrap();
            m.calls.with_label_values(&["salesforce", "ok"]).inc();
            m.quota_exhausted.with_label_values(&["salesforce"]).set(1);
            let names: Vec<String> = registry
                .gather()
                .iter()
                .map(|f| f.name().to_string())
                .collect();
            assert!(names.contains(&want.to_string()), "{names:?}");
            assert!(names.iter().all(|n| n.starts_with("allot_writer_")));
        }
    }
}

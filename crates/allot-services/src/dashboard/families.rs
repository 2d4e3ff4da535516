//! Reading the metrics registry back as numbers: counters summed by one or
//! two labels, gauges by label, histograms as quantile estimates.

use std::collections::{BTreeMap, HashMap};

use prometheus::proto::{Metric, MetricFamily};
use prometheus::Registry;
use serde::Serialize;

/// One gathering of every metric family, by full name (`allot_…`).
pub struct Families(HashMap<String, MetricFamily>);

/// Count, mean and quantile estimates of a histogram.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean_seconds: Option<f64>,
    pub p50_seconds: Option<f64>,
    pub p90_seconds: Option<f64>,
    pub p99_seconds: Option<f64>,
}

impl Families {
    pub fn gather(registry: &Registry) -> Families {
        Families(
            registry
                .gather()
                .into_iter()
                .map(|f| (f.name().to_string(), f))
                .collect(),
        )
    }

    fn metrics(&self, name: &str) -> &[Metric] {
        self.0.get(name).map_or(&[], |f| f.get_metric())
    }

    /// A counter summed over every label.
    pub fn counter(&self, name: &str) -> u64 {
        self.metrics(name).iter().map(counter_value).sum()
    }

    /// A counter summed by the value of `label`.
    pub fn counter_by(&self, name: &str, label: &str) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for m in self.metrics(name) {
            *out.entry(label_of(m, label)).or_default() += counter_value(m);
        }
        out
    }

    /// A counter summed by the values of `outer` then `inner`.
    pub fn counter_by2(
        &self,
        name: &str,
        outer: &str,
        inner: &str,
    ) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for m in self.metrics(name) {
            *out.entry(label_of(m, outer))
                .or_default()
                .entry(label_of(m, inner))
                .or_default() += counter_value(m);
        }
        out
    }

    /// Every series of a gauge with the values of `labels`, in label order.
    pub fn gauges(&self, name: &str, labels: &[&str]) -> Vec<(Vec<String>, i64)> {
        let mut out: Vec<(Vec<String>, i64)> = self
            .metrics(name)
            .iter()
            .map(|m| {
                let values = labels.iter().map(|l| label_of(m, l)).collect();
                (values, gauge_value(m))
            })
            .collect();
        out.sort();
        out
    }

    /// A histogram merged by the value of `label`.
    pub fn histogram_by(&self, name: &str, label: &str) -> BTreeMap<String, Latency> {
        let mut merged: BTreeMap<String, Merged> = BTreeMap::new();
        for m in self.metrics(name) {
            let h = m.get_histogram();
            let e = merged.entry(label_of(m, label)).or_default();
            e.count += h.get_sample_count();
            e.sum += h.get_sample_sum();
            for (i, b) in h.get_bucket().iter().enumerate() {
                match e.buckets.get_mut(i) {
                    Some(slot) => slot.1 += b.cumulative_count(),
                    None => e.buckets.push((b.upper_bound(), b.cumulative_count())),
                }
            }
        }
        merged
            .into_iter()
            .map(|(k, m)| (k, latency(m.count, m.sum, &m.buckets)))
            .collect()
    }
}

/// Histogram series with the same label value, added up.
#[derive(Default)]
struct Merged {
    count: u64,
    sum: f64,
    /// (upper bound, cumulative count), in bound order.
    buckets: Vec<(f64, u64)>,
}

fn label_of(m: &Metric, name: &str) -> String {
    m.get_label()
        .iter()
        .find(|l| l.name() == name)
        .map_or_else(String::new, |l| l.value().to_string())
}

fn counter_value(m: &Metric) -> u64 {
    float_to_u64(m.get_counter().get_value())
}

fn gauge_value(m: &Metric) -> i64 {
    let v = m.get_gauge().get_value();
    if v.is_finite() {
        // Gauges here are integer gauges: the conversion is exact.
        v.round() as i64
    } else {
        0
    }
}

/// Counters here are integer counters stored as f64: exact below 2^53.
fn float_to_u64(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round() as u64
    } else {
        0
    }
}

fn latency(count: u64, sum: f64, buckets: &[(f64, u64)]) -> Latency {
    let q = |q| quantile(q, count, buckets);
    Latency {
        count,
        mean_seconds: (count > 0).then(|| sum / count as f64),
        p50_seconds: q(0.5),
        p90_seconds: q(0.9),
        p99_seconds: q(0.99),
    }
}

/// The `q` quantile of a cumulative histogram, interpolated linearly inside
/// the bucket it falls in (as Prometheus' `histogram_quantile` does). Past the
/// last finite bound it is that bound; `None` without observations.
pub fn quantile(q: f64, count: u64, buckets: &[(f64, u64)]) -> Option<f64> {
    if count == 0 {
        return None;
    }
    let rank = q * count as f64;
    let mut lower = (0.0, 0u64);
    for &(bound, cumulative) in buckets {
        if cumulative as f64 >= rank {
            let inside = (cumulative - lower.1) as f64;
            let frac = if inside > 0.0 {
                (rank - lower.1 as f64) / inside
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * frac);
        }
        lower = (bound, cumulative);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let buckets = [(0.1, 10), (0.2, 20), (0.4, 20), (1.0, 40)];
        let cases = [
            (0.5, 40, Some(0.2)),
            (0.25, 40, Some(0.1)),
            (0.125, 40, Some(0.05)),
            (0.75, 40, Some(0.7)),
            (0.5, 0, None),
        ];
        for (q, count, want) in cases {
            let got = quantile(q, count, &buckets);
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "q={q}: {g} != {w}"),
                _ => assert_eq!(got, want, "q={q}"),
            }
        }
        // Observations above every bound: the last bound.
        assert_eq!(quantile(0.99, 50, &buckets), Some(1.0));
    }

    #[test]
    fn counters_gauges_and_histograms_read_back() {
        let registry = Registry::new_custom(Some("allot".into()), None).unwrap();
        let calls = IntCounterVec::new(Opts::new("calls_total", "c"), &["crm", "outcome"]).unwrap();
        let lag = IntGaugeVec::new(Opts::new("lag", "l"), &["source", "partition"]).unwrap();
        let secs = HistogramVec::new(
            HistogramOpts::new("call_seconds", "s").buckets(vec![0.1, 1.0]),
            &["crm"],
        )
        .unwrap();
        registry.register(Box::new(calls.clone())).unwrap();
        registry.register(Box::new(lag.clone())).unwrap();
        registry.register(Box::new(secs.clone())).unwrap();
        calls.with_label_values(&["salesforce", "ok"]).inc_by(3);
        calls
            .with_label_values(&["salesforce", "rate_limited"])
            .inc();
        calls.with_label_values(&["hubspot", "ok"]).inc_by(2);
        lag.with_label_values(&["allot.raw", "0"]).set(7);
        for s in [0.05, 0.05, 0.5, 0.5] {
            secs.with_label_values(&["hubspot"]).observe(s);
        }

        let f = Families::gather(&registry);
        assert_eq!(f.counter("allot_calls_total"), 6);
        assert_eq!(f.counter("allot_missing_total"), 0);
        let by_crm = f.counter_by("allot_calls_total", "crm");
        assert_eq!(by_crm.get("salesforce"), Some(&4));
        assert_eq!(by_crm.get("hubspot"), Some(&2));
        let by2 = f.counter_by2("allot_calls_total", "crm", "outcome");
        assert_eq!(by2["salesforce"]["rate_limited"], 1);
        assert_eq!(
            f.gauges("allot_lag", &["source", "partition"]),
            vec![(vec!["allot.raw".to_string(), "0".to_string()], 7)]
        );
        let h = &f.histogram_by("allot_call_seconds", "crm")["hubspot"];
        assert_eq!(h.count, 4);
        assert_eq!(h.p50_seconds, Some(0.1));
        assert!(h.mean_seconds.is_some_and(|m| (m - 0.275).abs() < 1e-9));
    }
}

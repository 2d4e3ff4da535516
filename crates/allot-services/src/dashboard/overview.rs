//! `GET /api/overview`: the numbers the ops dashboard polls.
//!
//! Counters are cumulative since the process started (the page turns them
//! into rates from one poll to the next); audit-derived figures come from the
//! metrics, never from scanning the audit. Per poll the store is read only
//! for the dead-letter log's two ends, the per-rep open counts (a prefix of
//! the state table), at most [`BACKLOG_CAP`] outbox entries, the failed
//! writes counted per error code (a handful of counters), and, no more than
//! every 30 s, the rule versions.
//!
//! ```json
//! {
//!   "v": 1,
//!   "generated_at": 1764057600000,
//!   "ingest": {
//!     "consumed": {"webhook:hubspot": 3}, "consumed_total": 3,
//!     "decoded": {"hubspot": 3, "salesforce": 5}, "decoded_total": 8,
//!     "deduped": 0, "echoes": 5, "stale": 0,
//!     "hydrated": {"ok": 3}, "parked": 0,
//!     "lag": [{"source": "allot.raw", "partition": "0", "events": 0}]
//!   },
//!   "decisions": {
//!     "total": 8, "changed": 8,
//!     "by_strategy": {"only_candidate": 5, "most_specific": 2, "fallback": 1},
//!     "by_territory": {"sf-na": 4, "(none)": 1},
//!     "conflicts_resolved": 2, "fallback": 1, "unassigned": 0
//!   },
//!   "dlq": {"dead_lettered": {"json": 1}, "dead_lettered_total": 1, "size": 1},
//!   "writer": {
//!     "changes_written": {"hubspot": 3, "salesforce": 5}, "changes_written_total": 8,
//!     "calls": {"salesforce": {"ok": 2}}, "calls_total": 2,
//!     "retries": {}, "retries_total": 0,
//!     "failed": {"hubspot": {"rejected": 1}}, "failed_total": 1,
//!     "skipped_total": 0,
//!     "latency": {"salesforce": {"count": 2, "mean_seconds": 0.004,
//!       "p50_seconds": 0.0025, "p90_seconds": 0.0045, "p99_seconds": 0.00495}},
//!     "rate_headroom": {"hubspot": 97},
//!     "quota_exhausted": [],
//!     "backlog": 0, "backlog_capped": false
//!   },
//!   "failed_writes": {"by_code": {"inactive_owner": 1}, "total": 1},
//!   "stages": {"ingest": {"count": 12, "mean_seconds": 0.002, "p50_seconds": 0.0012,
//!     "p90_seconds": 0.004, "p99_seconds": 0.0049}},
//!   "workload": {
//!     "reps": [{"id": "0055f000001AAAAAA4", "name": "Ana Ruiz", "team": "na",
//!       "max_open": 50, "active": true, "open": 3}],
//!     "total_open": 3, "mean_open": 3.0, "cv": 0.0,
//!     "teams": [{"id": "na", "reps": 3, "open": 7, "cv": 0.35}]
//!   }
//! }
//! ```
//!
//! `by_territory` names the busiest territories (at most
//! [`TERRITORIES_SHOWN`]) and sums the others under `"(other)"`: counted in
//! this process's memory, not from a Prometheus series per territory.
//! `conflicts_resolved` counts decisions in which several territories
//! matched and the engine had to choose (strategies `most_specific`,
//! `priority`, `tie_break`). `rate_headroom` is the writer's gauge of calls
//! left in the CRM's window or day, present once the writer has called that
//! CRM. `backlog` is the owner changes queued and not yet handed to the
//! writer, counted up to [`BACKLOG_CAP`] (`backlog_capped` when there are more).
//! `failed_writes` counts the owner changes in the failed-writes table now
//! (listed, retried and discarded through `/api/writes/failed`), unlike
//! `writer.failed`, which counts give-ups since the process started.
//! `cv` is the coefficient of variation of the open counts (standard
//! deviation over mean; `null` when nobody has open records), over active
//! reps and any inactive one still holding records; `mean_open` and a
//! team's `reps` count the same reps.

use std::collections::BTreeMap;

use allot_core::{Millis, Strategy};
use allot_store::Store;
use serde::Serialize;

use super::families::{Families, Latency};
use super::roster::RepInfo;
use crate::metrics::{Metrics, TERRITORIES_SHOWN};
use crate::raw::DLQ_LOG;

/// Most outbox entries read per poll to count the backlog.
pub const BACKLOG_CAP: usize = 1000;

/// Strategies that mean a conflict between matching territories was resolved.
const CONFLICT_STRATEGIES: [Strategy; 3] = [
    Strategy::MostSpecific,
    Strategy::Priority,
    Strategy::TieBreak,
];

#[derive(Debug, Serialize)]
pub struct Overview {
    pub v: u8,
    pub generated_at: Millis,
    pub ingest: Ingest,
    pub decisions: Decisions,
    pub dlq: Dlq,
    pub writer: Writer,
    pub failed_writes: FailedWrites,
    /// Time to process and commit one batch, by stage.
    pub stages: BTreeMap<String, Latency>,
    pub workload: Workload,
}

#[derive(Debug, Serialize)]
pub struct Ingest {
    pub consumed: BTreeMap<String, u64>,
    pub consumed_total: u64,
    pub decoded: BTreeMap<String, u64>,
    pub decoded_total: u64,
    pub deduped: u64,
    pub echoes: u64,
    pub stale: u64,
    pub hydrated: BTreeMap<String, u64>,
    /// Records parked until their CRM read lands (not decided yet).
    pub parked: i64,
    pub lag: Vec<Lag>,
}

#[derive(Debug, Serialize)]
pub struct Lag {
    pub source: String,
    pub partition: String,
    pub events: i64,
}

#[derive(Debug, Serialize)]
pub struct Decisions {
    pub total: u64,
    pub changed: u64,
    pub by_strategy: BTreeMap<String, u64>,
    pub by_territory: BTreeMap<String, u64>,
    pub conflicts_resolved: u64,
    pub fallback: u64,
    pub unassigned: u64,
}

#[derive(Debug, Serialize)]
pub struct Dlq {
    pub dead_lettered: BTreeMap<String, u64>,
    pub dead_lettered_total: u64,
    /// Entries in the embedded dead-letter log.
    pub size: u64,
}

#[derive(Debug, Serialize)]
pub struct Writer {
    pub changes_written: BTreeMap<String, u64>,
    pub changes_written_total: u64,
    pub calls: BTreeMap<String, BTreeMap<String, u64>>,
    pub calls_total: u64,
    pub retries: BTreeMap<String, u64>,
    pub retries_total: u64,
    pub failed: BTreeMap<String, BTreeMap<String, u64>>,
    pub failed_total: u64,
    pub skipped_total: u64,
    pub latency: BTreeMap<String, Latency>,
    pub rate_headroom: BTreeMap<String, i64>,
    pub quota_exhausted: Vec<String>,
    pub backlog: u64,
    pub backlog_capped: bool,
}

/// The failed-writes table, per error code.
#[derive(Debug, Serialize)]
pub struct FailedWrites {
    pub by_code: BTreeMap<String, u64>,
    pub total: u64,
}

#[derive(Debug, Serialize)]
pub struct Workload {
    pub reps: Vec<RepLoad>,
    pub total_open: i64,
    pub mean_open: Option<f64>,
    pub cv: Option<f64>,
    pub teams: Vec<TeamLoad>,
}

#[derive(Debug, Serialize)]
pub struct RepLoad {
    #[serde(flatten)]
    pub rep: RepInfo,
    pub open: i64,
}

#[derive(Debug, Serialize)]
pub struct TeamLoad {
    pub id: String,
    pub reps: usize,
    pub open: i64,
    pub cv: Option<f64>,
}

/// Builds the overview (blocking: reads the store).
pub fn build(
    metrics: &Metrics,
    store: &Store,
    reps: &[RepInfo],
    now: Millis,
) -> allot_store::Result<Overview> {
    let f = Families::gather(&metrics.registry);
    let dlq = store.log(DLQ_LOG);
    let dlq_size = dlq.end_offset()?.saturating_sub(dlq.start_offset()?);
    let backlog = store.outbox_pending(BACKLOG_CAP + 1)?.len();
    let loads = store.open_loads()?;
    let by_code = store.failed_write_counts()?;
    Ok(Overview {
        v: 1,
        generated_at: now,
        ingest: ingest(&f),
        decisions: decisions(&f, metrics),
        dlq: Dlq {
            dead_lettered: f.counter_by("allot_ingest_dead_lettered_total", "kind"),
            dead_lettered_total: f.counter("allot_ingest_dead_lettered_total"),
            size: dlq_size,
        },
        writer: Writer {
            backlog: backlog.min(BACKLOG_CAP) as u64,
            backlog_capped: backlog > BACKLOG_CAP,
            ..writer(&f)
        },
        failed_writes: FailedWrites {
            total: by_code.values().sum(),
            by_code,
        },
        stages: f.histogram_by("allot_stage_batch_seconds", "stage"),
        workload: workload(reps, loads),
    })
}

fn ingest(f: &Families) -> Ingest {
    let lag = f
        .gauges("allot_ingest_lag_events", &["source", "partition"])
        .into_iter()
        .map(|(mut labels, events)| {
            let partition = labels.pop().unwrap_or_default();
            let source = labels.pop().unwrap_or_default();
            Lag {
                source,
                partition,
                events,
            }
        })
        .collect();
    Ingest {
        consumed: f.counter_by("allot_ingest_payloads_consumed_total", "source"),
        consumed_total: f.counter("allot_ingest_payloads_consumed_total"),
        decoded: f.counter_by("allot_ingest_events_decoded_total", "crm"),
        decoded_total: f.counter("allot_ingest_events_decoded_total"),
        deduped: f.counter("allot_ingest_events_deduped_total"),
        echoes: f.counter("allot_ingest_echoes_total"),
        stale: f.counter("allot_ingest_events_stale_total"),
        hydrated: f.counter_by("allot_ingest_hydrations_total", "outcome"),
        parked: f
            .gauges("allot_hydration_parked_records", &[])
            .first()
            .map_or(0, |(_, v)| *v),
        lag,
    }
}

fn decisions(f: &Families, metrics: &Metrics) -> Decisions {
    const NAME: &str = "allot_assign_decisions_total";
    let by_strategy = f.counter_by(NAME, "strategy");
    let count = |s: Strategy| by_strategy.get(s.as_str()).copied().unwrap_or(0);
    Decisions {
        total: f.counter(NAME),
        changed: f
            .counter_by(NAME, "changed")
            .get("true")
            .copied()
            .unwrap_or(0),
        conflicts_resolved: CONFLICT_STRATEGIES.into_iter().map(count).sum(),
        fallback: count(Strategy::Fallback),
        unassigned: count(Strategy::Unassigned),
        by_territory: metrics.decisions_by_territory.top(TERRITORIES_SHOWN),
        by_strategy,
    }
}

fn writer(f: &Families) -> Writer {
    let headroom = f.gauges("allot_writer_rate_headroom", &["crm"]);
    let exhausted = f.gauges("allot_writer_quota_exhausted", &["crm"]);
    let crm = |mut labels: Vec<String>| labels.pop().unwrap_or_default();
    Writer {
        changes_written: f.counter_by("allot_writer_changes_written_total", "crm"),
        changes_written_total: f.counter("allot_writer_changes_written_total"),
        calls: f.counter_by2("allot_writer_calls_total", "crm", "outcome"),
        calls_total: f.counter("allot_writer_calls_total"),
        retries: f.counter_by("allot_writer_retries_total", "crm"),
        retries_total: f.counter("allot_writer_retries_total"),
        failed: f.counter_by2("allot_writer_failed_total", "crm", "reason"),
        failed_total: f.counter("allot_writer_failed_total"),
        skipped_total: f.counter("allot_writer_skipped_total"),
        latency: f.histogram_by("allot_writer_call_seconds", "crm"),
        rate_headroom: headroom.into_iter().map(|(l, v)| (crm(l), v)).collect(),
        quota_exhausted: exhausted
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .map(|(l, _)| crm(l))
            .collect(),
        backlog: 0,
        backlog_capped: false,
    }
}

/// Open records per rep: the reps of the rules in their order, then any
/// other rep holding records; per team and overall balance.
pub fn workload(reps: &[RepInfo], loads: Vec<(String, i64)>) -> Workload {
    let mut open: BTreeMap<String, i64> = loads.into_iter().collect();
    let mut out: Vec<RepLoad> = reps
        .iter()
        .map(|r| RepLoad {
            open: open.remove(&r.id).unwrap_or(0),
            rep: r.clone(),
        })
        .collect();
    out.extend(open.into_iter().map(|(id, n)| RepLoad {
        rep: RepInfo {
            id,
            name: None,
            team: None,
            max_open: None,
            active: true,
        },
        open: n,
    }));
    // Balance among the reps who can take records (and any still holding some).
    let counted = |r: &&RepLoad| r.rep.active || r.open != 0;
    let mut teams: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for r in out.iter().filter(counted) {
        if let Some(t) = &r.rep.team {
            teams.entry(t).or_default().push(r.open);
        }
    }
    let all: Vec<i64> = out.iter().filter(counted).map(|r| r.open).collect();
    let teams = teams
        .into_iter()
        .map(|(id, loads)| TeamLoad {
            id: id.to_string(),
            reps: loads.len(),
            open: loads.iter().sum(),
            cv: cv(&loads),
        })
        .collect();
    Workload {
        total_open: all.iter().sum(),
        mean_open: mean(&all),
        cv: cv(&all),
        teams,
        reps: out,
    }
}

fn mean(xs: &[i64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<i64>() as f64 / xs.len() as f64)
}

/// Standard deviation over mean; `None` for no values or a zero mean.
fn cv(xs: &[i64]) -> Option<f64> {
    let m = mean(xs).filter(|m| *m > 0.0)?;
    let var = xs.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / xs.len() as f64;
    Some(var.sqrt() / m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(id: &str, team: Option<&str>) -> RepInfo {
        RepInfo {
            id: id.into(),
            name: Some(format!("Rep {id}")),
            team: team.map(str::to_string),
            max_open: None,
            active: true,
        }
    }

    #[test]
    fn balance_is_the_coefficient_of_variation() {
        let cases: [(&[i64], Option<f64>); 4] = [
            (&[], None),
            (&[0, 0], None),
            (&[4, 4, 4], Some(0.0)),
            (&[2, 6], Some(0.5)),
        ];
        for (xs, want) in cases {
            assert_eq!(cv(xs), want, "{xs:?}");
        }
    }

    #[test]
    fn workload_lists_rule_reps_first_then_other_holders() {
        let gone = RepInfo {
            active: false,
            ..rep("g", Some("t"))
        };
        let reps = [
            rep("a", Some("t")),
            rep("b", Some("t")),
            rep("c", None),
            gone,
        ];
        let loads = vec![
            ("b".to_string(), 6),
            ("x".to_string(), 1),
            ("a".to_string(), 2),
        ];
        let w = workload(&reps, loads);
        let got: Vec<(&str, i64)> = w.reps.iter().map(|r| (r.rep.id.as_str(), r.open)).collect();
        assert_eq!(got, [("a", 2), ("b", 6), ("c", 0), ("g", 0), ("x", 1)]);
        assert_eq!(w.total_open, 9);
        // The inactive rep without records does not count toward balance.
        assert_eq!(w.mean_open, Some(2.25));
        assert_eq!(w.teams.len(), 1);
        assert_eq!(
            (w.teams[0].reps, w.teams[0].open, w.teams[0].cv),
            (2, 8, Some(0.5))
        );
    }

    #[test]
    fn overview_reads_metrics_and_store() {
        let store = Store::temporary().unwrap();
        store.log(DLQ_LOG).append(b"{}").unwrap();
        store.log(DLQ_LOG).append(b"{}").unwrap();
        let m = Metrics::new();
        m.decisions
            .with_label_values(&["most_specific", "true"])
            .inc_by(2);
        m.decisions
            .with_label_values(&["only_candidate", "true"])
            .inc_by(3);
        m.decisions.with_label_values(&["fallback", "false"]).inc();
        m.dead_lettered.with_label_values(&["json"]).inc_by(2);
        for i in 0..30 {
            m.decisions_by_territory.add(&format!("t{i:02}"), 1);
        }
        m.decisions_by_territory.add("sf-na", 5);
        let wm = allot_writer::WriterMetrics::unprefixed();
        wm.register(&m.registry).unwrap();
        wm.changes_written.with_label_values(&["hubspot"]).inc_by(4);
        wm.rate_headroom.with_label_values(&["hubspot"]).set(96);

        let o = build(&m, &store, &[rep("a", None)], 7).unwrap();
        assert_eq!(o.generated_at, 7);
        assert_eq!(
            (
                o.decisions.total,
                o.decisions.changed,
                o.decisions.conflicts_resolved
            ),
            (6, 5, 2)
        );
        assert_eq!((o.decisions.fallback, o.decisions.unassigned), (1, 0));
        assert_eq!(o.decisions.by_strategy.get("only_candidate"), Some(&3));
        let t = &o.decisions.by_territory;
        assert_eq!(t.len(), TERRITORIES_SHOWN + 1, "{t:?}");
        assert_eq!((t["sf-na"], t["(other)"]), (5, 30 - 19));
        assert_eq!((o.dlq.dead_lettered_total, o.dlq.size), (2, 2));
        assert_eq!(o.writer.changes_written_total, 4);
        assert_eq!(o.writer.rate_headroom.get("hubspot"), Some(&96));
        assert_eq!((o.writer.backlog, o.writer.backlog_capped), (0, false));
        assert_eq!(o.failed_writes.total, 0);
        assert_eq!(o.workload.reps.len(), 1);
    }
}

//! Realignment: what changes, per territory and per rep, when records are
//! decided under a new rule set instead of the old one. Pure aggregation; the
//! CLI and the admin API feed it records and print the report.

use std::collections::BTreeMap;

use allot_core::{EngineState, Millis, ObjectKind, Record};
use serde::Serialize;

use crate::{decide, RuleSet};

/// One record whose owner differs between the two rule sets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Move {
    pub id: String,
    pub object: ObjectKind,
    pub from_owner: Option<String>,
    pub to_owner: Option<String>,
    pub from_territory: Option<String>,
    pub to_territory: Option<String>,
}

/// Records held before and after, and how many moved in and out.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    pub before: u64,
    pub after: u64,
    pub moved_in: u64,
    pub moved_out: u64,
    /// Sum of the balance field over the records held before / after.
    pub sum_before: f64,
    pub sum_after: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Balance {
    /// Coefficient of variation of records per rep (std dev / mean).
    pub cv_count: f64,
    /// Coefficient of variation of the balance field's sum per rep.
    pub cv_sum: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RealignReport {
    pub old_version: String,
    pub new_version: String,
    pub records: u64,
    pub moved: u64,
    pub balance_field: Option<String>,
    pub territories: BTreeMap<String, Tally>,
    pub reps: BTreeMap<String, Tally>,
    pub balance_before: Balance,
    pub balance_after: Balance,
}

/// Decides each record under both rule sets, each with its own state flowing
/// from record to record in input order.
pub struct Realigner<'a> {
    old: &'a RuleSet,
    new: &'a RuleSet,
    old_state: EngineState,
    new_state: EngineState,
    now: Millis,
    report: RealignReport,
}

const NONE: &str = "(none)";

impl<'a> Realigner<'a> {
    pub fn new(old: &'a RuleSet, new: &'a RuleSet, state: EngineState, now: Millis, balance_field: Option<String>) -> Self {
        let report = RealignReport {
            old_version: old.version.clone(),
            new_version: new.version.clone(),
            balance_field,
            ..RealignReport::default()
        };
        Realigner { old, new, old_state: state.clone(), new_state: state, now, report }
    }

    /// Adds one record; returns its move when the owner changes.
    pub fn push(&mut self, record: &Record) -> Option<Move> {
        let a = decide(self.old, &self.old_state, record, self.now);
        self.old_state.apply(&a.ops);
        let b = decide(self.new, &self.new_state, record, self.now);
        self.new_state.apply(&b.ops);
        let (a, b) = (a.decision, b.decision);
        let weight = self.report.balance_field.as_deref().and_then(|f| record.field(f)).and_then(|v| v.as_num()).unwrap_or(0.0);
        let r = &mut self.report;
        r.records += 1;
        let key = |x: &Option<String>| x.clone().unwrap_or_else(|| NONE.to_string());
        let moved = a.owner != b.owner;
        for (map, from, to) in [(&mut r.territories, key(&a.territory), key(&b.territory)), (&mut r.reps, key(&a.owner), key(&b.owner))] {
            let t = map.entry(from.clone()).or_default();
            t.before += 1;
            t.sum_before += weight;
            let changed = from != to;
            if changed {
                t.moved_out += 1;
            }
            let t = map.entry(to).or_default();
            t.after += 1;
            t.sum_after += weight;
            if changed {
                t.moved_in += 1;
            }
        }
        moved.then(|| {
            r.moved += 1;
            Move { id: record.id.clone(), object: record.object, from_owner: a.owner, to_owner: b.owner, from_territory: a.territory, to_territory: b.territory }
        })
    }

    pub fn finish(mut self) -> RealignReport {
        let reps: Vec<&Tally> = self.report.reps.iter().filter(|(k, _)| k.as_str() != NONE).map(|(_, v)| v).collect();
        let cv = |xs: Vec<f64>| {
            let n = xs.len() as f64;
            let mean = xs.iter().sum::<f64>() / n;
            if xs.is_empty() || mean == 0.0 {
                return 0.0;
            }
            (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt() / mean
        };
        self.report.balance_before = Balance {
            cv_count: cv(reps.iter().filter(|t| t.before > 0).map(|t| t.before as f64).collect()),
            cv_sum: cv(reps.iter().filter(|t| t.before > 0).map(|t| t.sum_before).collect()),
        };
        self.report.balance_after = Balance {
            cv_count: cv(reps.iter().filter(|t| t.after > 0).map(|t| t.after as f64).collect()),
            cv_sum: cv(reps.iter().filter(|t| t.after > 0).map(|t| t.sum_after).collect()),
        };
        self.report
    }
}

//! Realignment: what changes, per territory and per rep, when records are
//! decided under a new rule set instead of the old one. Pure aggregation; the
//! CLI and the admin API feed it records and print the report.

use std::collections::{BTreeMap, HashMap};

use allot_core::{EngineState, Millis, ObjectKind, Record};
use serde::Serialize;

use crate::{decide_with, Detail, Matcher, RuleSet};

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

/// Where one rule set puts a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub owner: Option<String>,
    pub territory: Option<String>,
}

/// One rule set with its own state flowing from record to record in order.
/// Two sides are independent, so callers may run them on two threads.
pub struct Side<'a> {
    rules: &'a RuleSet,
    state: EngineState,
    now: Millis,
}

impl<'a> Side<'a> {
    pub fn new(rules: &'a RuleSet, state: EngineState, now: Millis) -> Self {
        Side { rules, state, now }
    }

    pub fn place(&mut self, record: &Record) -> Placement {
        let out = decide_with(
            self.rules,
            &self.state,
            record,
            self.now,
            Matcher::Indexed,
            Detail::Lean,
        );
        self.state.apply_owned(out.ops);
        Placement {
            owner: out.decision.owner,
            territory: out.decision.territory,
        }
    }
}

const NONE: &str = "(none)";

/// Counts placements before and after into a [`RealignReport`].
pub struct Tallies {
    report: RealignReport,
    /// Hash maps while counting (millions of lookups), sorted into the report at the end.
    territories: HashMap<String, Tally>,
    reps: HashMap<String, Tally>,
}

impl Tallies {
    pub fn new(old: &RuleSet, new: &RuleSet, balance_field: Option<String>) -> Self {
        let report = RealignReport {
            old_version: old.version.clone(),
            new_version: new.version.clone(),
            balance_field,
            ..RealignReport::default()
        };
        Tallies {
            report,
            territories: HashMap::new(),
            reps: HashMap::new(),
        }
    }

    /// Adds one record placed by both sides; returns its move when the owner changes.
    pub fn add(&mut self, record: &Record, a: Placement, b: Placement) -> Option<Move> {
        let weight = self
            .report
            .balance_field
            .as_deref()
            .and_then(|f| record.field(f))
            .and_then(|v| v.as_num())
            .unwrap_or(0.0);
        let r = &mut self.report;
        r.records += 1;
        count(
            &mut self.territories,
            a.territory.as_deref(),
            b.territory.as_deref(),
            weight,
        );
        count(
            &mut self.reps,
            a.owner.as_deref(),
            b.owner.as_deref(),
            weight,
        );
        (a.owner != b.owner).then(|| {
            r.moved += 1;
            Move {
                id: record.id.clone(),
                object: record.object,
                from_owner: a.owner,
                to_owner: b.owner,
                from_territory: a.territory,
                to_territory: b.territory,
            }
        })
    }

    pub fn finish(mut self) -> RealignReport {
        self.report.territories = self.territories.into_iter().collect();
        self.report.reps = self.reps.into_iter().collect();
        let reps: Vec<&Tally> = self
            .report
            .reps
            .iter()
            .filter(|(k, _)| k.as_str() != NONE)
            .map(|(_, v)| v)
            .collect();
        self.report.balance_before = Balance {
            cv_count: cv(reps
                .iter()
                .filter(|t| t.before > 0)
                .map(|t| t.before as f64)
                .collect()),
            cv_sum: cv(reps
                .iter()
                .filter(|t| t.before > 0)
                .map(|t| t.sum_before)
                .collect()),
        };
        self.report.balance_after = Balance {
            cv_count: cv(reps
                .iter()
                .filter(|t| t.after > 0)
                .map(|t| t.after as f64)
                .collect()),
            cv_sum: cv(reps
                .iter()
                .filter(|t| t.after > 0)
                .map(|t| t.sum_after)
                .collect()),
        };
        self.report
    }
}

fn tally<'m>(map: &'m mut HashMap<String, Tally>, key: Option<&str>) -> &'m mut Tally {
    let key = key.unwrap_or(NONE);
    if !map.contains_key(key) {
        map.insert(key.to_string(), Tally::default());
    }
    map.get_mut(key).expect("inserted above")
}

fn count(map: &mut HashMap<String, Tally>, from: Option<&str>, to: Option<&str>, weight: f64) {
    let moved = from != to;
    let t = tally(map, from);
    t.before += 1;
    t.sum_before += weight;
    t.moved_out += u64::from(moved);
    let t = tally(map, to);
    t.after += 1;
    t.sum_after += weight;
    t.moved_in += u64::from(moved);
}

/// Coefficient of variation: standard deviation over mean (0 when empty).
fn cv(xs: Vec<f64>) -> f64 {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.is_empty() || mean == 0.0 {
        return 0.0;
    }
    (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt() / mean
}

/// Both sides and the tallies on one thread: the simple way to realign.
pub struct Realigner<'a> {
    old: Side<'a>,
    new: Side<'a>,
    tallies: Tallies,
}

impl<'a> Realigner<'a> {
    pub fn new(
        old: &'a RuleSet,
        new: &'a RuleSet,
        state: EngineState,
        now: Millis,
        balance_field: Option<String>,
    ) -> Self {
        Realigner {
            old: Side::new(old, state.clone(), now),
            new: Side::new(new, state, now),
            tallies: Tallies::new(old, new, balance_field),
        }
    }

    pub fn push(&mut self, record: &Record) -> Option<Move> {
        let (a, b) = (self.old.place(record), self.new.place(record));
        self.tallies.add(record, a, b)
    }

    pub fn finish(self) -> RealignReport {
        self.tallies.finish()
    }
}

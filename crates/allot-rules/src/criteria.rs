//! Compiled criteria and their evaluation against a prepared record.

use std::borrow::Cow;
use std::collections::HashSet;

use allot_core::{Record, Value};
use regex::Regex;

use crate::normalize::{domain_matches, domain_of, Norm};

/// Index of a field name in [`crate::RuleSet::fields`].
pub type FieldId = usize;

/// A compiled criterion. Values are normalised at compile time with the
/// field's [`Norm`], so evaluation compares normalised text only.
#[derive(Debug, Clone)]
pub enum Criterion {
    /// Matches every record (a territory without criteria).
    True,
    In {
        field: FieldId,
        values: HashSet<String>,
    },
    NotIn {
        field: FieldId,
        values: HashSet<String>,
    },
    Prefix {
        field: FieldId,
        prefixes: Vec<String>,
    },
    /// Inclusive on both ends; `None` is open.
    Range {
        field: FieldId,
        min: Option<f64>,
        max: Option<f64>,
    },
    Exists(FieldId),
    Missing(FieldId),
    Regex {
        field: FieldId,
        re: Regex,
    },
    DomainIn {
        field: FieldId,
        domains: Vec<String>,
    },
    All(Vec<Criterion>),
    Any(Vec<Criterion>),
    Not(Box<Criterion>),
}

/// One record field, prepared once per decision.
#[derive(Debug, Clone)]
pub struct Prepared<'r> {
    pub raw: Cow<'r, str>,
    pub norm: String,
    pub num: Option<f64>,
}

/// The fields of a record that the rules read, by [`FieldId`].
#[derive(Debug, Clone)]
pub struct PreparedRecord<'r> {
    pub values: Vec<Option<Prepared<'r>>>,
}

impl<'r> PreparedRecord<'r> {
    /// Prepares `record` for the rule set's fields. An empty or blank string
    /// counts as missing: CRMs send `""` for cleared fields as often as null.
    pub fn new(record: &'r Record, fields: &[String]) -> Self {
        let values = fields
            .iter()
            .map(|name| {
                let (raw, num) = match record.field(name) {
                    Some(v @ Value::Str(s)) => (Cow::Borrowed(s.trim()), v.as_num()),
                    Some(v) => (Cow::Owned(v.as_text()?), v.as_num()),
                    None if name == "domain" => (Cow::Owned(record_domain(record)?), None),
                    None => return None,
                };
                if raw.is_empty() {
                    return None;
                }
                let norm = Norm::for_field(name).apply(&raw);
                Some(Prepared { raw, norm, num })
            })
            .collect();
        PreparedRecord { values }
    }

    pub fn get(&self, f: FieldId) -> Option<&Prepared<'r>> {
        self.values.get(f).and_then(Option::as_ref)
    }
}

/// The record's company domain: `domain`, else the email's, else the website host.
pub fn record_domain(record: &Record) -> Option<String> {
    ["domain", "email", "website"]
        .iter()
        .filter_map(|f| record.field(f).and_then(|v| v.as_text()))
        .find_map(|t| domain_of(&t))
}

impl Criterion {
    pub fn eval(&self, r: &PreparedRecord<'_>) -> bool {
        match self {
            Criterion::True => true,
            Criterion::In { field, values } => {
                r.get(*field).is_some_and(|p| values.contains(&p.norm))
            }
            Criterion::NotIn { field, values } => {
                r.get(*field).is_some_and(|p| !values.contains(&p.norm))
            }
            Criterion::Prefix { field, prefixes } => r
                .get(*field)
                .is_some_and(|p| prefixes.iter().any(|x| p.norm.starts_with(x.as_str()))),
            Criterion::Range { field, min, max } => r
                .get(*field)
                .and_then(|p| p.num)
                .is_some_and(|n| min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)),
            Criterion::Exists(field) => r.get(*field).is_some(),
            Criterion::Missing(field) => r.get(*field).is_none(),
            Criterion::Regex { field, re } => r.get(*field).is_some_and(|p| re.is_match(&p.raw)),
            Criterion::DomainIn { field, domains } => r.get(*field).is_some_and(|p| {
                domain_of(&p.raw).is_some_and(|d| domains.iter().any(|l| domain_matches(&d, l)))
            }),
            Criterion::All(cs) => cs.iter().all(|c| c.eval(r)),
            Criterion::Any(cs) => cs.iter().any(|c| c.eval(r)),
            Criterion::Not(c) => !c.eval(r),
        }
    }

    /// The top-level conjuncts: the members of a (nested) `All`, or itself.
    pub fn conjuncts(&self) -> Vec<&Criterion> {
        match self {
            Criterion::All(cs) => cs.iter().flat_map(Criterion::conjuncts).collect(),
            Criterion::True => Vec::new(),
            other => vec![other],
        }
    }

    /// Every field this criterion reads.
    pub fn fields(&self, out: &mut Vec<FieldId>) {
        match self {
            Criterion::True => {}
            Criterion::In { field, .. }
            | Criterion::NotIn { field, .. }
            | Criterion::Prefix { field, .. }
            | Criterion::Range { field, .. }
            | Criterion::Exists(field)
            | Criterion::Missing(field)
            | Criterion::Regex { field, .. }
            | Criterion::DomainIn { field, .. } => out.push(*field),
            Criterion::All(cs) | Criterion::Any(cs) => cs.iter().for_each(|c| c.fields(out)),
            Criterion::Not(c) => c.fields(out),
        }
    }

    /// Conservative: `true` only when no record can satisfy both.
    pub fn disjoint(&self, other: &Criterion) -> bool {
        let (a, b) = (self.conjuncts(), other.conjuncts());
        a.iter().any(|x| b.iter().any(|y| atoms_disjoint(x, y)))
    }
}

fn atoms_disjoint(x: &Criterion, y: &Criterion) -> bool {
    use Criterion::*;
    match (x, y) {
        (Any(xs), other) | (other, Any(xs)) => xs.iter().all(|x| x.disjoint(other)),
        (
            In {
                field: f,
                values: a,
            },
            In {
                field: g,
                values: b,
            },
        ) if f == g => a.is_disjoint(b),
        (
            In {
                field: f,
                values: a,
            },
            NotIn {
                field: g,
                values: b,
            },
        )
        | (
            NotIn {
                field: g,
                values: b,
            },
            In {
                field: f,
                values: a,
            },
        ) if f == g => a.is_subset(b),
        (
            Prefix {
                field: f,
                prefixes: a,
            },
            Prefix {
                field: g,
                prefixes: b,
            },
        ) if f == g => a.iter().all(|p| {
            b.iter()
                .all(|q| !p.starts_with(q.as_str()) && !q.starts_with(p.as_str()))
        }),
        (
            In {
                field: f,
                values: a,
            },
            Prefix {
                field: g,
                prefixes: b,
            },
        )
        | (
            Prefix {
                field: g,
                prefixes: b,
            },
            In {
                field: f,
                values: a,
            },
        ) if f == g => a
            .iter()
            .all(|v| b.iter().all(|p| !v.starts_with(p.as_str()))),
        (
            Range {
                field: f,
                min: a0,
                max: a1,
            },
            Range {
                field: g,
                min: b0,
                max: b1,
            },
        ) if f == g => {
            let below = |hi: &Option<f64>, lo: &Option<f64>| matches!((hi, lo), (Some(h), Some(l)) if h < l);
            below(a1, b0) || below(b1, a0)
        }
        (Exists(f), Missing(g)) | (Missing(g), Exists(f)) => f == g,
        (Missing(f), other) | (other, Missing(f)) => {
            let mut fs = Vec::new();
            other.fields(&mut fs);
            !matches!(other, Not(_) | Any(_) | Missing(_)) && fs == vec![*f]
        }
        _ => false,
    }
}

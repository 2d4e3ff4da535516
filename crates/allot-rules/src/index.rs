//! Territory index: finds the few territories worth verifying for a record,
//! so matching cost grows with the number of matches, not of territories.
//!
//! Each territory is filed under one key taken from its top-level conjuncts
//! (own and inherited): an equality set, a prefix set, a numeric range, or a
//! pair (equality with equality or with prefix, e.g. country and postal
//! prefix), whichever value combinations are shared by the fewest other
//! territories. A record probes every
//! key kind with its own values; the union is verified against the full
//! criteria. Territories without an indexable conjunct are always verified.
//! The naive matcher ([`crate::match_naive`]) is kept as the reference.

use std::collections::{HashMap, HashSet};

use crate::criteria::{Criterion, FieldId, PreparedRecord};
use crate::model::Territory;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IndexStats {
    pub territories: usize,
    pub by_equality: usize,
    pub by_prefix: usize,
    pub by_range: usize,
    /// Filed under two conjuncts at once (equality with equality or prefix).
    pub by_pair: usize,
    /// Verified for every record.
    pub scanned: usize,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct TerritoryIndex {
    eq: HashMap<FieldId, HashMap<String, Vec<u32>>>,
    prefix: HashMap<FieldId, Prefixes>,
    range: HashMap<FieldId, Segments>,
    /// Equality on the first field, then prefix on the second.
    eq_prefix: HashMap<(FieldId, FieldId), HashMap<String, Prefixes>>,
    /// Equality on both fields.
    eq_eq: HashMap<(FieldId, FieldId), HashMap<String, Postings>>,
    scan: Vec<u32>,
    stats: Option<IndexStats>,
}

/// Territory indexes by normalised value.
type Postings = HashMap<String, Vec<u32>>;

/// A range criterion of one territory: `(territory, min, max)`.
type RangeEntry = (u32, Option<f64>, Option<f64>);

#[derive(Debug, Clone, Default)]
struct Prefixes {
    map: HashMap<String, Vec<u32>>,
    max_len: usize,
}

impl Prefixes {
    fn add(&mut self, p: &str, id: u32) {
        self.max_len = self.max_len.max(p.len());
        self.map.entry(p.to_string()).or_default().push(id);
    }

    fn probe(&self, s: &str, out: &mut Vec<u32>) {
        for len in 1..=self.max_len.min(s.len()) {
            if let Some(list) = s.get(..len).and_then(|k| self.map.get(k)) {
                out.extend_from_slice(list);
            }
        }
    }
}

/// Elementary segments between all range bounds of one field; a territory is
/// listed in every segment its range touches (a superset, verified later).
#[derive(Debug, Clone, Default)]
struct Segments {
    bounds: Vec<f64>,
    lists: Vec<Vec<u32>>,
}

impl Segments {
    fn segment(&self, v: f64) -> usize {
        self.bounds.partition_point(|b| *b <= v)
    }
}

/// The indexable conjuncts of one territory.
struct Atoms<'a> {
    eqs: Vec<(FieldId, &'a HashSet<String>)>,
    prefixes: Vec<(FieldId, &'a [String])>,
    ranges: Vec<(FieldId, Option<f64>, Option<f64>)>,
}

impl<'a> Atoms<'a> {
    fn of(t: &'a Territory) -> Atoms<'a> {
        let mut a = Atoms {
            eqs: vec![],
            prefixes: vec![],
            ranges: vec![],
        };
        for c in t.criteria.conjuncts() {
            match c {
                Criterion::In { field, values } => a.eqs.push((*field, values)),
                Criterion::Prefix { field, prefixes } => a.prefixes.push((*field, prefixes)),
                Criterion::Range { field, min, max } if min.is_some() || max.is_some() => {
                    a.ranges.push((*field, *min, *max))
                }
                _ => {}
            }
        }
        a
    }
}

#[derive(Clone, Copy)]
enum Key<'a> {
    Eq(FieldId, &'a HashSet<String>),
    Prefix(FieldId, &'a [String]),
    Range(FieldId, Option<f64>, Option<f64>),
    EqPrefix(FieldId, &'a HashSet<String>, FieldId, &'a [String]),
    EqEq(FieldId, &'a HashSet<String>, FieldId, &'a HashSet<String>),
}

/// Every way a territory could be filed, each with its value combinations.
fn keys<'a>(a: &Atoms<'a>) -> Vec<Key<'a>> {
    let mut out: Vec<Key> = Vec::new();
    out.extend(a.eqs.iter().map(|&(f, v)| Key::Eq(f, v)));
    out.extend(a.prefixes.iter().map(|&(f, p)| Key::Prefix(f, p)));
    out.extend(a.ranges.iter().map(|&(f, lo, hi)| Key::Range(f, lo, hi)));
    for &(f, v) in &a.eqs {
        out.extend(
            a.prefixes
                .iter()
                .filter(|(g, _)| *g != f)
                .map(|&(g, p)| Key::EqPrefix(f, v, g, p)),
        );
        out.extend(
            a.eqs
                .iter()
                .filter(|(g, _)| *g > f)
                .map(|&(g, w)| Key::EqEq(f, v, g, w)),
        );
    }
    out
}

/// Identifies one value combination of a key, for counting how many
/// territories share it.
fn combos(k: &Key) -> Vec<String> {
    match *k {
        Key::Eq(f, v) => v.iter().map(|x| format!("e{f}\u{1f}{x}")).collect(),
        Key::Prefix(f, p) => p.iter().map(|x| format!("p{f}\u{1f}{x}")).collect(),
        Key::Range(f, _, _) => vec![format!("r{f}")],
        Key::EqPrefix(f, v, g, p) => v
            .iter()
            .flat_map(|x| {
                p.iter()
                    .map(move |y| format!("ep{f}\u{1f}{x}\u{1f}{g}\u{1f}{y}"))
            })
            .collect(),
        Key::EqEq(f, v, g, w) => v
            .iter()
            .flat_map(|x| {
                w.iter()
                    .map(move |y| format!("ee{f}\u{1f}{x}\u{1f}{g}\u{1f}{y}"))
            })
            .collect(),
    }
}

impl TerritoryIndex {
    pub fn build(territories: &[Territory]) -> TerritoryIndex {
        let atoms: Vec<Atoms> = territories.iter().map(Atoms::of).collect();
        let all_keys: Vec<Vec<(Key, Vec<String>)>> = atoms
            .iter()
            .map(|a| {
                keys(a)
                    .into_iter()
                    .map(|k| {
                        let c = combos(&k);
                        (k, c)
                    })
                    .collect()
            })
            .collect();
        // How many territories share each value combination.
        let mut freq: HashMap<&str, usize> = HashMap::new();
        for ks in &all_keys {
            for (_, cs) in ks {
                cs.iter()
                    .for_each(|c| *freq.entry(c.as_str()).or_default() += 1);
            }
        }
        let mut ix = TerritoryIndex::default();
        let mut stats = IndexStats {
            territories: territories.len(),
            by_equality: 0,
            by_prefix: 0,
            by_range: 0,
            by_pair: 0,
            scanned: 0,
        };
        let mut ranges: HashMap<FieldId, Vec<RangeEntry>> = HashMap::new();
        for (i, ks) in all_keys.iter().enumerate() {
            let id = i as u32;
            // Range combinations are coarse (one per field): count them as half shared.
            let cost = |k: &Key, cs: &[String]| -> usize {
                let n: usize = cs.iter().map(|c| freq[c.as_str()]).sum();
                if matches!(k, Key::Range(..)) {
                    n / 2 + 1
                } else {
                    n
                }
            };
            let best = ks.iter().min_by_key(|(k, cs)| cost(k, cs)).map(|(k, _)| *k);
            match best {
                Some(Key::Eq(f, values)) => {
                    stats.by_equality += 1;
                    let m = ix.eq.entry(f).or_default();
                    values
                        .iter()
                        .for_each(|v| m.entry(v.clone()).or_default().push(id));
                }
                Some(Key::Prefix(f, prefixes)) => {
                    stats.by_prefix += 1;
                    let p = ix.prefix.entry(f).or_default();
                    prefixes.iter().for_each(|x| p.add(x, id));
                }
                Some(Key::Range(f, lo, hi)) => {
                    stats.by_range += 1;
                    ranges.entry(f).or_default().push((id, lo, hi));
                }
                Some(Key::EqPrefix(f, values, g, prefixes)) => {
                    stats.by_pair += 1;
                    let m = ix.eq_prefix.entry((f, g)).or_default();
                    for v in values {
                        let p = m.entry(v.clone()).or_default();
                        prefixes.iter().for_each(|x| p.add(x, id));
                    }
                }
                Some(Key::EqEq(f, values, g, others)) => {
                    stats.by_pair += 1;
                    let m = ix.eq_eq.entry((f, g)).or_default();
                    for v in values {
                        let inner = m.entry(v.clone()).or_default();
                        others
                            .iter()
                            .for_each(|w| inner.entry(w.clone()).or_default().push(id));
                    }
                }
                None => {
                    stats.scanned += 1;
                    ix.scan.push(id);
                }
            }
        }
        for (f, list) in ranges {
            let mut bounds: Vec<f64> = list
                .iter()
                .flat_map(|(_, a, b)| [*a, *b])
                .flatten()
                .collect();
            bounds.sort_by(f64::total_cmp);
            bounds.dedup();
            let mut seg = Segments {
                lists: vec![Vec::new(); bounds.len() + 1],
                bounds,
            };
            for (id, lo, hi) in list {
                let a = lo.map_or(0, |v| seg.segment(v));
                let b = hi.map_or(seg.bounds.len(), |v| seg.segment(v));
                for s in a..=b {
                    seg.lists[s].push(id);
                }
            }
            ix.range.insert(f, seg);
        }
        ix.stats = Some(stats);
        ix
    }

    pub fn stats(&self) -> IndexStats {
        self.stats.unwrap_or(IndexStats {
            territories: 0,
            by_equality: 0,
            by_prefix: 0,
            by_range: 0,
            by_pair: 0,
            scanned: 0,
        })
    }

    /// Territories that may match `r`, sorted, without duplicates.
    pub fn probe(&self, r: &PreparedRecord, out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(&self.scan);
        for (f, m) in &self.eq {
            if let Some(list) = r.get(*f).and_then(|p| m.get(&p.norm)) {
                out.extend_from_slice(list);
            }
        }
        for (f, p) in &self.prefix {
            if let Some(v) = r.get(*f) {
                p.probe(&v.norm, out);
            }
        }
        for ((f, g), m) in &self.eq_prefix {
            if let (Some(a), Some(b)) = (r.get(*f), r.get(*g)) {
                if let Some(p) = m.get(&a.norm) {
                    p.probe(&b.norm, out);
                }
            }
        }
        for ((f, g), m) in &self.eq_eq {
            if let (Some(a), Some(b)) = (r.get(*f), r.get(*g)) {
                if let Some(list) = m.get(&a.norm).and_then(|inner| inner.get(&b.norm)) {
                    out.extend_from_slice(list);
                }
            }
        }
        for (f, seg) in &self.range {
            if let Some(n) = r.get(*f).and_then(|p| p.num) {
                out.extend_from_slice(&seg.lists[seg.segment(n)]);
            }
        }
        out.sort_unstable();
        out.dedup();
    }
}

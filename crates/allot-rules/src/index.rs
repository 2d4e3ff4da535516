//! Territory index: finds the few territories worth verifying for a record,
//! so matching cost grows with the number of matches, not of territories.
//!
//! Each territory is filed under one key taken from its top-level conjuncts
//! (own and inherited): an equality set, a prefix set or a numeric range,
//! whichever is shared by the fewest other territories. A record probes every
//! key kind with its own values; the union is verified against the full
//! criteria. Territories without an indexable conjunct are always verified.
//! The naive matcher ([`crate::match_naive`]) is kept as the reference.

use std::collections::HashMap;

use crate::criteria::{Criterion, FieldId, PreparedRecord};
use crate::model::Territory;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IndexStats {
    pub territories: usize,
    pub by_equality: usize,
    pub by_prefix: usize,
    pub by_range: usize,
    /// Verified for every record.
    pub scanned: usize,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct TerritoryIndex {
    eq: HashMap<FieldId, HashMap<String, Vec<u32>>>,
    prefix: HashMap<FieldId, Prefixes>,
    range: HashMap<FieldId, Segments>,
    scan: Vec<u32>,
    stats: Option<IndexStats>,
}

#[derive(Debug, Clone, Default)]
struct Prefixes {
    map: HashMap<String, Vec<u32>>,
    max_len: usize,
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

enum Key<'a> {
    Eq(FieldId, Vec<&'a str>),
    Prefix(FieldId, Vec<&'a str>),
    Range(FieldId, Option<f64>, Option<f64>),
}

impl TerritoryIndex {
    pub fn build(territories: &[Territory]) -> TerritoryIndex {
        // How many territories share each equality value / prefix / range field.
        let mut eq_freq: HashMap<(FieldId, &str), usize> = HashMap::new();
        let mut prefix_freq: HashMap<(FieldId, &str), usize> = HashMap::new();
        let mut range_freq: HashMap<FieldId, usize> = HashMap::new();
        for t in territories {
            for c in t.criteria.conjuncts() {
                match c {
                    Criterion::In { field, values } => values.iter().for_each(|v| *eq_freq.entry((*field, v)).or_default() += 1),
                    Criterion::Prefix { field, prefixes } => prefixes.iter().for_each(|p| *prefix_freq.entry((*field, p)).or_default() += 1),
                    Criterion::Range { field, .. } => *range_freq.entry(*field).or_default() += 1,
                    _ => {}
                }
            }
        }
        let mut ix = TerritoryIndex::default();
        let mut stats = IndexStats { territories: territories.len(), by_equality: 0, by_prefix: 0, by_range: 0, scanned: 0 };
        let mut ranges: HashMap<FieldId, Vec<(u32, Option<f64>, Option<f64>)>> = HashMap::new();
        for (i, t) in territories.iter().enumerate() {
            let id = i as u32;
            let best = t
                .criteria
                .conjuncts()
                .into_iter()
                .filter_map(|c| match c {
                    Criterion::In { field, values } => {
                        let cost = values.iter().map(|v| eq_freq[&(*field, v.as_str())]).sum::<usize>();
                        Some((cost, Key::Eq(*field, values.iter().map(String::as_str).collect())))
                    }
                    Criterion::Prefix { field, prefixes } => {
                        let cost = prefixes.iter().map(|p| prefix_freq[&(*field, p.as_str())]).sum::<usize>();
                        Some((cost, Key::Prefix(*field, prefixes.iter().map(String::as_str).collect())))
                    }
                    Criterion::Range { field, min, max } if min.is_some() || max.is_some() => {
                        Some((range_freq[field] / 2 + 1, Key::Range(*field, *min, *max)))
                    }
                    _ => None,
                })
                .min_by_key(|(cost, _)| *cost)
                .map(|(_, k)| k);
            match best {
                Some(Key::Eq(f, values)) => {
                    stats.by_equality += 1;
                    let m = ix.eq.entry(f).or_default();
                    values.into_iter().for_each(|v| m.entry(v.to_string()).or_default().push(id));
                }
                Some(Key::Prefix(f, prefixes)) => {
                    stats.by_prefix += 1;
                    let p = ix.prefix.entry(f).or_default();
                    for x in prefixes {
                        p.max_len = p.max_len.max(x.len());
                        p.map.entry(x.to_string()).or_default().push(id);
                    }
                }
                Some(Key::Range(f, lo, hi)) => {
                    stats.by_range += 1;
                    ranges.entry(f).or_default().push((id, lo, hi));
                }
                None => {
                    stats.scanned += 1;
                    ix.scan.push(id);
                }
            }
        }
        for (f, list) in ranges {
            let mut bounds: Vec<f64> = list.iter().flat_map(|(_, a, b)| [*a, *b]).flatten().collect();
            bounds.sort_by(f64::total_cmp);
            bounds.dedup();
            let mut seg = Segments { lists: vec![Vec::new(); bounds.len() + 1], bounds };
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
        self.stats.unwrap_or(IndexStats { territories: 0, by_equality: 0, by_prefix: 0, by_range: 0, scanned: 0 })
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
                let s = v.norm.as_str();
                for len in 1..=p.max_len.min(s.len()) {
                    if let Some(list) = s.get(..len).and_then(|k| p.map.get(k)) {
                        out.extend_from_slice(list);
                    }
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

//! Validation warnings for territories that may overlap at the same depth
//! and priority: only the tie-break would settle a record that matches both.

use std::collections::BTreeMap;

use crate::model::RuleSet;

/// Most pairs compared; larger rule sets get one warning that the check stopped.
const MAX_PAIRS: usize = 500_000;

/// `(territory index, message)` per possible overlap.
pub(crate) fn tie_break_overlaps(rules: &RuleSet) -> Vec<(usize, String)> {
    if !rules.order.contains(&crate::Step::TieBreak) {
        return Vec::new();
    }
    let mut groups: BTreeMap<(u32, i64), Vec<usize>> = BTreeMap::new();
    for (i, t) in rules.territories.iter().enumerate() {
        groups.entry((t.depth, t.priority)).or_default().push(i);
    }
    let mut out = Vec::new();
    let mut compared = 0usize;
    for ((depth, priority), members) in groups {
        for (k, &a) in members.iter().enumerate() {
            for &b in &members[k + 1..] {
                compared += 1;
                if compared > MAX_PAIRS {
                    out.push((a, format!("overlap check stopped after {MAX_PAIRS} territory pairs; give overlapping territories distinct priorities")));
                    return out;
                }
                let (ta, tb) = (&rules.territories[a], &rules.territories[b]);
                let shared_object = (0..3).any(|o| ta.objects[o] && tb.objects[o]);
                if shared_object && !ta.criteria.disjoint(&tb.criteria) {
                    let winner = ta.id.as_str().min(tb.id.as_str());
                    out.push((a, format!(
                        "territories \"{}\" and \"{}\" may overlap at depth {depth} and priority {priority}; only the tie-break settles it (\"{winner}\", the smaller id, wins)",
                        ta.id, tb.id
                    )));
                }
            }
        }
    }
    out
}

//! Rep overrides: operator changes to a rep's availability (active, out of
//! office, capacity) kept as data beside the rule file and laid over it. Pure:
//! the effective rule set is a function of the rule set and the overrides.

use std::collections::BTreeMap;

use allot_core::Millis;
use serde::{Deserialize, Serialize};

use crate::model::RuleSet;

/// A capacity cap set by an operator: `max: None` lifts the rule file's cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cap {
    pub max: Option<u32>,
}

/// What an operator changed about one rep; absent fields leave the rule file as is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepOverride {
    /// `false` takes the rep out of every rotation (offboarding, leave).
    pub active: Option<bool>,
    /// Half-open `[from, until)` windows added to the rule file's.
    pub out_of_office: Vec<(Millis, Millis)>,
    pub max_open: Option<Cap>,
    pub max_per_day: Option<Cap>,
}

impl RepOverride {
    /// Whether it changes nothing (and can be dropped).
    pub fn is_empty(&self) -> bool {
        *self == RepOverride::default()
    }
}

/// `rules` with `overrides` applied; overrides naming unknown reps are ignored
/// (see [`unknown_reps`]). The version id stays: overrides are not rule changes.
pub fn with_overrides(rules: &RuleSet, overrides: &BTreeMap<String, RepOverride>) -> RuleSet {
    let mut out = rules.clone();
    for rep in &mut out.reps {
        let Some(o) = overrides.get(&rep.id) else {
            continue;
        };
        if let Some(active) = o.active {
            rep.active = active;
        }
        rep.out_of_office.extend(o.out_of_office.iter().copied());
        if let Some(c) = o.max_open {
            rep.max_open = c.max;
        }
        if let Some(c) = o.max_per_day {
            rep.max_per_day = c.max;
        }
    }
    out
}

/// `rules` with `reps` inactive: for one decision that must not go to them
/// (an owner the CRM refused as inactive).
pub fn without_reps(rules: &RuleSet, reps: &[String]) -> RuleSet {
    let off = RepOverride {
        active: Some(false),
        ..RepOverride::default()
    };
    let overrides = reps.iter().map(|r| (r.clone(), off.clone())).collect();
    with_overrides(rules, &overrides)
}

/// Override keys that name no rep of `rules`.
pub fn unknown_reps<'a>(
    rules: &RuleSet,
    overrides: &'a BTreeMap<String, RepOverride>,
) -> Vec<&'a str> {
    overrides
        .keys()
        .filter(|k| rules.rep(k).is_none())
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
version = "t1"
[[reps]]
id = "ana"
max_open = 5
out_of_office = [{ from = "2026-01-01T00:00:00Z", until = "2026-01-02T00:00:00Z" }]
[[reps]]
id = "ben"
[[teams]]
id = "t"
members = ["ana", "ben"]
[[territories]]
id = "all"
owner = { team = "t", method = "round_robin" }
"#;

    #[test]
    fn overrides_lay_over_the_rule_file() {
        let rules = RuleSet::from_toml(RULES, "t.toml").unwrap();
        let over = BTreeMap::from([
            (
                "ana".to_string(),
                RepOverride {
                    active: Some(false),
                    out_of_office: vec![(10, 20)],
                    max_open: Some(Cap { max: None }),
                    max_per_day: Some(Cap { max: Some(2) }),
                },
            ),
            ("zed".to_string(), RepOverride::default()),
        ]);
        let eff = with_overrides(&rules, &over);
        let ana = eff.rep("ana").unwrap();
        assert!(!ana.active);
        assert_eq!(ana.out_of_office.len(), 2);
        assert_eq!(ana.away_until(15), Some(20));
        assert_eq!((ana.max_open, ana.max_per_day), (None, Some(2)));
        let ben = eff.rep("ben").unwrap();
        assert!(ben.active && ben.max_open.is_none());
        assert_eq!(eff.version, rules.version);
        assert_eq!(unknown_reps(&rules, &over), ["zed"]);
        assert!(RepOverride::default().is_empty());
    }
}

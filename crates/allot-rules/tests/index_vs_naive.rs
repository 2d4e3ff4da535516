//! The index is an optimisation only: it finds exactly what checking every
//! territory finds, on random rule sets and records.

use allot_core::{ObjectKind, Record};
use allot_rules::{candidates, gen, Matcher, RuleSet};
use proptest::prelude::*;

const FIELDS: &[&str] = &["country", "state", "postal_code", "industry", "employees"];
const VALUES: &[&str] = &[
    "US",
    "United States",
    "CA",
    "California",
    "DE",
    "94105",
    "9410",
    "941",
    "10001",
    "Software",
    "Banking",
    "50",
    "250",
    "5000",
];

fn criterion() -> impl Strategy<Value = String> {
    let field = prop::sample::select(FIELDS);
    let value = prop::sample::select(VALUES);
    let leaf =
        (field, value, 0..7u8, 0..6000i64, 0..6000i64).prop_map(|(f, v, op, a, b)| match op {
            0 => format!("{{ field = \"{f}\", equals = \"{v}\" }}"),
            1 => format!("{{ field = \"{f}\", in = [\"{v}\", \"DE\"] }}"),
            2 => format!(
                "{{ field = \"{f}\", prefix = \"{}\" }}",
                &v[..v.len().min(3)]
            ),
            3 => format!(
                "{{ field = \"{f}\", min = {}, max = {} }}",
                a.min(b),
                a.max(b)
            ),
            4 => format!("{{ field = \"{f}\", min = {a} }}"),
            5 => format!("{{ field = \"{f}\", not_in = [\"{v}\"] }}"),
            _ => format!("{{ field = \"{f}\", missing = true }}"),
        });
    leaf.prop_recursive(2, 6, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3)
                .prop_map(|xs| format!("{{ all = [{}] }}", xs.join(", "))),
            prop::collection::vec(inner.clone(), 1..3)
                .prop_map(|xs| format!("{{ any = [{}] }}", xs.join(", "))),
            inner.prop_map(|x| format!("{{ not = {x} }}")),
        ]
    })
}

fn rule_set() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (criterion(), any::<Option<prop::sample::Index>>(), 0..3u8),
        1..25,
    )
    .prop_map(|ts| {
        let mut out = String::from("[[reps]]\nid = \"r\"\n");
        for (i, (crit, parent, objects)) in ts.iter().enumerate() {
            out.push_str(&format!(
                "[[territories]]\nid = \"t{i}\"\nowner = {{ rep = \"r\" }}\ncriteria = {crit}\n"
            ));
            if let Some(p) = parent.filter(|_| i > 0) {
                out.push_str(&format!("parent = \"t{}\"\n", p.index(i)));
            }
            if *objects == 1 {
                out.push_str("objects = [\"lead\"]\n");
            }
        }
        out
    })
}

fn record() -> impl Strategy<Value = Record> {
    prop::collection::vec(
        (
            prop::sample::select(FIELDS),
            prop::option::of(prop::sample::select(VALUES)),
        ),
        0..6,
    )
    .prop_map(|fs| {
        let mut r = Record::new(ObjectKind::Lead, "x");
        for (f, v) in fs {
            r = r.with(
                f,
                v.map_or(allot_core::Value::Null, allot_core::Value::from),
            );
        }
        r
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn index_finds_what_naive_finds(text in rule_set(), records in prop::collection::vec(record(), 1..20)) {
        // Parent links may form cycles: those rule sets are rejected, nothing to compare.
        if let Ok(rules) = RuleSet::from_toml(&text, "p.toml") {
            for r in &records {
                prop_assert_eq!(candidates(&rules, r, Matcher::Indexed), candidates(&rules, r, Matcher::Naive), "{:?}", r);
            }
        }
    }
}

#[test]
fn index_agrees_on_generated_rule_sets() {
    for (n, seed) in [(100, 1), (1000, 2)] {
        let rules = RuleSet::from_toml(&gen::rules_toml(&gen::GenSpec::new(n, seed)), "gen")
            .unwrap_or_else(|e| panic!("{e}"));
        let stats = rules.index_stats();
        assert_eq!(stats.scanned, 0, "{stats:?}");
        let mut matched = 0;
        for r in gen::records(2000, seed, ObjectKind::Account) {
            let (a, b) = (
                candidates(&rules, &r, Matcher::Indexed),
                candidates(&rules, &r, Matcher::Naive),
            );
            assert_eq!(a, b, "{r:?}");
            matched += usize::from(!a.is_empty());
        }
        assert!(
            matched > 1000,
            "generated records should mostly match: {matched}"
        );
    }
}

//! The decision split in two keyed steps (match by record, distribute by
//! pool, each pool holding only its own state) decides exactly as one
//! process holding all state does: same owners, explanations, state.

use std::collections::HashMap;

use allot_core::{EngineState, ObjectKind, Record, StateOp, Value};
use allot_rules::{decide, decide_after_named, route, try_named, NamedTry, Outcome, RuleSet};

const RULES: &str = r#"
version = "split-1"
[[reps]]
id = "a1"
[[reps]]
id = "a2"
max_per_day = 40
[[reps]]
id = "a3"
[[reps]]
id = "b1"
weight = 3
[[reps]]
id = "b2"
weight = 1
[[reps]]
id = "c1"
max_open = 30
[[reps]]
id = "c2"
[[reps]]
id = "vip"
max_per_day = 5
[[reps]]
id = "queue"

[[teams]]
id = "us"
members = ["a1", "a2", "a3"]
method = "round_robin"
[[teams]]
id = "emea"
members = ["b1", "b2"]
method = "weighted"
[[teams]]
id = "apac"
members = ["c1", "c2"]
method = "least_loaded"
[[teams]]
id = "overflow"
members = ["c2", "a3"]
method = "round_robin"

[[territories]]
id = "us"
owner = { team = "us" }
fallback = { team = "overflow" }
criteria = { field = "country", equals = "US" }
[[territories]]
id = "emea"
owner = { team = "emea" }
criteria = { field = "country", in = ["DE", "FR"] }
[[territories]]
id = "apac"
owner = { team = "apac" }
fallback = { rep = "queue" }
criteria = { field = "country", in = ["JP", "AU"] }

[[named_accounts]]
id = "big"
domains = ["big.example"]
owner = { rep = "vip" }
[[named_accounts]]
id = "mid"
domains = ["mid.example"]
owner = { team = "emea" }

[fallback]
rep = "queue"
"#;

fn record(i: usize) -> Record {
    let countries = ["US", "DE", "FR", "JP", "AU", "BR"];
    let domains = ["big.example", "mid.example", "x.example", "y.example"];
    let mut r = Record::new(ObjectKind::Lead, format!("L{i:05}"));
    r.fields.insert(
        "country".into(),
        Value::from(countries[(i * 7 + i / 3) % countries.len()]),
    );
    if i.is_multiple_of(5) {
        let d = domains[(i / 5) % domains.len()];
        r.fields
            .insert("email".into(), Value::from(format!("p{i}@{d}").as_str()));
    }
    r
}

/// Applies `ops` to the pool each belongs to.
fn spread(rules: &RuleSet, pools: &mut HashMap<String, EngineState>, ops: &[StateOp]) {
    for op in ops {
        if let Some(p) = rules.pools().of_op(rules, op) {
            pools.entry(p).or_default().apply_one(op);
        }
    }
}

fn split_decide(
    rules: &RuleSet,
    pools: &mut HashMap<String, EngineState>,
    r: &Record,
    now: i64,
) -> Outcome {
    let accounts = EngineState::default();
    let rt = route(rules, &accounts, r, now);
    let empty = EngineState::default();
    let mut refusal = None;
    if let Some(named) = &rt.named {
        match try_named(rules, pools.get(named).unwrap_or(&empty), r, now) {
            NamedTry::Took(o) => return *o,
            NamedTry::Refused(line) => refusal = Some(line),
        }
    }
    let state = rt
        .pool
        .as_ref()
        .and_then(|p| pools.get(p))
        .unwrap_or(&empty);
    match refusal {
        Some(line) => decide_after_named(rules, state, r, now, line),
        None => decide(rules, state, r, now),
    }
}

#[test]
fn split_decisions_equal_one_process() {
    let rules = RuleSet::from_toml(RULES, "split.toml").expect("rules");
    let mut whole = EngineState::default();
    let mut pools: HashMap<String, EngineState> = HashMap::new();
    let now = 1_764_061_200_000;
    let mut named_refusals = 0;
    for i in 0..2_000 {
        let r = record(i);
        let t = now + i as i64 * 1_000;
        let one = decide(&rules, &whole, &r, t);
        whole.apply(&one.ops);
        let two = split_decide(&rules, &mut pools, &r, t);
        spread(&rules, &mut pools, &two.ops);
        assert_eq!(one, two, "record {i} decided differently when split");
        if one
            .decision
            .explanation
            .iter()
            .any(|l| l.contains("handing on"))
        {
            named_refusals += 1;
        }
    }
    assert!(named_refusals > 0, "the named account's cap was never hit");
    // Each pool's state is the whole state restricted to that pool.
    for (name, st) in &pools {
        for (team, c) in &st.cursors {
            assert_eq!(
                whole.cursors.get(team),
                Some(c),
                "cursor of {team} in {name}"
            );
        }
        for (rep, n) in &st.open {
            assert_eq!(whole.open.get(rep), Some(n), "open of {rep} in {name}");
        }
    }
}

#[test]
fn teams_sharing_a_rep_or_a_fallback_are_one_pool() {
    let rules = RuleSet::from_toml(RULES, "split.toml").expect("rules");
    let p = rules.pools();
    // us falls back to overflow, overflow shares c2 with apac.
    assert_eq!(p.of_rep(&rules, "a1"), p.of_rep(&rules, "c1"));
    assert_eq!(p.of_rep(&rules, "a1"), "apac");
    assert_eq!(p.of_rep(&rules, "b1"), "emea");
    assert_eq!(p.of_rep(&rules, "vip"), "rep:vip");
    assert_eq!(p.names(), vec!["apac", "emea", "rep:queue", "rep:vip"]);
}

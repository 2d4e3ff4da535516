//! Decisions: matching, engagement, distribution and fallback, as tables.

use allot_core::{AccountRef, EngineState, ObjectKind, Record, StateOp, Strategy};
use allot_rules::{decide, rfc3339, RuleSet};

fn rules(text: &str) -> RuleSet {
    RuleSet::from_toml(text, "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn example() -> RuleSet {
    rules(include_str!("../../../config/rules.example.toml"))
}

/// Wednesday 2026-11-25 17:00 UTC: 09:00 in Los Angeles, 18:00 in Berlin.
fn now() -> i64 {
    rfc3339("2026-11-25T17:00:00Z").expect("time")
}

fn lead(id: &str) -> Record {
    Record::new(ObjectKind::Lead, id)
}

/// Decides each record in order with state flowing; returns (owner, territory, strategy).
fn run(
    rules: &RuleSet,
    state: &mut EngineState,
    records: &[Record],
    at: i64,
) -> Vec<(Option<String>, Option<String>, Strategy)> {
    records
        .iter()
        .map(|r| {
            let out = decide(rules, state, r, at);
            state.apply(&out.ops);
            let d = out.decision;
            (d.owner, d.territory, d.strategy)
        })
        .collect()
}

fn s(x: &str) -> Option<String> {
    Some(x.to_string())
}

#[test]
fn example_rules_route_records() {
    let rules = example();
    // (record, owner, territory, strategy)
    let cases = [
        (
            lead("1")
                .with("country", "United States")
                .with("state", "California")
                .with("postal_code", "94105-1234"),
            s("005-ana"),
            s("na-bay-area"),
            Strategy::MostSpecific,
        ),
        (
            lead("2")
                .with("country", "usa")
                .with("state", "Oregon")
                .with("postal_code", "97201"),
            s("005-ana"),
            s("na-west"),
            Strategy::MostSpecific,
        ),
        (
            lead("3").with("country", "Canada"),
            s("005-ana"),
            s("na"),
            Strategy::OnlyCandidate,
        ),
        (
            lead("4")
                .with("country", "US")
                .with("employees", "2,500")
                .with("state", "NY"),
            s("005-ben"),
            s("na-enterprise"),
            Strategy::MostSpecific,
        ),
        (
            lead("5")
                .with("country", "Germany")
                .with("industry", "banking"),
            s("005-emil"),
            s("emea-finance"),
            Strategy::MostSpecific,
        ),
        (
            lead("6").with("country", "Atlantis"),
            s("005-queue"),
            None,
            Strategy::Fallback,
        ),
        (
            lead("7")
                .with("country", "DE")
                .with("email", "x@globex.example"),
            s("005-emil"),
            None,
            Strategy::NamedAccount,
        ),
        (
            Record::new(ObjectKind::Account, "001-globex").with("country", "US"),
            s("005-emil"),
            None,
            Strategy::NamedAccount,
        ),
        (
            lead("8")
                .with("country", "Spain")
                .with("email", "m@empresa.es"),
            s("005-ana"),
            s("spanish-speaking"),
            Strategy::Priority,
        ),
    ];
    for (record, owner, territory, strategy) in cases {
        let d = decide(&rules, &EngineState::default(), &record, now()).decision;
        assert_eq!(
            (d.owner.clone(), d.territory.clone(), d.strategy),
            (owner, territory, strategy),
            "record {}: {:#?}",
            record.id,
            d.explanation
        );
        assert!(d.changed);
        assert!(!d.explanation.is_empty());
    }
}

#[test]
fn child_needs_its_parents_criteria() {
    let rules = example();
    // Postal prefix of the Bay Area, but in Germany: not in "na", so not in its children.
    let d = decide(
        &rules,
        &EngineState::default(),
        &lead("x").with("country", "DE").with("postal_code", "94105"),
        now(),
    )
    .decision;
    let ids: Vec<&str> = d.candidates.iter().map(|c| c.territory.as_str()).collect();
    assert_eq!(ids, ["emea"]);
}

#[test]
fn missing_fields_match_only_missing() {
    let text = r#"
[[reps]]
id = "a"
[[reps]]
id = "b"
[[territories]]
id = "no-state"
owner = { rep = "a" }
criteria = { field = "state", missing = true }
[[territories]]
id = "not-ca"
owner = { rep = "b" }
criteria = { field = "state", not_in = ["CA"] }
"#;
    let rules = rules(text);
    let cases = [
        (lead("1"), vec!["no-state"]),
        (lead("2").with("state", "   "), vec!["no-state"]),
        (lead("3").with("state", "Texas"), vec!["not-ca"]),
        (lead("4").with("state", "California"), vec![]),
    ];
    for (r, want) in cases {
        let d = decide(&rules, &EngineState::default(), &r, now()).decision;
        let got: Vec<&str> = d.candidates.iter().map(|c| c.territory.as_str()).collect();
        assert_eq!(got, want, "record {}", r.id);
    }
}

const TEAM: &str = r#"
fallback = { rep = "queue" }
[[reps]]
id = "queue"
[[reps]]
id = "a"
[[reps]]
id = "b"
out_of_office = [{ from = "2026-11-25T00:00:00Z", until = "2026-11-26T00:00:00Z" }]
[[reps]]
id = "c"
max_per_day = 2
[[teams]]
id = "t"
members = ["a", "b", "c"]
[[territories]]
id = "all"
owner = { team = "t" }
"#;

#[test]
fn round_robin_rotates_strictly_and_skips_without_credit() {
    let rules = rules(TEAM);
    let mut state = EngineState::default();
    let batch: Vec<Record> = (0..6).map(|i| lead(&format!("l{i}"))).collect();
    let owners: Vec<Option<String>> = run(&rules, &mut state, &batch, now())
        .into_iter()
        .map(|x| x.0)
        .collect();
    // b is out of office; c's daily cap is 2; then only a is left.
    assert_eq!(owners, [s("a"), s("c"), s("a"), s("c"), s("a"), s("a")]);
    // The next day b is back and c's cap resets: rotation continues after a, no burst for b.
    let tomorrow = now() + 86_400_000;
    let owners: Vec<Option<String>> = run(&rules, &mut state, &batch[..4], tomorrow)
        .into_iter()
        .map(|x| x.0)
        .collect();
    assert_eq!(owners, [s("b"), s("c"), s("a"), s("b")]);
}

#[test]
fn nobody_eligible_falls_back_with_reason() {
    let text = TEAM
        .replace("max_per_day = 2", "active = false")
        .replace("[[reps]]\nid = \"a\"", "[[reps]]\nid = \"a\"\nmax_open = 0");
    let rules = rules(&text);
    let d = decide(&rules, &EngineState::default(), &lead("1"), now()).decision;
    assert_eq!(
        (d.owner.as_deref(), d.strategy),
        (Some("queue"), Strategy::Fallback)
    );
    let reason = d.fallback_reason.unwrap_or_default();
    for part in [
        "nobody eligible in team t",
        "a at capacity (0 open, max 0)",
        "b out of office until 2026-11-26T00:00:00Z",
        "c inactive",
    ] {
        assert!(reason.contains(part), "{part:?} not in {reason:?}");
    }
}

#[test]
fn unassigned_when_no_fallback_keeps_the_owner() {
    let text = TEAM
        .replace("fallback = { rep = \"queue\" }\n", "")
        .replace(
            "[[territories]]\nid = \"all\"\nowner = { team = \"t\" }",
            "",
        );
    let rules = rules(&text);
    let d = decide(
        &rules,
        &EngineState::default(),
        &lead("1").with_owner("someone"),
        now(),
    )
    .decision;
    assert_eq!(
        (d.owner.as_deref(), d.strategy, d.changed),
        (Some("someone"), Strategy::Unassigned, false)
    );
}

#[test]
fn weighted_round_robin_is_smooth_and_proportional() {
    let text = r#"
[[reps]]
id = "a"
weight = 5
[[reps]]
id = "b"
weight = 1
[[reps]]
id = "c"
weight = 1
[[teams]]
id = "t"
members = ["a", "b", "c"]
method = "weighted"
[[territories]]
id = "all"
owner = { team = "t" }
"#;
    let rules = rules(text);
    let mut state = EngineState::default();
    let batch: Vec<Record> = (0..7).map(|i| lead(&format!("l{i}"))).collect();
    let owners: Vec<String> = run(&rules, &mut state, &batch, now())
        .into_iter()
        .filter_map(|x| x.0)
        .collect();
    // nginx's smooth sequence for 5/1/1.
    assert_eq!(owners.join(""), "aabacaa");
}

#[test]
fn least_loaded_prefers_fewest_open_then_rotation() {
    let text = r#"
[[reps]]
id = "a"
[[reps]]
id = "b"
[[reps]]
id = "c"
[[teams]]
id = "t"
members = ["a", "b", "c"]
method = "least_loaded"
[[territories]]
id = "all"
owner = { team = "t" }
"#;
    let rules = rules(text);
    let mut state = EngineState::default();
    state.apply(&[StateOp::OpenDelta {
        rep: "a".into(),
        delta: 2,
    }]);
    let batch: Vec<Record> = (0..5).map(|i| lead(&format!("l{i}"))).collect();
    let owners: Vec<String> = run(&rules, &mut state, &batch, now())
        .into_iter()
        .filter_map(|x| x.0)
        .collect();
    assert_eq!(owners.join(""), "bcbca");
}

#[test]
fn existing_owner_keeps_eligible_records_within_the_window() {
    let rules = example();
    let base = lead("1").with("country", "US").with("state", "TX");
    let day = 86_400_000;
    // (owner, owner_since, expected owner, strategy)
    let cases = [
        (Some("005-cho"), None, s("005-cho"), Strategy::ExistingOwner),
        (
            Some("005-cho"),
            Some(now() - 10 * day),
            s("005-cho"),
            Strategy::ExistingOwner,
        ),
        (
            Some("005-cho"),
            Some(now() - 100 * day),
            s("005-ana"),
            Strategy::OnlyCandidate,
        ),
        (Some("005-gus"), None, s("005-ana"), Strategy::OnlyCandidate),
        (
            Some("005-emil"),
            None,
            s("005-ana"),
            Strategy::OnlyCandidate,
        ),
        (
            Some("unknown-user"),
            None,
            s("005-ana"),
            Strategy::OnlyCandidate,
        ),
    ];
    for (owner, since, want, strategy) in cases {
        let mut r = base.clone();
        r.owner = owner.map(String::from);
        r.owner_since = since;
        let d = decide(&rules, &EngineState::default(), &r, now()).decision;
        assert_eq!(
            (d.owner.clone(), d.strategy),
            (want.clone(), strategy),
            "{owner:?} {since:?}: {:#?}",
            d.explanation
        );
        assert_eq!(d.changed, want.as_deref() != owner);
    }
}

#[test]
fn lead_to_account_matches_domains_but_never_free_mail() {
    let rules = example();
    let mut state = EngineState::default();
    let acc = |id: &str, owner: &str, t: i64| StateOp::UpsertAccount {
        domain: "initech.example".into(),
        account: AccountRef {
            account_id: id.into(),
            owner: Some(owner.into()),
            updated_at: t,
        },
    };
    state.apply(&[acc("001-old", "005-fay", 1), acc("001-new", "005-dara", 2)]);
    state.apply(&[StateOp::UpsertAccount {
        domain: "gmail.com".into(),
        account: AccountRef {
            account_id: "001-g".into(),
            owner: Some("005-fay".into()),
            updated_at: 3,
        },
    }]);
    let cases = [
        (
            lead("1")
                .with("country", "US")
                .with("email", "pat@Initech.example"),
            s("005-dara"),
            Strategy::LeadToAccount,
        ),
        (
            lead("2")
                .with("country", "US")
                .with("website", "https://www.initech.example/"),
            s("005-dara"),
            Strategy::LeadToAccount,
        ),
        (
            lead("3")
                .with("country", "US")
                .with("email", "pat@gmail.com"),
            s("005-ana"),
            Strategy::OnlyCandidate,
        ),
    ];
    for (r, want, strategy) in cases {
        let d = decide(&rules, &state, &r, now()).decision;
        assert_eq!(
            (d.owner.clone(), d.strategy),
            (want, strategy),
            "{}: {:#?}",
            r.id,
            d.explanation
        );
    }
}

#[test]
fn accounts_feed_lead_to_account_through_state() {
    let rules = example();
    let mut state = EngineState::default();
    let account = Record::new(ObjectKind::Account, "001-x")
        .with("country", "DE")
        .with("website", "hooli.example");
    let lead = lead("l")
        .with("country", "US")
        .with("email", "a@hooli.example");
    let got = run(&rules, &mut state, &[account, lead], now());
    assert_eq!(got[1].0, got[0].0);
    assert_eq!(got[1].2, Strategy::LeadToAccount);
}

#[test]
fn decisions_are_deterministic() {
    let rules = example();
    let r = lead("1").with("country", "US").with("state", "WA");
    let a = decide(&rules, &EngineState::default(), &r, now());
    let b = decide(&rules, &EngineState::default(), &r, now());
    assert_eq!(a, b);
}

#[test]
fn working_hours_gate_territories_that_ask_for_them() {
    let text = r#"
fallback = { rep = "night" }
[[reps]]
id = "night"
[[reps]]
id = "berlin"
timezone = "Europe/Berlin"
working_hours = { start = "09:00", end = "17:00" }
[[territories]]
id = "de"
owner = { rep = "berlin" }
require_working_hours = true
"#;
    let rules = rules(text);
    let cases = [
        ("2026-11-25T09:00:00Z", "berlin"), // 10:00 Wednesday in Berlin
        ("2026-11-25T17:00:00Z", "night"),  // 18:00
        ("2026-11-28T10:00:00Z", "night"),  // Saturday
    ];
    for (at, want) in cases {
        let d = decide(
            &rules,
            &EngineState::default(),
            &lead("1"),
            rfc3339(at).expect("time"),
        )
        .decision;
        assert_eq!(d.owner.as_deref(), Some(want), "{at}: {:#?}", d.explanation);
    }
}

#[test]
fn state_ops_track_open_counts() {
    let rules = example();
    let r = lead("1").with("country", "CA").with_owner("005-gus");
    let out = decide(&rules, &EngineState::default(), &r, now());
    assert!(out.ops.contains(&StateOp::OpenDelta {
        rep: "005-ana".into(),
        delta: 1
    }));
    assert!(out.ops.contains(&StateOp::OpenDelta {
        rep: "005-gus".into(),
        delta: -1
    }));
    let released = allot_rules::release(&r);
    assert_eq!(
        released,
        vec![StateOp::OpenDelta {
            rep: "005-gus".into(),
            delta: -1
        }]
    );
}

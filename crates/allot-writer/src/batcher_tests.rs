use allot_core::{Strategy, DECISION_VERSION};

use super::*;

fn change(crm: Option<Crm>, object: ObjectKind, id: &str, owner: &str, at: i64) -> OwnerChange {
    OwnerChange {
        v: DECISION_VERSION,
        crm,
        record_id: id.to_string(),
        object,
        owner: owner.to_string(),
        previous_owner: Some("prev".into()),
        decided_at: at,
        event_id: format!("e{at}"),
        territory: None,
        strategy: Strategy::OnlyCandidate,
    }
}

fn cand(change: OwnerChange, seen_at: u64) -> Candidate {
    Candidate {
        entry: OutboxEntry {
            change,
            state: OutboxState::Pending,
            attempts: 0,
            superseded: None,
        },
        seen_at,
        errors: 0,
        retry: false,
    }
}

fn sf(id: &str, owner: &str, at: i64) -> OwnerChange {
    change(Some(Crm::Salesforce), ObjectKind::Lead, id, owner, at)
}

fn limits(crm: Crm) -> Option<usize> {
    match crm {
        Crm::Salesforce => Some(200),
        Crm::Hubspot => Some(100),
        Crm::Native => None,
    }
}

fn sizes(plan: &Plan) -> Vec<(Crm, ObjectKind, usize)> {
    plan.ready
        .iter()
        .map(|p| (p.crm, p.object, p.items.len()))
        .collect()
}

#[test]
fn routes_to_the_named_crm_or_the_only_one() {
    let both = [Crm::Salesforce, Crm::Hubspot];
    let cases = [
        (Some(Crm::Hubspot), &both[..], Some(Crm::Hubspot)),
        (Some(Crm::Hubspot), &both[..1], None),
        (None, &both[..1], Some(Crm::Salesforce)),
        (None, &both[..], None),
        (None, &[][..], None),
    ];
    for (named, available, want) in cases {
        let c = change(named, ObjectKind::Contact, "1", "o", 1);
        assert_eq!(route(&c, available), want, "{named:?} {available:?}");
    }
}

#[test]
fn the_newest_decision_per_record_wins() {
    let out = coalesce(vec![
        cand(sf("a", "old", 1), 0),
        cand(sf("b", "only", 5), 0),
        cand(sf("a", "new", 3), 0),
        cand(sf("a", "stale", 2), 0),
        cand(
            change(Some(Crm::Salesforce), ObjectKind::Account, "a", "acct", 1),
            0,
        ),
    ]);
    let owners: Vec<(&str, &str)> = out
        .iter()
        .map(|c| {
            (
                c.entry.change.record_id.as_str(),
                c.entry.change.owner.as_str(),
            )
        })
        .collect();
    assert_eq!(owners, vec![("a", "new"), ("b", "only"), ("a", "acct")]);
}

#[test]
fn batches_are_split_by_crm_object_and_limit() {
    let mut cands: Vec<Candidate> = (0..500)
        .map(|i| cand(sf(&format!("l{i}"), "o", i), 0))
        .collect();
    cands.extend((0..250).map(|i| {
        cand(
            change(
                Some(Crm::Hubspot),
                ObjectKind::Contact,
                &format!("c{i}"),
                "o",
                i,
            ),
            0,
        )
    }));
    cands.push(cand(
        change(Some(Crm::Hubspot), ObjectKind::Account, "co", "o", 1),
        0,
    ));
    // Nothing has lingered yet: only full batches go.
    let early = plan(cands.clone(), limits, 200, 100, false);
    assert_eq!(
        sizes(&early),
        vec![
            (Crm::Salesforce, ObjectKind::Lead, 200),
            (Crm::Salesforce, ObjectKind::Lead, 200),
            (Crm::Hubspot, ObjectKind::Contact, 100),
            (Crm::Hubspot, ObjectKind::Contact, 100),
        ]
    );
    assert_eq!(early.next_due, Some(200));
    let late = plan(cands.clone(), limits, 200, 200, false);
    assert_eq!(late.ready.len(), 7);
    assert_eq!(late.next_due, None);
    let flushed = plan(cands, limits, 200, 0, true);
    assert_eq!(flushed.ready.len(), 7);
    assert!(flushed.ready.iter().all(|p| p.items.len() <= 200));
}

#[test]
fn lingering_counts_from_the_oldest_change_and_retries_do_not_linger() {
    let cases = [
        // (seen_at of each, retry, now, ready, next_due)
        (vec![50, 120], false, 240, 0, Some(250)),
        (vec![50, 120], false, 250, 1, None),
        (vec![0], true, 10, 1, None),
    ];
    for (seen, retry, now, ready, due) in cases {
        let cands = seen
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut c = cand(sf(&format!("r{i}"), "o", 1), *s);
                c.retry = retry;
                c
            })
            .collect();
        let p = plan(cands, limits, 200, now, false);
        assert_eq!(
            (p.ready.len(), p.next_due),
            (ready, due),
            "{seen:?} at {now}"
        );
    }
}

#[test]
fn unrouted_changes_are_counted_not_planned() {
    let cands = vec![
        cand(change(Some(Crm::Native), ObjectKind::Lead, "x", "o", 1), 0),
        cand(change(None, ObjectKind::Lead, "y", "o", 1), 0),
        cand(sf("z", "o", 1), 0),
    ];
    let p = plan(cands, limits, 0, 0, false);
    assert_eq!((p.unrouted, p.ready.len()), (2, 1));
}

#[test]
fn reads_are_made_when_they_can_replace_the_write_or_a_restart_may_have_landed_it() {
    let same = |id: &str| {
        let mut c = sf(id, "o", 1);
        c.previous_owner = Some("o".into());
        cand(c, 0)
    };
    let requeued = |id: &str| {
        let mut c = cand(sf(id, "o", 1), 0);
        c.entry.attempts = 1;
        c
    };
    let retried = {
        let mut c = requeued("q");
        c.retry = true;
        c
    };
    let batch = |items: Vec<Candidate>| Planned {
        crm: Crm::Salesforce,
        object: ObjectKind::Lead,
        items,
    };
    let cases = [
        (vec![same("a")], 1),
        (vec![same("a"), requeued("b")], 2),
        (vec![same("a"), requeued("b"), same("c"), same("d")], 4),
        // Any size: reads are batched.
        ((0..500).map(|i| same(&format!("s{i}"))).collect(), 500),
        // Only the worth reading are read, once one was sent before a restart.
        (vec![requeued("b"), cand(sf("n", "o", 1), 0)], 1),
        (vec![same("a"), cand(sf("n", "o", 1), 0)], 0),
        (vec![retried], 0),
    ];
    for (items, want) in cases {
        let n = items.len();
        assert_eq!(batch(items).reads(), want, "{n} items");
    }
}

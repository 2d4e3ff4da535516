use super::*;
use allot_core::{Strategy, DECISION_VERSION};

fn change(decided_at: Millis, owner: &str) -> OwnerChange {
    OwnerChange {
        crm: None,
        v: DECISION_VERSION,
        record_id: "00Q1".into(),
        object: ObjectKind::Lead,
        owner: owner.to_string(),
        previous_owner: None,
        decided_at,
        event_id: format!("e{decided_at}"),
        territory: None,
        strategy: Strategy::OnlyCandidate,
    }
}

/// One step of a scenario, on record lead/00Q1.
#[derive(Clone, Copy)]
enum Step {
    Put(Millis),
    InFlight(Millis),
    Done(Millis),
    Fail(Millis),
}

/// Runs the steps and renders what happened, then the final entry and the
/// pending queue, as one line to compare.
fn run(steps: &[Step]) -> String {
    let store = Store::temporary().unwrap();
    let key = OutboxKey::new(ObjectKind::Lead, "00Q1");
    let mut out = Vec::new();
    for step in steps {
        out.push(match *step {
            Step::Put(at) => match store.outbox_put(&change(at, &format!("o{at}"))).unwrap() {
                OutboxPut::Inserted => format!("put{at}=inserted"),
                OutboxPut::Superseded(old) => format!("put{at}=replaced{}", old.decided_at),
                OutboxPut::Stale => format!("put{at}=stale"),
            },
            Step::InFlight(at) => format!(
                "fly{at}={}",
                store.outbox_mark_in_flight(&key, at, 1_000).unwrap()
            ),
            Step::Done(at) => format!("done{at}={}", store.outbox_mark_done(&key, at).unwrap()),
            Step::Fail(at) => format!(
                "fail{at}={}",
                store
                    .outbox_fail(&key, at, "rejected", "403", 2_000)
                    .unwrap()
            ),
        });
    }
    let entry = store.outbox_get(&key).unwrap().unwrap();
    let state = match entry.state {
        OutboxState::Pending => "pending".to_string(),
        OutboxState::InFlight { attempt, .. } => format!("in_flight#{attempt}"),
        OutboxState::Done => "done".into(),
        OutboxState::Failed => "failed".into(),
    };
    let sup = match entry.superseded {
        Some(s) => format!(
            " sup{}{}",
            s.decided_at,
            if s.was_in_flight { "!" } else { "" }
        ),
        None => String::new(),
    };
    let pending: Vec<String> = store
        .outbox_pending(10)
        .unwrap()
        .iter()
        .map(|e| e.change.decided_at.to_string())
        .collect();
    let failed = store.failed_writes(10).unwrap().len();
    format!(
        "{} | {state}@{}{sup} owner={} pending=[{}] failed={failed}",
        out.join(" "),
        entry.change.decided_at,
        entry.change.owner,
        pending.join(",")
    )
}

#[test]
fn outbox_supersede_and_settle() {
    use Step::*;
    let cases: &[(&str, &[Step], &str)] = &[
        (
            "newer replaces pending; stale done ignored",
            &[Put(10), Put(20), Done(10), Done(20)],
            "put10=inserted put20=replaced10 done10=false done20=true | done@20 owner=o20 pending=[] failed=0",
        ),
        (
            "older and equal are ignored",
            &[Put(20), Put(10), Put(20)],
            "put20=inserted put10=stale put20=stale | pending@20 owner=o20 pending=[20] failed=0",
        ),
        (
            "replacing an in-flight change remembers it",
            &[Put(10), InFlight(10), Put(20), Done(10), InFlight(10)],
            "put10=inserted fly10=true put20=replaced10 done10=false fly10=false | pending@20 sup10! owner=o20 pending=[20] failed=0",
        ),
        (
            "in-flight flag survives a second replacement",
            &[Put(10), InFlight(10), Put(20), Put(30)],
            "put10=inserted fly10=true put20=replaced10 put30=replaced20 | pending@30 sup20! owner=o30 pending=[30] failed=0",
        ),
        (
            "after done: older is stale, newer is a fresh insert",
            &[Put(10), Done(10), Done(10), Put(5), Put(30)],
            "put10=inserted done10=true done10=false put5=stale put30=inserted | pending@30 owner=o30 pending=[30] failed=0",
        ),
        (
            "attempts count across retries",
            &[Put(10), InFlight(10), InFlight(10)],
            "put10=inserted fly10=true fly10=true | in_flight#2@10 owner=o10 pending=[] failed=0",
        ),
        (
            "fail records the write and settles the entry",
            &[Put(10), InFlight(10), Fail(20), Fail(10), Put(10), Put(11)],
            "put10=inserted fly10=true fail20=false fail10=true put10=stale put11=inserted | pending@11 owner=o11 pending=[11] failed=1",
        ),
    ];
    for (name, steps, want) in cases {
        assert_eq!(run(steps), *want, "{name}");
    }
}

#[test]
fn pending_is_oldest_first_across_records_and_requeue_recovers_in_flight() {
    let store = Store::temporary().unwrap();
    let mk = |id: &str, at| OwnerChange {
        record_id: id.into(),
        ..change(at, "o")
    };
    let mut b = store.batch();
    b.outbox_put(&mk("c", 30))
        .outbox_put(&mk("a", 10))
        .outbox_put(&mk("b", 20));
    let receipt = store.commit(b).unwrap();
    assert_eq!(receipt.outbox_puts, vec![OutboxPut::Inserted; 3]);
    let ids = |s: &Store| -> Vec<String> {
        s.outbox_pending(10)
            .unwrap()
            .into_iter()
            .map(|e| e.change.record_id)
            .collect()
    };
    assert_eq!(ids(&store), ["a", "b", "c"]);
    assert_eq!(store.outbox_pending(2).unwrap().len(), 2);

    let a = OutboxKey::new(ObjectKind::Lead, "a");
    let b_key = OutboxKey::new(ObjectKind::Lead, "b");
    assert!(store.outbox_mark_in_flight(&a, 10, 100).unwrap());
    assert!(store.outbox_mark_in_flight(&b_key, 20, 500).unwrap());
    assert_eq!(ids(&store), ["c"]);
    let cases = [
        (50, 0, vec!["c"]),
        (200, 1, vec!["a", "c"]),
        (i64::MAX, 1, vec!["a", "b", "c"]),
    ];
    for (cutoff, requeued, pending) in cases {
        assert_eq!(
            store.outbox_requeue(cutoff).unwrap(),
            requeued,
            "cutoff {cutoff}"
        );
        assert_eq!(ids(&store), pending, "cutoff {cutoff}");
    }
    assert_eq!(
        store.outbox_get(&a).unwrap().unwrap().attempts,
        1,
        "requeue keeps the attempt count"
    );
}

//! The store keeps what it committed across a drop and reopen, and nothing of
//! a batch that failed.

use allot_core::{
    AccountRef, Decision, EngineState, ObjectKind, OwnerChange, Record, StateOp, Strategy,
    DECISION_VERSION,
};
use allot_store::{OutboxKey, OutboxState, Position, Store, StoreError, Table};

fn decision(record_id: &str, decided_at: i64) -> Decision {
    Decision {
        v: DECISION_VERSION,
        record_id: record_id.into(),
        object: ObjectKind::Lead,
        decided_at,
        rules_version: "v1".into(),
        previous_owner: None,
        owner: Some("005A".into()),
        territory: Some("emea".into()),
        strategy: Strategy::OnlyCandidate,
        changed: true,
        candidates: vec![],
        distribution: None,
        fallback_reason: None,
        warnings: vec![],
        explanation: vec![],
    }
}

fn ops() -> Vec<StateOp> {
    vec![
        StateOp::OpenDelta {
            rep: "005A".into(),
            delta: 2,
        },
        StateOp::DailyInc {
            rep: "005A".into(),
            day: 19_000,
        },
        StateOp::UpsertAccount {
            domain: "acme.com".into(),
            account: AccountRef {
                account_id: "001".into(),
                owner: Some("005B".into()),
                updated_at: 5,
            },
        },
    ]
}

/// Everything one ingest + assign step writes, for record `id` and event `event`.
fn full_batch(store: &Store, id: &str, event: &str, at: i64) -> allot_store::Batch {
    let record = Record::new(ObjectKind::Lead, id)
        .with("country", "DE")
        .with_owner("005A");
    let d = decision(id, at);
    let change: OwnerChange = d.owner_change(event).expect("owner changes");
    let mut b = store.batch();
    b.put_record(&record, Some((at, 0)))
        .mark_seen(event, at)
        .set_position("kafka:allot.events:0", at)
        .apply_state_ops(&ops())
        .append_audit(&d)
        .outbox_put(&change)
        .log_append("allot.decisions", id.as_bytes());
    b
}

/// What the store shows for record `id` and event `event`, as one comparable line.
fn visible(store: &Store, id: &str, event: &str) -> Result<String, StoreError> {
    let record = store
        .record(ObjectKind::Lead, id)?
        .map(|(r, k)| format!("{}@{k:?}", r.id));
    let outbox = store
        .outbox_get(&OutboxKey::new(ObjectKind::Lead, id))?
        .map(|e| e.state);
    Ok(format!(
        "record={record:?} seen={} audit={} outbox={outbox:?} decisions_end={}",
        store.seen(event)?,
        store.audit_for(id, i64::MIN, i64::MAX)?.len(),
        store.log("allot.decisions").end_offset()?,
    ))
}

#[test]
fn committed_batches_survive_reopen_and_failed_ones_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.commit(full_batch(&store, "00Q1", "e1", 100)).unwrap();
        let mut failing = full_batch(&store, "00Q2", "e2", 200);
        failing.log_commit("allot.events", "assign", 42); // past the end: aborts the batch
        let err = store.commit(failing).unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
        assert!(!err.retryable());
    }
    let store = Store::open(dir.path()).unwrap();
    let cases = [
        ("00Q1", "e1", "record=Some(\"00Q1@Some((100, 0))\") seen=true audit=1 outbox=Some(Pending) decisions_end=1"),
        ("00Q2", "e2", "record=None seen=false audit=0 outbox=None decisions_end=1"),
    ];
    for (id, event, want) in cases {
        assert_eq!(visible(&store, id, event).unwrap(), want, "{id}");
    }
    assert_eq!(
        store.position("kafka:allot.events:0").unwrap(),
        Some(Position::Offset(100))
    );
    let mut want = EngineState::default();
    want.apply(&ops());
    assert_eq!(store.engine_state().unwrap(), want);
    assert_eq!(
        (store.record_count().unwrap(), store.seen_count().unwrap()),
        (1, 1)
    );
    assert!(store.check().unwrap().is_clean());
}

#[test]
fn log_continues_and_outbox_state_persists_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let key = OutboxKey::new(ObjectKind::Lead, "00Q1");
    {
        let store = Store::open(dir.path()).unwrap();
        let log = store.log("allot.events");
        assert_eq!(
            log.append_batch(&[b"a".to_vec(), b"b".to_vec()]).unwrap(),
            [0, 1]
        );
        log.commit("ingest", 1).unwrap();
        store.commit(full_batch(&store, "00Q1", "e1", 100)).unwrap();
        assert!(store.outbox_mark_in_flight(&key, 100, 150).unwrap());
    }
    let store = Store::open(dir.path()).unwrap();
    let log = store.log("allot.events");
    assert_eq!(log.committed("ingest").unwrap(), 1);
    assert_eq!(log.append(b"c").unwrap(), 2);
    assert_eq!(
        log.read(1, 10).unwrap(),
        [(1, b"b".to_vec()), (2, b"c".to_vec())]
    );
    let entry = store.outbox_get(&key).unwrap().unwrap();
    assert_eq!(
        entry.state,
        OutboxState::InFlight {
            attempt: 1,
            since: 150
        }
    );
    assert_eq!(
        store.outbox_requeue(i64::MAX).unwrap(),
        1,
        "a restarted writer takes it back"
    );
    assert!(store.outbox_mark_done(&key, 100).unwrap());
}

#[test]
fn garbage_written_behind_the_stores_back_is_found_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.commit(full_batch(&store, "00Q1", "e1", 100)).unwrap();
    }
    {
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree(Table::Records.name()).unwrap();
        let (key, _) = tree.first().unwrap().unwrap();
        tree.insert(key, b"\x01garbage".to_vec()).unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let err = store.record(ObjectKind::Lead, "00Q1").unwrap_err();
    let msg = err.to_string();
    assert!(err.is_corruption() && !err.retryable(), "{msg}");
    for needle in [
        "table records",
        "key lead/00Q1",
        "crc mismatch",
        "allot state import",
    ] {
        assert!(msg.contains(needle), "{msg} lacks {needle}");
    }
    let report = store.check().unwrap();
    assert_eq!(report.corrupt.len(), 1, "{report}");
    assert_eq!(
        (report.corrupt[0].table, report.corrupt[0].key.as_str()),
        ("records", "lead/00Q1")
    );
}

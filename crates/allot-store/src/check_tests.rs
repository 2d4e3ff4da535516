use super::*;
use crate::audit::decision;
use crate::key::Key;
use crate::outbox::OutboxKey;
use allot_core::{ObjectKind, OwnerChange, Record, StateOp, Strategy};

fn change(record_id: &str, decided_at: i64) -> OwnerChange {
    OwnerChange {
        crm: None,
        v: 1,
        record_id: record_id.into(),
        object: ObjectKind::Lead,
        owner: "005A".into(),
        previous_owner: None,
        decided_at,
        event_id: "e1".into(),
        territory: None,
        strategy: Strategy::Priority,
    }
}

/// A store with one entry in most tables.
fn populated() -> Store {
    let store = Store::temporary().unwrap();
    let mut b = store.batch();
    b.put_record(&Record::new(ObjectKind::Lead, "00Q1"), Some((1, 1)));
    b.mark_seen("e1", 10)
        .set_position("kafka:t:0", 5)
        .record_write(ObjectKind::Lead, "00Q1", "005A", 10);
    b.apply_state_ops(&[StateOp::OpenDelta {
        rep: "005A".into(),
        delta: 1,
    }]);
    b.append_audit(&decision("00Q1", 10, "005A"))
        .outbox_put(&change("00Q1", 10));
    b.put_rule_version("v1", "x = 1", 0, Some("ana"))
        .log_append("l", b"hello");
    store.commit(b).unwrap();
    store
}

fn raw_put(store: &Store, table: Table, key: &[u8], value: &[u8]) {
    store.inner.tree(table).insert(key, value).unwrap();
}

fn corrupt_parts(err: StoreError) -> (&'static str, String, String) {
    match err {
        StoreError::Corrupt {
            table, key, detail, ..
        } => (table, key, format!("corrupt: {detail}")),
        StoreError::Codec {
            table, key, detail, ..
        } => (table, key, format!("codec: {detail}")),
        other => panic!("not a corruption error: {other}"),
    }
}

#[test]
fn clean_store_checks_clean() {
    let report = populated().check().unwrap();
    assert!(report.is_clean(), "{report}");
    let cases = [
        (Table::Records, 1),
        (Table::Seen, 1),
        (Table::SeenByTime, 1),
        (Table::Audit, 1),
        (Table::OutboxQueue, 1),
        (Table::Log, 1),
        (Table::FailedWrites, 0),
    ];
    for (table, want) in cases {
        assert_eq!(report.count(table), want, "{}", table.name());
    }
}

#[test]
fn corrupt_values_are_reported_by_reads_and_check() {
    let store = populated();
    let record_key = Key::new().str("lead").str("00Q1");
    let outbox_key = Key::new().str("lead").str("00Q1");
    let mut flipped = store
        .inner
        .tree(Table::Outbox)
        .get(&outbox_key)
        .unwrap()
        .unwrap()
        .to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x20;
    raw_put(&store, Table::Records, record_key.as_ref(), b"garbage");
    raw_put(&store, Table::Outbox, outbox_key.as_ref(), &flipped);
    raw_put(
        &store,
        Table::Positions,
        Key::new().str("kafka:t:0").as_ref(),
        &codec::encode(&[1, 2]).unwrap(),
    );
    raw_put(
        &store,
        Table::Log,
        Key::new().str("l").u64(0).as_ref(),
        &[1, 0, 0],
    );
    raw_put(
        &store,
        Table::State,
        b"\xffjunk",
        &codec::encode(&1).unwrap(),
    );

    // (what was read, table, key, detail needle)
    type Read = Box<dyn Fn(&Store) -> StoreError>;
    let cases: Vec<(&str, Read, &str, &str, &str)> = vec![
        (
            "record",
            Box::new(|s| s.record(ObjectKind::Lead, "00Q1").unwrap_err()),
            "records",
            "lead/00Q1",
            "corrupt: unknown format version 103",
        ),
        (
            "records()",
            Box::new(|s| s.records().find_map(|r| r.err()).unwrap()),
            "records",
            "lead/00Q1",
            "unknown format",
        ),
        (
            "outbox",
            Box::new(|s| {
                s.outbox_get(&OutboxKey::new(ObjectKind::Lead, "00Q1"))
                    .unwrap_err()
            }),
            "outbox",
            "lead/00Q1",
            "corrupt: crc mismatch",
        ),
        (
            "position",
            Box::new(|s| s.position("kafka:t:0").unwrap_err()),
            "positions",
            "kafka:t:0",
            "codec: ",
        ),
        (
            "log",
            Box::new(|s| s.log("l").read(0, 10).unwrap_err()),
            "log",
            "l/0",
            "truncated",
        ),
        (
            "state",
            Box::new(|s| s.engine_state().unwrap_err()),
            "state",
            "0xff6a756e6b",
            "unexpected key layout",
        ),
    ];
    for (name, read, table, key, needle) in cases {
        let err = read(&store);
        let msg = err.to_string();
        assert!(
            msg.contains("allot state import") && msg.contains(key),
            "{name}: {msg}"
        );
        let (got_table, got_key, detail) = corrupt_parts(err);
        assert_eq!((got_table, got_key.as_str()), (table, key), "{name}");
        assert!(detail.contains(needle), "{name}: {detail}");
    }

    let report = store.check().unwrap();
    let found: Vec<(&str, &str)> = report
        .corrupt
        .iter()
        .map(|c| (c.table, c.key.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("records", "lead/00Q1"),
            ("positions", "kafka:t:0"),
            ("state", "0xff6a756e6b"),
            ("outbox", "lead/00Q1"),
            ("log", "l/0")
        ]
    );
    assert!(!report.is_clean());
    let text = report.to_string();
    assert!(
        text.contains("corrupt: table records, key lead/00Q1: unknown format version"),
        "{text}"
    );
    assert!(text.contains("allot state import"), "{text}");
}

#[test]
fn a_corrupt_value_read_by_a_batch_aborts_all_of_it() {
    let store = populated();
    raw_put(
        &store,
        Table::Outbox,
        Key::new().str("lead").str("00Q1").as_ref(),
        b"\x01\0\0\0\0{",
    );
    let mut b = store.batch();
    b.put_record(&Record::new(ObjectKind::Lead, "00Q2"), None)
        .mark_seen("e2", 20);
    b.outbox_put(&change("00Q1", 20));
    let (table, key, _) = corrupt_parts(store.commit(b).unwrap_err());
    assert_eq!((table, key.as_str()), ("outbox", "lead/00Q1"));
    assert_eq!(store.record(ObjectKind::Lead, "00Q2").unwrap(), None);
    assert!(!store.seen("e2").unwrap());
    assert_eq!(store.record_count().unwrap(), 1);
}

#[test]
fn check_reports_index_and_counter_drift() {
    let store = populated();
    store.inner.tree(Table::SeenByTime).clear().unwrap();
    raw_put(
        &store,
        Table::Records,
        Key::new().str("lead").str("ghost").as_ref(),
        &codec::encode(&serde_json::json!({"record": {"object": "lead", "id": "ghost"}})).unwrap(),
    );
    let report = store.check().unwrap();
    assert!(report.corrupt.is_empty(), "{report}");
    assert_eq!(report.problems.len(), 2, "{report}");
    assert!(
        report.problems[0].contains("counter says 1 entries, scan found 2"),
        "{report}"
    );
    assert!(
        report.problems[1].contains("index seen_by_time has 0"),
        "{report}"
    );
}

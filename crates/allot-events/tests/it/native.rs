//! allot's native envelope: round trip and version check.

use allot_core::{ChangeEvent, ChangeKind, Crm, ObjectKind, Value};
use allot_events::{decode, Format};
use serde_json::json;

use crate::{check, event, fields, s, strs};

#[test]
fn native_round_trip() {
    let full = ChangeEvent {
        changed_fields: strs(&["country", "employees"]),
        fields: fields(&[
            ("country", s("DE")),
            ("employees", Value::Num(12.5)),
            ("vip", Value::Bool(true)),
            ("city", Value::Null),
        ]),
        commit_time: Some(1714160000000),
        sequence: Some(7),
        commit_user: Some("u1".into()),
        origin: Some("replay".into()),
        transaction: Some("t1".into()),
        scope: None,
        ..event(
            Crm::Native,
            "n-1",
            ObjectKind::Lead,
            Some("L1"),
            ChangeKind::Update,
        )
    };
    let cases = vec![
        vec![full.clone()],
        vec![event(
            Crm::Native,
            "n-2",
            ObjectKind::Account,
            None,
            ChangeKind::Overflow,
        )],
        vec![
            event(
                Crm::Salesforce,
                "n-3",
                ObjectKind::Contact,
                Some("C1"),
                ChangeKind::Delete,
            ),
            full,
        ],
    ];
    for events in cases {
        let text = if events.len() == 1 {
            serde_json::to_string(&events[0]).unwrap()
        } else {
            serde_json::to_string(&events).unwrap()
        };
        check(&text, Format::Auto, &events);
        check(&text, Format::Native, &events);
    }
}

#[test]
fn native_errors() {
    let minimal = |v: serde_json::Value| json!({"v": v, "source": "native", "event_id": "x", "object": "lead", "record_id": "L", "change": "update"});
    let cases = vec![
        (minimal(json!(2)), "native event (event_id x): unsupported version 2 (this build reads v1)", "version"),
        (minimal(json!("1")), "native event (event_id x): unsupported version \"1\" (this build reads v1)", "version"),
        (json!({"event_id": "x", "source": "native"}), "native event (event_id x): missing field \"v\"", "field"),
        (
            json!({"v": 1, "source": "native", "event_id": "x", "object": "lead", "change": "update"}),
            "native event (event_id x): missing field \"record_id\"",
            "field",
        ),
        (
            json!({"v": 1, "source": "native", "event_id": "x", "object": "deal", "record_id": "L", "change": "update"}),
            "native event (event_id x): not a valid native event: unknown variant `deal`, expected one of `lead`, `account`, `contact`",
            "shape",
        ),
    ];
    for (input, message, kind) in cases {
        let got = decode(input.to_string().as_bytes(), Format::Native);
        assert!(got.events.is_empty(), "{input}");
        let errors: Vec<(String, &str)> = got
            .errors
            .iter()
            .map(|e| (e.to_string(), e.kind()))
            .collect();
        assert_eq!(errors, vec![(message.to_string(), kind)], "{input}");
    }
}

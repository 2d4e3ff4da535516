//! HubSpot webhook events: object types, aliases, single objects.

use allot_core::{ChangeEvent, ChangeKind, Crm, ObjectKind, Value};
use allot_events::Format;
use serde_json::json;

use crate::{check, event, fields, s, strs};

fn hs(id: &str, object: ObjectKind, record: &str, change: ChangeKind) -> ChangeEvent {
    ChangeEvent {
        commit_time: Some(1700000000000),
        transaction: Some("31".into()),
        scope: Some("62515/11".into()),
        ..event(Crm::Hubspot, id, object, Some(record), change)
    }
}

#[test]
fn webhook_events() {
    let base = json!({"eventId": 1, "subscriptionId": 31, "portalId": 62515, "appId": 11, "occurredAt": 1700000000000i64, "objectId": 900});
    let with = |extra: serde_json::Value| {
        let mut v = base.clone();
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    let update = |name: &str, value: Value| ChangeEvent {
        changed_fields: strs(&[name]),
        fields: fields(&[(name, value)]),
        ..hs("1", ObjectKind::Contact, "900", ChangeKind::Update)
    };
    let cases = vec![
        (
            with(json!({"subscriptionType": "object.creation", "objectTypeId": "0-2"})),
            hs("1", ObjectKind::Account, "900", ChangeKind::Create),
        ),
        (
            with(
                json!({"subscriptionType": "object.propertyChange", "objectTypeId": "0-1", "propertyName": "state", "propertyValue": "CA"}),
            ),
            update("state", s("CA")),
        ),
        (
            with(json!({"eventType": "contact.deletion"})),
            hs("1", ObjectKind::Contact, "900", ChangeKind::Delete),
        ),
        (
            with(json!({"subscriptionType": "contact.privacyDeletion"})),
            hs("1", ObjectKind::Contact, "900", ChangeKind::Delete),
        ),
        (
            with(json!({"subscriptionType": "company.deletion"})),
            hs("1", ObjectKind::Account, "900", ChangeKind::Delete),
        ),
        (
            with(json!({"subscriptionType": "company.restore"})),
            hs("1", ObjectKind::Account, "900", ChangeKind::Undelete),
        ),
        (
            with(json!({"subscriptionType": "company.creation"})),
            hs("1", ObjectKind::Account, "900", ChangeKind::Create),
        ),
        (
            with(json!({"subscriptionType": "contact.merge"})),
            hs("1", ObjectKind::Contact, "900", ChangeKind::Gap),
        ),
        // Values stay strings; an empty value is HubSpot's way of clearing.
        (
            with(
                json!({"subscriptionType": "contact.propertyChange", "propertyName": "numberofemployees", "propertyValue": "120"}),
            ),
            update("numberofemployees", s("120")),
        ),
        (
            with(
                json!({"subscriptionType": "contact.propertyChange", "propertyName": "city", "propertyValue": ""}),
            ),
            update("city", Value::Null),
        ),
        (
            with(
                json!({"subscriptionType": "contact.creation", "changeSource": "INTEGRATION", "sourceId": "11"}),
            ),
            ChangeEvent {
                origin: Some("INTEGRATION:11".into()),
                ..hs("1", ObjectKind::Contact, "900", ChangeKind::Create)
            },
        ),
    ];
    for (input, expected) in cases {
        // A single object, a batch of one, with and without detection.
        let one = input.to_string();
        let batch = json!([input]).to_string();
        for (text, format) in [
            (&one, Format::Auto),
            (&one, Format::Hubspot),
            (&batch, Format::Auto),
        ] {
            check(text, format, std::slice::from_ref(&expected));
        }
    }
}

#[test]
fn string_ids_are_accepted() {
    let input =
        json!({"eventId": "e-7", "eventType": "company.creation", "objectId": "18230745521"})
            .to_string();
    check(
        &input,
        Format::Auto,
        &[event(
            Crm::Hubspot,
            "e-7",
            ObjectKind::Account,
            Some("18230745521"),
            ChangeKind::Create,
        )],
    );
}

//! Salesforce CDC: every change type, both shapes, fan-out.

use allot_core::{ChangeEvent, ChangeKind, Crm, ObjectKind, Value};
use allot_events::Format;
use serde_json::json;

use crate::{check, event, fields, s, strs};

const TX: &str = "0000aaaa-tx";

/// A CometD event: header from `change_type`, `ids`, extra header keys; body fields.
fn cometd(
    change_type: &str,
    entity: &str,
    ids: &[&str],
    header: serde_json::Value,
    body: serde_json::Value,
) -> String {
    let mut h = json!({
        "entityName": entity, "recordIds": ids, "changeType": change_type,
        "changeOrigin": "com/salesforce/api/rest/62.0;client=allot", "transactionKey": TX,
        "sequenceNumber": 3, "commitTimestamp": 1714160000000i64, "commitUser": "005U",
        "commitNumber": 99
    });
    for (k, v) in header.as_object().unwrap() {
        h[k] = v.clone();
    }
    let mut payload = body;
    payload["ChangeEventHeader"] = h;
    json!({"schema": "sch", "payload": payload, "event": {"replayId": 77}, "channel": "/data/LeadChangeEvent"}).to_string()
}

/// The event `cometd` makes, before fields.
fn sf(event_id: &str, object: ObjectKind, record: Option<&str>, change: ChangeKind) -> ChangeEvent {
    ChangeEvent {
        commit_time: Some(1714160000000),
        sequence: Some(3),
        commit_user: Some("005U".into()),
        origin: Some("com/salesforce/api/rest/62.0;client=allot".into()),
        transaction: Some(TX.into()),
        scope: Some(object.to_string()),
        ..event(Crm::Salesforce, event_id, object, record, change)
    }
}

#[test]
fn cometd_change_types() {
    let lead = ObjectKind::Lead;
    let account = ObjectKind::Account;
    let cases = vec![
        // CREATE: non-null fields, compounds flattened to REST names.
        (
            cometd(
                "CREATE",
                "Account",
                &["001A"],
                json!({"changedFields": []}),
                json!({
                    "Name": "Acme", "Phone": null, "NumberOfEmployees": 50, "IsPartner": false,
                    "BillingAddress": {"Street": "1 Main", "State": "WA", "Country": null},
                    "ShippingAddress": {"CountryCode": "US"},
                    "Weird": {"Nested": {"Deep": 1}}, "Tags": ["a"]
                }),
            ),
            vec![ChangeEvent {
                fields: fields(&[
                    ("Name", s("Acme")),
                    ("NumberOfEmployees", Value::Num(50.0)),
                    ("IsPartner", Value::Bool(false)),
                    ("BillingStreet", s("1 Main")),
                    ("BillingState", s("WA")),
                    ("ShippingCountryCode", s("US")),
                ]),
                ..sf("77", account, Some("001A"), ChangeKind::Create)
            }],
        ),
        // UPDATE: exactly changedFields; a changed null is a clear; nulledFields too.
        (
            cometd(
                "UPDATE",
                "Lead",
                &["00QA"],
                json!({"changedFields": ["Address.City", "Email", "LastModifiedDate"], "nulledFields": ["Website"], "diffFields": []}),
                json!({"Address": {"City": "Berlin"}, "Email": null, "LastModifiedDate": "2024-04-26T19:33:20.000Z", "Website": null}),
            ),
            vec![ChangeEvent {
                changed_fields: strs(&["City", "Email", "LastModifiedDate", "Website"]),
                fields: fields(&[
                    ("City", s("Berlin")),
                    ("Email", Value::Null),
                    ("LastModifiedDate", s("2024-04-26T19:33:20.000Z")),
                    ("Website", Value::Null),
                ]),
                ..sf("77", lead, Some("00QA"), ChangeKind::Update)
            }],
        ),
        // A whole compound named in changedFields: every component carried.
        (
            cometd(
                "UPDATE",
                "Lead",
                &["00QA"],
                json!({"changedFields": ["Name"]}),
                json!({"Name": {"FirstName": "Ann", "LastName": null}}),
            ),
            vec![ChangeEvent {
                changed_fields: strs(&["FirstName", "LastName"]),
                fields: fields(&[("FirstName", s("Ann")), ("LastName", Value::Null)]),
                ..sf("77", lead, Some("00QA"), ChangeKind::Update)
            }],
        ),
        (
            cometd(
                "DELETE",
                "Lead",
                &["00QA"],
                json!({}),
                json!({"Company": "ignored"}),
            ),
            vec![sf("77", lead, Some("00QA"), ChangeKind::Delete)],
        ),
        (
            cometd(
                "UNDELETE",
                "Contact",
                &["003A"],
                json!({}),
                json!({"Email": "a@b.co", "Phone": null}),
            ),
            vec![ChangeEvent {
                fields: fields(&[("Email", s("a@b.co"))]),
                ..sf(
                    "77",
                    ObjectKind::Contact,
                    Some("003A"),
                    ChangeKind::Undelete,
                )
            }],
        ),
        (
            cometd("GAP_UPDATE", "Lead", &["00QA"], json!({}), json!({})),
            vec![sf("77", lead, Some("00QA"), ChangeKind::Gap)],
        ),
        (
            cometd("GAP_OVERFLOW", "Account", &[], json!({}), json!({})),
            vec![sf("77", account, None, ChangeKind::Overflow)],
        ),
        // A wildcard id is the whole entity: a resync, never a record `001*`.
        (
            cometd(
                "UPDATE",
                "Account",
                &["001*"],
                json!({"changedFields": ["Rating"], "nulledFields": ["Rating"]}),
                json!({"Rating": null}),
            ),
            vec![ChangeEvent {
                changed_fields: strs(&["Rating"]),
                fields: fields(&[("Rating", Value::Null)]),
                ..sf("77", account, None, ChangeKind::Overflow)
            }],
        ),
        // Fan-out: one event per record id, event id suffixed.
        (
            cometd(
                "UPDATE",
                "Lead",
                &["00Q1", "00Q2", "00Q3"],
                json!({"changedFields": ["Status"]}),
                json!({"Status": "Working"}),
            ),
            ["00Q1", "00Q2", "00Q3"]
                .iter()
                .map(|id| ChangeEvent {
                    changed_fields: strs(&["Status"]),
                    fields: fields(&[("Status", s("Working"))]),
                    ..sf(&format!("77:{id}"), lead, Some(id), ChangeKind::Update)
                })
                .collect(),
        ),
    ];
    for (input, expected) in cases {
        check(&input, Format::Auto, &expected);
        check(&input, Format::SalesforceCdc, &expected);
    }
}

#[test]
fn without_replay_id_the_transaction_names_the_event() {
    let header = json!({"entityName": "Lead", "recordIds": ["00Q1", "00Q2"], "changeType": "DELETE",
        "transactionKey": "tx9", "sequenceNumber": 4});
    let input = json!({"payload": {"ChangeEventHeader": header}}).to_string();
    let base = |id: &str, rec| ChangeEvent {
        sequence: Some(4),
        transaction: Some("tx9".into()),
        ..event(
            Crm::Salesforce,
            id,
            ObjectKind::Lead,
            Some(rec),
            ChangeKind::Delete,
        )
    };
    check(
        &input,
        Format::Auto,
        &[base("tx9:4:00Q1", "00Q1"), base("tx9:4:00Q2", "00Q2")],
    );
}

#[test]
fn flattened_shape_with_and_without_schema_wrapper() {
    let update = json!({
        "Id": "001F", "ReplayId": "500", "_ObjectType": "AccountChangeEvent", "_EventType": "x",
        "ChangeEventHeader": {"entityName": "Account", "recordIds": ["001F"], "changeType": "UPDATE",
            "changedFields": ["Industry", "BillingAddress.City", "LastModifiedDate"],
            "commitTimestamp": "1714160012000", "sequenceNumber": 2},
        "Industry": null, "BillingAddress": {"City": "Paris", "State": null, "Street": null},
        "LastModifiedDate": 1714160012000i64, "Name": null, "OwnerId": null, "Phone": null
    });
    let update_event = ChangeEvent {
        changed_fields: strs(&["Industry", "BillingCity", "LastModifiedDate"]),
        fields: fields(&[
            ("Industry", Value::Null),
            ("BillingCity", s("Paris")),
            ("LastModifiedDate", Value::Num(1714160012000.0)),
        ]),
        commit_time: Some(1714160012000),
        sequence: Some(2),
        ..event(
            Crm::Salesforce,
            "500",
            ObjectKind::Account,
            Some("001F"),
            ChangeKind::Update,
        )
    };
    let create = json!({
        "Id": "00QF", "ReplayId": "501", "_ObjectType": "LeadChangeEvent",
        "ChangeEventHeader": {"entityName": "Lead", "recordIds": ["00QF"], "changeType": "CREATE"},
        "Company": "Initech", "Email": null, "Name": {"FirstName": null, "LastName": "Lumbergh"},
        "Address": {"Country": "US", "City": null}, "CreatedDate": 1714160000000i64
    });
    let create_event = ChangeEvent {
        fields: fields(&[
            ("Company", s("Initech")),
            ("LastName", s("Lumbergh")),
            ("Country", s("US")),
            ("CreatedDate", Value::Num(1714160000000.0)),
        ]),
        ..event(
            Crm::Salesforce,
            "501",
            ObjectKind::Lead,
            Some("00QF"),
            ChangeKind::Create,
        )
    };
    let schema =
        json!({"type": "struct", "fields": [], "optional": false, "name": "AccountChangeEvent"});
    let cases = [
        (update.to_string(), vec![update_event.clone()]),
        (
            json!({"schema": schema, "payload": update}).to_string(),
            vec![update_event.clone()],
        ),
        (create.to_string(), vec![create_event.clone()]),
        (
            json!({"schema": schema, "payload": create}).to_string(),
            vec![create_event.clone()],
        ),
        // An array of Salesforce events, each decoded on its own.
        (
            json!([update, create]).to_string(),
            vec![update_event, create_event],
        ),
    ];
    for (input, expected) in cases {
        check(&input, Format::Auto, &expected);
    }
}

#[test]
fn bayeux_data_wrapper_is_unwrapped() {
    let input = json!({"channel": "/data/LeadChangeEvent", "data": {
        "schema": "s", "event": {"replayId": "12"},
        "payload": {"ChangeEventHeader": {"entityName": "Lead", "recordIds": ["00Q9"], "changeType": "GAP_CREATE"}}
    }})
    .to_string();
    check(
        &input,
        Format::Auto,
        &[event(
            Crm::Salesforce,
            "12",
            ObjectKind::Lead,
            Some("00Q9"),
            ChangeKind::Gap,
        )],
    );
}

//! The shared wire examples (copied from the spec into tests/data) decode exactly.

use allot_core::{ChangeEvent, ChangeKind, Crm, ObjectKind, Value, EVENT_VERSION};
use allot_events::{decode, FieldMap, Format};

use crate::{check, fields, s, strs};

const LEAD_CREATE: &str = include_str!("../data/sf-cdc-lead-create.json");
const ACCOUNT_UPDATE_FLAT: &str = include_str!("../data/sf-cdc-account-update-flat.json");
const HUBSPOT_BATCH: &str = include_str!("../data/hubspot-webhook-batch.json");

fn lead_create() -> ChangeEvent {
    ChangeEvent {
        v: EVENT_VERSION,
        source: Crm::Salesforce,
        event_id: "2142249".into(),
        object: ObjectKind::Lead,
        record_id: Some("00Q5f000005bwLFEAY".into()),
        change: ChangeKind::Create,
        changed_fields: vec![],
        fields: fields(&[
            ("FirstName", s("Brenda")),
            ("LastName", s("Mcclure")),
            ("Company", s("Cardinal Inc.")),
            ("Email", s("brenda@cardinal.net")),
            ("Status", s("Open - Not Contacted")),
            ("LeadSource", s("Web")),
            ("Street", s("415 Mission St")),
            ("City", s("San Francisco")),
            ("State", s("CA")),
            ("PostalCode", s("94105")),
            ("Country", s("US")),
            ("Industry", s("Software")),
            ("NumberOfEmployees", Value::Num(120.0)),
            ("OwnerId", s("0055f000005mc66AAA")),
            ("CreatedDate", s("2024-04-26T17:49:39.000Z")),
            ("CreatedById", s("0055f000005mc66AAA")),
            ("LastModifiedDate", s("2024-04-26T17:49:39.000Z")),
            ("LastModifiedById", s("0055f000005mc66AAA")),
        ]),
        commit_time: Some(1714153779000),
        sequence: Some(1),
        commit_user: Some("0055f000005mc66AAA".into()),
        origin: Some("com/salesforce/api/rest/62.0;client=web-to-lead".into()),
        transaction: Some("00006948-0ac9-7da3-edb3-ea0e31b2334a".into()),
        scope: Some("lead".into()),
    }
}

fn account_update() -> ChangeEvent {
    ChangeEvent {
        v: EVENT_VERSION,
        source: Crm::Salesforce,
        event_id: "1305902".into(),
        object: ObjectKind::Account,
        record_id: Some("0015f00002JUX1JAAX".into()),
        change: ChangeKind::Update,
        changed_fields: strs(&["BillingState", "LastModifiedDate"]),
        fields: fields(&[
            ("BillingState", s("WA")),
            ("LastModifiedDate", Value::Num(1714160012000.0)),
        ]),
        commit_time: Some(1714160012000),
        sequence: Some(1),
        commit_user: Some("0055f000005mc66AAA".into()),
        origin: Some("com/salesforce/api/rest/62.0;client=SfdxCLI".into()),
        transaction: Some("00007e1a-3c2b-9f41-55d0-0e2c8a1b7f33".into()),
        scope: Some("account".into()),
    }
}

fn hubspot_batch() -> Vec<ChangeEvent> {
    let base = |id: &str, object, record: &str, change, at, tx: &str, origin: &str| ChangeEvent {
        v: EVENT_VERSION,
        source: Crm::Hubspot,
        event_id: id.into(),
        object,
        record_id: Some(record.into()),
        change,
        changed_fields: vec![],
        fields: Default::default(),
        commit_time: Some(at),
        sequence: None,
        commit_user: None,
        origin: Some(origin.into()),
        transaction: Some(tx.into()),
        scope: Some("62515/1160452".into()),
    };
    let contact = ObjectKind::Contact;
    vec![
        base(
            "1893401122",
            contact,
            "65059681032",
            ChangeKind::Create,
            1714153779512,
            "2451977",
            "CRM_UI:userId:45678",
        ),
        ChangeEvent {
            changed_fields: strs(&["country"]),
            fields: fields(&[("country", s("Germany"))]),
            ..base(
                "1893401187",
                contact,
                "65059681032",
                ChangeKind::Update,
                1714153781007,
                "2451980",
                "CRM_UI:userId:45678",
            )
        },
        ChangeEvent {
            changed_fields: strs(&["hubspot_owner_id"]),
            fields: fields(&[("hubspot_owner_id", s("771204"))]),
            ..base(
                "1893402011",
                ObjectKind::Account,
                "18230745521",
                ChangeKind::Update,
                1714153790233,
                "2451985",
                "API",
            )
        },
    ]
}

#[test]
fn shared_examples_decode_exactly() {
    let cases = [
        (LEAD_CREATE, Format::Auto, vec![lead_create()]),
        (LEAD_CREATE, Format::SalesforceCdc, vec![lead_create()]),
        (ACCOUNT_UPDATE_FLAT, Format::Auto, vec![account_update()]),
        (
            ACCOUNT_UPDATE_FLAT,
            Format::SalesforceCdc,
            vec![account_update()],
        ),
        (HUBSPOT_BATCH, Format::Auto, hubspot_batch()),
        (HUBSPOT_BATCH, Format::Hubspot, hubspot_batch()),
    ];
    for (input, format, expected) in cases {
        check(input, format, &expected);
    }
}

#[test]
fn shared_examples_in_the_wrong_format_fail_without_events() {
    let cases = [
        (LEAD_CREATE, Format::Hubspot),
        (LEAD_CREATE, Format::Native),
        (HUBSPOT_BATCH, Format::SalesforceCdc),
        (ACCOUNT_UPDATE_FLAT, Format::Native),
    ];
    for (input, format) in cases {
        let got = decode(input.as_bytes(), format);
        assert!(got.events.is_empty(), "{format}: {:?}", got.events);
        assert!(!got.errors.is_empty(), "{format}");
    }
}

#[test]
fn lead_example_maps_to_canonical_fields() {
    let map = FieldMap::salesforce_default();
    let got = map.apply(ObjectKind::Lead, &lead_create().fields);
    let want = [
        ("country", s("US")),
        ("state", s("CA")),
        ("postal_code", s("94105")),
        ("city", s("San Francisco")),
        ("industry", s("Software")),
        ("employees", Value::Num(120.0)),
        ("email", s("brenda@cardinal.net")),
        ("company", s("Cardinal Inc.")),
        ("lead_source", s("Web")),
        ("owner", s("0055f000005mc66AAA")),
        ("domain", s("cardinal.net")),
        ("FirstName", s("Brenda")),
        ("Street", s("415 Mission St")),
        ("Status", s("Open - Not Contacted")),
    ];
    for (name, value) in want {
        assert_eq!(got.get(name), Some(&value), "{name}");
    }
    for raw in ["Country", "PostalCode", "OwnerId", "Email"] {
        assert!(!got.contains_key(raw), "{raw} should be mapped");
    }
}

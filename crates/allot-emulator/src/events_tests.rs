use super::*;

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn header(object: ObjectKind, change_type: &'static str) -> CdcHeader {
    CdcHeader {
        object,
        record_ids: vec!["0015f00002JUX1JAAX".into()],
        change_type,
        change_origin: "com/salesforce/api/rest/62.0;client=allot".into(),
        transaction_key: "00007e1a-3c2b-9f41-55d0-0e2c8a1b7f33".into(),
        sequence_number: 1,
        commit_timestamp: 1_714_160_012_000,
        commit_number: 1_100_638_531_122,
        commit_user: "0055f000005mc66AAA".into(),
    }
}

#[test]
fn iso_dates_match_the_spec_examples() {
    let cases = [
        (1_714_153_779_000, "2024-04-26T17:49:39.000Z"),
        (0, "1970-01-01T00:00:00.000Z"),
        (951_782_400_123, "2000-02-29T00:00:00.123Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
    ];
    for (ms, want) in cases {
        assert_eq!(iso_millis(ms), want, "{ms}");
    }
}

#[test]
fn salesforce_ids_get_their_checksum() {
    let cases = [
        ("0015f00002JUX1J", "0015f00002JUX1JAAX"),
        ("00Q5f000005bwLF", "00Q5f000005bwLFEAY"),
        ("0055f000005mc66", "0055f000005mc66AAA"),
    ];
    for (id15, want) in cases {
        assert_eq!(sf_id18(id15), want);
    }
    assert_eq!(sf_new_id("00Q", 42).len(), 18);
    assert!(sf_new_id("00Q", 42).starts_with("00Q5f0000000042"));
}

#[test]
fn update_events_nest_compound_fields_and_name_components() {
    let fields = map(
        json!({"BillingState": "WA", "OwnerId": "0055f000001AAAAAA2", "LastModifiedDate": "2024-04-26T19:33:32.000Z"}),
    );
    let e = sf_cdc_event(&header(ObjectKind::Account, "UPDATE"), &fields, 1_305_902);
    assert_eq!(e["channel"], "/data/AccountChangeEvent");
    assert_eq!(e["event"]["replayId"], 1_305_902);
    let p = &e["payload"];
    assert_eq!(p["BillingAddress"]["State"], "WA");
    assert_eq!(p["BillingAddress"]["City"], Value::Null);
    assert_eq!(p["OwnerId"], "0055f000001AAAAAA2");
    let h = &p["ChangeEventHeader"];
    assert_eq!(h["entityName"], "Account");
    assert_eq!(h["changeType"], "UPDATE");
    assert_eq!(
        h["changeOrigin"],
        "com/salesforce/api/rest/62.0;client=allot"
    );
    assert_eq!(
        h["changedFields"],
        json!(["BillingAddress.State", "LastModifiedDate", "OwnerId"])
    );
    assert_eq!(h["recordIds"], json!(["0015f00002JUX1JAAX"]));
}

#[test]
fn create_events_carry_fields_without_changed_fields() {
    let fields = map(
        json!({"FirstName": "Brenda", "LastName": "Mcclure", "Company": "Cardinal Inc.", "Country": "US", "Id": "00Q5f000005bwLFEAY"}),
    );
    let e = sf_cdc_event(&header(ObjectKind::Lead, "CREATE"), &fields, 7);
    let p = &e["payload"];
    assert_eq!(p["Name"]["FirstName"], "Brenda");
    assert_eq!(p["Name"]["Salutation"], Value::Null);
    assert_eq!(p["Address"]["Country"], "US");
    assert_eq!(p["Company"], "Cardinal Inc.");
    assert_eq!(p["ChangeEventHeader"]["changedFields"], json!([]));
    assert_eq!(e["channel"], "/data/LeadChangeEvent");
}

#[test]
fn nulled_fields_are_listed_on_update() {
    let fields = map(json!({"Industry": null, "LastModifiedDate": "x"}));
    let e = sf_cdc_event(&header(ObjectKind::Account, "UPDATE"), &fields, 1);
    assert_eq!(
        e["payload"]["ChangeEventHeader"]["nulledFields"],
        json!(["Industry"])
    );
}

#[test]
fn webhook_events_follow_the_documented_shape() {
    let api = HsEventBase {
        portal_id: 62515,
        app_id: 1_160_452,
        occurred_at: 1_714_153_781_007,
        source: HsSource::Integration { app_id: 1_160_452 },
    };
    let e = hs_webhook_event(
        &api,
        11,
        ObjectKind::Contact,
        "65059681032",
        Some(("hubspot_owner_id", &json!("910901"))),
    );
    assert_eq!(e["subscriptionType"], "contact.propertyChange");
    assert_eq!(e["objectId"], 65_059_681_032u64);
    assert_eq!(e["propertyName"], "hubspot_owner_id");
    assert_eq!(e["propertyValue"], "910901");
    assert_eq!(e["changeSource"], "INTEGRATION");
    assert_eq!(e["sourceId"], "1160452");
    assert_eq!(e["portalId"], 62515);

    let ui = HsEventBase {
        source: HsSource::CrmUi { user_id: 45678 },
        ..api
    };
    let e = hs_webhook_event(&ui, 12, ObjectKind::Account, "18230745521", None);
    assert_eq!(e["subscriptionType"], "company.creation");
    assert_eq!(e["changeFlag"], "CREATED");
    assert_eq!(e["changeSource"], "CRM_UI");
    assert_eq!(e["sourceId"], "userId:45678");
    assert!(e.get("propertyName").is_none());
}

//! Errors say what and where; one bad element does not spoil the batch.

use allot_events::{decode, Format};
use serde_json::json;

/// Decodes `input`; expects `events` events and exactly these errors (Display, kind).
#[track_caller]
fn check_errors(input: &str, format: Format, events: usize, expected: &[(&str, &str)]) {
    let got = decode(input.as_bytes(), format);
    let errors: Vec<(String, &str)> = got
        .errors
        .iter()
        .map(|e| (e.to_string(), e.kind()))
        .collect();
    let want: Vec<(String, &str)> = expected.iter().map(|(m, k)| (m.to_string(), *k)).collect();
    assert_eq!(errors, want, "errors for {input}");
    assert_eq!(got.events.len(), events, "event count for {input}");
}

/// (input, format, events expected, (message, kind) of each error)
type Case = (String, Format, usize, Vec<(&'static str, &'static str)>);

fn sf(header: serde_json::Value) -> serde_json::Value {
    json!({"payload": {"ChangeEventHeader": header}, "event": {"replayId": 2142249}})
}

#[test]
fn decode_errors() {
    let lead =
        |change: &str| json!({"entityName": "Lead", "recordIds": ["00Q1"], "changeType": change});
    let good_hs = json!({"eventId": 1, "subscriptionType": "contact.creation", "objectId": 5});
    let cases: Vec<Case> = vec![
        ("{\"a\":".into(), Format::Auto, 0, vec![("not JSON at line 1 column 5: EOF while parsing a value", "json")]),
        ("".into(), Format::Native, 0, vec![("not JSON at line 1 column 0: EOF while parsing a value", "json")]),
        ("{\"a\": 1} x".into(), Format::Auto, 0, vec![("not JSON at line 1 column 10: trailing characters", "json")]),
        (
            "42".into(), Format::Auto, 0,
            vec![("cannot detect format: expected a JSON object or array, found a number", "detect")],
        ),
        (
            "{\"hello\":1}".into(), Format::Auto, 0,
            vec![("cannot detect format: object with keys [hello]; expected ChangeEventHeader (salesforce), subscriptionType or eventType (hubspot), or v and event_id (native)", "detect")],
        ),
        ("[]".into(), Format::Auto, 0, vec![]),
        (
            sf(lead("FOO")).to_string(), Format::Auto, 0,
            vec![("salesforce event (replayId 2142249): unknown changeType \"FOO\"", "change")],
        ),
        (
            sf(json!({"recordIds": ["1"], "changeType": "UPDATE"})).to_string(), Format::SalesforceCdc, 0,
            vec![("salesforce event (replayId 2142249): missing field \"ChangeEventHeader.entityName\"", "field")],
        ),
        (
            sf(json!({"entityName": "Opportunity", "recordIds": ["006"], "changeType": "UPDATE"})).to_string(), Format::Auto, 0,
            vec![("salesforce event (replayId 2142249): unsupported object \"Opportunity\" (allot routes leads, accounts and contacts)", "object")],
        ),
        (
            sf(json!({"entityName": "Lead", "changeType": "UPDATE"})).to_string(), Format::Auto, 0,
            vec![("salesforce event (replayId 2142249): missing field \"ChangeEventHeader.recordIds\"", "field")],
        ),
        (
            sf(json!({"entityName": "Lead", "recordIds": [], "changeType": "DELETE"})).to_string(), Format::Auto, 0,
            vec![("salesforce event (replayId 2142249): field \"ChangeEventHeader.recordIds\" is empty (expected at least one record id)", "field")],
        ),
        (
            sf(json!({"entityName": "Lead", "recordIds": ["a", 7], "changeType": "DELETE"})).to_string(), Format::Auto, 0,
            vec![("salesforce event (replayId 2142249): field \"ChangeEventHeader.recordIds[1]\" expected a string, found a number", "field")],
        ),
        (
            sf(json!({"entityName": "Lead", "recordIds": ["a"], "changeType": "DELETE", "sequenceNumber": "one"})).to_string(), Format::Auto, 0,
            vec![("salesforce event (replayId 2142249): field \"ChangeEventHeader.sequenceNumber\" expected an integer, found a string", "field")],
        ),
        (
            json!({"payload": {"ChangeEventHeader": lead("DELETE")}}).to_string(), Format::Auto, 0,
            vec![("salesforce event: missing field \"replayId (or ChangeEventHeader.transactionKey and sequenceNumber)\"", "field")],
        ),
        (
            json!({"payload": {"Name": "x"}}).to_string(), Format::SalesforceCdc, 0,
            vec![("salesforce event: missing field \"payload.ChangeEventHeader\"", "field")],
        ),
        // One bad element among good ones: the others decode, the index is named.
        (
            json!([sf(lead("DELETE")), sf(lead("FOO")), "nope", sf(lead("GAP_DELETE"))]).to_string(), Format::Auto, 2,
            vec![
                ("salesforce event [1] (replayId 2142249): unknown changeType \"FOO\"", "change"),
                ("salesforce event [2]: expected a JSON object, found a string", "shape"),
            ],
        ),
        (
            json!([good_hs, good_hs, {"eventId": 1893402011, "subscriptionType": "company.propertyChange", "propertyName": "x"}]).to_string(),
            Format::Auto, 2,
            vec![("hubspot event [2] (eventId 1893402011): missing field \"objectId\"", "field")],
        ),
        (
            json!([{"eventId": 3, "subscriptionType": "contact.propertyChange", "objectId": 1}]).to_string(), Format::Hubspot, 0,
            vec![("hubspot event [0] (eventId 3): missing field \"propertyName\"", "field")],
        ),
        (
            json!({"eventId": 4, "subscriptionType": "contact.associationChange", "objectId": 1}).to_string(), Format::Auto, 0,
            vec![("hubspot event (eventId 4): unknown subscriptionType \"contact.associationChange\"", "change")],
        ),
        (
            json!({"eventId": 5, "eventType": "deal.creation", "objectId": 1}).to_string(), Format::Auto, 0,
            vec![("hubspot event (eventId 5): unsupported object \"deal\" (allot routes leads, accounts and contacts)", "object")],
        ),
        (
            json!({"eventId": 6, "subscriptionType": "object.creation", "objectId": 1, "objectTypeId": "0-3"}).to_string(), Format::Auto, 0,
            vec![("hubspot event (eventId 6): unsupported object \"objectTypeId 0-3\" (allot routes leads, accounts and contacts)", "object")],
        ),
        (
            json!({"eventId": 7, "subscriptionType": "object.creation", "objectId": 1}).to_string(), Format::Auto, 0,
            vec![("hubspot event (eventId 7): missing field \"objectTypeId\"", "field")],
        ),
        (
            json!({"subscriptionType": "contact.creation", "objectId": 1}).to_string(), Format::Auto, 0,
            vec![("hubspot event: missing field \"eventId\"", "field")],
        ),
        (
            json!({"eventId": 8, "subscriptionType": "contact.creation", "objectId": 1.5}).to_string(), Format::Auto, 0,
            vec![("hubspot event (eventId 8): field \"objectId\" expected a non-empty string or an integer, found a number", "field")],
        ),
    ];
    for (input, format, events, expected) in cases {
        check_errors(&input, format, events, &expected);
    }
}

//! Fixture tests of the HubSpot parsers on the documented answer bodies.

use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};

use super::*;
use crate::RecordErrorKind;

fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    Reply {
        status,
        headers: map,
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn object_types_and_paths() {
    assert_eq!(object_type(ObjectKind::Contact).unwrap(), "contacts");
    assert_eq!(object_type(ObjectKind::Account).unwrap(), "companies");
    assert!(matches!(
        object_type(ObjectKind::Lead),
        Err(CrmError::UnsupportedObject { .. })
    ));
    assert_eq!(
        batch_update_path("contacts"),
        "/crm/v3/objects/contacts/batch/update"
    );
    assert_eq!(
        record_path("companies", "18230745521"),
        "/crm/v3/objects/companies/18230745521"
    );
    assert_eq!(
        owner_update_body(&[("51", "910901")]),
        json!({"inputs": [{"id": "51", "properties": {"hubspot_owner_id": "910901"}}]})
    );
}

#[test]
fn rate_limit_headers_are_parsed() {
    let full = reply(
        200,
        &[
            ("X-HubSpot-RateLimit-Max", "190"),
            ("X-HubSpot-RateLimit-Remaining", "187"),
            ("X-HubSpot-RateLimit-Interval-Milliseconds", "10000"),
            ("X-HubSpot-RateLimit-Daily", "650000"),
            ("X-HubSpot-RateLimit-Daily-Remaining", "649000"),
        ],
        "",
    );
    let cases = [
        (
            full,
            Some(HubSpotRateLimit {
                max: 190,
                remaining: 187,
                interval_ms: 10_000,
                daily: Some(650_000),
                daily_remaining: Some(649_000),
            }),
        ),
        (
            reply(
                200,
                &[
                    ("x-hubspot-ratelimit-max", "100"),
                    ("x-hubspot-ratelimit-remaining", "0"),
                ],
                "",
            ),
            Some(HubSpotRateLimit {
                max: 100,
                remaining: 0,
                interval_ms: 10_000,
                daily: None,
                daily_remaining: None,
            }),
        ),
        (reply(200, &[("x-hubspot-ratelimit-max", "100")], ""), None),
        (reply(200, &[], ""), None),
    ];
    for (r, want) in cases {
        assert_eq!(parse_rate_limit(&r.headers), want, "{:?}", r.headers);
    }
}

#[test]
fn documented_429_bodies_become_rate_limited() {
    let ten = r#"{"status":"error","message":"You have reached your ten_secondly_rolling limit.","errorType":"RATE_LIMIT","correlationId":"c70c1a4c-9d85-4bd2-a6d2-9b5fd24c09a2","policyName":"TEN_SECONDLY_ROLLING"}"#;
    let daily = r#"{"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","correlationId":"x","policyName":"DAILY"}"#;
    let cases = [
        (
            reply(429, &[("Retry-After", "2")], ten),
            "TEN_SECONDLY_ROLLING",
            Some(Duration::from_secs(2)),
            true,
        ),
        (reply(429, &[], ten), "TEN_SECONDLY_ROLLING", None, true),
        (reply(429, &[], daily), "DAILY", None, false),
        (reply(429, &[], "too many"), "UNKNOWN", None, true),
    ];
    for (r, policy, retry_after, retryable) in cases {
        let e = error_from_reply("POST /x", &r);
        match &e {
            CrmError::RateLimited { policy: p, .. } => assert_eq!(p, policy),
            other => panic!("not rate limited: {other:?}"),
        }
        assert_eq!(e.retry_after(), retry_after);
        assert_eq!(e.retryable(), retryable);
    }
}

#[test]
fn documented_error_bodies_become_api_errors() {
    let too_many = r#"{"status":"error","message":"Batch input limit exceeded: 101 inputs, at most 100 allowed","correlationId":"a1","category":"VALIDATION_ERROR"}"#;
    let not_found = r#"{"status":"error","message":"resource not found","correlationId":"a2","category":"OBJECT_NOT_FOUND"}"#;
    let unauthorized = r#"{"status":"error","message":"Authentication credentials not found.","correlationId":"a3","category":"INVALID_AUTHENTICATION"}"#;
    let cases = [
        (reply(400, &[], too_many), "api:400:VALIDATION_ERROR"),
        (reply(404, &[], not_found), "api:404:OBJECT_NOT_FOUND"),
        (reply(500, &[], "oops"), "api:500:"),
        (reply(401, &[], unauthorized), "auth"),
    ];
    for (r, want) in cases {
        let got = match error_from_reply("POST /x", &r) {
            CrmError::Api { status, code, .. } => format!("api:{status}:{code}"),
            CrmError::Auth { .. } => "auth".into(),
            other => format!("{other:?}"),
        };
        assert_eq!(got, want);
    }
}

#[test]
fn batch_200_marks_every_input_ok() {
    let body = r#"{"status":"COMPLETE","results":[{"id":"51","properties":{"hubspot_owner_id":"910901"},"createdAt":"2024-04-26T17:49:39.000Z","updatedAt":"2024-04-26T17:49:40.000Z","archived":false}],"startedAt":"2024-04-26T17:49:40.000Z","completedAt":"2024-04-26T17:49:40.100Z"}"#;
    let got = parse_batch_reply(&["51"], 200, body.as_bytes()).unwrap();
    assert_eq!(got, vec![RecordResult::success("51")]);
}

#[test]
fn batch_207_attributes_errors_by_context_ids() {
    let body = r#"{"status":"COMPLETE",
      "results":[{"id":"51","properties":{"hubspot_owner_id":"910901"},"archived":false}],
      "numErrors":3,
      "errors":[
        {"status":"error","category":"VALIDATION_ERROR","message":"Property values were not valid",
         "errors":[{"message":"999 is not a valid owner id","code":"INVALID_OWNER_ID","in":"hubspot_owner_id"}],
         "context":{"ids":["52"]}},
        {"status":"error","category":"OBJECT_NOT_FOUND","message":"Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.",
         "context":{"ids":["53", 54]}}
      ],
      "startedAt":"2024-04-26T17:49:40.000Z","completedAt":"2024-04-26T17:49:40.100Z"}"#;
    let ids = ["51", "52", "53", "54", "55"];
    let got = parse_batch_reply(&ids, 207, body.as_bytes()).unwrap();
    let summary: Vec<(&str, bool, Option<&str>, Option<RecordErrorKind>)> = got
        .iter()
        .map(|r| {
            let e = r.error.as_ref();
            (
                r.id.as_str(),
                r.ok,
                e.map(|e| e.code.as_str()),
                e.map(|e| e.kind),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("51", true, None, None),
            (
                "52",
                false,
                Some("INVALID_OWNER_ID"),
                Some(RecordErrorKind::InvalidReference)
            ),
            (
                "53",
                false,
                Some("OBJECT_NOT_FOUND"),
                Some(RecordErrorKind::NotFound)
            ),
            (
                "54",
                false,
                Some("OBJECT_NOT_FOUND"),
                Some(RecordErrorKind::NotFound)
            ),
            ("55", false, Some("UNKNOWN"), Some(RecordErrorKind::Other)),
        ]
    );
    assert_eq!(
        got[1].error.as_ref().unwrap().message,
        "999 is not a valid owner id"
    );
}

#[test]
fn batch_207_error_without_ids_applies_to_unlisted_inputs() {
    let body = r#"{"status":"COMPLETE","results":[{"id":"1"}],
      "errors":[{"status":"error","category":"INTERNAL_ERROR","message":"try again"}]}"#;
    let got = parse_batch_reply(&["1", "2"], 207, body.as_bytes()).unwrap();
    assert!(got[0].ok);
    let e = got[1].error.as_ref().unwrap();
    assert_eq!((e.code.as_str(), e.retryable), ("INTERNAL_ERROR", true));
    assert!(parse_batch_reply(&["1"], 207, b"not json").is_err());
}

#[test]
fn records_and_owner_pages_are_read() {
    let record = r#"{"id":"65059681032","properties":{"country":"Germany","hubspot_owner_id":"910901","hs_object_id":"65059681032"},"createdAt":"2024-04-26T17:49:39.000Z","updatedAt":"2024-04-26T17:49:41.000Z","archived":false}"#;
    let props = parse_record(record.as_bytes()).unwrap();
    assert_eq!(props.get("country"), Some(&json!("Germany")));

    let page = r#"{"results":[{"id":"910901","email":"maya@northwind.example","type":"PERSON","firstName":"Maya","lastName":"Okafor","userId":4512001,"userIdIncludingInactive":4512001,"createdAt":"2023-01-04T10:00:00Z","updatedAt":"2024-02-01T10:00:00Z","archived":false,"teams":[{"id":"44","name":"EMEA","primary":true}]}],
      "paging":{"next":{"after":"MTAw","link":"https://api.hubapi.com/crm/v3/owners?after=MTAw"}}}"#;
    let (owners, after) = parse_owners_page(page.as_bytes()).unwrap();
    assert_eq!(after.as_deref(), Some("MTAw"));
    assert_eq!(owners[0].id, "910901");
    assert_eq!(owners[0].user_id, Some(4512001));
    assert_eq!(owners[0].first_name.as_deref(), Some("Maya"));
    assert!(!owners[0].archived);

    let (owners, after) = parse_owners_page(br#"{"results":[]}"#).unwrap();
    assert!(owners.is_empty() && after.is_none());
}

#[test]
fn a_negative_user_id_is_read_as_the_spec_types_it() {
    // The spec types `userId` as a signed int32.
    let page = br#"{"results":[
        {"id":"910901","email":"maya@northwind.example","userId":-4512001,"archived":false},
        {"id":"910902","email":"diego@northwind.example","userId":2147483647,"archived":false},
        {"id":"910903","email":"ops@northwind.example","archived":false}]}"#;
    let (owners, after) = parse_owners_page(page).unwrap();
    assert_eq!(after, None);
    let ids: Vec<Option<i64>> = owners.iter().map(|o| o.user_id).collect();
    assert_eq!(ids, [Some(-4_512_001), Some(2_147_483_647), None]);
}

#[test]
fn inputs_a_207_leaves_out_are_unanswered_unless_an_error_names_no_id() {
    let body = r#"{"status":"COMPLETE","results":[{"id":"1","properties":{}}],"numErrors":1,
        "errors":[{"status":"error","category":"VALIDATION_ERROR","message":"bad owner","context":{"ids":["2"]}}]}"#;
    let got = parse_batch_answer(&["1", "2", "3"], 207, body.as_bytes()).unwrap();
    assert_eq!(got[0], BatchOutcome::Written);
    assert!(matches!(&got[1], BatchOutcome::Failed(e) if e.code == "VALIDATION_ERROR"));
    assert_eq!(got[2], BatchOutcome::Unanswered);

    // An error that names no id covers the inputs nothing else names.
    let body = r#"{"status":"COMPLETE","results":[],"numErrors":1,
        "errors":[{"status":"error","category":"INTERNAL_ERROR","message":"boom"}]}"#;
    let got = parse_batch_answer(&["3"], 207, body.as_bytes()).unwrap();
    assert!(matches!(&got[0], BatchOutcome::Failed(e) if e.code == "INTERNAL_ERROR"));
}

#[test]
fn a_left_out_input_is_settled_by_what_the_read_shows() {
    use crate::RecordRead;
    let found = |owner: Value| {
        let mut props = Map::new();
        props.insert(OWNER_PROPERTY.into(), owner);
        RecordRead::Found(props)
    };
    // Already owned as intended: written.
    let r = confirm_unanswered("7", "910901", Some(&found(json!("910901"))));
    assert_eq!(r, RecordResult::success("7"));
    // Someone else, or nobody: sent again.
    for read in [
        Some(found(json!("910902"))),
        Some(found(Value::Null)),
        Some(RecordRead::NotRead("INTERNAL_ERROR: x".into())),
        None,
    ] {
        let r = confirm_unanswered("7", "910901", read.as_ref());
        let e = r.error.as_ref().unwrap();
        assert!(!r.ok);
        assert_eq!(
            (e.code.as_str(), e.retryable, e.kind),
            (UNANSWERED, true, RecordErrorKind::Transient),
            "{read:?}"
        );
        assert!(e.message.contains("left out of the 207"), "{}", e.message);
    }
    // Gone: permanent, as a named OBJECT_NOT_FOUND would be.
    let r = confirm_unanswered("7", "910901", Some(&RecordRead::Missing));
    let e = r.error.unwrap();
    assert_eq!((e.kind, e.retryable), (RecordErrorKind::NotFound, false));
}

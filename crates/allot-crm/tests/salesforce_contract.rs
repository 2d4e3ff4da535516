//! Contract tests of the Salesforce client against the emulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use allot_core::{Crm, ObjectKind};
use allot_crm::{
    CrmClient, CrmError, LimitInfo, RecordErrorKind, SalesforceAuth, SalesforceClient,
    SalesforceConfig,
};
use allot_emulator::{EmulatorOptions, FaultPatch};
use support::*;

fn client_credentials(base: &str) -> SalesforceClient {
    let opts = EmulatorOptions::default();
    let mut cfg = SalesforceConfig::new(
        base,
        SalesforceAuth::ClientCredentials {
            client_id: opts.salesforce_client_id,
            client_secret: opts.salesforce_client_secret,
        },
    );
    cfg.call_options_client = "allot-test".into();
    cfg.timeout = Duration::from_secs(5);
    SalesforceClient::new(cfg).unwrap()
}

fn faults(json: &str) -> FaultPatch {
    serde_json::from_str(json).unwrap()
}

#[tokio::test]
async fn batch_update_reports_per_record_results_in_order() {
    let em = start(seed(), opts()).await;
    let client = client_credentials(&em.base);
    let updates = [
        (LEAD_1, SF_BOB),
        (LEAD_2, SF_GONE),
        (LEAD_3, "0055f000009ZZZZAAA"),
        ("00Q5f000009NOPEAAA", SF_BOB),
    ];
    let results = client
        .update_owners(ObjectKind::Lead, &updates)
        .await
        .unwrap();
    let summary: Vec<(&str, bool, Option<RecordErrorKind>, Option<bool>)> = results
        .iter()
        .map(|r| {
            let e = r.error.as_ref();
            (
                r.id.as_str(),
                r.ok,
                e.map(|e| e.kind),
                e.map(|e| e.retryable),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (LEAD_1, true, None, None),
            (
                LEAD_2,
                false,
                Some(RecordErrorKind::InactiveOwner),
                Some(false)
            ),
            (
                LEAD_3,
                false,
                Some(RecordErrorKind::InvalidReference),
                Some(false)
            ),
            (
                "00Q5f000009NOPEAAA",
                false,
                Some(RecordErrorKind::NotFound),
                Some(false)
            ),
        ]
    );
    assert_eq!(
        results[1].error.as_ref().unwrap().code,
        "INACTIVE_OWNER_OR_USER"
    );
    assert_eq!(
        results[2].error.as_ref().unwrap().code,
        "INVALID_CROSS_REFERENCE_KEY"
    );

    let lead = em
        .emulator
        .record(Crm::Salesforce, ObjectKind::Lead, LEAD_1)
        .unwrap();
    assert_eq!(lead["OwnerId"], SF_BOB);
    let stats = em.emulator.stats();
    assert_eq!(stats.records_updated.salesforce, 1);
    assert_eq!(stats.records_rejected.salesforce, 3);
    assert_eq!(stats.max_records_per_call.salesforce, 4);
}

#[tokio::test]
async fn required_headers_are_sent_and_limits_parsed() {
    let mut o = opts();
    o.salesforce_daily_quota = 5_000;
    o.salesforce_api_usage_start = 25;
    let em = start(seed(), o).await;
    let client = client_credentials(&em.base);
    assert_eq!(client.limit_usage(), None);
    client
        .update_owners(ObjectKind::Account, &[(ACCOUNT_1, SF_ALICE)])
        .await
        .unwrap();
    assert_eq!(client.limit_usage(), Some((26, 5_000)));
    client
        .get_record(ObjectKind::Lead, LEAD_1, &["OwnerId"])
        .await
        .unwrap();
    assert_eq!(client.limit_usage(), Some((27, 5_000)));
    let enum_client = CrmClient::Salesforce(client);
    assert_eq!(
        enum_client.limit_info(),
        Some(LimitInfo::Salesforce {
            used: 27,
            max: 5_000
        })
    );
    assert_eq!(enum_client.max_batch(), 200);

    let requests = em.emulator.requests();
    assert_eq!(requests.len(), 2);
    for r in requests {
        assert_eq!(r.auto_assign.as_deref(), Some("FALSE"), "{}", r.endpoint);
        assert_eq!(
            r.call_options.as_deref(),
            Some("client=allot-test"),
            "{}",
            r.endpoint
        );
    }
}

#[tokio::test]
async fn expired_session_is_refreshed_once() {
    let em = start(seed(), opts()).await;
    let client = client_credentials(&em.base);
    client
        .update_owners(ObjectKind::Lead, &[(LEAD_1, SF_BOB)])
        .await
        .unwrap();
    em.emulator
        .set_faults(&faults(r#"{"expire_tokens": true}"#));
    let results = client
        .update_owners(ObjectKind::Lead, &[(LEAD_1, SF_ALICE)])
        .await
        .unwrap();
    assert!(results[0].ok);
    let stats = em.emulator.stats();
    assert_eq!(stats.calls["sf.token"], 2);
    assert_eq!(
        stats.calls["sf.composite"], 3,
        "first call, refused call, retry"
    );
}

#[tokio::test]
async fn wrong_credentials_are_an_auth_error() {
    let em = start(seed(), opts()).await;
    let cfg = SalesforceConfig::new(
        &em.base,
        SalesforceAuth::ClientCredentials {
            client_id: "allot-emulator-client".into(),
            client_secret: "wrong".into(),
        },
    );
    let client = SalesforceClient::new(cfg).unwrap();
    let err = client
        .update_owners(ObjectKind::Lead, &[(LEAD_1, SF_BOB)])
        .await
        .unwrap_err();
    assert!(matches!(err, CrmError::Auth { .. }), "{err}");
    assert!(err.to_string().contains("invalid_client"), "{err}");
    assert!(!err.retryable());
}

#[tokio::test]
async fn jwt_bearer_flow_signs_a_verifiable_assertion() {
    let mut o = opts();
    o.salesforce_jwt_public_key_pem = Some(include_str!("fixtures/jwt-test-key.pub.pem").into());
    let em = start(seed(), o).await;
    let jwt = |username: &str| {
        SalesforceClient::new(SalesforceConfig::new(
            &em.base,
            SalesforceAuth::JwtBearer {
                client_id: "allot-emulator-client".into(),
                username: username.into(),
                audience: "https://login.salesforce.com".into(),
                private_key_pem: include_str!("fixtures/jwt-test-key.pem").into(),
            },
        ))
        .unwrap()
    };
    let ok = jwt("bob@acme.example");
    let results = ok
        .update_owners(ObjectKind::Lead, &[(LEAD_3, SF_ALICE)])
        .await
        .unwrap();
    assert!(results[0].ok);
    let lead = em
        .emulator
        .record(Crm::Salesforce, ObjectKind::Lead, LEAD_3)
        .unwrap();
    assert_eq!(
        lead["LastModifiedById"], SF_BOB,
        "the session runs as the JWT subject"
    );

    let err = jwt("nobody@acme.example")
        .get_record(ObjectKind::Lead, LEAD_1, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, CrmError::Auth { .. }), "{err}");
}

#[tokio::test]
async fn batch_limit_quota_and_faults_map_to_errors() {
    let mut o = opts();
    o.salesforce_daily_quota = 2;
    let em = start(seed(), o).await;
    let client = client_credentials(&em.base);

    let too_many: Vec<(String, String)> = (0..201)
        .map(|i| (format!("00Q{i}"), SF_BOB.to_string()))
        .collect();
    let err = client
        .update_owners(ObjectKind::Lead, &too_many)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CrmError::BatchTooLarge {
                max: 200,
                got: 201,
                ..
            }
        ),
        "{err}"
    );
    assert!(client
        .update_owners::<&str, &str>(ObjectKind::Lead, &[])
        .await
        .unwrap()
        .is_empty());

    em.emulator
        .set_faults(&faults(r#"{"error_rates": {"UNABLE_TO_LOCK_ROW": 1.0}}"#));
    let results = client
        .update_owners(ObjectKind::Lead, &[(LEAD_1, SF_BOB)])
        .await
        .unwrap();
    let e = results[0].error.as_ref().unwrap();
    assert_eq!((e.kind, e.retryable), (RecordErrorKind::Locked, true));

    em.emulator
        .set_faults(&faults(r#"{"reset": true, "error_rates": {"503": 1.0}}"#));
    let err = client
        .get_record(ObjectKind::Lead, LEAD_1, &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, CrmError::Api { status: 503, .. }) && err.retryable(),
        "{err}"
    );

    em.emulator.set_faults(&faults(r#"{"reset": true}"#));
    let err = client
        .get_record(ObjectKind::Lead, LEAD_1, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, CrmError::QuotaExhausted { .. }), "{err}");
    assert!(!err.retryable());
    assert_eq!(client.limit_usage(), Some((2, 2)));
}

#[tokio::test]
async fn reads_return_fields_or_none() {
    let em = start(seed(), opts()).await;
    let client = client_credentials(&em.base);
    let lead = client
        .get_record(ObjectKind::Lead, LEAD_1, &["Country", "State", "OwnerId"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lead["Country"], "United States");
    assert_eq!(lead["OwnerId"], SF_ALICE);
    assert_eq!(lead["attributes"]["type"], "Lead");
    assert!(lead.get("Company").is_none(), "only the requested fields");

    let all = client
        .get_record(ObjectKind::Account, ACCOUNT_1, &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(all["Name"], "Atlas Robotics");

    let missing = client
        .get_record(ObjectKind::Lead, "00Q5f000009NOPEAAA", &["Id"])
        .await
        .unwrap();
    assert_eq!(missing, None);
}

#[tokio::test]
async fn users_query_follows_next_records_url() {
    let mut o = opts();
    o.salesforce_query_page_size = 2;
    let em = start(seed(), o).await;
    let client = client_credentials(&em.base);
    let users = client.users().await.unwrap();
    let got: Vec<(&str, bool)> = users.iter().map(|u| (u.id.as_str(), u.active)).collect();
    assert_eq!(
        got,
        vec![(SF_ALICE, true), (SF_BOB, true), (SF_GONE, false)]
    );
    assert_eq!(
        client.active_users().await.unwrap(),
        vec![SF_ALICE.to_string(), SF_BOB.to_string()]
    );
    assert_eq!(
        em.emulator.stats().calls["sf.query"],
        4,
        "two pages per listing"
    );

    em.emulator
        .set_faults(&faults(&format!(r#"{{"inactive_users": ["{SF_BOB}"]}}"#)));
    assert_eq!(
        client.active_users().await.unwrap(),
        vec![SF_ALICE.to_string()]
    );
}

#[tokio::test]
async fn slow_answers_time_out_as_retryable_transport_errors() {
    let mut o = opts();
    o.faults = faults(r#"{"latency_ms": 400}"#);
    let em = start(seed(), o).await;
    let opts = EmulatorOptions::default();
    let mut cfg = SalesforceConfig::new(
        &em.base,
        SalesforceAuth::ClientCredentials {
            client_id: opts.salesforce_client_id,
            client_secret: opts.salesforce_client_secret,
        },
    );
    cfg.timeout = Duration::from_millis(100);
    let client = SalesforceClient::new(cfg).unwrap();
    let err = client
        .get_record(ObjectKind::Lead, LEAD_1, &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, CrmError::Transport { timeout: true, .. }),
        "{err}"
    );
    assert!(err.retryable());
}

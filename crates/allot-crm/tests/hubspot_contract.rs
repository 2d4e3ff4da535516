//! Contract tests of the HubSpot client against the emulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use allot_core::{Crm, ObjectKind};
use allot_crm::{
    CrmClient, CrmError, HubSpotAuth, HubSpotClient, HubSpotConfig, LimitInfo, RecordErrorKind,
};
use allot_emulator::{EmulatorOptions, FaultPatch, HsOwner, Seed};
use support::*;

fn private_app(base: &str) -> HubSpotClient {
    let token = EmulatorOptions::default()
        .hubspot_private_app_token
        .unwrap();
    HubSpotClient::new(HubSpotConfig::new(base, HubSpotAuth::PrivateApp { token })).unwrap()
}

fn oauth(base: &str, refresh_margin: Duration) -> HubSpotClient {
    let o = EmulatorOptions::default();
    let mut cfg = HubSpotConfig::new(
        base,
        HubSpotAuth::OAuth {
            client_id: o.hubspot_client_id,
            client_secret: o.hubspot_client_secret,
            refresh_token: o.hubspot_refresh_token,
        },
    );
    cfg.refresh_margin = refresh_margin;
    HubSpotClient::new(cfg).unwrap()
}

fn faults(json: &str) -> FaultPatch {
    serde_json::from_str(json).unwrap()
}

#[tokio::test]
async fn batch_update_all_ok_then_partial_failure() {
    let em = start(seed(), opts()).await;
    let client = private_app(&em.base);

    let ok = client
        .update_owners(
            ObjectKind::Contact,
            &[(CONTACT_1, HS_DIEGO), (CONTACT_2, HS_MAYA)],
        )
        .await
        .unwrap();
    assert!(ok.iter().all(|r| r.ok), "{ok:?}");
    let c2 = em
        .emulator
        .record(Crm::Hubspot, ObjectKind::Contact, CONTACT_2)
        .unwrap();
    assert_eq!(c2["hubspot_owner_id"], HS_MAYA);

    let updates: Vec<(String, String)> = [
        (CONTACT_1, HS_MAYA),
        (CONTACT_2, "999999"),
        ("70000000999", HS_MAYA),
        ("70000000998", HS_ARCHIVED),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let results = client
        .update_owners(ObjectKind::Contact, &updates)
        .await
        .unwrap();
    let summary: Vec<(bool, Option<&str>, Option<RecordErrorKind>)> = results
        .iter()
        .map(|r| {
            (
                r.ok,
                r.error.as_ref().map(|e| e.code.as_str()),
                r.error.as_ref().map(|e| e.kind),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (true, None, None),
            (
                false,
                Some("INVALID_OWNER_ID"),
                Some(RecordErrorKind::InvalidReference)
            ),
            (
                false,
                Some("OBJECT_NOT_FOUND"),
                Some(RecordErrorKind::NotFound)
            ),
            (
                false,
                Some("OBJECT_NOT_FOUND"),
                Some(RecordErrorKind::NotFound)
            ),
        ]
    );
    assert_eq!(results[1].id, CONTACT_2);
    let stats = em.emulator.stats();
    assert_eq!(stats.records_updated.hubspot, 3);
    assert_eq!(stats.records_rejected.hubspot, 3);
}

#[tokio::test]
async fn archived_owner_is_refused() {
    let em = start(seed(), opts()).await;
    let client = CrmClient::HubSpot(private_app(&em.base));
    assert_eq!(client.max_batch(), 100);
    let results = client
        .update_owners(ObjectKind::Account, &[(COMPANY_1, HS_ARCHIVED)])
        .await
        .unwrap();
    let e = results[0].error.as_ref().unwrap();
    assert_eq!((e.code.as_str(), e.retryable), ("INVALID_OWNER_ID", false));
}

#[tokio::test]
async fn limits_of_the_batch_and_object_kind_are_enforced_before_sending() {
    let em = start(seed(), opts()).await;
    let client = private_app(&em.base);
    let too_many: Vec<(String, &str)> = (0..101).map(|i| (i.to_string(), HS_MAYA)).collect();
    let err = client
        .update_owners(ObjectKind::Contact, &too_many)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CrmError::BatchTooLarge {
                max: 100,
                got: 101,
                ..
            }
        ),
        "{err}"
    );
    let err = client
        .update_owners(ObjectKind::Lead, &[("1", HS_MAYA)])
        .await
        .unwrap_err();
    assert!(matches!(err, CrmError::UnsupportedObject { .. }), "{err}");
    assert!(em.emulator.requests().is_empty());
}

#[tokio::test]
async fn rate_limit_headers_are_tracked_and_429_parsed() {
    let mut o = opts();
    o.hubspot_rate_limit_per_10s = 3;
    let em = start(seed(), o).await;
    let client = private_app(&em.base);
    assert_eq!(client.rate_limit(), None);
    for remaining in [2, 1, 0] {
        client
            .get_record(ObjectKind::Contact, CONTACT_1, &["email"])
            .await
            .unwrap();
        let rate = client.rate_limit().unwrap();
        assert_eq!(
            (rate.max, rate.remaining, rate.interval_ms),
            (3, remaining, 10_000)
        );
    }
    let err = client
        .get_record(ObjectKind::Contact, CONTACT_1, &["email"])
        .await
        .unwrap_err();
    let CrmError::RateLimited {
        policy,
        retry_after,
        ..
    } = &err
    else {
        panic!("expected a rate limit: {err}");
    };
    assert_eq!(policy, "TEN_SECONDLY_ROLLING");
    let wait = retry_after.unwrap();
    assert!(
        wait >= Duration::from_secs(1) && wait <= Duration::from_secs(10),
        "{wait:?}"
    );
    assert!(err.retryable());
    assert!(
        matches!(CrmClient::HubSpot(client).limit_info(), Some(LimitInfo::Hubspot(r)) if r.remaining == 0)
    );
    let stats = em.emulator.stats();
    assert_eq!(stats.rate_limited.hubspot, 1);
    assert_eq!(
        stats.peak_requests_10s.hubspot, 4,
        "refused calls count toward the peak"
    );
}

#[tokio::test]
async fn storms_answer_429_with_retry_after() {
    let em = start(seed(), opts()).await;
    let client = private_app(&em.base);
    em.emulator.set_faults(&faults(
        r#"{"storm": {"requests": 2, "retry_after_secs": 7}}"#,
    ));
    for _ in 0..2 {
        let err = client
            .update_owners(ObjectKind::Contact, &[(CONTACT_1, HS_DIEGO)])
            .await
            .unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)), "{err}");
        assert!(
            matches!(&err, CrmError::RateLimited { policy, .. } if policy == "TEN_SECONDLY_ROLLING")
        );
    }
    let ok = client
        .update_owners(ObjectKind::Contact, &[(CONTACT_1, HS_DIEGO)])
        .await
        .unwrap();
    assert!(ok[0].ok);

    em.emulator
        .set_faults(&faults(r#"{"storm": {"requests": 1, "policy": "DAILY"}}"#));
    let err = client
        .get_record(ObjectKind::Contact, CONTACT_1, &[])
        .await
        .unwrap_err();
    assert!(matches!(&err, CrmError::RateLimited { policy, .. } if policy == "DAILY"));
    assert!(!err.retryable());
}

#[tokio::test]
async fn oauth_tokens_are_refreshed_ahead_of_expiry() {
    // (refresh margin, calls, expected token requests): a margin longer than
    // the 1800 s lifetime refreshes before every call.
    let cases = [
        (Duration::from_secs(300), 3, 1),
        (Duration::from_secs(3_600), 3, 3),
    ];
    for (margin, calls, refreshes) in cases {
        let em = start(seed(), opts()).await;
        let client = oauth(&em.base, margin);
        for _ in 0..calls {
            client
                .get_record(ObjectKind::Account, COMPANY_1, &["name"])
                .await
                .unwrap();
        }
        assert_eq!(
            em.emulator.stats().calls["hs.token"],
            refreshes,
            "margin {margin:?}"
        );
    }
}

#[tokio::test]
async fn oauth_refreshes_once_after_a_refused_token() {
    let em = start(seed(), opts()).await;
    let client = oauth(&em.base, Duration::from_secs(60));
    client
        .get_record(ObjectKind::Contact, CONTACT_1, &[])
        .await
        .unwrap();
    em.emulator
        .set_faults(&faults(r#"{"expire_tokens": true}"#));
    let record = client
        .get_record(ObjectKind::Contact, CONTACT_1, &[])
        .await
        .unwrap();
    assert!(record.is_some());
    assert_eq!(em.emulator.stats().calls["hs.token"], 2);

    let o = EmulatorOptions::default();
    let bad = HubSpotClient::new(HubSpotConfig::new(
        &em.base,
        HubSpotAuth::OAuth {
            client_id: o.hubspot_client_id,
            client_secret: o.hubspot_client_secret,
            refresh_token: "revoked".into(),
        },
    ))
    .unwrap();
    let err = bad
        .get_record(ObjectKind::Contact, CONTACT_1, &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, CrmError::Auth { .. }) && err.to_string().contains("BAD_REFRESH_TOKEN"),
        "{err}"
    );
}

#[tokio::test]
async fn reads_return_properties_or_none() {
    let em = start(seed(), opts()).await;
    let client = private_app(&em.base);
    let props = client
        .get_record(
            ObjectKind::Contact,
            CONTACT_1,
            &["country", "hubspot_owner_id", "phone"],
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(props["country"], "Germany");
    assert_eq!(props["hubspot_owner_id"], HS_MAYA);
    assert_eq!(props["phone"], serde_json::Value::Null);
    assert_eq!(props["hs_object_id"], CONTACT_1);
    assert_eq!(
        client
            .get_record(ObjectKind::Contact, "1", &[])
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn owners_are_paged_and_split_by_archived() {
    let mut seed: Seed = seed();
    seed.hubspot.owners = (0..250)
        .map(|i| HsOwner {
            id: (800_000 + i).to_string(),
            user_id: Some(4_000_000 + i),
            email: format!("rep{i}@acme.example"),
            first_name: "Rep".into(),
            last_name: i.to_string(),
            archived: i % 50 == 0,
        })
        .collect();
    seed.hubspot.contacts.clear();
    seed.hubspot.companies.clear();
    let em = start(seed, opts()).await;
    let client = private_app(&em.base);
    let active = client.owners(false).await.unwrap();
    assert_eq!(active.len(), 245);
    assert_eq!(active[0].id, "800001");
    assert_eq!(active[0].user_id, Some(4_000_001));
    let archived = client.owners(true).await.unwrap();
    assert_eq!(archived.len(), 5);
    assert!(archived.iter().all(|o| o.archived));
    assert_eq!(em.emulator.stats().calls["hs.owners"], 3 + 1);

    let users = CrmClient::HubSpot(client).users().await.unwrap();
    assert_eq!(users.len(), 250);
    assert_eq!(users.iter().filter(|u| !u.active).count(), 5);
    assert_eq!(users[0].name.as_deref(), Some("Rep 1"));
}

#[tokio::test]
async fn injected_server_errors_are_retryable() {
    let em = start(seed(), opts()).await;
    let client = private_app(&em.base);
    em.emulator.set_faults(&faults(
        r#"{"error_rates": {"500": 1.0}, "error_side": "hubspot"}"#,
    ));
    let err = client
        .update_owners(ObjectKind::Contact, &[(CONTACT_1, HS_DIEGO)])
        .await
        .unwrap_err();
    assert!(matches!(err, CrmError::Api { status: 500, .. }), "{err}");
    assert!(err.retryable());
}

#[tokio::test]
async fn an_owner_with_a_negative_user_id_does_not_sink_the_page() {
    let mut seed: Seed = seed();
    seed.hubspot.owners[1].user_id = Some(-4_512_002);
    let em = start(seed, opts()).await;
    let client = private_app(&em.base);
    let active = client.owners(false).await.unwrap();
    let ids: Vec<(&str, Option<i64>)> = active.iter().map(|o| (o.id.as_str(), o.user_id)).collect();
    assert_eq!(
        ids,
        [(HS_MAYA, Some(4_512_001)), (HS_DIEGO, Some(-4_512_002))]
    );
    let users = CrmClient::HubSpot(client).users().await.unwrap();
    assert_eq!(users.len(), 3);
}

#[tokio::test]
async fn an_input_a_207_leaves_out_but_applied_is_confirmed_by_a_read() {
    let em = start(seed(), opts()).await;
    let client = private_app(&em.base);
    em.emulator.set_faults(&faults(
        r#"{"error_rates": {"OMIT_FROM_207": 1.0}, "error_side": "hubspot"}"#,
    ));
    let results = client
        .update_owners(
            ObjectKind::Contact,
            &[(CONTACT_1, HS_DIEGO), (CONTACT_2, HS_MAYA)],
        )
        .await
        .unwrap();
    assert!(results.iter().all(|r| r.ok), "{results:?}");
    let calls = em.emulator.stats().calls;
    assert_eq!(calls["hs.batch_update"], 1);
    assert_eq!(calls["hs.batch_read"], 1, "{calls:?}");
    let c1 = em
        .emulator
        .record(Crm::Hubspot, ObjectKind::Contact, CONTACT_1)
        .unwrap();
    assert_eq!(c1["hubspot_owner_id"], HS_DIEGO);
}

#[tokio::test]
async fn an_input_a_207_leaves_out_unapplied_is_retryable_and_lands_when_sent_again() {
    let em = start(seed(), opts()).await;
    let client = private_app(&em.base);
    em.emulator.set_faults(&faults(
        r#"{"error_rates": {"DROP_FROM_207": 1.0}, "error_side": "hubspot"}"#,
    ));
    let results = client
        .update_owners(ObjectKind::Contact, &[(CONTACT_1, HS_DIEGO)])
        .await
        .unwrap();
    let e = results[0].error.as_ref().expect("not confirmed");
    assert!(!results[0].ok);
    assert_eq!((e.code.as_str(), e.retryable), ("UNANSWERED", true));
    assert!(
        e.message.contains(HS_MAYA),
        "names what the read saw: {}",
        e.message
    );
    let c1 = em
        .emulator
        .record(Crm::Hubspot, ObjectKind::Contact, CONTACT_1)
        .unwrap();
    assert_eq!(c1["hubspot_owner_id"], HS_MAYA, "not applied");

    em.emulator.set_faults(&faults(r#"{"reset": true}"#));
    let again = client
        .update_owners(ObjectKind::Contact, &[(CONTACT_1, HS_DIEGO)])
        .await
        .unwrap();
    assert!(again[0].ok, "{again:?}");
    let c1 = em
        .emulator
        .record(Crm::Hubspot, ObjectKind::Contact, CONTACT_1)
        .unwrap();
    assert_eq!(c1["hubspot_owner_id"], HS_DIEGO);
}

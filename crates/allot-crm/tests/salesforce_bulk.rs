//! Bulk API 2.0 query jobs of the Salesforce client against the emulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use allot_core::{Crm, ObjectKind};
use allot_crm::salesforce::{bulk_soql, BulkState};
use allot_crm::{CrmError, SalesforceAuth, SalesforceClient, SalesforceConfig};
use allot_emulator::{EmulatorOptions, Seed};
use serde_json::Value;
use support::*;

fn client(base: &str, api_version: &str) -> SalesforceClient {
    let opts = EmulatorOptions::default();
    let mut cfg = SalesforceConfig::new(
        base,
        SalesforceAuth::ClientCredentials {
            client_id: opts.salesforce_client_id,
            client_secret: opts.salesforce_client_secret,
        },
    );
    cfg.api_version = api_version.into();
    cfg.timeout = Duration::from_secs(30);
    SalesforceClient::new(cfg).unwrap()
}

/// The small seed plus 3,000 generated records of each kind.
fn big_seed() -> Seed {
    let mut seed = seed();
    seed.generate(3000);
    seed
}

/// Polls until the job is no longer running; its last state and the
/// number of polls that answered `Running`.
async fn wait(client: &SalesforceClient, job: &str) -> (BulkState, usize) {
    let mut running = 0;
    for _ in 0..50 {
        match client.bulk_query_state(job).await.unwrap() {
            BulkState::Running(state) => {
                assert!(
                    matches!(state.as_str(), "UploadComplete" | "InProgress"),
                    "{state}"
                );
                running += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            done => return (done, running),
        }
    }
    panic!("job {job} still running after 50 polls");
}

#[tokio::test]
async fn every_lead_arrives_once_with_its_owner() {
    let seed = big_seed();
    let expected: HashMap<String, Option<String>> = seed
        .salesforce
        .leads
        .iter()
        .map(|l| {
            let id = l["Id"].as_str().unwrap().to_string();
            (
                id,
                l.get("OwnerId").and_then(Value::as_str).map(str::to_string),
            )
        })
        .collect();
    assert!(expected.len() >= 3000, "{}", expected.len());
    assert!(
        expected.values().all(Option::is_some),
        "every seeded lead has an owner"
    );
    let em = start(seed, opts()).await;
    let client = client(&em.base, "62.0");

    let soql = bulk_soql(ObjectKind::Lead, &["OwnerId"], None).unwrap();
    assert_eq!(soql, "SELECT Id,OwnerId FROM Lead");
    let job = client.bulk_query_start(&soql).await.unwrap();
    assert!(job.starts_with("750"), "{job}");
    let (done, running) = wait(&client, &job).await;
    assert!(running >= 1, "the job was complete before any poll");
    assert_eq!(
        done,
        BulkState::Complete {
            records: expected.len() as u64
        }
    );

    let mut seen: HashMap<String, (usize, Option<String>)> = HashMap::new();
    let mut locator: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = client
            .bulk_query_page(&job, locator.as_deref(), 1000)
            .await
            .unwrap();
        pages += 1;
        assert!(page.records.len() <= 1000);
        for (id, fields) in page.records {
            assert_eq!(fields["Id"], Value::String(id.clone()));
            let owner = fields["OwnerId"].as_str().map(str::to_string);
            let entry = seen.entry(id).or_insert((0, owner.clone()));
            entry.0 += 1;
        }
        match page.next {
            Some(next) => {
                assert_ne!(
                    Some(&next),
                    locator.as_ref(),
                    "a locator that does not move"
                );
                locator = Some(next);
            }
            None => break,
        }
        assert!(pages < 100, "more pages than the rows need");
    }
    assert_eq!(pages, expected.len().div_ceil(1000));
    let twice: Vec<&String> = seen
        .iter()
        .filter(|(_, (n, _))| *n != 1)
        .map(|(id, _)| id)
        .collect();
    assert!(twice.is_empty(), "ids seen more than once: {twice:?}");
    let got: HashMap<String, Option<String>> = seen
        .into_iter()
        .map(|(id, (_, owner))| (id, owner))
        .collect();
    assert_eq!(got.len(), expected.len());
    for (id, owner) in &expected {
        assert_eq!(got.get(id), Some(owner), "lead {id}");
    }

    let stats = em.emulator.stats();
    assert_eq!(stats.calls["sf.bulk.create"], 1);
    assert_eq!(stats.calls["sf.bulk.results"], pages as u64);
    let (used, _) = client.limit_usage().expect("Sforce-Limit-Info seen");
    assert_eq!(used, stats.salesforce_api_usage);
}

#[tokio::test]
async fn a_since_in_the_future_selects_nothing() {
    let em = start(big_seed(), opts()).await;
    let client = client(&em.base, "62.0");
    let soql = bulk_soql(ObjectKind::Lead, &["OwnerId"], Some("2999-01-01T00:00:00Z")).unwrap();
    assert_eq!(
        soql,
        "SELECT Id,OwnerId FROM Lead WHERE SystemModstamp > 2999-01-01T00:00:00Z"
    );
    let job = client.bulk_query_start(&soql).await.unwrap();
    let (done, _) = wait(&client, &job).await;
    assert_eq!(done, BulkState::Complete { records: 0 });
    let page = client.bulk_query_page(&job, None, 1000).await.unwrap();
    assert!(page.records.is_empty());
    assert_eq!(page.next, None);

    // A past instant selects the whole book again.
    let soql = bulk_soql(
        ObjectKind::Account,
        &["OwnerId"],
        Some("2000-01-01T00:00:00Z"),
    )
    .unwrap();
    let job = client.bulk_query_start(&soql).await.unwrap();
    let (done, _) = wait(&client, &job).await;
    assert!(
        matches!(done, BulkState::Complete { records } if records >= 3000),
        "{done:?}"
    );
}

#[tokio::test]
async fn failed_and_aborted_jobs_and_refusals_are_clear() {
    let em = start(seed(), opts()).await;
    let client = client(&em.base, "62.0");

    let job = client
        .bulk_query_start("SELECT Id FROM Lead GROUP BY Id")
        .await
        .unwrap();
    match wait(&client, &job).await.0 {
        BulkState::Failed(m) => assert!(m.contains("MALFORMED_QUERY"), "{m}"),
        other => panic!("{other:?}"),
    }

    let job = client
        .bulk_query_start("SELECT Id FROM Lead")
        .await
        .unwrap();
    client.bulk_query_abort(&job).await.unwrap();
    match client.bulk_query_state(&job).await.unwrap() {
        BulkState::Failed(m) => assert!(m.contains("aborted"), "{m}"),
        other => panic!("{other:?}"),
    }
    let e = client.bulk_query_abort(&job).await.unwrap_err();
    assert!(matches!(e, CrmError::Api { status: 400, .. }), "{e}");

    let e = client
        .bulk_query_state("7505f000000NOPEAAA")
        .await
        .unwrap_err();
    match e {
        CrmError::Api { status, code, .. } => {
            assert_eq!((status, code.as_str()), (404, "NOT_FOUND"))
        }
        other => panic!("{other}"),
    }
    let e = client
        .bulk_query_state("750/../sobjects")
        .await
        .unwrap_err();
    assert!(matches!(e, CrmError::Config { .. }), "{e}");
    let e = bulk_soql(ObjectKind::Lead, &["OwnerId"], Some("yesterday")).unwrap_err();
    assert!(
        matches!(
            e,
            CrmError::Config {
                crm: Crm::Salesforce,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn results_are_read_at_the_jobs_version_and_need_an_id_column() {
    let em = start(seed(), opts()).await;
    let client = client(&em.base, "62.0");
    let job = client
        .bulk_query_start(&bulk_soql(ObjectKind::Lead, &["OwnerId", "Company"], None).unwrap())
        .await
        .unwrap();
    assert_eq!(
        wait(&client, &job).await.0,
        BulkState::Complete { records: 3 }
    );

    let older = self::client(&em.base, "61.0");
    let e = older.bulk_query_page(&job, None, 1000).await.unwrap_err();
    match e {
        CrmError::Api {
            status,
            ref message,
            ..
        } => {
            assert_eq!(status, 409, "{e}");
            assert!(message.contains("62.0"), "{message}");
        }
        other => panic!("{other}"),
    }
    let page = client.bulk_query_page(&job, None, 2).await.unwrap();
    assert_eq!(page.records.len(), 2);
    assert_eq!(page.records[0].0, LEAD_1);
    assert_eq!(page.records[0].1["Company"], "Cardinal");
    let rest = client
        .bulk_query_page(&job, page.next.as_deref(), 2)
        .await
        .unwrap();
    assert_eq!(rest.records.len(), 1);
    assert_eq!(rest.records[0].0, LEAD_3);
    assert_eq!(rest.records[0].1["OwnerId"], SF_BOB);
    assert_eq!(rest.next, None);

    let job = client
        .bulk_query_start("SELECT OwnerId FROM Lead")
        .await
        .unwrap();
    wait(&client, &job).await;
    let e = client.bulk_query_page(&job, None, 1000).await.unwrap_err();
    match e {
        CrmError::Decode { ref message, .. } => {
            assert!(message.contains("without an Id column"), "{message}");
        }
        other => panic!("{other}"),
    }
}

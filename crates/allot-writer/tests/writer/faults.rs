//! A misbehaving CRM: per-record failures, inactive owners, the daily
//! quota, and a crash between send and acknowledgement.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::common::*;
use allot_core::{Crm, ObjectKind};
use allot_emulator::{EmulatorOptions, FaultPatch};
use allot_store::{OutboxKey, OutboxState};
use allot_writer::WriterConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_failures_are_failed_or_retried_each_on_its_own() {
    let emu = emulator(seed(300, 0), EmulatorOptions::default()).await;
    emu.emulator.set_faults(&FaultPatch {
        error_rates: Some(BTreeMap::from([
            ("UNABLE_TO_LOCK_ROW".to_string(), 0.3),
            ("503".to_string(), 0.2),
        ])),
        rng_seed: Some(11),
        ..FaultPatch::default()
    });
    let store = store();
    let mut changes = lead_changes(290, BOB, 1_000);
    let unknown: Vec<_> = (290..300)
        .map(|i| change(Crm::Salesforce, ObjectKind::Lead, &lead(i), NOBODY, 1_000))
        .collect();
    changes.extend(unknown.iter().cloned());
    put_all(&store, &changes);
    let config = WriterConfig {
        max_attempts: 30,
        ..quick_config()
    };
    let w = spawn(store.clone(), vec![emu.salesforce()], config);
    assert!(wait_for(Duration::from_secs(25), || settled(&store, &changes)).await);
    let m = w.stop().await.unwrap();
    let failed_metric = m
        .failed
        .with_label_values(&["salesforce", "invalid_reference"]);
    assert_eq!(failed_metric.get(), 10);
    assert!(m.retries.with_label_values(&["salesforce"]).get() > 0);

    let stats = emu.emulator.stats();
    assert!(
        stats.records_rejected.salesforce > 10,
        "locks were injected: {stats:?}"
    );
    assert!(stats.faults_injected.salesforce > 0, "{stats:?}");
    for c in &changes[..290] {
        assert_eq!(
            emu.owner(Crm::Salesforce, ObjectKind::Lead, &c.record_id)
                .as_deref(),
            Some(BOB)
        );
    }
    let failed = store.failed_writes(100).unwrap();
    assert_eq!(failed.len(), 10);
    for f in &failed {
        assert_eq!(f.change.owner, NOBODY);
        assert_eq!(f.code, "invalid_reference");
        assert_eq!(
            f.reason,
            "INVALID_CROSS_REFERENCE_KEY: invalid cross reference id"
        );
        assert_eq!(
            emu.owner(Crm::Salesforce, ObjectKind::Lead, &f.change.record_id)
                .as_deref(),
            Some(ALICE)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inactive_owner_goes_to_the_reroute_log_in_the_commit_of_its_failure() {
    let emu = emulator(seed(3, 0), EmulatorOptions::default()).await;
    let store = store();
    let gone = change(Crm::Salesforce, ObjectKind::Lead, &lead(0), GONE, 1_000);
    let fine = change(Crm::Salesforce, ObjectKind::Lead, &lead(1), BOB, 1_000);
    put_all(&store, &[gone.clone(), fine.clone()]);
    let config = WriterConfig {
        reroute_log: Some("reroutes".into()),
        ..quick_config()
    };
    let w = spawn(store.clone(), vec![emu.salesforce()], config);
    assert!(
        wait_for(Duration::from_secs(10), || settled(
            &store,
            &[gone.clone(), fine.clone()]
        ))
        .await
    );
    let m = w.stop().await.unwrap();
    let inactive = m
        .failed
        .with_label_values(&["salesforce", "inactive_owner"]);
    assert_eq!(inactive.get(), 1);
    let failed = store.failed_writes(10).unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].code, "inactive_owner");
    assert_eq!(
        store.failed_write_counts().unwrap().get("inactive_owner"),
        Some(&1)
    );
    assert!(
        failed[0].reason.starts_with("INACTIVE_OWNER_OR_USER: "),
        "{}",
        failed[0].reason
    );
    assert_eq!(
        emu.owner(Crm::Salesforce, ObjectKind::Lead, &lead(1))
            .as_deref(),
        Some(BOB)
    );
    // Exactly one refusal event, about the refused change only.
    let log = store.log("reroutes").read(0, 10).unwrap();
    assert_eq!(log.len(), 1, "one refusal");
    let event: allot_core::ChangeEvent = serde_json::from_slice(&log[0].1).unwrap();
    assert_eq!(event.change, allot_core::ChangeKind::OwnerRefused);
    assert_eq!(event.record_id.as_deref(), Some(gone.record_id.as_str()));
    assert_eq!(event.source, Crm::Salesforce);
    let (owner, previous) = event.refusal().unwrap();
    assert_eq!(
        (owner.as_str(), previous),
        (GONE, gone.previous_owner.clone())
    );
    assert!(
        event.fields["reason"]
            .as_text()
            .unwrap()
            .starts_with("INACTIVE_OWNER_OR_USER"),
        "{event:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_salesforce_quota_stops_writing_without_looping() {
    let opts = EmulatorOptions {
        salesforce_daily_quota: 50,
        salesforce_api_usage_start: 50,
        ..EmulatorOptions::default()
    };
    let emu = emulator(seed(100, 20), opts).await;
    let store = store();
    let leads = lead_changes(100, BOB, 1_000);
    let contacts = contact_changes(20, DIEGO, 1_000);
    put_all(&store, &leads);
    put_all(&store, &contacts);
    let config = WriterConfig {
        quota_pause_ms: 60_000,
        ..quick_config()
    };
    let w = spawn(store.clone(), vec![emu.salesforce(), emu.hubspot()], config);
    // HubSpot is not held up by Salesforce's quota.
    assert!(wait_for(Duration::from_secs(10), || settled(&store, &contacts)).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        w.metrics
            .quota_exhausted
            .with_label_values(&["salesforce"])
            .get(),
        1
    );
    assert_eq!(
        w.metrics
            .quota_exhausted
            .with_label_values(&["hubspot"])
            .get(),
        0
    );
    assert_eq!(w.calls("salesforce", "quota_exhausted"), 1);
    w.stop().await.unwrap();
    assert_eq!(emu.calls("sf.composite"), 1, "one call, then a long pause");
    assert!(store.failed_writes(10).unwrap().is_empty());
    for c in &leads {
        let e = store.outbox_get(&OutboxKey::of(c)).unwrap().unwrap();
        assert!(e.state.is_open(), "{:?}", e.state);
        assert_eq!(
            emu.owner(Crm::Salesforce, ObjectKind::Lead, &c.record_id)
                .as_deref(),
            Some(ALICE)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_send_and_ack_loses_nothing_and_keeps_order() {
    let emu = emulator(seed(300, 0), EmulatorOptions::default()).await;
    // The first writer's updates reach the CRM 1.5 s after they are sent,
    // long after that writer is gone.
    let proxy = laggy_proxy(&emu.base).await;
    proxy.delay_ms.store(1_500, Ordering::SeqCst);
    let store = store();
    let first = lead_changes(300, BOB, 1_000);
    put_all(&store, &first);
    // Waiting the fence out would take longer than the test waits: the
    // newer decisions go once a read shows the late writes have landed.
    let config = WriterConfig {
        in_flight_timeout_ms: 60_000,
        linger_ms: 0,
        ..quick_config()
    };
    let w = spawn(
        store.clone(),
        vec![emu.salesforce_via(&proxy)],
        config.clone(),
    );
    let in_flight = |c: &allot_core::OwnerChange| {
        let e = store.outbox_get(&OutboxKey::of(c)).unwrap().unwrap();
        matches!(e.state, OutboxState::InFlight { .. })
    };
    assert!(
        wait_for(Duration::from_secs(10), || in_flight(&first[0])
            && in_flight(&first[299]))
        .await
    );
    // The updates are sent and not yet answered: crash.
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.task.abort();
    let _ = w.task.await;
    assert_eq!(emu.emulator.stats().records_updated.salesforce, 0);
    // Newer decisions for some records arrive while the old writes are on their way.
    let newer: Vec<_> = (0..300)
        .step_by(6)
        .map(|i| change(Crm::Salesforce, ObjectKind::Lead, &lead(i), CAROL, 2_000))
        .collect();
    put_all(&store, &newer);
    let w = spawn(store.clone(), vec![emu.salesforce()], config);
    assert!(
        wait_for(Duration::from_secs(20), || settled(&store, &first)
            && settled(&store, &newer))
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics = w.stop().await.unwrap();
    // Each newer decision waited until a read showed its record's late write.
    let lifted = metrics
        .fences_lifted
        .with_label_values(&["salesforce"])
        .get();
    assert_eq!(lifted, 50);

    assert!(store.failed_writes(10).unwrap().is_empty());
    // 300 late writes from the crashed writer, 250 requeued, 50 newer.
    assert_eq!(emu.emulator.stats().records_updated.salesforce, 600);
    for i in 0..300 {
        let want = if i % 6 == 0 { CAROL } else { BOB };
        assert_eq!(
            emu.owner(Crm::Salesforce, ObjectKind::Lead, &lead(i))
                .as_deref(),
            Some(want),
            "lead {i}"
        );
        let key = OutboxKey::new(ObjectKind::Lead, &lead(i));
        let entry = store.outbox_get(&key).unwrap().unwrap();
        assert_eq!(entry.state, OutboxState::Done);
        assert_eq!(entry.change.owner, want);
    }
}

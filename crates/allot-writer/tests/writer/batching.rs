//! Batching, coalescing, pacing, 429 storms, reads that replace writes,
//! shutdown.

use std::time::{Duration, Instant};

use super::common::*;
use allot_core::{Crm, ObjectKind};
use allot_emulator::{EmulatorOptions, FaultPatch, Storm};
use allot_store::{OutboxKey, OutboxState};
use allot_writer::WriterConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_fill_to_each_crm_limit() {
    let emu = emulator(seed(500, 250), EmulatorOptions::default()).await;
    let store = store();
    let mut changes = lead_changes(500, BOB, 1_000);
    changes.extend(contact_changes(250, DIEGO, 1_000));
    put_all(&store, &changes);
    let w = spawn(
        store.clone(),
        vec![emu.salesforce(), emu.hubspot()],
        quick_config(),
    );
    assert!(wait_for(Duration::from_secs(20), || settled(&store, &changes)).await);
    w.stop().await.unwrap();

    let stats = emu.emulator.stats();
    assert!(emu.calls("sf.composite") <= 3, "{:?}", stats.calls);
    assert_eq!(emu.calls("hs.batch_update"), 3, "{:?}", stats.calls);
    assert!(stats.max_records_per_call.salesforce <= 200);
    assert!(stats.max_records_per_call.hubspot <= 100);
    assert_eq!(stats.records_updated.salesforce, 500);
    assert_eq!(stats.records_updated.hubspot, 250);
    for c in &changes {
        let crm = c.crm.unwrap();
        assert_eq!(
            emu.owner(crm, c.object, &c.record_id).as_deref(),
            Some(c.owner.as_str())
        );
    }
    // Every write is in the echo ledger.
    let (owner, _) = store
        .recent_write(ObjectKind::Lead, &lead(7))
        .unwrap()
        .unwrap();
    assert_eq!(owner, BOB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_newest_decision_per_record_is_written() {
    let emu = emulator(seed(3, 0), EmulatorOptions::default()).await;
    let store = store();
    let id = lead(1);
    let older = change(Crm::Salesforce, ObjectKind::Lead, &id, BOB, 1_000);
    let newer = change(Crm::Salesforce, ObjectKind::Lead, &id, CAROL, 2_000);
    let stale = change(Crm::Salesforce, ObjectKind::Lead, &id, ALICE, 1_500);
    put_all(&store, &[older, newer.clone(), stale]);
    let w = spawn(store.clone(), vec![emu.salesforce()], quick_config());
    assert!(
        wait_for(Duration::from_secs(10), || settled(
            &store,
            std::slice::from_ref(&newer)
        ))
        .await
    );
    w.stop().await.unwrap();

    assert_eq!(emu.calls("sf.composite"), 1);
    assert_eq!(emu.emulator.stats().records_updated.salesforce, 1);
    assert_eq!(
        emu.owner(Crm::Salesforce, ObjectKind::Lead, &id).as_deref(),
        Some(CAROL)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_calls_stay_within_the_configured_window() {
    // N = 10 calls per 10 s; 16 full batches need more than one window.
    const N: u64 = 10;
    let emu = emulator(seed(0, 1_600), EmulatorOptions::default()).await;
    let store = store();
    let changes = contact_changes(1_600, DIEGO, 1_000);
    put_all(&store, &changes);
    let mut config = quick_config();
    config.hubspot.calls_per_10s = N as u32;
    let started = Instant::now();
    let w = spawn(store.clone(), vec![emu.hubspot()], config);
    assert!(wait_for(Duration::from_secs(28), || settled(&store, &changes)).await);
    let elapsed = started.elapsed();
    w.stop().await.unwrap();

    let stats = emu.emulator.stats();
    assert_eq!(emu.calls("hs.batch_update"), 16);
    assert!(
        stats.peak_requests_10s.hubspot <= N,
        "peak {}",
        stats.peak_requests_10s.hubspot
    );
    assert!(
        stats.peak_requests_10s.hubspot >= N - 2,
        "budget unused: {}",
        stats.peak_requests_10s.hubspot
    );
    assert_eq!(stats.rate_limited.hubspot, 0);
    assert!(elapsed > Duration::from_secs(10), "{elapsed:?}");
    assert_eq!(stats.records_updated.hubspot, 1_600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_is_waited_out_with_retry_after() {
    let emu = emulator(seed(0, 300), EmulatorOptions::default()).await;
    emu.emulator.set_faults(&FaultPatch {
        storm: Some(Storm {
            side: allot_emulator::Side::Hubspot,
            requests: Some(3),
            duration_ms: None,
            retry_after_secs: 1,
            policy: "TEN_SECONDLY_ROLLING".into(),
        }),
        ..FaultPatch::default()
    });
    let store = store();
    let changes = contact_changes(300, DIEGO, 1_000);
    put_all(&store, &changes);
    let started = Instant::now();
    let w = spawn(store.clone(), vec![emu.hubspot()], quick_config());
    assert!(wait_for(Duration::from_secs(20), || settled(&store, &changes)).await);
    let elapsed = started.elapsed();

    let m = w.stop().await.unwrap();

    let stats = emu.emulator.stats();
    assert_eq!(stats.rate_limited.hubspot, 3);
    let rate_limited = m.calls.with_label_values(&["hubspot", "rate_limited"]);
    assert_eq!(rate_limited.get(), 3);
    assert_eq!(m.changes_written.with_label_values(&["hubspot"]).get(), 300);
    assert!(m.retries.with_label_values(&["hubspot"]).get() >= 300);
    // Each 429 paused the lane for its Retry-After of 1 s.
    assert!(elapsed >= Duration::from_secs(3), "{elapsed:?}");
    assert!(store.failed_writes(10).unwrap().is_empty());
    for c in &changes {
        assert_eq!(
            emu.owner(Crm::Hubspot, c.object, &c.record_id).as_deref(),
            Some(DIEGO)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_the_crm_already_shows_is_read_not_written() {
    let emu = emulator(seed(2, 0), EmulatorOptions::default()).await;
    let store = store();
    let mut same = change(Crm::Salesforce, ObjectKind::Lead, &lead(0), ALICE, 1_000);
    same.previous_owner = Some(ALICE.into());
    put_all(&store, std::slice::from_ref(&same));
    let w = spawn(store.clone(), vec![emu.salesforce()], quick_config());
    assert!(
        wait_for(Duration::from_secs(10), || settled(
            &store,
            std::slice::from_ref(&same)
        ))
        .await
    );
    let m = w.stop().await.unwrap();
    assert_eq!(m.skipped.with_label_values(&["salesforce"]).get(), 1);
    assert_eq!(emu.calls("sf.composite"), 0);
    assert_eq!(emu.calls("sf.composite.read"), 1, "one batched read");
    let entry = store.outbox_get(&OutboxKey::of(&same)).unwrap().unwrap();
    assert_eq!(entry.state, OutboxState::Done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_settles_the_call_in_flight() {
    let emu = emulator(seed(50, 0), EmulatorOptions::default()).await;
    emu.emulator.set_faults(&FaultPatch {
        latency_ms: Some(600),
        ..FaultPatch::default()
    });
    let store = store();
    let changes = lead_changes(50, BOB, 1_000);
    put_all(&store, &changes);
    let config = WriterConfig {
        linger_ms: 0,
        ..quick_config()
    };
    let w = spawn(store.clone(), vec![emu.salesforce()], config);
    let in_flight = || {
        let e = store
            .outbox_get(&OutboxKey::of(&changes[0]))
            .unwrap()
            .unwrap();
        matches!(e.state, OutboxState::InFlight { .. })
    };
    assert!(wait_for(Duration::from_secs(10), in_flight).await);
    w.stop().await.unwrap();
    assert!(
        settled(&store, &changes),
        "the call was answered and settled before stopping"
    );
    assert_eq!(emu.emulator.stats().records_updated.salesforce, 50);
}

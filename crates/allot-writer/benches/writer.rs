//! Writer throughput against the CRM emulator on 127.0.0.1, at 0 ms and
//! 50 ms of added latency per call: owner changes written per second, per
//! call, and the 429s received.
//!
//! Salesforce: a backlog fed as fast as the store takes it (pacing ceiling
//! raised to 1,000 calls per 10 s so the writer, not the pacing, is measured).
//! HubSpot: changes offered at 1,000 per second for 12 s against the
//! emulator's 100 calls per 10 s, the writer configured for that tier (it
//! uses 90 % of it): steady state, more offered than allowed.
//!
//! Run: `cargo bench -p allot-writer --bench writer`
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/writer/common.rs"]
mod writer_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use allot_core::{Crm, OwnerChange};
use allot_emulator::{EmulatorOptions, FaultPatch};
use allot_store::Store;
use allot_writer::WriterConfig;
use writer_common::*;

const SF_CHANGES: usize = 20_000;
const HS_RATE_PER_SEC: usize = 1_000;
const HS_SECONDS: usize = 12;

struct Figures {
    name: String,
    changes: usize,
    secs: f64,
    calls: u64,
    rate_limited: u64,
    peak_10s: u64,
    max_per_call: u64,
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for latency in [0, 50] {
        rows.push(rt.block_on(salesforce(latency)));
        rows.push(rt.block_on(hubspot(latency)));
    }
    println!(
        "\n{:<28} {:>8} {:>7} {:>10} {:>6} {:>9} {:>8} {:>5} {:>9}",
        "scenario",
        "changes",
        "secs",
        "changes/s",
        "calls",
        "per call",
        "max/call",
        "429s",
        "peak/10s"
    );
    for f in rows {
        println!(
            "{:<28} {:>8} {:>7.2} {:>10.0} {:>6} {:>9.1} {:>8} {:>5} {:>9}",
            f.name,
            f.changes,
            f.secs,
            f.changes as f64 / f.secs,
            f.calls,
            f.changes as f64 / f.calls.max(1) as f64,
            f.max_per_call,
            f.rate_limited,
            f.peak_10s,
        );
    }
}

fn open_store() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("store")).unwrap());
    (dir, store)
}

async fn with_latency(emu: &Emu, latency_ms: u64) {
    emu.emulator.set_faults(&FaultPatch {
        latency_ms: Some(latency_ms),
        ..FaultPatch::default()
    });
}

async fn salesforce(latency_ms: u64) -> Figures {
    let emu = emulator(seed(SF_CHANGES, 0), EmulatorOptions::default()).await;
    with_latency(&emu, latency_ms).await;
    let (_dir, store) = open_store();
    let changes = lead_changes(SF_CHANGES, BOB, 1_000);
    let mut config = WriterConfig::default();
    config.salesforce.calls_per_10s = 1_000;
    let started = Instant::now();
    let w = spawn(store.clone(), vec![emu.salesforce()], config);
    for chunk in changes.chunks(1_000) {
        put_all(&store, chunk);
        w.wake.notify_one();
    }
    let done = wait_for(Duration::from_secs(300), || settled(&store, &changes)).await;
    let secs = started.elapsed().as_secs_f64();
    w.stop().await.unwrap();
    assert!(done, "salesforce backlog written");
    figures(
        &emu,
        Crm::Salesforce,
        format!("salesforce latency={latency_ms}ms"),
        SF_CHANGES,
        secs,
    )
}

async fn hubspot(latency_ms: u64) -> Figures {
    let total = HS_RATE_PER_SEC * HS_SECONDS;
    let emu = emulator(seed(0, total), EmulatorOptions::default()).await;
    with_latency(&emu, latency_ms).await;
    let (_dir, store) = open_store();
    let changes: Vec<OwnerChange> = contact_changes(total, DIEGO, 1_000);
    let mut config = WriterConfig::default();
    config.hubspot.calls_per_10s = EmulatorOptions::default().hubspot_rate_limit_per_10s as u32;
    let started = Instant::now();
    let w = spawn(store.clone(), vec![emu.hubspot()], config);
    // Offer 100 changes every 100 ms.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for chunk in changes.chunks(HS_RATE_PER_SEC / 10) {
        tick.tick().await;
        put_all(&store, chunk);
        w.wake.notify_one();
    }
    let done = wait_for(Duration::from_secs(300), || settled(&store, &changes)).await;
    let secs = started.elapsed().as_secs_f64();
    w.stop().await.unwrap();
    assert!(done, "hubspot changes written");
    figures(
        &emu,
        Crm::Hubspot,
        format!("hubspot latency={latency_ms}ms"),
        total,
        secs,
    )
}

fn figures(emu: &Emu, crm: Crm, name: String, changes: usize, secs: f64) -> Figures {
    let stats = emu.emulator.stats();
    let endpoint = if crm == Crm::Hubspot {
        "hs.batch_update"
    } else {
        "sf.composite"
    };
    Figures {
        name,
        changes,
        secs,
        calls: emu.calls(endpoint),
        rate_limited: stats.rate_limited.get(crm),
        peak_10s: stats.peak_requests_10s.get(crm),
        max_per_call: stats.max_records_per_call.get(crm),
    }
}

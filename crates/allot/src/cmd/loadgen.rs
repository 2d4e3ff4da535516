//! `allot loadgen`: realistic Salesforce CDC events into the embedded
//! pipeline, as fast as possible or at a set rate, with the figures printed:
//! throughput, latency from the event being durable in the log to its
//! decision being committed, and memory.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use allot_core::{ObjectKind, Value};
use allot_rules::{gen, RuleSet};
use allot_services::embedded::EmbeddedIngest;
use allot_services::metrics::Metrics;
use allot_services::pipeline::EchoConfig;
use allot_services::raw::{RawEntry, INGEST_GROUP, RAW_LOG};
use allot_store::Store;
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// Events to send (each a new lead).
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Events per second; 0 sends as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Territories in the generated rule set.
    #[arg(long, default_value_t = 1_000)]
    territories: usize,
    /// Log entries per store commit.
    #[arg(long, default_value_t = 256)]
    chunk: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The store's page cache, MiB (embedded mode).
    #[arg(long, default_value_t = allot_store::DEFAULT_CACHE_BYTES / (1024 * 1024))]
    cache_mb: u64,
    /// End to end: leads created in the built-in CRM emulator, owners
    /// written back to it; latency is creation → owner written.
    #[arg(long)]
    e2e: bool,
    /// With --e2e: run the ingest, assign and write stages over the
    /// Kafka-protocol broker at this address instead of the embedded log.
    #[arg(long, requires = "e2e")]
    broker: Option<String>,
    /// With --e2e: how long a partial write batch waits for more changes.
    #[arg(long, default_value_t = 20)]
    linger_ms: u64,
    /// With --e2e: Salesforce calls per 10 s the writer paces to (default:
    /// the writer's, 200).
    #[arg(long)]
    calls_per_10s: Option<u32>,
    /// With --broker: librdkafka `fetch.wait.max.ms` of the stages' consumers.
    #[arg(long, default_value_t = 10)]
    fetch_wait_ms: u64,
    /// With --e2e: the rules (they must name the emulator's users).
    #[arg(long, default_value = "config/rules.toml")]
    rules: std::path::PathBuf,
    /// With --e2e: the emulator's seed.
    #[arg(long, default_value = "config/emulator-seed.json")]
    seed_file: std::path::PathBuf,
}

/// A Salesforce CDC CREATE event (CometD shape) for generated lead `i`.
fn cdc(seed: u64, i: u64) -> String {
    let r = gen::record(seed, i, ObjectKind::Lead);
    let f = |k: &str| r.fields.get(k).cloned().unwrap_or(Value::Null);
    json!({"schema": "load", "payload": {"ChangeEventHeader": {"entityName": "Lead", "recordIds": [r.id], "changeType": "CREATE",
        "changeOrigin": "com/salesforce/api/rest/62.0;client=web-to-lead", "transactionKey": format!("lt{i}"), "sequenceNumber": 1,
        "commitTimestamp": 1_760_000_000_000u64 + i, "commitNumber": i, "commitUser": "005000000000001", "changedFields": []},
        "Address": {"Country": f("country"), "PostalCode": f("postal_code")}, "Industry": f("industry"),
        "NumberOfEmployees": f("employees"), "AnnualRevenue": f("annual_revenue"), "Company": f("company"), "Email": f("email")},
        "event": {"replayId": i + 1}, "channel": "/data/LeadChangeEvent"})
    .to_string()
}

pub fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if a.e2e {
        return super::loadgen_e2e::run(super::loadgen_e2e::E2e {
            records: a.events,
            rate: a.rate,
            broker: a.broker,
            chunk: a.chunk,
            linger_ms: a.linger_ms,
            fetch_wait_ms: a.fetch_wait_ms,
            calls_per_10s: a.calls_per_10s,
            rules: a.rules,
            seed_file: a.seed_file,
            seed: a.seed,
        });
    }
    let dir = tempfile::tempdir()?;
    let store = Arc::new(
        Store::open_with_cache(dir.path(), a.cache_mb * 1024 * 1024)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let rules = Arc::new(
        RuleSet::from_toml(
            &gen::rules_toml(&gen::GenSpec::new(a.territories, a.seed)),
            "generated",
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let mut ingest = EmbeddedIngest::offline(
        store.clone(),
        rules,
        EchoConfig::new("allot", None),
        Metrics::new(),
        a.chunk,
    )?;
    let log = store.log(RAW_LOG);
    let entry = |i: u64| {
        serde_json::to_vec(&RawEntry {
            v: 1,
            format: "salesforce".into(),
            source: "loadgen".into(),
            received_at: 0,
            body: cdc(a.seed, i),
        })
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut latencies: Vec<Duration> = Vec::new();
    let (mut decisions, started);
    if a.rate == 0 {
        // Everything in the log first, then one timed drain.
        for start in (0..a.events).step_by(10_000) {
            let batch: Vec<Vec<u8>> = (start..(start + 10_000).min(a.events))
                .map(entry)
                .collect::<Result<_, _>>()?;
            log.append_batch(&batch)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        eprintln!("loadgen: {} events in the log; draining …", a.events);
        started = Instant::now();
        decisions = rt.block_on(ingest.drain())?.decisions;
    } else {
        // Producer and pipeline interleaved on one thread, paced by the clock:
        // each tick appends what the rate owes, then the pipeline catches up.
        started = Instant::now();
        decisions = 0;
        let mut sent_at: HashMap<u64, Instant> = HashMap::new();
        let mut sent = 0u64;
        rt.block_on(async {
            while sent < a.events || log.committed(INGEST_GROUP)? < a.events {
                let owed = ((started.elapsed().as_secs_f64() * a.rate as f64) as u64).min(a.events);
                if owed > sent {
                    let batch: Vec<Vec<u8>> = (sent..owed).map(entry).collect::<Result<_, _>>()?;
                    let now = Instant::now();
                    for off in log
                        .append_batch(&batch)
                        .map_err(|e| anyhow::anyhow!("{e}"))?
                    {
                        sent_at.insert(off, now);
                    }
                    sent = owed;
                }
                let before = log.committed(INGEST_GROUP)?;
                let r = ingest.step().await?;
                decisions += r.decisions;
                let done = Instant::now();
                for off in before..log.committed(INGEST_GROUP)? {
                    if let Some(t) = sent_at.remove(&off) {
                        latencies.push(done - t);
                    }
                }
                if r.entries == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            Ok::<_, anyhow::Error>(())
        })?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "loadgen: embedded mode, {} territories, chunk {}",
        a.territories, a.chunk
    );
    println!("  events      {}", a.events);
    println!("  decisions   {decisions}");
    println!("  seconds     {secs:.2}");
    println!("  events/s    {:.0}", a.events as f64 / secs);
    if !latencies.is_empty() {
        latencies.sort();
        let p = |q: f64| {
            latencies[((latencies.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1000.0
        };
        println!("  latency ms  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  (event durable in the log → decision committed)", p(0.5), p(0.9), p(0.99), p(1.0));
    }
    println!(
        "  records     {}",
        store.record_count().map_err(|e| anyhow::anyhow!("{e}"))?
    );
    println!("  RSS MB      {:.0}", rss_mb());
    Ok(ExitCode::SUCCESS)
}

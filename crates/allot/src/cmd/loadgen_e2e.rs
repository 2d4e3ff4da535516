//! `allot loadgen --e2e`: leads created in the built-in CRM emulator (at a
//! set rate or as fast as possible) travel the whole way — the emulator's
//! Salesforce CDC events into the embedded log, or onto a raw topic of a
//! Kafka-protocol broker through the ingest, assign and write stages — until
//! their new owner is written back to the emulator's REST API. The write is
//! seen as the change event the emulator emits for it, so the latency
//! printed is creation in the CRM → owner written in the CRM.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use allot_bus::{KafkaConfig, KafkaSink, KafkaSource};
use allot_core::{Crm, ObjectKind, Value as Field};
use allot_emulator::{
    EmittedEvent, Emulator, EmulatorOptions, EventSink, Seed, Stats, UpsertRecord,
};
use allot_rules::{gen, RuleSet};
use allot_services::embedded::EmbeddedIngest;
use allot_services::hydrate::Hydrator;
use allot_services::metrics::Metrics;
use allot_services::pipeline::{EchoConfig, FieldMaps, Pipeline};
use allot_services::raw::{RawEntry, RAW_LOG};
use allot_services::stages::{self, assign::AssignStage, ingest::IngestStage, write::WriteStage};
use allot_store::Store;
use allot_writer::WriterConfig;
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::{watch, Notify};

use super::run::stopped;

/// What `allot loadgen --e2e` is asked to do.
pub struct E2e {
    pub records: u64,
    pub rate: u64,
    pub broker: Option<String>,
    pub chunk: usize,
    pub linger_ms: u64,
    pub fetch_wait_ms: u64,
    pub calls_per_10s: Option<u32>,
    pub rules: PathBuf,
    pub seed_file: PathBuf,
    pub seed: u64,
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Creation and write-back instants per record id.
#[derive(Default)]
struct Clock {
    created: HashMap<String, Instant>,
    written: HashMap<String, Instant>,
}

/// The record id and whether it is allot's own write, of a CDC event body.
fn classify(body: &[u8]) -> Option<(String, bool)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let h = &v["payload"]["ChangeEventHeader"];
    let id = h["recordIds"].get(0)?.as_str()?.to_string();
    let own = h["changeType"] == "UPDATE"
        && h["changeOrigin"]
            .as_str()
            .is_some_and(|o| o.contains("client=allot"));
    Some((id, own))
}

/// A lead's REST fields, from generated record `i`.
fn lead(seed: u64, i: u64) -> Map<String, Value> {
    let r = gen::record(seed, i, ObjectKind::Lead);
    let text = |k: &str| match r.fields.get(k) {
        Some(Field::Str(s)) => Value::from(s.as_str()),
        Some(Field::Num(n)) if n.fract() == 0.0 => Value::from(*n as i64),
        Some(Field::Num(n)) => Value::from(*n),
        _ => Value::Null,
    };
    let mut m = Map::new();
    m.insert("LastName".into(), format!("Load{i}").into());
    m.insert("Company".into(), text("company"));
    m.insert("Country".into(), text("country"));
    m.insert("PostalCode".into(), text("postal_code"));
    m.insert("Industry".into(), text("industry"));
    m.insert("NumberOfEmployees".into(), text("employees"));
    m.insert("Email".into(), format!("lead{i}@load{i}.example").into());
    m
}

pub fn run(a: E2e) -> anyhow::Result<ExitCode> {
    crate::telemetry::init(&crate::config::TelemetryCfg {
        log_format: crate::config::LogFormat::Pretty,
        level: "warn".into(),
        otlp_endpoint: String::new(),
        otlp_protocol: String::new(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(drive(a))
}

async fn drive(a: E2e) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let text = std::fs::read_to_string(&a.rules)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.rules.display()))?;
    let rules = Arc::new(RuleSet::from_toml(&text, &a.rules.display().to_string()).map_err(err)?);
    let seed = Seed::load(&a.seed_file).map_err(err)?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let opts = EmulatorOptions {
        events: EventSink::Channel(tx),
        salesforce_daily_quota: 10_000_000,
        ..EmulatorOptions::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let emulator = Emulator::new(seed, opts.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut w = Wiring {
        a: &a,
        rules: rules.clone(),
        metrics: Metrics::new(),
        stop_rx,
        tasks: Vec::new(),
    };
    w.serve_emulator(&emulator, listener);
    let clients = super::serve::emulator_clients(&url, &opts, "allot");
    let writer_cfg = writer_config(&a);
    let pacing = writer_cfg.salesforce.calls_per_10s;
    let clock = Arc::new(Mutex::new(Clock::default()));

    // Where the emulator's change events go: the embedded log, or a raw topic.
    let route = match &a.broker {
        None => w.embedded(dir.path())?,
        Some(bootstrap) => w.stages(bootstrap, dir.path()).await?,
    };
    w.tasks.push(super::run_writer::spawn(
        route.writer_store,
        clients,
        writer_cfg,
        &w.metrics,
        &allot_crm::Budgets::default(),
        route.ready,
        stopped(&w.stop_rx),
    )?);
    w.tasks
        .push(tokio::spawn(pass_on(rx, clock.clone(), route.forward)));

    // Create the leads, paced by the clock.
    let started = Instant::now();
    let made = create_leads(&emulator, &a, &clock, started).await?;
    let created_in = started.elapsed();
    eprintln!("loadgen: {made} leads created in {created_in:.1?}; waiting for their owners to be written …");
    let deadline = Instant::now() + Duration::from_secs(120) + created_in * 2;
    wait_for_owners(&clock, a.records, deadline).await;
    let stats = emulator.stats();
    if std::env::var_os("ALLOT_LOADGEN_METRICS").is_some() {
        eprintln!("{}", w.metrics.render());
    }
    let _ = stop_tx.send(true);
    for t in w.tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    let c = clock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(report(&a, &rules, pacing, &c, started, &stats))
}

/// Passes a batch of change events (body, key) on to where ingest reads them.
type Forward = Box<dyn Fn(Vec<(Vec<u8>, String)>) + Send + Sync>;

/// What a mode gives: its forwarder, and the store (and wake-up) the writer works from.
struct Route {
    forward: Forward,
    writer_store: Arc<Store>,
    ready: Arc<Notify>,
}

/// What the tasks of one load run are wired with.
struct Wiring<'a> {
    a: &'a E2e,
    rules: Arc<RuleSet>,
    metrics: Metrics,
    stop_rx: watch::Receiver<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Wiring<'_> {
    /// Serves the emulator's REST API on `listener` until the run stops.
    fn serve_emulator(&mut self, emulator: &Emulator, listener: TcpListener) {
        self.tasks.push(tokio::spawn({
            let (e, stop) = (emulator.clone(), stopped(&self.stop_rx));
            async move {
                let _ = e.serve(listener, stop).await;
            }
        }));
    }

    /// Embedded mode: the pipeline over a store in `dir`, fed by appending
    /// the change events to its raw log.
    fn embedded(&mut self, dir: &Path) -> anyhow::Result<Route> {
        let store = Arc::new(Store::open(dir).map_err(err)?);
        let ingest = EmbeddedIngest::offline(
            store.clone(),
            self.rules.clone(),
            EchoConfig::new("allot", None),
            self.metrics.clone(),
            self.a.chunk,
        )?;
        let ready = ingest.outbox_ready.clone();
        self.tasks.push(tokio::spawn({
            let stop = stopped(&self.stop_rx);
            async move {
                if let Err(e) = ingest.run(stop).await {
                    eprintln!("loadgen: ingest stopped: {e}");
                }
            }
        }));
        let writer_store = store.clone();
        // As the webhook endpoint does: whatever arrived together, one append.
        let forward: Forward = Box::new(move |events| {
            let now = allot_services::now_ms();
            let entries: Vec<Vec<u8>> = events
                .into_iter()
                .filter_map(|(body, _)| {
                    serde_json::to_vec(&RawEntry {
                        v: 1,
                        format: "salesforce".into(),
                        source: "loadgen".into(),
                        received_at: now,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    })
                    .ok()
                })
                .collect();
            if let Err(e) = store.log(RAW_LOG).append_batch(&entries) {
                eprintln!("loadgen: cannot log events: {e}");
            }
        });
        Ok(Route {
            forward,
            writer_store,
            ready,
        })
    }

    /// Broker mode: the ingest, assign and write stages over topics of the
    /// broker at `bootstrap` (each with a store in `dir`), fed by producing
    /// the change events to the raw topic.
    async fn stages(&mut self, bootstrap: &str, dir: &Path) -> anyhow::Result<Route> {
        let a = self.a;
        let topics = format!("loadgen-{}", std::process::id());
        let raw_topic = format!("{topics}.raw");
        // Short fetch waits: each hop costs up to fetch.wait.max.ms on a
        // broker that holds fetches for the whole wait.
        let bus = |group: &str| KafkaConfig {
            session_timeout_ms: 6_000,
            heartbeat_interval_ms: 1_000,
            properties: [("fetch.wait.max.ms".to_string(), a.fetch_wait_ms.to_string())].into(),
            ..KafkaConfig::new(bootstrap, &format!("{topics}-{group}"))
        };
        let (events, decisions, dlq) = (
            format!("{topics}.events"),
            format!("{topics}.decisions"),
            format!("{topics}.dlq"),
        );
        allot_bus::ensure_topics_with(
            &bus("admin"),
            &[
                (raw_topic.as_str(), 3),
                (events.as_str(), 3),
                (decisions.as_str(), 3),
                (dlq.as_str(), 1),
            ],
            allot_bus::BROKER_DEFAULT_REPLICATION,
        )
        .await
        .map_err(err)?;
        let open = |name: &str| -> anyhow::Result<Arc<Store>> {
            let p = dir.join(name);
            std::fs::create_dir_all(&p)?;
            Ok(Arc::new(Store::open(&p).map_err(err)?))
        };
        let sink = KafkaSink::new(&bus("producer")).map_err(err)?;
        let ingest = IngestStage {
            store: open("ingest")?,
            source: KafkaSource::subscribe(&bus("ingest"), &[&raw_topic]).map_err(err)?,
            sink: sink.clone(),
            events_topic: events.clone(),
            dlq_topic: dlq.clone(),
            formats: HashMap::from([(raw_topic.clone(), allot_events::Format::SalesforceCdc)]),
            metrics: self.metrics.clone(),
        };
        let pipeline = Pipeline::new(
            open("assign")?,
            self.rules.clone(),
            FieldMaps::default(),
            EchoConfig::new("allot", None),
            Hydrator::Off,
            self.metrics.clone(),
        )?;
        let assign = AssignStage::new(
            pipeline,
            KafkaSource::subscribe(&bus("assign"), &[&events]).map_err(err)?,
            sink.clone(),
            &decisions,
            &dlq,
            None,
        );
        let write_store = open("write")?;
        let ready = Arc::new(Notify::new());
        let write = WriteStage {
            store: write_store.clone(),
            source: KafkaSource::subscribe(&bus("write"), &[&decisions]).map_err(err)?,
            sink: sink.clone(),
            dlq_topic: dlq.clone(),
            metrics: self.metrics.clone(),
            outbox_ready: ready.clone(),
        };
        self.run_stages(ingest, assign, write);
        Ok(Route {
            forward: produce_to(sink, raw_topic),
            writer_store: write_store,
            ready,
        })
    }

    /// Runs the three stages until the run stops, reporting a stage that fails.
    fn run_stages(&mut self, ingest: IngestStage, assign: AssignStage, write: WriteStage) {
        let (chunk, linger) = (self.a.chunk, Duration::from_millis(5));
        let stop_rx = &self.stop_rx;
        for t in [
            tokio::spawn(stages::run(ingest, chunk, linger, stopped(stop_rx))),
            tokio::spawn(stages::run(assign, chunk, linger, stopped(stop_rx))),
            tokio::spawn(stages::run(write, chunk, linger, stopped(stop_rx))),
        ] {
            self.tasks.push(tokio::spawn(async move {
                if let Ok(Err(e)) = t.await {
                    eprintln!("loadgen: stage stopped: {e}");
                }
            }));
        }
    }
}

/// A forwarder producing each event to `topic` with `sink`.
fn produce_to(sink: KafkaSink, topic: String) -> Forward {
    let handle = tokio::runtime::Handle::current();
    Box::new(move |events| {
        for (body, key) in events {
            let (sink, topic) = (sink.clone(), topic.clone());
            handle.spawn(async move {
                if let Err(e) = sink.send(&topic, key.as_bytes(), &body, &[]).await {
                    eprintln!("loadgen: cannot produce an event: {e}");
                }
            });
        }
    })
}

/// The writer's configuration: `--linger-ms`, and the Salesforce pacing when set.
fn writer_config(a: &E2e) -> WriterConfig {
    let mut writer_cfg = WriterConfig {
        linger_ms: a.linger_ms,
        ..WriterConfig::default()
    };
    if let Some(n) = a.calls_per_10s {
        writer_cfg.salesforce.calls_per_10s = n;
    }
    writer_cfg
}

/// Passes every change event the emulator emits on (echoes included, as a
/// connector would), timing allot's own writes.
async fn pass_on(
    mut rx: UnboundedReceiver<EmittedEvent>,
    clock: Arc<Mutex<Clock>>,
    forward: Forward,
) {
    while let Some(first) = rx.recv().await {
        let mut got = vec![first];
        while got.len() < 1_000 {
            match rx.try_recv() {
                Ok(ev) => got.push(ev),
                Err(_) => break,
            }
        }
        let now = Instant::now();
        let mut out = Vec::with_capacity(got.len());
        for ev in got.into_iter().filter(|e| e.crm == Crm::Salesforce) {
            if let Some((id, true)) = classify(&ev.body) {
                clock
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .written
                    .entry(id)
                    .or_insert(now);
            }
            out.push((ev.body, ev.key));
        }
        forward(out);
    }
}

/// Creates the leads in the emulator at `--rate` from `started` (all at
/// once when 0), noting when each was created; returns how many were.
async fn create_leads(
    emulator: &Emulator,
    a: &E2e,
    clock: &Mutex<Clock>,
    started: Instant,
) -> anyhow::Result<u64> {
    let mut made = 0u64;
    while made < a.records {
        let owed = if a.rate == 0 {
            a.records
        } else {
            ((started.elapsed().as_secs_f64() * a.rate as f64) as u64 + 1).min(a.records)
        };
        while made < owed {
            let view = emulator
                .upsert_record(UpsertRecord {
                    crm: Crm::Salesforce,
                    object: ObjectKind::Lead,
                    id: None,
                    fields: lead(a.seed, made),
                })
                .map_err(err)?;
            clock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .created
                .insert(view.id, Instant::now());
            made += 1;
        }
        if a.rate > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    Ok(made)
}

/// Waits until `records` leads have their owner written, or the deadline.
async fn wait_for_owners(clock: &Mutex<Clock>, records: u64, deadline: Instant) {
    loop {
        let done = {
            let c = clock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            c.created
                .keys()
                .filter(|k| c.written.contains_key(*k))
                .count()
        };
        if done as u64 >= records || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creation → write-back latencies, sorted, of the leads created at `from` or later.
fn latencies(c: &Clock, from: Option<Instant>) -> Vec<Duration> {
    let mut lat: Vec<Duration> = c
        .created
        .iter()
        .filter(|(_, t0)| from.is_none_or(|f| **t0 >= f))
        .filter_map(|(id, t0)| Some(c.written.get(id)?.saturating_duration_since(*t0)))
        .collect();
    lat.sort();
    lat
}

/// Prints the run's figures; the exit code says whether every owner was written.
fn report(
    a: &E2e,
    rules: &RuleSet,
    pacing: u32,
    c: &Clock,
    started: Instant,
    stats: &Stats,
) -> ExitCode {
    let lat = latencies(c, None);
    // The same after the first two seconds (client log-in, first batches).
    let steady = latencies(c, Some(started + Duration::from_secs(2)));
    let last = c.written.values().max().copied().unwrap_or(started);
    let secs = last
        .saturating_duration_since(started)
        .as_secs_f64()
        .max(1e-9);
    let written = lat.len();
    let calls = stats.calls.get("sf.composite").copied().unwrap_or(0);
    let updated = stats.records_updated.salesforce;
    println!(
        "loadgen: end to end ({}), {} rules version {}, chunk {}, writer linger {} ms, Salesforce pacing {} calls/10 s",
        if a.broker.is_some() {
            "stages over the broker"
        } else {
            "embedded"
        },
        a.rules.display(),
        rules.version,
        a.chunk,
        a.linger_ms,
        pacing
    );
    println!("  leads created      {}", a.records);
    println!("  owners written     {written}");
    println!("  seconds            {secs:.2}  (first creation → last owner written)");
    println!("  records/s          {:.0}", written as f64 / secs);
    for (name, l) in [("latency ms", &lat), ("  after 2 s", &steady)] {
        if l.is_empty() {
            continue;
        }
        let p = |q: f64| l[((l.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1000.0;
        println!(
            "  {name:<17}  p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  (created in the CRM → owner written in the CRM; {} leads)",
            p(0.5),
            p(0.9),
            p(0.99),
            p(1.0),
            l.len()
        );
    }
    println!(
        "  CRM write calls    {calls}  ({:.1} changes per call, {} records updated, {} rejected, {} rate-limited)",
        updated as f64 / calls.max(1) as f64,
        updated,
        stats.records_rejected.salesforce,
        stats.rate_limited.salesforce
    );
    println!("  RSS MB             {:.0}", super::loadgen::rss_mb());
    if (written as u64) < a.records {
        eprintln!(
            "loadgen: only {written} of {} owners written before the deadline",
            a.records
        );
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

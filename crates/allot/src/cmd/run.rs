//! `allot run`: every stage in one process over the embedded durable log,
//! with the built-in CRM emulator when `crm.mode = "emulator"`.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use allot_bus::{KafkaSink, KafkaSource};
use allot_core::Crm;
use allot_crm::Budgets;
use allot_crm::{
    CrmClient, HubSpotAuth, HubSpotClient, HubSpotConfig, SalesforceAuth, SalesforceClient,
    SalesforceConfig,
};
use allot_emulator::{EmittedEvent, Emulator, EmulatorOptions, EventSink, Seed};
use allot_rules::RuleSet;
use allot_services::admin::{AdminCtx, Auth};
use allot_services::api::{self, ApiState};
use allot_services::control::SyncCtx;
use allot_services::control::{ControlHandle, Controller};
use allot_services::embedded::EmbeddedIngest;
use allot_services::hydrate::Hydrator;
use allot_services::kafka::KafkaIngest;
use allot_services::metrics::Metrics;
use allot_services::pipeline::{FieldMaps, Pipeline};
use allot_services::raw::{RawEntry, RAW_LOG};
use allot_services::reader::ReadPolicy;
use allot_services::webhooks::{self, KafkaTarget, WebhookState};
use allot_store::Store;
use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::{watch, Notify};
use tracing::{error, info, warn};

use crate::config::{self, AppConfig, CrmMode, HubSpotAuthKind, SalesforceAuthKind, Secrets};

#[derive(clap::Args)]
pub struct Args {
    /// Folder holding default.toml (and <env>.toml).
    #[arg(long, default_value = "config")]
    config_dir: PathBuf,
    /// Overlay config/<env>.toml (also ALLOT_ENV).
    #[arg(long)]
    env: Option<String>,
    /// Do not feed the demo stream.
    #[arg(long)]
    no_demo: bool,
    /// Stop by itself after this many seconds (for scripted runs).
    #[arg(long)]
    for_secs: Option<u64>,
}

pub fn run(a: Args, vars: HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let env = a.env.clone().or_else(|| vars.get("ALLOT_ENV").cloned());
    let (mut cfg, secrets) = config::load(&a.config_dir, env.as_deref(), &vars)?;
    if a.no_demo {
        cfg.emulator.demo_stream = false;
    }
    crate::telemetry::init(&cfg.telemetry);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(serve(cfg, secrets, a.for_secs));
    // The spans still buffered are exported before the process exits.
    drop(rt);
    crate::telemetry::shutdown();
    result.map(|()| ExitCode::SUCCESS)
}

/// A future that resolves once shutdown is signalled.
pub fn stopped(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// Serves `app` on `listener` until shutdown is signalled, then lets
/// requests in progress finish.
pub fn spawn_http(
    listener: TcpListener,
    app: axum::Router,
    limits: allot_services::http::HttpLimits,
    stop_rx: &watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let stop = stopped(stop_rx);
    tokio::spawn(allot_services::http::serve(listener, app, limits, stop))
}

async fn serve(mut cfg: AppConfig, secrets: Secrets, for_secs: Option<u64>) -> anyhow::Result<()> {
    if cfg.crm.mode == CrmMode::Emulator {
        use_emulator_store(&mut cfg)?;
    }
    std::fs::create_dir_all(&cfg.store.path)
        .with_context(|| format!("cannot create {}", cfg.store.path.display()))?;
    let store = Arc::new(Store::open(&cfg.store.path).map_err(|e| anyhow::anyhow!("{e}"))?);
    let rules = Arc::new(startup_rules(&cfg, &store)?);
    let mut metrics = Metrics::new();
    metrics.store_size = allot_services::retention::StoreSize::new(cfg.store.max_bytes);
    let (stop_tx, stop_rx) = watch::channel(false);
    let api_listener = TcpListener::bind(cfg.api.listen)
        .await
        .with_context(|| format!("api.listen {}", cfg.api.listen))?;
    let api_addr = api_listener.local_addr()?;
    // The port bound (api.listen may ask for any: port 0) is the one the
    // API answers for.
    cfg.api.listen = api_addr;
    let mut w = Wiring {
        cfg: &cfg,
        secrets: &secrets,
        store: store.clone(),
        rules: rules.clone(),
        metrics,
        stop_rx: stop_rx.clone(),
        api_addr,
        tasks: Vec::new(),
    };

    // The CRM: the emulator, or the real ones.
    let crm = match cfg.crm.mode == CrmMode::Emulator {
        true => w.emulator().await?,
        false => Crms {
            clients: real_clients(&cfg, &secrets)?,
            emulator_url: None,
            hubspot_secret: secrets.hubspot_client_secret.clone(),
        },
    };
    w.check_owners(&crm.clients);

    // One request budget per CRM: hydration reads and owner writes share it.
    let budgets = Budgets::new(&crm.clients, &cfg.writer);
    let pipeline = w.pipeline(&crm.clients, &budgets)?;
    let outbox_ready = Arc::new(Notify::new());
    let control = match cfg.kafka.enabled {
        true => {
            w.kafka_ingest(pipeline, &outbox_ready, &crm.clients, &budgets)
                .await?
        }
        false => w.embedded_ingest(pipeline, &outbox_ready, &crm.clients, &budgets),
    };
    w.tasks.push(crate::cmd::run_writer::spawn(
        store.clone(),
        crm.clients.clone(),
        cfg.writer.clone(),
        &w.metrics,
        &budgets,
        outbox_ready,
        stopped(&stop_rx),
    )?);
    w.prune_dedupe();

    let app = w.app(crm.hubspot_secret, control)?;
    w.tasks
        .push(spawn_http(api_listener, app, cfg.api.limits, &stop_rx));
    print_banner(&cfg, &rules, api_addr, crm.emulator_url.as_deref());
    if let (Some(url), true) = (&crm.emulator_url, cfg.emulator.demo_stream) {
        w.demo_stream(url);
    }
    let tasks = w.tasks;
    until_stopped(for_secs).await;
    shut_down(stop_tx, tasks, &store, &cfg).await
}

/// Points `store.path` at `<store.path>-emulator` and clears it: the
/// emulator's org lives in memory and starts afresh (same ids, same replay
/// ids), so its state must too.
fn use_emulator_store(cfg: &mut AppConfig) -> anyhow::Result<()> {
    let mut p = cfg.store.path.clone().into_os_string();
    p.push("-emulator");
    cfg.store.path = PathBuf::from(p);
    if cfg.store.path.exists() {
        std::fs::remove_dir_all(&cfg.store.path)
            .with_context(|| format!("cannot clear {}", cfg.store.path.display()))?;
    }
    Ok(())
}

/// Reads and checks the rules at `rules.path` (logging their warnings) and
/// returns the rules in force in `store`.
fn startup_rules(cfg: &AppConfig, store: &Store) -> anyhow::Result<RuleSet> {
    let rules_text = std::fs::read_to_string(&cfg.rules.path)
        .with_context(|| format!("cannot read rules {}", cfg.rules.path.display()))?;
    let origin = cfg.rules.path.display().to_string();
    let file_rules = RuleSet::from_toml(&rules_text, &origin)
        .map_err(|e| anyhow::anyhow!("invalid rules:\n{e}"))?;
    for w in &file_rules.warnings {
        warn!(warning = %w.render(&origin), "rules");
    }
    rules_in_force(store, file_rules, &rules_text, &origin)
}

/// The CRM clients `allot run` works with, and what the API needs of them.
struct Crms {
    clients: Vec<CrmClient>,
    /// The built-in emulator's base URL, when it runs.
    emulator_url: Option<String>,
    /// The secret HubSpot webhook signatures are checked with.
    hubspot_secret: Option<String>,
}

/// What the tasks of `allot run` are wired with.
struct Wiring<'a> {
    cfg: &'a AppConfig,
    secrets: &'a Secrets,
    store: Arc<Store>,
    rules: Arc<RuleSet>,
    metrics: Metrics,
    stop_rx: watch::Receiver<bool>,
    /// Where the API (and webhooks) listen.
    api_addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Wiring<'_> {
    /// Starts the built-in CRM emulator and the forwarder of its change
    /// events; returns clients of both its CRMs.
    async fn emulator(&mut self) -> anyhow::Result<Crms> {
        let cfg = self.cfg;
        let listener = TcpListener::bind(cfg.emulator.listen)
            .await
            .with_context(|| format!("emulator.listen {}", cfg.emulator.listen))?;
        let url = format!("http://{}", listener.local_addr()?);
        let mut seed = Seed::load(&cfg.emulator.seed).map_err(|e| anyhow::anyhow!("{e}"))?;
        seed.generate(cfg.emulator.generate);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut opts = EmulatorOptions {
            webhook_url: (!cfg.kafka.enabled)
                .then(|| format!("http://{}/webhooks/hubspot", self.api_addr)),
            events: EventSink::Channel(tx),
            ..EmulatorOptions::default()
        };
        if let Ok(app) = cfg.ingest.hubspot_app_id.parse() {
            opts.hubspot_app_id = app;
        }
        let hubspot_secret = Some(opts.hubspot_client_secret.clone());
        let (sf, hs) = emulator_configs(&url, &opts, &cfg.ingest.salesforce_client_id);
        let emulator = Emulator::new(seed, opts);
        self.tasks.push(tokio::spawn({
            let stop = stopped(&self.stop_rx);
            async move {
                if let Err(e) = emulator.serve(listener, stop).await {
                    error!(error = %e, "emulator stopped");
                }
            }
        }));
        self.forward_emulator_events(rx)?;
        let clients = vec![
            CrmClient::Salesforce(SalesforceClient::new(sf)?),
            CrmClient::HubSpot(HubSpotClient::new(hs)?),
        ];
        Ok(Crms {
            clients,
            emulator_url: Some(url),
            hubspot_secret,
        })
    }

    /// Sends change events from the emulator where a connector would put
    /// them: Kafka topics in Kafka mode; else Salesforce CDC into the log
    /// (HubSpot events arrive as signed webhooks).
    fn forward_emulator_events(
        &mut self,
        rx: UnboundedReceiver<EmittedEvent>,
    ) -> anyhow::Result<()> {
        let cfg = self.cfg;
        let log_store = self.store.clone();
        let producer = match cfg.kafka.enabled {
            true => Some(KafkaSink::new(&cfg.kafka.bus()).map_err(|e| anyhow::anyhow!("{e}"))?),
            false => None,
        };
        let topics = (
            cfg.kafka.topic_for("salesforce").map(str::to_string),
            cfg.kafka.topic_for("hubspot").map(str::to_string),
        );
        self.tasks.push(tokio::spawn(forward_events(
            rx, producer, topics, log_store,
        )));
        Ok(())
    }

    /// Reports reps the CRMs do not know (or have deactivated) before routing.
    fn check_owners(&mut self, clients: &[CrmClient]) {
        let (rules, clients) = (self.rules.clone(), clients.to_vec());
        self.tasks.push(tokio::spawn(async move {
            crate::cmd::check_owners::check(&rules, &clients).await
        }));
    }

    /// The pipeline over the rules in force, with its hydrator (reading
    /// parked records within `budgets`) or without when `ingest.hydrate` is off.
    fn pipeline(&mut self, clients: &[CrmClient], budgets: &Budgets) -> anyhow::Result<Pipeline> {
        let cfg = self.cfg;
        let hydrator = if cfg.ingest.hydrate {
            let (hydrator, worker) = Hydrator::start(
                self.store.clone(),
                clients.to_vec(),
                budgets.clone(),
                ReadPolicy::from_writer(&cfg.writer),
                cfg.crm.hydration(),
                self.metrics.clone(),
            );
            self.tasks
                .push(tokio::spawn(worker.run(stopped(&self.stop_rx))));
            hydrator
        } else {
            Hydrator::Off
        };
        Ok(Pipeline::new(
            self.store.clone(),
            self.rules.clone(),
            FieldMaps::default(),
            cfg.echo(),
            hydrator,
            self.metrics.clone(),
        )?)
    }

    /// Kafka mode: creates the source and dead-letter topics when missing and
    /// runs the pipeline over the source topics.
    async fn kafka_ingest(
        &mut self,
        pipeline: Pipeline,
        outbox_ready: &Arc<Notify>,
        clients: &[CrmClient],
        budgets: &Budgets,
    ) -> anyhow::Result<ControlHandle> {
        let (control, controller) = self.controller(clients, budgets);
        let k = &self.cfg.kafka;
        let mut topics: Vec<(&str, i32)> = k
            .sources
            .iter()
            .map(|s| (s.topic.as_str(), k.partitions))
            .collect();
        topics.push((k.dlq_topic.as_str(), 1));
        allot_bus::ensure_topics_with(&k.bus(), &topics, allot_bus::BROKER_DEFAULT_REPLICATION)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let names: Vec<&str> = k.sources.iter().map(|s| s.topic.as_str()).collect();
        let ingest = KafkaIngest {
            store: self.store.clone(),
            pipeline,
            source: KafkaSource::subscribe(&k.bus(), &names).map_err(|e| anyhow::anyhow!("{e}"))?,
            sink: KafkaSink::new(&k.bus()).map_err(|e| anyhow::anyhow!("{e}"))?,
            dlq_topic: k.dlq_topic.clone(),
            formats: k
                .sources
                .iter()
                .filter_map(|s| Some((s.topic.clone(), s.format.parse().ok()?)))
                .collect(),
            max_chunk: self.cfg.ingest.max_chunk,
            linger: Duration::from_millis(5),
            outbox_ready: outbox_ready.clone(),
            sla: Some(self.cfg.sla.clone()).filter(|s| s.enabled),
            control: Some(controller),
        };
        self.tasks.push(tokio::spawn({
            let stop = stopped(&self.stop_rx);
            async move {
                if let Err(e) = ingest.run(stop).await {
                    error!(error = %e, "kafka ingest stopped");
                }
            }
        }));
        Ok(control)
    }

    /// The pipeline owner's controller (commands, rule switches,
    /// realignment, sync) and the API's handle to it.
    fn controller(&self, clients: &[CrmClient], budgets: &Budgets) -> (ControlHandle, Controller) {
        let cfg = self.cfg;
        let (control, inbox) = ControlHandle::channel();
        let controller = Controller::new(
            Some(inbox),
            self.rules.clone(),
            cfg.rules.realign_rate_per_sec,
        )
        .with_sync(SyncCtx {
            clients: clients.to_vec(),
            budgets: budgets.clone(),
            policy: allot_services::reader::ReadPolicy::from_writer(&cfg.writer),
            bulk_threshold: cfg.crm.salesforce.bulk_threshold,
        });
        (control, controller)
    }

    /// Embedded mode: runs the pipeline over the embedded log, with the
    /// controller taking commands; returns the API's handle to it.
    fn embedded_ingest(
        &mut self,
        pipeline: Pipeline,
        outbox_ready: &Arc<Notify>,
        clients: &[CrmClient],
        budgets: &Budgets,
    ) -> ControlHandle {
        let cfg = self.cfg;
        let (control, controller) = self.controller(clients, budgets);
        let ingest = EmbeddedIngest {
            store: self.store.clone(),
            pipeline,
            outbox_ready: outbox_ready.clone(),
            max_chunk: cfg.ingest.max_chunk,
            sla: Some(cfg.sla.clone()).filter(|s| s.enabled),
            control: Some(controller),
        };
        self.tasks.push(tokio::spawn({
            let stop = stopped(&self.stop_rx);
            async move {
                if let Err(e) = ingest.run(stop).await {
                    error!(error = %e, "ingest stopped");
                }
            }
        }));
        control
    }

    /// Keeps the dedupe window bounded by age and count, and the store
    /// within its retention (see [`maintain`]).
    fn prune_dedupe(&mut self) {
        let dedupe = Some((
            i64::try_from(self.cfg.ingest.dedupe_max_age_hours).unwrap_or(72) * 3_600_000,
            self.cfg.ingest.dedupe_max_entries,
        ));
        self.tasks.push(maintain(
            self.store.clone(),
            self.cfg.store.retention,
            dedupe,
            self.metrics.clone(),
            &self.stop_rx,
        ));
    }

    /// The API with the pipeline owner's `control`, merged with the webhook
    /// endpoints (signatures checked with `hubspot_secret`).
    fn app(
        &self,
        hubspot_secret: Option<String>,
        control: ControlHandle,
    ) -> anyhow::Result<axum::Router> {
        let cfg = self.cfg;
        let hooks = webhooks_router(
            cfg,
            self.secrets,
            self.store.clone(),
            self.metrics.clone(),
            hubspot_secret,
            cfg.kafka.enabled,
        )?;
        Ok(api_router(
            cfg,
            self.secrets,
            self.store.clone(),
            self.metrics.clone(),
            control,
        )?
        .merge(hooks))
    }

    /// Feeds the demo stream of new records into the emulator at `url`.
    fn demo_stream(&mut self, url: &str) {
        let names = self
            .rules
            .reps
            .iter()
            .filter_map(|r| r.name.clone().map(|n| (r.id.clone(), n)))
            .collect();
        self.tasks.push(tokio::spawn(crate::cmd::demo::stream(
            url.to_string(),
            format!("http://{}", self.api_addr),
            self.cfg.emulator.demo_records,
            names,
            stopped(&self.stop_rx),
        )));
    }
}

/// The Salesforce and HubSpot client configurations for the emulator at
/// `url` started with `opts`.
pub(crate) fn emulator_configs(
    url: &str,
    opts: &EmulatorOptions,
    call_options_client: &str,
) -> (SalesforceConfig, HubSpotConfig) {
    let sf = SalesforceConfig {
        call_options_client: call_options_client.to_string(),
        ..SalesforceConfig::new(
            url,
            SalesforceAuth::ClientCredentials {
                client_id: opts.salesforce_client_id.clone(),
                client_secret: opts.salesforce_client_secret.clone(),
            },
        )
    };
    let hs = HubSpotConfig::new(
        url,
        HubSpotAuth::PrivateApp {
            token: opts.hubspot_private_app_token.clone().unwrap_or_default(),
        },
    );
    (sf, hs)
}

/// Passes each emulator change event on: produced to its CRM's topic when
/// there is a `producer`, else (Salesforce only) appended to the raw log.
async fn forward_events(
    mut rx: UnboundedReceiver<EmittedEvent>,
    producer: Option<KafkaSink>,
    topics: (Option<String>, Option<String>),
    log_store: Arc<Store>,
) {
    while let Some(ev) = rx.recv().await {
        if let Some(producer) = &producer {
            let topic = if ev.crm == Crm::Salesforce {
                &topics.0
            } else {
                &topics.1
            };
            match topic {
                Some(t) => {
                    if let Err(e) = producer.send(t, ev.key.as_bytes(), &ev.body, &[]).await {
                        error!(error = %e, topic = %t, "cannot produce an emulator change event");
                    }
                }
                None => warn!(crm = %ev.crm, "no kafka source topic for this crm's events"),
            }
            continue;
        }
        if ev.crm != Crm::Salesforce {
            continue;
        }
        let entry = RawEntry {
            v: 1,
            format: "salesforce".into(),
            source: "emulator:salesforce".into(),
            received_at: allot_services::now_ms(),
            body: String::from_utf8_lossy(&ev.body).into_owned(),
        };
        let s = log_store.clone();
        let appended = tokio::task::spawn_blocking(move || {
            serde_json::to_vec(&entry).map(|b| s.log(RAW_LOG).append(&b))
        })
        .await;
        if !matches!(appended, Ok(Ok(Ok(_)))) {
            error!("cannot log an emulator change event");
        }
    }
}

/// Prints where `allot run` serves what, and how to stop it.
fn print_banner(
    cfg: &AppConfig,
    rules: &RuleSet,
    api_addr: SocketAddr,
    emulator_url: Option<&str>,
) {
    let kafka_mode = cfg.kafka.enabled;
    println!(
        "allot is running (rules {}, store {})",
        rules.version,
        cfg.store.path.display()
    );
    println!("  Dashboard         http://{api_addr}/");
    println!("  API and webhooks  http://{api_addr}   (/api/openapi.json, /healthz, /metrics, /api/records/ID/decisions; docs/api.md)");
    if kafka_mode {
        let topics: Vec<String> = cfg
            .kafka
            .sources
            .iter()
            .map(|s| format!("{} ({})", s.topic, s.format))
            .collect();
        println!(
            "  Kafka             {} consuming {}; dead letters to {}",
            cfg.kafka.bootstrap_servers,
            topics.join(", "),
            cfg.kafka.dlq_topic
        );
    }
    let into = if kafka_mode {
        "  (produced to the Kafka source topics)"
    } else {
        ""
    };
    println!("  HubSpot webhooks  http://{api_addr}/webhooks/hubspot    Salesforce CDC  http://{api_addr}/webhooks/salesforce{into}");
    if let Some(url) = emulator_url {
        println!("  CRM emulator      {url}   (/_emulator/owners, /_emulator/stats)");
    }
    println!("  Ctrl-C (or SIGTERM) stops it cleanly.");
}

/// Resolves on Ctrl-C or SIGTERM, or after `for_secs` seconds when set.
async fn until_stopped(for_secs: Option<u64>) {
    let until = async {
        match for_secs {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = until => {}
        () = crate::cmd::serve::signalled() => {}
    }
}

/// Signals shutdown, gives each task up to 10 s to finish, and flushes the store.
async fn shut_down(
    stop_tx: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    store: &Store,
    cfg: &AppConfig,
) -> anyhow::Result<()> {
    info!("shutting down");
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    store.flush().map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "allot stopped; state flushed to {}",
        cfg.store.path.display()
    );
    Ok(())
}

/// The webhook endpoints: into the embedded log, or produced to the Kafka
/// source topics when `to_kafka` (HubSpot signatures checked with
/// `hubspot_secret`).
pub fn webhooks_router(
    cfg: &AppConfig,
    secrets: &Secrets,
    store: Arc<Store>,
    metrics: Metrics,
    hubspot_secret: Option<String>,
    to_kafka: bool,
) -> anyhow::Result<axum::Router> {
    let hooks = WebhookState {
        store,
        metrics,
        hubspot_secret,
        public_url: Some(cfg.api.public_url.clone()).filter(|s| !s.is_empty()),
        ingest_token: secrets.ingest_token.clone(),
        kafka: match to_kafka {
            true => Some(KafkaTarget {
                sink: KafkaSink::new(&cfg.kafka.bus()).map_err(|e| anyhow::anyhow!("{e}"))?,
                topics: ["hubspot", "salesforce", "native"]
                    .iter()
                    .filter_map(|f| Some((f.to_string(), cfg.kafka.topic_for(f)?.to_string())))
                    .collect(),
            }),
            false => None,
        },
    };
    let mut open = Vec::new();
    if hooks.hubspot_secret.is_none() {
        open.push(format!(
            "/webhooks/hubspot: no HubSpot client secret (${}): signatures are not checked",
            cfg.secrets.hubspot_client_secret_env
        ));
    }
    if hooks.ingest_token.is_none() {
        open.push(format!(
            "/webhooks/salesforce and /webhooks/native: no ingest token (${}): callers are not authenticated",
            cfg.secrets.ingest_token_env
        ));
    }
    let exposed = !cfg.api.listen.ip().is_loopback();
    if exposed && !open.is_empty() {
        if !cfg.ingest.allow_unauthenticated {
            anyhow::bail!(
                "webhooks on api.listen {} (not a loopback address) without authentication:\n  {}\n\
                 set the secrets, listen on loopback, or set ingest.allow_unauthenticated = true to serve them anyway",
                cfg.api.listen,
                open.join("\n  ")
            );
        }
        for o in &open {
            error!(listen = %cfg.api.listen, "UNAUTHENTICATED WEBHOOKS (ingest.allow_unauthenticated = true): {o}");
            hooks
                .metrics
                .readiness
                .warn(format!("unauthenticated webhooks: {o}"));
        }
    } else {
        for o in &open {
            warn!("{o} (loopback only)");
        }
    }
    Ok(webhooks::router(hooks))
}

/// The store's upkeep, in the background until the process stops: its size
/// every 5 s (`/metrics`, and webhooks refuse input near `store.max_bytes`),
/// then once a minute the dedupe window (`dedupe`: max age in ms and
/// entries) and `store.retention`.
pub fn maintain(
    store: Arc<Store>,
    retention: allot_services::retention::Retention,
    dedupe: Option<(i64, u64)>,
    metrics: Metrics,
    stop_rx: &watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let mut stop = Box::pin(stopped(stop_rx));
    tokio::spawn(async move {
        let mut ticks = 0u64;
        loop {
            if let Ok(bytes) = store.size_on_disk() {
                metrics.store_size.set(bytes);
                metrics
                    .store_bytes
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
            if ticks % 12 == 11 {
                let (s, m) = (store.clone(), metrics.clone());
                let pass = tokio::task::spawn_blocking(move || {
                    let now = allot_services::now_ms();
                    if let Some((age, entries)) = dedupe {
                        match s.prune_seen(now, age, entries) {
                            Ok(n) if n > 0 => info!(pruned = n, "dedupe window pruned"),
                            Ok(_) => {}
                            Err(e) => warn!(error = %e, "dedupe prune failed"),
                        }
                    }
                    allot_services::retention::prune(&s, &retention, now).inspect(|p| {
                        for (table, n) in [
                            ("raw_log", p.raw_log),
                            ("dead_letters", p.dead_letters),
                            ("decisions", p.decisions),
                            ("admin_audit", p.admin_audit),
                            ("write_ledger", p.write_ledger),
                        ] {
                            m.retention_pruned.with_label_values(&[table]).inc_by(n);
                        }
                    })
                })
                .await;
                match pass {
                    Ok(Ok(p)) if p.total() > 0 => info!(?p, "store.retention pruned"),
                    Ok(Err(e)) => warn!(error = %e, "store.retention prune failed"),
                    _ => {}
                }
            }
            ticks += 1;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = &mut stop => return,
            }
        }
    })
}

/// The API (admin, read side, dashboard) over `store`, with where its
/// changes go: the one place its state is assembled, for `allot run` and
/// `allot serve api`.
pub fn api_router(
    cfg: &AppConfig,
    secrets: &Secrets,
    store: Arc<Store>,
    metrics: Metrics,
    control: ControlHandle,
) -> anyhow::Result<axum::Router> {
    let auth = api_auth(cfg, secrets)?;
    Ok(api::router(ApiState {
        store,
        metrics,
        admin: AdminCtx::new(auth, control).with_hosts(cfg.api.hosts()),
    }))
}

/// API tokens from `$<secrets.api_tokens_env>` and `api.auth.tokens_file`.
/// Without any, the API is open: allowed only on a loopback `api.listen`.
pub fn api_auth(cfg: &AppConfig, secrets: &Secrets) -> anyhow::Result<Auth> {
    let mut spec = secrets.api_tokens.clone().unwrap_or_default();
    let file = &cfg.api.auth.tokens_file;
    if !file.is_empty() {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("api.auth.tokens_file: cannot read {file}"))?;
        spec.push('\n');
        spec.push_str(&text);
    }
    let auth = Auth::parse(&spec).map_err(|e| {
        anyhow::anyhow!(
            "API tokens (${} and api.auth.tokens_file): {e}",
            cfg.secrets.api_tokens_env
        )
    })?;
    if auth.enabled() {
        info!(tokens = auth.names().len(), "api auth on");
    } else if cfg.api.listen.ip().is_loopback() {
        warn!("no API tokens configured: the admin API is open to anyone on this machine");
    } else {
        anyhow::bail!(
            "api.listen {} is not a loopback address and no API tokens are configured: set ${} \
             (name:role:token,... with roles viewer, operator, admin) or api.auth.tokens_file",
            cfg.api.listen,
            cfg.secrets.api_tokens_env
        );
    }
    Ok(auth)
}

/// The rules to start with. The file's version is stored and activated when
/// the store does not know it (a new file is a new version); otherwise the
/// version active in the store stays in force (one activated or rolled back
/// through the API survives restarts).
fn rules_in_force(
    store: &Store,
    file: RuleSet,
    text: &str,
    origin: &str,
) -> anyhow::Result<RuleSet> {
    let e = |e: allot_store::StoreError| anyhow::anyhow!("{e}");
    let now = allot_services::now_ms();
    match store.rule_version(&file.version).map_err(e)? {
        Some(v) if v.toml != text => anyhow::bail!(
            "{origin}: version {:?} is stored with different text; rule versions are immutable: change `version` in the file",
            file.version
        ),
        Some(_) if store.active_rule_version(now).map_err(e)?.is_some() => {}
        _ => store
            .put_rule_version(&file.version, text, now, Some("startup"))
            .map_err(e)?,
    }
    let active = store
        .active_rule_version(now)
        .map_err(e)?
        .context("no rule version is active")?;
    if active.version_id == file.version {
        return Ok(file);
    }
    info!(version = %active.version_id, file = %file.version, "rules from the store, not the file");
    RuleSet::from_toml(&active.toml, &active.version_id)
        .map_err(|err| anyhow::anyhow!("stored rule version {}:\n{err}", active.version_id))
}

/// Clients of the real CRMs `crm.mode` uses, logging in the way
/// `crm.salesforce.auth` and `crm.hubspot.auth` select. No I/O but reading a
/// configured key file; a missing secret is an error naming its variable.
pub fn real_clients(cfg: &AppConfig, secrets: &Secrets) -> anyhow::Result<Vec<CrmClient>> {
    let problems = cfg.crm_secret_problems(secrets);
    if !problems.is_empty() {
        anyhow::bail!("CRM credentials:\n  {}", problems.join("\n  "));
    }
    let missing = |env: &str| anyhow::anyhow!("${env} is not set");
    let mut clients = Vec::new();
    if cfg.uses(Crm::Salesforce) {
        let c = &cfg.crm.salesforce;
        let auth = match c.auth {
            SalesforceAuthKind::ClientCredentials => SalesforceAuth::ClientCredentials {
                client_id: c.client_id.clone(),
                client_secret: secrets
                    .salesforce_client_secret
                    .clone()
                    .ok_or_else(|| missing(&cfg.secrets.salesforce_client_secret_env))?,
            },
            SalesforceAuthKind::Jwt => SalesforceAuth::JwtBearer {
                client_id: c.client_id.clone(),
                username: c.username.trim().to_string(),
                audience: if c.jwt_audience.is_empty() {
                    c.login_url.trim_end_matches('/').to_string()
                } else {
                    c.jwt_audience.clone()
                },
                private_key_pem: cfg
                    .salesforce_jwt_key(secrets)
                    .map_err(|e| anyhow::anyhow!(e))?,
            },
        };
        let sf = SalesforceConfig {
            api_version: c.api_version.clone(),
            call_options_client: cfg.ingest.salesforce_client_id.clone(),
            ..SalesforceConfig::new(&c.login_url, auth)
        };
        let client = SalesforceClient::new(sf).map_err(|e| match c.auth {
            SalesforceAuthKind::Jwt => {
                anyhow::anyhow!("{}: {e}", cfg.salesforce_jwt_key_origin())
            }
            SalesforceAuthKind::ClientCredentials => anyhow::anyhow!("crm.salesforce: {e}"),
        })?;
        clients.push(CrmClient::Salesforce(client));
    }
    if cfg.uses(Crm::Hubspot) {
        let c = &cfg.crm.hubspot;
        let auth = match c.auth {
            HubSpotAuthKind::PrivateApp => HubSpotAuth::PrivateApp {
                token: secrets
                    .hubspot_token
                    .clone()
                    .ok_or_else(|| missing(&cfg.secrets.hubspot_token_env))?,
            },
            HubSpotAuthKind::OAuth => HubSpotAuth::OAuth {
                client_id: c.client_id.trim().to_string(),
                client_secret: secrets
                    .hubspot_client_secret
                    .clone()
                    .ok_or_else(|| missing(&cfg.secrets.hubspot_client_secret_env))?,
                refresh_token: secrets
                    .hubspot_refresh_token
                    .clone()
                    .ok_or_else(|| missing(&cfg.secrets.hubspot_refresh_token_env))?,
            },
        };
        let client = HubSpotClient::new(HubSpotConfig::new(&c.base_url, auth))
            .map_err(|e| anyhow::anyhow!("crm.hubspot: {e}"))?;
        clients.push(CrmClient::HubSpot(client));
    }
    Ok(clients)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cfg(vars: &[(&str, &str)]) -> (AppConfig, Secrets) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let vars = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        config::load(&dir, None, &vars).unwrap()
    }

    const JWT_KEY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../allot-crm/tests/fixtures/jwt-test-key.pem"
    );

    /// `crm.mode = "both"` with JWT bearer and HubSpot OAuth, against an
    /// emulator on loopback that verifies the assertion's signature: each
    /// client logs in (the emulator refuses calls without a token it issued).
    #[tokio::test]
    async fn jwt_and_oauth_clients_log_in_to_the_emulator() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let opts = EmulatorOptions {
            salesforce_jwt_public_key_pem: Some(
                std::fs::read_to_string(JWT_KEY.replace("key.pem", "key.pub.pem")).unwrap(),
            ),
            // Only OAuth tokens the emulator issued are accepted.
            hubspot_private_app_token: None,
            ..EmulatorOptions::default()
        };
        let seed_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../config/emulator-seed.json");
        let seed = Seed::load(&seed_path).unwrap();
        let user = "avery.chen@northwind-demo.example";
        let emulator = Emulator::new(seed, opts.clone());
        let (stop_tx, stop_rx) = watch::channel(false);
        let server = tokio::spawn(emulator.serve(listener, stopped(&stop_rx)));

        let (c, s) = cfg(&[
            ("ALLOT__CRM__MODE", "both"),
            ("ALLOT__CRM__SALESFORCE__LOGIN_URL", &url),
            (
                "ALLOT__CRM__SALESFORCE__CLIENT_ID",
                &opts.salesforce_client_id,
            ),
            ("ALLOT__CRM__SALESFORCE__AUTH", "jwt"),
            ("ALLOT__CRM__SALESFORCE__USERNAME", user),
            ("ALLOT__CRM__SALESFORCE__JWT_KEY_FILE", JWT_KEY),
            ("ALLOT__CRM__HUBSPOT__BASE_URL", &url),
            ("ALLOT__CRM__HUBSPOT__AUTH", "oauth"),
            ("ALLOT__CRM__HUBSPOT__CLIENT_ID", &opts.hubspot_client_id),
            ("ALLOT_HUBSPOT_CLIENT_SECRET", &opts.hubspot_client_secret),
            ("ALLOT_HUBSPOT_REFRESH_TOKEN", &opts.hubspot_refresh_token),
        ]);
        assert!(c.crm_secret_problems(&s).is_empty());
        let clients = real_clients(&c, &s).unwrap();
        assert_eq!(clients.len(), 2);
        for client in &clients {
            let users = client.users().await.unwrap();
            assert!(!users.is_empty(), "{}: no users", client.crm());
        }

        // A subject the org does not know is refused at login.
        let (c, s) = cfg(&[
            ("ALLOT__CRM__MODE", "salesforce"),
            ("ALLOT__CRM__SALESFORCE__LOGIN_URL", &url),
            (
                "ALLOT__CRM__SALESFORCE__CLIENT_ID",
                &opts.salesforce_client_id,
            ),
            ("ALLOT__CRM__SALESFORCE__AUTH", "jwt"),
            (
                "ALLOT__CRM__SALESFORCE__USERNAME",
                "nobody@northwind-demo.example",
            ),
            ("ALLOT__CRM__SALESFORCE__JWT_KEY_FILE", JWT_KEY),
        ]);
        let err = real_clients(&c, &s).unwrap()[0].users().await.unwrap_err();
        assert!(matches!(err, allot_crm::CrmError::Auth { .. }), "{err}");

        // A wrong refresh token is refused too.
        let (c, s) = cfg(&[
            ("ALLOT__CRM__MODE", "hubspot"),
            ("ALLOT__CRM__HUBSPOT__BASE_URL", &url),
            ("ALLOT__CRM__HUBSPOT__AUTH", "oauth"),
            ("ALLOT__CRM__HUBSPOT__CLIENT_ID", &opts.hubspot_client_id),
            ("ALLOT_HUBSPOT_CLIENT_SECRET", &opts.hubspot_client_secret),
            ("ALLOT_HUBSPOT_REFRESH_TOKEN", "not-the-refresh-token"),
        ]);
        let err = real_clients(&c, &s).unwrap()[0].users().await.unwrap_err();
        assert!(matches!(err, allot_crm::CrmError::Auth { .. }), "{err}");

        let _ = stop_tx.send(true);
        server.await.unwrap().unwrap();
    }

    #[test]
    fn real_clients_name_the_missing_secret() {
        let (c, s) = cfg(&[
            ("ALLOT__CRM__MODE", "salesforce"),
            ("ALLOT__CRM__SALESFORCE__CLIENT_ID", "3MVG9"),
            ("ALLOT__CRM__SALESFORCE__AUTH", "jwt"),
            ("ALLOT__CRM__SALESFORCE__USERNAME", "ops@acme.example"),
        ]);
        let e = real_clients(&c, &s).unwrap_err().to_string();
        assert!(
            e.contains("secrets.salesforce_jwt_key_env: $ALLOT_SALESFORCE_JWT_KEY"),
            "{e}"
        );
        let (c, s) = cfg(&[("ALLOT__CRM__MODE", "hubspot")]);
        let e = real_clients(&c, &s).unwrap_err().to_string();
        assert!(e.contains("$ALLOT_HUBSPOT_TOKEN"), "{e}");
    }

    #[test]
    fn api_tokens_from_the_environment_and_open_only_on_loopback() {
        let (c, s) = cfg(&[("ALLOT_API_TOKENS", "ana:admin:0123456789")]);
        assert_eq!(api_auth(&c, &s).unwrap().names().len(), 1);
        let (c, s) = cfg(&[]);
        assert!(!api_auth(&c, &s).unwrap().enabled());
        let (c, s) = cfg(&[("ALLOT__API__LISTEN", "0.0.0.0:7700")]);
        let e = api_auth(&c, &s).unwrap_err().to_string();
        assert!(
            e.contains("not a loopback address") && e.contains("$ALLOT_API_TOKENS"),
            "{e}"
        );
        let (c, s) = cfg(&[("ALLOT_API_TOKENS", "ana:root:0123456789")]);
        let e = api_auth(&c, &s).unwrap_err().to_string();
        assert!(
            e.contains("role \"root\"") && !e.contains("0123456789"),
            "{e}"
        );
    }
}

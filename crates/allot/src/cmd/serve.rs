//! `allot serve STAGE`: one stage of the pipeline as its own process over
//! Kafka (microservice mode). Every stage keeps a local store at
//! `store.path`, serves `/healthz`, `/readyz` and `/metrics` on `api.listen`
//! (the api stage serves the whole API and the dashboard there), and stops
//! cleanly on Ctrl-C or SIGTERM: the chunk in hand is finished, acked
//! offsets are committed, the group is left and the store is flushed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use allot_bus::{KafkaSink, KafkaSource, TopicReader};
use allot_crm::Budgets;
use allot_crm::{CrmClient, HubSpotClient, SalesforceClient};
use allot_emulator::EmulatorOptions;
use allot_rules::RuleSet;
use allot_services::control::{ControlFeed, ControlHandle, ControlTopic};
use allot_services::hydrate::Hydrator;
use allot_services::metrics::Metrics;
use allot_services::pipeline::{FieldMaps, Pipeline};
use allot_services::reader::ReadPolicy;
use allot_services::stages::assign::AssignStage;
use allot_services::stages::distribute::{DistributeStage, DistributeTopics};
use allot_services::stages::follow::RulesInForce;
use allot_services::stages::ingest::IngestStage;
use allot_services::stages::matching::{MatchStage, MatchTopics};
use allot_services::stages::read_model::ReadModel;
use allot_services::stages::write::WriteStage;
use allot_services::stages::{self, ChunkStage};
use allot_store::Store;
use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::cmd::run::stopped;
use tracing::{error, info, warn};

use crate::config::{self, AppConfig, CrmMode, Secrets};

/// A stage of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// Raw CRM events → decoded, deduplicated change events on `allot.events`.
    Ingest,
    /// Change events → merged records, decisions on `allot.decisions`, audit.
    /// One replica per rule set when teams rotate or cap (split mode below scales).
    Assign,
    /// Change events → records matched to their winning territory, sent to
    /// their distribution pool on `allot.distribute` (split mode).
    Match,
    /// Matched records → the rep, picked with the pool's own rotation,
    /// loads and caps; decisions on `allot.decisions` (split mode).
    Distribute,
    /// Decisions → owner writes to the CRM.
    Write,
    /// Admin API, dashboard and metrics over the decisions.
    Api,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Assign => "assign",
            Stage::Match => "match",
            Stage::Distribute => "distribute",
            Stage::Write => "write",
            Stage::Api => "api",
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Which stage this process runs.
    #[arg(value_enum)]
    stage: Stage,
    /// Folder holding default.toml (and <env>.toml).
    #[arg(long, default_value = "config")]
    config_dir: PathBuf,
    /// Overlay config/<env>.toml (also ALLOT_ENV).
    #[arg(long)]
    env: Option<String>,
}

pub fn run(a: Args, vars: HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let env = a.env.clone().or_else(|| vars.get("ALLOT_ENV").cloned());
    let (cfg, secrets) = config::load(&a.config_dir, env.as_deref(), &vars)?;
    crate::telemetry::init_for(&cfg.telemetry, &format!("allot-{}", a.stage.name()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(serve(a.stage, cfg, secrets));
    crate::telemetry::shutdown();
    result.map(|()| ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM (what Kubernetes and compose send).
pub async fn signalled() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

async fn serve(stage: Stage, mut cfg: AppConfig, secrets: Secrets) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.store.path)
        .with_context(|| format!("cannot create {}", cfg.store.path.display()))?;
    let store = Arc::new(Store::open(&cfg.store.path).map_err(err)?);
    let mut metrics = Metrics::new();
    metrics.store_size = allot_services::retention::StoreSize::new(cfg.store.max_bytes);
    let (stop_tx, stop_rx) = watch::channel(false);
    let listener = TcpListener::bind(cfg.api.listen)
        .await
        .with_context(|| format!("api.listen {}", cfg.api.listen))?;
    let addr = listener.local_addr()?;
    // The port bound (api.listen may ask for any: port 0) is the one the
    // API answers for.
    cfg.api.listen = addr;
    ensure_topics(stage, &cfg).await?;
    let consumed = consumed(stage, &cfg);
    let names: Vec<&str> = consumed.iter().map(String::as_str).collect();
    let group = group(stage, &cfg, &store)?;
    let source = KafkaSource::subscribe(&cfg.kafka.bus_for(&group), &names).map_err(err)?;
    let (failed_tx, mut failed) = tokio::sync::mpsc::channel(8);
    let mut w = Wiring {
        cfg: &cfg,
        secrets: &secrets,
        store: store.clone(),
        metrics: metrics.clone(),
        stop_rx: stop_rx.clone(),
        failed: failed_tx,
        tasks: Vec::new(),
    };
    let probes = allot_services::api::probes(store.clone(), metrics.clone(), Some(stage.name()));
    let app = match w.start(stage, source, &group).await? {
        Some(api) => api,
        None => probes,
    };
    let mut tasks = w.tasks;
    tasks.push(crate::cmd::run::maintain(
        store.clone(),
        cfg.store.retention,
        None,
        metrics.clone(),
        &stop_rx,
    ));
    tasks.push(crate::cmd::run::spawn_http(
        listener,
        app,
        cfg.api.limits,
        &stop_rx,
    ));
    println!(
        "allot serve {} (group {group}, consuming {}) — http://{addr}/healthz, /readyz, /metrics; store {}",
        stage.name(),
        consumed.join(", "),
        cfg.store.path.display()
    );
    // Until asked to stop, or until a task of the stage fails: then the
    // process ends with an error, so that its supervisor starts it again
    // instead of leaving a process that looks healthy and does nothing.
    let failure = tokio::select! {
        () = signalled() => None,
        Some(why) = failed.recv() => Some(why),
    };
    info!(stage = stage.name(), "shutting down");
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
    }
    store.flush().map_err(err)?;
    println!("allot serve {} stopped", stage.name());
    match failure {
        Some(why) => Err(anyhow::anyhow!("{why}")),
        None => Ok(()),
    }
}

/// Creates the topics this stage reads and writes when they are missing.
async fn ensure_topics<'a>(stage: Stage, cfg: &'a AppConfig) -> anyhow::Result<()> {
    let k = &cfg.kafka;
    let st = &k.stages;
    let topic = |name: &'a str, partitions: i32, compacted: bool| allot_bus::Topic {
        name,
        partitions,
        compacted,
    };
    let mut topics = vec![
        topic(&st.events_topic, k.partitions, false),
        topic(&st.decisions_topic, k.partitions, false),
        topic(&k.dlq_topic, 1, false),
        topic(&st.distribute_topic, k.partitions, false),
        topic(&st.changelog_topic, k.partitions, true),
        topic(&st.accounts_topic, k.partitions, true),
        // One partition: every replica reads it in full, in order.
        topic(&st.control_topic, 1, true),
    ];
    if stage == Stage::Ingest {
        topics.extend(
            k.sources
                .iter()
                .map(|s| topic(&s.topic, k.partitions, false)),
        );
    }
    allot_bus::ensure(&k.bus(), &topics, allot_bus::BROKER_DEFAULT_REPLICATION)
        .await
        .map_err(err)
}

/// The topics the stage consumes.
fn consumed(stage: Stage, cfg: &AppConfig) -> Vec<String> {
    let k = &cfg.kafka;
    let st = &k.stages;
    match stage {
        Stage::Ingest => k.sources.iter().map(|s| s.topic.clone()).collect(),
        Stage::Assign | Stage::Match => vec![st.events_topic.clone()],
        Stage::Distribute => vec![st.distribute_topic.clone()],
        Stage::Write | Stage::Api => vec![st.decisions_topic.clone()],
    }
}

/// The stage's consumer group.
fn group(stage: Stage, cfg: &AppConfig, store: &Store) -> anyhow::Result<String> {
    let k = &cfg.kafka;
    let st = &k.stages;
    Ok(match stage {
        Stage::Ingest => k.group_id.clone(),
        Stage::Assign => st.assign_group.clone(),
        Stage::Match => st.match_group.clone(),
        Stage::Distribute => st.distribute_group.clone(),
        Stage::Write => st.write_group.clone(),
        Stage::Api => api_group(store, &st.api_group)?,
    })
}

/// What the tasks of one stage process are wired with.
struct Wiring<'a> {
    cfg: &'a AppConfig,
    secrets: &'a Secrets,
    store: Arc<Store>,
    metrics: Metrics,
    stop_rx: watch::Receiver<bool>,
    /// A task that fails says why here, and the process stops.
    failed: tokio::sync::mpsc::Sender<String>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Wiring<'_> {
    fn sink(&self) -> anyhow::Result<KafkaSink> {
        KafkaSink::new(&self.cfg.kafka.bus()).map_err(err)
    }

    /// Runs a chunk stage until the process stops; its failure stops the process.
    fn spawn<S: ChunkStage + 'static>(&mut self, s: S) {
        let st = &self.cfg.kafka.stages;
        let (max_chunk, linger) = (st.max_chunk, Duration::from_millis(st.linger_ms));
        let stop = stopped(&self.stop_rx);
        let failed = self.failed.clone();
        self.tasks.push(tokio::spawn(async move {
            if let Err(e) = stages::run(s, max_chunk, linger, stop).await {
                error!(stage = S::NAME, error = %e, "stage stopped");
                let _ = failed.send(format!("stage {} stopped: {e}", S::NAME)).await;
            }
        }));
    }

    /// Starts the stage's tasks; the API router when the stage serves it.
    async fn start(
        &mut self,
        stage: Stage,
        source: KafkaSource,
        group: &str,
    ) -> anyhow::Result<Option<axum::Router>> {
        match stage {
            Stage::Ingest => self.ingest(source)?,
            Stage::Assign => self.assign(source, group).await?,
            Stage::Match => self.matching(source, group).await?,
            Stage::Distribute => self.distribute(source, group).await?,
            Stage::Write => self.write(source)?,
            Stage::Api => return self.api(source, group).await.map(Some),
        }
        Ok(None)
    }

    fn ingest(&mut self, source: KafkaSource) -> anyhow::Result<()> {
        let k = &self.cfg.kafka;
        let s = IngestStage {
            store: self.store.clone(),
            source,
            sink: self.sink()?,
            events_topic: k.stages.events_topic.clone(),
            dlq_topic: k.dlq_topic.clone(),
            formats: k
                .sources
                .iter()
                .filter_map(|s| Some((s.topic.clone(), s.format.parse().ok()?)))
                .collect(),
            metrics: self.metrics.clone(),
        };
        self.spawn(s);
        Ok(())
    }

    /// The pipeline of assign and match: rules, hydration, echoes.
    fn pipeline(&mut self) -> anyhow::Result<Pipeline> {
        let rules = load_rules(self.cfg, &self.store)?;
        let hydrator = hydrator(
            self.cfg,
            self.secrets,
            &self.store,
            &self.metrics,
            &mut self.tasks,
            &self.stop_rx,
        )?;
        Ok(Pipeline::new(
            self.store.clone(),
            rules,
            FieldMaps::default(),
            self.cfg.echo(),
            hydrator,
            self.metrics.clone(),
        )?)
    }

    /// The control topic, read in full by this replica.
    async fn control(&self, group: &str) -> anyhow::Result<ControlFeed> {
        let k = &self.cfg.kafka;
        Ok(ControlFeed::open(&k.bus_for(group), &k.stages.control_topic).await?)
    }

    async fn assign(&mut self, source: KafkaSource, group: &str) -> anyhow::Result<()> {
        let pipeline = self.pipeline()?;
        let (k, cfg) = (&self.cfg.kafka, self.cfg);
        let mut s = AssignStage::new(
            pipeline,
            source,
            self.sink()?,
            &k.stages.decisions_topic,
            &k.dlq_topic,
            Some(cfg.sla.clone()),
        );
        s.follow(self.control(group).await?, &k.stages.events_topic)
            .await?;
        self.spawn(s);
        Ok(())
    }

    async fn matching(&mut self, source: KafkaSource, group: &str) -> anyhow::Result<()> {
        let pipeline = self.pipeline()?;
        let k = &self.cfg.kafka;
        let st = &k.stages;
        let accounts = TopicReader::table(&k.bus_for(group), &st.accounts_topic)
            .await
            .map_err(err)?;
        let topics = MatchTopics {
            distribute: st.distribute_topic.clone(),
            accounts: st.accounts_topic.clone(),
            dlq: k.dlq_topic.clone(),
        };
        let mut s = MatchStage::start(pipeline, source, self.sink()?, accounts, topics).await?;
        s.follow(self.control(group).await?, &st.events_topic)
            .await?;
        self.spawn(s);
        Ok(())
    }

    async fn distribute(&mut self, source: KafkaSource, group: &str) -> anyhow::Result<()> {
        let rules = load_rules(self.cfg, &self.store)?;
        let k = &self.cfg.kafka;
        let st = &k.stages;
        let topics = DistributeTopics {
            distribute: st.distribute_topic.clone(),
            changelog: st.changelog_topic.clone(),
            decisions: st.decisions_topic.clone(),
            events: st.events_topic.clone(),
            accounts: st.accounts_topic.clone(),
            dlq: k.dlq_topic.clone(),
        };
        let mut s = DistributeStage::start(
            rules,
            source,
            self.sink()?,
            k.bus_for(group),
            topics,
            self.metrics.clone(),
        )
        .await?;
        s.follow(self.control(group).await?, self.store.clone())
            .await?;
        self.spawn(s);
        Ok(())
    }

    /// The outbox from decisions, the writer, and the forwarder of owner
    /// refusals back to the events topic.
    fn write(&mut self, source: KafkaSource) -> anyhow::Result<()> {
        let cfg = self.cfg;
        let clients = clients(cfg, self.secrets)?;
        let budgets = Budgets::new(&clients, &cfg.writer);
        let ready = Arc::new(Notify::new());
        // Changes left pending by a previous run go out right away.
        ready.notify_one();
        let s = WriteStage {
            store: self.store.clone(),
            source,
            sink: self.sink()?,
            dlq_topic: cfg.kafka.dlq_topic.clone(),
            metrics: self.metrics.clone(),
            outbox_ready: ready.clone(),
        };
        self.spawn(s);
        let forward = allot_services::stages::write::forward_refusals(
            self.store.clone(),
            self.sink()?,
            cfg.kafka.stages.events_topic.clone(),
            stopped(&self.stop_rx),
        );
        let failed = self.failed.clone();
        self.tasks.push(tokio::spawn(async move {
            if let Err(e) = forward.await {
                error!(error = %e, "owner refusals are no longer forwarded");
                let _ = failed.send(format!("forwarding owner refusals: {e}")).await;
            }
        }));
        self.tasks.push(crate::cmd::run_writer::spawn(
            self.store.clone(),
            clients,
            cfg.writer.clone(),
            &self.metrics,
            &budgets,
            ready,
            stopped(&self.stop_rx),
        )?);
        Ok(())
    }

    async fn api(&mut self, source: KafkaSource, group: &str) -> anyhow::Result<axum::Router> {
        // The rule versions and overrides the API shows: the file's, then
        // what the control topic says (read back in full by a new store).
        let rules = load_rules(self.cfg, &self.store)?;
        let (mut follow, _) =
            RulesInForce::start(self.control(group).await?, self.store.clone(), rules).await?;
        let (stop, failed) = (stopped(&self.stop_rx), self.failed.clone());
        self.tasks.push(tokio::spawn(async move {
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    () = &mut stop => return,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                if let Err(e) = follow.step().await {
                    error!(error = %e, "the control topic is no longer followed");
                    let _ = failed
                        .send(format!("following the control topic: {e}"))
                        .await;
                    return;
                }
            }
        }));
        let s = ReadModel {
            store: self.store.clone(),
            source,
            sink: self.sink()?,
            dlq_topic: self.cfg.kafka.dlq_topic.clone(),
            metrics: self.metrics.clone(),
        };
        self.spawn(s);
        // Webhooks produce to the source topics that ingest reads.
        let hooks = crate::cmd::run::webhooks_router(
            self.cfg,
            self.secrets,
            self.store.clone(),
            self.metrics.clone(),
            self.secrets.hubspot_client_secret.clone(),
            true,
        )?;
        // Admin changes go to every deciding replica through the control topic.
        let control = ControlHandle::Topic(Arc::new(ControlTopic::new(
            self.sink()?,
            &self.cfg.kafka.stages.control_topic,
            self.store.clone(),
        )));
        let api = crate::cmd::run::api_router(
            self.cfg,
            self.secrets,
            self.store.clone(),
            self.metrics.clone(),
            control,
        )?;
        Ok(api.merge(hooks))
    }
}

/// The hydrator of a stage that merges records: reading parked records
/// with a budget of this process's own (the write stage's writes are paced
/// in another process), or off when `ingest.hydrate` is.
fn hydrator(
    cfg: &AppConfig,
    secrets: &Secrets,
    store: &Arc<Store>,
    metrics: &Metrics,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    stop_rx: &watch::Receiver<bool>,
) -> anyhow::Result<Hydrator> {
    if !cfg.ingest.hydrate {
        return Ok(Hydrator::Off);
    }
    let clients = clients(cfg, secrets)?;
    let (hydrator, worker) = Hydrator::start(
        store.clone(),
        clients.clone(),
        Budgets::new(&clients, &cfg.writer),
        ReadPolicy::from_writer(&cfg.writer),
        cfg.crm.hydration(),
        metrics.clone(),
    );
    tasks.push(tokio::spawn(worker.run(stopped(stop_rx))));
    Ok(hydrator)
}

/// The api stage's group: `<api_group>-<id of this store>`. Its read model
/// lives in its own store, so a new store (a fresh pod, an emptied volume)
/// is a new group that reads `allot.decisions` from the earliest offset the
/// topic keeps and rebuilds the audit, instead of resuming where the
/// previous store's group stopped.
fn api_group(store: &Store, prefix: &str) -> anyhow::Result<String> {
    const DOC: &str = "api_read_model";
    let id = match store
        .admin_get::<serde_json::Value>(allot_store::JOB, DOC)
        .map_err(err)?
        .and_then(|v| v["group"].as_str().map(str::to_string))
    {
        Some(g) => g,
        None => {
            let g = format!(
                "{prefix}-{:x}{:x}",
                allot_services::now_ms(),
                std::process::id()
            );
            store
                .admin_put(allot_store::JOB, DOC, serde_json::json!({ "group": g }))
                .map_err(err)?;
            g
        }
    };
    Ok(id)
}

/// The rules in force in this process's store. In microservice mode the
/// control topic is what every replica agrees on, so the file at
/// `rules.path` is the baseline: a version the store does not know is
/// stored in force from the start of time, or from when the file version
/// it replaces was (a new file and a restart replace a file version), and
/// a version activated through the API stays in force over it.
fn load_rules(cfg: &AppConfig, store: &Store) -> anyhow::Result<Arc<RuleSet>> {
    let text = std::fs::read_to_string(&cfg.rules.path)
        .with_context(|| format!("cannot read rules {}", cfg.rules.path.display()))?;
    let origin = cfg.rules.path.display().to_string();
    let file =
        RuleSet::from_toml(&text, &origin).map_err(|e| anyhow::anyhow!("invalid rules:\n{e}"))?;
    for w in &file.warnings {
        warn!(warning = %w.render(&origin), "rules");
    }
    let now = allot_services::now_ms();
    let active = store.active_rule_version(now).map_err(err)?;
    match store.rule_version(&file.version).map_err(err)? {
        Some(v) if v.toml != text => anyhow::bail!(
            "{origin}: version {:?} is stored with different text; rule versions are immutable: change `version` in the file",
            file.version
        ),
        Some(_) => {}
        None => {
            let from = active
                .as_ref()
                .filter(|a| a.activated_by.as_deref() == Some(STARTUP))
                .map_or(0, |a| a.effective_at);
            store
                .put_rule_version(&file.version, &text, from, Some(STARTUP))
                .map_err(err)?;
        }
    }
    let active = store
        .active_rule_version(now)
        .map_err(err)?
        .context("no rule version is active")?;
    if active.version_id == file.version {
        return Ok(Arc::new(file));
    }
    warn!(version = %active.version_id, file = %file.version, "rules.path is not in force: a version activated through the API is (activate the file's version through the API to change that)");
    RuleSet::from_toml(&active.toml, &active.version_id)
        .map(Arc::new)
        .map_err(|e| anyhow::anyhow!("stored rule version {}:\n{e}", active.version_id))
}

/// Who a version stored from `rules.path` at start is activated by.
const STARTUP: &str = "startup";

/// The CRM clients: an emulator running as its own process (`emulator.url`,
/// else `http://<emulator.listen>`, with the emulator's built-in
/// credentials), or the real CRMs.
pub fn clients(cfg: &AppConfig, secrets: &Secrets) -> anyhow::Result<Vec<CrmClient>> {
    if cfg.crm.mode != CrmMode::Emulator {
        return crate::cmd::run::real_clients(cfg, secrets);
    }
    let url = match cfg.emulator.url.is_empty() {
        true => format!("http://{}", cfg.emulator.listen),
        false => cfg.emulator.url.trim_end_matches('/').to_string(),
    };
    Ok(emulator_clients(
        &url,
        &EmulatorOptions::default(),
        &cfg.ingest.salesforce_client_id,
    ))
}

/// Clients of both CRMs of an emulator at `url` started with `opts`; the
/// Salesforce writes carry `Sforce-Call-Options: client=<call_options_client>`.
pub fn emulator_clients(
    url: &str,
    opts: &EmulatorOptions,
    call_options_client: &str,
) -> Vec<CrmClient> {
    let (sf, hs) = crate::cmd::run::emulator_configs(url, opts, call_options_client);
    let mut out = Vec::new();
    match SalesforceClient::new(sf) {
        Ok(c) => out.push(CrmClient::Salesforce(c)),
        Err(e) => error!(error = %e, "salesforce client"),
    }
    match HubSpotClient::new(hs) {
        Ok(c) => out.push(CrmClient::HubSpot(c)),
        Err(e) => error!(error = %e, "hubspot client"),
    }
    out
}

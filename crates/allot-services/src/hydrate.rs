//! Re-reading records from the CRM when events do not carry enough:
//! Salesforce gap events, HubSpot property changes about records not seen
//! before, creates without fields.
//!
//! Such a record is **parked**: the pipeline stores what the events said,
//! plus a durable parked entry (admin table, kind [`PARKED`]), and does not
//! decide it. The [`HydrationWorker`] reads parked records in batches
//! (Salesforce up to 2,000 ids per call, HubSpot 100) off the ingest path,
//! under the CRM connection's [`Budget`](allot_crm::Budget) shared with
//! the writer, retrying with the writer's backoff. Each answer goes back to
//! the pipeline owner ([`Pipeline::stage_hydrated`](crate::pipeline::Pipeline::stage_hydrated)),
//! which merges it and decides. Events for a parked record merge into it
//! in order meanwhile; a field an event set after the read was sent wins
//! over the read.
//!
//! A record whose read still fails after the deadline is decided on what is
//! known, and its explanation says so first.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use allot_core::{Crm, Millis, ObjectKind, Value};
use allot_crm::{Budgets, CrmClient, CrmError, RecordRead};
use allot_store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{channel, Receiver, Sender};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::metrics::Metrics;
use crate::pipeline::FieldMaps;
use crate::reader::{retrying, ReadPolicy};

/// Admin-table kind of parked records; the name is [`parked_name`].
pub const PARKED: &str = "parked";

/// The parked entry's name for a record.
pub fn parked_name(object: ObjectKind, id: &str) -> String {
    format!("{object}/{id}")
}

/// A record waiting for its read, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parked {
    pub crm: Crm,
    pub object: ObjectKind,
    pub id: String,
    /// When it was parked (wall clock, ms).
    pub since: Millis,
    /// The event that parked it (decisions name it).
    pub event_id: String,
    /// Whether a decision is owed once it lands (a create, or a change to a
    /// field the rules read).
    pub decide: bool,
    /// CRM fields events set while parked, with when they arrived: a read
    /// sent before that does not overwrite them.
    #[serde(default)]
    pub fields: BTreeMap<String, Millis>,
}

/// What the read found.
#[derive(Debug, Clone, PartialEq)]
pub enum Landing {
    /// The record's current fields (CRM names, scalars).
    Found(BTreeMap<String, Value>),
    /// The CRM says it does not exist: a delete, confirmed.
    Missing,
    /// Every read failed until the deadline; the last reason.
    Failed(String),
}

/// One answered read, on its way to the pipeline owner.
#[derive(Debug, Clone)]
pub struct Landed {
    pub object: ObjectKind,
    pub id: String,
    /// When the record was parked (results are staged in this order).
    pub since: Millis,
    /// When the read was sent: event fields that arrived later win.
    pub read_at: Millis,
    pub landing: Landing,
}

/// How hydration batches and gives up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HydrationConfig {
    /// A partial batch waits this long for more records (a full one goes
    /// at once): fewer, fuller calls under a tight limit.
    pub linger_ms: u64,
    /// After this long without a successful read, decide on what is known.
    pub deadline_ms: u64,
    /// Read calls in flight per CRM.
    pub max_concurrent_calls: usize,
    /// Longest wait between tries of a record whose reads fail.
    pub max_retry_ms: u64,
}

impl Default for HydrationConfig {
    fn default() -> Self {
        HydrationConfig {
            linger_ms: 2_000,
            deadline_ms: 10 * 60_000,
            max_concurrent_calls: 2,
            max_retry_ms: 30_000,
        }
    }
}

/// Where records are re-read from, as the pipeline sees it.
#[derive(Debug, Default)]
pub enum Hydrator {
    /// No CRM to ask (replays, tests): records keep what events carried,
    /// and decisions on them say so.
    #[default]
    Off,
    /// Parked records are read by a [`HydrationWorker`].
    On(HydrationLink),
}

/// The pipeline's end of the hydration worker.
#[derive(Debug)]
pub struct HydrationLink {
    crms: Vec<Crm>,
    landed: Mutex<Receiver<Landed>>,
    /// Notified when answers are waiting.
    pub ready: Arc<Notify>,
    /// Notify after committing new parked records.
    pub parked: Arc<Notify>,
}

/// Reads landed and not yet taken by the pipeline, at most.
const LANDED_QUEUE: usize = 4096;

impl Hydrator {
    /// A worker reading through `clients` (one per CRM) under `budgets`, and
    /// the pipeline's end of it. Spawn the worker's [`HydrationWorker::run`].
    pub fn start(
        store: Arc<Store>,
        clients: Vec<CrmClient>,
        budgets: Budgets,
        policy: ReadPolicy,
        config: HydrationConfig,
        metrics: Metrics,
    ) -> (Hydrator, HydrationWorker) {
        // Bounded: a pipeline that does not take its reads stops the worker
        // from reading more.
        let (tx, rx) = channel(LANDED_QUEUE);
        let ready = Arc::new(Notify::new());
        let parked = Arc::new(Notify::new());
        let link = HydrationLink {
            crms: clients.iter().map(CrmClient::crm).collect(),
            landed: Mutex::new(rx),
            ready: ready.clone(),
            parked: parked.clone(),
        };
        let worker = HydrationWorker {
            store,
            clients,
            budgets,
            policy,
            config,
            maps: FieldMaps::default(),
            metrics,
            tx,
            ready,
            wake: parked,
        };
        (Hydrator::On(link), worker)
    }

    /// Whether records of `crm` are parked until read.
    pub fn serves(&self, crm: Crm) -> bool {
        matches!(self, Hydrator::On(l) if l.crms.contains(&crm))
    }

    pub fn enabled(&self) -> bool {
        matches!(self, Hydrator::On(l) if !l.crms.is_empty())
    }

    /// Answers waiting for the pipeline owner.
    pub fn take_landed(&self) -> Vec<Landed> {
        let Hydrator::On(link) = self else {
            return Vec::new();
        };
        let mut rx = link.landed.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        while let Ok(l) = rx.try_recv() {
            out.push(l);
        }
        out
    }

    /// Resolves when answers are waiting (never when hydration is off).
    pub async fn landed_ready(&self) {
        match self {
            Hydrator::On(link) => link.ready.notified().await,
            Hydrator::Off => std::future::pending().await,
        }
    }

    /// Tells the worker that new records were parked (it also polls).
    pub fn poke(&self) {
        if let Hydrator::On(link) = self {
            link.parked.notify_one();
        }
    }
}

/// What the worker remembers about a parked record between scans.
#[derive(Debug, Clone, Default)]
struct Track {
    /// An answer went to the pipeline then (not read again for a while).
    sent_at: Option<Millis>,
    /// In a call now.
    calling: bool,
    failures: u32,
    retry_at: Millis,
    last_error: Option<String>,
}

/// An answer not handed back within this long is read again (the owner
/// stopped before committing it, say).
const RESEND_MS: Millis = 30_000;
/// Scans of the parked table at least this often.
const POLL_MS: u64 = 250;

type CallResult = (
    Crm,
    ObjectKind,
    Vec<Parked>,
    Millis,
    Result<Vec<(String, RecordRead)>, CrmError>,
);

/// Reads parked records in batches and hands the answers to the pipeline.
pub struct HydrationWorker {
    store: Arc<Store>,
    clients: Vec<CrmClient>,
    budgets: Budgets,
    policy: ReadPolicy,
    config: HydrationConfig,
    maps: FieldMaps,
    metrics: Metrics,
    tx: Sender<Landed>,
    ready: Arc<Notify>,
    wake: Arc<Notify>,
}

impl HydrationWorker {
    /// Reads until `shutdown` resolves; calls in flight are dropped (their
    /// records stay parked and are read at the next start).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tracks: HashMap<String, Track> = HashMap::new();
        let mut calls: JoinSet<CallResult> = JoinSet::new();
        let mut in_calls: HashMap<Crm, usize> = HashMap::new();
        tracing::info!(
            linger_ms = self.config.linger_ms,
            deadline_ms = self.config.deadline_ms,
            "hydration started"
        );
        loop {
            let next = match self.scan(&mut tracks, &mut calls, &mut in_calls).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read parked records, trying again");
                    None
                }
            };
            let nap = next.map_or(POLL_MS, |t| {
                u64::try_from(t - crate::now_ms())
                    .unwrap_or(0)
                    .clamp(5, POLL_MS)
            });
            tokio::select! {
                Some(done) = calls.join_next(), if !calls.is_empty() => {
                    if let Ok(result) = done {
                        if let Some(n) = in_calls.get_mut(&result.0) {
                            *n = n.saturating_sub(1);
                        }
                        self.answered(&mut tracks, result).await;
                    }
                }
                () = self.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(nap)) => {}
                () = &mut shutdown => break,
            }
        }
        calls.abort_all();
        tracing::info!("hydration stopped");
    }

    /// Starts every read that is due; returns when the next one will be.
    async fn scan(
        &self,
        tracks: &mut HashMap<String, Track>,
        calls: &mut JoinSet<CallResult>,
        in_calls: &mut HashMap<Crm, usize>,
    ) -> Result<Option<Millis>, String> {
        let store = self.store.clone();
        let parked = tokio::task::spawn_blocking(move || store.admin_all::<Parked>(PARKED))
            .await
            .map_err(|e| format!("parked scan stopped: {e}"))?
            .map_err(|e| e.to_string())?;
        self.metrics
            .hydration_parked
            .set(i64::try_from(parked.len()).unwrap_or(i64::MAX));
        let names: std::collections::HashSet<&str> =
            parked.iter().map(|(n, _)| n.as_str()).collect();
        tracks.retain(|n, _| names.contains(n.as_str()));
        let now = crate::now_ms();
        let mut next: Option<Millis> = None;
        let mut due = |t: Millis| next = Some(next.map_or(t, |n: Millis| n.min(t)));
        let mut groups: HashMap<(Crm, ObjectKind), Vec<Parked>> = HashMap::new();
        for (name, p) in parked {
            let t = tracks.entry(name).or_default();
            if t.calling || t.sent_at.is_some_and(|s| now - s < RESEND_MS) {
                continue;
            }
            if now - p.since >= self.deadline() {
                let reason = t
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "no answer from the crm".into());
                t.sent_at = Some(now);
                self.send(&p, now, Landing::Failed(reason)).await;
                continue;
            }
            if t.retry_at > now {
                due(t.retry_at);
                continue;
            }
            groups.entry((p.crm, p.object)).or_default().push(p);
        }
        for ((crm, object), mut group) in groups {
            let Some(client) = self.clients.iter().find(|c| c.crm() == crm).cloned() else {
                continue;
            };
            let Some(budget) = self.budgets.get(crm) else {
                continue;
            };
            group.sort_by_key(|p| p.since);
            let max = client.max_read();
            for chunk in group.chunks(max) {
                let oldest = chunk.first().map_or(now, |p| p.since);
                if chunk.len() < max && now - oldest < self.linger() {
                    due(oldest + self.linger());
                    break;
                }
                let busy = in_calls.entry(crm).or_insert(0);
                if *busy >= self.config.max_concurrent_calls {
                    break;
                }
                *busy += 1;
                for p in chunk {
                    if let Some(t) = tracks.get_mut(&parked_name(p.object, &p.id)) {
                        t.calling = true;
                    }
                }
                let fields: Vec<String> = self
                    .maps
                    .get(crm)
                    .mapped_crm_fields(object)
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                let (client, budget, policy, chunk) =
                    (client.clone(), budget.clone(), self.policy, chunk.to_vec());
                calls.spawn(async move {
                    let ids: Vec<&str> = chunk.iter().map(|p| p.id.as_str()).collect();
                    let names: Vec<&str> = fields.iter().map(String::as_str).collect();
                    let read_at = crate::now_ms();
                    let result = retrying(&budget, &client, &policy, "hydrate", || {
                        client.read_records(object, &ids, &names)
                    })
                    .await;
                    (crm, object, chunk.clone(), read_at, result)
                });
            }
        }
        Ok(next)
    }

    /// Settles one read call: answers to the pipeline, failures to retry.
    async fn answered(&self, tracks: &mut HashMap<String, Track>, result: CallResult) {
        let (crm, object, chunk, read_at, result) = result;
        let now = crate::now_ms();
        let label = crm.as_str();
        self.metrics
            .hydration_reads
            .with_label_values(&[label])
            .inc();
        let by_id: HashMap<&str, &Parked> = chunk.iter().map(|p| (p.id.as_str(), p)).collect();
        match result {
            Ok(rows) => {
                self.metrics
                    .hydration_read_records
                    .with_label_values(&[label])
                    .inc_by(rows.len() as u64);
                for (id, read) in rows {
                    let Some(p) = by_id.get(id.as_str()) else {
                        continue;
                    };
                    let name = parked_name(object, &id);
                    let t = tracks.entry(name).or_default();
                    t.calling = false;
                    match read {
                        RecordRead::Found(map) => {
                            t.sent_at = Some(now);
                            self.metrics.hydrated.with_label_values(&["ok"]).inc();
                            let values = map
                                .into_iter()
                                .filter_map(|(k, v)| scalar(v).map(|v| (k, v)))
                                .collect();
                            self.send(p, read_at, Landing::Found(values)).await;
                        }
                        RecordRead::Missing => {
                            t.sent_at = Some(now);
                            self.metrics.hydrated.with_label_values(&["missing"]).inc();
                            self.send(p, read_at, Landing::Missing).await;
                        }
                        RecordRead::NotRead(reason) => {
                            self.failed(t, now, reason);
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%crm, %object, records = chunk.len(), error = %e, "hydration read failed");
                for p in &chunk {
                    let t = tracks.entry(parked_name(p.object, &p.id)).or_default();
                    t.calling = false;
                    self.failed(t, now, e.to_string());
                }
            }
        }
        // Records of the call the answer did not mention are free again.
        for p in &chunk {
            if let Some(t) = tracks.get_mut(&parked_name(p.object, &p.id)) {
                t.calling = false;
            }
        }
    }

    fn failed(&self, t: &mut Track, now: Millis, reason: String) {
        self.metrics.hydrated.with_label_values(&["error"]).inc();
        let delay = self
            .policy
            .backoff
            .delay(t.failures, now.unsigned_abs())
            .min(Duration::from_millis(self.config.max_retry_ms));
        t.failures = t.failures.saturating_add(1);
        t.retry_at = now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        t.last_error = Some(reason);
    }

    async fn send(&self, p: &Parked, read_at: Millis, landing: Landing) {
        let landed = Landed {
            object: p.object,
            id: p.id.clone(),
            since: p.since,
            read_at,
            landing,
        };
        // Wakes the pipeline first: it may be the one to make room.
        self.ready.notify_one();
        if self.tx.send(landed).await.is_ok() {
            self.ready.notify_one();
        }
    }

    fn deadline(&self) -> Millis {
        i64::try_from(self.config.deadline_ms).unwrap_or(i64::MAX)
    }

    fn linger(&self) -> Millis {
        i64::try_from(self.config.linger_ms).unwrap_or(i64::MAX)
    }
}

pub(crate) fn scalar(v: serde_json::Value) -> Option<Value> {
    match v {
        serde_json::Value::Null => Some(Value::Null),
        serde_json::Value::Bool(b) => Some(Value::Bool(b)),
        serde_json::Value::Number(n) => n.as_f64().map(Value::Num),
        serde_json::Value::String(s) => Some(Value::Str(s)),
        _ => None,
    }
}

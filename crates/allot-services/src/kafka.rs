//! The ingest (and assign) stage fed by Kafka: raw CRM events from topics
//! (format set per topic), through the same [`Pipeline`] as the embedded
//! loop. A chunk's effects and dead letters are durable before any of its
//! deliveries is acked, so a crash redelivers, and the dedupe window makes
//! the redelivery harmless.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use allot_bus::{Delivery, KafkaSink, KafkaSource};
use allot_events::Format;
use allot_store::Store;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::control::Controller;
use crate::embedded::ChunkReport;
use crate::owner::{Owner, SlaClock};
use crate::pipeline::{Payload, Pipeline, Staged};
use crate::ServiceError;

/// One consumed topic and the wire format its messages are in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceTopic {
    pub topic: String,
    /// auto, salesforce, hubspot or native.
    #[serde(default = "auto")]
    pub format: String,
}

fn auto() -> String {
    "auto".into()
}

pub struct KafkaIngest {
    pub store: Arc<Store>,
    pub pipeline: Pipeline,
    pub source: KafkaSource,
    /// Producer for dead letters.
    pub sink: KafkaSink,
    pub dlq_topic: String,
    /// Format per topic; topics not listed are detected.
    pub formats: HashMap<String, Format>,
    pub max_chunk: usize,
    /// After the first delivery, how long to wait for more to fill a chunk.
    pub linger: Duration,
    pub outbox_ready: Arc<Notify>,
    /// SLA re-routing, when enabled; checked every `scan_interval_secs`.
    pub sla: Option<crate::sla::SlaConfig>,
    /// Commands from the admin API, rule switches, realignment and sync,
    /// applied between chunks (as in [`crate::embedded::EmbeddedIngest`]).
    pub control: Option<Controller>,
}

fn bus(e: allot_bus::BusError) -> ServiceError {
    ServiceError::Stopped {
        stage: "kafka ingest",
        detail: e.to_string(),
    }
}

impl KafkaIngest {
    /// Runs until `shutdown` resolves, then commits the acked prefix and leaves the group.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), ServiceError> {
        tokio::pin!(shutdown);
        info!(dlq = %self.dlq_topic, "kafka ingest started");
        let rerouted = self.store.log(crate::raw::REROUTE_LOG);
        let mut sla = SlaClock::new(crate::now_ms());
        if let Some(c) = self.control.as_mut() {
            c.start(&mut self.pipeline, crate::now_ms())?;
        }
        loop {
            self.between_chunks(&mut sla).await?;
            let refused = rerouted.generation();
            let busy = self.control.as_ref().is_some_and(Controller::busy);
            let idle = Duration::from_millis(if busy { 100 } else { 1000 });
            let mut control = self.control.take();
            let command = async {
                match control.as_mut() {
                    Some(c) => c.next().await,
                    None => std::future::pending().await,
                }
            };
            let first = tokio::select! {
                d = self.source.next() => Some(d),
                _ = rerouted.changed(refused) => None,
                () = self.pipeline.hydrator().landed_ready() => None,
                () = tokio::time::sleep(idle) => None,
                Some(envelope) = command => {
                    let mut c = control.take().expect("a command came from it");
                    let done = self.owner().command(&mut c, envelope, crate::now_ms()).await;
                    self.control = Some(c);
                    done?;
                    continue;
                }
                _ = &mut shutdown => {
                    self.control = control;
                    break;
                }
            };
            self.control = control;
            let Some(first) = first else {
                continue;
            };
            let first = match first {
                Ok(d) => d,
                Err(e) if e.retryable() => {
                    warn!(error = %e, "kafka consume failed, retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Err(e) => return Err(bus(e)),
            };
            let chunk = self.fill(first).await;
            self.process(&chunk).await?;
        }
        let s = self.source;
        s.close().await.map_err(bus)?;
        info!("kafka ingest stopped");
        Ok(())
    }

    /// The chunk that starts with `first`: more deliveries, up to
    /// `max_chunk`, for as long as `linger`.
    async fn fill(&mut self, first: Delivery) -> Vec<Delivery> {
        let mut chunk = vec![first];
        let deadline = tokio::time::Instant::now() + self.linger;
        while chunk.len() < self.max_chunk {
            match tokio::time::timeout_at(deadline, self.source.next()).await {
                Ok(Ok(d)) => chunk.push(d),
                Ok(Err(e)) => {
                    warn!(error = %e, "kafka consume failed mid-chunk");
                    break;
                }
                Err(_) => break,
            }
        }
        chunk
    }

    /// The pipeline and the store, as their owner between chunks.
    fn owner(&mut self) -> Owner<'_> {
        Owner {
            pipeline: &mut self.pipeline,
            store: &self.store,
            outbox_ready: &self.outbox_ready,
        }
    }

    /// Commands, rule switches, realignment and sync; hydrated records; the
    /// SLA scan when due; owner refusals: each committed.
    async fn between_chunks(&mut self, sla: &mut SlaClock) -> Result<(), ServiceError> {
        let now = crate::now_ms();
        if let Some(mut c) = self.control.take() {
            let done = self.owner().control_step(&mut c, now).await;
            self.control = Some(c);
            done?;
        }
        self.owner().hydration_step(now).await?;
        if let Some(cfg) = self.sla.clone() {
            if let Some(from) = sla.due(&cfg, now) {
                self.owner().sla_step(&cfg, from, now).await?;
            }
        }
        self.reroute_step().await
    }

    /// Merges and decides the parked records whose reads landed, committed.
    pub async fn hydration_step(&mut self) -> Result<(), ServiceError> {
        self.owner().hydration_step(crate::now_ms()).await.map(drop)
    }

    /// Decides the owner refusals the writer left in the store's re-route
    /// log, committed with the log position.
    pub async fn reroute_step(&mut self) -> Result<(), ServiceError> {
        let (payloads, next) = crate::reroute::waiting(&self.store, self.max_chunk)?;
        if payloads.is_empty() {
            return Ok(());
        }
        let mut staged = self.pipeline.stage(&payloads, crate::now_ms()).await?;
        for d in &staged.dead {
            warn!(source = %d.source, kind = %d.kind, reason = %d.reason, "re-route log entry not decided");
        }
        crate::reroute::commit(&mut staged.batch, next);
        let changed = !staged.changes.is_empty();
        crate::pipeline::commit(&self.store, staged.batch, "re-route").await?;
        if changed {
            self.outbox_ready.notify_one();
        }
        Ok(())
    }

    /// Stages, dead-letters, commits and acks one chunk of deliveries.
    pub async fn process(&mut self, chunk: &[Delivery]) -> Result<ChunkReport, ServiceError> {
        let started = Instant::now();
        let now = crate::now_ms();
        let mut by_source: HashMap<String, &Delivery> = HashMap::new();
        let mut payloads = Vec::with_capacity(chunk.len());
        let mut empty = Vec::new();
        for d in chunk {
            let source = format!("kafka:{}:{}@{}", d.topic, d.partition, d.offset);
            by_source.insert(source.clone(), d);
            self.pipeline
                .metrics()
                .consumed
                .with_label_values(&["kafka"])
                .inc();
            match &d.payload {
                Some(body) => payloads.push(Payload {
                    format: self.formats.get(&d.topic).copied().unwrap_or(Format::Auto),
                    source,
                    body: body.clone(),
                }),
                None => empty.push(d),
            }
        }
        let Staged {
            mut batch,
            decisions,
            changes,
            dead,
            events,
            ..
        } = self.pipeline.stage(&payloads, now).await?;
        for d in empty {
            self.sink
                .dead_letter(&self.dlq_topic, d, "empty", "message has no payload")
                .await
                .map_err(bus)?;
            self.pipeline
                .metrics()
                .dead_lettered
                .with_label_values(&["empty"])
                .inc();
        }
        for dl in &dead {
            let Some(d) = by_source.get(&dl.source) else {
                continue;
            };
            self.sink
                .dead_letter(&self.dlq_topic, d, &dl.kind, &dl.reason)
                .await
                .map_err(bus)?;
        }
        let mut ends: HashMap<(String, i32), i64> = HashMap::new();
        for d in chunk {
            let e = ends
                .entry((d.topic.clone(), d.partition))
                .or_insert(d.offset);
            *e = (*e).max(d.offset);
        }
        for ((topic, partition), offset) in &ends {
            batch.set_position(&format!("kafka:{topic}:{partition}"), offset + 1);
        }
        crate::pipeline::commit(&self.store, batch, "kafka ingest").await?;
        for d in chunk {
            self.source.ack(d).map_err(bus)?;
        }
        if !changes.is_empty() {
            self.outbox_ready.notify_one();
        }
        let m = self.pipeline.metrics();
        for lag in self.source.lag() {
            m.lag
                .with_label_values(&[&lag.topic, &lag.partition.to_string()])
                .set(lag.lag);
        }
        m.batch_seconds
            .with_label_values(&["ingest"])
            .observe(started.elapsed().as_secs_f64());
        Ok(ChunkReport {
            entries: chunk.len(),
            events,
            decisions: decisions.len(),
            changes: changes.len(),
            dead: dead.len(),
        })
    }
}

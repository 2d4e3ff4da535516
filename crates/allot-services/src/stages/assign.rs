//! `allot serve assign`: change events from `allot.events` → merged
//! records, decisions (audited here) and owner changes, sent on
//! `allot.decisions` keyed by record id; also the SLA re-routing scan.
//!
//! Order per chunk: decisions are sent and acknowledged by the brokers, then
//! the records, engine state, audit and dedupe marks are committed, then the
//! events are acked. A crash before the commit redoes the chunk from the
//! same state, so the redo decides the same way; the writer's `decided_at`
//! fencing absorbs the repeated decision.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use allot_bus::{Delivery, KafkaSink, KafkaSource};
use allot_core::Millis;
use allot_events::Format;
use futures::future::try_join_all;

use super::messages::{self, headers, DecisionMessage, EventMessage};
use super::{ack_all, bus, dead_letter, position, stage_positions, ChunkStage};
use crate::pipeline::{Payload, Pipeline, Staged};
use crate::sla::SlaConfig;
use crate::ServiceError;

pub struct AssignStage {
    /// Built with the local outbox off ([`Pipeline::set_local_outbox`]).
    pub pipeline: Pipeline,
    pub source: KafkaSource,
    pub sink: KafkaSink,
    pub decisions_topic: String,
    pub dlq_topic: String,
    pub sla: Option<SlaConfig>,
    pub sla_next: tokio::time::Instant,
    pub sla_from: Millis,
    /// The control topic, when this stage follows it.
    pub control: Option<super::follow::Follower>,
}

impl AssignStage {
    /// A stage over `pipeline` (its local outbox is switched off here).
    pub fn new(
        mut pipeline: Pipeline,
        source: KafkaSource,
        sink: KafkaSink,
        decisions_topic: &str,
        dlq_topic: &str,
        sla: Option<SlaConfig>,
    ) -> AssignStage {
        pipeline.set_local_outbox(false);
        AssignStage {
            pipeline,
            source,
            sink,
            decisions_topic: decisions_topic.to_string(),
            dlq_topic: dlq_topic.to_string(),
            sla: sla.filter(|s| s.enabled),
            sla_next: tokio::time::Instant::now(),
            sla_from: crate::now_ms() - 24 * 3_600_000,
            control: None,
        }
    }

    /// Follows the control topic: rule activations and rep changes made
    /// through the api stage (applied before the first chunk, then between chunks).
    pub async fn follow(
        &mut self,
        feed: crate::control::ControlFeed,
        events_topic: &str,
    ) -> Result<(), ServiceError> {
        let f = super::follow::Follower::start(&mut self.pipeline, feed, events_topic, &self.sink)
            .await?;
        self.control = Some(f);
        Ok(())
    }

    /// Sends every decision of `staged` (with its owner change) to the decisions topic.
    async fn send(
        &self,
        staged: &Staged,
        traces: &HashMap<String, (String, Millis)>,
    ) -> Result<(), ServiceError> {
        let mut out = Vec::with_capacity(staged.decisions.len());
        for (i, d) in staged.decisions.iter().enumerate() {
            let change = staged
                .change_of
                .get(i)
                .copied()
                .flatten()
                .and_then(|j| staged.changes.get(j))
                .cloned();
            let (trace, received_at) = traces
                .get(&d.record_id)
                .map(|(t, r)| (t.clone(), Some(*r)))
                .unwrap_or_else(|| (messages::traceparent(None, &d.record_id), None));
            let event_id = change
                .as_ref()
                .map(|c| c.event_id.clone())
                .unwrap_or_default();
            let msg = DecisionMessage {
                v: messages::VERSION,
                decision: d.clone(),
                change,
                received_at,
            };
            let body = serde_json::to_vec(&msg).map_err(|e| ServiceError::Stopped {
                stage: "assign",
                detail: e.to_string(),
            })?;
            out.push((d.record_id.clone(), body, event_id, trace));
        }
        let (sink, topic) = (&self.sink, self.decisions_topic.as_str());
        try_join_all(out.iter().map(|(key, body, event_id, trace)| async move {
            sink.send(
                topic,
                key.as_bytes(),
                body,
                &[
                    (headers::EVENT_ID, event_id.as_bytes()),
                    (headers::SCHEMA, b"decision.v1"),
                    (headers::TRACEPARENT, trace.as_bytes()),
                ],
            )
            .await
        }))
        .await
        .map_err(bus("assign"))?;
        Ok(())
    }
}

impl ChunkStage for AssignStage {
    const NAME: &'static str = "assign";

    fn source(&mut self) -> &mut KafkaSource {
        &mut self.source
    }

    fn into_source(self) -> KafkaSource {
        self.source
    }

    async fn process(&mut self, chunk: Vec<Delivery>) -> Result<(), ServiceError> {
        let started = Instant::now();
        let now = crate::now_ms();
        let metrics = self.pipeline.metrics().clone();
        let mut events = Vec::with_capacity(chunk.len());
        let mut traces = HashMap::new();
        let mut by_source = HashMap::new();
        let mut spans: Vec<tracing::Span> = Vec::new();
        for d in &chunk {
            metrics.consumed.with_label_values(&["kafka"]).inc();
            match messages::read::<EventMessage>(d) {
                Ok(m) => {
                    let source = position(d);
                    let id = m.event.record_id.clone().unwrap_or_default();
                    let (span, trace) =
                        crate::trace::event_span("assign", Some(d), &m.event.event_id, &id);
                    spans.push(span);
                    traces.insert(id, (trace, m.received_at));
                    by_source.insert(source.clone(), d);
                    let body = d.payload.clone().unwrap_or_default();
                    events.push((
                        m.event,
                        Payload {
                            format: Format::Native,
                            source,
                            body,
                        },
                    ));
                }
                Err((kind, reason)) => {
                    dead_letter(&self.sink, &self.dlq_topic, &metrics, d, kind, &reason).await?;
                }
            }
        }
        let staged = self.pipeline.stage_events(events, now).await?;
        for dl in &staged.dead {
            if let Some(d) = by_source.get(&dl.source) {
                dead_letter(
                    &self.sink,
                    &self.dlq_topic,
                    &metrics,
                    d,
                    &dl.kind,
                    &dl.reason,
                )
                .await?;
            }
        }
        self.send(&staged, &traces).await?;
        let mut batch = staged.batch;
        stage_positions(&mut batch, &chunk);
        crate::pipeline::commit(self.pipeline.store(), batch, "assign").await?;
        ack_all(&self.source, &chunk, &metrics, "assign")?;
        drop(spans);
        metrics
            .batch_seconds
            .with_label_values(&["assign"])
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    async fn tick(&mut self) -> Result<(), ServiceError> {
        if let Some(f) = self.control.as_mut() {
            f.step(&mut self.pipeline, &self.sink).await?;
        }
        let staged = self.pipeline.stage_hydrated(crate::now_ms())?;
        if !staged.batch.is_empty() {
            self.send(&staged, &HashMap::new()).await?;
            crate::pipeline::commit(self.pipeline.store(), staged.batch, "hydrate").await?;
        }
        let Some(cfg) = self.sla.clone() else {
            return Ok(());
        };
        if tokio::time::Instant::now() < self.sla_next {
            return Ok(());
        }
        let now = crate::now_ms();
        let staged = self.pipeline.sla_stage(&cfg, self.sla_from, now)?;
        if !staged.decisions.is_empty() {
            self.send(&staged, &HashMap::new()).await?;
            crate::pipeline::commit(self.pipeline.store(), staged.batch, "sla").await?;
        }
        self.sla_from = now - i64::try_from(cfg.untouched_minutes).unwrap_or(60) * 60_000;
        self.sla_next =
            tokio::time::Instant::now() + Duration::from_secs(cfg.scan_interval_secs.max(1));
        Ok(())
    }
}

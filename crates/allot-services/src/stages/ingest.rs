//! `allot serve ingest`: raw CRM messages → decoded change events on
//! `allot.events`, one message per event keyed by record id (so every event
//! about a record reaches the same assign partition). Undecodable payloads
//! go to the dead-letter topic with their reason. The dedupe window here only
//! saves work: assign dedupes on event ids too, so a redelivery after a crash
//! is harmless.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use allot_bus::{Delivery, KafkaSink, KafkaSource};
use allot_events::{decode, Format};
use allot_store::Store;
use futures::future::try_join_all;

use super::messages::{self, headers, EventMessage};
use super::{ack_all, bus, dead_letter, position, stage_positions, ChunkStage};
use crate::metrics::Metrics;
use crate::ServiceError;

pub struct IngestStage {
    pub store: Arc<Store>,
    pub source: KafkaSource,
    pub sink: KafkaSink,
    pub events_topic: String,
    pub dlq_topic: String,
    /// Format per raw topic; topics not listed are detected.
    pub formats: HashMap<String, Format>,
    pub metrics: Metrics,
}

struct Out {
    key: String,
    body: Vec<u8>,
    event_id: String,
    trace: String,
}

impl ChunkStage for IngestStage {
    const NAME: &'static str = "ingest";

    fn source(&mut self) -> &mut KafkaSource {
        &mut self.source
    }

    fn into_source(self) -> KafkaSource {
        self.source
    }

    async fn process(&mut self, chunk: Vec<Delivery>) -> Result<(), ServiceError> {
        let started = Instant::now();
        let now = crate::now_ms();
        let mut batch = self.store.batch();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        // One span per event, open until the chunk is committed.
        let mut spans: Vec<tracing::Span> = Vec::new();
        for d in &chunk {
            self.metrics.consumed.with_label_values(&["kafka"]).inc();
            let Some(body) = d.payload.as_deref() else {
                dead_letter(
                    &self.sink,
                    &self.dlq_topic,
                    &self.metrics,
                    d,
                    "empty",
                    "message has no payload",
                )
                .await?;
                continue;
            };
            let format = self.formats.get(&d.topic).copied().unwrap_or(Format::Auto);
            let decoded = decode(body, format);
            if !decoded.errors.is_empty() {
                let kind = decoded.errors[0].kind();
                let reason: Vec<String> = decoded.errors.iter().map(ToString::to_string).collect();
                dead_letter(
                    &self.sink,
                    &self.dlq_topic,
                    &self.metrics,
                    d,
                    kind,
                    &reason.join("; "),
                )
                .await?;
            }
            for event in decoded.events {
                self.metrics
                    .decoded
                    .with_label_values(&[event.source.as_str()])
                    .inc();
                let key = event.dedupe_key();
                if !seen.insert(key.clone()) || self.store.seen(&key)? {
                    self.metrics.deduped.inc();
                    continue;
                }
                batch.mark_seen(&key, now);
                let key = event
                    .record_id
                    .clone()
                    .unwrap_or_else(|| event.object.to_string());
                let event_id = event.event_id.clone();
                let (span, trace) = crate::trace::event_span("ingest", Some(d), &event_id, &key);
                spans.push(span);
                let msg = EventMessage {
                    v: messages::VERSION,
                    event,
                    source: position(d),
                    received_at: now,
                };
                let body = serde_json::to_vec(&msg).map_err(|e| ServiceError::Stopped {
                    stage: "ingest",
                    detail: e.to_string(),
                })?;
                out.push(Out {
                    key,
                    body,
                    trace,
                    event_id,
                });
            }
        }
        let sink = &self.sink;
        let topic = self.events_topic.as_str();
        try_join_all(out.iter().map(|o| async move {
            sink.send(
                topic,
                o.key.as_bytes(),
                &o.body,
                &[
                    (headers::EVENT_ID, o.event_id.as_bytes()),
                    (headers::SCHEMA, b"event.v1"),
                    (headers::TRACEPARENT, o.trace.as_bytes()),
                ],
            )
            .await
        }))
        .await
        .map_err(bus("ingest"))?;
        stage_positions(&mut batch, &chunk);
        crate::pipeline::commit(&self.store, batch, "ingest").await?;
        ack_all(&self.source, &chunk, &self.metrics, "ingest")?;
        drop(spans);
        self.metrics
            .batch_seconds
            .with_label_values(&["ingest"])
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }
}

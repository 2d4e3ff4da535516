//! `allot serve write`: decisions from `allot.decisions` → owner changes in
//! this process's outbox, which the [`allot_writer::Writer`] sends to the
//! CRM in batches. The outbox keeps the newest `decided_at` per record, so a
//! decision delivered twice (or an older one after a newer) is never
//! written twice or backwards.

use std::sync::Arc;
use std::time::Instant;

use allot_bus::{Delivery, KafkaSink, KafkaSource};
use allot_store::Store;
use tokio::sync::Notify;

use super::messages::{self, DecisionMessage};
use super::{ack_all, dead_letter, stage_positions, ChunkStage};
use crate::metrics::Metrics;
use crate::ServiceError;

pub struct WriteStage {
    pub store: Arc<Store>,
    pub source: KafkaSource,
    /// Producer for dead letters.
    pub sink: KafkaSink,
    pub dlq_topic: String,
    pub metrics: Metrics,
    /// Woken when the outbox got new changes.
    pub outbox_ready: Arc<Notify>,
}

impl ChunkStage for WriteStage {
    const NAME: &'static str = "write";

    fn source(&mut self) -> &mut KafkaSource {
        &mut self.source
    }

    fn into_source(self) -> KafkaSource {
        self.source
    }

    async fn process(&mut self, chunk: Vec<Delivery>) -> Result<(), ServiceError> {
        let started = Instant::now();
        let mut batch = self.store.batch();
        let mut changes = 0;
        let mut spans: Vec<tracing::Span> = Vec::new();
        for d in &chunk {
            self.metrics.consumed.with_label_values(&["kafka"]).inc();
            match messages::read::<DecisionMessage>(d) {
                Ok(m) => {
                    if let Some(c) = &m.change {
                        spans.push(
                            crate::trace::event_span("write", Some(d), &c.event_id, &c.record_id).0,
                        );
                        if c.crm.is_none() {
                            let reason = format!(
                                "owner change of record {} names no CRM to write to",
                                c.record_id
                            );
                            dead_letter(
                                &self.sink,
                                &self.dlq_topic,
                                &self.metrics,
                                d,
                                "no_crm",
                                &reason,
                            )
                            .await?;
                            continue;
                        }
                        batch.outbox_put(c);
                        changes += 1;
                    }
                }
                Err((kind, reason)) => {
                    dead_letter(&self.sink, &self.dlq_topic, &self.metrics, d, kind, &reason)
                        .await?;
                }
            }
        }
        stage_positions(&mut batch, &chunk);
        crate::pipeline::commit(&self.store, batch, "write").await?;
        ack_all(&self.source, &chunk, &self.metrics, "write")?;
        drop(spans);
        if changes > 0 {
            self.outbox_ready.notify_one();
        }
        self.metrics
            .batch_seconds
            .with_label_values(&["write"])
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }
}

/// The group under which the write stage forwards its re-route log.
const FORWARD_GROUP: &str = "forward";

/// Takes the owner refusals the writer left in this store's re-route log
/// ([`crate::raw::REROUTE_LOG`]) to the events topic, keyed by record id,
/// so the match (or assign) stage decides them like any other event. The
/// log position is committed once the broker has them: a crash in between
/// sends them again, and the decider drops the repeat by event id.
pub async fn forward_refusals(
    store: Arc<Store>,
    sink: KafkaSink,
    events_topic: String,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), ServiceError> {
    tokio::pin!(stop);
    let log = store.log(crate::raw::REROUTE_LOG);
    let failed = |detail: String| ServiceError::Stopped {
        stage: "write",
        detail,
    };
    loop {
        let seen = log.generation();
        let entries = log.read(log.committed(FORWARD_GROUP)?, 500)?;
        let mut sent = true;
        for (offset, body) in &entries {
            let event: allot_core::ChangeEvent = match serde_json::from_slice(body) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(offset, error = %e, "re-route log entry is not an event: skipped");
                    continue;
                }
            };
            let key = event.record_id.clone().unwrap_or_default();
            let event_id = event.event_id.clone();
            let msg = messages::EventMessage {
                v: messages::VERSION,
                event,
                source: format!("{}@{offset}", crate::raw::REROUTE_LOG),
                received_at: crate::now_ms(),
            };
            let bytes = serde_json::to_vec(&msg).map_err(|e| failed(e.to_string()))?;
            let headers = [
                (messages::headers::EVENT_ID, event_id.as_bytes()),
                (messages::headers::SCHEMA, b"event.v1".as_slice()),
            ];
            if let Err(e) = sink
                .send(&events_topic, key.as_bytes(), &bytes, &headers)
                .await
            {
                // Not committed: the whole read is sent again after a pause.
                tracing::warn!(error = %e, "cannot forward an owner refusal; retrying");
                sent = false;
                break;
            }
            tracing::info!(record_id = %key, %event_id, "owner refusal sent to the decider");
        }
        if !sent {
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                () = &mut stop => return Ok(()),
            }
        }
        if let Some(&(last, _)) = entries.last() {
            let mut b = store.batch();
            b.log_commit(crate::raw::REROUTE_LOG, FORWARD_GROUP, last + 1);
            store.commit(b)?;
            continue;
        }
        tokio::select! {
            _ = log.changed(seen) => {}
            () = &mut stop => return Ok(()),
        }
    }
}

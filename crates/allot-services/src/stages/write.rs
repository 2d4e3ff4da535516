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

//! The api stage's view in microservice mode: decisions from
//! `allot.decisions` appended to this process's audit, so "why does X own
//! this record?" and the dashboard work without reaching into assign's store.
//! The same decision delivered twice (a redelivery, a rebuild over what is
//! already stored) is stored once: a decision already in the audit for its
//! record at its `decided_at` with the same owner and rules is skipped.

use std::sync::Arc;
use std::time::Instant;

use allot_bus::{Delivery, KafkaSink, KafkaSource};
use allot_store::Store;

use super::messages::{self, DecisionMessage};
use super::{ack_all, dead_letter, stage_positions, ChunkStage};
use crate::metrics::Metrics;
use crate::ServiceError;

pub struct ReadModel {
    pub store: Arc<Store>,
    pub source: KafkaSource,
    pub sink: KafkaSink,
    pub dlq_topic: String,
    pub metrics: Metrics,
}

impl ChunkStage for ReadModel {
    const NAME: &'static str = "api";

    fn source(&mut self) -> &mut KafkaSource {
        &mut self.source
    }

    fn into_source(self) -> KafkaSource {
        self.source
    }

    async fn process(&mut self, chunk: Vec<Delivery>) -> Result<(), ServiceError> {
        let started = Instant::now();
        let mut batch = self.store.batch();
        let mut seen = std::collections::HashSet::new();
        for d in &chunk {
            match messages::read::<DecisionMessage>(d) {
                Ok(m) => {
                    let dec = &m.decision;
                    let key = (dec.record_id.clone(), dec.decided_at, dec.owner.clone());
                    let stored = self
                        .store
                        .audit_for(&dec.record_id, dec.decided_at, dec.decided_at + 1)?
                        .iter()
                        .any(|a| a.owner == dec.owner && a.rules_version == dec.rules_version);
                    if stored || !seen.insert(key) {
                        continue;
                    }
                    self.metrics
                        .decisions
                        .with_label_values(&[
                            dec.strategy.as_str(),
                            if dec.changed { "true" } else { "false" },
                        ])
                        .inc();
                    self.metrics
                        .decisions_by_territory
                        .with_label_values(&[dec.territory.as_deref().unwrap_or("(none)")])
                        .inc();
                    batch.append_audit(dec);
                }
                Err((kind, reason)) => {
                    dead_letter(&self.sink, &self.dlq_topic, &self.metrics, d, kind, &reason)
                        .await?;
                }
            }
        }
        stage_positions(&mut batch, &chunk);
        crate::pipeline::commit(&self.store, batch, "api").await?;
        ack_all(&self.source, &chunk, &self.metrics, "api")?;
        self.metrics
            .batch_seconds
            .with_label_values(&["api"])
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }
}

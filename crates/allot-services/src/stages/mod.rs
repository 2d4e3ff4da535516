//! The stages of microservice mode, each its own process over Kafka
//! (`allot serve ingest|assign|write|api`), scaled by partitions within one
//! consumer group per stage:
//!
//! ```text
//! raw CRM topics ─ingest─▶ allot.events ─assign─▶ allot.decisions ─┬─write─▶ CRM
//!                                                                  └─api (audit, explain)
//! ```
//!
//! Every hop has the same contract: a chunk of deliveries is turned into
//! messages for the next topic (awaited until the brokers acknowledged
//! them), then the stage's own effects are committed to its store, then the
//! deliveries are acked. A crash anywhere redoes the chunk; the next stage's
//! dedupe (event ids in assign, `decided_at` fencing in the outbox) makes
//! the redo harmless. The messages are [`messages`]: versioned JSON, keyed
//! by record id, with the event id and W3C trace context in headers.

pub mod assign;
pub mod distribute;
pub mod follow;
pub mod ingest;
pub mod matching;
pub mod messages;
pub mod read_model;
pub mod write;

use std::future::Future;
use std::time::Duration;

use allot_bus::{Delivery, KafkaSink, KafkaSource};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::ServiceError;

/// Topics and consumer groups of microservice mode (`[kafka.stages]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StageConfig {
    /// Decoded, deduplicated change events (ingest → assign).
    pub events_topic: String,
    /// Decisions with their owner changes (assign → write, api).
    pub decisions_topic: String,
    /// Matched records and load changes, partitioned by distribution pool
    /// (match → distribute, distribute → distribute).
    pub distribute_topic: String,
    /// Each distribute partition's pool state (cursors, loads, daily
    /// counts), one record per partition, compacted.
    pub changelog_topic: String,
    /// The account table (lead-to-account), compacted, read in full by
    /// every match replica.
    pub accounts_topic: String,
    /// Rule activations and rep changes from the admin API, compacted,
    /// read in full by every assign, match and distribute replica.
    pub control_topic: String,
    pub assign_group: String,
    pub match_group: String,
    pub distribute_group: String,
    pub write_group: String,
    pub api_group: String,
    /// Most deliveries per chunk (one store commit each).
    pub max_chunk: usize,
    /// After the first delivery, how long a chunk waits for more.
    pub linger_ms: u64,
}

impl Default for StageConfig {
    fn default() -> Self {
        StageConfig {
            events_topic: "allot.events".into(),
            decisions_topic: "allot.decisions".into(),
            distribute_topic: "allot.distribute".into(),
            changelog_topic: "allot.distribute-state".into(),
            accounts_topic: "allot.accounts".into(),
            control_topic: "allot.control".into(),
            assign_group: "allot-assign".into(),
            match_group: "allot-match".into(),
            distribute_group: "allot-distribute".into(),
            write_group: "allot-write".into(),
            api_group: "allot-api".into(),
            max_chunk: 256,
            linger_ms: 5,
        }
    }
}

pub(crate) fn bus(stage: &'static str) -> impl Fn(allot_bus::BusError) -> ServiceError {
    move |e| ServiceError::Stopped {
        stage,
        detail: e.to_string(),
    }
}

/// A stage fed by a [`KafkaSource`] one chunk at a time.
pub trait ChunkStage: Send {
    const NAME: &'static str;
    fn source(&mut self) -> &mut KafkaSource;
    fn into_source(self) -> KafkaSource;
    /// Processes, commits and acks one chunk.
    fn process(
        &mut self,
        chunk: Vec<Delivery>,
    ) -> impl Future<Output = Result<(), ServiceError>> + Send;
    /// Called at least once a second between chunks (timers such as SLA scans).
    fn tick(&mut self) -> impl Future<Output = Result<(), ServiceError>> + Send {
        async { Ok(()) }
    }
}

/// Runs `stage` until `shutdown` resolves, then commits its acked offsets and
/// leaves the group.
pub async fn run<S: ChunkStage>(
    mut stage: S,
    max_chunk: usize,
    linger: Duration,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServiceError> {
    tokio::pin!(shutdown);
    info!(stage = S::NAME, "stage started");
    loop {
        stage.tick().await?;
        let first = tokio::select! {
            d = stage.source().next() => d,
            _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
            _ = &mut shutdown => break,
        };
        let first = match first {
            Ok(d) => d,
            Err(e) if e.retryable() => {
                warn!(stage = S::NAME, error = %e, "consume failed, retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(e) => return Err(bus(S::NAME)(e)),
        };
        let chunk = fill(stage.source(), first, max_chunk, linger).await;
        stage.process(chunk).await?;
    }
    stage.into_source().close().await.map_err(bus(S::NAME))?;
    info!(stage = S::NAME, "stage stopped");
    Ok(())
}

/// `first` and whatever else arrives within `linger`, up to `max` deliveries.
pub async fn fill(
    source: &mut KafkaSource,
    first: Delivery,
    max: usize,
    linger: Duration,
) -> Vec<Delivery> {
    let mut chunk = vec![first];
    let deadline = tokio::time::Instant::now() + linger;
    while chunk.len() < max {
        match tokio::time::timeout_at(deadline, source.next()).await {
            Ok(Ok(d)) => chunk.push(d),
            Ok(Err(e)) => {
                warn!(error = %e, "consume failed mid-chunk");
                break;
            }
            Err(_) => break,
        }
    }
    chunk
}

/// Where a delivery came from, as dead letters and logs name it.
pub fn position(d: &Delivery) -> String {
    format!("kafka:{}:{}@{}", d.topic, d.partition, d.offset)
}

/// Stores each partition's next offset in `batch` (for `allot state` and
/// diagnostics; the group's committed offsets are what consumption resumes from).
pub fn stage_positions(batch: &mut allot_store::Batch, chunk: &[Delivery]) {
    let mut ends: std::collections::HashMap<(&str, i32), i64> = Default::default();
    for d in chunk {
        let e = ends.entry((&d.topic, d.partition)).or_insert(d.offset);
        *e = (*e).max(d.offset);
    }
    for ((topic, partition), offset) in ends {
        batch.set_position(&format!("kafka:{topic}:{partition}"), offset + 1);
    }
}

/// Dead-letters `d` and counts it.
pub async fn dead_letter(
    sink: &KafkaSink,
    dlq: &str,
    metrics: &Metrics,
    d: &Delivery,
    kind: &str,
    reason: &str,
) -> Result<(), ServiceError> {
    warn!(event = "allot.dead_letter", source = %position(d), kind, reason, "dead-lettered");
    metrics.dead_lettered.with_label_values(&[kind]).inc();
    sink.dead_letter(dlq, d, kind, reason)
        .await
        .map(|_| ())
        .map_err(bus("dead letter"))
}

/// Acks every delivery of a committed chunk and publishes the lag.
pub fn ack_all(
    source: &KafkaSource,
    chunk: &[Delivery],
    metrics: &Metrics,
    stage: &'static str,
) -> Result<(), ServiceError> {
    for d in chunk {
        source.ack(d).map_err(bus(stage))?;
    }
    for lag in source.lag() {
        metrics
            .lag
            .with_label_values(&[&lag.topic, &lag.partition.to_string()])
            .set(lag.lag);
    }
    Ok(())
}

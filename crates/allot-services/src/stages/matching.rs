//! `allot serve match`: change events from `allot.events`, keyed by record
//! id → merged, hydrated records engaged up to their winning territory or
//! settled owner, sent to `allot.distribute` partitioned by distribution
//! pool, where `allot serve distribute` picks the rep. The pool's answer
//! (`settled.v1`) comes back on `allot.events` under the record's key, so
//! it reaches the replica that owns the record, in order with its events.
//!
//! Order per chunk: routes, load changes and account changes are sent and
//! acknowledged, then records, waits and dedupe marks are committed, then
//! the deliveries are acked. A redo sends the same routes again (same ids,
//! same pools): distribute drops the repeats.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use allot_bus::{Delivery, KafkaSink, KafkaSource, TopicReader};
use allot_core::StateOp;
use allot_events::Format;
use allot_rules::RuleSet;
use futures::future::try_join_all;
use tracing::{debug, warn};

use super::messages::{
    self, headers, pool_partition, AccountMessage, EventMessage, LoadMessage, PoolBody,
    PoolMessage, SettledMessage,
};
use super::{ack_all, bus, dead_letter, position, stage_positions, ChunkStage};
use crate::pipeline::{Input, Payload, Pipeline, Staged};
use crate::ServiceError;

/// Where the match stage sends what it produces.
#[derive(Debug, Clone)]
pub struct MatchTopics {
    pub distribute: String,
    pub accounts: String,
    pub dlq: String,
}

pub struct MatchStage {
    pipeline: Pipeline,
    source: KafkaSource,
    sink: KafkaSink,
    topics: MatchTopics,
    /// Partitions of the distribute topic.
    partitions: i32,
    /// The account table, read in full.
    accounts: TopicReader,
    /// The control topic, when this stage follows it.
    control: Option<super::follow::Follower>,
}

impl MatchStage {
    /// A match stage over `pipeline` (switched to split mode here). Reads
    /// the account table up to its end before the first chunk.
    pub async fn start(
        mut pipeline: Pipeline,
        source: KafkaSource,
        sink: KafkaSink,
        accounts: TopicReader,
        topics: MatchTopics,
    ) -> Result<MatchStage, ServiceError> {
        pipeline.set_split();
        let partitions = sink
            .partitions(&topics.distribute)
            .await
            .map_err(bus("match"))?;
        let mut s = MatchStage {
            pipeline,
            source,
            sink,
            topics,
            partitions,
            accounts,
            control: None,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            s.read_accounts().await?;
            if s.accounts.caught_up().await.map_err(bus("match"))? {
                break;
            }
            if Instant::now() > deadline {
                warn!("account table not read to its end within 60 s; starting anyway, it keeps being read");
                break;
            }
        }
        Ok(s)
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

    /// Applies what arrived on the accounts topic.
    async fn read_accounts(&mut self) -> Result<(), ServiceError> {
        let mut ops = Vec::new();
        while let Some(d) = self
            .accounts
            .poll(Duration::from_millis(if ops.is_empty() { 50 } else { 1 }))
            .await
            .map_err(bus("match"))?
        {
            match messages::read::<AccountMessage>(&d) {
                Ok(m) => ops.push(m.op),
                Err((kind, why)) => {
                    warn!(kind, reason = %why, source = %position(&d), "account message skipped")
                }
            }
            if ops.len() >= 10_000 {
                break;
            }
        }
        if !ops.is_empty() {
            debug!(n = ops.len(), "account table changes applied");
            self.pipeline.apply_accounts(&ops);
        }
        Ok(())
    }

    fn rules(&self) -> &Arc<RuleSet> {
        self.pipeline.rules()
    }

    /// Sends the routes, loads and account changes of `staged`.
    async fn send(
        &self,
        staged: &Staged,
        received: &HashMap<String, i64>,
    ) -> Result<(), ServiceError> {
        let mut out: Vec<(i32, String, Vec<u8>, String)> = Vec::new();
        for r in &staged.routes {
            let mut r = r.clone();
            r.received_at = received.get(&r.record.id).copied();
            let key = r.at.clone();
            let trace = messages::traceparent(None, &r.event_id);
            out.push((
                pool_partition(&key, self.partitions),
                key,
                encode(&PoolMessage {
                    v: messages::VERSION,
                    body: PoolBody::Route(Box::new(r)),
                })?,
                trace,
            ));
        }
        for l in loads(self.rules(), &staged.loads) {
            let key = l.at.clone();
            out.push((
                pool_partition(&key, self.partitions),
                key,
                encode(&PoolMessage {
                    v: messages::VERSION,
                    body: PoolBody::Load(l),
                })?,
                String::new(),
            ));
        }
        let (sink, topic) = (&self.sink, self.topics.distribute.as_str());
        try_join_all(out.iter().map(|(p, key, body, trace)| async move {
            sink.send_to(
                topic,
                *p,
                key.as_bytes(),
                body,
                &[
                    (headers::SCHEMA, b"pool.v1"),
                    (headers::TRACEPARENT, trace.as_bytes()),
                ],
            )
            .await
        }))
        .await
        .map_err(bus("match"))?;
        publish_accounts(&self.sink, &self.topics.accounts, &staged.accounts).await
    }
}

/// Groups load changes by the pool that owns each, with ids stable across
/// redos (`cause/pool/n`).
pub fn loads(rules: &RuleSet, loads: &[(String, StateOp)]) -> Vec<LoadMessage> {
    let mut out: Vec<LoadMessage> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    for (cause, op) in loads {
        let Some(pool) = rules.pools().of_op(rules, op) else {
            continue;
        };
        let i = *index
            .entry((cause.clone(), pool.clone()))
            .or_insert_with(|| {
                out.push(LoadMessage {
                    id: format!("{cause}/{pool}"),
                    at: pool.clone(),
                    ops: Vec::new(),
                    cause: cause.clone(),
                });
                out.len() - 1
            });
        out[i].ops.push(op.clone());
    }
    out
}

/// Sends account table changes, keyed by account id (compaction keeps the last).
pub async fn publish_accounts(
    sink: &KafkaSink,
    topic: &str,
    ops: &[StateOp],
) -> Result<(), ServiceError> {
    let mut out = Vec::new();
    for op in ops {
        let key = match op {
            StateOp::UpsertAccount { account, .. } => account.account_id.clone(),
            StateOp::RemoveAccount { account_id, .. } => account_id.clone(),
            _ => continue,
        };
        let body = encode(&AccountMessage {
            v: messages::VERSION,
            op: op.clone(),
        })?;
        out.push((key, body));
    }
    try_join_all(out.iter().map(|(key, body)| async move {
        sink.send(
            topic,
            key.as_bytes(),
            body,
            &[(headers::SCHEMA, b"account.v1")],
        )
        .await
    }))
    .await
    .map_err(bus("match"))?;
    Ok(())
}

pub(crate) fn encode<T: serde::Serialize>(m: &T) -> Result<Vec<u8>, ServiceError> {
    serde_json::to_vec(m).map_err(|e| ServiceError::Stopped {
        stage: "encode",
        detail: e.to_string(),
    })
}

impl ChunkStage for MatchStage {
    const NAME: &'static str = "match";

    fn source(&mut self) -> &mut KafkaSource {
        &mut self.source
    }

    fn into_source(self) -> KafkaSource {
        self.source
    }

    async fn process(&mut self, chunk: Vec<Delivery>) -> Result<(), ServiceError> {
        let started = Instant::now();
        let now = crate::now_ms();
        self.read_accounts().await?;
        let metrics = self.pipeline.metrics().clone();
        let mut inputs = Vec::with_capacity(chunk.len());
        let mut received = HashMap::new();
        let mut by_source = HashMap::new();
        let mut spans: Vec<tracing::Span> = Vec::new();
        for d in &chunk {
            metrics.consumed.with_label_values(&["kafka"]).inc();
            if d.header(headers::SCHEMA) == Some(b"settled.v1".as_slice()) {
                match messages::read::<SettledMessage>(d) {
                    Ok(s) => inputs.push(Input::Settled(s)),
                    Err((kind, reason)) => {
                        dead_letter(&self.sink, &self.topics.dlq, &metrics, d, kind, &reason)
                            .await?
                    }
                }
                continue;
            }
            match messages::read::<EventMessage>(d) {
                Ok(m) => {
                    let source = position(d);
                    let id = m.event.record_id.clone().unwrap_or_default();
                    let (span, _) =
                        crate::trace::event_span("match", Some(d), &m.event.event_id, &id);
                    spans.push(span);
                    received.insert(id, m.received_at);
                    by_source.insert(source.clone(), d);
                    let body = d.payload.clone().unwrap_or_default();
                    inputs.push(Input::Event(
                        m.event,
                        Payload {
                            format: Format::Native,
                            source,
                            body,
                        },
                    ));
                }
                Err((kind, reason)) => {
                    dead_letter(&self.sink, &self.topics.dlq, &metrics, d, kind, &reason).await?;
                }
            }
        }
        let staged = self.pipeline.stage_inputs(inputs, now).await?;
        for dl in &staged.dead {
            if let Some(d) = by_source.get(&dl.source) {
                dead_letter(
                    &self.sink,
                    &self.topics.dlq,
                    &metrics,
                    d,
                    &dl.kind,
                    &dl.reason,
                )
                .await?;
            }
        }
        self.send(&staged, &received).await?;
        let mut batch = staged.batch;
        stage_positions(&mut batch, &chunk);
        crate::pipeline::commit(self.pipeline.store(), batch, "match").await?;
        ack_all(&self.source, &chunk, &metrics, "match")?;
        drop(spans);
        metrics
            .batch_seconds
            .with_label_values(&["match"])
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    async fn tick(&mut self) -> Result<(), ServiceError> {
        if let Some(f) = self.control.as_mut() {
            f.step(&mut self.pipeline, &self.sink).await?;
        }
        self.read_accounts().await?;
        let staged = self.pipeline.stage_hydrated(crate::now_ms())?;
        if !staged.batch.is_empty() {
            self.send(&staged, &HashMap::new()).await?;
            crate::pipeline::commit(self.pipeline.store(), staged.batch, "hydrate").await?;
        }
        Ok(())
    }
}

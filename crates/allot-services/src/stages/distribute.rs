//! `allot serve distribute`: matched records from `allot.distribute`,
//! partitioned by distribution pool → the rep picked with the pool's
//! cursor, loads and daily counts, which live only in the partition that
//! owns the pool (one writer per pool, however many replicas run).
//!
//! Per chunk: decisions go to `allot.decisions` (write, api), the new
//! owner back to match on `allot.events`, load changes for other pools to
//! their partitions, account changes to the account table, then each
//! touched partition's state (with the input offset it reflects) to
//! `allot.distribute-state`, then the deliveries are acked.
//!
//! A replica that gets a partition (start, crash of another, rebalance)
//! loads its state from the partition's last changelog record and skips
//! inputs at or below the offset it reflects: their effects were sent
//! before the state was. A crash before the state was sent redoes the
//! chunk from the state before it, so the redo decides the same way.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use allot_bus::{Delivery, KafkaConfig, KafkaSink, KafkaSource, TopicReader};
use allot_core::{EngineState, OwnerChange, StateOp};
use allot_rules::{decide, decide_after_named, try_named, NamedTry, RuleSet};
use futures::future::try_join_all;
use tracing::{debug, info, warn};

use super::matching::{encode, publish_accounts};
use super::messages::{
    self, headers, pool_partition, ChangelogMessage, DecisionMessage, LoadMessage, PoolBody,
    PoolMessage, RouteMessage, SettledMessage,
};
use super::{ack_all, bus, dead_letter, ChunkStage};
use crate::metrics::Metrics;
use crate::ServiceError;

/// Repeats remembered (route and load ids), for redos of other stages.
const SEEN: usize = 65_536;

/// Topics of the distribute stage.
#[derive(Debug, Clone)]
pub struct DistributeTopics {
    pub distribute: String,
    pub changelog: String,
    pub decisions: String,
    pub events: String,
    pub accounts: String,
    pub dlq: String,
}

/// One owned partition's pools.
#[derive(Debug, Default)]
struct Part {
    /// Last input offset its state reflects (-1: none).
    through: i64,
    state: EngineState,
}

pub struct DistributeStage {
    rules: Arc<RuleSet>,
    source: KafkaSource,
    sink: KafkaSink,
    /// For the changelog reads.
    bus: KafkaConfig,
    topics: DistributeTopics,
    partitions: i32,
    parts: HashMap<i32, Part>,
    generation: u64,
    seen: HashSet<String>,
    order: VecDeque<String>,
    metrics: Metrics,
    /// The control topic, when this stage follows it.
    control: Option<super::follow::RulesInForce>,
}

/// What one chunk sends.
#[derive(Default)]
struct Out {
    decisions: Vec<DecisionMessage>,
    settled: Vec<SettledMessage>,
    pool: Vec<PoolMessage>,
    accounts: Vec<StateOp>,
}

impl DistributeStage {
    pub async fn start(
        rules: Arc<RuleSet>,
        source: KafkaSource,
        sink: KafkaSink,
        bus_cfg: KafkaConfig,
        topics: DistributeTopics,
        metrics: Metrics,
    ) -> Result<DistributeStage, ServiceError> {
        let partitions = sink
            .partitions(&topics.distribute)
            .await
            .map_err(bus("distribute"))?;
        let changelog = sink
            .partitions(&topics.changelog)
            .await
            .map_err(bus("distribute"))?;
        if changelog != partitions {
            return Err(ServiceError::Stopped {
                stage: "distribute",
                detail: format!(
                    "{} has {changelog} partitions and {} has {partitions}: they must match",
                    topics.changelog, topics.distribute
                ),
            });
        }
        Ok(DistributeStage {
            rules,
            source,
            sink,
            bus: bus_cfg,
            topics,
            partitions,
            parts: HashMap::new(),
            generation: u64::MAX,
            seen: HashSet::new(),
            order: VecDeque::new(),
            metrics,
            control: None,
        })
    }

    /// Follows the control topic: rule activations and rep changes made
    /// through the api stage (applied before the first chunk, then between chunks).
    pub async fn follow(
        &mut self,
        feed: crate::control::ControlFeed,
        store: Arc<allot_store::Store>,
    ) -> Result<(), ServiceError> {
        let (f, rules) =
            super::follow::RulesInForce::start(feed, store, self.rules.clone()).await?;
        self.rules = rules;
        self.control = Some(f);
        Ok(())
    }

    async fn follow_step(&mut self) -> Result<(), ServiceError> {
        if let Some(f) = self.control.as_mut() {
            if let Some(rules) = f.step().await? {
                self.rules = rules;
            }
        }
        Ok(())
    }

    /// The newest changelog entry of partition `p`; a broker slow to answer
    /// (metadata or fetch timing out while partitions move) is asked again
    /// a few times before the stage gives up.
    async fn last_changelog(&self, p: i32) -> Result<Option<Delivery>, ServiceError> {
        let mut pause = Duration::from_secs(1);
        for _ in 0..5 {
            match TopicReader::last(
                &self.bus,
                &self.topics.changelog,
                p,
                Duration::from_secs(30),
            )
            .await
            {
                Ok(last) => return Ok(last),
                Err(e) => {
                    warn!(partition = p, error = %e, "changelog not read; asking again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        }
        TopicReader::last(
            &self.bus,
            &self.topics.changelog,
            p,
            Duration::from_secs(30),
        )
        .await
        .map_err(bus("distribute"))
    }

    async fn part(&mut self, p: i32) -> Result<&mut Part, ServiceError> {
        if !self.parts.contains_key(&p) {
            let last = self.last_changelog(p).await?;
            let part = match last.as_ref().map(messages::read::<ChangelogMessage>) {
                Some(Ok(m)) => Part {
                    through: m.through,
                    state: m.state,
                },
                Some(Err((kind, why))) => {
                    return Err(ServiceError::Stopped {
                        stage: "distribute",
                        detail: format!(
                            "changelog of partition {p} cannot be read ({kind}): {why}"
                        ),
                    })
                }
                None => Part {
                    through: -1,
                    state: EngineState::default(),
                },
            };
            info!(
                partition = p,
                through = part.through,
                teams = part.state.cursors.len(),
                reps = part.state.open.len(),
                "pool state loaded"
            );
            self.parts.insert(p, part);
        }
        Ok(self.parts.get_mut(&p).expect("inserted above"))
    }

    fn first_time(&mut self, id: &str) -> bool {
        if !self.seen.insert(id.to_string()) {
            return false;
        }
        self.order.push_back(id.to_string());
        while self.order.len() > SEEN {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    /// Decides `r` in partition `p`, or hands it to the next pool.
    fn route(&mut self, p: i32, mut r: RouteMessage, out: &mut Out) {
        let rules = match r.exclude.is_empty() {
            true => self.rules.clone(),
            false => Arc::new(allot_rules::overrides::without_reps(
                &self.rules,
                &r.exclude,
            )),
        };
        let Some(part) = self.parts.get_mut(&p) else {
            return;
        };
        let state = &mut part.state;
        state.accounts_by_domain = r.accounts.iter().cloned().collect();
        let outcome = match (&r.refusal, r.named.as_deref() == Some(r.at.as_str())) {
            (None, true) => match try_named(&rules, state, &r.record, r.now) {
                NamedTry::Took(o) => *o,
                NamedTry::Refused(line) => {
                    state.accounts_by_domain.clear();
                    r.refusal = Some(line);
                    r.at = r
                        .pool
                        .clone()
                        .unwrap_or_else(|| format!("record:{}", r.record.id));
                    debug!(record_id = %r.record.id, to = %r.at, "named account refused; on to the territory's pool");
                    out.pool.push(PoolMessage {
                        v: messages::VERSION,
                        body: PoolBody::Route(Box::new(r)),
                    });
                    return;
                }
            },
            (Some(line), _) => decide_after_named(&rules, state, &r.record, r.now, line.clone()),
            (None, false) => decide(&rules, state, &r.record, r.now),
        };
        state.accounts_by_domain.clear();
        let mut loads: HashMap<String, Vec<StateOp>> = HashMap::new();
        for op in outcome.ops {
            match rules.pools().of_op(&rules, &op) {
                None => out.accounts.push(op),
                Some(pool) if pool == r.at => state.apply_one(&op),
                Some(pool) => loads.entry(pool).or_default().push(op),
            }
        }
        let mut pools: Vec<_> = loads.into_iter().collect();
        pools.sort_by(|a, b| a.0.cmp(&b.0));
        for (pool, ops) in pools {
            out.pool.push(PoolMessage {
                v: messages::VERSION,
                body: PoolBody::Load(LoadMessage {
                    id: format!("{}/{pool}", r.id),
                    at: pool,
                    ops,
                    cause: r.id.clone(),
                }),
            });
        }
        let mut d = outcome.decision;
        if let Some(note) = r.note.take() {
            d.explanation.insert(0, note.clone());
            d.warnings.push(note);
        }
        self.metrics
            .decisions
            .with_label_values(&[
                d.strategy.as_str(),
                if d.changed { "true" } else { "false" },
            ])
            .inc();
        let change = d
            .owner_change(&r.event_id)
            .map(|c| OwnerChange { crm: r.crm, ..c });
        out.settled.push(SettledMessage {
            v: messages::VERSION,
            route_id: r.id.clone(),
            object: d.object,
            record_id: d.record_id.clone(),
            owner: change.as_ref().map(|c| c.owner.clone()),
            decided_at: d.decided_at,
        });
        debug!(event = "allot.decision", record_id = %d.record_id, owner = ?d.owner, pool = %r.at, "distributed");
        out.decisions.push(DecisionMessage {
            v: messages::VERSION,
            decision: d,
            change,
            received_at: r.received_at,
        });
    }

    async fn send(&self, out: &Out, touched: &BTreeSet<i32>) -> Result<(), ServiceError> {
        let sink = &self.sink;
        let mut sends = Vec::new();
        for m in &out.decisions {
            let trace = messages::traceparent(None, &m.decision.record_id);
            let event_id = m
                .change
                .as_ref()
                .map(|c| c.event_id.clone())
                .unwrap_or_default();
            sends.push((
                self.topics.decisions.as_str(),
                None,
                m.decision.record_id.clone(),
                encode(m)?,
                "decision.v1",
                event_id,
                trace,
            ));
        }
        for m in &out.settled {
            sends.push((
                self.topics.events.as_str(),
                None,
                m.record_id.clone(),
                encode(m)?,
                "settled.v1",
                String::new(),
                String::new(),
            ));
        }
        for m in &out.pool {
            let at = match &m.body {
                PoolBody::Route(r) => r.at.clone(),
                PoolBody::Load(l) => l.at.clone(),
            };
            sends.push((
                self.topics.distribute.as_str(),
                Some(pool_partition(&at, self.partitions)),
                at,
                encode(m)?,
                "pool.v1",
                String::new(),
                String::new(),
            ));
        }
        try_join_all(sends.iter().map(
            |(topic, partition, key, body, schema, event_id, trace)| async move {
                let h: [(&str, &[u8]); 3] = [
                    (headers::SCHEMA, schema.as_bytes()),
                    (headers::EVENT_ID, event_id.as_bytes()),
                    (headers::TRACEPARENT, trace.as_bytes()),
                ];
                match partition {
                    Some(p) => sink.send_to(topic, *p, key.as_bytes(), body, &h).await,
                    None => sink.send(topic, key.as_bytes(), body, &h).await,
                }
            },
        ))
        .await
        .map_err(bus("distribute"))?;
        publish_accounts(sink, &self.topics.accounts, &out.accounts).await?;
        // The state goes last: everything it reflects was sent before it.
        let mut logs = Vec::new();
        for &p in touched {
            if let Some(part) = self.parts.get(&p) {
                let body = encode(&ChangelogMessage {
                    v: messages::VERSION,
                    partition: p,
                    through: part.through,
                    state: part.state.clone(),
                })?;
                logs.push((p, format!("p{p}"), body));
            }
        }
        try_join_all(logs.iter().map(|(p, key, body)| {
            sink.send_to(
                &self.topics.changelog,
                *p,
                key.as_bytes(),
                body,
                &[(headers::SCHEMA, b"changelog.v1")],
            )
        }))
        .await
        .map_err(bus("distribute"))?;
        Ok(())
    }
}

impl ChunkStage for DistributeStage {
    const NAME: &'static str = "distribute";

    fn source(&mut self) -> &mut KafkaSource {
        &mut self.source
    }

    fn into_source(self) -> KafkaSource {
        self.source
    }

    async fn tick(&mut self) -> Result<(), ServiceError> {
        self.follow_step().await
    }

    async fn process(&mut self, chunk: Vec<Delivery>) -> Result<(), ServiceError> {
        let started = Instant::now();
        let generation = self.source.generation();
        if generation != self.generation {
            // Partitions moved: what is held may be stale; reload on use.
            self.parts.clear();
            self.generation = generation;
        }
        let metrics = self.metrics.clone();
        let mut out = Out::default();
        let mut touched = BTreeSet::new();
        for d in &chunk {
            metrics.consumed.with_label_values(&["kafka"]).inc();
            let through = self.part(d.partition).await?.through;
            if d.offset <= through {
                continue;
            }
            match messages::read::<PoolMessage>(d) {
                Err((kind, reason)) => {
                    dead_letter(&self.sink, &self.topics.dlq, &metrics, d, kind, &reason).await?
                }
                Ok(m) => match m.body {
                    PoolBody::Route(r) => {
                        if self.first_time(&r.id) {
                            if r.rules_version != self.rules.version {
                                warn!(record_id = %r.record.id, matched = %r.rules_version, active = %self.rules.version, "matched under another rules version");
                            }
                            self.route(d.partition, *r, &mut out);
                        }
                    }
                    PoolBody::Load(l) => {
                        if self.first_time(&l.id) {
                            if let Some(part) = self.parts.get_mut(&d.partition) {
                                part.state.apply(&l.ops);
                            }
                        }
                    }
                },
            }
            if let Some(part) = self.parts.get_mut(&d.partition) {
                part.through = d.offset;
            }
            touched.insert(d.partition);
        }
        self.send(&out, &touched).await?;
        ack_all(&self.source, &chunk, &metrics, "distribute")?;
        metrics
            .batch_seconds
            .with_label_values(&["distribute"])
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }
}

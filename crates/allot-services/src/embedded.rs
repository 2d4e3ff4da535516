//! The single-process ingest loop over the embedded durable log: read a
//! chunk from the committed position, stage it through the pipeline, commit
//! the effects, dead letters and the new position in one batch.
//!
//! Traces: a span `ingest` per chunk (its entries, events, decisions and
//! dead letters; the pipeline's named events inside it), and per decision
//! a span `assign` (its record), in the event's trace as in `allot serve`
//! when the decision changed an owner.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use allot_events::Format;
use allot_store::Store;
use tokio::sync::Notify;
use tracing::{info, Instrument};

use crate::control::{Controller, Envelope};
use crate::owner::{Owner, SlaClock};
use crate::pipeline::{Payload, Pipeline, Staged};
use crate::raw::{DeadLetter, RawEntry, DLQ_LOG, INGEST_GROUP, RAW_LOG, REROUTE_LOG};
use crate::ServiceError;

/// The embedded ingest (and assign) stage.
pub struct EmbeddedIngest {
    pub store: Arc<Store>,
    pub pipeline: Pipeline,
    /// Woken after each commit that put owner changes in the outbox.
    pub outbox_ready: Arc<Notify>,
    /// Most log entries per batch.
    pub max_chunk: usize,
    /// SLA re-routing, when enabled; checked every `scan_interval_secs`.
    pub sla: Option<crate::sla::SlaConfig>,
    /// Commands from the admin API, rule switches and realignment; applied
    /// between chunks. `None` runs the rules the pipeline was built with.
    pub control: Option<Controller>,
}

/// Counts of one committed chunk, for callers that report progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkReport {
    pub entries: usize,
    pub events: usize,
    pub decisions: usize,
    pub changes: usize,
    pub dead: usize,
}

impl EmbeddedIngest {
    /// Ingest and assign over `store`'s log under `rules`, with no CRM to
    /// read from, no SLA scan and no admin commands: replays and load runs.
    pub fn offline(
        store: Arc<Store>,
        rules: Arc<allot_rules::RuleSet>,
        echo: crate::pipeline::EchoConfig,
        metrics: crate::metrics::Metrics,
        max_chunk: usize,
    ) -> Result<EmbeddedIngest, ServiceError> {
        let pipeline = Pipeline::new(
            store.clone(),
            rules,
            crate::pipeline::FieldMaps::default(),
            echo,
            crate::hydrate::Hydrator::Off,
            metrics,
        )?;
        Ok(EmbeddedIngest {
            store,
            pipeline,
            outbox_ready: Arc::new(Notify::new()),
            max_chunk,
            sla: None,
            control: None,
        })
    }

    /// Runs until `shutdown` resolves; finishes the chunk in hand first.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), ServiceError> {
        tokio::pin!(shutdown);
        let log = self.store.log(RAW_LOG);
        let rerouted = self.store.log(REROUTE_LOG);
        info!(
            from = log.committed(INGEST_GROUP)?,
            "embedded ingest started"
        );
        let mut sla = SlaClock::new(crate::now_ms());
        if let Some(c) = self.control.as_mut() {
            c.start(&mut self.pipeline, crate::now_ms())?;
        }
        loop {
            self.control_step(crate::now_ms()).await?;
            self.hydration_step(crate::now_ms()).await?;
            let now = crate::now_ms();
            if let Some(from) = self.sla.as_ref().and_then(|cfg| sla.due(cfg, now)) {
                self.sla_step(from, now).await?;
            }
            let generation = log.generation();
            let refused = rerouted.generation();
            let report = self.step().await?;
            if report.entries > 0 {
                continue;
            }
            let busy = self.control.as_ref().is_some_and(Controller::busy);
            let idle = Duration::from_millis(if busy { 100 } else { 1000 });
            let command = async {
                match self.control.as_mut() {
                    Some(c) => c.next().await,
                    None => std::future::pending().await,
                }
            };
            let hydrated = self.pipeline.hydrator().landed_ready();
            tokio::select! {
                _ = log.changed(generation) => {}
                _ = rerouted.changed(refused) => {}
                () = hydrated => {}
                _ = tokio::time::sleep(idle) => {}
                Some(envelope) = command => self.command(envelope, crate::now_ms()).await?,
                _ = &mut shutdown => break,
            }
        }
        info!("embedded ingest stopped");
        Ok(())
    }

    /// The pipeline and the store, as their owner between chunks.
    fn owner(&mut self) -> Owner<'_> {
        Owner {
            pipeline: &mut self.pipeline,
            store: &self.store,
            outbox_ready: &self.outbox_ready,
        }
    }

    /// Merges and decides the parked records whose reads landed, committed;
    /// returns how many decisions that made.
    pub async fn hydration_step(&mut self, now: allot_core::Millis) -> Result<usize, ServiceError> {
        self.owner().hydration_step(now).await
    }

    /// One SLA pass over assignments made since `from` (up to `now` minus
    /// the SLA), committed; returns the number of re-routes.
    pub async fn sla_step(
        &mut self,
        from: allot_core::Millis,
        now: allot_core::Millis,
    ) -> Result<usize, ServiceError> {
        let Some(cfg) = self.sla.clone() else {
            return Ok(0);
        };
        self.owner().sla_step(&cfg, from, now).await
    }

    /// Applies waiting commands, switches rules when a scheduled version
    /// became effective, and re-decides the records the realignment's pace
    /// allows at `now`; each committed before the next.
    pub async fn control_step(&mut self, now: allot_core::Millis) -> Result<usize, ServiceError> {
        let Some(mut c) = self.control.take() else {
            return Ok(0);
        };
        let moved = self.owner().control_step(&mut c, now).await;
        self.control = Some(c);
        moved
    }

    /// Applies one command, commits its effects, then answers.
    pub async fn command(
        &mut self,
        envelope: Envelope,
        now: allot_core::Millis,
    ) -> Result<(), ServiceError> {
        let Some(mut c) = self.control.take() else {
            return Ok(());
        };
        let done = self.owner().command(&mut c, envelope, now).await;
        self.control = Some(c);
        done
    }

    /// Processes chunks until the log is drained; the totals.
    pub async fn drain(&mut self) -> Result<ChunkReport, ServiceError> {
        let mut total = ChunkReport::default();
        loop {
            let r = self.step().await?;
            if r.entries == 0 {
                return Ok(total);
            }
            total.entries += r.entries;
            total.events += r.events;
            total.decisions += r.decisions;
            total.changes += r.changes;
            total.dead += r.dead;
        }
    }

    /// Processes one chunk (possibly empty) and commits it.
    pub async fn step(&mut self) -> Result<ChunkReport, ServiceError> {
        let log = self.store.log(RAW_LOG);
        let from = log.committed(INGEST_GROUP)?;
        let entries = log.read(from, self.max_chunk)?;
        let (refusals, refused_next) = crate::reroute::waiting(&self.store, self.max_chunk)?;
        if entries.is_empty() && refusals.is_empty() {
            return Ok(ChunkReport::default());
        }
        let started = Instant::now();
        let now = crate::now_ms();
        let span = tracing::info_span!(
            "chunk",
            otel.name = "ingest",
            stage = "ingest",
            entries = entries.len(),
            events = tracing::field::Empty,
            decisions = tracing::field::Empty,
            dead = tracing::field::Empty,
        );
        let mut bad = Vec::new();
        let mut payloads: Vec<Payload> = entries
            .iter()
            .filter_map(|(offset, bytes)| {
                let source = format!("{RAW_LOG}@{offset}");
                match serde_json::from_slice::<RawEntry>(bytes) {
                    Ok(e) => Some(Payload {
                        format: e.format.parse().unwrap_or(Format::Auto),
                        source: format!("{source} ({})", e.source),
                        body: e.body.into_bytes(),
                    }),
                    Err(err) => {
                        let body = String::from_utf8_lossy(bytes).into_owned();
                        bad.push(DeadLetter {
                            v: 1,
                            kind: "envelope".into(),
                            reason: format!("log entry is not a raw envelope: {err}"),
                            source,
                            at: now,
                            body,
                        });
                        None
                    }
                }
            })
            .collect();
        let refused = refusals.len();
        payloads.extend(refusals);
        let staged = self
            .pipeline
            .stage(&payloads, now)
            .instrument(span.clone())
            .await?;
        span.in_scope(|| crate::trace::decision_spans(&staged));
        let Staged {
            mut batch,
            decisions,
            changes,
            mut dead,
            events,
            ..
        } = staged;
        dead.extend(bad);
        span.record("events", events);
        span.record("decisions", decisions.len());
        span.record("dead", dead.len());
        for d in &dead {
            if let Ok(bytes) = serde_json::to_vec(d) {
                batch.log_append(DLQ_LOG, &bytes);
            }
        }
        if let Some(&(last, _)) = entries.last() {
            batch.log_commit(RAW_LOG, INGEST_GROUP, last + 1);
        }
        crate::reroute::commit(&mut batch, refused_next);
        crate::pipeline::commit(&self.store, batch, "ingest")
            .instrument(span)
            .await?;
        if !changes.is_empty() {
            self.outbox_ready.notify_one();
        }
        let next = entries.last().map_or(from, |&(last, _)| last + 1);
        let lag = log.end_offset()?.saturating_sub(next);
        self.pipeline_metrics(lag, started);
        Ok(ChunkReport {
            entries: entries.len() + refused,
            events,
            decisions: decisions.len(),
            changes: changes.len(),
            dead: dead.len(),
        })
    }

    fn pipeline_metrics(&self, lag: u64, started: Instant) {
        let m = self.pipeline.metrics();
        m.lag
            .with_label_values(&[RAW_LOG, "0"])
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
        m.batch_seconds
            .with_label_values(&["ingest"])
            .observe(started.elapsed().as_secs_f64());
    }
}
